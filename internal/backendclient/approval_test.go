package backendclient_test

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"path/filepath"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/agentkeys/agentkeys/internal/agentkeys"
	"github.com/agentkeys/agentkeys/internal/authreq"
	"github.com/agentkeys/agentkeys/internal/backend"
	"github.com/agentkeys/agentkeys/internal/backendclient"
	"github.com/agentkeys/agentkeys/internal/seal"
	"github.com/agentkeys/agentkeys/internal/store/sqlstore"
)

// tamperProxy relays to a real backend and lets a test rewrite the await
// answer, the way a compromised relay or a tampered database would.
type tamperProxy struct {
	mu     sync.Mutex
	box    []byte                                // box_pubkey of the last open
	mutate func(box []byte, body map[string]any) // applied to approved await answers
}

func (p *tamperProxy) handler(target string) http.Handler {
	u, _ := url.Parse(target)
	rp := httputil.NewSingleHostReverseProxy(u)
	rp.ModifyResponse = func(resp *http.Response) error {
		p.mu.Lock()
		mutate, box := p.mutate, p.box
		p.mu.Unlock()
		if resp.Request.URL.Path != "/auth-request/await" || resp.StatusCode != 200 || mutate == nil {
			return nil
		}
		raw, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		var m map[string]any
		if json.Unmarshal(raw, &m) == nil && m["status"] == "approved" {
			mutate(box, m)
			raw, _ = json.Marshal(m)
		}
		resp.Body = io.NopCloser(bytes.NewReader(raw))
		resp.ContentLength = int64(len(raw))
		resp.Header.Set("Content-Length", strconv.Itoa(len(raw)))
		return nil
	}
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/auth-request/open" {
			raw, _ := io.ReadAll(r.Body)
			var in struct {
				Box []byte `json:"box_pubkey"`
			}
			json.Unmarshal(raw, &in)
			p.mu.Lock()
			p.box = in.Box
			p.mu.Unlock()
			r.Body = io.NopCloser(bytes.NewReader(raw))
		}
		rp.ServeHTTP(w, r)
	})
}

func startBackend(t *testing.T) string {
	t.Helper()
	dir := t.TempDir()
	st, err := sqlstore.Open(context.Background(), filepath.Join(dir, "backend.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	sealer, err := seal.LoadOrCreateKeyFile(filepath.Join(dir, "seal.key"))
	if err != nil {
		t.Fatal(err)
	}
	srv, err := backend.New(backend.Options{Store: st, Sealer: sealer, LoginRate: -1, AwaitWindow: 2 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	hs := httptest.NewServer(srv.Handler())
	t.Cleanup(hs.Close)
	return hs.URL
}

func TestAwaitVerifiesTheApproval(t *testing.T) {
	ctx := context.Background()
	direct, err := backendclient.New(startBackend(t))
	if err != nil {
		t.Fatal(err)
	}
	proxy := &tamperProxy{}
	ps := httptest.NewServer(proxy.handler(direct.BaseURL()))
	t.Cleanup(ps.Close)
	relayed, _ := backendclient.New(ps.URL)
	master, err := direct.CreateSession(ctx, "alice")
	if err != nil {
		t.Fatal(err)
	}
	mallory, _ := direct.CreateSession(ctx, "mallory")
	// A real, valid session the relay could try to hand the daemon instead.
	decoy, err := direct.CreateChild(ctx, mallory.Token, agentkeys.Scope{}, 0)
	if err != nil {
		t.Fatal(err)
	}
	decoyObj := map[string]any{"token": decoy.Token.Reveal(), "wallet": string(decoy.Wallet), "expires_at": decoy.ExpiresAt.Unix()}
	sealDecoy := func(box []byte, m map[string]any) {
		plain, _ := json.Marshal(decoyObj)
		blob, err := authreq.SealTo(box, m["request_id"].(string), plain)
		if err != nil {
			t.Error(err)
		}
		m["sealed_session"] = base64.StdEncoding.EncodeToString(blob)
		m["wallet"] = string(decoy.Wallet)
	}

	pair := func(withBox bool, parent agentkeys.Wallet) (backendclient.Decision, error) {
		t.Helper()
		child, _, _ := ed25519.GenerateKey(rand.Reader)
		details, _ := authreq.Encode(authreq.Request{Type: authreq.TypePair})
		req := backendclient.OpenRequest{ChildPubkey: child, RequestType: authreq.TypePair, RequestDetails: details, ParentWallet: parent}
		if withBox {
			if req.BoxKey, err = authreq.NewBoxKey(); err != nil {
				t.Fatal(err)
			}
		}
		o, err := relayed.OpenAuthRequest(ctx, req)
		if err != nil {
			t.Fatal(err)
		}
		ap, err := direct.ApproveAuthRequest(ctx, master.Token, o.PairCode, o.OTP)
		if err != nil {
			t.Fatal(err)
		}
		if len(ap.Signature) != ed25519.SignatureSize || ap.KeyID == "" {
			t.Fatalf("approve returned signature %d bytes, key %q", len(ap.Signature), ap.KeyID)
		}
		return relayed.AwaitAuthDecision(ctx, o)
	}

	// Untouched: sealed (new clients) and in clear (old clients) both verify.
	for _, withBox := range []bool{true, false} {
		d, err := pair(withBox, "")
		if err != nil || d.Status != "approved" || d.Session == nil || d.ApproverWallet != master.Wallet || len(d.Signature) != 64 {
			t.Fatalf("box=%v: %+v %v", withBox, d, err)
		}
		if id, err := direct.Validate(ctx, d.Session.Token); err != nil || id.Wallet != d.Session.Wallet {
			t.Fatalf("delivered session does not work: %v", err)
		}
	}

	for name, tc := range map[string]struct {
		box    bool
		parent agentkeys.Wallet
		mutate func(box []byte, m map[string]any)
	}{
		"flipped signature byte": {box: true, mutate: func(_ []byte, m map[string]any) {
			sig, _ := base64.StdEncoding.DecodeString(m["signature"].(string))
			sig[5] ^= 1
			m["signature"] = base64.StdEncoding.EncodeToString(sig)
		}},
		"no signature":             {box: true, mutate: func(_ []byte, m map[string]any) { delete(m, "signature") }},
		"another sealed session":   {box: true, mutate: sealDecoy},
		"session in clear instead": {box: true, mutate: func(_ []byte, m map[string]any) { delete(m, "sealed_session"); m["session"] = decoyObj }},
		"another clear session": {box: false, mutate: func(_ []byte, m map[string]any) {
			m["session"] = decoyObj
			m["wallet"] = string(decoy.Wallet)
		}},
		"another approver":   {box: true, parent: master.Wallet, mutate: func(_ []byte, m map[string]any) { m["approver_wallet"] = string(mallory.Wallet) }},
		"another created_at": {box: true, mutate: func(_ []byte, m map[string]any) { m["created_at"] = m["created_at"].(float64) - 1 }},
	} {
		proxy.mu.Lock()
		proxy.mutate = tc.mutate
		proxy.mu.Unlock()
		d, err := pair(tc.box, tc.parent)
		if !errors.Is(err, backendclient.ErrUnverifiedApproval) || d.Session != nil {
			t.Errorf("%s: accepted (%+v, %v)", name, d, err)
		}
	}
}
