package email

import (
	"html"
	"net"
	"net/url"
	"regexp"
	"strings"
	"sync"
	"unicode/utf8"
)

// Expect says what the sign-up page is waiting for.
type Expect int

// Expectations.
const (
	// ExpectAny: no hint. A labelled code wins, then a sign-in link, then
	// an unlabelled 6-digit code.
	ExpectAny Expect = iota
	// ExpectOTP: the page shows a code input. Any code wins; a sign-in
	// link is returned only when the mail has no code at all.
	ExpectOTP
	// ExpectLink: the page says "check your e-mail". A sign-in link wins;
	// a code is returned only when the mail has no link at all.
	ExpectLink
)

func (e Expect) String() string {
	switch e {
	case ExpectOTP:
		return "otp"
	case ExpectLink:
		return "link"
	}
	return "any"
}

// Kind of an Analysis result.
type Kind string

// Kinds.
const (
	KindOTP     Kind = "otp"
	KindLink    Kind = "link"
	KindUnknown Kind = "unknown"
)

// Analysis is what Analyze found in a message. Reason never contains the
// code or the URL, so it may be logged.
type Analysis struct {
	Kind   Kind
	Code   string // KindOTP: the code as typed into the page (separators removed)
	URL    string // KindLink: absolute URL, HTML entities decoded
	Reason string // how the result was found, or why nothing was
}

// Analyze finds the one-time code or sign-in link in m. expect says what
// the page is waiting for (OTP input present → ExpectOTP; "check your
// e-mail" page → ExpectLink); ExpectAny prefers a link only when no
// labelled code exists.
//
// The text/plain part is searched first, then the text/html part with
// style, script and comments dropped and tags replaced by spaces (so CSS
// colours such as #141415 are never taken for a code), then the subject.
// A code is labelled when it follows "verification code", "your code",
// "OTP", "Code:" … within 40 characters that contain no other digit, or
// precedes "is your …", "to verify/sign in/log in …" the same way; labelled
// codes are 4–8 digits ("123 456" and "123-456" are joined) or 4–8
// upper-case letters and digits with at least one digit ("AB12CD"). An
// unlabelled code is a lone run of exactly 6 digits in a mail that
// mentions a code at all ("code", "OTP", "verification" …), so that "You
// used 123456 tokens" is not one. A digit run is taken
// whole: the first six digits of a longer number never match. A sign-in
// link is an https URL (http only for loopback hosts) that names clerk,
// verify, ticket=, magic, token=, sign-in, login … or whose anchor text
// says so; unsubscribe, privacy, preference, tracking, social and image
// links are skipped.
func Analyze(m Message, expect Expect) Analysis {
	srcs := analysisSources(m)

	var labelled, labelledWhere string
	for _, s := range srcs {
		if c := labelledCode(s.otp); c != "" {
			labelled, labelledWhere = c, s.name
			break
		}
	}
	var bare, bareWhere string
	if labelled == "" && mentionsCode(srcs) {
		for _, s := range srcs {
			if c := bareCode(s.otp); c != "" {
				bare, bareWhere = c, s.name
				break
			}
		}
	}
	link, linkWhere := bestLink(srcs)

	otp := func(why string) Analysis {
		if labelled != "" {
			return Analysis{Kind: KindOTP, Code: labelled, Reason: "labelled code in " + labelledWhere + why}
		}
		return Analysis{Kind: KindOTP, Code: bare, Reason: "unlabelled 6-digit code in " + bareWhere + why}
	}
	lnk := func(why string) Analysis {
		return Analysis{Kind: KindLink, URL: link, Reason: "sign-in link in " + linkWhere + why}
	}
	hasCode := labelled != "" || bare != ""
	switch expect {
	case ExpectOTP:
		if hasCode {
			return otp("")
		}
		if link != "" {
			return lnk(" (a code was expected but the mail has none)")
		}
	case ExpectLink:
		if link != "" {
			return lnk("")
		}
		if hasCode {
			return otp(" (a link was expected but the mail has none)")
		}
	default:
		if labelled != "" {
			return otp("")
		}
		if link != "" {
			return lnk("")
		}
		if bare != "" {
			return otp("")
		}
	}
	return Analysis{Kind: KindUnknown, Reason: "no sign-in link and no one-time code found (expected " + expect.String() + ")"}
}

