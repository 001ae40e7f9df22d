package scraper

import (
	"context"
	"encoding/json"
	"net/url"

	"github.com/chromedp/chromedp"
)

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
