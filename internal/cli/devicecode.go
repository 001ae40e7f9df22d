package cli

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"time"
)

// Environment variables that select OIDC login.
const (
	EnvLoginIssuer   = "AGENTKEYS_LOGIN_OIDC_ISSUER"
	EnvLoginClientID = "AGENTKEYS_LOGIN_OIDC_CLIENT_ID"
)

// deviceLogin obtains an ID token from an OpenID provider with the OAuth
// 2.0 device authorization grant (RFC 8628): it shows the user a code and a
// URL on stderr and polls the token endpoint until the user approves,
// denies, or the code expires.
func deviceLogin(ctx context.Context, hc *http.Client, issuer, clientID string, errw io.Writer) (string, error) {
	issuer = strings.TrimRight(issuer, "/")
	var disc struct {
		Issuer     string `json:"issuer"`
		DeviceAuth string `json:"device_authorization_endpoint"`
		Token      string `json:"token_endpoint"`
	}
	if err := getJSON(ctx, hc, issuer+"/.well-known/openid-configuration", &disc); err != nil {
		return "", err
	}
	if disc.Issuer != issuer {
		return "", fmt.Errorf("the provider at %s names another issuer (%s)", issuer, disc.Issuer)
	}
	if disc.DeviceAuth == "" || disc.Token == "" {
		return "", errors.New("the provider does not offer the device authorization grant")
	}
	var da struct {
		DeviceCode              string `json:"device_code"`
		UserCode                string `json:"user_code"`
		VerificationURI         string `json:"verification_uri"`
		VerificationURIComplete string `json:"verification_uri_complete"`
		ExpiresIn               int    `json:"expires_in"`
		Interval                *int   `json:"interval"`
	}
	if _, err := postForm(ctx, hc, disc.DeviceAuth, url.Values{"client_id": {clientID}, "scope": {"openid"}}, &da); err != nil {
		return "", fmt.Errorf("device authorization: %w", err)
	}
	if da.DeviceCode == "" || da.UserCode == "" || da.VerificationURI == "" {
		return "", errors.New("device authorization: incomplete answer from the provider")
	}
	fmt.Fprintf(errw, "To log in, open %s and enter the code %s\n", da.VerificationURI, da.UserCode)
	if da.VerificationURIComplete != "" {
		fmt.Fprintf(errw, "(or open %s)\n", da.VerificationURIComplete)
	}
	interval := 5 * time.Second
	if da.Interval != nil {
		interval = time.Duration(max(*da.Interval, 0)) * time.Second
	}
	expires := 15 * time.Minute
	if da.ExpiresIn > 0 {
		expires = time.Duration(da.ExpiresIn) * time.Second
	}
	ctx, cancel := context.WithTimeout(ctx, expires)
	defer cancel()
	form := url.Values{"grant_type": {"urn:ietf:params:oauth:grant-type:device_code"}, "device_code": {da.DeviceCode}, "client_id": {clientID}}
	for {
		select {
		case <-ctx.Done():
			return "", errors.New("the login code expired before it was approved")
		case <-time.After(interval):
		}
		var tok struct {
			IDToken string `json:"id_token"`
			Error   string `json:"error"`
		}
		status, err := postForm(ctx, hc, disc.Token, form, &tok)
		if err != nil && status == 0 {
			return "", fmt.Errorf("token endpoint: %w", err)
		}
		switch tok.Error {
		case "":
			if status == http.StatusOK && tok.IDToken != "" {
				return tok.IDToken, nil
			}
			return "", errors.New("the provider answered without an ID token")
		case "authorization_pending":
		case "slow_down":
			interval += 5 * time.Second
		case "access_denied":
			return "", errors.New("the login was denied")
		case "expired_token":
			return "", errors.New("the login code expired before it was approved")
		default:
			return "", fmt.Errorf("token endpoint answered %s", tok.Error)
		}
	}
}

// postForm posts a form and decodes the JSON answer (also on 4xx, where
// OAuth puts its error codes). It returns the HTTP status (0 when the
// request did not complete).
func postForm(ctx context.Context, hc *http.Client, endpoint string, form url.Values, out any) (int, error) {
	rctx, cancel := context.WithTimeout(ctx, 15*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(rctx, http.MethodPost, endpoint, strings.NewReader(form.Encode()))
	if err != nil {
		return 0, err
	}
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.Header.Set("Accept", "application/json")
	resp, err := hc.Do(req)
	if err != nil {
		return 0, errors.New("unreachable")
	}
	defer resp.Body.Close()
	if err := json.NewDecoder(io.LimitReader(resp.Body, 1<<20)).Decode(out); err != nil {
		return resp.StatusCode, fmt.Errorf("HTTP %d with a malformed body", resp.StatusCode)
	}
	return resp.StatusCode, nil
}