// maxLinks bounds the links considered per part (a sign-up mail has a
// handful; a hostile one must not make Analyze slow).
const maxLinks = 300

// source is one searchable rendering of a part of the mail.
type source struct {
	name  string
	otp   string // normalised text with URLs and addresses blanked
	links []linkCandidate
}

type linkCandidate struct {
	url     string // entities decoded
	anchor  string // anchor text (HTML) or "" (visible URL)
	context string // text just before a visible URL
}

func analysisSources(m Message) []source {
	var out []source
	if strings.TrimSpace(m.Text) != "" {
		if looksHTML(m.Text) {
			out = append(out, htmlSource("text part", m.Text))
		} else {
			out = append(out, textSource("text part", m.Text))
		}
	}
	if strings.TrimSpace(m.HTML) != "" {
		out = append(out, htmlSource("HTML part", m.HTML))
	}
	if strings.TrimSpace(m.Subject) != "" {
		s := textSource("subject", m.Subject)
		s.links = nil
		out = append(out, s)
	}
	return out
}

func textSource(name, text string) source {
	s := source{name: name}
	for _, loc := range urlRe().FindAllStringIndex(text, maxLinks) {
		u := trimURL(text[loc[0]:loc[1]])
		s.links = append(s.links, linkCandidate{url: decodeURLEntities(u), context: lineBefore(text, loc[0])})
	}
	s.otp = otpText(cleanText(text))
	return s
}

func htmlSource(name, h string) source {
	s := source{name: name}
	visible := dropHidden(h)
	for _, sm := range anchorRe().FindAllStringSubmatch(visible, maxLinks) {
		href := sm[1]
		if href == "" {
			href = sm[2]
		}
		if href == "" {
			href = sm[3]
		}
		href = strings.TrimSpace(decodeURLEntities(href))
		if !urlPrefix().MatchString(href) {
			continue
		}
		s.links = append(s.links, linkCandidate{url: trimURL(href), anchor: cleanText(html.UnescapeString(tagRe().ReplaceAllString(sm[4], " ")))})
	}
	// Visible URLs ("or paste this link: …"), taken before entity
	// decoding so that "&copy=" in a query string is not turned into ©.
	noTags := tagRe().ReplaceAllString(visible, " ")
	for _, loc := range urlRe().FindAllStringIndex(noTags, maxLinks) {
		u := trimURL(noTags[loc[0]:loc[1]])
		before := noTags[max(0, loc[0]-200):loc[0]]
		s.links = append(s.links, linkCandidate{url: decodeURLEntities(u), context: lineBefore(cleanText(html.UnescapeString(before)), -1)})
	}
	s.otp = otpText(cleanText(html.UnescapeString(noTags)))
	return s
}

// StripHTML renders HTML as plain text for searching: style, script and
// comment blocks are dropped, every tag becomes a space, entities are
// decoded and whitespace is collapsed.
func StripHTML(h string) string {
	return cleanText(html.UnescapeString(tagRe().ReplaceAllString(dropHidden(h), " ")))
}

