package backendclient_test

import (
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"errors"
	"testing"
	"time"

	"github.com/agentkeys/agentkeys/internal/agentkeys"
	"github.com/agentkeys/agentkeys/internal/authreq"
	"github.com/agentkeys/agentkeys/internal/authreq/relaytest"
	"github.com/agentkeys/agentkeys/internal/backend"
	"github.com/agentkeys/agentkeys/internal/backend/backendtest"
	"github.com/agentkeys/agentkeys/internal/backendclient"
)

func startBackend(t *testing.T) string {
	t.Helper()
	return backendtest.Serve(t, backend.Options{AwaitWindow: 2 * time.Second})
}

func TestAwaitVerifiesTheApproval(t *testing.T) {
	ctx := context.Background()
	direct, err := backendclient.New(startBackend(t))
	if err != nil {
		t.Fatal(err)
	}
	proxy := relaytest.Start(t, direct.BaseURL(), nil)
	relayed, _ := backendclient.New(proxy.URL)
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
		mutate relaytest.Mutate
	}{
		"flipped signature byte":   {box: true, mutate: relaytest.FlipSignature},
		"no signature":             {box: true, mutate: func(_ []byte, m map[string]any) { delete(m, "signature") }},
		"another sealed session":   {box: true, mutate: relaytest.SubstituteSession(decoyObj)},
		"session in clear instead": {box: true, mutate: func(_ []byte, m map[string]any) { delete(m, "sealed_session"); m["session"] = decoyObj }},
		"another clear session":    {box: false, mutate: relaytest.SubstituteSession(decoyObj)},
		"another approver":         {box: true, parent: master.Wallet, mutate: func(_ []byte, m map[string]any) { m["approver_wallet"] = string(mallory.Wallet) }},
		"another created_at":       {box: true, mutate: func(_ []byte, m map[string]any) { m["created_at"] = m["created_at"].(float64) - 1 }},
	} {
		proxy.SetMutate(tc.mutate)
		d, err := pair(tc.box, tc.parent)
		if !errors.Is(err, backendclient.ErrUnverifiedApproval) || d.Session != nil {
			t.Errorf("%s: accepted (%+v, %v)", name, d, err)
		}
	}
}
