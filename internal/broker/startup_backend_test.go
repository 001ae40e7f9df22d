package broker

import (
	"context"
	"log/slog"
	"strings"
	"testing"

	"github.com/agentkeys/agentkeys/internal/testkit"
)

// TestStartSaysBackendUnreachable: a broker started with no backend
// answering says so in its log, naming the URL, and still starts.
func TestStartSaysBackendUnreachable(t *testing.T) {
	cfg := startConfig(t, "http://127.0.0.1:1")
	var logs testkit.SyncBuffer
	r, err := Start(context.Background(), cfg, slog.New(slog.NewJSONHandler(&logs, nil)))
	if err != nil {
		t.Fatal(err)
	}
	r.Shutdown(context.Background())
	if !strings.Contains(logs.String(), "backend not reachable") || !strings.Contains(logs.String(), "http://127.0.0.1:1") {
		t.Fatalf("no warning about the unreachable backend:\n%s", logs.String())
	}
	backend := newFakeBackend(t)
	logs = testkit.SyncBuffer{}
	r, err = Start(context.Background(), startConfig(t, backend.URL), slog.New(slog.NewJSONHandler(&logs, nil)))
	if err != nil {
		t.Fatal(err)
	}
	r.Shutdown(context.Background())
	if strings.Contains(logs.String(), "backend not reachable") {
		t.Fatalf("warned with a working backend:\n%s", logs.String())
	}
}