var (
	styleRe   = sync.OnceValue(func() *regexp.Regexp { return regexp.MustCompile(`(?is)<style\b.*?</style\s*>`) })
	scriptRe  = sync.OnceValue(func() *regexp.Regexp { return regexp.MustCompile(`(?is)<script\b.*?</script\s*>`) })
	commentRe = sync.OnceValue(func() *regexp.Regexp { return regexp.MustCompile(`(?s)<!--.*?-->`) })
	tagRe     = sync.OnceValue(func() *regexp.Regexp { return regexp.MustCompile(`(?s)<[A-Za-z/!?][^>]*>`) })
	htmlHint  = sync.OnceValue(func() *regexp.Regexp {
		return regexp.MustCompile(`(?i)<(?:html|body|head|div|p|table|td|tr|span|a\s|br|!doctype|style|font|center|img|h[1-6])\b`)
	})
	anchorRe = sync.OnceValue(func() *regexp.Regexp {
		return regexp.MustCompile(`(?is)<a\b[^>]*?\shref\s*=\s*(?:"([^"]*)"|'([^']*)'|([^\s"'>]+))[^>]*>(.*?)</a\s*>`)
	})
	urlPrefix = sync.OnceValue(func() *regexp.Regexp { return regexp.MustCompile(`(?i)^https?://`) })
	urlRe     = sync.OnceValue(func() *regexp.Regexp { return regexp.MustCompile("(?i)\\bhttps?://[^\\s<>\"'`(){}\\[\\]|\\\\^]+") })
	emailRe   = sync.OnceValue(func() *regexp.Regexp {
		return regexp.MustCompile(`[A-Za-z0-9._%+\-]+@[A-Za-z0-9\-]+(?:\.[A-Za-z0-9\-]+)+`)
	})
	entityRe = sync.OnceValue(func() *regexp.Regexp {
		return regexp.MustCompile(`&(?:#[0-9]{1,7}|#[xX][0-9a-fA-F]{1,6}|[A-Za-z][A-Za-z0-9]{1,31});`)
	})
	spaceRe = sync.OnceValue(func() *regexp.Regexp { return regexp.MustCompile(`\s+`) })
)

func dropHidden(h string) string {
	h = commentRe().ReplaceAllString(h, " ")
	h = styleRe().ReplaceAllString(h, " ")
	return scriptRe().ReplaceAllString(h, " ")
}

func looksHTML(s string) bool { return htmlHint().MatchString(s) }

// cleanText removes invisible characters, turns non-breaking spaces into
// spaces and collapses whitespace.
func cleanText(s string) string {
	s = strings.Map(func(r rune) rune {
		switch r {
		case '\u00a0', '\u2007', '\u202f', '\u3000':
			return ' '
		case '\u200b', '\u200c', '\u200d', '\u2060', '\ufeff', '\u00ad', '\u034f', utf8.RuneError:
			return -1
		}
		return r
	}, s)
	return strings.TrimSpace(spaceRe().ReplaceAllString(s, " "))
}

// otpText blanks URLs and e-mail addresses (their digits are never a code).
func otpText(s string) string {
	s = urlRe().ReplaceAllString(s, " ")
	return emailRe().ReplaceAllString(s, " ")
}

// decodeURLEntities decodes HTML character references in a URL taken from
// HTML or from a text part written by an HTML-minded sender (&amp; → &).
// Only references closed by ';' are decoded: "&copy=1" stays as it is.
func decodeURLEntities(u string) string {
	if !strings.Contains(u, "&") {
		return u
	}
	return entityRe().ReplaceAllStringFunc(u, html.UnescapeString)
}

// trimURL drops punctuation that ends a sentence rather than the URL.
func trimURL(u string) string {
	return strings.TrimRight(u, ".,;:!?*'\"")
}

// lineBefore returns up to 60 bytes before i on the same line (i < 0: the
// end of s).
func lineBefore(s string, i int) string {
	if i < 0 || i > len(s) {
		i = len(s)
	}
	s = s[max(0, i-200):i]
	if j := strings.LastIndexAny(s, "\r\n"); j >= 0 {
		s = s[j+1:]
	}
	if len(s) > 60 {
		s = s[len(s)-60:]
	}
	return strings.ToLower(s)
}

// ---- links ----

