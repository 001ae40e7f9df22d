package cli

import (
	"context"
	"crypto/rand"
	"crypto/subtle"
	"encoding/hex"
	"encoding/json"
	"errors"
	"net"
	"net/http"
	"sync"
	"time"

	"github.com/agentkeys/agentkeys/internal/brokerclient"
)

// awsRefreshBefore is how long before expiry the server mints anew.
const awsRefreshBefore = 5 * time.Minute

// awsServer is an ECS-style container credential endpoint on loopback
// (what AWS SDKs read through AWS_CONTAINER_CREDENTIALS_FULL_URI and
// AWS_CONTAINER_AUTHORIZATION_TOKEN): it hands out the broker's credentials
// for one wallet and mints new ones shortly before they expire, so a
// long-running command outlives one credential lifetime. Every request
// must carry the random authorization token (compared in constant time).
type awsServer struct {
	mint  func(context.Context) (brokerclient.AWSCredentials, error)
	token string
	url   string
	srv   *http.Server

	mu  sync.Mutex
	cur brokerclient.AWSCredentials
}

// startAWSServer listens on 127.0.0.1 and serves cur (already minted),
// refreshed with mint.
func startAWSServer(cur brokerclient.AWSCredentials, mint func(context.Context) (brokerclient.AWSCredentials, error)) (*awsServer, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	b := make([]byte, 32)
	rand.Read(b)
	s := &awsServer{mint: mint, token: hex.EncodeToString(b), cur: cur}
	b = make([]byte, 8)
	rand.Read(b)
	path := "/agentkeys/aws/" + hex.EncodeToString(b)
	s.url = "http://" + ln.Addr().String() + path
	mux := http.NewServeMux()
	mux.HandleFunc("GET "+path, s.serve)
	s.srv = &http.Server{Handler: mux, ReadHeaderTimeout: 5 * time.Second}
	go s.srv.Serve(ln)
	return s, nil
}

// Env is what the command gets instead of the static key variables.
func (s *awsServer) Env() []string {
	return []string{"AWS_CONTAINER_CREDENTIALS_FULL_URI=" + s.url, "AWS_CONTAINER_AUTHORIZATION_TOKEN=" + s.token}
}

func (s *awsServer) Close() { s.srv.Close() }

func (s *awsServer) serve(w http.ResponseWriter, r *http.Request) {
	if subtle.ConstantTimeCompare([]byte(r.Header.Get("Authorization")), []byte(s.token)) != 1 {
		writeAWSError(w, http.StatusUnauthorized, "AccessDenied", "missing or wrong authorization token")
		return
	}
	c, err := s.current(r.Context())
	if err != nil {
		writeAWSError(w, http.StatusServiceUnavailable, "CredentialsUnavailable", "the broker did not mint AWS credentials; see agentkeys' stderr")
		return
	}
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	json.NewEncoder(w).Encode(map[string]string{
		"AccessKeyId": c.AccessKeyID, "SecretAccessKey": c.SecretAccessKey,
		"Token": c.SessionToken, "Expiration": c.Expiration.UTC().Format(time.RFC3339),
	})
}

// current returns the credentials, minted anew when they are about to
// expire (requests wait for one mint at a time).
func (s *awsServer) current(ctx context.Context) (brokerclient.AWSCredentials, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if time.Until(s.cur.Expiration) > awsRefreshBefore {
		return s.cur, nil
	}
	c, err := s.mint(ctx)
	if err != nil {
		if time.Until(s.cur.Expiration) > 0 {
			return s.cur, nil
		}
		return brokerclient.AWSCredentials{}, errors.New("mint failed")
	}
	s.cur = c
	return c, nil
}

func writeAWSError(w http.ResponseWriter, status int, code, msg string) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	json.NewEncoder(w).Encode(map[string]string{"error": code, "code": code, "message": msg})
}
