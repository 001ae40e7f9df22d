package jsonhttp

import (
	"fmt"
	"net"
	"net/http"
	"net/netip"
	"net/url"
	"strings"
)

// Error kinds of the host policy's refusals.
const (
	KindMisdirected     = "MISDIRECTED_REQUEST"
	KindForbiddenOrigin = "FORBIDDEN_ORIGIN"
)

// HostPolicy defends a server against DNS rebinding and cross-site
// requests from web pages:
//   - the Host header must be a loopback name (localhost, 127.0.0.0/8,
//     [::1]), an IP literal (a rebinding page can only present a DNS name),
//     or one of the configured public names; anything else is 421;
//   - a state-changing request (not GET, HEAD or OPTIONS) that carries an
//     Origin must come from a loopback origin or a public name's origin;
//     anything else, including "null", is 403. Programs (the CLI, the
//     daemon, the broker) send no Origin and are unaffected.
//
// A nil *HostPolicy checks nothing.
type HostPolicy struct {
	public map[string]bool
}

// NewHostPolicy allows the hosts of the given public URLs (or bare host
// names) besides the loopback names. Empty entries are skipped.
func NewHostPolicy(public ...string) (*HostPolicy, error) {
	p := &HostPolicy{public: map[string]bool{}}
	for _, s := range public {
		s = strings.TrimSpace(s)
		if s == "" {
			continue
		}
		h := s
		if strings.Contains(s, "://") {
			u, err := url.Parse(s)
			if err != nil || u.Host == "" {
				return nil, fmt.Errorf("public URL %q is not an absolute URL like https://agentkeys.example.com", s)
			}
			h = u.Host
		}
		name := hostName(h)
		if name == "" {
			return nil, fmt.Errorf("public name %q is empty", s)
		}
		p.public[name] = true
	}
	return p, nil
}

// hostName lowercases a Host value and drops its port, brackets and
// trailing dot.
func hostName(h string) string {
	h = strings.ToLower(strings.TrimSpace(h))
	if host, _, err := net.SplitHostPort(h); err == nil {
		h = host
	}
	h = strings.TrimPrefix(strings.TrimSuffix(h, "]"), "[")
	return strings.TrimSuffix(h, ".")
}

func isLoopbackName(name string) bool {
	if name == "localhost" {
		return true
	}
	a, err := netip.ParseAddr(name)
	return err == nil && a.Unmap().IsLoopback()
}

func (p *HostPolicy) check(r *http.Request) *Error {
	if p == nil {
		return nil
	}
	name := hostName(r.Host)
	_, ipErr := netip.ParseAddr(name)
	if !(isLoopbackName(name) || ipErr == nil || p.public[name]) {
		return Errorf(http.StatusMisdirectedRequest, KindMisdirected,
			"misdirected request: this server does not answer for host %q (set its public URL to serve a public name)", clip(r.Host))
	}
	switch r.Method {
	case http.MethodGet, http.MethodHead, http.MethodOptions:
		return nil
	}
	origins := r.Header.Values("Origin")
	if len(origins) == 0 {
		return nil
	}
	for _, o := range origins {
		if !p.originAllowed(o) {
			return Errorf(http.StatusForbidden, KindForbiddenOrigin,
				"forbidden: requests from web origin %q are not accepted", clip(o))
		}
	}
	return nil
}

func (p *HostPolicy) originAllowed(o string) bool {
	u, err := url.Parse(strings.TrimSpace(o))
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return false
	}
	name := hostName(u.Host)
	return isLoopbackName(name) || p.public[name]
}

// clip keeps a client-supplied value short and printable in a message.
func clip(s string) string {
	if len(s) > 80 {
		s = s[:80]
	}
	return strings.Map(func(r rune) rune {
		if r < 0x20 || r == 0x7f || r > 0x7e {
			return '?'
		}
		return r
	}, s)
}

// IsLoopbackHost reports whether a Host header value (port optional)
// names the loopback: localhost, 127.0.0.0/8 or [::1].
func IsLoopbackHost(h string) bool { return isLoopbackName(hostName(h)) }
