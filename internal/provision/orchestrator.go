// Package provision signs an agent up for a service and captures its API
// key. The Orchestrator (used by `agentkeys provision` and the daemon's
// agentkeys.provision MCP tool) runs a scraper — a subprocess driving
// Chromium, see internal/provision/scraper — with a minimal environment
// and its configuration on stdin, streams the scraper's JSON-line events
// to the user, enforces a wall clock on the whole process group, verifies
// the key with the service's own API, stores it sealed through the
// backend and audits the outcome. One run per (agent, service) at a time.
package provision

import (
	"context"
	"crypto/rand"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/agentkeys/agentkeys/internal/agentkeys"
	"github.com/agentkeys/agentkeys/internal/provision/email"
)

// Backend is what the orchestrator needs from the agentkeys backend, on
// behalf of one agent.
type Backend interface {
	// ReadCredential returns the stored key; found is false when none is.
	ReadCredential(ctx context.Context, service string) (value []byte, found bool, err error)
	StoreCredential(ctx context.Context, service string, value []byte) error
	// AuditProvision records the outcome ("ok" or an error code).
	AuditProvision(ctx context.Context, service, result, detail string) error
	// ProvisionInbox creates a fresh mock inbox (dev backends only).
	ProvisionInbox(ctx context.Context) (string, error)
}

// Options configure an Orchestrator.
type Options struct {
	Backend Backend
	Agent   string // the agent's wallet (lock names, messages)

	// Scraper is the command that runs a scraper: typically this very
	// binary with the hidden ScraperSubcommand.
	Scraper Command
	// Env is the scraper's whole environment (see MinimalEnv); AWSEnv,
	// when set, adds broker-minted AWS_* variables to runs that read mail
	// from SES→S3 (the only step that uses AWS).
	Env    []string
	AWSEnv func(ctx context.Context) ([]string, error)

	// Mail is the e-mail backend. For BackendMock the orchestrator makes
	// a fresh inbox per run; for IMAP and SES, SignupEmail is the address
	// the service mails.
	Mail        email.Config
	SignupEmail string
	// Password for sites that ask for one; a random one per run if empty.
	Password string

	Chromium string
	CDPURL   string
	Headful  bool

	// StateDir holds lock files and diagnostics of failed runs (0700).
	StateDir string

	Timeout         time.Duration // whole run; default: the service's budget
	SelectorTimeout time.Duration
	EmailTimeout    time.Duration
	AssistTimeout   time.Duration

	HTTPClient *http.Client
	Getenv     func(string) string // service URL overrides; default os.Getenv

	// Scope and AgentSession: see Session (NewForSession sets them).
	Scope        *agentkeys.Scope
	AgentSession bool

	// ScraperLog, when set, sees each line the scraper writes to stderr
	// (human-readable, secret-free), e.g. for --verbose.
	ScraperLog func(line string)
}

// Orchestrator runs provisioning for one agent.
type Orchestrator struct {
	o     Options
	locks runLocks
}

// New returns an Orchestrator.
func New(o Options) *Orchestrator {
	if o.HTTPClient == nil {
		o.HTTPClient = &http.Client{Timeout: 30 * time.Second}
	}
	if o.Getenv == nil {
		o.Getenv = os.Getenv
	}
	return &Orchestrator{o: o}
}

// Request is one provisioning run.
type Request struct {
	Service string
	Force   bool // provision even when a working key is stored
}

// Result is a finished run; it never holds the key itself.
type Result struct {
	Service      string `json:"service"`
	APIKeyMasked string `json:"api_key_masked"`
	KeyVerified  bool   `json:"key_verified"`
	Stored       bool   `json:"stored"`
	// Existing: a stored key was kept (no sign-up happened).
	Existing     bool   `json:"existing,omitempty"`
	Verification string `json:"verification,omitempty"` // what the service said
	Audited      bool   `json:"audited"`
	Email        string `json:"email,omitempty"` // the address the account was created with
}

// MinimalEnv is the environment a scraper needs from its parent: where
// programs and the home directory are, the display for a headful browser,
// locale and temp dir. Nothing else of the parent's environment leaks in.
func MinimalEnv(getenv func(string) string) []string {
	if getenv == nil {
		getenv = os.Getenv
	}
	var env []string
	for _, k := range []string{"PATH", "HOME", "TMPDIR", "LANG", "LC_ALL", "DISPLAY", "WAYLAND_DISPLAY", "XAUTHORITY", "XDG_RUNTIME_DIR", "TZ"} {
		if v := getenv(k); v != "" {
			env = append(env, k+"="+v)
		}
	}
	return env
}

