package daemon

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"time"

	"github.com/agentkeys/agentkeys/internal/backendclient"
	"github.com/agentkeys/agentkeys/internal/provision"
)

// ProvisionConfig enables the agentkeys.provision tool (agentkeys-daemon
// --provision). The scraper is this binary's hidden
// provision.ScraperSubcommand; it gets the agent's session for the mock
// inbox on stdin.
type ProvisionConfig struct {
	StateDir string // locks and diagnostics; default $XDG_STATE_HOME/agentkeys/daemon
	Headful  bool
	Chromium string
	provision.MailSettings
	Timeout time.Duration
	Scraper provision.Command // default: this executable + provision.ScraperSubcommand
	Getenv  func(string) string
}

// ProvisionConfigFromEnv reads the e-mail settings a daemon takes from the
// environment only (provision.ReadMailSettings: AGENTKEYS_EMAIL_BACKEND,
// AGENTKEYS_SIGNUP_EMAIL, AGENTKEYS_SIGNUP_PASSWORD, AGENTKEYS_IMAP_*,
// AGENTKEYS_SES_*) and reports what a mail backend is missing.
func ProvisionConfigFromEnv(getenv func(string) string) (ProvisionConfig, error) {
	m, err := provision.ReadMailSettings(provision.MailSettings{}, getenv)
	return ProvisionConfig{MailSettings: m, Getenv: getenv}, err
}

type daemonProvisioner struct {
	orch *provision.Orchestrator
}

// NewProvisioner returns the Provisioner behind the agentkeys.provision
// tool for the agent session sess.
func NewProvisioner(cfg ProvisionConfig, bc *backendclient.Client, broker *BrokerClient, sess Session, region string) (Provisioner, error) {
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
	s := provision.Session{Client: bc, BackendURL: sess.Backend, Token: sess.Token, Agent: sess.Wallet,
		Scope: sess.Scope, AgentSession: true, Region: region}
	if broker != nil {
		s.Broker = broker
	}
	orch, err := provision.NewForSession(s, provision.Options{
		Scraper: cfg.Scraper,
		Mail:    cfg.Mail, SignupEmail: cfg.SignupEmail, Password: cfg.Password,
		Chromium: cfg.Chromium, Headful: cfg.Headful, StateDir: cfg.StateDir, Timeout: cfg.Timeout,
		Getenv: cfg.Getenv,
	})
	if err != nil {
		return nil, err
	}
	return &daemonProvisioner{orch: orch}, nil
}

func (p *daemonProvisioner) Provision(ctx context.Context, service string, force bool, progress func(msg string, done, total float64)) (ProvisionResult, error) {
	if _, ok := provision.LookupService(service, nil); !ok {
		return ProvisionResult{}, errorf(CodeServiceNotSupported, "service %q not supported by the provisioner (supported: %s)", service, strings.Join(provision.Services(), ", "))
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
			code := strings.ToUpper(string(pe.Code))
			if pe.Code == provision.CodeScopeDenied {
				code = CodeDenied
			}
			return ProvisionResult{}, &Error{Code: code, Message: msg}
		}
		return ProvisionResult{}, err
	}
	return ProvisionResult{Service: res.Service, APIKeyMasked: res.APIKeyMasked, KeyVerified: res.KeyVerified, Stored: res.Stored}, nil
}
