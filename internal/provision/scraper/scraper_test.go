package scraper

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/agentkeys/agentkeys/internal/provision"
	"github.com/agentkeys/agentkeys/internal/provision/email"
	"github.com/agentkeys/agentkeys/internal/provision/fixture"
)

// browsers bounds the browsers the tests run at once (the CI machine has
// two cores).
var browsers = make(chan struct{}, 2)

// needBrowser skips a test when no Chromium is installed, unless
// AGENTKEYS_REQUIRE_E2E=1 makes that a failure.
func needBrowser(t *testing.T) {
	t.Helper()
	if _, err := FindBrowser(""); err != nil {
		if os.Getenv("AGENTKEYS_REQUIRE_E2E") == "1" {
			t.Fatalf("AGENTKEYS_REQUIRE_E2E=1 but %v", err)
		}
		t.Skipf("no browser: %v", err)
	}
}

func acquireBrowser(t *testing.T) {
	t.Helper()
	browsers <- struct{}{}
	t.Cleanup(func() { <-browsers })
}

type run struct {
	events   []provision.Event
	terminal provision.Event
	log      string
	cfg      provision.ScraperConfig
}

// parseEvents parses JSON lines and checks the protocol: every line is an
// event and exactly one terminal event comes last.
func parseEvents(t *testing.T, out []byte) ([]provision.Event, provision.Event) {
	t.Helper()
	var evs []provision.Event
	sc := bufio.NewScanner(bytes.NewReader(out))
	sc.Buffer(make([]byte, 0, 64<<10), 1<<20)
	for sc.Scan() {
		ev, ok, err := provision.ParseEvent(sc.Bytes())
		if err != nil {
			t.Fatalf("bad event line %q: %v", sc.Text(), err)
		}
		if ok {
			evs = append(evs, ev)
		}
	}
	terminals := 0
	for _, ev := range evs {
		if ev.Terminal() {
			terminals++
		}
	}
	if terminals != 1 || len(evs) == 0 || !evs[len(evs)-1].Terminal() {
		t.Fatalf("want exactly one terminal event, last; got %d in %v", terminals, evs)
	}
	return evs, evs[len(evs)-1]
}

// scrape runs the scraper against site and checks the invariants every
// run must keep: one terminal event, and no secret in the log or the
// diagnostics.
func scrape(t *testing.T, site *fixture.Site, fetcher email.Fetcher, service string, tweak func(*provision.ScraperConfig, *Options)) run {
	t.Helper()
	needBrowser(t)
	acquireBrowser(t)
	cfg := provision.ScraperConfig{
		Service:         service,
		SignupURL:       site.SignupURL(service),
		Email:           fmt.Sprintf("bot-%s@agentkeys.test", randHex(4)),
		Password:        "Correct-horse-battery-" + randHex(3),
		DiagDir:         filepath.Join(t.TempDir(), "diag"),
		SelectorTimeout: 10 * time.Second,
		EmailTimeout:    10 * time.Second,
		AssistTimeout:   10 * time.Second,
	}
	o := Options{Fetcher: fetcher, noJitter: true, captchaPassive: 500 * time.Millisecond}
	if tweak != nil {
		tweak(&cfg, &o)
	}
	var out, logb bytes.Buffer
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	if err := Run(ctx, cfg, o, provision.NewEmitter(&out), &logb); err != nil {
		t.Fatalf("Run: %v", err)
	}
	evs, term := parseEvents(t, out.Bytes())
	r := run{events: evs, terminal: term, log: logb.String(), cfg: cfg}
	t.Logf("events: %v\nlog:\n%s", evs, r.log)

	secrets := []string{cfg.Password}
	secrets = append(secrets, site.ShownKeys()...)
	for _, m := range site.Mails() {
		if m.Code != "" {
			secrets = append(secrets, m.Code)
		}
		if m.Link != "" {
			secrets = append(secrets, m.Link[strings.Index(m.Link, "__clerk_ticket=")+len("__clerk_ticket="):][:48])
		}
	}
	var diag []byte
	if term.Diagnostics != "" {
		diag, _ = os.ReadFile(filepath.Join(term.Diagnostics, "actions.json"))
	}
	for _, s := range secrets {
		re := regexp.MustCompile(`(^|[^0-9A-Za-z])` + regexp.QuoteMeta(s) + `($|[^0-9A-Za-z])`)
		if re.MatchString(r.log) {
			t.Errorf("a secret (%s) is in the log", provision.Mask(s))
		}
		if re.Match(diag) {
			t.Errorf("a secret (%s) is in the diagnostics", provision.Mask(s))
		}
		for _, ev := range evs {
			if ev.Type != provision.TypeSuccess && (re.MatchString(ev.Details) || re.MatchString(ev.Step)) {
				t.Errorf("a secret (%s) is in event %v", provision.Mask(s), ev)
			}
		}
	}
	return r
}

