package daemon

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"sync"
	"syscall"
)

// SocketRunOptions say what RunOverSocket asks the daemon to run and where
// the command's streams go.
type SocketRunOptions struct {
	Socket string // "" = DefaultSocketPath()
	Params SocketRunParams
	// Stdin, when set, is forwarded to the command (Params.Stdin is set
	// accordingly); otherwise the command reads /dev/null.
	Stdin          io.Reader
	Stdout, Stderr io.Writer
	// Signals received here are forwarded to the command.
	Signals <-chan os.Signal
	// Started, if set, is called with the names of the variables the
	// daemon injected once the command runs.
	Started func(envNames []string)
}

// ChildExit is the exit status of a command a daemon ran: 128+N when it
// died of signal N. agentkeys-daemon run exits with it.
type ChildExit struct {
	Code   int
	Signal string
}

func (e *ChildExit) Error() string {
	if e.Signal != "" {
		return fmt.Sprintf("command killed by signal %s", e.Signal)
	}
	return fmt.Sprintf("command exited with status %d", e.Code)
}

// ExitCode is the status the caller should exit with.
func (e *ChildExit) ExitCode() int { return e.Code }

// RunOverSocket asks the daemon to run a command with the credentials it
// holds (the socket's run method) and streams the command's masked output
// to o.Stdout and o.Stderr until it ends. It returns the command's result;
// a failure before the command started is an *RPCError.
func RunOverSocket(ctx context.Context, o SocketRunOptions) (SocketRunResult, error) {
	c, err := DialSocket(ctx, o.Socket)
	if err != nil {
		return SocketRunResult{}, err
	}
	defer c.Close()
	stop := context.AfterFunc(ctx, func() { c.conn.Close() })
	defer stop()
	var wmu sync.Mutex
	send := func(v any) error {
		b, err := json.Marshal(v)
		if err != nil {
			return err
		}
		wmu.Lock()
		defer wmu.Unlock()
		_, err = c.conn.Write(append(b, '\n'))
		return err
	}
	o.Params.Stdin = o.Stdin != nil
	if err := send(map[string]any{"jsonrpc": "2.0", "id": 1, "method": methodRun, "params": o.Params}); err != nil {
		return SocketRunResult{}, fmt.Errorf("send to the agentkeys daemon: %w", err)
	}
	done := make(chan struct{})
	defer close(done)
	if o.Stdin != nil {
		go func() {
			buf := make([]byte, stdinChunk)
			for {
				n, err := o.Stdin.Read(buf)
				if n > 0 {
					if send(map[string]any{"jsonrpc": "2.0", "method": notifyStdin, "params": map[string][]byte{"data": buf[:n]}}) != nil {
						return
					}
				}
				if err != nil {
					send(map[string]any{"jsonrpc": "2.0", "method": notifyStdinClose})
					return
				}
			}
		}()
	}
	if o.Signals != nil {
		go func() {
			for {
				select {
				case sig := <-o.Signals:
					if name := signalName(sig); name != "" {
						send(map[string]any{"jsonrpc": "2.0", "method": notifySignal, "params": map[string]string{"signal": name}})
					}
				case <-done:
					return
				}
			}
		}()
	}
	for {
		line, err := readLine(c.r, 1<<20)
		if err != nil {
			if ctx.Err() != nil {
				return SocketRunResult{}, ctx.Err()
			}
			return SocketRunResult{}, ErrRunEnded
		}
		var msg rpcMessage
		if err := json.Unmarshal(line, &msg); err != nil {
			return SocketRunResult{}, errors.New("malformed message from the agentkeys daemon")
		}
		switch {
		case msg.Method == notifyOutput:
			var p struct {
				Stream string `json:"stream"`
				Data   []byte `json:"data"`
			}
			if json.Unmarshal(msg.Params, &p) != nil {
				return SocketRunResult{}, errors.New("malformed output from the agentkeys daemon")
			}
			w := o.Stdout
			if p.Stream == "stderr" {
				w = o.Stderr
			}
			if w != nil {
				w.Write(p.Data)
			}
		case msg.Method == notifyStarted:
			var p struct {
				EnvNames []string `json:"env_names"`
			}
			json.Unmarshal(msg.Params, &p)
			if o.Started != nil {
				o.Started(p.EnvNames)
			}
		case msg.Error != nil:
			return SocketRunResult{}, msg.Error.err()
		case msg.Result != nil:
			var r SocketRunResult
			if err := json.Unmarshal(msg.Result, &r); err != nil {
				return SocketRunResult{}, errors.New("malformed result from the agentkeys daemon")
			}
			return r, nil
		}
	}
}

func signalName(sig os.Signal) string {
	s, ok := sig.(syscall.Signal)
	if !ok {
		return ""
	}
	for name, v := range runSignals {
		if v == s {
			return name
		}
	}
	return ""
}
