package cli

import (
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/agentkeys/agentkeys/internal/backend"
	"github.com/agentkeys/agentkeys/internal/backend/backendtest"
	"github.com/agentkeys/agentkeys/internal/oidc/oidctest"
)

// deviceIdP is an OpenID provider offering the device grant. The user
// "approves" on the second poll; deny makes it refuse instead.
type deviceIdP struct {
	srv *httptest.Server
}

func newDeviceIdP(t *testing.T, clientID, subject string, deny bool) *deviceIdP {
	t.Helper()
	p := oidctest.NewDeviceProvider(t, clientID, subject)
	p.Deny = deny
	mux := http.NewServeMux()
	idp := &deviceIdP{srv: httptest.NewServer(mux)}
	t.Cleanup(idp.srv.Close)
	mux.Handle("/", p.Handler(idp.srv.URL))
	return idp
}

func TestInitWithDeviceFlow(t *testing.T) {
	t.Parallel()
	idp := newDeviceIdP(t, "agentkeys-cli", "alice-sub", false)
	r := backendtest.Start(t, backend.Config{LoginOIDCIssuer: idp.srv.URL, LoginOIDCClientID: "agentkeys-cli"})
	w := worldOn(t, r.URL())

	// The mock identity no longer works against this backend.
	expectCode(t, w.exec(nil, w.env("AGENTKEYS_AUTH_TOKEN=alice"), "init"), 1, "mock identity against an OIDC backend")

	res := w.exec(nil, w.env(), "init", "--oidc-issuer", idp.srv.URL, "--oidc-client-id", "agentkeys-cli")
	if res.code != 0 || !strings.Contains(res.stderr, oidctest.UserCode) || !strings.Contains(res.stdout, "Initialized. Wallet: 0x") {
		t.Fatalf("device-flow init: %s", res)
	}
	w.must("whoami")

	denied := newDeviceIdP(t, "agentkeys-cli", "bob", true)
	res = w.exec(nil, w.env(EnvLoginIssuer+"="+denied.srv.URL, EnvLoginClientID+"=agentkeys-cli"), "--profile", "bob", "init")
	if res.code != 1 || !strings.Contains(res.stderr, "denied") {
		t.Fatalf("denied device flow: %s", res)
	}
	expectCode(t, w.ak("init", "--oidc-issuer", idp.srv.URL), 2, "issuer without client id")
	expectCode(t, w.ak("init", "--oidc-issuer", "not a url", "--oidc-client-id", "x"), 2, "bad issuer")
}
