package backend

import (
	"bytes"
	"crypto/ecdh"
	"crypto/ed25519"
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/agentkeys/agentkeys/internal/agentkeys"
	"github.com/agentkeys/agentkeys/internal/authreq"
	"github.com/agentkeys/agentkeys/internal/backendclient"
)

// signedOpen is what an opener knows after POST /auth-request/open.
type signedOpen struct {
	opened
	child, box, details []byte
	boxKey              *ecdh.PrivateKey
}

func (e *testEnv) openSigned(r authreq.Request, withBox bool) signedOpen {
	e.t.Helper()
	child, _, _ := ed25519.GenerateKey(rand.Reader)
	details, _ := authreq.Encode(r)
	so := signedOpen{child: child, details: details}
	extra := ""
	if withBox {
		k, err := authreq.NewBoxKey()
		if err != nil {
			e.t.Fatal(err)
		}
		so.boxKey, so.box = k, k.PublicKey().Bytes()
		extra = fmt.Sprintf(`,"box_pubkey":%q`, base64.StdEncoding.EncodeToString(so.box))
	}
	body := fmt.Sprintf(`{"child_pubkey":%q,"request_type":%q,"request_details":%q%s}`,
		base64.StdEncoding.EncodeToString(child), r.Type, base64.StdEncoding.EncodeToString(details), extra)
	status, m, _ := e.raw("POST", "/auth-request/open", "", body)
	if status != 200 {
		e.t.Fatalf("open → %d %v", status, m)
	}
	so.opened = opened{ID: m["id"].(string), OTP: m["otp"].(string), PairCode: m["pair_code"].(string), AwaitToken: m["await_token"].(string)}
	return so
}

// publishedKeys fetches and parses the backend's pairing keys document.
func (e *testEnv) publishedKeys() []authreq.PublicKey {
	e.t.Helper()
	resp, err := http.Get(e.http.URL + PairingKeysPath)
	if err != nil {
		e.t.Fatal(err)
	}
	defer resp.Body.Close()
	raw, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != 200 || !strings.HasPrefix(resp.Header.Get("Content-Type"), "application/json") {
		e.t.Fatalf("keys → %d %s", resp.StatusCode, raw)
	}
	keys, err := authreq.ParseKeySet(raw)
	if err != nil {
		e.t.Fatalf("keys document %s: %v", raw, err)
	}
	return keys
}

// sig64 decodes a "signature" field: standard base64 of 64 bytes.
func sig64(t *testing.T, m map[string]any) []byte {
	t.Helper()
	s, _ := m["signature"].(string)
	sig, err := base64.StdEncoding.DecodeString(s)
	if err != nil || len(sig) != ed25519.SignatureSize {
		t.Fatalf("signature %q is not standard base64 of 64 bytes (%v)", s, err)
	}
	return sig
}

// signedApproval is a signed pair request for openrouter that master alice
// fetched and approved, and whose opener then awaited the answer.
type signedApproval struct {
	signedOpen
	master                     backendclient.Session
	fetched, approved, awaited map[string]any
}

// approveSigned opens a signed request (with a box key if withBox) on a
// backend whose await answers within a second, then fetches, approves and
// awaits it: each step must answer 200 and the await must say approved.
func approveSigned(t *testing.T, withBox bool) (*testEnv, signedApproval) {
	t.Helper()
	e := newEnv(t, func(o *Options) { o.AwaitWindow = time.Second })
	r := signedApproval{master: e.master("alice")}
	r.signedOpen = e.openSigned(pairReq("openrouter"), withBox)
	status, f, _ := e.raw("GET", "/auth-request/fetch?pair_code="+r.PairCode, r.master.Token, "")
	if status != 200 {
		t.Fatalf("fetch → %d", status)
	}
	r.fetched = f
	if status, r.approved = e.approve(r.master.Token, r.PairCode, r.OTP); status != 200 {
		t.Fatalf("approve → %d %v", status, r.approved)
	}
	if status, r.awaited = e.await(r.opened); status != 200 || r.awaited["status"] != "approved" {
		t.Fatalf("await → %d %v", status, r.awaited)
	}
	return e, r
}

