package backend

import "testing"

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
