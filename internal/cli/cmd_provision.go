package cli

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/signal"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"github.com/spf13/cobra"

	"github.com/agentkeys/agentkeys/internal/provision"
)

// Environment variables `agentkeys provision` reads for secrets (never
// flags: argv is visible to every local user).
const (
	EnvSignupPassword = provision.EnvSignupPassword
	EnvIMAPPassword   = provision.EnvIMAPPassword
)

// StateDir is where `agentkeys` keeps per-profile state that is not
// configuration: $XDG_STATE_HOME/agentkeys/<profile>, else
// ~/.local/state/agentkeys/<profile>.
func StateDir(profile string) (string, error) {
	if x := os.Getenv("XDG_STATE_HOME"); x != "" && filepath.IsAbs(x) {
		return filepath.Join(x, "agentkeys", profile), nil
	}
	home, err := os.UserHomeDir()
	if err != nil || home == "" {
		return "", errors.New("cannot find the state directory: set HOME or XDG_STATE_HOME")
	}
	return filepath.Join(home, ".local", "state", "agentkeys", profile), nil
}

func (a *App) newProvisionCmd() *cobra.Command {
	var (
		in    provisionInput
		flags provision.MailSettings
	)
	cmd := &cobra.Command{
		Use:   "provision <service>",
		Short: "Sign up for a service in a headless browser and store the new, verified API key",
		Long: `Sign an agent (default: yourself) up for <service> in Chromium, wait for the
sign-up e-mail, create an API key, verify it with the service's own API and
store it, sealed, for the agent; then ` + "`agentkeys run <agent>`" + ` injects it.
Supported services: ` + strings.Join(provision.Services(), ", ") + `.

A stored key that still works is kept (no sign-up) unless --force. Progress
goes to stderr; the masked key and the outcome to stdout. Every run is
audited (agentkeys usage --action provision). One run per agent and service
at a time. A failed run leaves a screenshot and the last browser actions
under $XDG_STATE_HOME/agentkeys/<profile>/provision/diagnostics (0600).

E-mail: on a development backend (agentkeys dev) a fresh mock inbox is made
per run. Otherwise use --email-backend imap (--imap-addr, --imap-user,
password from ` + EnvIMAPPassword + `) or ses (--ses-bucket, --ses-prefix; AWS
credentials from --broker-url or the usual AWS environment) with --email.
A password the site asks for comes from ` + EnvSignupPassword + ` (random if unset).
Site URLs can be pointed elsewhere with AGENTKEYS_<SERVICE>_SIGNUP_URL and
AGENTKEYS_<SERVICE>_API_URL. With --email-backend ses and
--broker-url, the scraper gets broker-minted AWS credentials of your wallet
(for the bucket) and no other AWS credentials.`,
		Args: exactArgs(1, "<service>"),
		ValidArgsFunction: func(*cobra.Command, []string, string) ([]string, cobra.ShellCompDirective) {
			return provision.Services(), cobra.ShellCompDirectiveNoFileComp
		},
		RunE: func(cmd *cobra.Command, args []string) error {
			in.Service = args[0]
			if _, ok := provision.LookupService(in.Service, nil); !ok {
				return usagef("cannot provision %q: supported services are %s", in.Service, strings.Join(provision.Services(), ", "))
			}
			var err error
			if in.Mail, err = provision.ReadMailSettings(flags, nil); err != nil {
				return usagef("%v", err)
			}
			ctx, stop := signal.NotifyContext(cmdContext(cmd.Context()), os.Interrupt, syscall.SIGTERM)
			defer stop()
			return a.runProvision(ctx, in)
		},
	}
	f := cmd.Flags()
	f.StringVar(&in.Agent, "agent", "", "the agent (name or 0x wallet) to provision for (default: yourself)")
	f.BoolVar(&in.Force, "force", false, "sign up again even if a working key is stored")
	f.BoolVar(&in.Headful, "headful", false, "show the browser window, so a person can solve a captcha")
	f.DurationVar(&in.Timeout, "timeout", 0, "wall clock for the whole run (default: the service's budget, 7m)")
	f.DurationVar(&in.SelectorTimeout, "selector-timeout", 0, "how long to wait for each page element (default 15s)")
	f.DurationVar(&in.EmailTimeout, "email-timeout", 0, "how long to wait for the sign-up e-mail (default 2m)")
	f.StringVar(&flags.SignupEmail, "email", "", "sign-up address (default with the mock inbox: a fresh one per run) ["+provision.EnvSignupEmail+"]")
	f.StringVar(&flags.Mail.Backend, "email-backend", "", "where the sign-up mail arrives: mock, imap or ses (default mock) ["+provision.EnvEmailBackend+"]")
	f.StringVar(&flags.Mail.IMAPAddr, "imap-addr", "", "IMAP server host:port (implicit TLS) ["+provision.EnvIMAPAddr+"]")
	f.StringVar(&flags.Mail.IMAPUser, "imap-user", "", "IMAP login (password from "+EnvIMAPPassword+") ["+provision.EnvIMAPUser+"]")
	f.BoolVar(&flags.Mail.IMAPInsecure, "imap-insecure", false, "plain-text IMAP (tests only)")
	f.StringVar(&flags.Mail.SESBucket, "ses-bucket", "", "S3 bucket an SES receipt rule writes mail to ["+provision.EnvSESBucket+"]")
	f.StringVar(&flags.Mail.SESPrefix, "ses-prefix", "", "key prefix of the mail objects in --ses-bucket ["+provision.EnvSESPrefix+"]")
	f.StringVar(&flags.Mail.SESRegion, "ses-region", "", "region of --ses-bucket (default: AWS_REGION) ["+provision.EnvSESRegion+"]")
	f.StringVar(&flags.Mail.S3Endpoint, "s3-endpoint", "", "S3-compatible endpoint for --ses-bucket (path-style; default AWS)")
	f.StringVar(&in.Chromium, "chromium", "", "browser binary (default: chromium on PATH)")
	f.StringVar(&in.CDPURL, "cdp-url", "", "attach to a running browser's DevTools endpoint instead of starting one")
	return cmd
}

