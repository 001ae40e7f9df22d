package cli

import (
	"context"
	"errors"
	"fmt"
	"os"

	"github.com/agentkeys/agentkeys/internal/agentkeys"
	"github.com/agentkeys/agentkeys/internal/brokerclient"
	"github.com/agentkeys/agentkeys/internal/ecscreds"
	"github.com/agentkeys/agentkeys/internal/keychain"
)

// awsService is the scope entry that makes `run` inject AWS credentials.
const awsService = "aws"

// awsShadowing are inherited variables run drops when it injects AWS
// credentials (ecscreds.Shadowing).
var awsShadowing = ecscreds.Shadowing

// awsRunOptions are run's AWS flags.
type awsRunOptions struct {
	SessionFile string // the agent's own session (agent create --session-out)
	Region      string
	Skip        bool // --no-aws
	Server      bool // --aws-server
}

// awsRunEnv mints AWS credentials for the agent's wallet through the
// broker and returns them as AWS_* variables, with the values to mask
// (secret key and session token). Least privilege: the broker token is
// derived from the agent's own session, never from the master's, so the
// credentials carry the agent's wallet and access, and the master's session
// never reaches the broker path.
//
// With o.Server the command instead gets a loopback credential endpoint
// (internal/ecscreds) that re-mints before expiry; stop ends it.
func (a *App) awsRunEnv(ctx context.Context, agent agentkeys.Wallet, o awsRunOptions) (env []string, secrets [][]byte, stop func(), err error) {
	region := o.Region
	if region == "" {
		region = os.Getenv("AWS_REGION")
	}
	if region == "" {
		region = os.Getenv("AWS_DEFAULT_REGION")
	}
	if o.SessionFile == "" {
		// `run <agent> -- cmd` keeps working as it always did: without the
		// agent's own session there is nothing to mint AWS credentials
		// with, so say how to get them and run without.
		if !o.Server {
			fmt.Fprintf(a.Err, "agentkeys: warning: the agent's scope includes %q but no AWS credentials are injected: pass --session-file with the agent's session (agent create --session-out FILE) to get them, or --no-aws to silence this\n", awsService)
			return nil, nil, func() {}, nil
		}
		return nil, nil, nil, withHint(fmt.Errorf("--aws-server needs a session of the agent to mint its AWS credentials with"),
			"pass --session-file with the agent's session (agent create --session-out FILE)")
	}
	if region == "" {
		return nil, nil, nil, withHint(errors.New("the agent's scope includes \"aws\", but no AWS region is set"),
			"pass --region, or set AWS_REGION; or --no-aws to run without AWS credentials")
	}
	s, err := keychain.ReadSessionFile(o.SessionFile)
	if err != nil {
		return nil, nil, nil, fmt.Errorf("--session-file: %w", err)
	}
	if s.Wallet != agent {
		return nil, nil, nil, fmt.Errorf("--session-file is the session of %s, not of the agent %s", s.Wallet, agent)
	}
	c, err := a.newClient(s.Backend)
	if err != nil {
		return nil, nil, nil, err
	}
	b, err := a.brokerFor(&s, "", c)
	if err != nil {
		return nil, nil, nil, withHint(err, "or pass --no-aws to run without AWS credentials")
	}
	creds, err := b.MintAWS(ctx, s.Token)
	if err != nil {
		return nil, nil, nil, err
	}
	a.notef("minted AWS credentials for %s through the broker (expire %s)", creds.Wallet, creds.Expiration.UTC().Format("15:04:05Z"))
	secrets = [][]byte{[]byte(creds.SecretAccessKey), []byte(creds.SessionToken)}
	if !o.Server {
		return creds.Env(region), secrets, func() {}, nil
	}
	cache := ecscreds.NewCache(creds, func(ctx context.Context) (brokerclient.AWSCredentials, error) {
		c, err := b.MintAWS(ctx, s.Token)
		if err != nil {
			fmt.Fprintf(a.Err, "agentkeys: AWS credential refresh failed: %v\n", err)
		}
		return c, err
	})
	srv, err := ecscreds.Start("", cache.Get)
	if err != nil {
		return nil, nil, nil, fmt.Errorf("start the AWS credential endpoint: %w", err)
	}
	a.notef("serving AWS credentials at %s", srv.URL())
	env = append(srv.Env(), "AWS_REGION="+region, "AWS_DEFAULT_REGION="+region)
	return env, append(secrets, []byte(srv.Token())), func() { srv.Close() }, nil
}
