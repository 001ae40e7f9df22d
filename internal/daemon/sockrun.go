package daemon

import (
	"bufio"
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"io"
	"net"
	"os"
	"os/exec"
	"slices"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/agentkeys/agentkeys/internal/ecscreds"
	"github.com/agentkeys/agentkeys/internal/mask"
	"github.com/agentkeys/agentkeys/internal/services"
)

// The socket's run method: the daemon starts a command with the
// credentials it holds and streams its masked output back on the same
// connection, so no stored value ever crosses the socket (this is what
// `agentkeys-daemon run` and `agentkeys run --socket` use, and it works in
// secret-free mode).
//
// Wire protocol, one JSON-RPC 2.0 message per line:
//
//	client → {"jsonrpc":"2.0","id":1,"method":"run","params":{"command":[…],"only":[…],"env":[…],"dir":"…","stdin":true,"gateway":false}}
//	daemon → {"jsonrpc":"2.0","method":"run.started","params":{"env_names":[…]}}
//	daemon → {"jsonrpc":"2.0","method":"run.output","params":{"stream":"stdout"|"stderr","data":"<base64>"}}   (masked)
//	client → {"jsonrpc":"2.0","method":"run.stdin","params":{"data":"<base64>"}}
//	client → {"jsonrpc":"2.0","method":"run.stdin_close"}
//	client → {"jsonrpc":"2.0","method":"run.signal","params":{"signal":"INT"}}
//	daemon → {"jsonrpc":"2.0","id":1,"result":{"exit_code":N,"signal":"…"}}   (last; the daemon then closes)
//
// A failure before the command starts is an ordinary error response. If
// the client goes away, the command's process group is killed.

// Socket run notifications.
const (
	methodRun        = "run"
	notifyStarted    = "run.started"
	notifyOutput     = "run.output"
	notifyStdin      = "run.stdin"
	notifyStdinClose = "run.stdin_close"
	notifySignal     = "run.signal"
)

// stdinChunk is the most stdin one run.stdin message carries.
const stdinChunk = 16 << 10

// Signals a client may forward to the command.
var runSignals = map[string]syscall.Signal{
	"INT": syscall.SIGINT, "TERM": syscall.SIGTERM, "HUP": syscall.SIGHUP, "QUIT": syscall.SIGQUIT,
	"USR1": syscall.SIGUSR1, "USR2": syscall.SIGUSR2, "KILL": syscall.SIGKILL,
}

// SocketRunParams are the run method's parameters.
type SocketRunParams struct {
	Command []string `json:"command"`
	// Only restricts the injected credentials to these services (default:
	// every service the agent holds within its scope, and AWS when its
	// scope includes aws and a broker is configured).
	Only []string `json:"only,omitempty"`
	// Env is the environment the command starts from (the caller's;
	// AGENTKEYS_* variables are dropped). Default: the daemon's.
	Env []string `json:"env,omitempty"`
	Dir string   `json:"dir,omitempty"`
	// Stdin: the client forwards its standard input (else the command
	// reads /dev/null).
	Stdin bool `json:"stdin,omitempty"`
	// Gateway: credentials the daemon's gateway covers are not injected;
	// the command gets <SERVICE>_BASE_URL variables pointing at it.
	Gateway bool `json:"gateway,omitempty"`
}

// SocketRunResult is the run method's final result.
type SocketRunResult struct {
	ExitCode int    `json:"exit_code"`
	Signal   string `json:"signal,omitempty"`
}

// GatewayFunc is the hook a credential gateway plugs into runs: for the
// services about to be injected it returns the variables pointing the
// command at the gateway and the services it covers (their secrets are
// then not put in the environment).
type GatewayFunc func(services []string) (env []string, covered []string, err error)

// runEnv is what a socket run injects.
type runEnv struct {
	set     []string // NAME=VALUE
	names   []string
	drop    []string // inherited variables that would shadow what is set
	secrets [][]byte // to mask (and clear)
}

func (e *runEnv) clear() {
	for _, v := range e.secrets {
		clear(v)
	}
}