var (
	// Strong evidence that a URL signs the user in or verifies the address.
	linkStrong = sync.OnceValue(func() *regexp.Regexp {
		return regexp.MustCompile(`(?i)clerk|/verify|verif(?:y|ication)|ticket=|magic|token=|[?&](?:otp|code)=|confirm|activat|passwordless|one[-_]?time|email[-_]?link`)
	})
	// Weaker evidence.
	linkWeak = sync.OnceValue(func() *regexp.Regexp {
		return regexp.MustCompile(`(?i)sign[-_]?in|sign[-_]?up|log[-_]?in|/auth|/session|callback|/link/|/l/|redirect`)
	})
	// Anchor texts of sign-in buttons.
	anchorGood = sync.OnceValue(func() *regexp.Regexp {
		return regexp.MustCompile(`(?i)\b(?:verify|confirm|sign[ -]?in|log[ -]?in|sign[ -]?up|activate|magic link|continue|get started|access your account|complete (?:your )?(?:sign|registration))`)
	})
	// Links that are never the sign-in link.
	linkSkip = sync.OnceValue(func() *regexp.Regexp {
		return regexp.MustCompile(`(?i)unsubscri|opt[-_ ]?out|optout|preference|privacy|policy|/terms|terms[-_ ]of|tracking|/track|/pixel|beacon|/open[/?.]|/o/|list-manage|manage[-_ ]?(?:subscription|email|notification)|email[-_ ]?settings|notification[-_ ]?settings|/help|support\.|/support|/contact|/legal|/about|/blog|/careers|/status|/faq`)
	})
	// Context words before a visible URL that disqualify it.
	contextSkip = sync.OnceValue(func() *regexp.Regexp {
		return regexp.MustCompile(`(?i)unsubscri|opt[ -]?out|privacy|preferences|terms|manage (?:your )?(?:email|subscription|notification)|view (?:this|in) (?:e-?mail )?(?:in )?(?:your )?browser|help|support`)
	})
	socialHost = sync.OnceValue(func() *regexp.Regexp {
		return regexp.MustCompile(`(?i)(?:^|\.)(?:facebook|twitter|x|linkedin|instagram|youtube|tiktok|github|discord|reddit|medium|t)\.(?:com|co|gg)$`)
	})
	opaqueRe = sync.OnceValue(func() *regexp.Regexp { return regexp.MustCompile(`[A-Za-z0-9_\-.~%]{20,}`) })
	imageExt = sync.OnceValue(func() *regexp.Regexp {
		return regexp.MustCompile(`(?i)\.(?:png|gif|jpe?g|svg|webp|ico|css|js|woff2?)$`)
	})
)

// bestLink returns the highest-scoring sign-in link (ties: text part
// before HTML, document order) and where it was found.
func bestLink(srcs []source) (string, string) {
	best, bestScore, where := "", 1, ""
	for _, s := range srcs {
		for _, c := range s.links {
			u, sc := scoreLink(c, true)
			if sc > bestScore {
				best, bestScore, where = u, sc, s.name
			}
		}
	}
	return best, where
}

// scoreLink rates a candidate (0: not a sign-in link). It may return an
// unwrapped URL when the candidate is a redirector whose target is the
// real sign-in link.
func scoreLink(c linkCandidate, unwrap bool) (string, int) {
	u, ok := parseLinkURL(c.url)
	if !ok {
		return "", 0
	}
	if c.anchor != "" && linkSkip().MatchString(c.anchor) || c.context != "" && contextSkip().MatchString(c.context) {
		return "", 0
	}
	if linkSkip().MatchString(u.Host+u.EscapedPath()) || strings.Contains(strings.ToLower(c.url), "unsubscri") ||
		socialHost().MatchString(u.Hostname()) || imageExt().MatchString(u.Path) {
		return "", 0
	}
	// Judge the URL by itself, not by URLs nested in its query (a Clerk
	// link's redirect_url, a redirector's target).
	self, nested := splitNested(u)
	sc := 0
	if linkStrong().MatchString(self) {
		sc += 3
	} else if linkWeak().MatchString(self) {
		sc++
	}
	if c.anchor != "" && anchorGood().MatchString(c.anchor) {
		sc++
	}
	if opaqueRe().MatchString(self) {
		sc++
	}
	if sc < 3 && unwrap {
		// A click-tracking redirector: the target may be in the query.
		for _, v := range nested {
			if in, isc := scoreLink(linkCandidate{url: v}, false); isc >= 3 {
				return in, isc
			}
		}
	}
	return u.String(), sc
}

// splitNested returns u without query values that are themselves URLs
// (as a string to match against), and those URLs.
func splitNested(u *url.URL) (string, []string) {
	var b strings.Builder
	b.WriteString(u.Host)
	b.WriteString(u.EscapedPath())
	var nested []string
	for _, kv := range strings.Split(u.RawQuery, "&") {
		k, v, _ := strings.Cut(kv, "=")
		if dv, err := url.QueryUnescape(v); err == nil && urlPrefix().MatchString(dv) {
			nested = append(nested, dv)
			v = ""
		}
		b.WriteString("?" + k + "=" + v)
	}
	if u.Fragment != "" {
		b.WriteString("#" + u.EscapedFragment())
	}
	return b.String(), nested
}