func TestApproveAndAwaitReturnAVerifiableSignature(t *testing.T) {
	e, r := approveSigned(t, false)
	m, so, f, a, d := r.master, r.signedOpen, r.fetched, r.approved, r.awaited
	approveSig := sig64(t, a)
	if !bytes.Equal(sig64(t, d), approveSig) {
		t.Fatal("approve and await return different signatures")
	}
	agent := sessionFrom(t, d) // no box key: the original's plain session
	keys := e.publishedKeys()
	if len(keys) != 1 || d["key_id"] != keys[0].ID || a["key_id"] != keys[0].ID {
		t.Fatalf("key ids: await %v approve %v published %v", d["key_id"], a["key_id"], keys)
	}
	want := authreq.Approval{
		RequestID: so.ID, RequestType: authreq.TypePair, RequestDetails: so.details, ChildPubkey: so.child,
		ApproverWallet: string(m.Wallet), CreatedAt: uint64(f["created_at"].(float64)),
		AwaitTokenHash: authreq.TokenSHA256(so.AwaitToken), ResultWallet: string(agent.Wallet),
		SessionHash: authreq.TokenSHA256(agent.Token.Reveal()),
	}
	if d["approver_wallet"] != string(m.Wallet) || d["created_at"] != f["created_at"] {
		t.Fatalf("await names approver %v created %v", d["approver_wallet"], d["created_at"])
	}
	if err := authreq.VerifyApproval(keys, keys[0].ID, want, approveSig); err != nil {
		t.Fatalf("signature does not verify with the published key: %v", err)
	}
	other := e.master("mallory")
	otherAgent := e.agent(other, nil, false)
	for name, f := range map[string]func(*authreq.Approval){
		"details":  func(a *authreq.Approval) { a.RequestDetails, _ = authreq.Encode(pairReq("openai")) },
		"approver": func(a *authreq.Approval) { a.ApproverWallet = string(other.Wallet) },
		"box key":  func(a *authreq.Approval) { a.BoxPubkey = make([]byte, 32) },
		"session":  func(a *authreq.Approval) { a.SessionHash = authreq.TokenSHA256(otherAgent.Token.Reveal()) },
		"wallet":   func(a *authreq.Approval) { a.ResultWallet = string(otherAgent.Wallet) },
		"opener":   func(a *authreq.Approval) { a.AwaitTokenHash = authreq.TokenSHA256(agentkeys.NewToken().Reveal()) },
	} {
		b := want
		f(&b)
		if err := authreq.VerifyApproval(keys, "", b, approveSig); !errors.Is(err, authreq.ErrBadSignature) {
			t.Errorf("tampered %s still verifies: %v", name, err)
		}
	}
}

func TestBoxPubkeySealsTheSession(t *testing.T) {
	e, r := approveSigned(t, true)
	m, so, f, d := r.master, r.signedOpen, r.fetched, r.awaited
	if _, ok := d["session"]; ok {
		t.Fatalf("await returned a session in clear although a box key was given: %v", d)
	}
	blob, err := base64.StdEncoding.DecodeString(d["sealed_session"].(string))
	if err != nil {
		t.Fatal(err)
	}
	other, _ := authreq.NewBoxKey()
	if _, err := authreq.OpenSealed(other, so.ID, blob); err == nil {
		t.Fatal("another key opened the sealed session")
	}
	plain, err := authreq.OpenSealed(so.boxKey, so.ID, blob)
	if err != nil {
		t.Fatal(err)
	}
	var sess struct {
		Token     string `json:"token"`
		Wallet    string `json:"wallet"`
		ExpiresAt int64  `json:"expires_at"`
	}
	if err := json.Unmarshal(plain, &sess); err != nil || sess.Wallet != d["wallet"] || sess.ExpiresAt == 0 {
		t.Fatalf("sealed session %v (%v)", sess.Wallet, err)
	}
	tok, err := agentkeys.ParseToken(sess.Token)
	if err != nil {
		t.Fatal(err)
	}
	if id, err := e.client.Validate(ctx, tok); err != nil || string(id.Wallet) != sess.Wallet {
		t.Fatalf("sealed session does not work: %v", err)
	}
	// The signature covers the box key.
	a := authreq.Approval{
		RequestID: so.ID, RequestType: authreq.TypePair, RequestDetails: so.details, ChildPubkey: so.child, BoxPubkey: so.box,
		ApproverWallet: string(m.Wallet), CreatedAt: uint64(f["created_at"].(float64)),
		AwaitTokenHash: authreq.TokenSHA256(so.AwaitToken), ResultWallet: sess.Wallet, SessionHash: authreq.TokenSHA256(sess.Token),
	}
	keys := e.publishedKeys()
	sig := sig64(t, d)
	if err := authreq.VerifyApproval(keys, "", a, sig); err != nil {
		t.Fatalf("sealed-session approval does not verify: %v", err)
	}
	a.BoxPubkey = other.PublicKey().Bytes()
	if err := authreq.VerifyApproval(keys, "", a, sig); err == nil {
		t.Fatal("signature verifies with another box key")
	}
}

func TestOpenRejectsMalformedBoxPubkey(t *testing.T) {
	e := newEnv(t)
	for _, box := range []string{"not base64!", base64.StdEncoding.EncodeToString([]byte{1, 2, 3}), base64.RawURLEncoding.EncodeToString(make([]byte, 33)),
		base64.StdEncoding.EncodeToString(make([]byte, 32))} { // all-zero: a low-order point
		status, m := e.openRaw(pairReq(), fmt.Sprintf(`,"box_pubkey":%q`, box))
		if status != 400 || !strings.Contains(fmt.Sprint(m["message"]), "box_pubkey") {
			t.Errorf("box_pubkey %q → %d %v", box, status, m)
		}
	}
}

// Replicas that share the seal key publish, and sign with, the same key.
func TestReplicasShareTheSigningKey(t *testing.T) {
	e := newEnv(t)
	other, err := New(Options{Store: e.store, Sealer: e.srv.sealer, Login: MockLogin{}})
	if err != nil {
		t.Fatal(err)
	}
	if !other.signKey.Equal(e.srv.signKey) || other.signKID != e.publishedKeys()[0].ID {
		t.Fatal("two servers with one seal key sign with different keys")
	}
	if newEnv(t).srv.signKID == e.srv.signKID {
		t.Fatal("two seal keys derive the same signing key")
	}
}
