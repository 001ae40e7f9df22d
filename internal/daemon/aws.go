package daemon

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"time"

	"github.com/agentkeys/agentkeys/internal/backendclient"
	"github.com/agentkeys/agentkeys/internal/keychain"
)

// CredentialProcessOutput is the AWS credential_process document
// (Version 1).
type CredentialProcessOutput struct {
	Version         int    `json:"Version"`
	AccessKeyID     string `json:"AccessKeyId"`
	SecretAccessKey string `json:"SecretAccessKey"`
	SessionToken    string `json:"SessionToken,omitempty"`
	Expiration      string `json:"Expiration,omitempty"`
}

// CredentialProcessOptions say how `agentkeys-daemon aws
// credential-process` gets credentials.
type CredentialProcessOptions struct {
	// Socket, when set, asks the running daemon (which caches them).
	Socket string
	// Otherwise the stored session is used to call the broker directly.
	SessionFile string
	SessionID   string
	Store       *keychain.Store
	BrokerURL   string
	// TrySocket asks the default socket first when neither Socket nor a
	// session source is given.
	TrySocket bool
}

// CredentialProcess returns the credential_process JSON.
func CredentialProcess(ctx context.Context, o CredentialProcessOptions) ([]byte, error) {
	var res AWSResult
	useSocket := o.Socket != ""
	if !useSocket && o.TrySocket && o.SessionFile == "" && o.SessionID == "" {
		if c, err := DialSocket(ctx, DefaultSocketPath()); err == nil {
			c.Close()
			o.Socket, useSocket = DefaultSocketPath(), true
		}
	}
	if useSocket {
		c, err := DialSocket(ctx, o.Socket)
		if err != nil {
			return nil, err
		}
		defer c.Close()
		if res, err = c.AWSCredentials(ctx); err != nil {
			return nil, err
		}
	} else {
		ks, err := loadForCLI(o.SessionFile, o.SessionID, o.Store)
		if err != nil {
			return nil, err
		}
		url, err := BindBroker(o.BrokerURL, ks.Broker, "the session")
		if err != nil {
			return nil, err
		}
		if url == "" {
			return nil, errors.New("no broker: pass --broker-url or set AGENTKEYS_BROKER_URL (or --socket to ask a running daemon)")
		}
		backend, err := backendclient.New(ks.Backend)
		if err != nil {
			return nil, err
		}
		bc, err := NewBrokerClient(url, nil, backend)
		if err != nil {
			return nil, err
		}
		c, err := bc.MintAWS(ctx, ks.Token)
		if err != nil {
			return nil, err
		}
		res = AWSResult{AccessKeyID: c.AccessKeyID, SecretAccessKey: c.SecretAccessKey, SessionToken: c.SessionToken, Expiration: c.Expiration.UTC().Format(time.RFC3339)}
	}
	out, err := json.Marshal(CredentialProcessOutput{Version: 1, AccessKeyID: res.AccessKeyID, SecretAccessKey: res.SecretAccessKey,
		SessionToken: res.SessionToken, Expiration: res.Expiration})
	if err != nil {
		return nil, err
	}
	return append(out, '\n'), nil
}

// KeepTokenFile keeps a broker-minted OIDC JWT in path (0600, replaced
// atomically) for AWS_WEB_IDENTITY_TOKEN_FILE, refreshing it before it
// expires, until ctx ends. The first write happens before it returns
// ready (closed) or the first error is logged.
func (s *Service) KeepTokenFile(ctx context.Context, path string, ready chan<- error) {
	s.authMu.Lock()
	s.tokenFile = path
	s.authMu.Unlock()
	log := s.log.With("path", path)
	failures := 0
	first := true
	for {
		next, err := s.writeTokenFile(ctx, path)
		if first {
			ready <- err
			close(ready)
			first = false
		}
		if s.alive() != nil {
			return // the session is dead; kill removed the file
		}
		var wait time.Duration
		if err != nil {
			wait = backoff(failures, time.Second, time.Minute)
			failures++
			log.Warn("could not refresh the web identity token file; retrying", "err", err.Error(), "retry_in", wait.String())
		} else {
			failures = 0
			wait = time.Until(next)
			log.Debug("web identity token file refreshed", "next_refresh", next.UTC().Format(time.RFC3339))
		}
		if !sleepCtx(ctx, max(wait, time.Second)) {
			return
		}
	}
}

func (s *Service) writeTokenFile(ctx context.Context, path string) (time.Time, error) {
	cctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	b, exp, err := s.OIDCTokenJSON(cctx)
	if err != nil {
		return time.Time{}, err
	}
	defer clear(b)
	var t OIDCResult
	if err := json.Unmarshal(b, &t); err != nil {
		return time.Time{}, fmt.Errorf("decode token: %w", err)
	}
	if err := keychain.WritePrivateFile(path, []byte(t.JWT)); err != nil {
		return time.Time{}, err
	}
	if err := s.alive(); err != nil {
		os.Remove(path) // revoked while this token was being written
		return time.Time{}, err
	}
	return refreshAt(s.now(), exp), nil
}
