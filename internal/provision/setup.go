package provision

import (
	"context"
	"errors"
	"fmt"
	"os"
	"strings"

	"github.com/agentkeys/agentkeys/internal/agentkeys"
	"github.com/agentkeys/agentkeys/internal/backendclient"
	"github.com/agentkeys/agentkeys/internal/brokerclient"
	"github.com/agentkeys/agentkeys/internal/cmdtree"
	"github.com/agentkeys/agentkeys/internal/provision/email"
)

// ScraperSubcommand is the hidden subcommand of agentkeys and
// agentkeys-daemon that runs one scraper; the orchestrator starts it.
const ScraperSubcommand = "provision-scraper"

// Environment variables of the sign-up mail settings. Secrets (the IMAP
// and sign-up passwords) are only ever read from here, never from flags:
// argv is visible to every local user.
const (
	EnvEmailBackend   = "AGENTKEYS_EMAIL_BACKEND"
	EnvSignupEmail    = "AGENTKEYS_SIGNUP_EMAIL"
	EnvSignupPassword = "AGENTKEYS_SIGNUP_PASSWORD"
	EnvIMAPAddr       = "AGENTKEYS_IMAP_ADDR"
	EnvIMAPUser       = "AGENTKEYS_IMAP_USER"
	EnvIMAPPassword   = "AGENTKEYS_IMAP_PASSWORD"
	EnvSESBucket      = "AGENTKEYS_SES_BUCKET"
	EnvSESPrefix      = "AGENTKEYS_SES_PREFIX"
	EnvSESRegion      = "AGENTKEYS_SES_REGION"
)

// MailSettings say where the sign-up mail arrives and what to sign up
// with.
type MailSettings struct {
	Mail        email.Config // Backend "" = the backend's mock inbox
	SignupEmail string
	Password    string // for sites that ask for one; random per run if empty
}

// ReadMailSettings is the one place mail settings come from: each field
// the command line left empty (flags) is taken from the environment
// (getenv, nil: os.Getenv); the passwords only ever come from the
// environment. It checks what each mail backend needs.
func ReadMailSettings(flags MailSettings, getenv func(string) string) (MailSettings, error) {
	if getenv == nil {
		getenv = os.Getenv
	}
	m := flags
	or := func(dst *string, env string) {
		if *dst == "" {
			*dst = strings.TrimSpace(getenv(env))
		}
	}
	or(&m.Mail.Backend, EnvEmailBackend)
	or(&m.Mail.IMAPAddr, EnvIMAPAddr)
	or(&m.Mail.IMAPUser, EnvIMAPUser)
	or(&m.Mail.SESBucket, EnvSESBucket)
	or(&m.Mail.SESPrefix, EnvSESPrefix)
	or(&m.Mail.SESRegion, EnvSESRegion)
	or(&m.SignupEmail, EnvSignupEmail)
	m.Mail.IMAPPassword = getenv(EnvIMAPPassword)
	m.Password = getenv(EnvSignupPassword)
	switch m.Mail.Backend {
	case "", email.BackendMock:
		return m, nil
	case email.BackendIMAP:
		if m.Mail.IMAPAddr == "" || m.Mail.IMAPUser == "" || m.Mail.IMAPPassword == "" {
			return m, fmt.Errorf("--email-backend imap needs --imap-addr, --imap-user and %s", EnvIMAPPassword)
		}
	case email.BackendSES:
		if m.Mail.SESBucket == "" {
			return m, errors.New("--email-backend ses needs --ses-bucket")
		}
	default:
		return m, fmt.Errorf("--email-backend must be mock, imap or ses (%s)", EnvEmailBackend)
	}
	if m.SignupEmail == "" {
		return m, fmt.Errorf("--email-backend %s needs --email (the address the service mails; %s)", m.Mail.Backend, EnvSignupEmail)
	}
	return m, nil
}

// AWSMinter mints AWS credentials for a session (the broker).
type AWSMinter interface {
	MintAWS(ctx context.Context, tok agentkeys.Token) (brokerclient.AWSCredentials, error)
}

