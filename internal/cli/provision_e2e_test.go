package cli

import (
	"context"
	"fmt"
	"io/fs"
	"mime/multipart"
	"net/textproto"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/agentkeys/agentkeys/internal/backendclient"
	"github.com/agentkeys/agentkeys/internal/provision/fixture"
)

// needChromium skips without a browser, unless AGENTKEYS_REQUIRE_E2E=1
// (CI), where a missing browser is a failure.
func needChromium(t *testing.T) {
	t.Helper()
	for _, b := range []string{"chromium", "chromium-browser", "google-chrome"} {
		if _, err := exec.LookPath(b); err == nil {
			return
		}
	}
	if os.Getenv("AGENTKEYS_REQUIRE_E2E") == "1" {
		t.Fatal("chromium is not installed (AGENTKEYS_REQUIRE_E2E=1)")
	}
	t.Skip("chromium is not installed")
}

// mimeMail renders a multipart/alternative message, as a mail provider
// would hand it over.
func mimeMail(from, to, subject, text, html string) string {
	var b strings.Builder
	mw := multipart.NewWriter(&b)
	fmt.Fprintf(&b, "From: %s\r\nTo: %s\r\nSubject: %s\r\nMIME-Version: 1.0\r\nContent-Type: multipart/alternative; boundary=%s\r\n\r\n", from, to, subject, mw.Boundary())
	if text != "" {
		p, _ := mw.CreatePart(textproto.MIMEHeader{"Content-Type": {"text/plain; charset=utf-8"}})
		p.Write([]byte(text))
	}
	if html != "" {
		p, _ := mw.CreatePart(textproto.MIMEHeader{"Content-Type": {"text/html; charset=utf-8"}})
		p.Write([]byte(html))
	}
	mw.Close()
	return b.String()
}

// newFixtureSite starts the fixture sign-up site; its mail goes to the
// world's backend mock inbox.
func (w *world) newFixtureSite(t *testing.T, o fixture.Options) *fixture.Site {
	t.Helper()
	c, err := backendclient.New(w.url)
	if err != nil {
		t.Fatal(err)
	}
	o.Deliver = func(ctx context.Context, to, from, subject, text, html string) error {
		return c.DeliverMail(ctx, to, from, subject, mimeMail(from, to, subject, text, html))
	}
	s := fixture.New(o)
	t.Cleanup(s.Close)
	return s
}

func (w *world) provisionEnv(site *fixture.Site) []string {
	return w.env(
		"XDG_STATE_HOME="+filepath.Join(w.home, ".state"),
		"AGENTKEYS_OPENROUTER_SIGNUP_URL="+site.SignupURL("openrouter"),
		"AGENTKEYS_OPENROUTER_API_URL="+site.URL,
	)
}

// provisionResults lists the results of the provision rows of `usage --json`, newest first.
func provisionResults(t *testing.T, out string) []string {
	var u struct {
		Events []struct {
			Action string `json:"action"`
			Result string `json:"result"`
		} `json:"events"`
	}
	oneJSON(t, out, &u)
	var rs []string
	for _, e := range u.Events {
		if e.Action == "provision" {
			rs = append(rs, e.Result)
		}
	}
	return rs
}

