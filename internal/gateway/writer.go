package gateway

import (
	"errors"
	"io"
	"net/http"
	"sync"
	"time"

	"github.com/agentkeys/agentkeys/internal/mask"
)

// countWriter records the status and the bytes sent to the agent.
type countWriter struct {
	http.ResponseWriter
	status int
	n      int64
}

func (c *countWriter) WriteHeader(code int) {
	if c.status == 0 {
		c.status = code
	}
	c.ResponseWriter.WriteHeader(code)
}

func (c *countWriter) Write(p []byte) (int, error) {
	if c.status == 0 {
		c.status = http.StatusOK
	}
	n, err := c.ResponseWriter.Write(p)
	c.n += int64(n)
	return n, err
}

func (c *countWriter) Unwrap() http.ResponseWriter { return c.ResponseWriter }

// errResponseTooLarge aborts a response over MaxResponseBody.
var errResponseTooLarge = errors.New("gateway: response over the size limit")

// maskWriter masks the credential in the response body and flushes each
// masked piece to the agent at once. mask.Writer may write from its idle
// timer, so every write to the agent goes through mu.
type maskWriter struct {
	rw        http.ResponseWriter
	rc        *http.ResponseController
	mu        sync.Mutex
	m         *mask.Writer
	n         int64
	limit     int64
	lastFlush time.Time
}

// Streaming: a piece that ends a line is flushed at once unless the last
// flush was less than flushGap ago (a bulk transfer: masking and flushing
// every line would cost most of the throughput); whatever the mask holds
// back goes out after maskIdle without new data.
const (
	flushGap = 2 * time.Millisecond
	maskIdle = 5 * time.Millisecond
)

func newMaskWriter(rw http.ResponseWriter, secret []byte, limit int64) *maskWriter {
	w := &maskWriter{rw: rw, rc: http.NewResponseController(rw), limit: limit}
	w.m = mask.NewWriter(sinkFunc(w.sink), [][]byte{secret}, maskIdle)
	return w
}

type sinkFunc func([]byte) (int, error)

func (f sinkFunc) Write(p []byte) (int, error) { return f(p) }

func (w *maskWriter) sink(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	n, err := w.rw.Write(p)
	if err == nil {
		w.rc.Flush()
	}
	return n, err
}

func (w *maskWriter) Header() http.Header { return w.rw.Header() }

func (w *maskWriter) WriteHeader(code int) {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.rw.WriteHeader(code)
}

// Write masks p. A piece that ends a line is flushed at once (see
// flushGap); otherwise the mask keeps back a tail long enough to hold a
// split key, for at most maskIdle.
func (w *maskWriter) Write(p []byte) (int, error) {
	w.n += int64(len(p))
	if w.n > w.limit {
		return 0, errResponseTooLarge
	}
	n, err := w.m.Write(p)
	if err == nil && len(p) > 0 && p[len(p)-1] == '\n' {
		if now := time.Now(); now.Sub(w.lastFlush) >= flushGap {
			w.lastFlush = now
			err = w.m.Flush()
		}
	}
	return n, err
}

// Flush sends the headers (and nothing held back by the mask).
func (w *maskWriter) Flush() {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.rc.Flush()
}

// Close writes what the mask holds back and zeroes its copy of the key.
func (w *maskWriter) Close() error { return w.m.Close() }

// countReader counts the request body bytes the proxy reads.
type countReader struct {
	io.ReadCloser
	n *int64
}

func (c *countReader) Read(p []byte) (int, error) {
	n, err := c.ReadCloser.Read(p)
	*c.n += int64(n)
	return n, err
}
