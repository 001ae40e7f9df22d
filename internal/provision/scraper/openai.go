package scraper

import (
	"fmt"
	"net/url"
	"regexp"
	"strings"
	"time"

	"github.com/agentkeys/agentkeys/internal/provision"
	"github.com/agentkeys/agentkeys/internal/provision/email"
)

// OpenAI: e-mail page, password page, a code of six single-digit inputs,
// "about you" (name and age), then the API keys page whose "Create new
// secret key" dialog reveals the key. Everything that changes when OpenAI
// changes its site is in this file.

var openAI = &service{
	name: "openai",
	// The sign-up redirects to auth.openai.com; deep-linking the
	// create-account page breaks the session.
	signupURL: "https://platform.openai.com/signup",
	flow:      openAIFlow,
}

var oa = struct {
	// keysPath is resolved against the sign-up URL (relative, so that
	// /openai/signup on the fixture gives /openai/api-keys).
	keysPath string

	email, cont, password         sels
	codeBoxes, codeSingle, submit sels
	codeRejected                  string
	aboutName, aboutAge, finish   sels
	createKey, keyName, confirm   sels
	key                           sels
	overlays                      sels

	firstNames, lastNames []string
	age                   string

	mailFrom, mailSubject *regexp.Regexp
}{
	keysPath: "api-keys",

	email: sels{
		{CSS: `input[name="email"]`},
		{CSS: `input[type="email"]`},
		{CSS: `input[autocomplete="username"]`},
	},
	cont: sels{
		{CSS: `button[type="submit"]`, Text: `^continue$`},
		{CSS: `button`, Text: `^continue$`},
		{CSS: `form button[type="submit"]`, Not: `google|microsoft|apple|github|phone`},
	},
	password: sels{
		{CSS: `input[name="new-password"]`},
		{CSS: `input[type="password"]`},
	},
	codeBoxes: sels{
		{CSS: `input[maxlength="1"][inputmode="numeric"]`},
		{CSS: `input[maxlength="1"][autocomplete="one-time-code"]`},
	},
	codeSingle: sels{
		{CSS: `input[name="code"]:not([type="hidden"])`},
		{CSS: `input[autocomplete="one-time-code"]`},
		{CSS: `input[name="otp"]`},
		{CSS: `input[inputmode="numeric"]`},
	},
	submit: sels{
		{CSS: `button[type="submit"]`, Text: `^(continue|verify|submit|confirm)$`},
		{CSS: `button`, Text: `^(continue|verify|submit|confirm)$`},
	},
	codeRejected: `incorrect|invalid|wrong|expired|too many`,

	aboutName: sels{
		{CSS: `input[autocomplete="name"]`},
		{CSS: `input[name="name"]`},
		{CSS: `input[type="text"][id*="name" i]:not([id*="company" i])`},
	},
	aboutAge: sels{
		{CSS: `input[name="age"]`},
		{CSS: `input[id*="age" i][inputmode="numeric"]`},
		{CSS: `input[placeholder="Age"]`},
	},
	finish: sels{
		{CSS: `button`, Text: `^finish creating account$`},
		{CSS: `button`, Text: `finish`},
		{CSS: `button`, Text: `^continue$`},
		{CSS: `form button[type="submit"]`},
	},

	createKey: sels{
		{CSS: `button`, Text: `create new secret key`},
		{CSS: `button`, Text: `^\+?\s*create (new )?(secret |api )?key$`},
	},
	keyName: sels{
		{CSS: `[role="dialog"] input[type="text"]:not([readonly])`},
		{CSS: `[role="dialog"] input:not([type]):not([readonly])`},
	},
	confirm: sels{
		{CSS: `[role="dialog"] button`, Text: `^create secret key$`},
		{CSS: `[role="dialog"] button`, Text: `^create( key)?$`},
	},
	key: sels{
		{CSS: `[role="dialog"] input[readonly]`, Text: `sk-`},
		{CSS: `input[readonly]`, Text: `sk-`},
		{CSS: `[role="dialog"] code`, Text: `sk-`},
		{CSS: `code`, Text: `sk-`},
		{CSS: `pre`, Text: `sk-`},
	},

	// Product tours, "welcome" modals and cookie banners.
	overlays: sels{
		{CSS: `[role="dialog"] button`, Text: `^(skip|skip tour|not now|close|dismiss|maybe later|no thanks)$`},
		{CSS: `[role="dialog"] button[aria-label="close" i]`},
		{CSS: `[role="dialog"] button`, Text: `^(done|got it|okay|ok)$`},
		{CSS: `button`, Text: `^(accept all cookies|accept all|accept cookies|accept|agree|got it)$`},
	},

	// OpenAI rejects bot-like names (digits); pick a plain one.
	firstNames: []string{"Alex", "Jamie", "Taylor", "Morgan", "Casey", "Jordan", "Riley", "Avery"},
	lastNames:  []string{"Parker", "Reed", "Hayes", "Bennett", "Foster", "Cole", "Quinn", "Shaw"},
	age:        "28",

	mailFrom:    regexp.MustCompile(`(?i)openai`),
	mailSubject: regexp.MustCompile(`(?i)verif|code|sign[-\s]?in|log[-\s]?in|one[-\s]?time|otp`),
}

