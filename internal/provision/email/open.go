package email

import (
	"fmt"
	"net/http"
	"strings"
)

// Open returns the Fetcher that cfg.Backend names: "mock" (the agentkeys
// backend's mock inbox; needs backend_url and session_token), "imap"
// (needs imap_addr, imap_user, imap_password) or "ses" (needs
// ses_bucket; credentials from the AWS SDK default chain). The original's
// names "mock-inbox", "gmail" and "ses-s3" are accepted too. hc is used
// for the HTTP backends (nil: a default client). Errors name the missing
// setting and never contain a secret.
func Open(cfg Config, hc *http.Client) (Fetcher, error) {
	switch strings.ToLower(strings.TrimSpace(cfg.Backend)) {
	case BackendMock, "mock-inbox", "mock_inbox":
		return openMock(cfg, hc)
	case BackendIMAP, "gmail":
		if strings.EqualFold(strings.TrimSpace(cfg.Backend), "gmail") && cfg.IMAPAddr == "" {
			cfg.IMAPAddr = "imap.gmail.com:993"
		}
		return openIMAP(cfg)
	case BackendSES, "ses-s3", "ses_s3":
		return openSES(cfg, hc)
	case "":
		return nil, fmt.Errorf("email: no e-mail backend configured (set backend to %q, %q or %q)", BackendMock, BackendIMAP, BackendSES)
	default:
		return nil, fmt.Errorf("email: unknown e-mail backend %q (accepted: %s, %s, %s)", cfg.Backend, BackendMock, BackendIMAP, BackendSES)
	}
}
