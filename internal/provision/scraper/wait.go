package scraper

import (
	"errors"
	"fmt"
	"net/url"
	"strings"
	"time"

	"github.com/agentkeys/agentkeys/internal/provision"
)

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
