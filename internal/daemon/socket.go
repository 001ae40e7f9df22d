package daemon

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"sync"
	"syscall"
	"time"
)

// EnvSocket overrides the default socket path.
const EnvSocket = "AGENTKEYS_SOCKET"

// DefaultSocketPath is $AGENTKEYS_SOCKET, else
// $XDG_RUNTIME_DIR/agentkeys/agentkeys.sock, else
// $TMPDIR/agentkeys-<uid>/agentkeys.sock.
func DefaultSocketPath() string {
	if p := os.Getenv(EnvSocket); p != "" {
		return p
	}
	if d := os.Getenv("XDG_RUNTIME_DIR"); d != "" && filepath.IsAbs(d) {
		return filepath.Join(d, "agentkeys", "agentkeys.sock")
	}
	return filepath.Join(os.TempDir(), fmt.Sprintf("agentkeys-%d", os.Getuid()), "agentkeys.sock")
}

// idleConnTimeout closes socket connections that send nothing for this long.
const idleConnTimeout = 10 * time.Minute

// SocketServer serves the JSON-RPC API on a Unix socket.
type SocketServer struct {
	svc  *Service
	log  *slog.Logger
	ln   *net.UnixListener
	path string
	wg   sync.WaitGroup
	mu   sync.Mutex
	conn map[net.Conn]struct{}
	done chan struct{}
}

// ListenSocket creates the socket's directory (0700; an existing one must
// be ours and is tightened to 0700), removes a stale socket left by a dead
// daemon, and listens with mode 0600.
func ListenSocket(path string, svc *Service, log *slog.Logger) (*SocketServer, error) {
	ln, err := BindSocket(path)
	if err != nil {
		return nil, err
	}
	return NewSocketServer(ln, path, svc, log), nil
}

// NewSocketServer serves svc on ln, a listener from BindSocket.
func NewSocketServer(ln *net.UnixListener, path string, svc *Service, log *slog.Logger) *SocketServer {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	return &SocketServer{svc: svc, log: log, ln: ln, path: path, conn: map[net.Conn]struct{}{}, done: make(chan struct{})}
}

// BindSocket does ListenSocket's checks and binds path, without serving
// yet: the daemon binds before it pairs, so that an unusable path fails
// before a pair code is shown.
func BindSocket(path string) (*net.UnixListener, error) {
	dir := filepath.Dir(path)
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("create socket directory: %w", err)
	}
	fi, err := os.Stat(dir)
	if err != nil {
		return nil, fmt.Errorf("socket directory: %w", err)
	}
	if err := checkOwned(fi, dir); err != nil {
		return nil, err
	}
	if fi.Mode().Perm()&0o077 != 0 {
		if err := os.Chmod(dir, 0o700); err != nil {
			return nil, fmt.Errorf("socket directory %s has mode %04o and cannot be tightened: %w", dir, fi.Mode().Perm(), err)
		}
	}
	if fi, err := os.Lstat(path); err == nil {
		if fi.Mode().Type() != fs.ModeSocket {
			return nil, fmt.Errorf("%s exists and is not a socket; refusing to replace it", path)
		}
		if c, err := net.DialTimeout("unix", path, time.Second); err == nil {
			c.Close()
			return nil, fmt.Errorf("another daemon is serving %s; stop it or pass --socket", path)
		}
		if err := os.Remove(path); err != nil {
			return nil, fmt.Errorf("remove stale socket: %w", err)
		}
	}
	ln, err := net.ListenUnix("unix", &net.UnixAddr{Name: path, Net: "unix"})
	if err != nil {
		return nil, fmt.Errorf("listen on %s: %w", path, err)
	}
	ln.SetUnlinkOnClose(true)
	if err := os.Chmod(path, 0o600); err != nil {
		ln.Close()
		return nil, fmt.Errorf("chmod socket: %w", err)
	}
	return ln, nil
}

// Path is the socket path.
func (s *SocketServer) Path() string { return s.path }

