package scraper

import (
	"context"
	_ "embed"
	"fmt"
	"regexp"
	"strings"
	"time"

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
