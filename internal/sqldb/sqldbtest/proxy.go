package sqldbtest

import (
	"io"
	"net"
	"net/url"
	"sync"
	"testing"

	"github.com/agentkeys/agentkeys/internal/testkit"
)

// Proxy is a TCP proxy to a PostgreSQL server that can be frozen: while
// frozen it forwards nothing in either direction and connects nothing new,
// but keeps every connection open — what a client sees of a server that
// was stopped with SIGSTOP or cut off by a network partition. Freezing the
// shared test server itself would stall every other test.
type Proxy struct {
	target string

	mu     sync.Mutex
	frozen bool
	thawed chan struct{} // closed while not frozen
}

// NewProxy listens on loopback and forwards to the host:port of dsn; it is
// closed when t ends. DSN returns dsn rewritten to go through it.
func NewProxy(t testing.TB, dsn string) (*Proxy, string) {
	t.Helper()
	u, err := url.Parse(dsn)
	if err != nil {
		t.Fatalf("proxy: parse DSN: %v", err)
	}
	p := &Proxy{target: u.Host, thawed: make(chan struct{})}
	close(p.thawed)
	ln := testkit.Listen(t, p.serve)
	// Cleanups run last-registered first: thaw before the listener's
	// cleanup closes the connections and waits for serve.
	t.Cleanup(p.Thaw)
	u.Host = ln.Addr().String()
	return p, u.String()
}

// Freeze stops all traffic until Thaw.
func (p *Proxy) Freeze() {
	p.mu.Lock()
	defer p.mu.Unlock()
	if !p.frozen {
		p.frozen = true
		p.thawed = make(chan struct{})
	}
}

// Thaw lets traffic flow again.
func (p *Proxy) Thaw() {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.frozen {
		p.frozen = false
		close(p.thawed)
	}
}

func (p *Proxy) gate() {
	p.mu.Lock()
	ch := p.thawed
	p.mu.Unlock()
	<-ch
}

func (p *Proxy) serve(c net.Conn, track func(net.Conn)) {
	defer c.Close()
	p.gate()
	s, err := net.Dial("tcp", p.target)
	if err != nil {
		return
	}
	track(s)
	defer s.Close()
	done := make(chan struct{}, 2)
	pipe := func(dst, src net.Conn) {
		defer func() { done <- struct{}{} }()
		buf := make([]byte, 32<<10)
		for {
			n, err := src.Read(buf)
			if n > 0 {
				p.gate()
				if _, werr := dst.Write(buf[:n]); werr != nil {
					return
				}
			}
			if err != nil {
				if err != io.EOF {
					return
				}
				return
			}
		}
	}
	go pipe(s, c)
	go pipe(c, s)
	<-done
}
