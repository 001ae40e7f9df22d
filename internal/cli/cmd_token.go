package cli

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"
	"time"

	jose "github.com/go-jose/go-jose/v4"
	"github.com/go-jose/go-jose/v4/jwt"
	"github.com/spf13/cobra"

	"github.com/agentkeys/agentkeys/internal/brokerclient"
	"github.com/agentkeys/agentkeys/internal/keychain"
)

// stsAudience is the audience the broker's JWTs carry.
const stsAudience = "sts.amazonaws.com"

// tokenBroker returns the session (the profile's, or sessionFile's) and a
// client of its broker, which is sent only broker tokens derived from the
// session by its backend.
func (a *App) tokenBroker(sessionFile string) (keychain.Session, *brokerclient.Client, error) {
	if sessionFile != "" {
		s, err := keychain.ReadSessionFile(sessionFile)
		if err != nil {
			return s, nil, err
		}
		c, err := a.newClient(s.Backend)
		if err != nil {
			return s, nil, err
		}
		b, err := a.brokerFor(&s, "", c)
		return s, b, err
	}
	m, err := a.LoadMaster()
	if err != nil {
		return keychain.Session{}, nil, err
	}
	b, err := a.brokerFor(&m.Session, a.Profile, m.Client)
	return m.Session, b, err
}

// runTokenOIDC mints a web-identity JWT (checked against the broker's JWKS
// with verify) and prints it.
func (a *App) runTokenOIDC(ctx context.Context, sessionFile string, verify bool) error {
	s, b, err := a.tokenBroker(sessionFile)
	if err != nil {
		return err
	}
	t, err := b.MintOIDC(ctx, s.Token)
	if err != nil {
		return err
	}
	if verify {
		sub, kid, err := verifyBrokerJWT(ctx, a.httpClient(), b.URL(), t.JWT)
		if err != nil {
			return fmt.Errorf("the broker's JWT does not verify: %w", err)
		}
		fmt.Fprintf(a.Err, "verified against %s/.well-known/jwks.json: sub=%s kid=%s aud=%s expires %s\n",
			b.URL(), sub, kid, stsAudience, t.Expiration.UTC().Format(time.RFC3339))
	}
	if a.JSON {
		return a.printJSON(map[string]any{"jwt": t.JWT, "wallet": t.Wallet, "expires_at": t.Expiration.UTC().Format(time.RFC3339), "verified": verify})
	}
	a.printf("%s\n", t.JWT)
	return nil
}

// runTokenAWS mints temporary AWS credentials and prints them as export
// lines (or credential_process JSON).
func (a *App) runTokenAWS(ctx context.Context, sessionFile, region string) error {
	s, b, err := a.tokenBroker(sessionFile)
	if err != nil {
		return err
	}
	c, err := b.MintAWS(ctx, s.Token)
	if err != nil {
		return err
	}
	if a.JSON {
		return a.printJSON(map[string]any{
			"Version": 1, "AccessKeyId": c.AccessKeyID, "SecretAccessKey": c.SecretAccessKey,
			"SessionToken": c.SessionToken, "Expiration": c.Expiration.UTC().Format(time.RFC3339),
		})
	}
	for _, kv := range c.Env(region) {
		a.printf("export %s\n", kv)
	}
	return nil
}