func wantTripwire(t *testing.T, r run, kind provision.TripwireKind, step string) {
	t.Helper()
	ev := r.terminal
	if ev.Type != provision.TypeTripwire || ev.Kind != kind || (step != "" && ev.Step != step) {
		t.Fatalf("want tripwire %s at %q, got %v", kind, step, ev)
	}
	if ev.ElapsedMS <= 0 {
		t.Errorf("tripwire without elapsed time: %v", ev)
	}
	checkDiagnostics(t, ev)
}

// checkDiagnostics wants a private directory with a screenshot and the
// action log.
func checkDiagnostics(t *testing.T, ev provision.Event) {
	t.Helper()
	if ev.Diagnostics == "" {
		t.Fatal("no diagnostics directory in the event")
	}
	st, err := os.Stat(ev.Diagnostics)
	if err != nil || st.Mode().Perm() != 0o700 {
		t.Fatalf("diagnostics dir: %v %v", err, st)
	}
	for _, name := range []string{"screenshot.png", "actions.json"} {
		p := filepath.Join(ev.Diagnostics, name)
		st, err := os.Stat(p)
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		if st.Mode().Perm() != 0o600 || st.Size() == 0 {
			t.Fatalf("%s: mode %v size %d", name, st.Mode().Perm(), st.Size())
		}
	}
	png, _ := os.ReadFile(filepath.Join(ev.Diagnostics, "screenshot.png"))
	if !bytes.HasPrefix(png, []byte("\x89PNG")) {
		t.Fatal("screenshot is not a PNG")
	}
	var doc struct {
		Step    string
		Actions []struct{ Step, Action, Selector, URL, Value string }
	}
	b, _ := os.ReadFile(filepath.Join(ev.Diagnostics, "actions.json"))
	if err := json.Unmarshal(b, &doc); err != nil || len(doc.Actions) == 0 || len(doc.Actions) > 50 {
		t.Fatalf("actions.json: %v (%d actions)", err, len(doc.Actions))
	}
}

func progressSteps(evs []provision.Event) []string {
	var s []string
	for _, ev := range evs {
		if ev.Type == provision.TypeProgress {
			s = append(s, ev.Step)
		}
	}
	return s
}

func wantSuccess(t *testing.T, r run, key string) {
	t.Helper()
	if r.terminal.Type != provision.TypeSuccess {
		t.Fatalf("want success, got %v", r.terminal)
	}
	if r.terminal.APIKey != key {
		t.Fatalf("key %s, want %s", provision.Mask(r.terminal.APIKey), provision.Mask(key))
	}
	if !keyRE.MatchString(key) {
		t.Fatalf("bad fixture key %q", key)
	}
}

// wantIssued checks that the site issued exactly one key and the run
// succeeded with it, and returns it.
func wantIssued(t *testing.T, site *fixture.Site, r run) string {
	t.Helper()
	keys := site.IssuedKeys()
	if len(keys) != 1 {
		t.Fatalf("issued %d keys (terminal %v)", len(keys), r.terminal)
	}
	wantSuccess(t, r, keys[0])
	return keys[0]
}

