package logging

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func logTo(t *testing.T, tty bool) string {
	t.Helper()
	old := isTerminal
	t.Cleanup(func() { isTerminal = old })
	isTerminal = func(int) bool { return tty }
	f, err := os.Create(filepath.Join(t.TempDir(), "log"))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	log, err := New(f, "info")
	if err != nil {
		t.Fatal(err)
	}
	log.Info("listening", "addr", "127.0.0.1:8090")
	log.Debug("hidden at info")
	b, err := os.ReadFile(f.Name())
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// A person at a terminal reads text lines; anything else gets one JSON
// object per line.
func TestTextOnATerminalJSONElsewhere(t *testing.T) {
	text := logTo(t, true)
	if !strings.Contains(text, "level=INFO msg=listening addr=127.0.0.1:8090") || strings.HasPrefix(text, "{") {
		t.Fatalf("terminal log = %q, want slog text", text)
	}
	js := logTo(t, false)
	var rec map[string]any
	if err := json.Unmarshal([]byte(js), &rec); err != nil || rec["msg"] != "listening" || rec["addr"] != "127.0.0.1:8090" {
		t.Fatalf("non-terminal log = %q (%v), want one JSON object", js, err)
	}
	if strings.Contains(text+js, "hidden") {
		t.Fatal("debug line written at level info")
	}
}

// A pipe or a file is never taken for a terminal.
func TestFileIsNotATerminal(t *testing.T) {
	r, w, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	defer w.Close()
	if IsTerminal(w) {
		t.Fatal("a pipe counted as a terminal")
	}
	if _, err := New(w, "loud"); err == nil || !strings.Contains(err.Error(), "want debug, info, warn or error") {
		t.Fatalf("bad level: %v", err)
	}
}