func TestProvisionOpenRouterEndToEnd(t *testing.T) {
	needChromium(t)
	w, _ := newWorldWithAgent(t, "bot", "--services", "openrouter")
	site := w.newFixtureSite(t, fixture.Options{})

	args := []string{"--json", "--verbose", "provision", "openrouter", "--agent", "bot", "--selector-timeout", "15s", "--email-timeout", "30s", "--timeout", "2m"}
	r := w.exec(nil, w.provisionEnv(site), args...)
	expectCode(t, r, 0, args...)
	var out struct {
		Service      string `json:"service"`
		APIKeyMasked string `json:"api_key_masked"`
		Email        string `json:"email"`
		KeyVerified  bool   `json:"key_verified"`
		Stored       bool   `json:"stored"`
		Audited      bool   `json:"audited"`
	}
	oneJSON(t, r.stdout, &out)
	if !out.Stored || !out.KeyVerified || !out.Audited || !strings.HasPrefix(out.Email, "bot-") {
		t.Fatalf("result: %s", r)
	}
	keys := site.IssuedKeys()
	if len(keys) != 1 {
		t.Fatalf("site issued %d keys", len(keys))
	}
	key := keys[0]
	if strings.Contains(r.stdout+r.stderr, key) {
		t.Fatal("provision printed the key")
	}
	if !strings.HasSuffix(out.APIKeyMasked, key[len(key)-4:]) || !strings.Contains(out.APIKeyMasked, "****") {
		t.Fatalf("masked key %q", out.APIKeyMasked)
	}
	for _, step := range []string{"creating a fresh mock inbox", "starting the browser", "verifying the new key", "storing the key"} {
		if !strings.Contains(r.stderr, step) {
			t.Errorf("progress %q not shown:\n%s", step, r.stderr)
		}
	}
	if !strings.Contains(r.stderr, "[openrouter]") {
		t.Errorf("--verbose did not show the scraper's log:\n%s", r.stderr)
	}
	if !site.Verified("openrouter", out.Email) {
		t.Fatal("the site never saw the e-mail verified")
	}

	// agentkeys run injects the provisioned key.
	run := w.exec(nil, append(w.provisionEnv(site), "WANT="+key), "run", "bot", "--", "sh", "-c", `test "$OPENROUTER_API_KEY" = "$WANT"`)
	expectCode(t, run, 0, "run")

	// A second run keeps the working key: no new sign-up.
	r = w.exec(nil, w.provisionEnv(site), "provision", "openrouter", "--agent", "bot")
	expectCode(t, r, 0, "provision again")
	if len(site.IssuedKeys()) != 1 || !strings.Contains(r.stderr, "already provisioned") {
		t.Fatalf("second run signed up again: %s", r)
	}

	// Audited, with the outcome.
	u := w.must("--json", "usage", "bot", "--action", "provision")
	if rs := provisionResults(t, u.stdout); len(rs) != 1 || rs[0] != "ok" {
		t.Fatalf("provision audit results %v: %s", rs, u.stdout)
	}
}

func TestProvisionRejectsFakeKeyAndReportsTripwires(t *testing.T) {
	needChromium(t)
	w, _ := newWorldWithAgent(t, "bot", "--services", "openrouter")

	// The site shows a key its API rejects: nothing is stored.
	fake := w.newFixtureSite(t, fixture.Options{FakeKey: true})
	r := w.exec(nil, w.provisionEnv(fake), "provision", "openrouter", "--agent", "bot", "--selector-timeout", "15s", "--email-timeout", "30s")
	expectStderr(t, r, 1, "provision (fake key)", "verification_failed", "not stored")
	for _, k := range fake.ShownKeys() {
		if strings.Contains(r.stdout+r.stderr, k) {
			t.Fatal("the rejected key was printed")
		}
	}
	expectCode(t, w.ak("read", "bot", "openrouter"), 1, "read after a rejected key")

	// A captcha wall in a headless browser: a tripwire with a screenshot.
	wall := w.newFixtureSite(t, fixture.Options{Captcha: true})
	r = w.exec(nil, w.provisionEnv(wall), "provision", "openrouter", "--agent", "bot", "--selector-timeout", "10s", "--email-timeout", "20s")
	expectStderr(t, r, 1, "provision (captcha)", "tripwire_exhausted", "captcha", "--headful")
	var shots []string
	filepath.WalkDir(filepath.Join(w.home, ".state", "agentkeys", "default", "provision", "diagnostics"), func(p string, d fs.DirEntry, err error) error {
		if err == nil && strings.HasSuffix(p, ".png") {
			shots = append(shots, p)
		}
		return nil
	})
	if len(shots) == 0 {
		t.Fatalf("no screenshot saved: %s", r)
	}
	if fi, err := os.Stat(shots[0]); err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("screenshot mode: %v %v", fi.Mode(), err)
	}

	u := w.must("--json", "usage", "bot", "--action", "provision")
	if rs := provisionResults(t, u.stdout); !slices.Equal(rs, []string{"tripwire_exhausted", "verification_failed"}) {
		t.Errorf("provision audit results %v: %s", rs, u.stdout)
	}
}

func TestProvisionRefusesServiceOutsideAgentScope(t *testing.T) {
	t.Parallel()
	w, _ := newWorldWithAgent(t, "bot", "--services", "openai")
	r := w.exec(nil, w.env("AGENTKEYS_OPENROUTER_SIGNUP_URL=http://127.0.0.1:1/never"), "provision", "openrouter", "--agent", "bot")
	expectCode(t, r, 1, "provision outside scope")
	if !strings.Contains(r.stderr, "may not use openrouter") || !strings.Contains(r.stderr, "scope set bot --add openrouter") || strings.Contains(r.stderr, "starting the browser") {
		t.Fatalf("%s", r)
	}
}
