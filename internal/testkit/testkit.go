// Package testkit holds the helpers that tests across the module share: a
// settable clock, a buffer safe for concurrent writers, a loopback listener
// that keeps what it accepts, and a TestMain that builds the binaries
// under test. It depends on the standard library only, so any package's
// tests (internal or external) can import it without a cycle. Only test
// code imports it.
package testkit

import (
	"bytes"
	"sync"
	"time"
)

// Clock is a settable time source: Now returns the time it was created
// with until Advance or Set moves it.
type Clock struct {
	mu sync.Mutex
	t  time.Time
}

// NewClock returns a Clock that reads t.
func NewClock(t time.Time) *Clock { return &Clock{t: t} }

// Now returns the clock's time.
func (c *Clock) Now() time.Time { c.mu.Lock(); defer c.mu.Unlock(); return c.t }

// Advance moves the clock forward by d.
func (c *Clock) Advance(d time.Duration) {
	c.mu.Lock()
	c.t = c.t.Add(d)
	c.mu.Unlock()
}

// SyncBuffer is a bytes.Buffer that concurrent writers (log handlers,
// subprocess pipes) may share with a reader.
type SyncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

// Write appends p.
func (s *SyncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

// String returns everything written so far.
func (s *SyncBuffer) String() string { s.mu.Lock(); defer s.mu.Unlock(); return s.b.String() }