func (a *App) newTokenCmd() *cobra.Command {
	var sessionFile string
	var verify bool
	oidcCmd := &cobra.Command{
		Use:   "oidc",
		Short: "Mint a web-identity JWT for the session's wallet through the broker (printed on stdout)",
		Args:  exactArgs(0, "none"),
		RunE: func(cmd *cobra.Command, _ []string) error {
			return a.runTokenOIDC(cmdContext(cmd.Context()), sessionFile, verify)
		},
	}
	oidcCmd.Flags().BoolVar(&verify, "verify", false, "verify the JWT against the broker's discovery document and JWKS before printing it")

	var region string
	awsCmd := &cobra.Command{
		Use:   "aws",
		Short: "Mint temporary AWS credentials through the broker (export lines on stdout)",
		Args:  exactArgs(0, "none"),
		RunE: func(cmd *cobra.Command, _ []string) error {
			return a.runTokenAWS(cmdContext(cmd.Context()), sessionFile, region)
		},
	}
	awsCmd.Flags().StringVar(&region, "region", "", "also export AWS_REGION and AWS_DEFAULT_REGION")

	cmd := &cobra.Command{
		Use:   "token",
		Short: "Mint short-lived credentials through the broker for this profile's session (or --session-file)",
		Long: `Mint short-lived credentials through the broker for this profile's session (or --session-file).

The broker is never sent the session: the backend that issued it derives a
broker token (valid minutes, refused by every backend route but the broker's
validation, dead with the session), and only that goes to the broker. The
broker URL is the profile's (or the session file's "broker"); a different
--broker-url or ` + EnvBrokerURL + ` is refused.`,
	}
	cmd.PersistentFlags().StringVar(&sessionFile, "session-file", "", "use this session file (e.g. an agent's, from agent create --session-out) instead of the profile's")
	cmd.AddCommand(oidcCmd, awsCmd)
	return group(cmd)
}

// verifyBrokerJWT checks a JWT the way a relying party (AWS STS) would:
// discovery at the broker, the issuer it names, the signing key from its
// JWKS by kid, ES256, audience sts.amazonaws.com and the time claims.
func verifyBrokerJWT(ctx context.Context, hc *http.Client, brokerURL, raw string) (sub, kid string, err error) {
	var disc struct {
		Issuer  string `json:"issuer"`
		JWKSURI string `json:"jwks_uri"`
	}
	if err := getJSON(ctx, hc, brokerURL+"/.well-known/openid-configuration", &disc); err != nil {
		return "", "", err
	}
	if disc.Issuer == "" || disc.JWKSURI == "" {
		return "", "", errors.New("discovery document lacks issuer or jwks_uri")
	}
	var set jose.JSONWebKeySet
	if err := getJSON(ctx, hc, disc.JWKSURI, &set); err != nil {
		return "", "", err
	}
	tok, err := jwt.ParseSigned(raw, []jose.SignatureAlgorithm{jose.ES256})
	if err != nil {
		return "", "", errors.New("not an ES256 JWT")
	}
	if len(tok.Headers) != 1 || tok.Headers[0].KeyID == "" {
		return "", "", errors.New("JWT names no key id")
	}
	kid = tok.Headers[0].KeyID
	keys := set.Key(kid)
	if len(keys) == 0 {
		return "", "", fmt.Errorf("key %s is not in the broker's JWKS", kid)
	}
	var claims jwt.Claims
	if err := tok.Claims(keys[0].Key, &claims); err != nil {
		return "", "", errors.New("signature does not verify")
	}
	if err := claims.ValidateWithLeeway(jwt.Expected{Issuer: disc.Issuer, AnyAudience: jwt.Audience{stsAudience}, Time: time.Now()}, time.Minute); err != nil {
		return "", "", err
	}
	if !strings.HasPrefix(claims.Subject, "agentkeys:agent:") {
		return "", "", fmt.Errorf("unexpected subject %q", claims.Subject)
	}
	return claims.Subject, kid, nil
}

func getJSON(ctx context.Context, hc *http.Client, url string, out any) error {
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return err
	}
	resp, err := hc.Do(req)
	if err != nil {
		return fmt.Errorf("fetch %s: unreachable", url)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("fetch %s: HTTP %d", url, resp.StatusCode)
	}
	if err := json.NewDecoder(io.LimitReader(resp.Body, 1<<20)).Decode(out); err != nil {
		return fmt.Errorf("fetch %s: malformed JSON", url)
	}
	return nil
}
