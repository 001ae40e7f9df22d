package oidc_test

import (
	"context"
	"crypto"
	"encoding/base64"
	"encoding/json"
	"errors"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	gooidc "github.com/coreos/go-oidc/v3/oidc"
	"github.com/go-jose/go-jose/v4"

	"github.com/agentkeys/agentkeys/internal/oidc"
	"github.com/agentkeys/agentkeys/internal/oidc/oidctest"
	"github.com/agentkeys/agentkeys/internal/testkit"
)

const wallet = "0x1111111111111111111111111111111111111111"

func newClock() *testkit.Clock { return testkit.NewClock(time.Now().Truncate(time.Second)) }

// server serves an issuer's discovery and JWKS on loopback, so that the
// issuer URL is the server's own.
type server struct {
	*httptest.Server
	iss *oidc.Issuer
}

func newServer(t *testing.T, c *testkit.Clock, ttl time.Duration) (*server, string) {
	t.Helper()
	s := &server{}
	mux := http.NewServeMux()
	mux.HandleFunc("GET "+oidc.DiscoveryPath, func(w http.ResponseWriter, r *http.Request) { s.iss.DiscoveryHandler().ServeHTTP(w, r) })
	mux.HandleFunc("GET "+oidc.JWKSPath, func(w http.ResponseWriter, r *http.Request) { s.iss.JWKSHandler().ServeHTTP(w, r) })
	s.Server = httptest.NewServer(mux)
	t.Cleanup(s.Close)
	keyFile := filepath.Join(t.TempDir(), "broker", "oidc-keys.json")
	iss, err := oidc.NewIssuer(oidc.Config{Issuer: s.URL, TTL: ttl, KeyFile: keyFile, Now: c.Now})
	if err != nil {
		t.Fatal(err)
	}
	s.iss = iss
	return s, keyFile
}

func verifier(t *testing.T, s *server, c *testkit.Clock) *gooidc.IDTokenVerifier {
	t.Helper()
	p, err := gooidc.NewProvider(context.Background(), s.URL)
	if err != nil {
		t.Fatalf("go-oidc NewProvider: %v", err)
	}
	return p.Verifier(&gooidc.Config{ClientID: oidc.Audience, Now: c.Now})
}

// mintVerified mints a token for sub, has v (go-oidc) verify it and
// returns the token and its claims.
func mintVerified(t *testing.T, s *server, v *gooidc.IDTokenVerifier, sub oidc.Subject) (oidc.Token, oidctest.Claims) {
	t.Helper()
	tok, err := s.iss.Mint(sub)
	if err != nil {
		t.Fatal(err)
	}
	idt, err := v.Verify(context.Background(), tok.JWT)
	if err != nil {
		t.Fatalf("go-oidc rejected the token: %v", err)
	}
	var cl oidctest.Claims
	if err := idt.Claims(&cl); err != nil {
		t.Fatal(err)
	}
	return tok, cl
}

// snapshotVerifier verifies with the JWKS as fetched now, like a relying
// party that caches it.
func snapshotVerifier(t *testing.T, s *server, c *testkit.Clock) *gooidc.IDTokenVerifier {
	t.Helper()
	set := oidctest.FetchJWKS(t, s.URL+oidc.JWKSPath)
	var pubs []crypto.PublicKey
	for _, k := range set.Keys {
		pubs = append(pubs, k.Key)
	}
	return gooidc.NewVerifier(s.URL, &gooidc.StaticKeySet{PublicKeys: pubs},
		&gooidc.Config{ClientID: oidc.Audience, Now: c.Now, SupportedSigningAlgs: []string{"ES256"}})
}

