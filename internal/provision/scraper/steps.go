package scraper

import (
	"context"
	"crypto/rand"
	_ "embed"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math/big"
	"net/url"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"time"

	"github.com/chromedp/chromedp"
	"github.com/chromedp/chromedp/kb"

	"github.com/agentkeys/agentkeys/internal/provision"
	"github.com/agentkeys/agentkeys/internal/provision/email"
)

//go:embed page.js
var pageJS string

// keyRE is what an extracted API key must look like.
var keyRE = regexp.MustCompile(`^sk-[A-Za-z0-9_-]{20,}$`)

const (
	pollInterval = 150 * time.Millisecond
	evalTimeout  = 5 * time.Second
)

// sel is one candidate of a selector list: a CSS selector plus optional
// case-insensitive regular expressions over the element's text (see
// page.js).
type sel struct {
	CSS  string `json:"css"`
	Text string `json:"text,omitempty"`
	Not  string `json:"not,omitempty"`
}

// sels is a priority list of candidates.
type sels []sel

func (s sels) String() string {
	parts := make([]string, len(s))
	for i, c := range s {
		p := c.CSS
		if c.Text != "" {
			p += " ~/" + c.Text + "/i"
		}
		if c.Not != "" {
			p += " !~/" + c.Not + "/i"
		}
		parts[i] = p
	}
	return strings.Join(parts, " | ")
}

// runner is one scraper run: the browser tab, the budgets and the record
// of what was done.
type runner struct {
	parent  context.Context // the caller's context (signals)
	ctx     context.Context // the tab, canceled with parent
	cfg     provision.ScraperConfig
	opts    Options
	em      *provision.Emitter
	log     *logger
	start   time.Time
	acts    *actionLog
	b       *browserSession
	fetcher email.Fetcher
	step    string
	// overlays are the buttons that close the service's modals and
	// banners (set by the flow), tried when a target is covered.
	overlays sels

	mouseX, mouseY float64
}

// failure is a classified failure: its event is the run's terminal event.
type failure struct{ ev provision.Event }

func (f *failure) Error() string { return f.ev.String() }

func (r *runner) elapsed() int64 { return time.Since(r.start).Milliseconds() }

// trip ends the run with a tripwire.
func (r *runner) trip(kind provision.TripwireKind, step, details string) error {
	return &failure{provision.Event{Type: provision.TypeTripwire, Kind: kind, Step: step, ElapsedMS: max(r.elapsed(), 1), Details: details}}
}

// fail ends the run with an error event.
func (r *runner) fail(code provision.ErrorCode, details string) error {
	return &failure{provision.Event{Type: provision.TypeError, Code: code, Details: details}}
}

// progress reports a step to the orchestrator and the log.
func (r *runner) progress(step string) {
	r.log.printf("%s", strings.ReplaceAll(step, "_", " "))
	_ = r.em.Progress(step)
}

// record adds an action to the diagnostics log. value must never be a
// secret: pass "" or "[redacted]".
func (r *runner) record(step, action string, s fmt.Stringer, value, note string) {
	a := action_{Time: time.Now().UTC().Format("2006-01-02T15:04:05.000Z"), Step: step, Action: action, Value: value, Note: note}
	if s != nil {
		a.Selector = s.String()
	}
	if r.b != nil {
		a.URL = redactURL(r.b.net.url())
	}
	r.acts.add(a)
}

// ---- page queries ----

// js runs op of page.js with args and decodes the result into out.
func (r *runner) js(op string, args any, out any) error {
	if args == nil {
		args = map[string]any{}
	}
	ob, _ := json.Marshal(op)
	ab, err := json.Marshal(args)
	if err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(r.ctx, evalTimeout)
	defer cancel()
	raw, err := chromedp.Run(ctx, chromedp.Evaluate[[]byte](pageJS+"("+string(ob)+","+string(ab)+")"))
	if err != nil {
		return err
	}
	if out == nil || len(raw) == 0 {
		return nil
	}
	return json.Unmarshal(raw, out)
}

type found struct {
	Found   bool    `json:"found"`
	N       int     `json:"n"`
	Cand    int     `json:"cand"`
	X       float64 `json:"x"`
	Y       float64 `json:"y"`
	W       float64 `json:"w"`
	H       float64 `json:"h"`
	Hit     bool    `json:"hit"`
	Tag     string  `json:"tag"`
	Type    string  `json:"type"`
	Checked bool    `json:"checked"`
	Enabled bool    `json:"enabled"`
	Focused bool    `json:"focused"`
}

