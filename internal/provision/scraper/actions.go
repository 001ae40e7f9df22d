package scraper

import (
	"context"
	"errors"
	"fmt"
	"net/url"
	"regexp"
	"strings"
	"time"

	"github.com/chromedp/chromedp"
	"github.com/chromedp/chromedp/kb"

	"github.com/agentkeys/agentkeys/internal/provision"
	"github.com/agentkeys/agentkeys/internal/provision/email"
)

// navigate loads u and checks the main document's status. Only the
// redacted URL (no query: it may hold a sign-in ticket) is recorded.
func (r *runner) navigate(step, u string) error {
	r.step = step
	r.record(step, "navigate", nil, redactURL(u), "")
	ctx, cancel := context.WithTimeout(r.ctx, navTimeout)
	defer cancel()
	resp, err := chromedp.Run(ctx, chromedp.NavigateResponse(u))
	if err != nil {
		if r.parent.Err() != nil {
			return r.parent.Err()
		}
		var le *chromedp.LoadError
		if errors.As(err, &le) || errors.Is(err, context.DeadlineExceeded) {
			return r.trip(provision.TripUnexpectedNav, step, fmt.Sprintf("could not load %s: %v", redactURL(u), err))
		}
		return err
	}
	if resp != nil && resp.Status >= 500 {
		r.b.net.take5xx() // reported here
		return r.trip(provision.TripHTTP5xx, step, fmt.Sprintf("HTTP %d on %s", resp.Status, redactURL(resp.URL)))
	}
	return r.check5xx(step)
}

// openSignup starts a flow: it sets the service's overlays and opens the
// sign-up page.
func (r *runner) openSignup(overlays sels) error {
	r.overlays = overlays
	r.progress("navigating_to_signup")
	return r.navigate("open_signup", r.cfg.SignupURL)
}

// openKeys opens the service's keys page at path (resolved against the
// sign-up URL) and waits until the browser's path ends in suffix.
func (r *runner) openKeys(path, suffix string) error {
	r.progress("opening_keys_page")
	keys, err := resolve(r.cfg.SignupURL, path)
	if err != nil {
		return err
	}
	if err := r.navigate("open_keys", keys); err != nil {
		return err
	}
	return r.waitURL("open_keys", keys, func(u *url.URL) bool { return strings.HasSuffix(u.Path, suffix) })
}

// resolve resolves ref against base (the sign-up URL).
func resolve(base, ref string) (string, error) {
	b, err := url.Parse(base)
	if err != nil {
		return "", err
	}
	rr, err := url.Parse(ref)
	if err != nil {
		return "", err
	}
	return b.ResolveReference(rr).String(), nil
}

// moveAndClick moves the mouse to (x, y) in a few steps and clicks there
// with real input events.
func (r *runner) moveAndClick(x, y float64) error {
	const steps = 6
	fx, fy := r.mouseX, r.mouseY
	for i := 1; i <= steps; i++ {
		px := fx + (x-fx)*float64(i)/steps
		py := fy + (y-fy)*float64(i)/steps
		if _, err := chromedp.Run(r.ctx, chromedp.MouseEvent(chromedp.MouseMoved, px, py)); err != nil {
			return err
		}
		if err := r.jitter(5*time.Millisecond, 25*time.Millisecond); err != nil {
			return err
		}
	}
	r.mouseX, r.mouseY = x, y
	if err := r.jitter(80*time.Millisecond, 220*time.Millisecond); err != nil {
		return err
	}
	_, err := chromedp.Run(r.ctx, chromedp.MouseClickXY(x, y))
	return err
}

// clickFound clicks an element located by find: at a random point near its
// centre when a click there reaches it, else (covered by a label or an
// overlay) with a DOM click.
func (r *runner) clickFound(q query, f found) error {
	if !f.Hit {
		var ok bool
		if err := r.js("jsClick", q, &ok); err != nil {
			return err
		}
		if !ok {
			return errors.New("element went away before the click")
		}
		return nil
	}
	x := f.X + (randFloat()-0.5)*f.W*0.3
	y := f.Y + (randFloat()-0.5)*f.H*0.3
	return r.moveAndClick(x, y)
}