// credentialEnv reads the credentials a run injects. Every read is a
// backend read (audited there); nothing is returned to the caller.
func (s *Service) credentialEnv(ctx context.Context, only []string, gateway bool) (*runEnv, error) {
	held, err := s.List(ctx)
	if err != nil {
		return nil, err
	}
	// The scope as of now (an approved scope request widens it while the
	// daemon runs); the session's at start if the backend cannot say.
	scope := s.o.Session.Scope
	if id, err := s.o.Backend.Validate(ctx, s.o.Session.Token); err == nil {
		scope = id.Scope
	}
	wantAWS := s.o.Broker != nil && scope != nil && scope.Allows(awsScopeService)
	inject := held
	if len(only) > 0 {
		inject, wantAWS = nil, false
		for _, svc := range only {
			switch {
			case svc == awsScopeService:
				if s.o.Broker == nil {
					return nil, errorf(CodeNoBroker, "--only %s: no broker configured for AWS credentials (start the daemon with --broker-url)", svc)
				}
				wantAWS = true
			case slices.Contains(held, svc):
				inject = append(inject, svc)
			default:
				return nil, errorf(CodeNotFound, "--only %s: the agent holds no credential for %q within its scope (it holds: %s)", svc, svc, strings.Join(held, ", "))
			}
		}
	}
	inject = slices.DeleteFunc(slices.Clone(inject), func(svc string) bool { return svc == awsScopeService && wantAWS })
	e := &runEnv{}
	if gateway {
		if s.o.Gateway == nil {
			return nil, errorf(CodeNoGateway, "this daemon serves no credential gateway: start it with --gateway")
		}
		genv, covered, err := s.o.Gateway(inject)
		if err != nil {
			return nil, err
		}
		e.set = append(e.set, genv...)
		inject = slices.DeleteFunc(inject, func(svc string) bool { return slices.Contains(covered, svc) })
	}
	for _, svc := range inject {
		v, err := s.Read(ctx, svc)
		if err != nil {
			e.clear()
			return nil, err
		}
		e.secrets = append(e.secrets, v)
		e.set = append(e.set, services.EnvNameFor(svc)+"="+string(v))
	}
	if wantAWS {
		e.drop = ecscreds.Shadowing
		if ep := s.AWSEndpointEnv(); ep != nil {
			e.set = append(e.set, ep...)
			_, tok, _ := strings.Cut(ep[1], "=")
			e.secrets = append(e.secrets, []byte(tok))
		} else {
			b, err := s.AWSCredentialsJSON(ctx)
			if err != nil {
				e.clear()
				return nil, err
			}
			var r AWSResult
			err = json.Unmarshal(b, &r)
			clear(b)
			if err != nil {
				e.clear()
				return nil, errorf(CodeInternal, "internal error")
			}
			e.set = append(e.set, "AWS_ACCESS_KEY_ID="+r.AccessKeyID, "AWS_SECRET_ACCESS_KEY="+r.SecretAccessKey, "AWS_SESSION_TOKEN="+r.SessionToken)
			e.secrets = append(e.secrets, []byte(r.SecretAccessKey), []byte(r.SessionToken))
		}
		if s.o.Region != "" {
			e.set = append(e.set, "AWS_REGION="+s.o.Region, "AWS_DEFAULT_REGION="+s.o.Region)
		}
	}
	for _, kv := range e.set {
		k, _, _ := strings.Cut(kv, "=")
		e.names = append(e.names, k)
	}
	return e, nil
}

// awsScopeService is the scope entry that makes a run get AWS credentials.
const awsScopeService = "aws"

// runConn writes the daemon's side of a socket run: notifications and the
// final response, one line each, serialised.
type runConn struct {
	mu  sync.Mutex
	c   net.Conn
	err error
}

func (w *runConn) send(line []byte) error {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.err != nil {
		return w.err
	}
	_, w.err = w.c.Write(line)
	return w.err
}

// streamWriter turns writes into run.output notifications.
type streamWriter struct {
	rc     *runConn
	stream string
}

func (s streamWriter) Write(p []byte) (int, error) {
	for off := 0; off < len(p); off += 48 << 10 {
		part := p[off:min(off+48<<10, len(p))]
		line := make([]byte, 0, 96+base64.StdEncoding.EncodedLen(len(part)))
		line = append(line, `{"jsonrpc":"2.0","method":"`+notifyOutput+`","params":{"stream":"`+s.stream+`","data":"`...)
		line = base64.StdEncoding.AppendEncode(line, part)
		line = append(line, "\"}}\n"...)
		if err := s.rc.send(line); err != nil {
			return off, err
		}
	}
	return len(p), nil
}

