package daemon

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"time"

	"github.com/agentkeys/agentkeys/internal/agentkeys"
	"github.com/agentkeys/agentkeys/internal/backendclient"
	"github.com/agentkeys/agentkeys/internal/provision"
	"github.com/agentkeys/agentkeys/internal/provision/email"
)

// ProvisionConfig enables the agentkeys.provision tool (agentkeys-daemon
// --provision). The scraper is this binary's hidden provision-scraper
// subcommand; it gets the agent's session for the mock inbox on stdin.
type ProvisionConfig struct {
	StateDir    string // locks and diagnostics; default $XDG_STATE_HOME/agentkeys/daemon
	Headful     bool
	Chromium    string
	Mail        email.Config // Backend "" = the backend's mock inbox
	SignupEmail string
	Password    string
	Timeout     time.Duration
	Scraper     provision.Command // default: this executable + provision-scraper
	Getenv      func(string) string
}

// ProvisionConfigFromEnv reads the e-mail settings a daemon cannot take as
// flags without exposing secrets: AGENTKEYS_EMAIL_BACKEND (mock, imap,
// ses), AGENTKEYS_SIGNUP_EMAIL, AGENTKEYS_SIGNUP_PASSWORD,
// AGENTKEYS_IMAP_ADDR, AGENTKEYS_IMAP_USER, AGENTKEYS_IMAP_PASSWORD,
// AGENTKEYS_SES_BUCKET, AGENTKEYS_SES_PREFIX, AGENTKEYS_SES_REGION.
func ProvisionConfigFromEnv(getenv func(string) string) ProvisionConfig {
	if getenv == nil {
		getenv = os.Getenv
	}
	return ProvisionConfig{
		Mail: email.Config{
			Backend:  getenv("AGENTKEYS_EMAIL_BACKEND"),
			IMAPAddr: getenv("AGENTKEYS_IMAP_ADDR"), IMAPUser: getenv("AGENTKEYS_IMAP_USER"), IMAPPassword: getenv("AGENTKEYS_IMAP_PASSWORD"),
			SESBucket: getenv("AGENTKEYS_SES_BUCKET"), SESPrefix: getenv("AGENTKEYS_SES_PREFIX"), SESRegion: getenv("AGENTKEYS_SES_REGION"),
		},
		SignupEmail: getenv("AGENTKEYS_SIGNUP_EMAIL"),
		Password:    getenv("AGENTKEYS_SIGNUP_PASSWORD"),
		Getenv:      getenv,
	}
}

type daemonProvisioner struct {
	orch  *provision.Orchestrator
	scope *agentkeys.Scope
}

// NewProvisioner returns the Provisioner behind the agentkeys.provision
// tool for the agent session sess.
func NewProvisioner(cfg ProvisionConfig, bc *backendclient.Client, broker *BrokerClient, sess Session, region string) (Provisioner, error) {
	if cfg.Scraper.Path == "" {
		exe, err := os.Executable()
		if err != nil {
			return nil, err
		}
		cfg.Scraper = provision.Command{Path: exe, Args: []string{"provision-scraper"}}
	}
	if cfg.StateDir == "" {
		base := os.Getenv("XDG_STATE_HOME")
		if base == "" || !filepath.IsAbs(base) {
			home, err := os.UserHomeDir()
			if err != nil {
				return nil, errors.New("cannot find a state directory for the provisioner: set HOME or XDG_STATE_HOME")
			}
			base = filepath.Join(home, ".local", "state")
		}
		cfg.StateDir = filepath.Join(base, "agentkeys", "daemon", "provision")
	}
	mail := cfg.Mail
	if mail.Backend == "" || mail.Backend == email.BackendMock {
		mail.Backend = email.BackendMock
		mail.BackendURL, mail.SessionToken = sess.Backend, sess.Token.Reveal()
	}
	o := provision.Options{
		Backend: provision.ClientBackend{Client: bc, Token: sess.Token, Agent: sess.Wallet}, Agent: string(sess.Wallet),
		Scraper: cfg.Scraper, Env: provision.MinimalEnv(nil),
		Mail: mail, SignupEmail: cfg.SignupEmail, Password: cfg.Password,
		Chromium: cfg.Chromium, Headful: cfg.Headful, StateDir: cfg.StateDir, Timeout: cfg.Timeout,
		Getenv: cfg.Getenv,
	}
	if broker != nil {
		o.AWSEnv = func(ctx context.Context) ([]string, error) {
			c, err := broker.MintAWS(ctx, sess.Token)
			if err != nil {
				return nil, err
			}
			return c.Env(region), nil
		}
	}
	return &daemonProvisioner{orch: provision.New(o), scope: sess.Scope}, nil
}

func (p *daemonProvisioner) Provision(ctx context.Context, service string, force bool, progress func(msg string, done, total float64)) (ProvisionResult, error) {
	if _, ok := provision.LookupService(service, nil); !ok {
		return ProvisionResult{}, errorf(CodeInvalidParams, "service %q cannot be provisioned (supported: %s)", service, strings.Join(provision.Services(), ", "))
	}
	if p.scope != nil && !p.scope.Allows(service) {
		return ProvisionResult{}, errorf(CodeDenied, "this agent's scope does not include %s", service)
	}
	if p.scope != nil && !p.scope.CanWrite() {
		return ProvisionResult{}, errorf(CodeDenied, "this agent's scope is read-only: it could not store the new key")
	}
	var n atomic.Int64
	res, err := p.orch.Provision(ctx, provision.Request{Service: service, Force: force}, func(ev provision.Event) {
		if progress != nil {
			progress(ev.String(), float64(n.Add(1)), 0)
		}
	})
	if err != nil {
		var pe *provision.Error
		if errors.As(err, &pe) {
			msg := pe.Message
			if pe.Hint != "" {
				msg += " (" + pe.Hint + ")"
			}
			return ProvisionResult{}, &Error{Code: strings.ToUpper(string(pe.Code)), Message: msg}
		}
		return ProvisionResult{}, err
	}
	return ProvisionResult{Service: res.Service, APIKeyMasked: res.APIKeyMasked, KeyVerified: res.KeyVerified, Stored: res.Stored}, nil
}