// parseLinkURL accepts absolute https URLs, and http ones for loopback
// hosts (local test fixtures).
func parseLinkURL(s string) (*url.URL, bool) {
	if len(s) > 8192 {
		return nil, false
	}
	u, err := url.Parse(s)
	if err != nil || u.Host == "" || u.User != nil {
		return nil, false
	}
	switch strings.ToLower(u.Scheme) {
	case "https":
	case "http":
		h := u.Hostname()
		if ip := net.ParseIP(h); !(h == "localhost" || ip != nil && ip.IsLoopback()) {
			return nil, false
		}
	default:
		return nil, false
	}
	return u, true
}

// ---- codes ----

// codeLabel matches the words that announce a code.
var codeLabel = sync.OnceValue(func() *regexp.Regexp {
	return regexp.MustCompile(`(?i)\b(?:(?:verification|verify|security|log[- ]?in|sign[- ]?in|sign[- ]?up|one[- ]?time|auth|authentication|access|confirmation|confirm|temporary|2fa|two[- ]factor|e-?mail|your|the|this|following|enter|use|login)(?:[ -]+[a-z][a-z0-9.'-]*){0,2}?[ -]+(?:code|pin|passcode|otp)\b|passcode\b|one[- ]?time[ -]pass(?:word|code)?\b|\botp\b|\bcode\s*[:：])`)
})

// codeTrailer matches the words that follow a code ("123456 is your code").
var codeTrailer = sync.OnceValue(func() *regexp.Regexp {
	return regexp.MustCompile(`(?i)\b(?:is your|is the|to verify|to sign|to log|to confirm|to complete|to continue|to finish|to activate)\b`)
})

// token is a maximal run of ASCII letters and digits.
type token struct {
	start, end       int
	digits, letters  bool
	upper            bool // every letter is upper case
	allDigits        bool
	text             string
	prevSep, nextSep byte // the byte before / after (0 at the ends)
}

func tokenize(s string) []token {
	var out []token
	isAlnum := func(b byte) bool { return b >= '0' && b <= '9' || b >= 'a' && b <= 'z' || b >= 'A' && b <= 'Z' }
	for i := 0; i < len(s); {
		if !isAlnum(s[i]) {
			i++
			continue
		}
		j := i
		t := token{start: i, upper: true}
		for j < len(s) && isAlnum(s[j]) {
			switch c := s[j]; {
			case c >= '0' && c <= '9':
				t.digits = true
			case c >= 'a' && c <= 'z':
				t.letters, t.upper = true, false
			default:
				t.letters = true
			}
			j++
		}
		t.end, t.text, t.allDigits = j, s[i:j], !t.letters
		if i > 0 {
			t.prevSep = s[i-1]
		}
		if j < len(s) {
			t.nextSep = s[j]
		}
		out = append(out, t)
		i = j
	}
	return out
}

// partOfNumber reports whether the digit token k is glued to another
// number by '.', ',', ':', '/' or '-' (a date, a time, an amount).
func partOfNumber(s string, toks []token, k int) bool {
	t := toks[k]
	glue := func(b byte) bool { return b == '.' || b == ',' || b == ':' || b == '/' || b == '-' }
	if k > 0 && glue(t.prevSep) && toks[k-1].end == t.start-1 && toks[k-1].digits {
		return true
	}
	if k+1 < len(toks) && glue(t.nextSep) && toks[k+1].start == t.end+1 && toks[k+1].digits {
		return true
	}
	return false
}

