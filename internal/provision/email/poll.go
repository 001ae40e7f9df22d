package email

import (
	"context"
	"errors"
	"fmt"
	"net/mail"
	"sort"
	"strings"
	"time"
)

// permanentError marks a failure that polling again cannot fix (bad
// credentials, unknown inbox or bucket): Fetch returns it at once.
type permanentError struct{ err error }

func (e permanentError) Error() string { return e.err.Error() }
func (e permanentError) Unwrap() error { return e.err }

// down wraps a failure to reach or use the mailbox in ErrBackendDown.
func down(format string, args ...any) error {
	return fmt.Errorf("%w: "+format, append([]any{ErrBackendDown}, args...)...)
}

// permanent wraps a failure to reach or use the mailbox that retrying
// will not fix.
func permanent(format string, args ...any) error {
	return permanentError{down(format, args...)}
}

// filter applies a Query to candidate messages and counts why the others
// were rejected (for the timeout message).
type filter struct {
	q       Query
	to      string
	cutoff  time.Time // zero: no freshness check
	seen    map[string]bool
	reasons map[string]int
	scanned int
}

func newFilter(q Query) (*filter, error) {
	to := normAddr(q.To)
	if to == "" {
		return nil, errors.New("email: Query.To (the recipient address) is required")
	}
	f := &filter{q: q, to: to, seen: map[string]bool{}, reasons: map[string]int{}}
	if !q.Since.IsZero() {
		f.cutoff = q.Since.Add(-SinceGrace)
	}
	return f, nil
}

// normAddr lower-cases an address and drops a display name.
func normAddr(s string) string {
	s = strings.TrimSpace(s)
	if strings.ContainsAny(s, "<\"") {
		if a, err := mail.ParseAddress(s); err == nil {
			s = a.Address
		}
	}
	return strings.ToLower(s)
}

// stale reports whether t (an arrival time or a Date header) is before the
// freshness cutoff.
func (f *filter) stale(t time.Time) bool {
	return !f.cutoff.IsZero() && !t.IsZero() && t.Before(f.cutoff)
}

func (f *filter) reject(reason string) bool {
	f.reasons[reason]++
	return false
}

// match reports whether m satisfies the query.
func (f *filter) match(m Message) bool {
	f.scanned++
	if f.stale(m.Arrived) || f.stale(m.Date) {
		return f.reject("stale")
	}
	if !f.addressedTo(m) {
		return f.reject("other_recipient")
	}
	if f.q.From != nil && !f.q.From.MatchString(m.From) {
		return f.reject("from_rejected")
	}
	if f.q.Subject != nil && !f.q.Subject.MatchString(m.Subject) {
		return f.reject("subject_rejected")
	}
	if f.q.Accept != nil && !f.q.Accept(m) {
		return f.reject("not_accepted")
	}
	return true
}

func (f *filter) addressedTo(m Message) bool {
	for _, a := range m.To {
		if normAddr(a) == f.to {
			return true
		}
	}
	for _, a := range m.Recipients {
		if normAddr(a) == f.to {
			return true
		}
	}
	return false
}

// summary describes what was scanned, without any message content.
func (f *filter) summary() string {
	if f.scanned == 0 && len(f.reasons) == 0 {
		return "the mailbox had no new mail"
	}
	keys := make([]string, 0, len(f.reasons))
	for k := range f.reasons {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	var b strings.Builder
	fmt.Fprintf(&b, "scanned %d messages", f.scanned)
	for _, k := range keys {
		fmt.Fprintf(&b, ", %s=%d", k, f.reasons[k])
	}
	return b.String()
}

// newestFirst sorts messages by arrival (else Date), newest first.
func newestFirst(ms []Message) {
	when := func(m Message) time.Time {
		if !m.Arrived.IsZero() {
			return m.Arrived
		}
		return m.Date
	}
	sort.SliceStable(ms, func(i, j int) bool { return when(ms[i]).After(when(ms[j])) })
}

func pollInterval(d time.Duration) time.Duration {
	if d <= 0 {
		return DefaultPollInterval
	}
	return d
}

// poll calls check until it finds a message or ctx ends. A failure of the
// first check, or a permanent one, is returned at once; later transient
// failures are retried. When ctx ends, the result is ErrTimeout, or the
// last failure if the last check failed.
func poll(ctx context.Context, every time.Duration, f *filter, check func(context.Context) (Message, bool, error)) (Message, error) {
	start := time.Now()
	var lastErr error
	t := time.NewTimer(0)
	defer t.Stop()
	for attempt := 1; ; attempt++ {
		select {
		case <-ctx.Done():
			return Message{}, timeoutError(start, f, lastErr)
		case <-t.C:
		}
		m, ok, err := check(ctx)
		if ok {
			return m, nil
		}
		if err != nil {
			if ctx.Err() != nil {
				return Message{}, timeoutError(start, f, lastErr)
			}
			var pe permanentError
			if attempt == 1 || errors.As(err, &pe) {
				return Message{}, err
			}
			lastErr = err
		} else {
			lastErr = nil
		}
		t.Reset(every)
	}
}

func timeoutError(start time.Time, f *filter, lastErr error) error {
	waited := time.Since(start).Round(time.Millisecond)
	if lastErr != nil {
		return fmt.Errorf("no mail to %s after %s; the last poll failed: %w", f.to, waited, lastErr)
	}
	return fmt.Errorf("%w: waited %s for mail to %s (%s)", ErrTimeout, waited, f.to, f.summary())
}
