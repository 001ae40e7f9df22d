package ratelimit

import (
	"testing"
	"time"
)

func TestLimiterPerKey(t *testing.T) {
	now := time.Unix(1_700_000_000, 0)
	l := New(1, 2)
	l.now = func() time.Time { return now }

	for i := range 2 {
		if ok, _ := l.Allow("a"); !ok {
			t.Fatalf("request %d within burst refused", i)
		}
	}
	ok, wait := l.Allow("a")
	if ok {
		t.Fatal("third request in the same instant allowed; want refusal")
	}
	if wait <= 0 || wait > time.Second {
		t.Fatalf("retry wait = %v, want (0,1s]", wait)
	}
	if got := RetryAfterSeconds(wait); got != 1 {
		t.Fatalf("Retry-After = %d, want 1", got)
	}
	if ok, _ := l.Allow("b"); !ok {
		t.Fatal("another key was limited by a's traffic")
	}
	now = now.Add(time.Second)
	if ok, _ := l.Allow("a"); !ok {
		t.Fatal("token did not refill after a second")
	}
}

func TestLimiterForgetsIdleKeys(t *testing.T) {
	now := time.Unix(1_700_000_000, 0)
	l := New(1, 1)
	l.now = func() time.Time { return now }
	l.Allow("a")
	now = now.Add(maxIdle + time.Minute)
	l.Allow("b")
	if _, ok := l.buckets["a"]; ok {
		t.Fatal("idle bucket kept; memory would grow with every caller ever seen")
	}
}

func TestDisabled(t *testing.T) {
	l := New(0, 0)
	for range 1000 {
		if ok, _ := l.Allow("x"); !ok {
			t.Fatal("disabled limiter refused")
		}
	}
}
