package broker

import (
	"strings"
	"testing"
)

func TestTrustedProxiesConfig(t *testing.T) {
	c, err := load(t, map[string]string{"BROKER_TRUSTED_PROXIES": "127.0.0.1/32, ::1/128"})
	if err != nil || c.TrustedProxies != "127.0.0.1/32, ::1/128" {
		t.Fatalf("config %q, %v", c.TrustedProxies, err)
	}
	if _, err := load(t, map[string]string{"BROKER_TRUSTED_PROXIES": "10.0.0.0/33"}); err == nil || !strings.Contains(err.Error(), "BROKER_TRUSTED_PROXIES") {
		t.Fatalf("a bad CIDR: %v", err)
	}
}
