package jsonhttp

import (
	"context"
	"encoding/json"
	"errors"
	"net"
	"net/http"
	"net/url"
	"strconv"
	"time"
)

// NewTransport returns the transport the AgentKeys clients use for requests
// that carry a bearer: no proxy from the environment (a bearer must not
// wander through an ambient proxy), dial bounded by dialTimeout, TLS
// handshake by 5s, keep-alives, HTTP/2 when the server offers it, and at
// most maxIdle idle connections per host.
func NewTransport(dialTimeout time.Duration, maxIdle int) *http.Transport {
	return &http.Transport{
		Proxy:               nil,
		DialContext:         (&net.Dialer{Timeout: dialTimeout, KeepAlive: 30 * time.Second}).DialContext,
		MaxIdleConns:        maxIdle,
		MaxIdleConnsPerHost: maxIdle,
		IdleConnTimeout:     90 * time.Second,
		TLSHandshakeTimeout: 5 * time.Second,
		ForceAttemptHTTP2:   true,
	}
}

// TransportError is a client's failure to reach an AgentKeys server or to
// read its answer. Server names which one ("backend", "broker"); a
// backendclient call made on behalf of a broker call (a derived token)
// keeps its own TransportError in the chain, so errors.As finds the one
// closest to the caller.
type TransportError struct {
	Op     string
	Server string // "backend" or "broker"
	URL    string // the server's base URL ("" if unknown)
	Err    error
}

func (e *TransportError) Error() string {
	who := e.Server
	if e.URL != "" {
		who += " " + e.URL
	}
	return e.Op + ": " + who + " unreachable: " + e.Err.Error()
}
func (e *TransportError) Unwrap() error { return e.Err }

// ErrNoAnswerInTime is the cause TransportCause gives a request that timed
// out.
var ErrNoAnswerInTime = errors.New("did not answer in time")

// TransportCause is what a client reports of an error of http.Client.Do or
// of reading a body: *url.Error's URL is dropped (its query can carry
// identifiers), and a timeout, of the client, the connection or the
// context, becomes ErrNoAnswerInTime.
func TransportCause(err error) error {
	var ue *url.Error
	if errors.As(err, &ue) {
		if ue.Timeout() {
			return ErrNoAnswerInTime
		}
		err = ue.Err
	}
	var ne net.Error
	if errors.Is(err, context.DeadlineExceeded) || errors.As(err, &ne) && ne.Timeout() {
		return ErrNoAnswerInTime
	}
	return err
}

// ParseError reads the error envelope of an answer with status: its kind
// and message. An answer that is not an envelope (a proxy's HTML page, a
// server that is not an AgentKeys one) gives kind "HTTP_<status>" and the
// status text as message.
func ParseError(status int, body []byte) (kind, message string) {
	var env Error
	if json.Unmarshal(body, &env) != nil || env.Kind == "" {
		return "HTTP_" + strconv.Itoa(status), http.StatusText(status)
	}
	return env.Kind, env.Message
}