// serveRun handles a run request on c, whose further lines (stdin,
// signals) come from r. It returns when the command has ended and the
// result is written.
func (s *SocketServer) serveRun(c *net.UnixConn, r *bufio.Reader, req rpcRequest) {
	rc := &runConn{c: c}
	fail := func(err error) { rc.send(appendErrorResponse(nil, req.ID, rpcErrorFor(err))) }
	var p SocketRunParams
	if e := decodeParams(req.Params, &p); e != nil {
		rc.send(appendErrorResponse(nil, req.ID, e))
		return
	}
	if len(p.Command) == 0 || p.Command[0] == "" {
		fail(errorf(CodeInvalidParams, "command must be a non-empty argv array"))
		return
	}
	// The run lasts as long as the command: no idle or write deadline.
	c.SetDeadline(time.Time{})
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go func() {
		// The server is closing: end the command too.
		select {
		case <-s.done:
			cancel()
		case <-ctx.Done():
		}
	}()
	rctx, rcancel := context.WithTimeout(ctx, 60*time.Second)
	env, err := s.svc.credentialEnv(rctx, p.Only, p.Gateway)
	rcancel()
	if err != nil {
		fail(err)
		return
	}
	defer env.clear()
	base := p.Env
	if base == nil {
		base = os.Environ()
	}
	var forms []mask.Form
	for _, v := range env.secrets {
		forms = append(forms, mask.Forms(v)...)
	}
	defer clearForms(forms)
	cmd, err := s.svc.childCommand(ctx, p.Command, p.Dir, buildEnv(base, env.drop, env.set), forms)
	if err != nil {
		fail(err)
		return
	}
	stdout := mask.NewWriter(streamWriter{rc, "stdout"}, env.secrets, mask.DefaultIdle)
	stderr := mask.NewWriter(streamWriter{rc, "stderr"}, env.secrets, mask.DefaultIdle)
	cmd.Stdout, cmd.Stderr = stdout, stderr
	var stdin io.WriteCloser
	if p.Stdin {
		if stdin, err = cmd.StdinPipe(); err != nil {
			fail(errorf(CodeInternal, "internal error"))
			return
		}
	}
	if err := cmd.Start(); err != nil {
		_, _, serr := exitStatus(cmd, err, forms)
		if serr == nil {
			serr = errorf(CodeExecFailed, "could not start the command")
		}
		fail(serr)
		return
	}
	names, _ := json.Marshal(map[string]any{"env_names": env.names})
	rc.send(append(append([]byte(`{"jsonrpc":"2.0","method":"`+notifyStarted+`","params":`), names...), "}\n"...))
	s.log.Info("socket run started", "program", p.Command[0], "env", strings.Join(env.names, ","), "pid", cmd.Process.Pid)

	// Client lines: stdin, stdin close, signals. EOF or an error means
	// the client is gone: kill the command.
	go s.runInput(ctx, cancel, r, cmd, stdin)
	werr := cmd.Wait()
	stdout.Close()
	stderr.Close()
	code, sig, _ := exitStatus(cmd, werr, nil)
	if ctx.Err() != nil && sig == "" {
		sig = "KILL"
	}
	s.log.Info("socket run ended", "program", p.Command[0], "exit_code", code, "signal", sig)
	rc.send(appendResult(nil, req.ID, SocketRunResult{ExitCode: code, Signal: sig}))
}

// runInput reads the client's lines during a run: stdin goes to the
// command through a goroutine (so a command that does not read cannot
// hold up signals), signals go to the command.
func (s *SocketServer) runInput(ctx context.Context, gone context.CancelFunc, r *bufio.Reader, cmd *exec.Cmd, stdin io.WriteCloser) {
	var in chan []byte
	var closeIn sync.Once
	if stdin != nil {
		in = make(chan []byte, 16)
		go func(in <-chan []byte) {
			defer stdin.Close()
			broken := false
			for b := range in {
				if !broken {
					_, err := stdin.Write(b)
					broken = err != nil
				}
				clear(b)
			}
		}(in)
		ch := in
		defer closeIn.Do(func() { close(ch) })
	}
	for {
		line, err := readLine(r, MaxRequestLine)
		if err != nil {
			if ctx.Err() == nil {
				s.log.Info("socket run: the client went away; killing the command")
			}
			gone()
			return
		}
		in2, ok := parseRunInput(line)
		clear(line)
		switch {
		case !ok:
		case in2.stdin != nil:
			if in != nil {
				select {
				case in <- in2.stdin:
				case <-ctx.Done():
					return
				}
			}
		case in2.closeStdin:
			if in != nil {
				ch := in
				closeIn.Do(func() { close(ch) })
				in = nil
			}
		case in2.signal != 0:
			if cmd.Process != nil {
				cmd.Process.Signal(in2.signal)
			}
		}
	}
}

// runInputLine is what one client line during a run asks for: stdin data,
// the end of stdin, or a signal.
type runInputLine struct {
	stdin      []byte
	closeStdin bool
	signal     syscall.Signal
}

// parseRunInput reads one client line during a run; ok is false for a
// line that asks for nothing the daemon does (it is ignored).
func parseRunInput(line []byte) (runInputLine, bool) {
	req, perr := parseRequest(line)
	if perr != nil || req.ID != nil {
		return runInputLine{}, false
	}
	switch req.Method {
	case notifyStdin:
		var p struct {
			Data []byte `json:"data"`
		}
		if decodeParams(req.Params, &p) != nil || p.Data == nil {
			return runInputLine{}, false
		}
		return runInputLine{stdin: p.Data}, true
	case notifyStdinClose:
		return runInputLine{closeStdin: true}, true
	case notifySignal:
		var p struct {
			Signal string `json:"signal"`
		}
		if decodeParams(req.Params, &p) != nil {
			return runInputLine{}, false
		}
		sig, ok := runSignals[strings.TrimPrefix(strings.ToUpper(p.Signal), "SIG")]
		return runInputLine{signal: sig}, ok
	}
	return runInputLine{}, false
}

// ErrRunEnded is returned by the client when the daemon closed the
// connection before the command's result.
var ErrRunEnded = errors.New("the agentkeys daemon closed the connection before the command ended")
