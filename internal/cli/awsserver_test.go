package cli

import (
	"context"
	"net/http"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/credentials/endpointcreds"

	"github.com/agentkeys/agentkeys/internal/brokerclient"
)

// TestAWSServerServesTheSDK: the AWS SDK's container-credential provider
// reads the endpoint with its token, gets the current credentials, and
// fresh ones once they are within the refresh window; a request without
// the token gets nothing.
func TestAWSServerServesTheSDK(t *testing.T) {
	var mints atomic.Int32
	mint := func(context.Context) (brokerclient.AWSCredentials, error) {
		n := mints.Add(1)
		return brokerclient.AWSCredentials{AccessKeyID: "ASIAFRESH" + string('0'+rune(n)), SecretAccessKey: "s", SessionToken: "t",
			Expiration: time.Now().Add(time.Hour)}, nil
	}
	first := brokerclient.AWSCredentials{AccessKeyID: "ASIAFIRST", SecretAccessKey: "s1", SessionToken: "t1", Expiration: time.Now().Add(time.Hour)}
	srv, err := startAWSServer(first, mint)
	if err != nil {
		t.Fatal(err)
	}
	defer srv.Close()
	env := map[string]string{}
	for _, kv := range srv.Env() {
		k, v, _ := strings.Cut(kv, "=")
		env[k] = v
	}
	p := endpointcreds.New(env["AWS_CONTAINER_CREDENTIALS_FULL_URI"], func(o *endpointcreds.Options) {
		o.AuthorizationToken = env["AWS_CONTAINER_AUTHORIZATION_TOKEN"]
	})
	c, err := p.Retrieve(context.Background())
	if err != nil || c.AccessKeyID != "ASIAFIRST" || c.SecretAccessKey != "s1" || c.SessionToken != "t1" || !c.CanExpire {
		t.Fatalf("first retrieve: %+v, %v", c, err)
	}
	// Close to expiry: the next request mints.
	srv.mu.Lock()
	srv.cur.Expiration = time.Now().Add(time.Minute)
	srv.mu.Unlock()
	if c, err = p.Retrieve(context.Background()); err != nil || c.AccessKeyID != "ASIAFRESH1" || mints.Load() != 1 {
		t.Fatalf("refresh: %+v, %v (mints %d)", c, err, mints.Load())
	}
	for _, tok := range []string{"", "wrong", env["AWS_CONTAINER_AUTHORIZATION_TOKEN"][:10]} {
		req, _ := http.NewRequest("GET", env["AWS_CONTAINER_CREDENTIALS_FULL_URI"], nil)
		if tok != "" {
			req.Header.Set("Authorization", tok)
		}
		res, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		res.Body.Close()
		if res.StatusCode != http.StatusUnauthorized {
			t.Fatalf("token %q: status %d", tok, res.StatusCode)
		}
	}
	if !strings.HasPrefix(env["AWS_CONTAINER_CREDENTIALS_FULL_URI"], "http://127.0.0.1:") {
		t.Fatalf("endpoint not on loopback: %s", env["AWS_CONTAINER_CREDENTIALS_FULL_URI"])
	}
}
