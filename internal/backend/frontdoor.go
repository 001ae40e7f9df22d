package backend

import (
	"fmt"
	"net"

	"github.com/agentkeys/agentkeys/internal/clientip"
	"github.com/agentkeys/agentkeys/internal/envflag"
	"github.com/agentkeys/agentkeys/internal/jsonhttp"
	"github.com/agentkeys/agentkeys/internal/ratelimit"
)

// Front-door defaults: what a caller may ask of the server before the
// request reaches a route's own checks.
const (
	DefaultWalletRate  = 50.0 // authenticated requests per second per wallet
	DefaultWalletBurst = 200
)

// Frontdoor configures who the backend believes a request comes from, which
// host names it answers for and how much one wallet may ask of it.
type Frontdoor struct {
	// TrustedProxies lists the reverse proxies (CIDRs, comma-separated)
	// whose X-Forwarded-For / Forwarded headers name the client; empty
	// trusts none.
	TrustedProxies string
	// PublicURL is the URL clients reach the backend at through a proxy;
	// its host is accepted in Host and Origin besides the loopback names.
	PublicURL string
	// WalletRate limits authenticated requests per second per wallet
	// (burst DefaultWalletBurst); 0 or negative disables.
	WalletRate float64
	// Quotas bound each master's tree.
	Quotas Quotas
	// ParentOpenRate limits, per named master, the auth requests opened
	// with parent_wallet (per second, burst DefaultParentOpenBurst); 0 or
	// negative disables (the binary's default is DefaultParentOpenRate).
	ParentOpenRate float64
	// MaxAwaitersPerIP bounds the concurrent await/rendezvous-poll long
	// polls of one client address (0: DefaultMaxAwaitersPerIP; negative:
	// unlimited).
	MaxAwaitersPerIP int

	// checkHost turns the Host/Origin policy on; the binary always does
	// (Start), in-process handlers for tests leave it off.
	checkHost bool
}

// frontdoorFlags registers the front-door flags.
func frontdoorFlags(b *envflag.Binder, fd *Frontdoor) {
	b.String(&fd.TrustedProxies, "trusted-proxies", "AGENTKEYS_TRUSTED_PROXIES", "",
		"CIDRs of reverse proxies whose X-Forwarded-For/Forwarded headers name the client, e.g. 127.0.0.1/32; empty trusts none")
	b.String(&fd.PublicURL, "public-url", "AGENTKEYS_PUBLIC_URL", "",
		"URL clients use through a proxy (https://agentkeys.example.com); a request naming another host than it, a loopback name or an IP address is refused (421)")
	b.Float(&fd.WalletRate, "wallet-rate", "AGENTKEYS_WALLET_RATE", DefaultWalletRate,
		fmt.Sprintf("authenticated requests per second per wallet (burst %d); 0 disables", DefaultWalletBurst))
	b.Int(&fd.Quotas.MaxDepth, "max-agent-depth", "AGENTKEYS_MAX_AGENT_DEPTH", DefaultMaxAgentDepth,
		"deepest agent chain under a master (a master's own agents are depth 1); negative: unlimited")
	b.Int(&fd.Quotas.MaxAgents, "max-agents-per-master", "AGENTKEYS_MAX_AGENTS_PER_MASTER", DefaultMaxAgentsPerMaster,
		"agents (at any depth) one master may have; negative: unlimited")
	b.Int(&fd.Quotas.MaxCredentials, "max-credentials-per-master", "AGENTKEYS_MAX_CREDENTIALS_PER_MASTER", DefaultMaxCredentialsPerMaster,
		"credentials stored across one master's tree; negative: unlimited")
	b.Int(&fd.Quotas.MaxPendingRequests, "max-pending-requests-per-master", "AGENTKEYS_MAX_PENDING_REQUESTS_PER_MASTER", DefaultMaxPendingRequestsPerMaster,
		"pair/recover requests awaiting one master's decision; negative: unlimited")
	b.Float(&fd.ParentOpenRate, "open-rate-per-master", "AGENTKEYS_OPEN_RATE_PER_MASTER", DefaultParentOpenRate,
		fmt.Sprintf("auth requests per second that may be opened naming one master (parent_wallet; each writes an unverified row into its audit log), burst %d; 0 disables", DefaultParentOpenBurst))
	b.Int(&fd.MaxAwaitersPerIP, "max-awaiters-per-ip", "AGENTKEYS_MAX_AWAITERS_PER_IP", DefaultMaxAwaitersPerIP,
		"concurrent /auth-request/await and /rendezvous/poll long polls one client address may hold (429 beyond); negative: unlimited")
}

// frontdoor is the parsed form the server uses.
type frontdoor struct {
	trusted     *clientip.Trusted
	hosts       *jsonhttp.HostPolicy
	walletLimit *ratelimit.Limiter
	quotas      Quotas
	parentOpen  *ratelimit.Limiter // nil: unlimited
	maxAwaiters int                // <= 0: unlimited
}

func newFrontdoor(fd Frontdoor) (frontdoor, error) {
	trusted, err := clientip.Parse(fd.TrustedProxies)
	if err != nil {
		return frontdoor{}, fmt.Errorf("--trusted-proxies: %w", err)
	}
	out := frontdoor{trusted: trusted, quotas: fd.Quotas.withDefaults()}
	if fd.checkHost {
		if out.hosts, err = jsonhttp.NewHostPolicy(fd.PublicURL); err != nil {
			return frontdoor{}, fmt.Errorf("--public-url: %w", err)
		}
	} else if fd.PublicURL != "" {
		if _, err := jsonhttp.NewHostPolicy(fd.PublicURL); err != nil {
			return frontdoor{}, fmt.Errorf("--public-url: %w", err)
		}
	}
	if fd.WalletRate > 0 {
		out.walletLimit = ratelimit.New(fd.WalletRate, DefaultWalletBurst)
	}
	if fd.ParentOpenRate > 0 {
		out.parentOpen = ratelimit.New(fd.ParentOpenRate, DefaultParentOpenBurst)
	}
	switch out.maxAwaiters = fd.MaxAwaitersPerIP; {
	case out.maxAwaiters == 0:
		out.maxAwaiters = DefaultMaxAwaitersPerIP
	case out.maxAwaiters < 0:
		out.maxAwaiters = 0
	}
	return out, nil
}

// limitWallet spends one of the caller's per-wallet tokens. Requests that
// end in a denial count too, so denials cannot be spammed into the audit
// log without bound.
func (s *Server) limitWallet(c *caller) error {
	if s.fd.walletLimit == nil {
		return nil
	}
	return limit(s.fd.walletLimit, string(c.addr()), "too many requests for this wallet; retry later")
}

// listensOnLoopback reports whether a --listen address binds loopback only
// ("127.0.0.1:8090", "[::1]:0", "localhost:8090"; not ":8090" or
// "0.0.0.0:8090").
func listensOnLoopback(addr string) bool {
	host, _, err := net.SplitHostPort(addr)
	if err != nil {
		return false
	}
	if host == "localhost" {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}