func newSite(t *testing.T, o fixture.Options) (*fixture.Site, *fixture.Inbox) {
	in := fixture.NewInbox()
	if o.Deliver == nil && !o.NoMail {
		o.Deliver = in.Deliver
	}
	s := fixture.New(o)
	t.Cleanup(s.Close)
	return s, in
}

func TestOpenRouterOTP(t *testing.T) {
	t.Parallel()
	site, in := newSite(t, fixture.Options{})
	r := scrape(t, site, in, "openrouter", nil)
	wantIssued(t, site, r)
	if !site.Verified(fixture.ServiceOpenRouter, r.cfg.Email) {
		t.Error("account not verified")
	}
	if site.Hits("POST /sign-up/verify") != 1 || site.Hits("GET /v1/verify") != 0 {
		t.Errorf("the OTP path was not taken: verify posts %d, link opens %d", site.Hits("POST /sign-up/verify"), site.Hits("GET /v1/verify"))
	}
	steps := strings.Join(progressSteps(r.events), ",")
	for _, s := range []string{"navigating_to_signup", "waiting_for_email", "entering_code", "creating_key", "extracting_key"} {
		if !strings.Contains(steps, s) {
			t.Errorf("no progress %q in %s", s, steps)
		}
	}
	if strings.Contains(r.log, r.terminal.APIKey) || !strings.Contains(r.log, provision.Mask(r.terminal.APIKey)) {
		t.Error("the log should show the masked key only")
	}
}

func TestOpenRouterLinkOnly(t *testing.T) {
	t.Parallel()
	site, in := newSite(t, fixture.Options{LinkOnly: true})
	r := scrape(t, site, in, "openrouter", nil)
	wantIssued(t, site, r)
	if site.Hits("GET /v1/verify") != 1 || site.Hits("POST /sign-up/verify") != 0 {
		t.Error("the magic link was not used")
	}
}

func TestOpenRouterFakeKeyStillSucceeds(t *testing.T) {
	t.Parallel()
	site, in := newSite(t, fixture.Options{FakeKey: true})
	r := scrape(t, site, in, "openrouter", nil)
	shown := site.ShownKeys()
	if len(shown) != 1 || len(site.IssuedKeys()) != 0 {
		t.Fatalf("shown %d, issued %d", len(shown), len(site.IssuedKeys()))
	}
	// The scraper does not verify: the orchestrator rejects the key later.
	wantSuccess(t, r, shown[0])
}

func TestCaptchaHeadlessTripwire(t *testing.T) {
	t.Parallel()
	site, in := newSite(t, fixture.Options{Captcha: true})
	r := scrape(t, site, in, "openrouter", nil)
	wantTripwire(t, r, provision.TripCaptcha, "verification_step")
	if len(site.Mails()) != 0 {
		t.Error("the wall was passed")
	}
	for _, ev := range r.events {
		if ev.Type == provision.TypeAssist {
			t.Error("assist event in a headless run")
		}
	}
}

func TestCaptchaAssist(t *testing.T) {
	t.Parallel()
	// A person (simulated: the widget solves itself 1.5 s after it shows)
	// solves the wall in a "headful" browser.
	site, in := newSite(t, fixture.Options{Captcha: true, AssistAutoSolve: 1500 * time.Millisecond})
	r := scrape(t, site, in, "openrouter", func(c *provision.ScraperConfig, o *Options) {
		c.Headful = true
		o.forceHeadless = true
		o.captchaPassive = 300 * time.Millisecond
	})
	wantIssued(t, site, r)
	assists := 0
	for _, ev := range r.events {
		if ev.Type == provision.TypeAssist {
			assists++
			if ev.Step == "" || !strings.Contains(ev.Details, "captcha") {
				t.Errorf("assist event %v", ev)
			}
		}
	}
	if assists != 1 {
		t.Fatalf("%d assist events", assists)
	}
}

