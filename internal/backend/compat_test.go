package backend

import (
	"net/http"
	"testing"
)

// TestCompatBackendWire pins small wire differences from the original
// backend that no other test names: the removed shielding key, JSON
// errors for missing query parameters, /health's JSON body, re-revoking a
// session, and the scope of an unrestricted wallet.
func TestCompatBackendWire(t *testing.T) {
	e, m, a := newAgentEnv(t, "grace", "x")

	// GET /shielding-key is gone: 404 in the JSON envelope.
	if status, body, _ := e.raw("GET", "/shielding-key", "", ""); status != http.StatusNotFound || body["error"] != KindNotFound {
		t.Errorf("/shielding-key → %d %v", status, body)
	}
	// A missing query parameter is a 400 in the envelope, not plain text.
	if status, body, _ := e.raw("GET", "/credential/read", m.Token, ""); status != http.StatusBadRequest || body["error"] != KindBadRequest || body["message"] == "" {
		t.Errorf("read without parameters → %d %v", status, body)
	}
	// /health answers JSON (the original: text "ok"); 200 all the same.
	if status, body, _ := e.raw("GET", "/health", "", ""); status != http.StatusOK || body["status"] != "ok" {
		t.Errorf("/health → %d %v", status, body)
	}
	// Revoking a session twice: 200 both times, with a count of 0 the
	// second time.
	for want := 1; want >= 0; want-- {
		status, body, _ := e.raw("POST", "/session/revoke", m.Token, `{"target_session":"`+a.Token.Reveal()+`"}`)
		if status != http.StatusOK || body["ok"] != true || body["sessions_revoked"] != float64(want) {
			t.Errorf("revoke (want %d revoked) → %d %v", want, status, body)
		}
	}
	// An unrestricted wallet's scope: services null (the original: []).
	if status, body, _ := e.raw("GET", "/session/scope?wallet="+string(m.Wallet), m.Token, ""); status != http.StatusOK || body["services"] != nil || body["read_only"] != false {
		t.Errorf("master's scope → %d %v", status, body)
	}
}