// Session is who a provisioning run acts as, and for which agent.
type Session struct {
	Client     *backendclient.Client
	BackendURL string // the backend that issued Token (the mock inbox lives there)
	Token      agentkeys.Token
	Agent      agentkeys.Wallet // the agent the key is stored for
	// Scope is the agent's scope when it is restricted: a service outside
	// it is refused before any browser starts (a key the agent may not
	// use is not worth an account). With AgentSession (Token is the
	// agent's own session) a read-only scope is refused too: the new key
	// could not be stored.
	Scope        *agentkeys.Scope
	AgentSession bool
	// Broker, when set, mints the AWS credentials SES mail needs; Region
	// is reported with them.
	Broker AWSMinter
	Region string
}

// NewForSession is how the CLI and the daemon build their orchestrator:
// o with the backend, agent, scope and broker of s; the scraper is this
// executable's ScraperSubcommand and its environment MinimalEnv unless o
// says otherwise; the mock inbox (o.Mail.Backend "" or mock) is s's
// backend.
func NewForSession(s Session, o Options) (*Orchestrator, error) {
	o.Backend = ClientBackend{Client: s.Client, Token: s.Token, Agent: s.Agent}
	o.Agent = string(s.Agent)
	o.Scope, o.AgentSession = s.Scope, s.AgentSession
	if o.Scraper.Path == "" {
		exe, err := os.Executable()
		if err != nil {
			return nil, fmt.Errorf("cannot find this program to start the scraper: %w", err)
		}
		o.Scraper = Command{Path: exe, Args: []string{ScraperSubcommand}}
	}
	if o.Env == nil {
		o.Env = MinimalEnv(nil)
	}
	if o.Mail.Backend == "" || o.Mail.Backend == email.BackendMock {
		o.Mail.Backend = email.BackendMock
		o.Mail.BackendURL, o.Mail.SessionToken = s.BackendURL, s.Token.Reveal()
	}
	if s.Broker != nil {
		tok, region, b := s.Token, s.Region, s.Broker
		o.AWSEnv = func(ctx context.Context) ([]string, error) {
			c, err := b.MintAWS(ctx, tok)
			if err != nil {
				return nil, err
			}
			return c.Env(region), nil
		}
	}
	return New(o), nil
}

// checkScope refuses a run the agent's scope rules out.
func (o *Orchestrator) checkScope(service string) error {
	sc := o.o.Scope
	if sc == nil {
		return nil
	}
	if !sc.Allows(service) {
		list := "no services"
		if len(sc.Services) > 0 {
			list = strings.Join(sc.Services, ", ")
		}
		return &Error{Code: CodeScopeDenied, Message: fmt.Sprintf("agent %s may not use %s (scope: %s)", o.o.Agent, service, list),
			Hint: "widen the agent's scope first"}
	}
	if o.o.AgentSession && !sc.CanWrite() {
		return &Error{Code: CodeScopeDenied, Message: "this agent's scope is read-only: it could not store the new key"}
	}
	return nil
}

// EnvironmentHelp lists the variables the provisioner reads, each meaning
// after prefix, for the help and docs/cli.md of both binaries that run it.
func EnvironmentHelp(prefix string) []cmdtree.EnvVar {
	var out []cmdtree.EnvVar
	for _, v := range [][2]string{
		{EnvEmailBackend, "where the sign-up mail arrives: mock (the backend's mock inbox, default), imap or ses"},
		{EnvSignupEmail, "address to sign up with"},
		{EnvSignupPassword, "password for sites that ask for one (random per run when unset; never a flag)"},
		{EnvIMAPAddr, "IMAP server host:port (imap backend)"},
		{EnvIMAPUser, "IMAP user (imap backend)"},
		{EnvIMAPPassword, "IMAP password (imap backend; never a flag)"},
		{EnvSESBucket, "S3 bucket SES writes the mail to (ses backend)"},
		{EnvSESPrefix, "key prefix in that bucket (ses backend)"},
		{EnvSESRegion, "region of that bucket (ses backend)"},
		{"AGENTKEYS_<SERVICE>_SIGNUP_URL", "sign-up site of a service (default: the real one; tests point it at a local fixture)"},
		{"AGENTKEYS_<SERVICE>_API_URL", "API base URL a new key is verified against"},
	} {
		out = append(out, cmdtree.EnvVar{Name: v[0], Meaning: prefix + v[1]})
	}
	return out
}