func TestMintedTokenVerifiesWithGoOIDC(t *testing.T) {
	c := newClock()
	s, _ := newServer(t, c, 5*time.Minute)
	v := verifier(t, s, c)
	tok, cl := mintVerified(t, s, v, oidc.Subject{Wallet: wallet, Access: oidc.AccessWrite})
	now := c.Now().Unix()
	if cl.Iss != s.URL || cl.Sub != "agentkeys:agent:"+wallet || cl.Aud != "sts.amazonaws.com" || cl.Wallet != wallet {
		t.Errorf("claims = %+v", cl)
	}
	if cl.Iat != now || cl.Nbf != now || cl.Exp != now+300 || tok.Expires.Unix() != cl.Exp {
		t.Errorf("times iat=%d nbf=%d exp=%d, now=%d", cl.Iat, cl.Nbf, cl.Exp, now)
	}
	if len(cl.Jti) < 32 || cl.Jti != tok.ID {
		t.Errorf("jti = %q", cl.Jti)
	}
	if got := cl.Tags.PrincipalTags["agentkeys_user_wallet"]; len(got) != 1 || got[0] != wallet {
		t.Errorf("principal_tags = %v", cl.Tags.PrincipalTags)
	}
	if got := cl.Tags.PrincipalTags["agentkeys_access"]; cl.Access != "write" || len(got) != 1 || got[0] != "write" {
		t.Errorf("agentkeys_access = %q, principal_tags = %v", cl.Access, cl.Tags.PrincipalTags)
	}
	if strings.Join(cl.Tags.TransitiveTagKeys, ",") != "agentkeys_user_wallet,agentkeys_access" {
		t.Errorf("transitive_tag_keys = %v", cl.Tags.TransitiveTagKeys)
	}
	// Only the AWS nested tag format is emitted.
	payload, _ := base64.RawURLEncoding.DecodeString(strings.Split(tok.JWT, ".")[1])
	if strings.Contains(string(payload), `"https://aws.amazon.com/tags/principal_tags"`) {
		t.Error("flat principal_tags claim emitted")
	}
	header, _ := base64.RawURLEncoding.DecodeString(strings.Split(tok.JWT, ".")[0])
	var h struct{ Alg, Kid, Typ string }
	json.Unmarshal(header, &h)
	if h.Alg != "ES256" || h.Kid != s.iss.CurrentKID() || h.Typ != "JWT" {
		t.Errorf("header = %+v", h)
	}

	tok2, _ := s.iss.Mint(oidc.Subject{Wallet: wallet, Access: oidc.AccessWrite})
	if tok2.ID == tok.ID {
		t.Error("two tokens share a jti")
	}
	// A token for another audience or after expiry is rejected.
	c.Advance(5*time.Minute + time.Second)
	if _, err := v.Verify(context.Background(), tok.JWT); err == nil {
		t.Error("expired token accepted")
	}
}

// A read-only subject's token says "read" both as a plain claim and as a
// transitive AWS principal tag; a token never outlives the subject's
// NotAfter; an unknown access level is refused rather than defaulted.
func TestMintAccessLevelAndNotAfter(t *testing.T) {
	c := newClock()
	s, _ := newServer(t, c, 5*time.Minute)
	v := verifier(t, s, c)
	now := c.Now()
	for _, tc := range []struct {
		name     string
		sub      oidc.Subject
		wantExp  int64
		wantRead bool
	}{
		{"read-only, session outlives the TTL", oidc.Subject{Wallet: wallet, Access: oidc.AccessRead, NotAfter: now.Add(30 * 24 * time.Hour)}, now.Add(5 * time.Minute).Unix(), true},
		{"write, session ends in 90.7 s", oidc.Subject{Wallet: wallet, Access: oidc.AccessWrite, NotAfter: now.Add(90*time.Second + 700*time.Millisecond)}, now.Add(90 * time.Second).Unix(), false},
		{"no cap", oidc.Subject{Wallet: wallet, Access: oidc.AccessRead}, now.Add(5 * time.Minute).Unix(), true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			tok, cl := mintVerified(t, s, v, tc.sub)
			if cl.Exp != tc.wantExp || tok.Expires.Unix() != cl.Exp {
				t.Errorf("exp = %d (Token.Expires %d), want %d", cl.Exp, tok.Expires.Unix(), tc.wantExp)
			}
			want := "write"
			if tc.wantRead {
				want = "read"
			}
			if cl.Access != want || strings.Join(cl.Tags.PrincipalTags["agentkeys_access"], ",") != want ||
				!strings.Contains(strings.Join(cl.Tags.TransitiveTagKeys, ","), "agentkeys_access") {
				t.Errorf("access claim %q, tags %+v, want %q", cl.Access, cl.Tags, want)
			}
		})
	}
	if _, err := s.iss.Mint(oidc.Subject{Wallet: wallet, Access: oidc.AccessWrite, NotAfter: now.Add(500 * time.Millisecond)}); !errors.Is(err, oidc.ErrExpired) {
		t.Errorf("NotAfter within the current second: %v, want ErrExpired", err)
	}
	if _, err := s.iss.Mint(oidc.Subject{Wallet: wallet, Access: oidc.AccessWrite, NotAfter: now.Add(-time.Hour)}); !errors.Is(err, oidc.ErrExpired) {
		t.Errorf("NotAfter in the past: %v, want ErrExpired", err)
	}
	for _, bad := range []string{"", "admin", "READ"} {
		if _, err := s.iss.Mint(oidc.Subject{Wallet: wallet, Access: bad}); err == nil {
			t.Errorf("access level %q accepted", bad)
		}
	}
}

