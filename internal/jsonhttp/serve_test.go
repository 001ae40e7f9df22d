package jsonhttp

import (
	"context"
	"errors"
	"log/slog"
	"strings"
	"testing"
	"time"
)

// Drain shuts the server down, within the grace period, both when the
// binary is told to stop and when serving fails by itself; a serving
// failure is what it returns.
func TestDrain(t *testing.T) {
	var logs strings.Builder
	log := slog.New(slog.NewTextHandler(&logs, nil))
	var deadlines []bool
	shutdown := func(ctx context.Context) error {
		_, ok := ctx.Deadline()
		deadlines = append(deadlines, ok)
		return nil
	}

	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if err := Drain(ctx, log, make(chan error), time.Second, shutdown); err != nil {
		t.Fatalf("stop requested: %v", err)
	}
	if !strings.Contains(logs.String(), "msg=stopped") {
		t.Fatalf("a clean stop does not log \"stopped\":\n%s", logs.String())
	}
	logs.Reset()

	failed := make(chan error, 1)
	failed <- errors.New("listener closed")
	err := Drain(context.Background(), log, failed, time.Second, func(ctx context.Context) error {
		shutdown(ctx)
		return errors.New("also failed")
	})
	if err == nil || !strings.Contains(err.Error(), "serve: listener closed") {
		t.Fatalf("serving failed: got %v, want the serving error", err)
	}
	if strings.Contains(logs.String(), "msg=stopped") || !strings.Contains(logs.String(), "server stopped") {
		t.Fatalf("a serving failure logs a clean stop, or not the failure:\n%s", logs.String())
	}

	if len(deadlines) != 2 || !deadlines[0] || !deadlines[1] {
		t.Fatalf("shutdown calls with a deadline: %v, want two with one", deadlines)
	}
}
