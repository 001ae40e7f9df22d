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
	log := slog.New(slog.DiscardHandler)
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

	failed := make(chan error, 1)
	failed <- errors.New("listener closed")
	err := Drain(context.Background(), log, failed, time.Second, func(ctx context.Context) error {
		shutdown(ctx)
		return errors.New("also failed")
	})
	if err == nil || !strings.Contains(err.Error(), "serve: listener closed") {
		t.Fatalf("serving failed: got %v, want the serving error", err)
	}

	if len(deadlines) != 2 || !deadlines[0] || !deadlines[1] {
		t.Fatalf("shutdown calls with a deadline: %v, want two with one", deadlines)
	}
}
