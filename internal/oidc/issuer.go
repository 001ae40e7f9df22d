package oidc

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"net/url"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/go-jose/go-jose/v4"
	"github.com/go-jose/go-jose/v4/jwt"
)

// Audience is the aud claim of every minted token: AWS STS.
const Audience = "sts.amazonaws.com"

// SubjectPrefix prefixes the wallet in the sub claim.
const SubjectPrefix = "agentkeys:agent:"

// WalletClaim names the wallet claim and the AWS session tag key.
const WalletClaim = "agentkeys_user_wallet"

// AccessClaim names the access-level claim and AWS session tag: AccessRead
// for a read-only agent, AccessWrite otherwise. It is emitted top level (for
// verifiers that read plain claims, such as SeaweedFS's ${jwt:…} policy
// variables) and as a transitive principal tag.
const AccessClaim = "agentkeys_access"

// Access levels carried by AccessClaim.
const (
	AccessRead  = "read"
	AccessWrite = "write"
)

// AWSTagsClaim carries AWS session tags (principal_tags,
// transitive_tag_keys) in the nested format AWS STS reads.
const AWSTagsClaim = "https://aws.amazon.com/tags"

// JWKSPath and DiscoveryPath are where the documents are served.
const (
	DiscoveryPath = "/.well-known/openid-configuration"
	JWKSPath      = "/.well-known/jwks.json"
)

// JWKSMaxAge is the Cache-Control max-age of the JWKS and discovery
// documents; it is well below CacheMargin.
const JWKSMaxAge = 5 * time.Minute

// ValidateIssuer checks an issuer URL: absolute, http(s), with a host, no
// trailing slash, query, fragment or user info. Plain http is accepted only
// for a loopback host unless allowInsecure.
func ValidateIssuer(issuer string, allowInsecure bool) error {
	if issuer == "" {
		return errors.New("issuer is empty")
	}
	u, err := url.Parse(issuer)
	if err != nil || !u.IsAbs() || u.Host == "" || u.Opaque != "" {
		return fmt.Errorf("issuer %q is not an absolute URL like https://broker.example.com", issuer)
	}
	switch {
	case u.Scheme != "https" && u.Scheme != "http":
		return fmt.Errorf("issuer %q: scheme must be https", issuer)
	case strings.HasSuffix(issuer, "/"):
		return fmt.Errorf("issuer %q must not end with a slash (verifiers compare it byte for byte with the iss claim)", issuer)
	case u.User != nil || u.RawQuery != "" || u.ForceQuery || u.Fragment != "" || strings.Contains(issuer, "#"):
		return fmt.Errorf("issuer %q must not carry user info, a query or a fragment", issuer)
	case u.Scheme == "http" && !allowInsecure && !isLoopbackHost(u.Hostname()):
		return fmt.Errorf("issuer %q uses plain http on a non-loopback host; AWS accepts only https issuers (set BROKER_OIDC_ALLOW_INSECURE_ISSUER=1 for a test deployment)", issuer)
	}
	return nil
}

func isLoopbackHost(h string) bool {
	if h == "localhost" {
		return true
	}
	h = strings.Trim(h, "[]")
	return h == "::1" || strings.HasPrefix(h, "127.")
}

// Config configures an Issuer.
type Config struct {
	Issuer  string        // validated with ValidateIssuer by the caller
	TTL     time.Duration // token lifetime, at most MaxTokenTTL
	KeyFile string        // key set file; created on first start
	Policy  Policy        // zero value means DefaultPolicy
	Now     func() time.Time
	Logger  *slog.Logger
}

// Issuer mints tokens and serves discovery and JWKS. It is safe for
// concurrent use; the key set is swapped atomically on reload.
type Issuer struct {
	issuer  string
	jwksURI string
	ttl     time.Duration
	policy  Policy
	path    string
	now     func() time.Time
	log     *slog.Logger

	state atomic.Pointer[loaded]

	reloadMu sync.Mutex
	fileID   fileIdentity
}

type loaded struct {
	set    *KeySet
	signer jose.Signer
	kid    string
}

type fileIdentity struct {
	mod  time.Time
	size int64
	ino  uint64
}