// click waits until an element of cands is visible and enabled, scrolls it
// into view and clicks it.
func (r *runner) click(step string, cands sels) error {
	r.step = step
	q := query{Cands: cands, Enabled: true, Scroll: true}
	var f found
	// Prefer a point where the click reaches the element. A covered
	// element (an onboarding modal, a cookie banner) gets the service's
	// overlays dismissed; if it stays covered it is clicked through the
	// DOM after a few seconds.
	var coveredSince, lastUnblock time.Time
	err := r.poll(step, r.cfg.SelectorTimeout, func() (bool, error) {
		var err error
		f, err = r.find(q)
		if err != nil || !f.Found {
			coveredSince = time.Time{}
			return false, err
		}
		if f.Hit {
			return true, nil
		}
		if coveredSince.IsZero() {
			coveredSince = time.Now()
		}
		if time.Since(coveredSince) > 300*time.Millisecond && time.Since(lastUnblock) > 700*time.Millisecond {
			lastUnblock = time.Now()
			if err := r.unblock(step); err != nil {
				return false, err
			}
		}
		return time.Since(coveredSince) > 3*time.Second, nil
	})
	if errors.Is(err, errBudget) {
		return r.selectorTimeout(step, cands, r.cfg.SelectorTimeout)
	}
	if err != nil {
		return err
	}
	note := ""
	if !f.Hit {
		note = "dom click (element covered)"
	}
	q.Cands = cands[f.Cand : f.Cand+1]
	r.record(step, "click", q.Cands, "", note)
	return r.clickFound(q, f)
}

// unblock dismisses one overlay (r.overlays, from the service file) that
// covers the page, or presses Escape when none of its buttons shows.
func (r *runner) unblock(step string) error {
	f, err := r.find(query{Cands: r.overlays, Enabled: true})
	if err != nil {
		return err
	}
	if !f.Found {
		r.record(step, "press_escape", nil, "", "target covered")
		_, err := chromedp.Run(r.ctx, chromedp.KeyEvent(kb.Escape))
		return err
	}
	r.record(step, "dismiss_overlay", r.overlays[f.Cand:f.Cand+1], "", "target covered")
	r.log.printf("dismissing an overlay")
	return r.clickFound(query{Cands: r.overlays[f.Cand : f.Cand+1], Enabled: true}, f)
}

// typeText types value into the first usable element of cands, key by
// key, replacing what it held, and checks that the field took it. secret
// values are never logged.
func (r *runner) typeText(step string, cands sels, value string, secret bool) error {
	f, err := r.waitVisible(step, cands, true)
	if err != nil {
		return err
	}
	return r.typeInto(step, query{Cands: cands[f.Cand : f.Cand+1], Enabled: true, Scroll: true}, value, secret)
}

func (r *runner) typeInto(step string, q query, value string, secret bool) error {
	shown := value
	if secret {
		shown = "[redacted]"
	}
	r.record(step, "type", q.Cands, shown, fmt.Sprintf("%d characters", len([]rune(value))))
	f, err := r.find(q)
	if err != nil {
		return err
	}
	if !f.Found {
		return r.selectorTimeout(step, q.Cands, 0)
	}
	if err := r.clickFound(q, f); err != nil {
		return err
	}
	var ok bool
	if err := r.js("select", q, &ok); err != nil {
		return err
	}
	for _, c := range value {
		if _, err := chromedp.Run(r.ctx, chromedp.KeyEvent(string(c))); err != nil {
			return err
		}
		if err := r.jitter(30*time.Millisecond, 110*time.Millisecond); err != nil {
			return err
		}
	}
	vq := q
	vq.V = value
	if err := r.js("valueIs", vq, &ok); err != nil {
		return err
	}
	if ok {
		return nil
	}
	// The field reformatted or dropped keys: set the value directly, with
	// input and change events for the page's framework.
	r.record(step, "set_value", q.Cands, shown, "typed value did not stick")
	if err := r.js("setValue", vq, &ok); err != nil {
		return err
	}
	if err := r.js("valueIs", vq, &ok); err != nil {
		return err
	}
	if !ok {
		return r.fail(provision.CodeInternal, fmt.Sprintf("%s: the field %s does not take the value", step, q.Cands))
	}
	return nil
}

// checkBox ticks a checkbox (falling back to a DOM click when clicking
// the box does not tick it) and confirms it is checked. Styled checkboxes
// often hide the input itself behind its label, so a hidden box counts.
func (r *runner) checkBox(step string, cands sels) error {
	r.step = step
	hidden := false
	var f found
	err := r.poll(step, r.cfg.SelectorTimeout, func() (bool, error) {
		var err error
		if f, err = r.find(query{Cands: cands, Scroll: true}); err != nil || f.Found {
			return f.Found, err
		}
		f, err = r.find(query{Cands: cands, Visible: &hidden})
		return f.Found, err
	})
	if errors.Is(err, errBudget) {
		return r.selectorTimeout(step, cands, r.cfg.SelectorTimeout)
	}
	if err != nil {
		return err
	}
	q := query{Cands: cands[f.Cand : f.Cand+1], Visible: &hidden, Scroll: true}
	if f.Checked {
		r.record(step, "already_checked", q.Cands, "", "")
		return nil
	}
	r.record(step, "check", q.Cands, "", "")
	if err := r.clickFound(q, f); err != nil {
		return err
	}
	checked := func() bool {
		g, _ := r.find(query{Cands: q.Cands, Visible: &hidden})
		return g.Checked
	}
	if checked() {
		return nil
	}
	r.record(step, "check", q.Cands, "", "dom click")
	var ok bool
	_ = r.js("jsClick", q, &ok)
	if checked() {
		return nil
	}
	return r.trip(provision.TripSelectorTimeout, step, fmt.Sprintf("the checkbox %s does not stay checked", q.Cands))
}

