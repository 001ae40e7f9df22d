package clientip

import (
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
)

func req(remote string, hdr ...string) *http.Request {
	r := httptest.NewRequest("GET", "/", nil)
	r.RemoteAddr = remote
	for i := 0; i+1 < len(hdr); i += 2 {
		r.Header.Add(hdr[i], hdr[i+1])
	}
	return r
}

func TestResolve(t *testing.T) {
	trusted, err := Parse("127.0.0.1/32, 10.0.0.0/8,::1")
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		name string
		t    *Trusted
		r    *http.Request
		want string
	}{
		{"no proxies trusted: header ignored", nil, req("127.0.0.1:5000", "X-Forwarded-For", "203.0.113.9"), "127.0.0.1"},
		{"untrusted peer: header ignored", trusted, req("198.51.100.1:5000", "X-Forwarded-For", "203.0.113.9"), "198.51.100.1"},
		{"trusted peer, one hop", trusted, req("127.0.0.1:5000", "X-Forwarded-For", "203.0.113.9"), "203.0.113.9"},
		{"client-forged left part is skipped", trusted, req("127.0.0.1:5000", "X-Forwarded-For", "1.2.3.4, 203.0.113.9"), "203.0.113.9"},
		{"chain of trusted proxies", trusted, req("127.0.0.1:5000", "X-Forwarded-For", "203.0.113.9, 10.1.2.3"), "203.0.113.9"},
		{"several header lines", trusted, req("127.0.0.1:5000", "X-Forwarded-For", "1.2.3.4", "X-Forwarded-For", "203.0.113.9,10.0.0.1"), "203.0.113.9"},
		{"all trusted: leftmost", trusted, req("127.0.0.1:5000", "X-Forwarded-For", "10.0.0.2, 10.0.0.1"), "10.0.0.2"},
		{"garbage from a trusted hop: last trusted", trusted, req("127.0.0.1:5000", "X-Forwarded-For", "203.0.113.9, unknown, 10.0.0.1"), "10.0.0.1"},
		{"garbage rightmost: the peer", trusted, req("127.0.0.1:5000", "X-Forwarded-For", "nonsense"), "127.0.0.1"},
		{"no header: the peer", trusted, req("127.0.0.1:5000"), "127.0.0.1"},
		{"ipv6 peer", trusted, req("[::1]:5000", "X-Forwarded-For", "2001:db8::7"), "2001:db8::7"},
		{"xff with port", trusted, req("127.0.0.1:5000", "X-Forwarded-For", "203.0.113.9:4711"), "203.0.113.9"},
		{"forwarded", trusted, req("127.0.0.1:5000", "Forwarded", `for=1.2.3.4, for="[2001:db8::9]:80";proto=https`), "2001:db8::9"},
		{"forwarded obfuscated: last trusted", trusted, req("127.0.0.1:5000", "Forwarded", `for=_hidden`), "127.0.0.1"},
		{"forwarded malformed: the peer", trusted, req("127.0.0.1:5000", "Forwarded", `for="1.2.3.4`), "127.0.0.1"},
		{"xff wins over forwarded", trusted, req("127.0.0.1:5000", "Forwarded", "for=1.2.3.4", "X-Forwarded-For", "203.0.113.9"), "203.0.113.9"},
		{"v4-mapped peer", trusted, req("[::ffff:127.0.0.1]:5000", "X-Forwarded-For", "203.0.113.9"), "203.0.113.9"},
	} {
		if got := c.t.Resolve(c.r); got != c.want {
			t.Errorf("%s: got %q, want %q", c.name, got, c.want)
		}
	}
}

func TestParse(t *testing.T) {
	for _, bad := range []string{"nope", "10.0.0.0/33", "fe80::1%eth0", "1.2.3.4/8/9"} {
		if _, err := Parse(bad); err == nil {
			t.Errorf("Parse(%q) accepted", bad)
		}
	}
	tr, err := Parse(" 10.1.2.3/8 ,, 192.0.2.1")
	if err != nil || tr.String() != "10.0.0.0/8,192.0.2.1/32" {
		t.Fatalf("Parse: %v %q", err, tr)
	}
	if e, _ := Parse(""); !e.Empty() {
		t.Fatal("empty list is not empty")
	}
}

func TestParseForwarded(t *testing.T) {
	got, err := ParseForwarded(`For="[2001:db8:cafe::17]:4711";proto=http;by=203.0.113.43, for=192.0.2.60 ;host="a\"b"`)
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 2 || got[0].For != "[2001:db8:cafe::17]:4711" || got[0].Proto != "http" || got[0].By != "203.0.113.43" ||
		got[1].For != "192.0.2.60" || got[1].Host != `a"b` {
		t.Fatalf("%+v", got)
	}
	for _, bad := range []string{"", "for", "for=", `for="x`, "for=1;;", "for=1,,", "for=a b", "for=\"\x01\""} {
		if _, err := ParseForwarded(bad); err == nil {
			t.Errorf("ParseForwarded(%q) accepted", bad)
		}
	}
}

func TestOfFallsBackToPeer(t *testing.T) {
	r := req("192.0.2.5:1", "X-Forwarded-For", "1.1.1.1")
	if got := Of(r); got != "192.0.2.5" {
		t.Fatalf("Of = %q", got)
	}
	r = r.WithContext(WithClient(r.Context(), "203.0.113.1"))
	if got := Of(r); got != "203.0.113.1" {
		t.Fatalf("Of = %q", got)
	}
}

func FuzzResolve(f *testing.F) {
	f.Add("127.0.0.1:1", "203.0.113.9, 10.0.0.1", `for="[2001:db8::1]:80";proto=https, for=1.2.3.4`)
	f.Add("[::1]:1", "", `for=_x;by=y`)
	f.Add("127.0.0.1:1", "unknown", `for="\"`)
	tr, _ := Parse("127.0.0.0/8,10.0.0.0/8,::1")
	f.Fuzz(func(t *testing.T, remote, xff, fwd string) {
		r := httptest.NewRequest("GET", "/", nil)
		r.RemoteAddr = remote
		if xff != "" {
			r.Header.Set("X-Forwarded-For", xff)
		}
		r.Header.Set("Forwarded", fwd)
		ip := tr.Resolve(r)
		if ip != remote && strings.ContainsAny(ip, " ,;\"") {
			t.Fatalf("resolved %q", ip)
		}
		ParseForwarded(fwd)
	})
}
