package ecscreds

import (
	"context"
	"errors"
	"net/http"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/credentials/endpointcreds"

	"github.com/agentkeys/agentkeys/internal/brokerclient"
	"github.com/agentkeys/agentkeys/internal/testkit"
)

func env(s *Server) map[string]string {
	m := map[string]string{}
	for _, kv := range s.Env() {
		k, v, _ := strings.Cut(kv, "=")
		m[k] = v
	}
	return m
}

// TestServerServesTheSDK: the AWS SDK's container-credential provider
// reads the endpoint with its token and gets the current credentials,
// then fresh ones once the cache's refresh time has passed; a request
// without the right token gets 401 and nothing else.
func TestServerServesTheSDK(t *testing.T) {
	var mints atomic.Int32
	mint := func(context.Context) (brokerclient.AWSCredentials, error) {
		n := mints.Add(1)
		return brokerclient.AWSCredentials{AccessKeyID: "ASIAFRESH" + string('0'+rune(n)), SecretAccessKey: "s", SessionToken: "t",
			Expiration: time.Now().Add(time.Hour)}, nil
	}
	first := brokerclient.AWSCredentials{AccessKeyID: "ASIAFIRST", SecretAccessKey: "s1", SessionToken: "t1", Expiration: time.Now().Add(time.Hour)}
	cache := NewCache(first, mint)
	clock := time.Now()
	cache.now = func() time.Time { return clock }
	srv, err := Start("", cache.Get)
	if err != nil {
		t.Fatal(err)
	}
	defer srv.Close()
	e := env(srv)
	if !strings.HasPrefix(e[EnvFullURI], "http://127.0.0.1:") || len(e[EnvToken]) != 64 {
		t.Fatalf("endpoint %q token length %d", e[EnvFullURI], len(e[EnvToken]))
	}
	p := endpointcreds.New(e[EnvFullURI], func(o *endpointcreds.Options) { o.AuthorizationToken = e[EnvToken] })
	c, err := p.Retrieve(context.Background())
	if err != nil || c.AccessKeyID != "ASIAFIRST" || c.SecretAccessKey != "s1" || c.SessionToken != "t1" || !c.CanExpire {
		t.Fatalf("first retrieve: %+v, %v", c, err)
	}
	// 48 minutes later (a fifth of the hour before expiry, capped at 5
	// minutes: refresh from 55 min): still the first.
	clock = clock.Add(48 * time.Minute)
	if c, _ = p.Retrieve(context.Background()); c.AccessKeyID != "ASIAFIRST" || mints.Load() != 0 {
		t.Fatalf("refreshed too early: %+v", c)
	}
	clock = clock.Add(8 * time.Minute)
	if c, err = p.Retrieve(context.Background()); err != nil || c.AccessKeyID != "ASIAFRESH1" || mints.Load() != 1 {
		t.Fatalf("refresh: %+v, %v (mints %d)", c, err, mints.Load())
	}
	for _, tok := range []string{"", "wrong", e[EnvToken][:10], "Bearer " + e[EnvToken]} {
		if status := testkit.GetStatus(t, e[EnvFullURI], tok); status != http.StatusUnauthorized {
			t.Fatalf("token %q: status %d", tok, status)
		}
	}
}

// TestCacheKeepsValidCredentialsWhenMintFails: a failed refresh serves the
// old credentials while they are valid, then an error (503 at the
// endpoint, without the mint's error text).
func TestCacheKeepsValidCredentialsWhenMintFails(t *testing.T) {
	first := brokerclient.AWSCredentials{AccessKeyID: "ASIAFIRST", SecretAccessKey: "s1", SessionToken: "t1", Expiration: time.Now().Add(time.Minute)}
	cache := NewCache(first, func(context.Context) (brokerclient.AWSCredentials, error) {
		return brokerclient.AWSCredentials{}, errors.New("broker said: secret-detail")
	})
	clock := time.Now().Add(55 * time.Second)
	cache.now = func() time.Time { return clock }
	if c, err := cache.Get(context.Background()); err != nil || c.AccessKeyID != "ASIAFIRST" {
		t.Fatalf("before expiry: %+v %v", c, err)
	}
	clock = clock.Add(10 * time.Second)
	srv, err := Start("127.0.0.1:0", cache.Get)
	if err != nil {
		t.Fatal(err)
	}
	defer srv.Close()
	req, _ := http.NewRequest("GET", srv.URL(), nil)
	req.Header.Set("Authorization", srv.Token())
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	var b strings.Builder
	buf := make([]byte, 512)
	n, _ := res.Body.Read(buf)
	b.Write(buf[:n])
	res.Body.Close()
	if res.StatusCode != http.StatusServiceUnavailable || strings.Contains(b.String(), "secret-detail") {
		t.Fatalf("after expiry: %d %s", res.StatusCode, b.String())
	}
}

// TestStartRefusesNonLoopback: the endpoint never binds beyond loopback.
func TestStartRefusesNonLoopback(t *testing.T) {
	for _, addr := range []string{"0.0.0.0:0", ":0", "192.0.2.1:80", "example.com:80", "nonsense"} {
		if s, err := Start(addr, nil); err == nil {
			s.Close()
			t.Fatalf("%s accepted", addr)
		}
	}
	for _, addr := range []string{"localhost:0", "[::1]:0"} {
		if err := CheckLoopback(addr); err != nil {
			t.Fatalf("%s refused: %v", addr, err)
		}
	}
}
