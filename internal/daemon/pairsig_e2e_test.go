package daemon

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/agentkeys/agentkeys/internal/agentkeys"
	"github.com/agentkeys/agentkeys/internal/authreq"
)

// relay sits between the daemon and a real backend and can rewrite the
// approved await answer: what a compromised relay or tampered database
// would do. It records the box key the daemon opened with and whether the
// daemon ever received a session in clear.
type relay struct {
	mu       sync.Mutex
	box      []byte
	sawClear bool
	mutate   func(box []byte, body map[string]any)
}

func startRelay(t *testing.T, target string, mutate func(box []byte, body map[string]any)) (*relay, string) {
	t.Helper()
	r := &relay{mutate: mutate}
	u, _ := url.Parse(target)
	rp := httputil.NewSingleHostReverseProxy(u)
	rp.ModifyResponse = func(resp *http.Response) error {
		if resp.Request.URL.Path != "/auth-request/await" || resp.StatusCode != 200 {
			return nil
		}
		raw, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
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
	return r, hs.URL
}

// TestPairVerifiesTheApprovalSignature drives the daemon binary through a
// relay: untouched, the daemon sends a box key, receives only a sealed
// session and pairs; when the relay flips a signature byte or hands it
// another valid session sealed to its key, the daemon refuses, stores
// nothing and exits non-zero.
func TestPairVerifiesTheApprovalSignature(t *testing.T) {
	ctx := context.Background()
	b := startBackend(t)
	decoy, err := b.client.CreateChild(ctx, b.master.Token, agentkeys.Scope{Services: []string{"openrouter"}}, 0)
	if err != nil {
		t.Fatal(err)
	}

	t.Run("good", func(t *testing.T) {
		r, url := startRelay(t, b.url, nil)
		home := t.TempDir()
		sessFile := filepath.Join(home, "agent.json")
		d := startDaemon(t, home, nil, "--backend", url, "--no-socket", "--session-file", sessFile, "--pair-timeout", "60")
		m := d.waitFor(pairLine, 30*time.Second)
		if _, err := b.client.ApproveAuthRequest(ctx, b.master.Token, m[1], m[2]); err != nil {
			t.Fatal(err)
		}
		d.waitReady()
		r.mu.Lock()
		box, clearSeen := r.box, r.sawClear
		r.mu.Unlock()
		if len(box) != authreq.BoxKeySize || clearSeen {
			t.Fatalf("daemon sent box key of %d bytes; session relayed in clear: %v", len(box), clearSeen)
		}
		if !strings.Contains(d.stderr(), `"msg":"approval signature verified"`) {
			t.Fatalf("no verification logged:\n%s", d.stderr())
		}
		if _, err := os.Stat(sessFile); err != nil {
			t.Fatal(err)
		}
	})

	for name, mutate := range map[string]func(box []byte, m map[string]any){
		"flipped signature": func(_ []byte, m map[string]any) {
			sig, _ := base64.StdEncoding.DecodeString(m["signature"].(string))
			sig[0] ^= 0x40
			m["signature"] = base64.StdEncoding.EncodeToString(sig)
		},
		"substituted session": func(box []byte, m map[string]any) {
			plain, _ := json.Marshal(map[string]any{"token": decoy.Token.Reveal(), "wallet": decoy.Wallet, "expires_at": decoy.ExpiresAt.Unix()})
			blob, err := authreq.SealTo(box, m["request_id"].(string), plain)
			if err != nil {
				panic(err)
			}
			m["sealed_session"], m["wallet"] = base64.StdEncoding.EncodeToString(blob), string(decoy.Wallet)
		},
	} {
		t.Run(name, func(t *testing.T) {
			_, url := startRelay(t, b.url, mutate)
			home := t.TempDir()
			sessFile := filepath.Join(home, "agent.json")
			d := startDaemon(t, home, nil, "--backend", url, "--no-socket", "--session-file", sessFile, "--pair-timeout", "60")
			m := d.waitFor(pairLine, 30*time.Second)
			if _, err := b.client.ApproveAuthRequest(ctx, b.master.Token, m[1], m[2]); err != nil {
				t.Fatal(err)
			}
			code := d.wait(30 * time.Second)
			if code != 1 || !strings.Contains(d.stderr(), "refusing the pair session") || !strings.Contains(d.stderr(), "approval not verified") {
				t.Fatalf("exit %d; stderr:\n%s", code, d.stderr())
			}
			if _, err := os.Stat(sessFile); !os.IsNotExist(err) {
				t.Fatalf("a refused session was stored: %v", err)
			}
			if strings.Contains(d.stderr(), decoy.Token.Reveal()) {
				t.Fatal("the substituted token reached the log")
			}
		})
	}
}
