package scraper

import (
	"net/url"
	"regexp"
	"strings"
	"time"

	"github.com/agentkeys/agentkeys/internal/provision"
	"github.com/agentkeys/agentkeys/internal/provision/email"
)

// OpenRouter: Clerk sign-up (e-mail, password, ToS checkbox, Continue;
// Turnstile may appear), then either a code input or a "check your e-mail"
// page with a magic link, then the keys page with a "Create Key" dialog.
// Everything that changes when OpenRouter changes its site is in this file.

var openRouter = &service{
	name:      "openrouter",
	signupURL: "https://openrouter.ai/sign-up",
	flow:      openRouterFlow,
}

var or = struct {
	// keysPath is resolved against the sign-up URL.
	keysPath string

	email, password, terms, cont sels
	otp, verify                  sels
	checkEmail                   string // page text of the link-only step
	codeRejected                 string // alert text of a wrong code
	createKey, keyName, confirm  sels
	key                          sels
	overlays                     sels

	mailFrom, mailSubject *regexp.Regexp
}{
	keysPath: "/settings/keys",

	email: sels{
		{CSS: `input[name="emailAddress"]`},
		{CSS: `input[type="email"]`},
		{CSS: `input[name*="email" i]`},
	},
	password: sels{
		{CSS: `input[name="password"]`},
		{CSS: `input[type="password"]`},
	},
	terms: sels{
		{CSS: `input[type="checkbox"][id*="legal" i]`},
		{CSS: `input[type="checkbox"][name*="legal" i]`},
		{CSS: `input[type="checkbox"][name*="terms" i]`},
		{CSS: `input[type="checkbox"][id*="tos" i]`},
	},
	cont: sels{
		{CSS: `button[data-localization-key="formButtonPrimary"]`},
		{CSS: `button`, Text: `^(continue|sign up|register)$`},
		{CSS: `form button[type="submit"]`, Not: `google|github|apple|microsoft`},
	},
	otp: sels{
		{CSS: `input[name="otp"]`},
		{CSS: `input[name="code"]`},
		{CSS: `input[autocomplete="one-time-code"]`},
	},
	verify: sels{
		{CSS: `button[data-localization-key="formButtonPrimary"]`},
		{CSS: `button`, Text: `^(verify|continue|submit|confirm)$`},
	},
	checkEmail:   `check your e-?mail|verification link|sign[- ]?(up|in) link|magic link|we sent (you )?a link`,
	codeRejected: `incorrect|invalid|wrong|expired|too many`,

	createKey: sels{
		{CSS: `[data-testid="create-key-btn"]`},
		{CSS: `button`, Text: `^(create( api)? key|create)$`},
	},
	keyName: sels{
		{CSS: `[role="dialog"] input#name`},
		{CSS: `[role="dialog"] input[name="name"]`},
		{CSS: `[role="dialog"] input[id*="name" i]:not([type="email"]):not([type="password"])`},
	},
	confirm: sels{
		{CSS: `[role="dialog"] button`, Text: `^create( api key)?$`},
		{CSS: `[role="dialog"] button`, Text: `create`, Not: `cancel`},
	},
	key: sels{
		{CSS: `[data-testid="new-api-key"]`, Text: `sk-`},
		{CSS: `[role="dialog"] code`, Text: `sk-`},
		{CSS: `code`, Text: `sk-`},
		{CSS: `pre`, Text: `sk-`},
		{CSS: `input[readonly]`, Text: `sk-`},
	},

	// Onboarding survey ("where did you first hear…", "welcome to…") and
	// cookie banners, in the order to try.
	overlays: sels{
		{CSS: `[role="dialog"] button`, Text: `^(skip|not now|close|dismiss|maybe later|no thanks)$`},
		{CSS: `[role="dialog"] button[aria-label="close" i]`},
		{CSS: `[role="dialog"] button`, Text: `^(other|other / not sure|not sure)$`},
		{CSS: `[role="dialog"] button`, Text: `^(continue|done|get started)$`},
		{CSS: `button`, Text: `^(accept all cookies|accept all|accept cookies|accept|agree|got it)$`},
	},

	// Clerk sends from notifications@openrouter.ai (or a clerk address);
	// the subjects seen so far all match this.
	mailFrom:    regexp.MustCompile(`(?i)@openrouter\.ai|clerk`),
	mailSubject: regexp.MustCompile(`(?i)sign[\s-]?up.*link|sign[\s-]?in.*link|magic.*link|verif|confirm|code`),
}

