package email

import (
	"net/url"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"
)

func loadEML(t testing.TB, name string) Message {
	t.Helper()
	raw, err := os.ReadFile(filepath.Join("testdata", name))
	if err != nil {
		t.Fatal(err)
	}
	m, err := ParseMIME(raw)
	if err != nil {
		t.Fatalf("ParseMIME(%s): %v", name, err)
	}
	return m
}

// The ses-s3 regression mail: QP-encoded HTML, the Clerk URL split by soft
// line breaks and written with &amp;, CSS colours, a privacy link, an
// unsubscribe link and a tracking pixel.
func TestAnalyzeOpenRouterClerkLink(t *testing.T) {
	m := loadEML(t, "openrouter-signup-link.eml")
	if m.From != "OpenRouter <notifications@openrouter.ai>" || m.Subject != "Your sign up link" {
		t.Fatalf("headers: from=%q subject=%q", m.From, m.Subject)
	}
	if !regexp.MustCompile(`(?i)openrouter`).MatchString(m.From) {
		t.Fatal("from")
	}
	if m.Text != "" || !strings.Contains(m.HTML, "__clerk_ticket=") {
		t.Fatalf("expected an HTML-only body, got text=%q", m.Text)
	}
	for _, exp := range []Expect{ExpectAny, ExpectLink, ExpectOTP} {
		a := Analyze(m, exp)
		if a.Kind != KindLink {
			t.Fatalf("expect %v: got %+v", exp, a)
		}
		u, err := url.Parse(a.URL)
		if err != nil {
			t.Fatal(err)
		}
		if u.Scheme != "https" || u.Host != "clerk.openrouter.ai" || u.Path != "/v1/verify" {
			t.Fatalf("URL %q", a.URL)
		}
		if strings.Contains(a.URL, "&amp;") {
			t.Fatalf("entities not decoded: %q", a.URL)
		}
		if tk := u.Query().Get("__clerk_ticket"); !strings.HasPrefix(tk, "eyJhbGciOiJIUzI1NiJ9.") || !strings.HasSuffix(tk, "T25seTEyMw") {
			t.Fatalf("ticket %q", tk)
		}
		if u.Query().Get("redirect_url") != "https://openrouter.ai/sign-up/verify" {
			t.Fatalf("redirect_url %q", u.Query().Get("redirect_url"))
		}
		if strings.Contains(a.Reason, "eyJ") {
			t.Fatal("reason leaks the URL")
		}
	}
	// The recipient comes from To and from SES's Received "for" clause.
	if len(m.Recipients) == 0 || m.Recipients[0] != "bot-1700000000@bots.example.org" {
		t.Fatalf("recipients %v", m.Recipients)
	}
	if want := time.Date(2024, 11, 5, 10, 0, 0, 0, time.UTC); !m.Date.Equal(want) {
		t.Fatalf("date %v", m.Date)
	}
}

func TestAnalyzeTextPartAmpLink(t *testing.T) {
	m := loadEML(t, "text-amp-link.eml")
	a := Analyze(m, ExpectLink)
	want := "https://clerk.openrouter.ai/v1/verify?_clerk_js_version=5.35.1&__clerk_ticket=eyJhbGciOiJIUzI1NiJ9.c2lnbi1pbg.c2ln"
	if a.Kind != KindLink || a.URL != want {
		t.Fatalf("got %+v", a)
	}
}

// A mail with both a code and a verify URL (Brave's login mail): the page
// decides.
func TestAnalyzeOTPAndLinkDecidedByExpect(t *testing.T) {
	m := loadEML(t, "otp-and-link.eml")
	if a := Analyze(m, ExpectOTP); a.Kind != KindOTP || a.Code != "482913" {
		t.Fatalf("ExpectOTP: %+v", a)
	}
	if a := Analyze(m, ExpectAny); a.Kind != KindOTP || a.Code != "482913" {
		t.Fatalf("ExpectAny: %+v", a)
	}
	a := Analyze(m, ExpectLink)
	if a.Kind != KindLink || a.URL != "https://account.brave.com/verify?token=9f8e7d6c5b4a39281706f5e4d3c2b1a0&intent=login" {
		t.Fatalf("ExpectLink: %+v", a)
	}
	// Text part first: the same result from the HTML part alone.
	h := m
	h.Text = ""
	if a := Analyze(h, ExpectOTP); a.Kind != KindOTP || a.Code != "482913" || !strings.Contains(a.Reason, "HTML") {
		t.Fatalf("HTML only: %+v", a)
	}
	if a := Analyze(h, ExpectLink); a.Kind != KindLink || !strings.Contains(a.URL, "&intent=login") {
		t.Fatalf("HTML only link: %+v", a)
	}
	if m.To[0] != "bot-42@bots.example.org" {
		t.Fatalf("To %v", m.To)
	}
}