// Provision runs req. progress (may be nil) sees the orchestrator's own
// steps and the scraper's progress and assist events as they happen.
func (o *Orchestrator) Provision(ctx context.Context, req Request, progress func(Event)) (res Result, err error) {
	say := func(step string) {
		if progress != nil {
			progress(Event{Type: TypeProgress, Step: step})
		}
	}
	svc, ok := LookupService(req.Service, o.o.Getenv)
	if !ok {
		return Result{}, &Error{Code: CodeUnsupportedService,
			Message: fmt.Sprintf("service %q cannot be provisioned", req.Service),
			Hint:    "supported: " + strings.Join(Services(), ", ")}
	}
	res.Service = svc.Name
	if err := o.checkScope(svc.Name); err != nil {
		return res, err
	}
	release, err := o.locks.acquire(o.lockDir(), o.o.Agent, svc.Name)
	if err != nil {
		return res, err
	}
	defer release()

	if !req.Force {
		say("checking for a stored key")
		val, found, err := o.o.Backend.ReadCredential(ctx, svc.Name)
		if err != nil {
			return res, &Error{Code: CodeInternal, Message: "could not read the stored credential: " + err.Error()}
		}
		if found {
			key := string(val)
			clear(val)
			say("verifying the stored key")
			v, why := VerifyKey(ctx, o.o.HTTPClient, svc, key)
			switch v {
			case KeyValid:
				return Result{Service: svc.Name, APIKeyMasked: Mask(key), KeyVerified: true, Existing: true, Verification: why}, nil
			case KeyUnknown:
				return Result{Service: svc.Name, APIKeyMasked: Mask(key), Existing: true, Verification: why}, nil
			}
			say("the stored key no longer works (" + why + "); signing up again")
		}
	}

	defer func() {
		if err == nil {
			return
		}
		var pe *Error
		if !errors.As(err, &pe) {
			pe = &Error{Code: CodeInternal, Message: err.Error()}
			err = pe
		}
		detail := pe.Step
		if pe.Kind != "" {
			detail = strings.TrimSpace(string(pe.Kind) + " " + detail)
		}
		if aerr := o.o.Backend.AuditProvision(context.WithoutCancel(ctx), svc.Name, string(pe.Code), auditDetail(detail)); aerr == nil {
			res.Audited = true
		}
	}()

	cfg, err := o.scraperConfig(ctx, svc, say)
	if err != nil {
		return res, err
	}
	res.Email = cfg.Email
	env := append([]string(nil), o.o.Env...)
	// Only the SES→S3 mail backend uses AWS: the scraper gets no
	// credentials it does not need.
	if o.o.AWSEnv != nil && cfg.Mail.Backend == email.BackendSES {
		say("minting AWS credentials through the broker")
		aws, err := o.o.AWSEnv(ctx)
		if err != nil {
			return res, &Error{Code: CodeBrokerFailed, Message: "could not get AWS credentials from the broker: " + err.Error(),
				Hint: "check --broker-url / AGENTKEYS_BROKER_URL, that the session is current and that the broker's /readyz answers 200"}
		}
		env = append(env, aws...)
	}
	stdin, err := json.Marshal(cfg)
	if err != nil {
		return res, &Error{Code: CodeInternal, Message: "could not encode the scraper configuration"}
	}
	defer clear(stdin)

	timeout := o.o.Timeout
	if timeout <= 0 {
		timeout = svc.Budget
	}
	cmd := o.o.Scraper
	cmd.Env = env
	cmd.Stdin = stdin
	say("starting the browser")
	out, runErr := RunScraper(ctx, cmd, RunOptions{Timeout: timeout, OnStderr: o.o.ScraperLog, OnEvent: func(ev Event) {
		if progress != nil && !ev.Terminal() {
			progress(ev)
		}
	}})
	if runErr != nil {
		o.writeLog(cfg.DiagDir, out.StderrTail, cfg)
		var pe *Error
		if errors.As(runErr, &pe) && pe.Diagnostics == "" && cfg.DiagDir != "" {
			pe.Diagnostics = cfg.DiagDir
		}
		return res, runErr
	}
	ev := out.Terminal
	switch ev.Type {
	case TypeTripwire:
		o.writeLog(cfg.DiagDir, out.StderrTail, cfg)
		msg := fmt.Sprintf("the %s sign-up stopped at step %q: %s after %s", svc.Name, ev.Step, tripwireText(ev.Kind), time.Duration(ev.ElapsedMS)*time.Millisecond)
		if ev.Details != "" {
			msg += " (" + redact(ev.Details, cfg.Password) + ")"
		}
		return res, &Error{Code: CodeTripwire, Kind: ev.Kind, Step: ev.Step, Message: msg, Diagnostics: diagOr(ev.Diagnostics, cfg.DiagDir),
			Hint: tripwireHint(ev.Kind)}
	case TypeError:
		o.writeLog(cfg.DiagDir, out.StderrTail, cfg)
		return res, &Error{Code: ev.Code, Step: ev.Step, Message: fmt.Sprintf("the %s scraper failed: %s", svc.Name, redact(ev.Details, cfg.Password)),
			Diagnostics: diagOr(ev.Diagnostics, cfg.DiagDir)}
	}
	key := strings.TrimSpace(ev.APIKey)
	res.APIKeyMasked = Mask(key)

	say("verifying the new key with " + svc.Name)
	v, why := VerifyKey(ctx, o.o.HTTPClient, svc, key)
	res.Verification = why
	switch v {
	case KeyRejected:
		return res, &Error{Code: CodeVerificationFailed, Step: "verify",
			Message: fmt.Sprintf("the key the %s site showed does not work: %s; it was not stored", svc.Name, why),
			Hint:    "run again with --force; if it keeps happening the site's flow changed (see the diagnostics)"}
	case KeyUnknown:
		return res, &Error{Code: CodeVerifyEndpointDown, Step: "verify",
			Message: fmt.Sprintf("could not verify the new %s key: %s; it was not stored", svc.Name, why),
			Hint:    "try again when the service's API answers"}
	}
	res.KeyVerified = true

	say("storing the key, sealed, in the backend")
	if err := o.o.Backend.StoreCredential(ctx, svc.Name, []byte(key)); err != nil {
		return res, &Error{Code: CodeStoreFailed, Step: "store",
			Message: fmt.Sprintf("the verified %s key %s could not be stored: %v", svc.Name, res.APIKeyMasked, err),
			Hint:    "check the session and the backend, then run again with --force"}
	}
	res.Stored = true
	if err := o.o.Backend.AuditProvision(context.WithoutCancel(ctx), svc.Name, "ok", auditDetail(why)); err == nil {
		res.Audited = true
	}
	return res, nil
}