// Serve accepts connections until Close.
func (s *SocketServer) Serve() error {
	for {
		c, err := s.ln.AcceptUnix()
		if err != nil {
			select {
			case <-s.done:
				return nil
			default:
			}
			var ne net.Error
			if errors.As(err, &ne) && ne.Timeout() {
				continue
			}
			if errors.Is(err, syscall.EMFILE) || errors.Is(err, syscall.ENFILE) {
				time.Sleep(50 * time.Millisecond)
				continue
			}
			return err
		}
		if err := checkPeer(c); err != nil {
			s.log.Warn("refused a socket connection", "reason", err.Error())
			c.Close()
			continue
		}
		s.mu.Lock()
		s.conn[c] = struct{}{}
		s.mu.Unlock()
		s.wg.Add(1)
		go func() {
			defer s.wg.Done()
			s.handle(c)
			s.mu.Lock()
			delete(s.conn, c)
			s.mu.Unlock()
		}()
	}
}

// Close stops accepting, closes open connections after their current
// request and removes the socket.
func (s *SocketServer) Close() error {
	select {
	case <-s.done:
		return nil
	default:
	}
	close(s.done)
	err := s.ln.Close()
	s.mu.Lock()
	for c := range s.conn {
		// Wake readers blocked on an idle connection; a request being
		// handled finishes and its answer is written first.
		c.SetReadDeadline(time.Now())
	}
	s.mu.Unlock()
	s.wg.Wait()
	return err
}

// readLine reads one '\n'-terminated line of at most max bytes.
func readLine(r *bufio.Reader, max int) ([]byte, error) {
	var line []byte
	for {
		frag, err := r.ReadSlice('\n')
		if len(line)+len(frag) > max+1 {
			return nil, errLineTooLong
		}
		line = append(line, frag...)
		if err == nil {
			return line, nil
		}
		if !errors.Is(err, bufio.ErrBufferFull) {
			if len(line) > 0 && errors.Is(err, io.EOF) {
				return line, nil
			}
			return nil, err
		}
	}
}

func (s *SocketServer) handle(c *net.UnixConn) {
	defer c.Close()
	r := bufio.NewReaderSize(c, 4096)
	var out []byte
	for {
		select {
		case <-s.done:
			return
		default:
		}
		c.SetReadDeadline(time.Now().Add(idleConnTimeout))
		line, err := readLine(r, MaxRequestLine)
		if errors.Is(err, errLineTooLong) {
			out = appendErrorResponse(out[:0], nil, &rpcError{Code: rpcInvalidRequest, Message: "request line too long", Data: CodeInvalidParams})
			c.Write(out)
			return
		}
		if err != nil {
			return
		}
		if len(bytesTrim(line)) == 0 {
			continue
		}
		if bytes.Contains(line, []byte(`"`+methodRun+`"`)) {
			if req, perr := parseRequest(line); perr == nil && req.Method == methodRun && req.ID != nil {
				// A run takes over the connection until the command ends.
				s.serveRun(c, r, req)
				return
			}
		}
		out = s.dispatch(out[:0], line)
		if len(out) > 0 {
			c.SetWriteDeadline(time.Now().Add(30 * time.Second))
			_, werr := c.Write(out)
			clear(out) // responses may hold a credential
			if werr != nil {
				return
			}
		}
		clear(line)
	}
}

func bytesTrim(b []byte) []byte {
	for len(b) > 0 && (b[0] == ' ' || b[0] == '\t' || b[0] == '\r' || b[0] == '\n') {
		b = b[1:]
	}
	for len(b) > 0 && (b[len(b)-1] == ' ' || b[len(b)-1] == '\t' || b[len(b)-1] == '\r' || b[len(b)-1] == '\n') {
		b = b[:len(b)-1]
	}
	return b
}