type query struct {
	Cands   sels   `json:"cands"`
	Visible *bool  `json:"visible,omitempty"` // nil: must be visible; false: any
	Nth     int    `json:"nth,omitempty"`
	Enabled bool   `json:"enabled,omitempty"`
	Scroll  bool   `json:"scroll,omitempty"`
	V       string `json:"v,omitempty"`
}

func (r *runner) find(q query) (found, error) {
	var f found
	err := r.js("find", q, &f)
	return f, err
}

// visibleProbe reports whether a visible element matches cands.
func (r *runner) visibleProbe(cands sels) func() (bool, error) {
	return func() (bool, error) {
		f, err := r.find(query{Cands: cands})
		return f.Found, err
	}
}

// textProbe reports whether the page text matches the regular expression.
func (r *runner) textProbe(re string) func() (bool, error) {
	return func() (bool, error) {
		var ok bool
		err := r.js("text", map[string]string{"re": re}, &ok)
		return ok, err
	}
}

// urlProbe reports whether the current URL satisfies ok.
func (r *runner) urlProbe(ok func(*url.URL) bool) func() (bool, error) {
	return func() (bool, error) {
		u, err := url.Parse(r.b.net.url())
		if err != nil {
			return false, nil
		}
		return ok(u), nil
	}
}

// alertText is the visible error text of the page, if any.
func (r *runner) alertText() string {
	var s string
	_ = r.js("alert", nil, &s)
	return s
}

// ---- waiting ----

// errBudget is returned by poll when the budget ran out.
var errBudget = errors.New("budget exhausted")

// poll calls probe until it reports true, the budget runs out (errBudget)
// or the run is interrupted. Evaluation errors while a page is navigating
// are expected and retried. A server error on the main document ends the
// wait with an http5xx tripwire.
func (r *runner) poll(step string, budget time.Duration, probe func() (bool, error)) error {
	deadline := time.Now().Add(budget)
	for {
		if err := r.check5xx(step); err != nil {
			return err
		}
		ok, err := probe()
		if err != nil {
			if cerr := r.ctx.Err(); cerr != nil {
				return cerr
			}
			var f *failure
			if errors.As(err, &f) {
				return err
			}
		}
		if ok {
			return r.check5xx(step)
		}
		if time.Now().After(deadline) {
			return errBudget
		}
		if err := r.sleep(pollInterval); err != nil {
			return err
		}
	}
}

func (r *runner) sleep(d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-r.ctx.Done():
		return r.ctx.Err()
	case <-t.C:
		return nil
	}
}

// jitter pauses for a human-like random time in [lo, hi).
func (r *runner) jitter(lo, hi time.Duration) error {
	if r.opts.noJitter || hi <= lo {
		return nil
	}
	return r.sleep(lo + time.Duration(randInt(int64(hi-lo))))
}

// check5xx fires the http5xx tripwire when the main document came back
// with a server error.
func (r *runner) check5xx(step string) error {
	if st, u, ok := r.b.net.take5xx(); ok {
		r.record(step, "http_status", nil, fmt.Sprint(st), "")
		return r.trip(provision.TripHTTP5xx, step, fmt.Sprintf("HTTP %d on %s", st, redactURL(u)))
	}
	return nil
}

// selectorTimeout is the tripwire for an element that never became usable.
func (r *runner) selectorTimeout(step string, cands sels, waited time.Duration) error {
	details := fmt.Sprintf("no usable element for %s after %s", cands, waited.Round(time.Millisecond))
	if a := r.alertText(); a != "" {
		details += "; the page says: " + a
	}
	return r.trip(provision.TripSelectorTimeout, step, details)
}

// waitVisible waits (selector budget) until an element of cands is
// visible (and enabled when enabled is set).
func (r *runner) waitVisible(step string, cands sels, enabled bool) (found, error) {
	r.step = step
	var f found
	err := r.poll(step, r.cfg.SelectorTimeout, func() (bool, error) {
		var err error
		f, err = r.find(query{Cands: cands, Enabled: enabled})
		return f.Found, err
	})
	if errors.Is(err, errBudget) {
		return f, r.selectorTimeout(step, cands, r.cfg.SelectorTimeout)
	}
	return f, err
}

// outcome is one of the states a step can lead to.
type outcome struct {
	name  string
	probe func() (bool, error)
}

