package testkit

import (
	"net"
	"sync"
	"testing"
)

// Listen listens on a loopback port and hands each connection it accepts
// to serve in its own goroutine; a nil serve holds the connection open and
// never answers, like a server that hangs. serve may pass further
// connections it opens (to a backend, say) to track. When t ends the
// listener is closed, then every accepted and tracked connection, and
// Listen waits for the serve calls to return.
func Listen(t testing.TB, serve func(c net.Conn, track func(net.Conn))) net.Listener {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	var (
		mu    sync.Mutex
		open  []net.Conn
		conns sync.WaitGroup
	)
	track := func(c net.Conn) {
		mu.Lock()
		open = append(open, c)
		mu.Unlock()
	}
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			track(c)
			if serve != nil {
				conns.Go(func() { serve(c, track) })
			}
		}
	}()
	t.Cleanup(func() {
		ln.Close()
		mu.Lock()
		for _, c := range open {
			c.Close()
		}
		mu.Unlock()
		conns.Wait()
	})
	return ln
}