// fetchVerification waits (mail budget) for the verification mail and
// analyzes it for what the page expects; a mail with neither is skipped
// (so a marketing mail from the same sender cannot end the wait).
func (r *runner) fetchVerification(step string, q email.Query, expect email.Expect) (email.Analysis, error) {
	r.step = step
	r.record(step, "fetch_mail", nil, "", fmt.Sprintf("from ~ %v, subject ~ %v", q.From, q.Subject))
	q.Accept = func(m email.Message) bool {
		a := email.Analyze(m, expect)
		return a.Kind == email.KindOTP || a.Kind == email.KindLink
	}
	ctx, cancel := context.WithTimeout(r.parent, r.cfg.EmailTimeout)
	defer cancel()
	m, err := r.fetcher.Fetch(ctx, q)
	switch {
	case err == nil:
	case r.parent.Err() != nil:
		return email.Analysis{}, r.parent.Err()
	case errors.Is(err, email.ErrTimeout) || errors.Is(err, context.DeadlineExceeded):
		return email.Analysis{}, r.trip(provision.TripEmailTimeout, step, fmt.Sprintf("no verification mail for %s within %s", q.To, r.cfg.EmailTimeout))
	default:
		return email.Analysis{}, r.fail(provision.CodeEmailBackendDown, err.Error())
	}
	analysis := email.Analyze(m, expect)
	r.record(step, "mail", nil, "", fmt.Sprintf("got %q: %s", m.Subject, analysis.Kind))
	r.log.printf("verification mail arrived (%s)", analysis.Kind)
	if analysis.Kind != email.KindOTP && analysis.Kind != email.KindLink {
		return analysis, r.fail(provision.CodeOTPNotFound, "the verification mail has no code or link: "+analysis.Reason)
	}
	return analysis, nil
}

// codeRejected returns a verification_failed tripwire when the page shows
// the site's wrong-code message (the pattern rejected), else nil.
func (r *runner) codeRejected(step, rejected string) error {
	if a := r.alertText(); a != "" && regexp.MustCompile("(?i)"+rejected).MatchString(a) {
		return r.trip(provision.TripVerificationFailed, step, "the site rejected the e-mailed code: "+a)
	}
	return nil
}

// submitCode waits after a code was typed until the code page is left;
// it clicks the submit button (once) when the page does not move on by
// itself, and reports a rejected code.
func (r *runner) submitCode(step string, submit sels, left func() (bool, error), rejected string) error {
	r.step = step
	clicked := false
	err := r.poll(step, r.cfg.SelectorTimeout, func() (bool, error) {
		if ok, err := left(); ok || err != nil {
			return ok, err
		}
		if err := r.codeRejected(step, rejected); err != nil {
			return false, err
		}
		if clicked {
			return false, nil
		}
		f, err := r.find(query{Cands: submit, Enabled: true, Scroll: true})
		if err != nil || !f.Found {
			return false, err
		}
		clicked = true
		r.record(step, "click", submit[f.Cand:f.Cand+1], "", "")
		return false, r.clickFound(query{Cands: submit[f.Cand : f.Cand+1], Enabled: true, Scroll: true}, f)
	})
	if errors.Is(err, errBudget) {
		details := fmt.Sprintf("still on the code page after %s", r.cfg.SelectorTimeout)
		if a := r.alertText(); a != "" {
			details += "; the page says: " + a
		}
		return r.trip(provision.TripUnexpectedNav, step, details)
	}
	return err
}

// extractKey waits until the key is visible and reads it.
func (r *runner) extractKey(step string, cands sels) (string, error) {
	f, err := r.waitVisible(step, cands, false)
	if err != nil {
		return "", err
	}
	var v string
	if err := r.js("value", query{Cands: cands[f.Cand : f.Cand+1]}, &v); err != nil {
		return "", err
	}
	v = strings.TrimSpace(v)
	r.record(step, "read_key", cands[f.Cand:f.Cand+1], "[redacted]", fmt.Sprintf("%d characters", len([]rune(v))))
	if !keyRE.MatchString(v) {
		rs := []rune(v)
		prefix := string(rs[:min(len(rs), 6)])
		return "", r.fail(provision.CodeKeyFormat, fmt.Sprintf("the revealed value does not look like an API key (%d characters, starts %q)", len(rs), prefix))
	}
	return v, nil
}
