// Package relaytest is a test helper: an HTTP relay in front of a real
// backend that can rewrite approved /auth-request/await answers, the way a
// compromised relay or a tampered database would, to check that openers
// refuse what the backend did not sign.
package relaytest

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"strconv"
	"sync"
	"testing"

	"github.com/agentkeys/agentkeys/internal/authreq"
)

// Mutate rewrites an approved await answer. box is the box_pubkey of the
// last open that went through the relay (nil if none).
type Mutate func(box []byte, body map[string]any)

// Relay forwards everything to the backend.
type Relay struct {
	URL string

	mu       sync.Mutex
	box      []byte
	sawClear bool
	mutate   Mutate
}

// Start serves a relay to target until the test ends.
func Start(t testing.TB, target string, mutate Mutate) *Relay {
	t.Helper()
	r := &Relay{mutate: mutate}
	u, err := url.Parse(target)
	if err != nil {
		t.Fatal(err)
	}
	rp := httputil.NewSingleHostReverseProxy(u)
	rp.ModifyResponse = func(resp *http.Response) error {
		if resp.Request.URL.Path != "/auth-request/await" || resp.StatusCode != http.StatusOK {
			return nil
		}
		raw, err := io.ReadAll(resp.Body)
		resp.Body.Close()
		if err != nil {
			return err
		}
		var m map[string]any
		if json.Unmarshal(raw, &m) == nil && m["status"] == "approved" {
			r.mu.Lock()
			if _, ok := m["session"]; ok {
				r.sawClear = true
			}
			if r.mutate != nil {
				r.mutate(r.box, m)
				raw, _ = json.Marshal(m)
			}
			r.mu.Unlock()
		}
		resp.Body = io.NopCloser(bytes.NewReader(raw))
		resp.ContentLength = int64(len(raw))
		resp.Header.Set("Content-Length", strconv.Itoa(len(raw)))
		return nil
	}
	hs := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		if req.URL.Path == "/auth-request/open" {
			raw, _ := io.ReadAll(req.Body)
			var in struct {
				Box []byte `json:"box_pubkey"`
			}
			json.Unmarshal(raw, &in)
			r.mu.Lock()
			r.box = in.Box
			r.mu.Unlock()
			req.Body = io.NopCloser(bytes.NewReader(raw))
		}
		rp.ServeHTTP(w, req)
	}))
	t.Cleanup(hs.Close)
	r.URL = hs.URL
	return r
}

// SetMutate replaces the rewrite applied to later answers.
func (r *Relay) SetMutate(m Mutate) {
	r.mu.Lock()
	r.mutate = m
	r.mu.Unlock()
}

// Box is the box_pubkey of the last open relayed.
func (r *Relay) Box() []byte {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.box
}

// SawClearSession reports whether an approved answer carried a session in
// clear.
func (r *Relay) SawClearSession() bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.sawClear
}

// FlipSignature flips one bit of the signature.
func FlipSignature(_ []byte, m map[string]any) {
	s, _ := m["signature"].(string)
	sig, _ := base64.StdEncoding.DecodeString(s)
	if len(sig) > 0 {
		sig[0] ^= 0x40
	}
	m["signature"] = base64.StdEncoding.EncodeToString(sig)
}

// SubstituteSession replaces the delivered session with another one (a
// session object {"token","wallet","expires_at"}), sealed to the opener's
// box key when it gave one, so only the signature can tell.
func SubstituteSession(session map[string]any) Mutate {
	return func(box []byte, m map[string]any) {
		m["wallet"] = session["wallet"]
		if box == nil {
			m["session"] = session
			return
		}
		plain, _ := json.Marshal(session)
		id, _ := m["request_id"].(string)
		blob, err := authreq.SealTo(box, id, plain)
		if err != nil {
			panic(err)
		}
		m["sealed_session"] = base64.StdEncoding.EncodeToString(blob)
	}
}