// dispatch answers one request line; it appends nothing for a
// notification.
func (s *SocketServer) dispatch(out, line []byte) []byte {
	req, perr := parseRequest(line)
	if perr != nil {
		return appendErrorResponse(out, req.ID, perr)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	start := time.Now()
	out, code := s.call(ctx, out, req)
	s.log.Debug("socket request", "method", req.Method, "result", code, "ms", time.Since(start).Milliseconds())
	if req.ID == nil {
		clear(out)
		return out[:0]
	}
	return out
}

func (s *SocketServer) call(ctx context.Context, out []byte, req rpcRequest) ([]byte, string) {
	fail := func(e *rpcError) ([]byte, string) { return appendErrorResponse(out, req.ID, e), e.Data }
	// raw answers with a result the service already encoded, then wipes it.
	raw := func(b []byte, err error) ([]byte, string) {
		if err != nil {
			return fail(rpcErrorFor(err))
		}
		out = append(appendResponseHead(out, req.ID), b...)
		clear(b)
		return append(out, "}\n"...), "ok"
	}
	switch req.Method {
	case "list", "status", "aws_credentials", "oidc_token": // no parameters
		if e := decodeParams(req.Params, &struct{}{}); e != nil {
			return fail(e)
		}
	}
	switch req.Method {
	case "read":
		var p struct {
			Service *string `json:"service"`
		}
		if e := decodeParams(req.Params, &p); e != nil {
			return fail(e)
		}
		if p.Service == nil {
			return fail(&rpcError{Code: rpcInvalidParams, Message: "params.service is required", Data: CodeInvalidParams})
		}
		val, err := s.svc.ReadValue(ctx, *p.Service)
		if err != nil {
			return fail(rpcErrorFor(err))
		}
		out = appendResponseHead(out, req.ID)
		out = append(out, `{"service":`...)
		out = appendJSONString(out, []byte(*p.Service))
		out = append(out, `,"value":`...)
		out = appendJSONString(out, val)
		clear(val)
		return append(out, "}}\n"...), "ok"
	case "list":
		list, err := s.svc.List(ctx)
		if err != nil {
			return fail(rpcErrorFor(err))
		}
		return appendResult(out, req.ID, map[string]any{"services": list}), "ok"
	case "status":
		return appendResult(out, req.ID, s.svc.Status()), "ok"
	case "aws_credentials":
		return raw(s.svc.AWSCredentialsJSON(ctx))
	case "oidc_token":
		b, _, err := s.svc.OIDCTokenJSON(ctx)
		return raw(b, err)
	case "request_scope":
		var p struct {
			Services []string `json:"services"`
		}
		if e := decodeParams(req.Params, &p); e != nil {
			return fail(e)
		}
		r, err := s.svc.RequestScope(ctx, p.Services)
		if err != nil {
			return fail(rpcErrorFor(err))
		}
		return appendResult(out, req.ID, r), "ok"
	case "scope_request_status":
		var p struct {
			RequestID   string `json:"request_id"`
			WaitSeconds int    `json:"wait_seconds"`
		}
		if e := decodeParams(req.Params, &p); e != nil {
			return fail(e)
		}
		if p.WaitSeconds < 0 || p.WaitSeconds > 50 {
			return fail(&rpcError{Code: rpcInvalidParams, Message: "wait_seconds must be 0 to 50", Data: CodeInvalidParams})
		}
		st, err := s.svc.ScopeRequestStatus(ctx, p.RequestID, time.Duration(p.WaitSeconds)*time.Second)
		if err != nil {
			return fail(rpcErrorFor(err))
		}
		return appendResult(out, req.ID, map[string]string{"request_id": p.RequestID, "status": st}), "ok"
	case "ping":
		return appendResult(out, req.ID, map[string]any{}), "ok"
	}
	return fail(&rpcError{Code: rpcMethodNotFound, Message: "method not found (want read, list, status, aws_credentials, oidc_token, run, request_scope, scope_request_status or ping)", Data: CodeMethodNotFound})
}

func appendResult(out []byte, id json.RawMessage, v any) []byte {
	b, err := json.Marshal(v)
	if err != nil {
		return appendErrorResponse(out, id, &rpcError{Code: rpcInternal, Message: "internal error", Data: CodeInternal})
	}
	out = append(appendResponseHead(out, id), b...)
	return append(out, "}\n"...)
}
