package provision

import (
	"time"

	"github.com/agentkeys/agentkeys/internal/provision/email"
)

// ScraperConfig is what the orchestrator hands the scraper process, as
// one JSON document on its stdin (secrets never travel in argv or env).
type ScraperConfig struct {
	Service   string `json:"service"`
	SignupURL string `json:"signup_url"` // the service's sign-up page (the fixture site in tests)
	Email     string `json:"email"`      // the address to sign up with
	Password  string `json:"password,omitempty"`
	KeyName   string `json:"key_name,omitempty"` // name given to the created API key

	Mail email.Config `json:"mail"`

	Chromium string `json:"chromium,omitempty"` // browser binary; default: chromium on PATH
	CDPURL   string `json:"cdp_url,omitempty"`  // attach to a running browser instead of launching one
	Headful  bool   `json:"headful,omitempty"`  // show the window (human assist for captchas)

	// DiagDir receives a screenshot and the last actions when a run fails
	// (created 0700, files 0600).
	DiagDir string `json:"diag_dir,omitempty"`

	SelectorTimeout time.Duration `json:"selector_timeout,omitempty"` // default 15s
	EmailTimeout    time.Duration `json:"email_timeout,omitempty"`    // default 120s
	AssistTimeout   time.Duration `json:"assist_timeout,omitempty"`   // default 180s (headful only)
}