func (o *Orchestrator) lockDir() string {
	if o.o.StateDir == "" {
		return ""
	}
	return filepath.Join(o.o.StateDir, "locks")
}

// scraperConfig prepares the run: inbox, password, diagnostics dir.
func (o *Orchestrator) scraperConfig(ctx context.Context, svc Service, say func(string)) (ScraperConfig, error) {
	cfg := ScraperConfig{
		Service: svc.Name, SignupURL: svc.SignupURL, Email: o.o.SignupEmail, Password: o.o.Password,
		Mail: o.o.Mail, Chromium: o.o.Chromium, CDPURL: o.o.CDPURL, Headful: o.o.Headful,
		SelectorTimeout: o.o.SelectorTimeout, EmailTimeout: o.o.EmailTimeout, AssistTimeout: o.o.AssistTimeout,
		KeyName: "agentkeys-" + time.Now().UTC().Format("20060102-150405"),
	}
	if cfg.Mail.Backend == "" {
		cfg.Mail.Backend = email.BackendMock
	}
	switch cfg.Mail.Backend {
	case email.BackendMock:
		if cfg.Email == "" {
			say("creating a fresh mock inbox")
			addr, err := o.o.Backend.ProvisionInbox(ctx)
			if err != nil {
				return cfg, &Error{Code: CodeEmailBackendDown, Message: "could not create a mock inbox: " + err.Error(),
					Hint: "the mock inbox exists only on development backends (agentkeys dev); elsewhere configure IMAP or SES"}
			}
			cfg.Email = addr
		}
	case email.BackendIMAP, email.BackendSES:
		if cfg.Email == "" {
			return cfg, &Error{Code: CodeMissingConfig, Message: "the sign-up e-mail address is not set",
				Hint: "pass --email (an address whose mail reaches the configured " + cfg.Mail.Backend + " mailbox)"}
		}
	default:
		return cfg, &Error{Code: CodeMissingConfig, Message: fmt.Sprintf("unknown e-mail backend %q (mock, imap or ses)", cfg.Mail.Backend)}
	}
	if cfg.Password == "" {
		cfg.Password = rand.Text() + "-Ak1"
	}
	if o.o.StateDir != "" {
		diag := filepath.Join(o.o.StateDir, "diagnostics")
		pruneDiagnostics(diag, keepDiagnostics-1)
		cfg.DiagDir = filepath.Join(diag, svc.Name+"-"+time.Now().UTC().Format("20060102T150405.000000000Z"))
	}
	return cfg, nil
}