func TestDiscoveryAndJWKS(t *testing.T) {
	c := newClock()
	s, _ := newServer(t, c, 5*time.Minute)
	resp, err := http.Get(s.URL + oidc.DiscoveryPath)
	if err != nil {
		t.Fatal(err)
	}
	var d map[string]any
	json.NewDecoder(resp.Body).Decode(&d)
	resp.Body.Close()
	if d["issuer"] != s.URL || d["jwks_uri"] != s.URL+"/.well-known/jwks.json" {
		t.Errorf("discovery = %v", d)
	}
	for field, want := range map[string]string{
		"response_types_supported":              "id_token",
		"subject_types_supported":               "public",
		"id_token_signing_alg_values_supported": "ES256",
		"token_endpoint_auth_methods_supported": "none",
	} {
		if l, _ := d[field].([]any); len(l) == 0 || l[0] != want {
			t.Errorf("%s = %v, want [%s]", field, d[field], want)
		}
	}
	claims, _ := json.Marshal(d["claims_supported"])
	for _, c := range []string{"sub", "exp", "jti", "nbf", "agentkeys_user_wallet", "agentkeys_access", "https://aws.amazon.com/tags"} {
		if !strings.Contains(string(claims), `"`+c+`"`) {
			t.Errorf("claims_supported lacks %s", c)
		}
	}
	if !strings.Contains(resp.Header.Get("Cache-Control"), "max-age=") {
		t.Errorf("discovery Cache-Control = %q", resp.Header.Get("Cache-Control"))
	}

	resp, err = http.Get(s.URL + oidc.JWKSPath)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if cc := resp.Header.Get("Cache-Control"); !strings.Contains(cc, "max-age=300") {
		t.Errorf("JWKS Cache-Control = %q", cc)
	}
	var raw struct {
		Keys []map[string]string `json:"keys"`
	}
	json.NewDecoder(resp.Body).Decode(&raw)
	if len(raw.Keys) != 2 {
		t.Fatalf("JWKS has %d keys, want current + next", len(raw.Keys))
	}
	if raw.Keys[0]["kid"] != s.iss.CurrentKID() {
		t.Errorf("keys[0] is %s, want the signing key %s", raw.Keys[0]["kid"], s.iss.CurrentKID())
	}
	for _, k := range raw.Keys {
		if k["kty"] != "EC" || k["crv"] != "P-256" || k["alg"] != "ES256" || k["use"] != "sig" || k["kid"] == "" {
			t.Errorf("JWK = %v", k)
		}
		for _, coord := range []string{"x", "y"} {
			if b, err := base64.RawURLEncoding.DecodeString(k[coord]); err != nil || len(b) != 32 {
				t.Errorf("%s not a 32-byte base64url coordinate: %q", coord, k[coord])
			}
		}
		if _, ok := k["d"]; ok {
			t.Fatal("JWKS publishes a private key")
		}
	}
}