func TestCaptchaAssistTimeout(t *testing.T) {
	t.Parallel()
	site, in := newSite(t, fixture.Options{Captcha: true})
	r := scrape(t, site, in, "openrouter", func(c *provision.ScraperConfig, o *Options) {
		c.Headful = true
		c.AssistTimeout = 1500 * time.Millisecond
		o.forceHeadless = true
		o.captchaPassive = 200 * time.Millisecond
	})
	if r.terminal.Type != provision.TypeError || r.terminal.Code != provision.CodeCaptchaUnsolved {
		t.Fatalf("want captcha_unsolved, got %v", r.terminal)
	}
	checkDiagnostics(t, r.terminal)
}

func TestNoMailTripwire(t *testing.T) {
	t.Parallel()
	site, in := newSite(t, fixture.Options{NoMail: true})
	r := scrape(t, site, in, "openrouter", func(c *provision.ScraperConfig, _ *Options) { c.EmailTimeout = 1500 * time.Millisecond })
	wantTripwire(t, r, provision.TripEmailTimeout, "fetch_email")
}

func TestServerErrorTripwire(t *testing.T) {
	t.Parallel()
	site, in := newSite(t, fixture.Options{ServerError: true})
	r := scrape(t, site, in, "openrouter", nil)
	wantTripwire(t, r, provision.TripHTTP5xx, "open_keys")
	if !strings.Contains(r.terminal.Details, "500") {
		t.Errorf("details %q", r.terminal.Details)
	}
}

func TestMissingSelectorTripwire(t *testing.T) {
	t.Parallel()
	site, in := newSite(t, fixture.Options{NoCreateButton: true})
	start := time.Now()
	r := scrape(t, site, in, "openrouter", func(c *provision.ScraperConfig, _ *Options) { c.SelectorTimeout = 2 * time.Second })
	wantTripwire(t, r, provision.TripSelectorTimeout, "click_create_key")
	if !strings.Contains(r.terminal.Details, "create-key-btn") {
		t.Errorf("details do not name the selector: %q", r.terminal.Details)
	}
	if time.Since(start) > 30*time.Second {
		t.Error("the selector budget was not applied")
	}
}

// wrongCode hands the scraper a code the site did not send.
type wrongCode struct{ in *fixture.Inbox }

func (w wrongCode) Fetch(ctx context.Context, q email.Query) (email.Message, error) {
	m, err := w.in.Fetch(ctx, q)
	code := regexp.MustCompile(`\b\d{6}\b`).FindString(m.Text)
	bad := fmt.Sprintf("%06d", (atoi(code)+1)%1000000)
	m.Text = strings.ReplaceAll(m.Text, code, bad)
	m.HTML = strings.ReplaceAll(m.HTML, code, bad)
	return m, err
}

func atoi(s string) int {
	n := 0
	for _, c := range s {
		n = n*10 + int(c-'0')
	}
	return n
}

func TestWrongCodeTripwire(t *testing.T) {
	t.Parallel()
	site, in := newSite(t, fixture.Options{})
	r := scrape(t, site, wrongCode{in}, "openrouter", func(c *provision.ScraperConfig, _ *Options) { c.SelectorTimeout = 4 * time.Second })
	wantTripwire(t, r, provision.TripVerificationFailed, "submit_code")
	if site.Verified(fixture.ServiceOpenRouter, r.cfg.Email) || len(site.IssuedKeys()) != 0 {
		t.Error("a wrong code made progress")
	}
}

func TestOpenAI(t *testing.T) {
	t.Parallel()
	site, in := newSite(t, fixture.Options{})
	r := scrape(t, site, in, "openai", nil)
	if key := wantIssued(t, site, r); !strings.HasPrefix(key, "sk-proj-") || !site.Verified(fixture.ServiceOpenAI, r.cfg.Email) {
		t.Fatal("not an OpenAI account/key")
	}
}