// await waits until one of the outcomes holds and returns its index. A
// captcha wall met on the way is handled: in a headless browser it is a
// captcha tripwire once it did not pass by itself within the passive
// window; in a headful one a person is asked to solve it (assist event)
// and the wait resumes with a fresh budget once solved.
func (r *runner) await(step string, outs ...outcome) (int, error) {
	r.step = step
	budget := r.cfg.SelectorTimeout
	deadline := time.Now().Add(budget)
	var wallSince time.Time
	for {
		if err := r.check5xx(step); err != nil {
			return -1, err
		}
		for i, o := range outs {
			ok, err := o.probe()
			if err != nil {
				if cerr := r.ctx.Err(); cerr != nil {
					return -1, cerr
				}
				var f *failure
				if errors.As(err, &f) {
					return -1, err
				}
			}
			if ok {
				r.record(step, "reached", nil, o.name, "")
				return i, r.check5xx(step)
			}
		}
		cs, err := r.captcha()
		if err == nil && cs.Present && !cs.Solved {
			if wallSince.IsZero() {
				wallSince = time.Now()
				r.record(step, "captcha_detected", nil, cs.Kind, "")
				r.log.printf("%s captcha on the page; waiting %s for it to pass", cs.Kind, r.opts.captchaPassive)
			}
			if time.Since(wallSince) >= r.opts.captchaPassive {
				if err := r.captchaWall(step, cs.Kind, outs); err != nil {
					return -1, err
				}
				wallSince = time.Time{}
				deadline = time.Now().Add(budget)
			}
		} else {
			if !wallSince.IsZero() {
				// It passed (or went away): the page moves on.
				deadline = time.Now().Add(budget)
			}
			wallSince = time.Time{}
			if time.Now().After(deadline) {
				names := make([]string, len(outs))
				for i, o := range outs {
					names[i] = o.name
				}
				details := fmt.Sprintf("none of [%s] after %s", strings.Join(names, ", "), budget)
				if a := r.alertText(); a != "" {
					details += "; the page says: " + a
				}
				return -1, r.trip(provision.TripSelectorTimeout, step, details)
			}
		}
		if err := r.sleep(pollInterval); err != nil {
			return -1, err
		}
	}
}

type captchaState struct {
	Present bool   `json:"present"`
	Solved  bool   `json:"solved"`
	Kind    string `json:"kind"`
}

func (r *runner) captcha() (captchaState, error) {
	var cs captchaState
	err := r.js("captcha", nil, &cs)
	return cs, err
}

// captchaWall handles a captcha that did not pass by itself.
func (r *runner) captchaWall(step, kind string, outs []outcome) error {
	if !r.cfg.Headful {
		return r.trip(provision.TripCaptcha, step,
			fmt.Sprintf("a %s captcha blocks the page and did not pass within %s; rerun with a headful browser so a person can solve it", kind, r.opts.captchaPassive))
	}
	msg := fmt.Sprintf("a %s captcha blocks the sign-up: solve it in the browser window within %s", kind, r.cfg.AssistTimeout.Round(time.Second))
	r.record(step, "assist", nil, kind, "")
	r.log.printf("\a%s", msg)
	_ = r.em.Emit(provision.Event{Type: provision.TypeAssist, Step: step, Details: msg})
	deadline := time.Now().Add(r.cfg.AssistTimeout)
	for time.Now().Before(deadline) {
		if err := r.check5xx(step); err != nil {
			return err
		}
		for _, o := range outs {
			if ok, _ := o.probe(); ok {
				return nil
			}
		}
		cs, err := r.captcha()
		if err == nil && (!cs.Present || cs.Solved) {
			r.record(step, "captcha_solved", nil, kind, "")
			r.log.printf("captcha solved")
			return nil
		}
		if err := r.sleep(500 * time.Millisecond); err != nil {
			return err
		}
	}
	return r.fail(provision.CodeCaptchaUnsolved, fmt.Sprintf("the %s captcha at %s was not solved within %s", kind, step, r.cfg.AssistTimeout))
}

// waitURL waits (selector budget) until the current URL satisfies ok; an
// unexpected URL at the end is an unexpected_nav tripwire.
func (r *runner) waitURL(step, want string, ok func(*url.URL) bool) error {
	r.step = step
	err := r.poll(step, r.cfg.SelectorTimeout, r.urlProbe(ok))
	if errors.Is(err, errBudget) {
		details := fmt.Sprintf("expected %s, still at %s", want, redactURL(r.b.net.url()))
		if a := r.alertText(); a != "" {
			details += "; the page says: " + a
		}
		return r.trip(provision.TripUnexpectedNav, step, details)
	}
	return err
}

// ---- actions ----

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

// ---- diagnostics ----

type action_ struct {
	Time     string `json:"time"`
	Step     string `json:"step"`
	Action   string `json:"action"`
	Selector string `json:"selector,omitempty"`
	URL      string `json:"url,omitempty"`
	Value    string `json:"value,omitempty"`
	Note     string `json:"note,omitempty"`
}

// actionLog keeps the last n actions.
type actionLog struct {
	mu   sync.Mutex
	n    int
	list []action_
}