func TestRotationKeepsVerifiersWorking(t *testing.T) {
	c := newClock()
	ttl := time.Hour
	s, keyFile := newServer(t, c, ttl)
	live := verifier(t, s, c)
	cached := snapshotVerifier(t, s, c) // a relying party that cached the JWKS before the rotation
	before, err := s.iss.Mint(oidc.Subject{Wallet: wallet, Access: oidc.AccessWrite})
	if err != nil {
		t.Fatal(err)
	}
	oldKID := s.iss.CurrentKID()
	nextKey, _ := s.iss.KeySet().Next()

	// Too soon: the next key has not been published long enough.
	c.Advance(oidc.DefaultPublishDelay / 2)
	if _, err := oidc.Rotate(keyFile, c.Now(), oidc.DefaultPolicy, false); !errors.Is(err, oidc.ErrRotationTooSoon) {
		t.Fatalf("early rotation = %v, want ErrRotationTooSoon", err)
	}

	c.Advance(oidc.DefaultPublishDelay)
	rotated, err := oidc.Rotate(keyFile, c.Now(), oidc.DefaultPolicy, false)
	if err != nil {
		t.Fatal(err)
	}
	if changed, err := s.iss.Reload(); err != nil || !changed {
		t.Fatalf("Reload after rotation = %v, %v", changed, err)
	}
	if s.iss.CurrentKID() != nextKey.KID {
		t.Fatalf("signing key %s, want the promoted next key %s", s.iss.CurrentKID(), nextKey.KID)
	}
	if cur, _ := rotated.Current(); cur.KID == oldKID {
		t.Fatal("rotation kept the old signing key")
	}
	after, err := s.iss.Mint(oidc.Subject{Wallet: wallet, Access: oidc.AccessWrite})
	if err != nil {
		t.Fatal(err)
	}
	for name, v := range map[string]*gooidc.IDTokenVerifier{"live JWKS": live, "JWKS cached before rotation": cached} {
		for tokName, tok := range map[string]oidc.Token{"pre-rotation token": before, "post-rotation token": after} {
			if _, err := v.Verify(context.Background(), tok.JWT); err != nil {
				t.Errorf("%s rejected the %s: %v", name, tokName, err)
			}
		}
	}
	states := map[oidc.KeyState]int{}
	for _, k := range s.iss.KeySet().Keys() {
		states[k.State]++
	}
	if states[oidc.StateCurrent] != 1 || states[oidc.StateNext] != 1 || states[oidc.StateRetired] != 1 {
		t.Fatalf("key states after rotation = %v", states)
	}

	// The retired key stays published for the longest token life plus the
	// cache margin, then disappears.
	c.Advance(oidc.DefaultRetention - time.Second)
	if !jwksHas(s.iss.JWKS(), oldKID) {
		t.Fatal("retired key unpublished before its tokens could have expired")
	}
	c.Advance(2 * time.Second)
	if jwksHas(s.iss.JWKS(), oldKID) {
		t.Fatal("retired key still published after the retention window")
	}
	lax := gooidc.NewVerifier(s.URL, gooidc.NewRemoteKeySet(context.Background(), s.URL+oidc.JWKSPath),
		&gooidc.Config{ClientID: oidc.Audience, SkipExpiryCheck: true, SupportedSigningAlgs: []string{"ES256"}})
	if _, err := lax.Verify(context.Background(), before.JWT); err == nil {
		t.Fatal("a token of a key past retention still verifies against the served JWKS")
	}
	// The next rotation drops it from the file too.
	again, err := oidc.Rotate(keyFile, c.Now(), oidc.DefaultPolicy, false)
	if err != nil {
		t.Fatal(err)
	}
	for _, k := range again.Keys() {
		if k.KID == oldKID {
			t.Fatal("expired retired key kept in the key file")
		}
	}
}

func jwksHas(set jose.JSONWebKeySet, kid string) bool {
	return len(set.Key(kid)) > 0
}