// leftSignup reports that the browser is past Clerk's sign-up and
// verification pages.
func leftSignup(u *url.URL) bool {
	if u.Query().Get("__clerk_status") == "verified" || u.Query().Has("__clerk_created_session") {
		return true
	}
	p := strings.ToLower(u.Path)
	if u.Scheme != "http" && u.Scheme != "https" {
		return false
	}
	return !strings.Contains(p, "/sign-up") && !strings.Contains(p, "/sign-in") &&
		!strings.Contains(p, "/verify") && !strings.Contains(p, "/challenge") && !strings.HasPrefix(p, "/auth")
}

func openRouterFlow(r *runner) (string, error) {
	c := r.cfg
	if err := r.openSignup(or.overlays); err != nil {
		return "", err
	}

	r.progress("filling_signup_form")
	if err := r.typeText("fill_email", or.email, c.Email, false); err != nil {
		return "", err
	}
	if err := r.jitter(250*time.Millisecond, 550*time.Millisecond); err != nil {
		return "", err
	}
	if err := r.typeText("fill_password", or.password, c.Password, true); err != nil {
		return "", err
	}
	if err := r.jitter(300*time.Millisecond, 700*time.Millisecond); err != nil {
		return "", err
	}
	if err := r.checkBox("accept_terms", or.terms); err != nil {
		return "", err
	}
	since := time.Now()
	if err := r.click("submit_signup", or.cont); err != nil {
		return "", err
	}

	r.progress("waiting_for_verification_step")
	which, err := r.await("verification_step",
		outcome{"code_input", r.visibleProbe(or.otp)},
		outcome{"check_email_page", r.textProbe(or.checkEmail)},
	)
	if err != nil {
		return "", err
	}
	expect := email.ExpectOTP
	if which == 1 {
		expect = email.ExpectLink
	}

	r.progress("waiting_for_email")
	a, err := r.fetchVerification("fetch_email", email.Query{To: c.Email, From: or.mailFrom, Subject: or.mailSubject, Since: since}, expect)
	if err != nil {
		return "", err
	}
	switch {
	case a.Kind == email.KindOTP && expect == email.ExpectOTP:
		r.progress("entering_code")
		if err := r.typeText("fill_code", or.otp, a.Code, true); err != nil {
			return "", err
		}
		codeGone := func() (bool, error) {
			ok, err := r.visibleProbe(or.otp)()
			return !ok && err == nil, nil
		}
		if err := r.submitCode("submit_code", or.verify, codeGone, or.codeRejected); err != nil {
			return "", err
		}
	case a.Kind == email.KindLink:
		r.progress("opening_email_link")
		if err := r.navigate("open_email_link", a.URL); err != nil {
			return "", err
		}
	default:
		return "", r.fail(provision.CodeOTPNotFound, "the mail has a code but the page asks for none")
	}
	if err := r.waitURL("after_verification", "a page past sign-up", leftSignup); err != nil {
		// The code field can vanish for a moment while the page reloads
		// with the site's wrong-code message: report that as what it is.
		if rej := r.codeRejected("submit_code", or.codeRejected); rej != nil {
			return "", rej
		}
		return "", err
	}

	if err := r.openKeys(or.keysPath, "/keys"); err != nil {
		return "", err
	}

	r.progress("creating_key")
	if err := r.click("click_create_key", or.createKey); err != nil {
		return "", err
	}
	if err := r.typeText("fill_key_name", or.keyName, c.KeyName, false); err != nil {
		return "", err
	}
	if err := r.click("confirm_create_key", or.confirm); err != nil {
		return "", err
	}

	r.progress("extracting_key")
	return r.extractKey("extract_key", or.key)
}
