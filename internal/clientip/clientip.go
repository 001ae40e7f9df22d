// Package clientip decides which address a request came from. Without
// trusted proxies it is the connecting peer. Behind a reverse proxy every
// request comes from the proxy, so an operator lists the proxies' networks
// and the address is then taken from the forwarding headers those peers set
// (X-Forwarded-For, or RFC 7239 Forwarded when X-Forwarded-For is absent):
// the rightmost address not in the trusted set. Headers from any other peer
// are ignored, so a client cannot choose its own address.
package clientip

import (
	"context"
	"fmt"
	"net"
	"net/http"
	"net/netip"
	"strings"
)

// Trusted is a set of proxy networks. The zero value (or nil) trusts none.
type Trusted struct {
	nets []netip.Prefix
}

// Parse reads a comma-separated list of CIDRs or single addresses
// ("127.0.0.1/32,10.0.0.0/8,::1"). Empty means no trusted proxies.
func Parse(list string) (*Trusted, error) {
	t := &Trusted{}
	for _, f := range strings.Split(list, ",") {
		f = strings.TrimSpace(f)
		if f == "" {
			continue
		}
		var p netip.Prefix
		var err error
		if strings.Contains(f, "/") {
			p, err = netip.ParsePrefix(f)
		} else {
			var a netip.Addr
			if a, err = netip.ParseAddr(f); err == nil {
				if a.Zone() != "" {
					err = fmt.Errorf("zoned address")
				}
				p = netip.PrefixFrom(a, a.BitLen())
			}
		}
		if err != nil || !p.IsValid() {
			return nil, fmt.Errorf("trusted proxies: %q is not a CIDR like 127.0.0.1/32 or 10.0.0.0/8", f)
		}
		t.nets = append(t.nets, p.Masked())
	}
	return t, nil
}

// String lists the networks, comma-separated.
func (t *Trusted) String() string {
	if t == nil {
		return ""
	}
	s := make([]string, len(t.nets))
	for i, p := range t.nets {
		s[i] = p.String()
	}
	return strings.Join(s, ",")
}

// Empty reports whether no proxy is trusted.
func (t *Trusted) Empty() bool { return t == nil || len(t.nets) == 0 }

// Contains reports whether a is in a trusted network.
func (t *Trusted) Contains(a netip.Addr) bool {
	if t == nil || !a.IsValid() {
		return false
	}
	a = a.Unmap().WithZone("")
	for _, p := range t.nets {
		if p.Contains(a) {
			return true
		}
	}
	return false
}

// Resolve returns the client address of r: the peer's, unless the peer is
// a trusted proxy, in which case the forwarding chain is walked from the
// right and the first address not in the trusted set wins. If every hop is
// trusted the leftmost one is the client; if a trusted hop forwarded
// something that is not an address, the last trusted hop is the best that
// can be vouched for.
func (t *Trusted) Resolve(r *http.Request) string {
	peer := peerAddr(r.RemoteAddr)
	if !peer.IsValid() {
		return r.RemoteAddr
	}
	if !t.Contains(peer) {
		return peer.String()
	}
	chain, ok := forwardedChain(r.Header)
	if !ok {
		return peer.String()
	}
	last := peer
	for i := len(chain) - 1; i >= 0; i-- {
		a, err := parseNode(chain[i])
		if err != nil {
			return last.String()
		}
		if !t.Contains(a) {
			return a.String()
		}
		last = a
	}
	return last.String()
}

func peerAddr(remote string) netip.Addr {
	host, _, err := net.SplitHostPort(remote)
	if err != nil {
		host = remote
	}
	a, err := netip.ParseAddr(host)
	if err != nil {
		return netip.Addr{}
	}
	return a.Unmap().WithZone("")
}

// maxHops bounds the work a long forwarding header can cause.
const maxHops = 32

// forwardedChain returns the hop addresses, leftmost first, from
// X-Forwarded-For (all its header lines in order) or, when that is absent,
// from Forwarded's for= parameters. ok is false when neither is present or
// the header is malformed.
func forwardedChain(h http.Header) ([]string, bool) {
	if xff := h.Values("X-Forwarded-For"); len(xff) > 0 {
		var chain []string
		for _, line := range xff {
			for _, f := range strings.Split(line, ",") {
				chain = append(chain, strings.TrimSpace(f))
			}
		}
		return tail(chain), len(chain) > 0
	}
	fwd := h.Values("Forwarded")
	if len(fwd) == 0 {
		return nil, false
	}
	var chain []string
	for _, line := range fwd {
		elems, err := ParseForwarded(line)
		if err != nil {
			return nil, false
		}
		for _, e := range elems {
			chain = append(chain, e.For)
		}
	}
	return tail(chain), len(chain) > 0
}

