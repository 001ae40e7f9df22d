package daemon

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"slices"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/agentkeys/agentkeys/internal/mask"
	"github.com/agentkeys/agentkeys/internal/secretref"
	"github.com/agentkeys/agentkeys/internal/services"
)

// Limits of run_with_credential.
const (
	DefaultRunTimeout = 60 * time.Second
	MaxRunTimeout     = 10 * time.Minute
	MaxRunOutput      = 1 << 20 // per stream
)

// RunRequest is one run_with_credential call.
type RunRequest struct {
	Service string
	Command []string
	EnvName string // default <SERVICE>_API_KEY
	Timeout time.Duration
	Dir     string
}

// RunResult is the masked outcome of a command.
type RunResult struct {
	ExitCode  int    `json:"exit_code"`
	Signal    string `json:"signal,omitempty"`
	Stdout    string `json:"stdout"`
	Stderr    string `json:"stderr"`
	TimedOut  bool   `json:"timed_out"`
	Truncated bool   `json:"truncated"`
	EnvName   string `json:"env_name"`
}

// validEnvName: a portable variable name of at most 128 bytes.
func validEnvName(n string) bool { return len(n) <= 128 && secretref.ValidEnvName(n) }

// childEnv is the daemon's environment without the daemon's own secrets
// (AGENTKEYS_*) and without any variable the credential goes into.
func childEnv(name string, secret []byte) []string {
	return buildEnv(os.Environ(), nil, []string{name + "=" + string(secret)})
}

// buildEnv is base without AGENTKEYS_* variables, without the names in
// drop and without the names set, followed by set (NAME=VALUE entries).
func buildEnv(base, drop, set []string) []string {
	return secretref.ReplaceEnv(base, func(name string) bool {
		return strings.HasPrefix(name, "AGENTKEYS_") || slices.Contains(drop, name)
	}, set)
}

// capWriter keeps the first max bytes and counts the rest.
type capWriter struct {
	mu        sync.Mutex
	buf       bytes.Buffer
	max       int
	truncated bool
}

func (w *capWriter) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if room := w.max - w.buf.Len(); room > 0 {
		if len(p) > room {
			w.buf.Write(p[:room])
			w.truncated = true
		} else {
			w.buf.Write(p)
		}
	} else if len(p) > 0 {
		w.truncated = true
	}
	return len(p), nil
}

// RunWithCredential reads the credential, runs the command with it in the
// environment (never in argv), and returns its output with every form of
// the secret masked.
func (s *Service) RunWithCredential(ctx context.Context, rr RunRequest) (RunResult, error) {
	if len(rr.Command) == 0 || rr.Command[0] == "" {
		return RunResult{}, errorf(CodeInvalidParams, "command must be a non-empty argv array")
	}
	if rr.EnvName == "" {
		rr.EnvName = services.EnvNameFor(rr.Service)
	}
	if !validEnvName(rr.EnvName) {
		return RunResult{}, errorf(CodeInvalidParams, "env_name must be a shell variable name ([A-Za-z_][A-Za-z0-9_]*)")
	}
	if rr.Timeout <= 0 {
		rr.Timeout = DefaultRunTimeout
	}
	if rr.Timeout > MaxRunTimeout {
		return RunResult{}, errorf(CodeInvalidParams, "timeout_seconds must be at most %d", int(MaxRunTimeout/time.Second))
	}
	secret, err := s.Read(ctx, rr.Service)
	if err != nil {
		return RunResult{}, err
	}
	defer clear(secret)
	forms := secretForms(secret)
	defer clearForms(forms)

	ctx, cancel := context.WithTimeout(ctx, rr.Timeout)
	defer cancel()
	cmd, err := s.childCommand(ctx, rr.Command, rr.Dir, childEnv(rr.EnvName, secret), forms)
	if err != nil {
		return RunResult{}, err
	}
	stdout := &capWriter{max: MaxRunOutput}
	stderr := &capWriter{max: MaxRunOutput}
	cmd.Stdout, cmd.Stderr = stdout, stderr
	runErr := cmd.Run()

	res := RunResult{EnvName: rr.EnvName, TimedOut: errors.Is(ctx.Err(), context.DeadlineExceeded)}
	res.ExitCode, res.Signal, err = exitStatus(cmd, runErr, forms)
	if err != nil {
		return RunResult{}, err
	}
	res.Truncated = stdout.truncated || stderr.truncated
	so := maskSecret(stdout.buf.Bytes(), forms, stdout.truncated)
	se := maskSecret(stderr.buf.Bytes(), forms, stderr.truncated)
	res.Stdout, res.Stderr = string(so), string(se)
	clear(so)
	clear(se)
	stdout.buf.Reset()
	stderr.buf.Reset()
	s.log.Info("ran a command with a credential", "service", rr.Service, "program", rr.Command[0], "exit_code", res.ExitCode, "timed_out", res.TimedOut)
	return res, nil
}