func TestParseMIMEBase64AndRFC2047(t *testing.T) {
	m := loadEML(t, "base64-rfc2047.eml")
	if m.Subject != "Ihr Bestätigungscode für Beispiel" {
		t.Fatalf("subject %q", m.Subject)
	}
	if !strings.Contains(m.From, "Beispiel Kündenservice") || !strings.Contains(m.From, "noreply@beispiel.de") {
		t.Fatalf("from %q", m.From)
	}
	if !strings.Contains(m.Text, "Bestätigungscode lautet: 739204") {
		t.Fatalf("text %q", m.Text)
	}
	if a := Analyze(m, ExpectOTP); a.Kind != KindOTP || a.Code != "739204" {
		t.Fatalf("got %+v", a)
	}
	if !m.Date.Equal(time.Date(2024, 11, 6, 8, 30, 0, 0, time.UTC)) {
		t.Fatalf("date %v", m.Date)
	}
}

func TestAnalyzeAlphanumericCodeBase64HTML(t *testing.T) {
	m := loadEML(t, "alnum-code.eml")
	if a := Analyze(m, ExpectOTP); a.Kind != KindOTP || a.Code != "AB12CD" {
		t.Fatalf("got %+v", a)
	}
}

func TestAnalyzeMarketingMailHasNothing(t *testing.T) {
	m := loadEML(t, "marketing.eml")
	for _, exp := range []Expect{ExpectAny, ExpectOTP, ExpectLink} {
		if a := Analyze(m, exp); a.Kind != KindUnknown {
			t.Fatalf("expect %v: %+v", exp, a)
		}
	}
}

