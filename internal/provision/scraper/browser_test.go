package scraper

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"github.com/agentkeys/agentkeys/internal/provision"
)

// testRunner starts a browser on page and returns a runner for it.
func testRunner(t *testing.T, html string) *runner {
	t.Helper()
	needBrowser(t)
	acquireBrowser(t)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/html; charset=utf-8")
		io.WriteString(w, html)
	}))
	t.Cleanup(srv.Close)
	log := newLogger(io.Discard, "test")
	b, err := startBrowser(context.Background(), provision.ScraperConfig{}, true, log)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(b.close)
	r := &runner{
		parent: context.Background(), ctx: b.ctx, b: b, log: log, start: time.Now(), acts: newActionLog(50),
		cfg:  provision.ScraperConfig{SelectorTimeout: 2 * time.Second},
		opts: Options{noJitter: true, captchaPassive: 200 * time.Millisecond},
	}
	if err := r.navigate("open", srv.URL); err != nil {
		t.Fatal(err)
	}
	return r
}

func TestLaunch(t *testing.T) {
	t.Parallel()
	r := testRunner(t, `<html><body>hi</body></html>`)
	proc := chromedp.FromContext(r.ctx).Browser.Process()
	if proc == nil {
		t.Fatal("no browser process")
	}
	raw, err := os.ReadFile(fmt.Sprintf("/proc/%d/cmdline", proc.Pid))
	if err != nil {
		t.Skipf("no /proc: %v", err)
	}
	args := strings.Split(string(raw), "\x00")
	has := func(a string) bool {
		for _, x := range args {
			if x == a {
				return true
			}
		}
		return false
	}
	for _, want := range []string{"--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
		"--no-first-run", "--disable-sync", "--disable-blink-features=AutomationControlled", "--headless", "--user-data-dir=" + r.b.dataDir} {
		if !has(want) {
			t.Errorf("flag %s missing from %q", want, args)
		}
	}
	for _, a := range args {
		if strings.HasPrefix(a, "--enable-automation") || strings.HasPrefix(a, "--remote-debugging-port") {
			t.Errorf("flag %s must not be passed", a)
		}
	}
	st, err := os.Stat(r.b.dataDir)
	if err != nil || st.Mode().Perm() != 0o700 {
		t.Fatalf("profile dir: %v %v", err, st)
	}
	webdriver, err := chromedp.Run(r.ctx, chromedp.Evaluate[bool](`navigator.webdriver === true`))
	if err != nil || webdriver {
		t.Errorf("navigator.webdriver is set (%v)", err)
	}
	ua, err := chromedp.Run(r.ctx, chromedp.Evaluate[string](`navigator.userAgent`))
	if err != nil || strings.Contains(ua, "Headless") {
		t.Errorf("user agent %q (%v)", ua, err)
	}
	// The browser does not inherit the scraper's environment (AWS_* and
	// the like): only the allow-listed variables pass.
	allowed := map[string]bool{"PWD": true, "OLDPWD": true, "SHLVL": true, "_": true} // set by a wrapper script
	for _, kv := range browserEnv(r.b.dataDir) {
		allowed[strings.SplitN(kv, "=", 2)[0]] = true
	}
	env, err := os.ReadFile(fmt.Sprintf("/proc/%d/environ", proc.Pid))
	if err == nil {
		for _, kv := range strings.Split(string(env), "\x00") {
			k := strings.SplitN(kv, "=", 2)[0]
			if _, inherited := os.LookupEnv(k); inherited && !allowed[k] && k != "" {
				t.Errorf("browser inherited %s", k)
			}
		}
	}
	dir := r.b.dataDir
	r.b.close()
	if _, err := os.Stat(dir); !os.IsNotExist(err) {
		t.Errorf("profile dir left behind: %v", err)
	}
}

