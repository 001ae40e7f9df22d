// Package scraper signs up for an AI service in a real Chromium (over the
// DevTools protocol, with chromedp), reads the verification mail, creates an
// API key and reports it to the orchestrator as provision events. Each
// service lives in one file (openrouter.go, openai.go) holding all of its
// URLs, selectors, mail filters and waits; browser.go starts the browser and
// steps.go holds the shared, budgeted steps and the tripwires.
//
// The scraper never verifies the key: the orchestrator does, before it
// stores anything.
package scraper

import (
	"context"
	"errors"
	"fmt"
	"io"
	"maps"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"time"

	"github.com/agentkeys/agentkeys/internal/provision"
	"github.com/agentkeys/agentkeys/internal/provision/email"
)

// Options are the in-process dependencies of Run.
type Options struct {
	// Fetcher reads the verification mail; nil opens cfg.Mail with
	// email.Open.
	Fetcher email.Fetcher
	// HTTPClient is given to email.Open for HTTP backends (nil = default).
	HTTPClient *http.Client

	// Test hooks (package tests only).
	forceHeadless  bool          // run headless even when cfg.Headful (the assist path without a display)
	captchaPassive time.Duration // how long a captcha may take to pass by itself
	noJitter       bool          // no human-like pauses
}

// Defaults of the budgets in ScraperConfig.
const (
	DefaultSelectorTimeout = 15 * time.Second
	DefaultEmailTimeout    = 120 * time.Second
	DefaultAssistTimeout   = 180 * time.Second

	navTimeout            = 30 * time.Second
	defaultCaptchaPassive = 8 * time.Second
)

// service is one entry of the registry: everything service-specific is in
// its flow (and the file that defines it).
type service struct {
	name      string
	signupURL string // the real sign-up page (cfg.SignupURL overrides it)
	flow      func(r *runner) (key string, err error)
}

var registry = map[string]*service{
	openRouter.name: openRouter,
	openAI.name:     openAI,
}

// Services lists the services a scraper exists for, sorted.
func Services() []string { return slices.Sorted(maps.Keys(registry)) }

// openFetcher is email.Open; the command test swaps it.
var openFetcher = email.Open

// Run drives one sign-up and emits its progress and exactly one terminal
// event on em; log receives human-readable lines without secrets. It
// returns nil when the terminal event was written and an error only when
// it could not be.
func Run(ctx context.Context, cfg provision.ScraperConfig, o Options, em *provision.Emitter, log io.Writer) error {
	if em == nil {
		return errors.New("scraper: no event emitter")
	}
	if log == nil {
		log = io.Discard
	}
	r := &runner{
		parent: ctx,
		cfg:    cfg,
		opts:   o,
		em:     em,
		log:    newLogger(log, cfg.Service),
		start:  time.Now(),
		acts:   newActionLog(50),
	}
	ev := r.run()
	if ev.Type == provision.TypeSuccess {
		r.log.printf("key obtained (%s)", provision.Mask(ev.APIKey))
	} else {
		r.log.printf("%s", ev.String())
		if ev.Diagnostics != "" {
			r.log.printf("diagnostics saved in %s", ev.Diagnostics)
		}
	}
	if err := em.Emit(ev); err != nil {
		return fmt.Errorf("scraper: emit terminal event: %w", err)
	}
	return nil
}

// run returns the terminal event; the browser is closed when it returns.
func (r *runner) run() provision.Event {
	svc, ev, ok := r.prepare()
	if !ok {
		return ev
	}
	r.log.printf("starting %s sign-up for %s", svc.name, r.cfg.Email)

	headless := !r.cfg.Headful || r.opts.forceHeadless
	b, err := startBrowser(r.parent, r.cfg, headless, r.log)
	if err != nil {
		return provision.Event{Type: provision.TypeError, Code: provision.CodeBrowserFailed, Details: err.Error()}
	}
	defer b.close()
	r.b = b
	ctx, cancel := context.WithCancel(b.ctx)
	defer cancel()
	stop := context.AfterFunc(r.parent, cancel)
	defer stop()
	r.ctx = ctx

	key, err := svc.flow(r)
	if err == nil {
		return provision.Event{Type: provision.TypeSuccess, APIKey: key}
	}
	ev = r.classify(err)
	ev.Diagnostics = r.saveDiagnostics(ev)
	return ev
}

// prepare validates the configuration, fills the defaults and opens the
// mailbox.
func (r *runner) prepare() (*service, provision.Event, bool) {
	bad := func(code provision.ErrorCode, format string, args ...any) (*service, provision.Event, bool) {
		return nil, provision.Event{Type: provision.TypeError, Code: code, Details: fmt.Sprintf(format, args...)}, false
	}
	c := &r.cfg
	svc := registry[c.Service]
	if svc == nil {
		return bad(provision.CodeUnsupportedService, "no scraper for service %q (have %s)", c.Service, strings.Join(Services(), ", "))
	}
	if c.SignupURL == "" {
		c.SignupURL = svc.signupURL
	}
	if u, err := url.Parse(c.SignupURL); err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return bad(provision.CodeMissingConfig, "signup_url must be an absolute http(s) URL")
	}
	if c.Email == "" || !strings.Contains(c.Email, "@") {
		return bad(provision.CodeMissingConfig, "email is required")
	}
	if c.SelectorTimeout <= 0 {
		c.SelectorTimeout = DefaultSelectorTimeout
	}
	if c.EmailTimeout <= 0 {
		c.EmailTimeout = DefaultEmailTimeout
	}
	if c.AssistTimeout <= 0 {
		c.AssistTimeout = DefaultAssistTimeout
	}
	if r.opts.captchaPassive <= 0 {
		r.opts.captchaPassive = defaultCaptchaPassive
	}
	if c.Password == "" {
		c.Password = newPassword()
	}
	if c.KeyName == "" {
		c.KeyName = fmt.Sprintf("agentkeys-%d", time.Now().UnixMilli())
	}
	r.fetcher = r.opts.Fetcher
	if r.fetcher == nil {
		f, err := openFetcher(c.Mail, r.opts.HTTPClient)
		if err != nil {
			return bad(provision.CodeMissingConfig, "mail: %v", err)
		}
		r.fetcher = f
	}
	return svc, provision.Event{}, true
}

// classify turns the error that ended a flow into its terminal event.
func (r *runner) classify(err error) provision.Event {
	var f *failure
	switch {
	case errors.As(err, &f):
		return f.ev
	case r.parent.Err() != nil:
		code := provision.CodeInternal
		details := "interrupted"
		if errors.Is(r.parent.Err(), context.DeadlineExceeded) {
			code, details = provision.CodeTimeout, "run deadline exceeded"
		}
		return provision.Event{Type: provision.TypeError, Code: code, Details: details + " at " + r.step}
	case r.b != nil && r.b.ctx.Err() != nil:
		return provision.Event{Type: provision.TypeError, Code: provision.CodeBrowserFailed, Details: "the browser went away at " + r.step + ": " + err.Error()}
	}
	return provision.Event{Type: provision.TypeError, Code: provision.CodeInternal, Details: r.step + ": " + err.Error()}
}
