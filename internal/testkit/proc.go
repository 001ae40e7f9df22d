package testkit

import (
	"bufio"
	"os/exec"
	"path/filepath"
	"regexp"
	"syscall"
	"testing"
	"time"
)

// Proc is a started command whose stderr a test reads line by line while
// it runs (WaitFor) and as a whole (Stderr).
type Proc struct {
	Cmd *exec.Cmd

	lines  chan string
	stderr SyncBuffer
	done   chan struct{}
	err    error // cmd.Wait's result, set before done is closed
}

// StartProc starts cmd, reading its stderr (cmd.Stderr must be unset).
// When t ends the process gets SIGTERM, and SIGKILL 10 s later.
func StartProc(t testing.TB, cmd *exec.Cmd) *Proc {
	t.Helper()
	stderr, err := cmd.StderrPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	p := &Proc{Cmd: cmd, lines: make(chan string, 1024), done: make(chan struct{})}
	go func() {
		sc := bufio.NewScanner(stderr)
		sc.Buffer(make([]byte, 64<<10), 1<<20)
		for sc.Scan() {
			line := sc.Text()
			p.stderr.Write([]byte(line + "\n"))
			select {
			case p.lines <- line:
			default: // nobody is reading: Stderr still has it
			}
		}
		p.err = cmd.Wait()
		close(p.lines)
		close(p.done)
	}()
	t.Cleanup(p.Stop)
	return p
}

// Lines delivers stderr lines not yet consumed; it is closed once the
// process has exited.
func (p *Proc) Lines() <-chan string { return p.lines }

// Done is closed once the process has exited.
func (p *Proc) Done() <-chan struct{} { return p.done }

// Err is cmd.Wait's result, once Done is closed.
func (p *Proc) Err() error { return p.err }

// Stderr returns all the process has written to stderr so far.
func (p *Proc) Stderr() string { return p.stderr.String() }

func (p *Proc) name() string { return filepath.Base(p.Cmd.Path) }

// WaitFor returns the submatches of the next stderr line matching re,
// failing t if the process exits first or timeout passes.
func (p *Proc) WaitFor(t testing.TB, re *regexp.Regexp, timeout time.Duration) []string {
	t.Helper()
	deadline := time.After(timeout)
	for {
		select {
		case line, ok := <-p.lines:
			if !ok {
				t.Fatalf("%s exited (%v) before a line matching %s; stderr:\n%s", p.name(), p.err, re, p.Stderr())
			}
			if m := re.FindStringSubmatch(line); m != nil {
				return m
			}
		case <-deadline:
			t.Fatalf("no stderr line of %s matching %s within %s; stderr:\n%s", p.name(), re, timeout, p.Stderr())
		}
	}
}

// Wait waits up to timeout for the process to exit and returns its exit
// code (-1 if a signal ended it).
func (p *Proc) Wait(t testing.TB, timeout time.Duration) int {
	t.Helper()
	select {
	case <-p.done:
	case <-time.After(timeout):
		t.Fatalf("%s did not exit within %s; stderr:\n%s", p.name(), timeout, p.Stderr())
	}
	if p.Cmd.ProcessState == nil {
		return -1
	}
	return p.Cmd.ProcessState.ExitCode()
}

// Stop sends SIGTERM, then SIGKILL if the process has not exited 10 s
// later, and waits for it.
func (p *Proc) Stop() {
	select {
	case <-p.done:
		return
	default:
	}
	p.Cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-p.done:
	case <-time.After(10 * time.Second):
		p.Cmd.Process.Kill()
		<-p.done
	}
}