// writeLog keeps the scraper's stderr tail (redacted) next to the
// screenshot of a failed run.
func (o *Orchestrator) writeLog(dir, stderr string, cfg ScraperConfig) {
	if dir == "" || stderr == "" {
		return
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return
	}
	text := redact(tailLines(stderr, 200), cfg.Password, cfg.Mail.SessionToken, cfg.Mail.IMAPPassword)
	_ = os.WriteFile(filepath.Join(dir, "scraper.log"), []byte(text+"\n"), 0o600)
}

// keepDiagnostics is how many failed runs' diagnostics are kept.
const keepDiagnostics = 20

// pruneDiagnostics removes all but the newest keep run directories (their
// names sort by time).
func pruneDiagnostics(dir string, keep int) {
	entries, err := os.ReadDir(dir)
	if err != nil {
		return
	}
	var runs []string
	for _, e := range entries {
		if e.IsDir() {
			runs = append(runs, e.Name())
		}
	}
	if len(runs) <= keep {
		return
	}
	sort.Slice(runs, func(i, j int) bool { return runTime(runs[i]) < runTime(runs[j]) })
	for _, name := range runs[:len(runs)-keep] {
		_ = os.RemoveAll(filepath.Join(dir, name))
	}
}

// runTime is the timestamp part of "<service>-<time>".
func runTime(name string) string {
	if i := strings.LastIndexByte(name, '-'); i >= 0 {
		return name[i+1:]
	}
	return name
}

func diagOr(a, b string) string {
	if a != "" {
		return a
	}
	if b != "" {
		if _, err := os.Stat(b); err == nil {
			return b
		}
	}
	return ""
}

// auditDetail makes s an audit detail the backend accepts: printable, at
// most 200 bytes, cut before a character rather than inside one (a split
// character reaches the backend as U+FFFD and pushes the detail over the
// bound, and the record is refused).
func auditDetail(s string) string {
	s = strings.Map(func(r rune) rune {
		if r < 0x20 || r == 0x7f {
			return ' '
		}
		return r
	}, s)
	if len(s) > 200 {
		n := 200
		for !utf8.RuneStart(s[n]) {
			n--
		}
		s = s[:n]
	}
	return s
}

func tripwireText(k TripwireKind) string {
	switch k {
	case TripSelectorTimeout:
		return "an element never appeared"
	case TripUnexpectedNav:
		return "the site went to an unexpected page"
	case TripHTTP5xx:
		return "the site answered with a server error"
	case TripEmailTimeout:
		return "no sign-up e-mail arrived"
	case TripVerificationFailed:
		return "the site refused the verification"
	case TripCaptcha:
		return "a captcha needs a person"
	}
	return string(k)
}

func tripwireHint(k TripwireKind) string {
	switch k {
	case TripCaptcha:
		return "run again with --headful on a machine with a display and solve the captcha in the browser window"
	case TripEmailTimeout:
		return "check the e-mail backend (inbox address, IMAP login, SES receipt rule) or raise --email-timeout"
	case TripSelectorTimeout, TripUnexpectedNav:
		return "the site may have changed; the screenshot and last actions are in the diagnostics directory"
	case TripHTTP5xx:
		return "the service is having trouble; try again later"
	}
	return ""
}