func TestAnalyzeCases(t *testing.T) {
	cases := []struct {
		name   string
		m      Message
		expect Expect
		kind   Kind
		value  string // code or URL
	}{
		{"label verification code", Message{Text: "Your verification code is 123456."}, ExpectOTP, KindOTP, "123456"},
		{"label with filler", Message{Text: "Your OpenRouter sign-in code: 654321 (valid 10 minutes)"}, ExpectAny, KindOTP, "654321"},
		{"trailer is your", Message{Text: "271828 is your Example verification code."}, ExpectOTP, KindOTP, "271828"},
		{"trailer to verify", Message{Text: "Enter 4821 to verify your phone"}, ExpectOTP, KindOTP, "4821"},
		{"4 digits labelled", Message{Text: "Your security code: 4821"}, ExpectOTP, KindOTP, "4821"},
		{"8 digits labelled", Message{Text: "One-time passcode 12345678"}, ExpectOTP, KindOTP, "12345678"},
		{"grouped digits", Message{Text: "Your login code is 123 456"}, ExpectOTP, KindOTP, "123456"},
		{"hyphen grouped", Message{Text: "Verification code: 482-913"}, ExpectOTP, KindOTP, "482913"},
		{"alphanumeric", Message{Text: "Your code is AB12CD"}, ExpectOTP, KindOTP, "AB12CD"},
		{"OTP colon", Message{Text: "OTP: 90817"}, ExpectOTP, KindOTP, "90817"},
		{"Code colon", Message{HTML: "<p>Code:</p><p><strong>773311</strong></p>"}, ExpectOTP, KindOTP, "773311"},
		{"subject only", Message{Subject: "123456 is your login code", Text: "Hello"}, ExpectOTP, KindOTP, "123456"},
		{"longer number not truncated, labelled", Message{Text: "Your verification code is 1234567890123"}, ExpectOTP, KindUnknown, ""},
		{"longer number not truncated, bare", Message{Text: "Verification: account 12345678901 created"}, ExpectOTP, KindUnknown, ""},
		{"digit in gap stops, next label wins", Message{Text: "Your verification code expires in 10 minutes. Code: 556677"}, ExpectOTP, KindOTP, "556677"},
		{"css hex colour ignored", Message{HTML: `<html><head><style>body{color:#141415;background:#141415}</style></head><body><p style="color:#141415">Your verification code</p><p>909090</p></body></html>`}, ExpectOTP, KindOTP, "909090"},
		{"css hex only", Message{HTML: `<style>.a{color:#141415}</style><div style="color:#141415">Verify your account</div>`}, ExpectOTP, KindUnknown, ""},
		{"text hex colour", Message{Text: "Your security code is #141415 colour"}, ExpectOTP, KindUnknown, ""},
		{"date not a code", Message{Text: "Your code was requested on 2024-05-01 at 10:30."}, ExpectOTP, KindUnknown, ""},
		{"amount not a code", Message{Text: "Your code for $123456 off"}, ExpectOTP, KindUnknown, ""},
		{"address digits not a code", Message{Text: "Sent to bot-123456@agentkeys-email.io, your verification is pending"}, ExpectOTP, KindUnknown, ""},
		{"URL digits not a code", Message{Text: "verification: https://x.example/track/123456"}, ExpectOTP, KindUnknown, ""},
		{"bare code when code mentioned", Message{Text: "Here it is:\n\n  314159\n\nUse this code to continue."}, ExpectOTP, KindOTP, "314159"},
		{"bare number without code words", Message{Text: "You used 123456 tokens this week"}, ExpectAny, KindUnknown, ""},
		{"zero-width separated", Message{Text: "Your code is 1\u200b2\u200b3\u200b4\u200b5\u200b6"}, ExpectOTP, KindOTP, "123456"},
		{"nbsp entity", Message{HTML: "Your&nbsp;verification&nbsp;code&nbsp;is&nbsp;<b>246810</b>"}, ExpectOTP, KindOTP, "246810"},
		{"magic link text", Message{Text: "Click to sign in: https://example.com/auth/magic?token=abcdefghijklmnopqrstuvwxyz"}, ExpectLink, KindLink, "https://example.com/auth/magic?token=abcdefghijklmnopqrstuvwxyz"},
		{"link sentence punctuation", Message{Text: "Verify here: https://example.com/verify?t=abc123def456ghi789jkl."}, ExpectLink, KindLink, "https://example.com/verify?t=abc123def456ghi789jkl"},
		{"unsubscribe skipped", Message{Text: "Unsubscribe: https://example.com/email/unsubscribe?token=abcdefghijklmnopqrstuvwxyz\nhttps://example.com/login?ticket=zzzzzzzzzzzzzzzzzzzzzzzzz"}, ExpectLink, KindLink, "https://example.com/login?ticket=zzzzzzzzzzzzzzzzzzzzzzzzz"},
		{"unsubscribe only", Message{HTML: `<a href="https://example.com/u/unsubscribe?token=abcdefghijklmnopqrstuvwx">Unsubscribe</a> <a href="https://example.com/privacy">Privacy</a>`}, ExpectLink, KindUnknown, ""},
		{"tracking and social skipped", Message{HTML: `<a href="https://twitter.com/example/verify">Twitter</a><img src="https://t.example.com/open?verify=1"><a href="https://app.example.com/confirm-email?code=Zx81yUv0QpL2">Confirm email</a>`}, ExpectLink, KindLink, "https://app.example.com/confirm-email?code=Zx81yUv0QpL2"},
		{"anchor text vouches", Message{HTML: `<a href="https://app.example.com/e/Zx81yUv0QpL2Zx81yUv0QpL2">Sign in to Example</a>`}, ExpectLink, KindLink, "https://app.example.com/e/Zx81yUv0QpL2Zx81yUv0QpL2"},
		{"http only for loopback", Message{Text: "Sign in: http://evil.example/verify?token=abcdefghijklmnopqrstuvwxyz and http://127.0.0.1:8080/verify?token=abcdefghijklmnopqrstuvwxyz"}, ExpectLink, KindLink, "http://127.0.0.1:8080/verify?token=abcdefghijklmnopqrstuvwxyz"},
		{"legacy entity kept", Message{HTML: `<a href="https://example.com/verify?a=1&copy=2&amp;b=3">Verify</a>`}, ExpectLink, KindLink, "https://example.com/verify?a=1&copy=2&b=3"},
		{"redirector unwrapped", Message{HTML: `<a href="https://click.mailer.example/c?u=https%3A%2F%2Fapp.example.com%2Fverify%3Ftoken%3Dabcdefghijklmnop">Go</a>`}, ExpectLink, KindLink, "https://app.example.com/verify?token=abcdefghijklmnop"},
		{"link fallback under ExpectOTP", Message{Text: "Sign in: https://example.com/verify?token=abcdefghijklmnopqrstuvwxyz"}, ExpectOTP, KindLink, "https://example.com/verify?token=abcdefghijklmnopqrstuvwxyz"},
		{"code fallback under ExpectLink", Message{Text: "Your verification code is 112233"}, ExpectLink, KindOTP, "112233"},
		{"ExpectAny prefers labelled code", Message{Text: "Your code is 445566 or click https://example.com/verify?token=abcdefghijklmnopqrstuvwxyz"}, ExpectAny, KindOTP, "445566"},
		{"ExpectAny prefers link over bare code", Message{Text: "Code below\n778899\nhttps://example.com/verify?token=abcdefghijklmnopqrstuvwxyz"}, ExpectAny, KindLink, "https://example.com/verify?token=abcdefghijklmnopqrstuvwxyz"},
		{"html in text part", Message{Text: "<html><body><style>p{color:#112233}</style><p>Your verification code is 135790</p></body></html>"}, ExpectOTP, KindOTP, "135790"},
		{"text before html", Message{Text: "Your verification code is 111111", HTML: "<p>Your verification code is 222222</p>"}, ExpectOTP, KindOTP, "111111"},
		{"copyright year not a code", Message{HTML: "<h1>482913</h1><p>Use the code above to sign in.</p><p>© 2024 Example Inc.</p>"}, ExpectOTP, KindOTP, "482913"},
		{"google style", Message{Text: "G-318202 is your Google verification code."}, ExpectOTP, KindOTP, "318202"},
		{"split spans", Message{HTML: "<p>Your login code:</p><p><span>123</span><span>456</span></p>"}, ExpectOTP, KindOTP, "123456"},
		{"code on its own line after label", Message{Text: "Verification code\n\n908172\n\nEnter this verification code to continue signing in."}, ExpectOTP, KindOTP, "908172"},
		{"service name between", Message{Text: "Your ChatGPT code is 551234"}, ExpectOTP, KindOTP, "551234"},
		{"empty", Message{}, ExpectAny, KindUnknown, ""},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			a := Analyze(c.m, c.expect)
			got := a.Code
			if a.Kind == KindLink {
				got = a.URL
			}
			if a.Kind != c.kind || got != c.value {
				t.Fatalf("got %s %q (%s), want %s %q", a.Kind, got, a.Reason, c.kind, c.value)
			}
			if a.Reason == "" {
				t.Fatal("empty reason")
			}
			if got != "" && strings.Contains(a.Reason, got) {
				t.Fatalf("reason %q leaks the value", a.Reason)
			}
		})
	}
}