func TestBadConfigNeedsNoBrowser(t *testing.T) {
	t.Parallel()
	cases := []struct {
		cfg  provision.ScraperConfig
		code provision.ErrorCode
	}{
		{provision.ScraperConfig{Service: "nope", Email: "a@b.test"}, provision.CodeUnsupportedService},
		{provision.ScraperConfig{Service: "openrouter"}, provision.CodeMissingConfig},
		{provision.ScraperConfig{Service: "openrouter", Email: "a@b.test", SignupURL: "file:///etc/passwd"}, provision.CodeMissingConfig},
		{provision.ScraperConfig{Service: "openrouter", Email: "a@b.test"}, provision.CodeMissingConfig}, // no mail backend
	}
	for _, c := range cases {
		var out bytes.Buffer
		if err := Run(context.Background(), c.cfg, Options{}, provision.NewEmitter(&out), nil); err != nil {
			t.Fatal(err)
		}
		_, ev := parseEvents(t, out.Bytes())
		if ev.Type != provision.TypeError || ev.Code != c.code {
			t.Errorf("%+v: got %v, want %s", c.cfg, ev, c.code)
		}
	}
}

func TestServices(t *testing.T) {
	t.Parallel()
	if got := strings.Join(Services(), ","); got != "openai,openrouter" {
		t.Fatalf("Services() = %s", got)
	}
}

func TestHelpers(t *testing.T) {
	t.Parallel()
	if got := redactURL("https://u:p@clerk.example/v1/verify?__clerk_ticket=abc#x"); got != "https://clerk.example/v1/verify?…" {
		t.Errorf("redactURL = %s", got)
	}
	if got := provision.Mask("sk-or-v1-0123456789abcdef"); got != "sk-or-v1****cdef" {
		t.Errorf("mask = %s", got)
	}
	// A 13-rune key is all stars: the scraper's own copy of the mask showed
	// 12 of its 13 characters.
	if provision.Mask("sk-short") != "****" || provision.Mask("ééééééééééééé") != "****" || provision.Mask("éééééééééééééééé") != "éééééééé****éééé" {
		t.Error("mask of short or multibyte keys")
	}
	for _, k := range []string{"sk-or-v1-" + strings.Repeat("a", 64), "sk-proj-Ab_cD-" + strings.Repeat("x", 20)} {
		if !keyRE.MatchString(k) {
			t.Errorf("key %q rejected", k)
		}
	}
	for _, k := range []string{"sk-short", "sk-or-v1-abc…def", " sk-" + strings.Repeat("a", 30), "pk-" + strings.Repeat("a", 30)} {
		if keyRE.MatchString(k) {
			t.Errorf("key %q accepted", k)
		}
	}
	for _, p := range []string{newPassword(), newPassword()} {
		if len(p) < 16 || !regexp.MustCompile(`[A-Z]`).MatchString(p) || !regexp.MustCompile(`[0-9]`).MatchString(p) {
			t.Errorf("weak password")
		}
	}
}

func TestLoginFailsUnexpectedNav(t *testing.T) {
	t.Parallel()
	site, in := newSite(t, fixture.Options{LoginFails: true})
	r := scrape(t, site, in, "openrouter", func(c *provision.ScraperConfig, _ *Options) { c.SelectorTimeout = 2 * time.Second })
	wantTripwire(t, r, provision.TripUnexpectedNav, "after_verification")
	if !strings.Contains(r.terminal.Details, "/sign-in") {
		t.Errorf("details %q", r.terminal.Details)
	}
}

func TestTruncatedKeyFormat(t *testing.T) {
	t.Parallel()
	site, in := newSite(t, fixture.Options{TruncatedKey: true})
	r := scrape(t, site, in, "openrouter", nil)
	if r.terminal.Type != provision.TypeError || r.terminal.Code != provision.CodeKeyFormat {
		t.Fatalf("want key_format, got %v", r.terminal)
	}
	checkDiagnostics(t, r.terminal)
}