// NewIssuer loads (or creates) the key file and returns a ready issuer.
func NewIssuer(cfg Config) (*Issuer, error) {
	if cfg.TTL <= 0 || cfg.TTL > MaxTokenTTL {
		return nil, fmt.Errorf("token lifetime %v out of range (0, %v]", cfg.TTL, MaxTokenTTL)
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if cfg.Policy == (Policy{}) {
		cfg.Policy = DefaultPolicy
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	jwksURI, err := url.JoinPath(cfg.Issuer, JWKSPath)
	if err != nil {
		return nil, fmt.Errorf("issuer %q: %w", cfg.Issuer, err)
	}
	i := &Issuer{issuer: cfg.Issuer, jwksURI: jwksURI, ttl: cfg.TTL, policy: cfg.Policy,
		path: cfg.KeyFile, now: cfg.Now, log: cfg.Logger}
	id, _ := statIdentity(cfg.KeyFile)
	set, created, err := LoadOrCreate(cfg.KeyFile, cfg.Now())
	if err != nil {
		return nil, err
	}
	if created {
		i.log.Info("created OIDC key set", "path", cfg.KeyFile)
		id, _ = statIdentity(cfg.KeyFile)
	}
	if err := i.install(set); err != nil {
		return nil, err
	}
	i.fileID = id
	return i, nil
}

func (i *Issuer) install(set *KeySet) error {
	cur, ok := set.Current()
	if !ok {
		return errors.New("key set has no current key")
	}
	signer, err := jose.NewSigner(
		jose.SigningKey{Algorithm: jose.ES256, Key: jose.JSONWebKey{Key: cur.private, KeyID: cur.KID}},
		(&jose.SignerOptions{}).WithType("JWT"),
	)
	if err != nil {
		return fmt.Errorf("signer for key %s: %w", cur.KID, err)
	}
	i.state.Store(&loaded{set: set, signer: signer, kid: cur.KID})
	return nil
}

// Issuer returns the issuer URL.
func (i *Issuer) Issuer() string { return i.issuer }

// TTL returns the token lifetime.
func (i *Issuer) TTL() time.Duration { return i.ttl }

// KeySet returns the key set in use.
func (i *Issuer) KeySet() *KeySet { return i.state.Load().set }

// CurrentKID returns the id of the signing key.
func (i *Issuer) CurrentKID() string { return i.state.Load().kid }

// Token is a minted ID token.
type Token struct {
	JWT     string
	ID      string // jti
	KID     string
	Expires time.Time
}

type awsTags struct {
	PrincipalTags     map[string][]string `json:"principal_tags"`
	TransitiveTagKeys []string            `json:"transitive_tag_keys"`
}

type claims struct {
	jwt.Claims
	Wallet  string  `json:"agentkeys_user_wallet"`
	Access  string  `json:"agentkeys_access"`
	AWSTags awsTags `json:"https://aws.amazon.com/tags"`
}

// Subject says whom a token is for, what it may do and how long it may
// live at most.
type Subject struct {
	Wallet string
	Access string // AccessRead or AccessWrite; anything else is refused
	// NotAfter caps the token's expiry (the end of the caller's session);
	// zero means the issuer's TTL alone decides.
	NotAfter time.Time
}

// ErrExpired means the subject's NotAfter leaves no lifetime for a token.
var ErrExpired = errors.New("the token would expire before it is issued (NotAfter has passed)")

// Mint signs an ID token for s with the current key. The token expires at
// now+TTL or at s.NotAfter (rounded down to the second), whichever is
// earlier.
func (i *Issuer) Mint(s Subject) (Token, error) {
	if s.Access != AccessRead && s.Access != AccessWrite {
		return Token{}, fmt.Errorf("access level %q is neither %q nor %q", s.Access, AccessRead, AccessWrite)
	}
	wallet := s.Wallet
	st := i.state.Load()
	now := i.now().Truncate(time.Second)
	exp := now.Add(i.ttl)
	if !s.NotAfter.IsZero() {
		if na := s.NotAfter.Truncate(time.Second); na.Before(exp) {
			exp = na
		}
		if !exp.After(now) {
			return Token{}, ErrExpired
		}
	}
	var b [16]byte
	if _, err := rand.Read(b[:]); err != nil {
		return Token{}, fmt.Errorf("token id: %w", err)
	}
	jti := hex.EncodeToString(b[:])
	c := claims{
		Claims: jwt.Claims{
			Issuer:    i.issuer,
			Subject:   SubjectPrefix + wallet,
			Audience:  jwt.Audience{Audience},
			IssuedAt:  jwt.NewNumericDate(now),
			NotBefore: jwt.NewNumericDate(now),
			Expiry:    jwt.NewNumericDate(exp),
			ID:        jti,
		},
		Wallet: wallet,
		Access: s.Access,
		AWSTags: awsTags{
			PrincipalTags:     map[string][]string{WalletClaim: {wallet}, AccessClaim: {s.Access}},
			TransitiveTagKeys: []string{WalletClaim, AccessClaim},
		},
	}
	// Marshal the claims once and sign the bytes: jwt.Signed(…).Claims
	// would round-trip them through a map first, a third of a mint's CPU.
	payload, err := json.Marshal(c)
	if err != nil {
		return Token{}, fmt.Errorf("encode claims: %w", err)
	}
	obj, err := st.signer.Sign(payload)
	if err != nil {
		return Token{}, fmt.Errorf("sign token: %w", err)
	}
	raw, err := obj.CompactSerialize()
	if err != nil {
		return Token{}, fmt.Errorf("serialize token: %w", err)
	}
	return Token{JWT: raw, ID: jti, KID: st.kid, Expires: exp}, nil
}

// Discovery is the OpenID Provider metadata the broker serves.
type Discovery struct {
	Issuer                           string   `json:"issuer"`
	JWKSURI                          string   `json:"jwks_uri"`
	ResponseTypesSupported           []string `json:"response_types_supported"`
	SubjectTypesSupported            []string `json:"subject_types_supported"`
	IDTokenSigningAlgValuesSupported []string `json:"id_token_signing_alg_values_supported"`
	ScopesSupported                  []string `json:"scopes_supported"`
	TokenEndpointAuthMethods         []string `json:"token_endpoint_auth_methods_supported"`
	ClaimsSupported                  []string `json:"claims_supported"`
}

// Discovery returns the discovery document. It lists only claims the broker
// actually emits.
func (i *Issuer) Discovery() Discovery {
	return Discovery{
		Issuer:                           i.issuer,
		JWKSURI:                          i.jwksURI,
		ResponseTypesSupported:           []string{"id_token"},
		SubjectTypesSupported:            []string{"public"},
		IDTokenSigningAlgValuesSupported: []string{string(jose.ES256)},
		ScopesSupported:                  []string{"openid"},
		TokenEndpointAuthMethods:         []string{"none"},
		ClaimsSupported:                  []string{"iss", "sub", "aud", "iat", "nbf", "exp", "jti", WalletClaim, AccessClaim, AWSTagsClaim},
	}
}

// JWKS returns the published public keys.
func (i *Issuer) JWKS() jose.JSONWebKeySet {
	return i.state.Load().set.JWKS(i.now(), i.policy)
}

// DiscoveryHandler serves the discovery document.
func (i *Issuer) DiscoveryHandler() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		writeCached(w, i.Discovery())
	})
}