func TestStripHTML(t *testing.T) {
	got := StripHTML("<html><head><style>a{color:#fff}</style><script>var x=1;</script></head><body><!-- c --><p>A&amp;B&nbsp;&lt;C&gt;</p>\n\n<p>D</p></body></html>")
	if got != "A&B <C> D" {
		t.Fatalf("%q", got)
	}
}

func TestParseMIMEErrors(t *testing.T) {
	if _, err := ParseMIME(nil); err == nil {
		t.Fatal("empty input accepted")
	}
	if _, err := ParseMIME(make([]byte, MaxMessageSize+1)); err == nil {
		t.Fatal("oversized input accepted")
	}
}

func TestParseMIMERecipients(t *testing.T) {
	raw := "Received: from a by b with SMTP id x for <Env@Example.org>; Tue, 5 Nov 2024 10:00:00 +0000\r\n" +
		"Delivered-To: deliv@example.org\r\nX-Original-To: orig@example.org\r\n" +
		"To: \"A, B\" <a@example.org>, c@example.org\r\nCc: =?UTF-8?Q?D=C3=A9?= <d@example.org>\r\n" +
		"From: x@example.org\r\nSubject: hi\r\n\r\nbody\r\n"
	m, err := ParseMIME([]byte(raw))
	if err != nil {
		t.Fatal(err)
	}
	have := map[string]bool{}
	for _, r := range m.Recipients {
		have[r] = true
	}
	for _, w := range []string{"a@example.org", "c@example.org", "d@example.org", "deliv@example.org", "orig@example.org", "env@example.org"} {
		if !have[w] {
			t.Errorf("missing %s in %v", w, m.Recipients)
		}
	}
	if len(m.To) != 2 || m.To[0] != "a@example.org" {
		t.Errorf("To %v", m.To)
	}
	if m.Text != "body\r\n" && m.Text != "body\n" && strings.TrimSpace(m.Text) != "body" {
		t.Errorf("text %q", m.Text)
	}
}

func TestLooksLikeMIME(t *testing.T) {
	for s, want := range map[string]bool{
		"From: a@b\r\nSubject: x\r\n\r\nbody":               true,
		"Subject: x\nContent-Type: text/plain\n\nbody":      true,
		"Your code is 123456\n\nThanks":                     false,
		"Note: something\n\nbody":                           false,
		"<html><body>Code: 1</body></html>":                 false,
		"Subject: x\n folded\nFrom: y\n\n":                  true,
		"":                                                  false,
		"From: a@b\nSubject: only headers, no blank line\n": false,
	} {
		if got := looksLikeMIME(s); got != want {
			t.Errorf("looksLikeMIME(%q) = %v", s, got)
		}
	}
}