func TestForcedRotation(t *testing.T) {
	c := newClock()
	_, keyFile := newServer(t, c, time.Hour)
	set, err := oidc.Rotate(keyFile, c.Now(), oidc.DefaultPolicy, true)
	if err != nil {
		t.Fatalf("forced rotation: %v", err)
	}
	if len(set.Keys()) != 3 {
		t.Fatalf("keys after forced rotation: %d", len(set.Keys()))
	}
}

func TestKeyFilePersistsAndIsPrivate(t *testing.T) {
	c := newClock()
	dir := t.TempDir()
	path := filepath.Join(dir, "state", "oidc-keys.json")
	a, created, err := oidc.LoadOrCreate(path, c.Now())
	if err != nil || !created {
		t.Fatalf("create: %v %v", created, err)
	}
	st, _ := os.Stat(path)
	if st.Mode().Perm() != 0o600 {
		t.Fatalf("key file mode %04o, want 0600", st.Mode().Perm())
	}
	if dst, _ := os.Stat(filepath.Dir(path)); dst.Mode().Perm() != 0o700 {
		t.Fatalf("key dir mode %04o, want 0700", dst.Mode().Perm())
	}
	b, created, err := oidc.LoadOrCreate(path, c.Now())
	if err != nil || created {
		t.Fatalf("reload: %v %v", created, err)
	}
	ka, kb := a.JWKS(c.Now(), oidc.DefaultPolicy), b.JWKS(c.Now(), oidc.DefaultPolicy)
	ja, _ := json.Marshal(ka)
	jb, _ := json.Marshal(kb)
	if string(ja) != string(jb) {
		t.Fatal("key set changed across restarts")
	}
	for _, mode := range []os.FileMode{0o640, 0o604, 0o644} {
		os.Chmod(path, mode)
		if _, err := oidc.Load(path); err == nil || !strings.Contains(err.Error(), "chmod 600") {
			t.Errorf("mode %04o: Load = %v, want refusal", mode, err)
		}
	}
}

func TestConcurrentFirstStartAgree(t *testing.T) {
	path := filepath.Join(t.TempDir(), "keys.json")
	var wg sync.WaitGroup
	kids := make([]string, 8)
	for i := range kids {
		wg.Go(func() {
			s, _, err := oidc.LoadOrCreate(path, time.Now())
			if err != nil {
				t.Error(err)
				return
			}
			cur, _ := s.Current()
			kids[i] = cur.KID
		})
	}
	wg.Wait()
	for _, k := range kids[1:] {
		if k != kids[0] {
			t.Fatalf("replicas starting together disagree on the key: %v", kids)
		}
	}
}

