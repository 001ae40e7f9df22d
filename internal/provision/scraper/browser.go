package scraper

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"time"

	cdpbrowser "github.com/chromedp/cdproto/browser"
	"github.com/chromedp/cdproto/cdp"
	"github.com/chromedp/cdproto/emulation"
	"github.com/chromedp/cdproto/network"
	"github.com/chromedp/cdproto/page"
	"github.com/chromedp/chromedp"
	"github.com/chromedp/chromedp/remote"

	"github.com/agentkeys/agentkeys/internal/provision"
)

// browserNames are looked up on PATH when the configuration names no
// binary.
var browserNames = []string{"chromium", "chromium-browser", "google-chrome", "google-chrome-stable"}

// FindBrowser returns the browser binary to run: explicit if set (a path
// or a name on PATH), else the first of chromium, chromium-browser,
// google-chrome found on PATH.
func FindBrowser(explicit string) (string, error) {
	if explicit != "" {
		p, err := exec.LookPath(explicit)
		if err != nil {
			return "", fmt.Errorf("browser %q: %w", explicit, err)
		}
		return p, nil
	}
	for _, n := range browserNames {
		if p, err := exec.LookPath(n); err == nil {
			return p, nil
		}
	}
	return "", fmt.Errorf("no browser found on PATH (tried %s); set \"chromium\" in the configuration", strings.Join(browserNames, ", "))
}

// browserEnv is the environment the browser gets: enough to run and to
// show a window, none of the scraper's credentials (AWS_*, tokens).
func browserEnv(home string) []string {
	env := []string{"HOME=" + home}
	for _, k := range []string{"PATH", "USER", "LOGNAME", "DISPLAY", "WAYLAND_DISPLAY", "XAUTHORITY",
		"XDG_RUNTIME_DIR", "LANG", "LANGUAGE", "LC_ALL", "TZ", "TMPDIR", "FONTCONFIG_PATH", "FONTCONFIG_FILE"} {
		if v, ok := os.LookupEnv(k); ok {
			env = append(env, k+"="+v)
		}
	}
	if _, ok := os.LookupEnv("XAUTHORITY"); !ok {
		if h, err := os.UserHomeDir(); err == nil {
			if _, err := os.Stat(filepath.Join(h, ".Xauthority")); err == nil {
				env = append(env, "XAUTHORITY="+filepath.Join(h, ".Xauthority"))
			}
		}
	}
	return env
}

// launchFlags are the browser's command-line switches. The list is built
// here rather than from chromedp.DefaultExecAllocatorOptions so that
// --enable-automation (which sets navigator.webdriver and which
// Turnstile looks for) is never passed.
func launchFlags(bin, dir string, headless bool) []chromedp.ExecAllocatorOption {
	opts := []chromedp.ExecAllocatorOption{
		chromedp.ExecPath(bin),
		chromedp.UserDataDir(dir),
		chromedp.Flag("no-sandbox", true),
		chromedp.Flag("disable-gpu", true),
		chromedp.Flag("disable-background-networking", true),
		chromedp.Flag("disable-component-update", true),
		chromedp.Flag("no-first-run", true),
		chromedp.Flag("disable-sync", true),
		chromedp.Flag("no-default-browser-check", true),
		chromedp.Flag("disable-blink-features", "AutomationControlled"),
		chromedp.Flag("disable-dev-shm-usage", true),
		chromedp.Flag("disable-default-apps", true),
		chromedp.Flag("disable-features", "Translate,MediaRouter,OptimizationHints"),
		chromedp.Flag("password-store", "basic"),
		chromedp.Flag("use-mock-keychain", true),
		chromedp.Flag("lang", "en-US"),
		chromedp.WindowSize(1280, 900),
		chromedp.NoInheritEnv,
		chromedp.Env(browserEnv(dir)...),
	}
	if headless {
		opts = append(opts, chromedp.Headless)
	} else {
		opts = append(opts, chromedp.VisibleWindow)
	}
	return opts
}

// browserSession is a running browser with one tab.
type browserSession struct {
	ctx     context.Context // the tab
	close   func()
	net     *netWatch
	dataDir string // "" when attached over CDP
}