func newActionLog(n int) *actionLog { return &actionLog{n: n} }

func (l *actionLog) add(a action_) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.list = append(l.list, a)
	if len(l.list) > l.n {
		l.list = append(l.list[:0:0], l.list[len(l.list)-l.n:]...)
	}
}

func (l *actionLog) snapshot() []action_ {
	l.mu.Lock()
	defer l.mu.Unlock()
	return append([]action_(nil), l.list...)
}

// diagDir is where diagnostics go when the configuration names none.
func diagDir(cfg string) string {
	if cfg != "" {
		return cfg
	}
	if d, err := os.UserHomeDir(); err == nil {
		return filepath.Join(d, ".agentkeys", "diagnostics")
	}
	return filepath.Join(os.TempDir(), "agentkeys-diagnostics")
}

// saveDiagnostics writes a screenshot and the last actions of a failed run
// into a new directory (0700; files 0600) and returns it ("" on failure).
func (r *runner) saveDiagnostics(ev provision.Event) string {
	base := diagDir(r.cfg.DiagDir)
	if err := os.MkdirAll(base, 0o700); err != nil {
		r.log.printf("cannot save diagnostics: %v", err)
		return ""
	}
	dir := filepath.Join(base, fmt.Sprintf("%s-%s-%s", r.cfg.Service, time.Now().UTC().Format("20060102T150405Z"), randHex(3)))
	if err := os.Mkdir(dir, 0o700); err != nil {
		r.log.printf("cannot save diagnostics: %v", err)
		return ""
	}
	if r.b != nil && r.parent.Err() == nil && r.b.ctx.Err() == nil {
		ctx, cancel := context.WithTimeout(r.b.ctx, 5*time.Second)
		png, err := chromedp.Run(ctx, chromedp.CaptureScreenshot())
		cancel()
		if err == nil {
			if err := writePrivate(filepath.Join(dir, "screenshot.png"), png); err != nil {
				r.log.printf("cannot save the screenshot: %v", err)
			}
		} else {
			r.log.printf("no screenshot: %v", err)
		}
	}
	cur := ""
	if r.b != nil {
		cur = redactURL(r.b.net.url())
	}
	doc := map[string]any{
		"service":    r.cfg.Service,
		"step":       r.step,
		"url":        cur,
		"time":       time.Now().UTC().Format(time.RFC3339),
		"elapsed_ms": r.elapsed(),
		"outcome":    ev.String(),
		"actions":    r.acts.snapshot(),
	}
	b, _ := json.MarshalIndent(doc, "", "  ")
	if err := writePrivate(filepath.Join(dir, "actions.json"), append(b, '\n')); err != nil {
		r.log.printf("cannot save the action log: %v", err)
	}
	return dir
}

func writePrivate(path string, b []byte) error {
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		return err
	}
	if _, err := f.Write(b); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}

// redactURL drops the query and fragment, which may hold sign-in tickets.
func redactURL(s string) string {
	u, err := url.Parse(s)
	if err != nil {
		return "[unparsable URL]"
	}
	if u.RawQuery != "" {
		u.RawQuery = "…"
	}
	u.Fragment = ""
	u.User = nil
	return u.String()
}

// ---- logging ----

// logger writes "[service] 15:04:05 msg" lines for people.
type logger struct {
	mu     sync.Mutex
	w      io.Writer
	prefix string
}

func newLogger(w io.Writer, service string) *logger {
	if service == "" {
		service = "scraper"
	}
	return &logger{w: w, prefix: "[" + service + "] "}
}

func (l *logger) printf(format string, args ...any) {
	msg := strings.ReplaceAll(fmt.Sprintf(format, args...), "\n", " ")
	l.mu.Lock()
	defer l.mu.Unlock()
	fmt.Fprintf(l.w, "%s%s %s\n", l.prefix, time.Now().Format("15:04:05"), msg)
}

// ---- randomness ----

func randInt(n int64) int64 {
	if n <= 0 {
		return 0
	}
	v, err := rand.Int(rand.Reader, big.NewInt(n))
	if err != nil {
		return 0
	}
	return v.Int64()
}

func randFloat() float64 { return float64(randInt(1<<24)) / (1 << 24) }

func randHex(n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}

// newPassword makes a throwaway account password that meets the usual
// rules (length, upper, lower, digit, symbol).
func newPassword() string {
	const alpha = "ABCDEFGHJKLMNPQRSTUVWXYZabcdefghijkmnopqrstuvwxyz23456789"
	b := make([]byte, 18)
	for i := range b {
		b[i] = alpha[randInt(int64(len(alpha)))]
	}
	return string(b) + "Aa7-"
}