// JWKSHandler serves the JWKS.
func (i *Issuer) JWKSHandler() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		writeCached(w, i.JWKS())
	})
}

func writeCached(w http.ResponseWriter, v any) {
	body, err := json.Marshal(v)
	if err != nil {
		http.Error(w, `{"error":"internal","message":"internal: encoding failed"}`, http.StatusInternalServerError)
		return
	}
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", fmt.Sprintf("public, max-age=%d", int(JWKSMaxAge.Seconds())))
	w.Header().Set("X-Content-Type-Options", "nosniff")
	w.Write(body)
}

// Reload re-reads the key file if it changed since the last load (a
// `keys rotate` run by the operator, or a shared file updated by another
// replica) and reports whether a new key set was installed. On error the
// key set in use stays.
func (i *Issuer) Reload() (bool, error) {
	i.reloadMu.Lock()
	defer i.reloadMu.Unlock()
	id, err := statIdentity(i.path)
	if err != nil {
		return false, fmt.Errorf("stat key file: %w", err)
	}
	if id == i.fileID {
		return false, nil
	}
	set, err := Load(i.path)
	if err != nil {
		return false, err
	}
	old := i.state.Load().kid
	if err := i.install(set); err != nil {
		return false, err
	}
	i.fileID = id
	i.log.Info("reloaded OIDC key set", "path", i.path, "signing_kid", set.keys[0].KID, "previous_signing_kid", old, "published_keys", len(i.JWKS().Keys))
	return true, nil
}

// Watch reloads the key file every interval until ctx ends, calling
// changed (when not nil) after each reload that installed a changed key
// set. A failed reload is logged and the keys in use are kept.
func (i *Issuer) Watch(ctx context.Context, interval time.Duration, changed func()) {
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			ok, err := i.Reload()
			if err != nil {
				i.log.Error("OIDC key set reload failed; keeping the keys in use", "path", i.path, "err", err)
			} else if ok && changed != nil {
				changed()
			}
		}
	}
}

// Ready reports whether the issuer has a signing key and its file is still
// readable.
func (i *Issuer) Ready() error {
	if _, ok := i.state.Load().set.Current(); !ok {
		return errors.New("no signing key")
	}
	if _, err := os.Stat(i.path); err != nil {
		return fmt.Errorf("key file: %w", err)
	}
	return nil
}
