package gateway

import (
	"context"
	"errors"
	"log/slog"
	"sync"
	"time"
)

// Call is the audit record of one gateway request. It holds no header,
// no query string and no body.
type Call struct {
	Time     time.Time
	Service  string // "*" when the request named no known service
	Method   string
	Path     string // upstream path, without the query
	Status   int    // what the agent got
	BytesIn  int64  // request body bytes read
	BytesOut int64  // response body bytes sent
	Duration time.Duration
	// Refused is "" for a forwarded request, else why the gateway
	// refused it (a lower-case error kind) or "aborted".
	Refused string
}

// Recorder takes audit records. Reserve waits until the record of one
// request can be kept (for at most the context's lifetime) and returns
// the function that records it; a record reserved is never dropped.
type Recorder interface {
	Reserve(ctx context.Context) (func(Call), error)
}

// AuditWait is how long a request waits for room in the audit backlog
// before the gateway answers 503.
const AuditWait = 5 * time.Second

// ErrBacklogFull is Reserve's answer when no room came up in time.
var ErrBacklogFull = errors.New("gateway: the audit backlog is full")

// BatcherOptions configure a Batcher.
type BatcherOptions struct {
	// Send writes one batch; an error keeps the batch for the next try.
	Send func(ctx context.Context, calls []Call) error
	// MaxBacklog bounds records held (pending and reserved); default 1000.
	MaxBacklog int
	// MaxBatch bounds one Send; default 200.
	MaxBatch int
	// Interval is how often pending records are sent; default 250 ms.
	Interval time.Duration
	Log      *slog.Logger
}

// Batcher keeps audit records in memory and sends them in batches. It
// never drops one: when the backlog is full, Reserve waits (and the
// gateway refuses the request once AuditWait passes).
type Batcher struct {
	o       BatcherOptions
	mu      sync.Mutex
	pending []Call
	held    int           // reserved, not yet recorded
	room    chan struct{} // closed and replaced when room frees up
	kick    chan struct{}
}

// NewBatcher returns a Batcher; call Run to send.
func NewBatcher(o BatcherOptions) *Batcher {
	if o.MaxBacklog <= 0 {
		o.MaxBacklog = 1000
	}
	if o.MaxBatch <= 0 {
		o.MaxBatch = 200
	}
	if o.Interval <= 0 {
		o.Interval = 250 * time.Millisecond
	}
	if o.Log == nil {
		o.Log = slog.New(slog.DiscardHandler)
	}
	return &Batcher{o: o, room: make(chan struct{}), kick: make(chan struct{}, 1)}
}

// Reserve implements Recorder.
func (b *Batcher) Reserve(ctx context.Context) (func(Call), error) {
	for {
		b.mu.Lock()
		if len(b.pending)+b.held < b.o.MaxBacklog {
			b.held++
			b.mu.Unlock()
			var once sync.Once
			return func(c Call) { once.Do(func() { b.add(c) }) }, nil
		}
		room := b.room
		b.mu.Unlock()
		select {
		case <-room:
		case <-ctx.Done():
			return nil, ErrBacklogFull
		}
	}
}

func (b *Batcher) add(c Call) {
	b.mu.Lock()
	b.held--
	b.pending = append(b.pending, c)
	full := len(b.pending) >= b.o.MaxBatch
	b.mu.Unlock()
	if full {
		b.wake()
	}
}

// wake makes Run send without waiting for the next tick.
func (b *Batcher) wake() {
	select {
	case b.kick <- struct{}{}:
	default:
	}
}

// Pending returns how many records wait to be sent.
func (b *Batcher) Pending() int {
	b.mu.Lock()
	defer b.mu.Unlock()
	return len(b.pending)
}

// Run sends batches until ctx ends, then tries once more to send what is
// left (for at most 5 s).
func (b *Batcher) Run(ctx context.Context) {
	t := time.NewTicker(b.o.Interval)
	defer t.Stop()
	failures := 0
	for {
		select {
		case <-ctx.Done():
			fctx, cancel := context.WithTimeout(context.Background(), AuditWait)
			for b.Pending() > 0 && b.Flush(fctx) == nil {
			}
			cancel()
			if n := b.Pending(); n > 0 {
				b.o.Log.Error("gateway: audit records could not be sent before exit", "count", n)
			}
			return
		case <-t.C:
		case <-b.kick:
		}
		if err := b.Flush(ctx); err != nil {
			failures++
			if failures == 1 || failures%20 == 0 {
				b.o.Log.Warn("gateway: audit batch not sent; keeping it", "err", err.Error(), "pending", b.Pending())
			}
			continue
		}
		failures = 0
	}
}

// Flush sends up to MaxBatch pending records; they stay pending when Send
// fails.
func (b *Batcher) Flush(ctx context.Context) error {
	b.mu.Lock()
	n := min(len(b.pending), b.o.MaxBatch)
	batch := append([]Call(nil), b.pending[:n]...)
	b.mu.Unlock()
	if n == 0 {
		return nil
	}
	if err := b.o.Send(ctx, batch); err != nil {
		return err
	}
	b.mu.Lock()
	b.pending = append(b.pending[:0], b.pending[n:]...)
	close(b.room)
	b.room = make(chan struct{})
	more := len(b.pending) >= b.o.MaxBatch
	b.mu.Unlock()
	if more {
		b.wake()
	}
	return nil
}
