package ratelimit

import (
	"testing"
	"time"
)

// TestIdleBucketsDroppedOnlyAfterMaxIdle: with a rate so slow that an
// emptied bucket stays empty, a bucket is forgotten (and so full again)
// only when it has been idle longer than maxIdle at a sweep, and sweeps
// run only when more than maxIdle has passed since the last one.
func TestIdleBucketsDroppedOnlyAfterMaxIdle(t *testing.T) {
	t0 := time.Unix(1_700_000_000, 0)
	newAt := func() (*Limiter, *time.Time) {
		l := New(1e-6, 1)
		now := t0
		l.now = func() time.Time { return now }
		return l, &now
	}

	// Idle exactly maxIdle at a sweep: kept, still empty.
	l, now := newAt()
	l.Allow("x") // first call sweeps: the last sweep is t0
	*now = t0.Add(time.Second)
	if ok, _ := l.Allow("a"); !ok {
		t.Fatal("first request refused")
	}
	*now = t0.Add(maxIdle + time.Second) // a sweep runs; "a" idle exactly maxIdle
	if ok, _ := l.Allow("a"); ok {
		t.Fatal("a bucket idle exactly maxIdle was forgotten (refilled)")
	}

	// A sweep runs only when more than maxIdle passed since the last.
	l, now = newAt()
	l.Allow("x") // sweep at t0
	*now = t0.Add(2 * time.Second)
	l.Allow("a")
	*now = t0.Add(maxIdle + time.Second)
	l.Allow("b")            // sweep: "a" idle maxIdle-1s, kept; last sweep t0+maxIdle+1s
	*now = now.Add(maxIdle) // exactly maxIdle since that sweep: no sweep
	if ok, _ := l.Allow("a"); ok {
		t.Fatal("a sweep ran exactly maxIdle after the last one")
	}
	*now = now.Add(time.Nanosecond)
	if ok, _ := l.Allow("b"); !ok {
		t.Fatal("a bucket idle longer than maxIdle was not forgotten at the next sweep")
	}
}
