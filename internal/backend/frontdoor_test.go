package backend

import (
	"testing"

	"github.com/spf13/pflag"

	"github.com/agentkeys/agentkeys/internal/envflag"
)

func TestListensOnLoopback(t *testing.T) {
	for addr, want := range map[string]bool{
		"127.0.0.1:8090": true, "[::1]:0": true, "localhost:8090": true, "127.3.2.1:1": true,
		":8090": false, "0.0.0.0:8090": false, "[::]:8090": false, "10.0.0.5:8090": false, "backend:8090": false, "nonsense": false,
	} {
		if got := listensOnLoopback(addr); got != want {
			t.Errorf("listensOnLoopback(%q) = %v", addr, got)
		}
	}
}

func TestFrontdoorRejectsBadSettings(t *testing.T) {
	for _, fd := range []Frontdoor{{TrustedProxies: "not-a-cidr"}, {PublicURL: "https://"}, {PublicURL: "https://", checkHost: true}} {
		if _, err := newFrontdoor(fd); err == nil {
			t.Errorf("%+v accepted", fd)
		}
	}
	fd, err := newFrontdoor(Frontdoor{TrustedProxies: "127.0.0.1/32", PublicURL: "https://agentkeys.example.com", WalletRate: 1, checkHost: true})
	if err != nil || fd.hosts == nil || fd.walletLimit == nil || fd.trusted.Empty() || fd.quotas.MaxDepth != DefaultMaxAgentDepth {
		t.Fatalf("%+v %v", fd, err)
	}
}

func TestOpenerLimitSettings(t *testing.T) {
	parse := func(args ...string) frontdoor {
		t.Helper()
		var fd Frontdoor
		f := pflag.NewFlagSet("t", pflag.ContinueOnError)
		b := envflag.New(f, nil)
		frontdoorFlags(b, &fd)
		if err := f.Parse(args); err != nil || b.Err() != nil {
			t.Fatalf("parse %v: %v %v", args, err, b.Err())
		}
		out, err := newFrontdoor(fd)
		if err != nil {
			t.Fatal(err)
		}
		return out
	}
	if fd := parse(); fd.maxAwaiters != DefaultMaxAwaitersPerIP || fd.parentOpen == nil {
		t.Fatalf("defaults: %+v", fd)
	}
	if fd := parse("--max-awaiters-per-ip", "-1", "--open-rate-per-master", "0"); fd.maxAwaiters != 0 || fd.parentOpen != nil {
		t.Fatalf("disabled: %+v", fd)
	}
	t.Setenv("AGENTKEYS_MAX_AWAITERS_PER_IP", "3")
	t.Setenv("AGENTKEYS_OPEN_RATE_PER_MASTER", "0")
	if fd := parse(); fd.maxAwaiters != 3 || fd.parentOpen != nil {
		t.Fatalf("from the environment: %+v", fd)
	}
	// Library users who set nothing get the default cap too.
	if fd, _ := newFrontdoor(Frontdoor{}); fd.maxAwaiters != DefaultMaxAwaitersPerIP {
		t.Fatalf("zero value: %+v", fd)
	}
}