// A 5xx after a form post (no navigation of the scraper's own) is seen by
// the network listener.
func TestFormPost5xx(t *testing.T) {
	t.Parallel()
	site, in := newSite(t, fixture.Options{Deliver: func(context.Context, string, string, string, string, string) error {
		return fmt.Errorf("mail relay down")
	}})
	r := scrape(t, site, in, "openrouter", nil)
	wantTripwire(t, r, provision.TripHTTP5xx, "verification_step")
	if !strings.Contains(r.terminal.Details, "502") {
		t.Errorf("details %q", r.terminal.Details)
	}
}

// cancelOn cancels when a line containing trigger is written.
type cancelOn struct {
	mu      sync.Mutex
	buf     bytes.Buffer
	trigger string
	cancel  context.CancelFunc
}

func (c *cancelOn) Write(p []byte) (int, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if bytes.Contains(p, []byte(c.trigger)) {
		c.cancel()
	}
	return c.buf.Write(p)
}

func TestInterrupted(t *testing.T) {
	t.Parallel()
	needBrowser(t)
	acquireBrowser(t)
	site, in := newSite(t, fixture.Options{NoMail: true})
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	out := &cancelOn{trigger: `"waiting_for_email"`, cancel: cancel}
	cfg := provision.ScraperConfig{
		Service: "openrouter", SignupURL: site.SignupURL("openrouter"), Email: "bot-int@agentkeys.test",
		DiagDir: filepath.Join(t.TempDir(), "diag"), EmailTimeout: time.Minute,
	}
	start := time.Now()
	if err := Run(ctx, cfg, Options{Fetcher: in, noJitter: true}, provision.NewEmitter(out), io.Discard); err != nil {
		t.Fatal(err)
	}
	_, ev := parseEvents(t, out.buf.Bytes())
	if ev.Type != provision.TypeError || !strings.Contains(ev.Details, "interrupted") {
		t.Fatalf("got %v", ev)
	}
	if d := time.Since(start); d > 20*time.Second {
		t.Fatalf("took %s to stop", d)
	}
	if ev.Diagnostics == "" {
		t.Fatal("no diagnostics")
	}
	if _, err := os.Stat(filepath.Join(ev.Diagnostics, "actions.json")); err != nil {
		t.Fatal(err)
	}
}

// TestAttachCDP drives a browser that runs already (cfg.CDPURL), in a
// fresh browser context.
func TestAttachCDP(t *testing.T) {
	t.Parallel()
	needBrowser(t)
	bin, _ := FindBrowser("")
	site, in := newSite(t, fixture.Options{})
	dir, err := os.MkdirTemp("", "agentkeys-cdp-test-")
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(bin, "--headless", "--no-sandbox", "--disable-gpu", "--no-first-run", "--disable-sync",
		"--remote-debugging-port=0", "--user-data-dir="+dir, "about:blank")
	stderr, err := cmd.StderrPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		_ = cmd.Process.Kill()
		_ = cmd.Wait()
		removeProfile(dir)
	})
	wsc := make(chan string, 1)
	go func() {
		sc := bufio.NewScanner(stderr)
		sent := false
		for sc.Scan() {
			if m := regexp.MustCompile(`DevTools listening on (ws://\S+)`).FindStringSubmatch(sc.Text()); m != nil && !sent {
				wsc <- m[1]
				sent = true
			}
		}
	}()
	var ws string
	select {
	case ws = <-wsc:
	case <-time.After(20 * time.Second):
		t.Fatal("the browser printed no DevTools address")
	}
	r := scrape(t, site, in, "openrouter", func(c *provision.ScraperConfig, _ *Options) { c.CDPURL = ws })
	wantIssued(t, site, r)
	if cmd.ProcessState != nil {
		t.Fatal("the attached browser was stopped")
	}
}

// An onboarding modal covers "Create Key": the scraper dismisses it.
func TestOnboardingModal(t *testing.T) {
	t.Parallel()
	site, in := newSite(t, fixture.Options{Onboarding: true})
	r := scrape(t, site, in, "openrouter", nil)
	wantIssued(t, site, r)
	if !strings.Contains(r.log, "dismissing an overlay") {
		t.Error("the modal was not dismissed")
	}
}
