package daemon

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"time"

	"github.com/agentkeys/agentkeys/internal/brokerclient"
	"github.com/agentkeys/agentkeys/internal/ecscreds"
	"github.com/agentkeys/agentkeys/internal/keychain"
)

// startAWSServer serves the agent's broker credentials at addr as an ECS
// container-credential endpoint (internal/ecscreds). Every request goes
// through AWSCredentialsJSON, whose cache mints anew before expiry, so a
// long-running SDK client keeps getting valid credentials for as long as
// the session lives. The random authorization token is written 0600 to
// tokenFile (for AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE); children the
// daemon starts itself get it in their environment.
func (s *Service) startAWSServer(addr, tokenFile string) (*ecscreds.Server, error) {
	if s.o.Broker == nil {
		return nil, fmt.Errorf("--aws-server needs a broker: pass --broker-url or set AGENTKEYS_BROKER_URL")
	}
	srv, err := ecscreds.Start(addr, s.ecsFetch)
	if err != nil {
		return nil, fmt.Errorf("--aws-server: %w", err)
	}
	if err := os.MkdirAll(filepath.Dir(tokenFile), 0o700); err != nil {
		srv.Close()
		return nil, err
	}
	if err := keychain.WritePrivateFile(tokenFile, []byte(srv.Token())); err != nil {
		srv.Close()
		return nil, fmt.Errorf("write the AWS endpoint token file: %w", err)
	}
	s.authMu.Lock()
	s.awsEndpoint = srv.Env()
	s.authMu.Unlock()
	return srv, nil
}

// ecsFetch is the endpoint's source: the cached broker credentials.
func (s *Service) ecsFetch(ctx context.Context) (brokerclient.AWSCredentials, error) {
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	b, err := s.AWSCredentialsJSON(ctx)
	if err != nil {
		s.log.Warn("AWS credential endpoint: no credentials", "err", err.Error())
		return brokerclient.AWSCredentials{}, err
	}
	defer clear(b)
	var r AWSResult
	if err := json.Unmarshal(b, &r); err != nil {
		return brokerclient.AWSCredentials{}, err
	}
	exp, err := time.Parse(time.RFC3339, r.Expiration)
	if err != nil {
		return brokerclient.AWSCredentials{}, err
	}
	return brokerclient.AWSCredentials{AccessKeyID: r.AccessKeyID, SecretAccessKey: r.SecretAccessKey, SessionToken: r.SessionToken,
		Expiration: exp, Wallet: r.Wallet}, nil
}

// AWSEndpointEnv is what a child needs to use the daemon's AWS endpoint
// (nil without --aws-server).
func (s *Service) AWSEndpointEnv() []string {
	s.authMu.Lock()
	defer s.authMu.Unlock()
	return s.awsEndpoint
}