func tail(chain []string) []string {
	if len(chain) > maxHops {
		return chain[len(chain)-maxHops:]
	}
	return chain
}

// parseNode reads one hop: an IP address, optionally with a port
// ("198.51.100.7:4711", "[2001:db8::1]:4711", "[2001:db8::1]").
func parseNode(s string) (netip.Addr, error) {
	s = strings.TrimSpace(s)
	if a, err := netip.ParseAddr(s); err == nil && a.Zone() == "" {
		return a.Unmap(), nil
	}
	if ap, err := netip.ParseAddrPort(s); err == nil && ap.Addr().Zone() == "" {
		return ap.Addr().Unmap(), nil
	}
	if strings.HasPrefix(s, "[") && strings.HasSuffix(s, "]") {
		if a, err := netip.ParseAddr(s[1 : len(s)-1]); err == nil && a.Is6() && a.Zone() == "" {
			return a, nil
		}
	}
	return netip.Addr{}, fmt.Errorf("not an address")
}

// Element is one forwarded-element of an RFC 7239 Forwarded header.
type Element struct {
	For, By, Host, Proto string
}

// ParseForwarded parses one Forwarded header value (RFC 7239 §4):
// comma-separated elements of semicolon-separated token=value pairs, values
// being tokens or quoted strings. Unknown parameters are ignored; a
// malformed value is an error.
func ParseForwarded(v string) ([]Element, error) {
	var out []Element
	p := fwdParser{s: v}
	for {
		var e Element
		for {
			p.skipSpace()
			name := p.token()
			if name == "" {
				return nil, fmt.Errorf("forwarded: expected a parameter name at %d", p.i)
			}
			if !p.eat('=') {
				return nil, fmt.Errorf("forwarded: expected '=' after %q", name)
			}
			val, err := p.value()
			if err != nil {
				return nil, err
			}
			switch strings.ToLower(name) {
			case "for":
				e.For = val
			case "by":
				e.By = val
			case "host":
				e.Host = val
			case "proto":
				e.Proto = val
			}
			p.skipSpace()
			if !p.eat(';') {
				break
			}
		}
		out = append(out, e)
		if len(out) > 4*maxHops {
			return nil, fmt.Errorf("forwarded: too many elements")
		}
		p.skipSpace()
		if p.done() {
			return out, nil
		}
		if !p.eat(',') {
			return nil, fmt.Errorf("forwarded: unexpected %q at %d", p.s[p.i], p.i)
		}
	}
}

type fwdParser struct {
	s string
	i int
}

func (p *fwdParser) done() bool { return p.i >= len(p.s) }

func (p *fwdParser) skipSpace() {
	for p.i < len(p.s) && (p.s[p.i] == ' ' || p.s[p.i] == '\t') {
		p.i++
	}
}

func (p *fwdParser) eat(c byte) bool {
	if p.i < len(p.s) && p.s[p.i] == c {
		p.i++
		return true
	}
	return false
}

func isTChar(c byte) bool {
	return 'a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' ||
		strings.IndexByte("!#$%&'*+-.^_`|~", c) >= 0
}

func (p *fwdParser) token() string {
	start := p.i
	for p.i < len(p.s) && isTChar(p.s[p.i]) {
		p.i++
	}
	return p.s[start:p.i]
}

func (p *fwdParser) value() (string, error) {
	if !p.eat('"') {
		if t := p.token(); t != "" {
			return t, nil
		}
		return "", fmt.Errorf("forwarded: empty value at %d", p.i)
	}
	var b strings.Builder
	for p.i < len(p.s) {
		c := p.s[p.i]
		p.i++
		switch {
		case c == '"':
			return b.String(), nil
		case c == '\\':
			if p.i >= len(p.s) {
				return "", fmt.Errorf("forwarded: unterminated escape")
			}
			b.WriteByte(p.s[p.i])
			p.i++
		case c < 0x20 && c != '\t' || c == 0x7f:
			return "", fmt.Errorf("forwarded: control character in quoted string")
		default:
			b.WriteByte(c)
		}
	}
	return "", fmt.Errorf("forwarded: unterminated quoted string")
}

type ctxKey struct{}

// WithClient records the resolved client address in ctx (the shared
// middleware does this once per request).
func WithClient(ctx context.Context, ip string) context.Context {
	return context.WithValue(ctx, ctxKey{}, ip)
}

// FromContext returns the client address the middleware recorded in ctx,
// or "" outside a request.
func FromContext(ctx context.Context) string {
	ip, _ := ctx.Value(ctxKey{}).(string)
	return ip
}

// Of returns the client address the middleware resolved for r or, outside
// the middleware, the connecting peer's address.
func Of(r *http.Request) string {
	if ip, ok := r.Context().Value(ctxKey{}).(string); ok && ip != "" {
		return ip
	}
	var none *Trusted
	return none.Resolve(r)
}
