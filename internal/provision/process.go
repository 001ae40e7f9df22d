package provision

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os/exec"
	"strings"
	"sync"
	"time"
)

// Command is a scraper process to run.
type Command struct {
	Path  string
	Args  []string
	Env   []string // the complete environment (nothing is inherited)
	Stdin []byte
	Dir   string
}

// Outcome is what a scraper run produced.
type Outcome struct {
	Terminal Event // the one terminal event
	Events   int   // events read, terminal included
	ExitCode int
	// StderrTail is the end of the scraper's stderr (bounded), for
	// diagnosis; the scraper never writes secrets there.
	StderrTail string
}

// RunOptions bound a scraper run.
type RunOptions struct {
	Timeout time.Duration // wall clock for the whole process group
	Grace   time.Duration // SIGTERM → SIGKILL delay (default 3s)
	// OnEvent sees every event as it arrives (progress for the user).
	OnEvent func(Event)
	// OnStderr sees each stderr line as it arrives (verbose output).
	OnStderr func(string)
}

const stderrTailBytes = 16 << 10

// RunScraper starts cmd in its own process group, streams its events and
// returns once it has exited. On timeout or cancellation the whole group
// (the scraper and its browser) gets SIGTERM and, after Grace, SIGKILL.
// The run fails with CodeMalformedEvent on a line that is not an event or
// on a second terminal event, with CodeTimeout when the wall clock ran
// out, and with CodeInternal when the process ended without a terminal
// event.
func RunScraper(ctx context.Context, c Command, o RunOptions) (Outcome, error) {
	if c.Path == "" {
		return Outcome{}, &Error{Code: CodeInternal, Message: "no scraper command"}
	}
	if o.Grace <= 0 {
		o.Grace = 3 * time.Second
	}
	runCtx := ctx
	var cancel context.CancelFunc
	if o.Timeout > 0 {
		runCtx, cancel = context.WithTimeout(ctx, o.Timeout)
	} else {
		runCtx, cancel = context.WithCancel(ctx)
	}
	defer cancel()

	cmd := exec.Command(c.Path, c.Args...)
	cmd.Env = c.Env
	if cmd.Env == nil {
		cmd.Env = []string{}
	}
	cmd.Dir = c.Dir
	cmd.Stdin = bytes.NewReader(c.Stdin)
	setProcessGroup(cmd)

	lines := &eventWriter{onEvent: o.OnEvent, abort: cancel}
	tail := &tailWriter{max: stderrTailBytes, onLine: o.OnStderr}
	cmd.Stdout = lines
	cmd.Stderr = tail
	// Bound the pipe copies: a grandchild holding the pipes open must not
	// keep us waiting once the scraper itself is gone.
	cmd.WaitDelay = o.Grace + time.Second

	if err := cmd.Start(); err != nil {
		return Outcome{}, &Error{Code: CodeInternal, Message: "could not start the scraper: " + err.Error()}
	}
	done := make(chan struct{})
	go func() {
		select {
		case <-done:
		case <-runCtx.Done():
			signalGroup(cmd, false)
			select {
			case <-done:
			case <-time.After(o.Grace):
			}
			signalGroup(cmd, true)
		}
	}()
	waitErr := cmd.Wait()
	close(done)
	// Whatever the scraper left behind in its group (a browser) goes too.
	signalGroup(cmd, true)
	lines.flush()

	out := Outcome{Events: lines.count, ExitCode: cmd.ProcessState.ExitCode(), StderrTail: tail.String()}
	if lines.err != nil {
		return out, lines.err
	}
	if lines.terminal != nil {
		out.Terminal = *lines.terminal
		return out, nil
	}
	if ctx.Err() != nil {
		return out, &Error{Code: CodeInternal, Message: "provisioning was cancelled"}
	}
	if runCtx.Err() != nil {
		return out, &Error{Code: CodeTimeout, Message: fmt.Sprintf("the scraper did not finish within %s and was stopped", o.Timeout)}
	}
	msg := "the scraper ended without a result"
	var ee *exec.ExitError
	if errors.As(waitErr, &ee) {
		msg += fmt.Sprintf(" (exit status %d)", out.ExitCode)
	}
	return out, &Error{Code: CodeInternal, Message: msg}
}

// eventWriter splits stdout into lines and parses each as it arrives.
type eventWriter struct {
	mu       sync.Mutex
	buf      []byte
	onEvent  func(Event)
	abort    func()
	count    int
	terminal *Event
	err      error
}

func (w *eventWriter) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.err != nil {
		return len(p), nil // keep draining; the run is already failed
	}
	w.buf = append(w.buf, p...)
	for {
		i := bytes.IndexByte(w.buf, '\n')
		if i < 0 {
			if len(w.buf) > maxLine {
				w.fail(fmt.Errorf("%w: line longer than %d bytes", ErrMalformed, maxLine), w.buf[:64])
			}
			return len(p), nil
		}
		line := w.buf[:i]
		w.handle(line)
		w.buf = w.buf[i+1:]
		if w.err != nil {
			w.buf = nil
			return len(p), nil
		}
	}
}

func (w *eventWriter) flush() {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.err == nil && len(bytes.TrimSpace(w.buf)) > 0 {
		w.handle(w.buf)
	}
	w.buf = nil
}

func (w *eventWriter) handle(line []byte) {
	ev, ok, err := ParseEvent(line)
	if err != nil {
		w.fail(err, line)
		return
	}
	if !ok {
		return
	}
	w.count++
	if ev.Terminal() {
		if w.terminal != nil {
			w.fail(errors.New("a second terminal event"), nil)
			return
		}
		w.terminal = &ev
	}
	if w.onEvent != nil {
		w.onEvent(ev)
	}
}

// fail ends the run; the offending line is quoted only in part, and never
// when it parsed as an event (it may hold a key).
func (w *eventWriter) fail(err error, line []byte) {
	msg := "the scraper sent an unreadable event: " + err.Error()
	if len(line) > 0 && !bytes.Contains(line, []byte("api_key")) {
		q := string(line)
		if len(q) > 80 {
			q = q[:80] + "…"
		}
		msg += fmt.Sprintf(" (line %q)", q)
	}
	w.err = &Error{Code: CodeMalformedEvent, Message: msg}
	if w.abort != nil {
		w.abort()
	}
}

// tailWriter keeps the last max bytes and reports complete lines.
type tailWriter struct {
	mu      sync.Mutex
	max     int
	buf     []byte
	partial []byte
	onLine  func(string)
}

func (t *tailWriter) Write(p []byte) (int, error) {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.buf = append(t.buf, p...)
	if len(t.buf) > t.max {
		t.buf = append(t.buf[:0], t.buf[len(t.buf)-t.max:]...)
	}
	if t.onLine != nil {
		t.partial = append(t.partial, p...)
		for {
			i := bytes.IndexByte(t.partial, '\n')
			if i < 0 {
				break
			}
			t.onLine(strings.TrimRight(string(t.partial[:i]), "\r"))
			t.partial = t.partial[i+1:]
		}
		if len(t.partial) > 4096 {
			t.partial = t.partial[:0]
		}
	}
	return len(p), nil
}

func (t *tailWriter) String() string {
	t.mu.Lock()
	defer t.mu.Unlock()
	return string(t.buf)
}

var _ io.Writer = (*tailWriter)(nil)

// tailLines returns the last n lines of s.
func tailLines(s string, n int) string {
	lines := strings.Split(strings.TrimRight(s, "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}
