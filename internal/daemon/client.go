package daemon

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"strconv"
	"sync"
	"time"
)

// SocketClient talks to a running daemon over its Unix socket. It is what
// `agentkeys read --socket` uses inside a sandbox. Safe for concurrent use
// (requests are serialised on one connection).
type SocketClient struct {
	mu   sync.Mutex
	conn net.Conn
	r    *bufio.Reader
	next int64
}

// RPCError is an error answered by the daemon. Code is one of the Code*
// constants (DENIED, NOT_FOUND, AUTH_FAILED, UNREACHABLE, INVALID_PARAMS…).
type RPCError struct {
	RPCCode int
	Code    string
	Message string
}

func (e *RPCError) Error() string {
	if e.Code != "" {
		return e.Code + ": " + e.Message
	}
	return e.Message
}

// rpcMessage is any line the daemon sends: a response (id with result or
// error) or a notification (method and params).
type rpcMessage struct {
	Method string          `json:"method"`
	Params json.RawMessage `json:"params"`
	ID     json.RawMessage `json:"id"`
	Result json.RawMessage `json:"result"`
	Error  *rpcWireError   `json:"error"`
}

type rpcWireError struct {
	Code    int    `json:"code"`
	Message string `json:"message"`
	Data    struct {
		Code string `json:"code"`
	} `json:"data"`
}

func (e *rpcWireError) err() *RPCError {
	return &RPCError{RPCCode: e.Code, Code: e.Data.Code, Message: e.Message}
}

// DialSocket connects to the daemon at path ("" = DefaultSocketPath()).
func DialSocket(ctx context.Context, path string) (*SocketClient, error) {
	if path == "" {
		path = DefaultSocketPath()
	}
	var d net.Dialer
	c, err := d.DialContext(ctx, "unix", path)
	if err != nil {
		return nil, fmt.Errorf("connect to the agentkeys daemon at %s: %w", path, errors.Unwrap(err))
	}
	return &SocketClient{conn: c, r: bufio.NewReader(c)}, nil
}

// Close closes the connection.
func (c *SocketClient) Close() error { return c.conn.Close() }

// Call sends one request and decodes its result into out (which may be
// nil).
func (c *SocketClient) Call(ctx context.Context, method string, params, out any) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.next++
	id := c.next
	req := map[string]any{"jsonrpc": "2.0", "id": id, "method": method}
	if params != nil {
		req["params"] = params
	}
	b, err := json.Marshal(req)
	if err != nil {
		return err
	}
	if dl, ok := ctx.Deadline(); ok {
		c.conn.SetDeadline(dl)
	} else {
		c.conn.SetDeadline(time.Now().Add(90 * time.Second))
	}
	stop := context.AfterFunc(ctx, func() { c.conn.SetDeadline(time.Now()) })
	defer stop()
	if _, err := c.conn.Write(append(b, '\n')); err != nil {
		return fmt.Errorf("send to the agentkeys daemon: %w", err)
	}
	line, err := readLine(c.r, 16<<20)
	if err != nil {
		if ctx.Err() != nil {
			return ctx.Err()
		}
		return fmt.Errorf("read from the agentkeys daemon: %w", err)
	}
	defer clear(line)
	var resp rpcMessage
	if err := json.Unmarshal(line, &resp); err != nil {
		return errors.New("malformed answer from the agentkeys daemon")
	}
	if string(resp.ID) != strconv.FormatInt(id, 10) {
		return errors.New("answer from the agentkeys daemon does not match the request")
	}
	if resp.Error != nil {
		return resp.Error.err()
	}
	if out != nil {
		if err := json.Unmarshal(resp.Result, out); err != nil {
			return errors.New("malformed result from the agentkeys daemon")
		}
	}
	return nil
}

// Read returns the credential for service.
func (c *SocketClient) Read(ctx context.Context, service string) ([]byte, error) {
	var out struct {
		Value string `json:"value"`
	}
	if err := c.Call(ctx, "read", map[string]string{"service": service}, &out); err != nil {
		return nil, err
	}
	return []byte(out.Value), nil
}

// List returns the services the agent may read.
func (c *SocketClient) List(ctx context.Context) ([]string, error) {
	var out struct {
		Services []string `json:"services"`
	}
	err := c.Call(ctx, "list", nil, &out)
	return out.Services, err
}

// Status returns the daemon's status.
func (c *SocketClient) Status(ctx context.Context) (Status, error) {
	var out Status
	err := c.Call(ctx, "status", nil, &out)
	return out, err
}

// AWSCredentials returns broker-minted AWS credentials.
func (c *SocketClient) AWSCredentials(ctx context.Context) (AWSResult, error) {
	var out AWSResult
	err := c.Call(ctx, "aws_credentials", nil, &out)
	return out, err
}

// OIDCToken returns a broker-minted web-identity token.
func (c *SocketClient) OIDCToken(ctx context.Context) (OIDCResult, error) {
	var out OIDCResult
	err := c.Call(ctx, "oidc_token", nil, &out)
	return out, err
}

// RequestScope asks the agent's master for more scope.
func (c *SocketClient) RequestScope(ctx context.Context, services []string) (ScopeRequest, error) {
	var out ScopeRequest
	err := c.Call(ctx, "request_scope", map[string]any{"services": services}, &out)
	return out, err
}

// ScopeRequestStatus returns a scope request's state, waiting up to wait
// (at most 50 s) for the decision.
func (c *SocketClient) ScopeRequestStatus(ctx context.Context, id string, wait time.Duration) (string, error) {
	var out struct {
		Status string `json:"status"`
	}
	err := c.Call(ctx, "scope_request_status", map[string]any{"request_id": id, "wait_seconds": int(wait / time.Second)}, &out)
	return out.Status, err
}