// inOnboarding reports that u is still one of the account-creation pages.
func inOnboarding(u *url.URL) bool {
	p := strings.ToLower(u.Path)
	for _, s := range []string{"/create-account", "/email-verification", "/about-you", "/auth/callback", "/log-in", "/signup"} {
		if strings.Contains(p, s) {
			return true
		}
	}
	return false
}

func openAIFlow(r *runner) (string, error) {
	c := r.cfg
	if err := r.openSignup(oa.overlays); err != nil {
		return "", err
	}

	r.progress("filling_email")
	if err := r.typeText("fill_email", oa.email, c.Email, false); err != nil {
		return "", err
	}
	since := time.Now()
	if err := r.click("submit_email", oa.cont); err != nil {
		return "", err
	}

	r.progress("filling_password")
	if err := r.typeText("fill_password", oa.password, c.Password, true); err != nil {
		return "", err
	}
	if err := r.jitter(300*time.Millisecond, 700*time.Millisecond); err != nil {
		return "", err
	}
	if err := r.click("submit_password", oa.cont); err != nil {
		return "", err
	}

	r.progress("waiting_for_code_page")
	if _, err := r.await("code_page", outcome{"code_input", r.visibleProbe(append(oa.codeBoxes[:len(oa.codeBoxes):len(oa.codeBoxes)], oa.codeSingle...))}); err != nil {
		return "", err
	}

	r.progress("waiting_for_email")
	a, err := r.fetchVerification("fetch_email", email.Query{To: c.Email, From: oa.mailFrom, Subject: oa.mailSubject, Since: since}, email.ExpectOTP)
	if err != nil {
		return "", err
	}
	if a.Kind != email.KindOTP {
		return "", r.fail(provision.CodeOTPNotFound, "the OpenAI mail has no code")
	}

	r.progress("entering_code")
	if err := fillCode(r, a.Code); err != nil {
		return "", err
	}
	left := r.urlProbe(func(u *url.URL) bool { return !strings.Contains(u.Path, "/email-verification") })
	if err := r.submitCode("submit_code", oa.submit, left, oa.codeRejected); err != nil {
		return "", err
	}

	r.progress("completing_profile")
	which, err := r.await("about_you",
		outcome{"about_form", r.visibleProbe(oa.aboutName)},
		outcome{"past_onboarding", r.urlProbe(func(u *url.URL) bool { return !inOnboarding(u) })},
	)
	if err != nil {
		return "", err
	}
	if which == 0 {
		name := oa.firstNames[randInt(int64(len(oa.firstNames)))] + " " + oa.lastNames[randInt(int64(len(oa.lastNames)))]
		if err := r.typeText("fill_name", oa.aboutName, name, false); err != nil {
			return "", err
		}
		if ok, _ := r.visibleProbe(oa.aboutAge)(); ok {
			if err := r.typeText("fill_age", oa.aboutAge, oa.age, false); err != nil {
				return "", err
			}
		}
		if err := r.jitter(600*time.Millisecond, 1000*time.Millisecond); err != nil {
			return "", err
		}
		if err := r.click("finish_profile", oa.finish); err != nil {
			return "", err
		}
		if err := r.waitURL("after_profile", "a page past account creation", func(u *url.URL) bool { return !inOnboarding(u) }); err != nil {
			return "", err
		}
	}

	if err := r.openKeys(oa.keysPath, "/api-keys"); err != nil {
		return "", err
	}

	r.progress("creating_key")
	if err := r.click("click_create_key", oa.createKey); err != nil {
		return "", err
	}
	// Some versions mint at once, others ask for a name first.
	which, err = r.await("key_dialog",
		outcome{"create_dialog", r.visibleProbe(oa.confirm)},
		outcome{"key_shown", r.visibleProbe(oa.key)},
	)
	if err != nil {
		return "", err
	}
	if which == 0 {
		if ok, _ := r.visibleProbe(oa.keyName)(); ok {
			if err := r.typeText("fill_key_name", oa.keyName, c.KeyName, false); err != nil {
				return "", err
			}
		}
		if err := r.click("confirm_create_key", oa.confirm); err != nil {
			return "", err
		}
	}

	r.progress("extracting_key")
	return r.extractKey("extract_key", oa.key)
}

// fillCode types the code: one digit per box when the page shows single
// digit inputs, else the whole code into the one input.
func fillCode(r *runner, code string) error {
	f, err := r.find(query{Cands: oa.codeBoxes})
	if err != nil {
		return err
	}
	if f.Found && f.N > 1 {
		if f.N != len(code) {
			return r.fail(provision.CodeOTPNotFound, fmt.Sprintf("the page has %d code boxes for a %d-digit code", f.N, len(code)))
		}
		cands := oa.codeBoxes[f.Cand : f.Cand+1]
		for i, d := range code {
			if err := r.typeInto("fill_code", query{Cands: cands, Nth: i, Enabled: true, Scroll: true}, string(d), true); err != nil {
				return err
			}
		}
		return nil
	}
	return r.typeText("fill_code", oa.codeSingle, code, true)
}