// provisionInput is `agentkeys provision` once its flags are parsed.
type provisionInput struct {
	Service string
	Agent   string // "" = the master itself
	Force   bool
	Mail    provision.MailSettings // from provision.ReadMailSettings

	Chromium, CDPURL                       string
	Headful                                bool
	Timeout, SelectorTimeout, EmailTimeout time.Duration
}

// runProvision provisions in.Service for in.Agent and reports the outcome.
func (a *App) runProvision(ctx context.Context, in provisionInput) error {
	m, ref, err := a.withAgent(ctx, in.Agent)
	if err != nil {
		return err
	}
	ps := provision.Session{Client: m.Client, BackendURL: m.Session.Backend, Token: m.Session.Token, Agent: ref.Wallet}
	if in.Agent != "" {
		// A key the agent may not use is not worth an account: the
		// orchestrator refuses a service outside its scope.
		if ps.Scope, err = m.Client.GetScope(ctx, m.Session.Token, ref.Wallet); err != nil {
			return err
		}
	}
	state, err := StateDir(a.Profile)
	if err != nil {
		return err
	}
	if a.BrokerURL != "" || m.Session.Broker != "" {
		if ps.Broker, err = a.brokerFor(&m.Session, a.Profile, m.Client); err != nil {
			return err
		}
		ps.Region = os.Getenv("AWS_REGION")
		if ps.Region == "" {
			ps.Region = os.Getenv("AWS_DEFAULT_REGION")
		}
	}
	opts := provision.Options{
		Mail: in.Mail.Mail, SignupEmail: in.Mail.SignupEmail, Password: in.Mail.Password,
		Chromium: in.Chromium, CDPURL: in.CDPURL, Headful: in.Headful,
		StateDir: filepath.Join(state, "provision"),
		Timeout:  in.Timeout, SelectorTimeout: in.SelectorTimeout, EmailTimeout: in.EmailTimeout,
		HTTPClient: a.httpClient(),
	}
	if a.Verbose {
		opts.ScraperLog = func(line string) { fmt.Fprintf(a.Err, "  %s\n", line) }
	}
	orch, err := provision.NewForSession(ps, opts)
	if err != nil {
		return err
	}
	start := time.Now()
	fmt.Fprintf(a.Err, "Provisioning %s for %s (Ctrl-C to stop)\n", in.Service, ref)
	res, err := orch.Provision(ctx, provision.Request{Service: in.Service, Force: in.Force}, func(ev provision.Event) {
		el := time.Since(start).Truncate(100 * time.Millisecond)
		if ev.Type == provision.TypeAssist {
			fmt.Fprintf(a.Err, "\a[%6s] ACTION NEEDED: %s\n", el, ev)
			return
		}
		fmt.Fprintf(a.Err, "[%6s] %s\n", el, ev)
	})
	if provision.CodeOf(err) == provision.CodeScopeDenied {
		return withHint(err, "widen its scope first: agentkeys scope set %s --add %s", in.Agent, in.Service)
	}
	if err != nil {
		return provisionError(err)
	}
	return a.printProvisioned(ref, res)
}

// printProvisioned reports a finished run: the masked key on stdout (or
// one JSON document), the outcome on stderr.
func (a *App) printProvisioned(ref agentRef, res provision.Result) error {
	if a.JSON {
		out := map[string]any{"agent": ref.Wallet, "service": res.Service, "api_key_masked": res.APIKeyMasked,
			"key_verified": res.KeyVerified, "stored": res.Stored, "existing": res.Existing, "audited": res.Audited,
			"verification": res.Verification}
		if res.Email != "" {
			out["email"] = res.Email
		}
		return a.printJSON(out)
	}
	switch {
	case res.Existing && res.KeyVerified:
		fmt.Fprintf(a.Err, "%s already provisioned for %s and the key works (%s); use --force to sign up again\n", res.Service, ref, res.Verification)
	case res.Existing:
		fmt.Fprintf(a.Err, "%s already provisioned for %s; the key could not be checked (%s); kept it\n", res.Service, ref, res.Verification)
	default:
		fmt.Fprintf(a.Err, "Stored a verified %s key for %s (%s)\n", res.Service, ref, res.Verification)
		if !res.Audited {
			fmt.Fprintln(a.Err, "warning: the backend did not record the provision outcome in the audit log")
		}
	}
	a.printf("%s\n", res.APIKeyMasked)
	return nil
}

// provisionError turns a provisioning failure into a CLI error with its
// hint and where the diagnostics are.
func provisionError(err error) error {
	var pe *provision.Error
	if !errors.As(err, &pe) {
		return err
	}
	out := fmt.Errorf("provision failed [%s]: %s", pe.Code, pe.Message)
	hint := pe.Hint
	if pe.Diagnostics != "" {
		if hint != "" {
			hint += "; "
		}
		hint += "screenshot and last actions: " + pe.Diagnostics
	}
	if hint == "" {
		return out
	}
	return withHint(out, "%s", hint)
}