// startBrowser launches Chromium with a throwaway profile (or attaches to
// cfg.CDPURL, in a fresh browser context so the user's cookies stay
// untouched) and opens a tab. The browser does not die with parent: the
// caller closes it, after saving diagnostics.
func startBrowser(parent context.Context, cfg provision.ScraperConfig, headless bool, log *logger) (*browserSession, error) {
	base := context.WithoutCancel(parent)
	quiet := []chromedp.ContextOption{
		chromedp.WithLogf(func(string, ...any) {}),
		chromedp.WithErrorf(func(string, ...any) {}),
		chromedp.WithDebugf(func(string, ...any) {}),
	}
	s := &browserSession{}
	var cancels []func()
	s.close = func() {
		for i := len(cancels) - 1; i >= 0; i-- {
			cancels[i]()
		}
		if s.dataDir != "" {
			removeProfile(s.dataDir)
		}
	}

	var tab context.Context
	if cfg.CDPURL != "" {
		actx, acancel := remote.NewAllocator(base, cfg.CDPURL)
		cancels = append(cancels, acancel)
		tctx, tcancel := chromedp.NewContext(actx, append(quiet, chromedp.WithNewBrowserContext())...)
		cancels = append(cancels, tcancel)
		tab = tctx
		log.printf("attaching to the browser at %s", redactURL(cfg.CDPURL))
	} else {
		bin, err := FindBrowser(cfg.Chromium)
		if err != nil {
			return nil, err
		}
		dir, err := os.MkdirTemp("", "agentkeys-chromium-") // 0700
		if err != nil {
			return nil, err
		}
		s.dataDir = dir
		actx, acancel := chromedp.NewExecAllocator(base, launchFlags(bin, dir, headless)...)
		cancels = append(cancels, acancel)
		tctx, tcancel := chromedp.NewContext(actx, quiet...)
		cancels = append(cancels, tcancel)
		tab = tctx
		mode := "headless"
		if !headless {
			mode = "headful"
		}
		log.printf("starting %s (%s)", filepath.Base(bin), mode)
	}
	s.ctx = tab

	// The first Run starts the browser and opens the tab; bound it without
	// binding the browser's life to the timeout.
	started := make(chan error, 1)
	go func() { started <- chromedp.Do(tab) }()
	select {
	case err := <-started:
		if err != nil {
			s.close()
			if errors.Is(err, chromedp.ErrNoDisplay) {
				return nil, errors.New("a headful browser needs a display (DISPLAY or WAYLAND_DISPLAY; run under Xvfb)")
			}
			return nil, fmt.Errorf("start the browser: %w", err)
		}
	case <-time.After(45 * time.Second):
		s.close()
		return nil, errors.New("start the browser: no answer within 45s")
	case <-parent.Done():
		s.close()
		return nil, parent.Err()
	}

	s.net = &netWatch{main: cdp.FrameID(chromedp.FromContext(tab).Target.TargetID)}
	if err := chromedp.Listen(tab, s.net.handle); err != nil {
		s.close()
		return nil, fmt.Errorf("listen to the tab: %w", err)
	}
	hideHeadless(tab)
	return s, nil
}

// hideHeadless replaces "HeadlessChrome" in the user agent, which sites
// read as a bot.
func hideHeadless(tab context.Context) {
	ctx, cancel := context.WithTimeout(tab, 5*time.Second)
	defer cancel()
	v, err := chromedp.CallBrowser(ctx, cdpbrowser.GetVersion, cdp.Empty{})
	if err != nil || !strings.Contains(v.UserAgent, "HeadlessChrome") {
		return
	}
	_, _ = chromedp.Call(ctx, emulation.SetUserAgentOverride, emulation.SetUserAgentOverrideParams{
		UserAgent:      strings.ReplaceAll(v.UserAgent, "HeadlessChrome", "Chrome"),
		AcceptLanguage: "en-US,en;q=0.9",
	})
}

// removeProfile deletes the throwaway profile; helper processes of the
// browser can still write into it for a moment after it exits.
func removeProfile(dir string) {
	for i := 0; i < 40; i++ {
		if err := os.RemoveAll(dir); err == nil {
			if _, err := os.Stat(dir); os.IsNotExist(err) {
				return
			}
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// netWatch follows the main frame: its URL and the status of its
// documents, so a 5xx after a click (a form post) is seen as well as one
// after a navigation.
type netWatch struct {
	main cdp.FrameID

	mu     sync.Mutex
	cur    string
	status int64
	bad    int64 // a 5xx not yet reported
	badURL string
}

// handle runs on the tab's event loop: it must be quick.
func (n *netWatch) handle(ev any) {
	switch ev := ev.(type) {
	case *network.EventResponseReceived:
		if ev.Type != network.ResourceTypeDocument || ev.FrameID != n.main || ev.Response == nil {
			return
		}
		n.mu.Lock()
		n.status = ev.Response.Status
		if ev.Response.Status >= 500 && n.bad == 0 {
			n.bad, n.badURL = ev.Response.Status, ev.Response.URL
		}
		n.mu.Unlock()
	case *page.EventFrameNavigated:
		if ev.Frame == nil || ev.Frame.ParentID != "" {
			return
		}
		n.mu.Lock()
		n.cur = ev.Frame.URL + ev.Frame.URLFragment
		n.mu.Unlock()
	case *page.EventNavigatedWithinDocument:
		if ev.FrameID != n.main {
			return
		}
		n.mu.Lock()
		n.cur = ev.URL
		n.mu.Unlock()
	}
}

// url is the main frame's current URL.
func (n *netWatch) url() string {
	n.mu.Lock()
	defer n.mu.Unlock()
	return n.cur
}

// take5xx returns (and clears) a server error on the main document.
func (n *netWatch) take5xx() (int64, string, bool) {
	n.mu.Lock()
	defer n.mu.Unlock()
	if n.bad == 0 {
		return 0, "", false
	}
	st, u := n.bad, n.badURL
	n.bad, n.badURL = 0, ""
	return st, u, true
}
