package scraper

import (
	"context"
	"encoding/json"
	"fmt"
	"net/url"
	"os"
	"path/filepath"
	"sync"
	"time"

	"github.com/chromedp/chromedp"

	"github.com/agentkeys/agentkeys/internal/provision"
)

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