func TestReloadKeepsKeysOnBadFile(t *testing.T) {
	c := newClock()
	s, keyFile := newServer(t, c, time.Hour)
	kid := s.iss.CurrentKID()
	if changed, err := s.iss.Reload(); err != nil || changed {
		t.Fatalf("Reload of an unchanged file = %v, %v", changed, err)
	}
	if err := os.WriteFile(keyFile, []byte(`{"version":1,"keys":[]}`), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := s.iss.Reload(); err == nil {
		t.Fatal("Reload accepted a key set without a current key")
	}
	if s.iss.CurrentKID() != kid {
		t.Fatal("bad reload replaced the signing key")
	}
	if _, err := s.iss.Mint(oidc.Subject{Wallet: wallet, Access: oidc.AccessWrite}); err != nil {
		t.Fatal(err)
	}
}

func TestWatchPicksUpRotation(t *testing.T) {
	c := newClock()
	s, keyFile := newServer(t, c, time.Hour)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	changed := make(chan struct{}, 1)
	go s.iss.Watch(ctx, 10*time.Millisecond, func() {
		select {
		case changed <- struct{}{}:
		default:
		}
	})
	set, err := oidc.Rotate(keyFile, c.Now(), oidc.DefaultPolicy, true)
	if err != nil {
		t.Fatal(err)
	}
	want, _ := set.Current()
	select {
	case <-changed:
	case <-time.After(5 * time.Second):
		t.Fatal("running issuer did not pick up the rotation")
	}
	if got := s.iss.CurrentKID(); got != want.KID {
		t.Fatalf("after the reload the issuer signs with %q, want the rotated %q", got, want.KID)
	}
}

func TestLegacySingleKeyFile(t *testing.T) {
	// The original broker's format: {"kid","private_key_pem"}.
	c := newClock()
	path := filepath.Join(t.TempDir(), "oidc-keypair.json")
	pemText := freshPEM(t)
	legacy, _ := json.Marshal(map[string]string{"kid": "v1-1777777777", "private_key_pem": pemText})
	os.WriteFile(path, legacy, 0o600)
	iss, err := oidc.NewIssuer(oidc.Config{Issuer: "https://oidc.test.invalid", TTL: time.Minute, KeyFile: path, Now: c.Now})
	if err != nil {
		t.Fatal(err)
	}
	if iss.CurrentKID() != "v1-1777777777" || len(iss.JWKS().Keys) != 1 {
		t.Fatalf("legacy import: kid %s, %d keys", iss.CurrentKID(), len(iss.JWKS().Keys))
	}
	// The first rotation only publishes a next key; the legacy key signs on.
	set, err := oidc.Rotate(path, c.Now(), oidc.DefaultPolicy, false)
	if err != nil {
		t.Fatal(err)
	}
	if cur, _ := set.Current(); cur.KID != "v1-1777777777" || len(set.Keys()) != 2 {
		t.Fatalf("after first rotation of a legacy file: %+v", set.Keys())
	}
}

// freshPEM creates a key file and digs the current key's PEM out.
func freshPEM(t *testing.T) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), "k.json")
	if _, _, err := oidc.LoadOrCreate(path, time.Now()); err != nil {
		t.Fatal(err)
	}
	data, _ := os.ReadFile(path)
	var f struct {
		Keys []struct {
			State         string `json:"state"`
			PrivateKeyPEM string `json:"private_key_pem"`
		} `json:"keys"`
	}
	json.Unmarshal(data, &f)
	for _, k := range f.Keys {
		if k.State == "current" {
			return k.PrivateKeyPEM
		}
	}
	t.Fatal("no current key")
	return ""
}

func TestValidateIssuer(t *testing.T) {
	good := []string{"https://broker.example.com", "https://broker.example.com:8443", "https://example.com/oidc", "http://127.0.0.1:8091", "http://localhost:8091", "http://[::1]:8091"}
	bad := []string{"", "broker.example.com", "https://broker.example.com/", "ftp://x", "https://", "https://user:pw@x.com", "https://x.com?a=b", "https://x.com#f", "http://broker.example.com", "/relative"}
	for _, s := range good {
		if err := oidc.ValidateIssuer(s, false); err != nil {
			t.Errorf("ValidateIssuer(%q) = %v", s, err)
		}
	}
	for _, s := range bad {
		if err := oidc.ValidateIssuer(s, false); err == nil {
			t.Errorf("ValidateIssuer(%q) accepted", s)
		}
	}
	if err := oidc.ValidateIssuer("http://broker.internal", true); err != nil {
		t.Errorf("insecure issuer with explicit opt-in: %v", err)
	}
}

func TestKeyFileErrorsDoNotLeakKeys(t *testing.T) {
	path := filepath.Join(t.TempDir(), "k.json")
	if _, _, err := oidc.LoadOrCreate(path, time.Now()); err != nil {
		t.Fatal(err)
	}
	data, _ := os.ReadFile(path)
	// Break the kid so the file no longer matches its keys.
	broken := strings.Replace(string(data), `"kid": "`, `"kid": "X`, 1)
	os.WriteFile(path, []byte(broken), 0o600)
	_, err := oidc.Load(path)
	if err == nil {
		t.Fatal("kid mismatch accepted")
	}
	if strings.Contains(err.Error(), "-----BEGIN") || strings.Contains(err.Error(), "MIG") {
		t.Fatalf("error leaks key material: %v", err)
	}
}