// TestPageJS checks the selector semantics of page.js against static HTML.
func TestPageJS(t *testing.T) {
	t.Parallel()
	r := testRunner(t, `<!doctype html><html><body>
<button id="h1" style="display:none">Continue</button>
<button id="h2" style="visibility:hidden">Continue</button>
<button id="h3" style="opacity:0">Continue</button>
<div hidden><button id="h4">Continue</button></div>
<button id="google">Continue with Google</button>
<button id="dis" disabled>Continue</button>
<button id="ok">  Continue
</button>
<button id="create">+ Create new secret key</button>
<input id="mail" type="email" value="x@y.test">
<label for="cb">I agree</label><input type="checkbox" id="cb" style="position:absolute;left:-9999px">
<div role="dialog" hidden><code>sk-hidden-aaaaaaaaaaaaaaaaaaaaaaaa</code></div>
<code id="key">sk-shown-bbbbbbbbbbbbbbbbbbbbbbbb</code>
<input type="hidden" name="cf-turnstile-response" value="">
<p>Please check your email for a sign-up link.</p>
</body></html>`)
	id := func(q query) string {
		t.Helper()
		var s string
		if err := r.js("value", q, &s); err != nil {
			t.Fatal(err)
		}
		return s
	}
	f, err := r.find(query{Cands: sels{{CSS: "button", Text: `^continue$`}}})
	if err != nil || !f.Found || f.N != 2 {
		t.Fatalf("visible exact Continue buttons: %+v %v", f, err)
	}
	f, _ = r.find(query{Cands: sels{{CSS: "button", Text: `^continue$`}}, Enabled: true})
	if f.N != 1 || !f.Hit {
		t.Fatalf("enabled Continue: %+v", f)
	}
	if v := id(query{Cands: sels{{CSS: "button", Text: `^continue$`}}, Enabled: true}); v != "Continue" {
		t.Fatalf("text %q", v)
	}
	f, _ = r.find(query{Cands: sels{{CSS: "button", Text: `continue`, Not: `google`}}, Enabled: true})
	if f.N != 1 {
		t.Fatalf("not-filter: %+v", f)
	}
	f, _ = r.find(query{Cands: sels{{CSS: "#nope"}, {CSS: "button", Text: `create new secret key`}}})
	if !f.Found || f.Cand != 1 {
		t.Fatalf("priority fallback: %+v", f)
	}
	f, _ = r.find(query{Cands: sels{{CSS: "input#mail", Text: `@y\.test`}}})
	if !f.Found {
		t.Fatal("input value match")
	}
	if v := id(query{Cands: sels{{CSS: "code", Text: "sk-"}}}); v != "sk-shown-bbbbbbbbbbbbbbbbbbbbbbbb" {
		t.Fatalf("hidden key read: %q", v)
	}
	f, _ = r.find(query{Cands: sels{{CSS: "[invalid"}, {CSS: "#ok"}}})
	if !f.Found || f.Cand != 1 {
		t.Fatal("a bad selector must be skipped")
	}
	if ok, _ := r.textProbe(`check your e-?mail`)(); !ok {
		t.Fatal("page text")
	}
	cs, err := r.captcha()
	if err != nil || !cs.Present || cs.Solved || cs.Kind != "turnstile" {
		t.Fatalf("captcha %+v %v", cs, err)
	}
	// The off-screen checkbox is ticked through its label or a DOM click.
	if err := r.checkBox("cb", sels{{CSS: "#cb"}}); err != nil {
		t.Fatal(err)
	}
	var checked bool
	checked, _ = chromedp.Run(r.ctx, chromedp.Evaluate[bool](`document.getElementById('cb').checked`))
	if !checked {
		t.Fatal("checkbox not checked")
	}
	// A missing element is a selector_timeout tripwire naming the step.
	err = r.click("click_missing", sels{{CSS: "#missing"}})
	var fl *failure
	if !asFailure(err, &fl) || fl.ev.Kind != provision.TripSelectorTimeout || fl.ev.Step != "click_missing" {
		t.Fatalf("missing element: %v", err)
	}
}

func asFailure(err error, f **failure) bool {
	for err != nil {
		if x, ok := err.(*failure); ok {
			*f = x
			return true
		}
		u, ok := err.(interface{ Unwrap() error })
		if !ok {
			return false
		}
		err = u.Unwrap()
	}
	return false
}