// codeAt returns the labelled code starting at token k ("" if none), and
// whether token k ends the search (a digit run that is not a code).
func codeAt(s string, toks []token, k int) (code string, stop bool) {
	t := toks[k]
	if !t.digits {
		return "", false
	}
	if t.prevSep == '#' || t.prevSep == '$' || t.prevSep == '+' || t.nextSep == '%' {
		return "", true
	}
	if t.allDigits && len(t.text) == 4 && (t.text[:2] == "19" || t.text[:2] == "20") && copyrightBefore(s, t.start) {
		return "", true // "© 2024 Example Inc."
	}
	if t.allDigits {
		// "123 456" / "123-456": two groups of 3–4 digits.
		if n := len(t.text); n >= 3 && n <= 4 && k+1 < len(toks) && (t.nextSep == ' ' || t.nextSep == '-') {
			u := toks[k+1]
			if u.start == t.end+1 && u.allDigits && len(u.text) >= 3 && len(u.text) <= 4 &&
				!(k+2 < len(toks) && toks[k+2].start == u.end+1 && toks[k+2].digits && (u.nextSep == ' ' || u.nextSep == '-' || u.nextSep == '.')) {
				return t.text + u.text, false
			}
		}
		if len(t.text) >= 4 && len(t.text) <= 8 && !partOfNumber(s, toks, k) {
			return t.text, false
		}
		return "", true
	}
	if t.upper && len(t.text) >= 4 && len(t.text) <= 8 && t.nextSep != '-' && t.prevSep != '-' {
		return t.text, false
	}
	return "", false // a word such as "2FA" or "10min": keep looking
}

const labelGap = 40

// copyrightBefore reports whether a copyright sign or word shortly
// precedes position i.
func copyrightBefore(s string, i int) bool {
	before := strings.ToLower(s[max(0, i-16):i])
	return strings.Contains(before, "©") || strings.Contains(before, "(c)") || strings.Contains(before, "copyright")
}

// labelledCode applies the label-aware rules to normalised text.
func labelledCode(s string) string {
	if s == "" {
		return ""
	}
	toks := tokenize(s)
	// (a) label … code
	for _, loc := range codeLabel().FindAllStringIndex(s, -1) {
		for k := firstTokenAt(toks, loc[1]); k < len(toks); k++ {
			if toks[k].start-loc[1] > labelGap {
				break
			}
			code, stop := codeAt(s, toks, k)
			if code != "" {
				return code
			}
			if stop {
				break
			}
		}
	}
	// (b) code … "is your" / "to verify" …
	for _, loc := range codeTrailer().FindAllStringIndex(s, -1) {
		k := firstTokenAt(toks, loc[0]) - 1
		for ; k >= 0 && !toks[k].digits && loc[0]-toks[k].end <= labelGap; k-- {
		}
		if k < 0 || loc[0]-toks[k].end > labelGap {
			continue
		}
		// A grouped code ("123 456 is your code") ends at token k.
		if k > 0 {
			if code, _ := codeAt(s, toks, k-1); code != "" && len(code) > len(toks[k-1].text) && code[len(toks[k-1].text):] == toks[k].text {
				return code
			}
		}
		if code, _ := codeAt(s, toks, k); code != "" && code == toks[k].text {
			return code
		}
	}
	return ""
}

// codeWords are the words without which a lone 6-digit number is not
// taken for a code ("You used 123456 tokens this week").
var codeWords = sync.OnceValue(func() *regexp.Regexp {
	return regexp.MustCompile(`(?i)\b(?:code|codes|otp|passcode|pin|verif(?:y|ication)|one[- ]?time|2fa|security|authenticat(?:e|ion)|c[oó]digo|bestätigung\w*|sign[- ]?in code)\b`)
})

func mentionsCode(srcs []source) bool {
	for _, s := range srcs {
		if codeWords().MatchString(s.otp) {
			return true
		}
	}
	return false
}

// bareCode returns the first lone 6-digit run.
func bareCode(s string) string {
	toks := tokenize(s)
	for k, t := range toks {
		if t.allDigits && len(t.text) == 6 && t.prevSep != '#' && t.prevSep != '+' && t.prevSep != '$' &&
			t.nextSep != '%' && !partOfNumber(s, toks, k) {
			return t.text
		}
	}
	return ""
}

// firstTokenAt returns the index of the first token starting at or after i.
func firstTokenAt(toks []token, i int) int {
	lo, hi := 0, len(toks)
	for lo < hi {
		mid := (lo + hi) / 2
		if toks[mid].start < i {
			lo = mid + 1
		} else {
			hi = mid
		}
	}
	return lo
}