// childCommand returns the command for argv with env, in dir, confined as
// the daemon's options say (another uid, Landlock), in its own process
// group that the context's end kills whole. forms mask the secrets out of
// an error naming the program.
func (s *Service) childCommand(ctx context.Context, argv []string, dir string, env []string, forms []mask.Form) (*exec.Cmd, error) {
	cmd := exec.CommandContext(ctx, argv[0], argv[1:]...)
	cmd.Env = env
	cmd.Dir = dir
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if cmd.Err == nil && s.o.Child.Helper != "" {
		// The helper would start and then fail to exec: report a missing
		// program as the unconfined path does.
		if err := checkProgram(cmd.Path, dir); err != nil {
			msg := maskSecret([]byte(argv[0]), forms, false)
			return nil, errorf(CodeExecFailed, "could not start the command: %s: %s", msg, err)
		}
	}
	if cmd.Err == nil {
		s.o.Child.confineCmd(cmd, cmd.SysProcAttr)
	}
	cmd.Cancel = func() error {
		// Kill the whole process group: a shell's children too.
		if cmd.Process != nil {
			_ = syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
		}
		return nil
	}
	cmd.WaitDelay = 2 * time.Second
	return cmd, nil
}

// exitStatus turns the end of cmd into an exit code (128+N for signal N)
// and the signal's name; err when the command never started.
func exitStatus(cmd *exec.Cmd, runErr error, forms []mask.Form) (code int, signal string, err error) {
	var ee *exec.ExitError
	switch {
	case runErr == nil:
	case errors.As(runErr, &ee):
		code = ee.ExitCode()
		if ws, ok := ee.Sys().(syscall.WaitStatus); ok && ws.Signaled() {
			signal = ws.Signal().String()
			code = 128 + int(ws.Signal())
		}
	case errors.Is(runErr, exec.ErrWaitDelay), errors.Is(runErr, io.ErrClosedPipe):
		if cmd.ProcessState != nil {
			code = cmd.ProcessState.ExitCode()
		}
	default:
		if cmd.ProcessState == nil {
			// Never started: the message names the program, not the secret.
			msg := maskSecret([]byte(runErr.Error()), forms, false)
			return 0, "", errorf(CodeExecFailed, "could not start the command: %s", msg)
		}
		code = cmd.ProcessState.ExitCode()
	}
	return code, signal, nil
}

// String summarises a result for a text content block.
func (r RunResult) String() string {
	var b strings.Builder
	fmt.Fprintf(&b, "exit code: %d", r.ExitCode)
	if r.Signal != "" {
		fmt.Fprintf(&b, " (signal %s)", r.Signal)
	}
	if r.TimedOut {
		b.WriteString(" (timed out)")
	}
	if r.Truncated {
		b.WriteString(" (output truncated)")
	}
	fmt.Fprintf(&b, "\n--- stdout ---\n%s\n--- stderr ---\n%s", r.Stdout, r.Stderr)
	return b.String()
}
