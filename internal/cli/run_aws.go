package cli

import (
	"context"
	"errors"
	"fmt"
	"os"

	"github.com/agentkeys/agentkeys/internal/agentkeys"
	"github.com/agentkeys/agentkeys/internal/keychain"
)

// awsService is the scope entry that makes `run` inject AWS credentials.
const awsService = "aws"

// awsRunOptions are run's AWS flags.
type awsRunOptions struct {
	SessionFile string // the agent's own session (agent create --session-out)
	Region      string
	Skip        bool // --no-aws
}

// awsRunEnv mints AWS credentials for the agent's wallet through the
// broker and returns them as AWS_* variables, with the values to mask
// (secret key and session token). Least privilege: the broker token is
// derived from the agent's own session, never from the master's, so the
// credentials carry the agent's wallet and access, and the master's session
// never reaches the broker path.
func (a *App) awsRunEnv(ctx context.Context, agent agentkeys.Wallet, o awsRunOptions) ([]string, [][]byte, error) {
	region := o.Region
	if region == "" {
		region = os.Getenv("AWS_REGION")
	}
	if region == "" {
		region = os.Getenv("AWS_DEFAULT_REGION")
	}
	if o.SessionFile == "" {
		return nil, nil, withHint(fmt.Errorf("the agent's scope includes %q, but run has no session of the agent to mint its AWS credentials with", awsService),
			"pass --session-file with the agent's session (agent create --session-out FILE), or --no-aws to run without AWS credentials")
	}
	if region == "" {
		return nil, nil, withHint(errors.New("the agent's scope includes \"aws\", but no AWS region is set"),
			"pass --region, or set AWS_REGION; or --no-aws to run without AWS credentials")
	}
	s, err := keychain.ReadSessionFile(o.SessionFile)
	if err != nil {
		return nil, nil, fmt.Errorf("--session-file: %w", err)
	}
	if s.Wallet != agent {
		return nil, nil, fmt.Errorf("--session-file is the session of %s, not of the agent %s", s.Wallet, agent)
	}
	c, err := a.newClient(s.Backend)
	if err != nil {
		return nil, nil, err
	}
	b, err := a.brokerFor(&s, "", c)
	if err != nil {
		return nil, nil, withHint(err, "or pass --no-aws to run without AWS credentials")
	}
	creds, err := b.MintAWS(ctx, s.Token)
	if err != nil {
		return nil, nil, err
	}
	a.notef("minted AWS credentials for %s through the broker (expire %s)", creds.Wallet, creds.Expiration.UTC().Format("15:04:05Z"))
	return creds.Env(region), [][]byte{[]byte(creds.SecretAccessKey), []byte(creds.SessionToken)}, nil
}
