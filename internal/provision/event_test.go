package provision

import (
	"bytes"
	"errors"
	"strings"
	"testing"
)

func TestEventRoundTrip(t *testing.T) {
	evs := []Event{
		{Type: TypeProgress, Step: "filling \"email\"\nnow"},
		{Type: TypeAssist, Step: "captcha", Details: "solve it"},
		{Type: TypeTripwire, Kind: TripEmailTimeout, Step: "wait_mail", ElapsedMS: 120000},
		{Type: TypeSuccess, APIKey: "sk-or-v1-abc"},
		{Type: TypeError, Code: CodeKeyFormat, Details: "bad", Diagnostics: "/tmp/x"},
	}
	var buf bytes.Buffer
	em := NewEmitter(&buf)
	for _, e := range evs {
		if err := em.Emit(e); err != nil {
			t.Fatal(err)
		}
	}
	lines := strings.Split(strings.TrimSuffix(buf.String(), "\n"), "\n")
	if len(lines) != len(evs) {
		t.Fatalf("%d lines for %d events", len(lines), len(evs))
	}
	for i, l := range lines {
		got, ok, err := ParseEvent([]byte(l))
		if err != nil || !ok || got != evs[i] {
			t.Fatalf("line %d: %+v %v %v", i, got, ok, err)
		}
	}
	if evs[3].String() != "key obtained" {
		t.Fatal("String of a success event must not show the key")
	}
}

func TestParseEventRejects(t *testing.T) {
	for _, l := range []string{
		`not json`, `{"type":"party"}`, `{"type":"progress"}`, `{"type":"success"}`,
		`{"type":"tripwire","kind":"gremlins","step":"x"}`, `{"type":"progress","step":"x","extra":1}`,
		`{"type":"progress","step":"x"} {"type":"progress","step":"y"}`, `[1,2]`,
	} {
		if _, _, err := ParseEvent([]byte(l)); !errors.Is(err, ErrMalformed) {
			t.Errorf("ParseEvent(%s) err = %v", l, err)
		}
	}
	if _, ok, err := ParseEvent([]byte("   \t ")); ok || err != nil {
		t.Fatal("blank line must be skipped")
	}
	ev, _, err := ParseEvent([]byte(`{"type":"error","code":"from_the_future","details":"d"}`))
	if err != nil || ev.Code != CodeInternal || ev.Details != "from_the_future: d" {
		t.Fatalf("unknown code: %+v %v", ev, err)
	}
}

func FuzzParseEvent(f *testing.F) {
	for _, s := range []string{
		`{"type":"progress","step":"a"}`, `{"type":"success","api_key":"sk-x"}`,
		`{"type":"tripwire","kind":"captcha","step":"s","elapsed_ms":5}`, `{"type":"error","code":"timeout"}`,
		`{"type":"assist","step":"c","details":"d"}`, `{`, ``, `null`,
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, line []byte) {
		ev, ok, err := ParseEvent(line)
		if err != nil && ok {
			t.Fatal("ok with an error")
		}
		if !ok {
			return
		}
		var buf bytes.Buffer
		if err := NewEmitter(&buf).Emit(ev); err != nil {
			t.Fatal(err)
		}
		if bytes.Count(buf.Bytes(), []byte("\n")) != 1 {
			t.Fatal("an emitted event spans lines")
		}
		again, ok, err := ParseEvent(buf.Bytes())
		if err != nil || !ok || again != ev {
			t.Fatalf("re-parse: %+v %v %v", again, ok, err)
		}
	})
}
