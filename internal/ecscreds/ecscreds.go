// Package ecscreds serves AWS credentials the way ECS does for containers:
// an HTTP endpoint on loopback that AWS SDKs read through
// AWS_CONTAINER_CREDENTIALS_FULL_URI, every request carrying the random
// token given in AWS_CONTAINER_AUTHORIZATION_TOKEN (or the file named by
// AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE). It is how a long-running command
// outlives one credential lifetime: the SDK asks again when its
// credentials near expiry and gets fresh ones.
//
// Rules: the endpoint binds loopback only; the token is 32 random bytes,
// compared in constant time; the path is random too; answers are never
// cached (Cache-Control: no-store); a failed mint never reaches the client
// as anything but a fixed message.
package ecscreds

import (
	"context"
	"crypto/rand"
	"crypto/subtle"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/http"
	"sync"
	"time"

	"github.com/agentkeys/agentkeys/internal/brokerclient"
)

// Environment variables the SDKs read.
const (
	EnvFullURI   = "AWS_CONTAINER_CREDENTIALS_FULL_URI"
	EnvToken     = "AWS_CONTAINER_AUTHORIZATION_TOKEN"
	EnvTokenFile = "AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE"
)

// Shadowing are inherited variables that would make an AWS SDK use other
// credentials than the ones a command is given (static keys and profiles
// come before the container endpoint in the SDKs' chains): drop them from
// the environment of a command that gets the agent's credentials.
var Shadowing = []string{
	"AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN", "AWS_PROFILE", "AWS_DEFAULT_PROFILE",
	"AWS_CONTAINER_CREDENTIALS_RELATIVE_URI", EnvFullURI, EnvToken, EnvTokenFile,
	"AWS_WEB_IDENTITY_TOKEN_FILE", "AWS_ROLE_ARN",
}

// IsLoopback reports whether host is a loopback IP or "localhost".
func IsLoopback(host string) bool {
	if host == "localhost" {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}

// Fetch returns the credentials to serve now.
type Fetch func(context.Context) (brokerclient.AWSCredentials, error)

// Server is a running endpoint.
type Server struct {
	fetch Fetch
	token string
	url   string
	srv   *http.Server
	done  chan struct{}
}

// CheckLoopback refuses an address whose host is not a loopback IP or
// "localhost".
func CheckLoopback(addr string) error {
	host, _, err := net.SplitHostPort(addr)
	if err != nil {
		return fmt.Errorf("%q: want host:port such as 127.0.0.1:9911", addr)
	}
	if !IsLoopback(host) {
		return fmt.Errorf("%q: the AWS credential endpoint binds to loopback only (127.0.0.1 or [::1])", addr)
	}
	return nil
}

// Start listens on addr (loopback; "" means 127.0.0.1 on a free port) and
// serves what fetch returns, until Close.
func Start(addr string, fetch Fetch) (*Server, error) {
	if addr == "" {
		addr = "127.0.0.1:0"
	}
	if err := CheckLoopback(addr); err != nil {
		return nil, err
	}
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, err
	}
	s := &Server{fetch: fetch, token: randomHex(32), done: make(chan struct{})}
	path := "/agentkeys/aws/" + randomHex(8)
	s.url = "http://" + ln.Addr().String() + path
	mux := http.NewServeMux()
	mux.HandleFunc("GET "+path, s.serve)
	s.srv = &http.Server{Handler: mux, ReadHeaderTimeout: 5 * time.Second}
	go func() {
		defer close(s.done)
		s.srv.Serve(ln)
	}()
	return s, nil
}

func randomHex(n int) string {
	b := make([]byte, n)
	rand.Read(b)
	return hex.EncodeToString(b)
}

// URL is the endpoint (for AWS_CONTAINER_CREDENTIALS_FULL_URI).
func (s *Server) URL() string { return s.url }

// Token is the authorization token every request must carry.
func (s *Server) Token() string { return s.token }

// Env is what a command gets instead of static key variables.
func (s *Server) Env() []string {
	return []string{EnvFullURI + "=" + s.url, EnvToken + "=" + s.token}
}

// Close stops the endpoint.
func (s *Server) Close() error {
	err := s.srv.Close()
	<-s.done
	return err
}

func (s *Server) serve(w http.ResponseWriter, r *http.Request) {
	if subtle.ConstantTimeCompare([]byte(r.Header.Get("Authorization")), []byte(s.token)) != 1 {
		writeError(w, http.StatusUnauthorized, "AccessDenied", "missing or wrong authorization token")
		return
	}
	c, err := s.fetch(r.Context())
	if err != nil {
		writeError(w, http.StatusServiceUnavailable, "CredentialsUnavailable", "the broker did not mint AWS credentials; see the log of the process serving this endpoint")
		return
	}
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	json.NewEncoder(w).Encode(map[string]string{
		"AccessKeyId": c.AccessKeyID, "SecretAccessKey": c.SecretAccessKey,
		"Token": c.SessionToken, "Expiration": c.Expiration.UTC().Format(time.RFC3339),
	})
}

func writeError(w http.ResponseWriter, status int, code, msg string) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	json.NewEncoder(w).Encode(map[string]string{"error": code, "code": code, "message": msg})
}

// RefreshAt is when a credential valid from now until exp should be
// replaced: a fifth of its lifetime before expiry, at least 10 s and at
// most 5 minutes before.
func RefreshAt(now, exp time.Time) time.Time {
	margin := exp.Sub(now) / 5
	margin = max(margin, 10*time.Second)
	margin = min(margin, 5*time.Minute)
	return exp.Add(-margin)
}

// Cache holds one set of credentials and mints new ones (one mint at a
// time) once RefreshAt has passed. If a mint fails while the old ones are
// still valid, it keeps serving them.
type Cache struct {
	mint Fetch
	now  func() time.Time

	mu    sync.Mutex
	cur   brokerclient.AWSCredentials
	fresh time.Time // mint anew after this
}

// NewCache returns a Cache that starts with first (already minted).
func NewCache(first brokerclient.AWSCredentials, mint Fetch) *Cache {
	c := &Cache{mint: mint, now: time.Now, cur: first}
	c.fresh = RefreshAt(c.now(), first.Expiration)
	return c
}

// Get returns the current credentials, minted anew when due.
func (c *Cache) Get(ctx context.Context) (brokerclient.AWSCredentials, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	now := c.now()
	if now.Before(c.fresh) {
		return c.cur, nil
	}
	n, err := c.mint(ctx)
	if err != nil {
		if now.Before(c.cur.Expiration) {
			return c.cur, nil
		}
		return brokerclient.AWSCredentials{}, errors.New("mint failed")
	}
	c.cur, c.fresh = n, RefreshAt(c.now(), n.Expiration)
	return n, nil
}
