package e2e

import (
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"encoding/json"
	"errors"
	"net/http"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/agentkeys/agentkeys/internal/agentkeys"
	"github.com/agentkeys/agentkeys/internal/authreq"
	"github.com/agentkeys/agentkeys/internal/backendclient"
	"github.com/agentkeys/agentkeys/internal/sqldb/sqldbtest"
)

// openPair opens a Pair request, naming parent if it is set.
func openPair(t *testing.T, bc *backendclient.Client, parent agentkeys.Wallet) (backendclient.Opened, error) {
	t.Helper()
	pub, _, _ := ed25519.GenerateKey(rand.Reader)
	details, err := authreq.Encode(authreq.Request{Type: authreq.TypePair, RequestedScope: authreq.Scope{Services: []string{"x"}}})
	if err != nil {
		t.Fatal(err)
	}
	return bc.OpenAuthRequest(context.Background(), backendclient.OpenRequest{
		ChildPubkey: pub, RequestType: authreq.TypePair, RequestDetails: details, ParentWallet: parent,
	})
}

func mustOpen(t *testing.T, bc *backendclient.Client, parent agentkeys.Wallet) backendclient.Opened {
	t.Helper()
	o, err := openPair(t, bc, parent)
	if err != nil {
		t.Fatalf("open: %v", err)
	}
	return o
}

func rateLimited(err error) bool {
	var e *backendclient.Error
	return errors.As(err, &e) && e.Status == 429 && e.Kind == "RATE_LIMITED"
}

// awaitAs sends GET /auth-request/await for o as the client xff (through
// the trusted loopback proxy) and returns the status, or 0 if ctx ended
// first (the poll was admitted and still waiting).
func awaitAs(ctx context.Context, base, xff string, o backendclient.Opened) int {
	req, _ := http.NewRequestWithContext(ctx, "GET", base+"/auth-request/await?request_id="+o.ID, nil)
	req.Header.Set("Authorization", "Bearer "+o.AwaitToken.Reveal())
	if xff != "" {
		req.Header.Set("X-Forwarded-For", xff)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return 0
	}
	resp.Body.Close()
	return resp.StatusCode
}

// probeAwait asks for one more long poll of client xff for up to 300 ms:
// 429 if the client's places are all taken, 0 if it was admitted.
func probeAwait(base, xff string, o backendclient.Opened) int {
	ctx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
	defer cancel()
	return awaitAs(ctx, base, xff, o)
}

// The default limits of the binary: one client address holds at most 20
// long polls; opens naming one master are bounded per master (burst 5),
// whatever the address, and land in its log marked unverified, which
// `agentkeys usage` shows.
func TestOpenerLimitsOnTheBinary(t *testing.T) {
	dir := t.TempDir()
	url, _ := startBackend(t, dir, nil, "--trusted-proxies", "127.0.0.1/32")
	ctx := context.Background()
	bc, _ := backendclient.New(url)

	t.Run("per master", func(t *testing.T) {
		alice, err := bc.CreateSession(ctx, "lp-alice")
		if err != nil {
			t.Fatal(err)
		}
		bob, err := bc.CreateSession(ctx, "lp-bob")
		if err != nil {
			t.Fatal(err)
		}
		limited := 0
		for range 8 {
			if _, err := openPair(t, bc, alice.Wallet); rateLimited(err) {
				limited++
			} else if err != nil {
				t.Fatal(err)
			}
		}
		if limited < 3 {
			t.Fatalf("%d of 8 opens naming one master were limited, want at least 3 (burst 5)", limited)
		}
		mustOpen(t, bc, bob.Wallet) // another master is not affected
		mustOpen(t, bc, "")         // nor is an open naming nobody

		page, err := bc.QueryAudit(ctx, alice.Token, backendclient.AuditFilter{Action: agentkeys.ActionAuthRequestOpen})
		if err != nil || len(page.Events) != 8-limited {
			t.Fatalf("alice's open rows: %+v %v, want %d", page.Events, err, 8-limited)
		}
		for _, ev := range page.Events {
			if !strings.HasPrefix(ev.Detail, agentkeys.DetailUnverified) {
				t.Fatalf("open row not marked unverified: %+v", ev)
			}
		}
		master := newMaster(t, url, "lp-alice")
		var usage struct {
			Events []struct {
				Action     string `json:"action"`
				Unverified bool   `json:"unverified"`
			} `json:"events"`
		}
		if err := json.Unmarshal([]byte(master.must("", "usage", "--json", "--action", agentkeys.ActionAuthRequestOpen)), &usage); err != nil || len(usage.Events) != 8-limited {
			t.Fatalf("usage --json: %v %+v", err, usage)
		}
		for _, ev := range usage.Events {
			if !ev.Unverified {
				t.Fatalf("usage --json shows an open as verified: %+v", usage)
			}
		}
		table := master.must("", "usage", "--action", agentkeys.ActionAuthRequestOpen)
		if n := strings.Count(table, "unverified: Pair request opened"); n != 8-limited {
			t.Fatalf("usage table marks %d rows unverified, want %d:\n%s", n, 8-limited, table)
		}
	})

	t.Run("long polls per address", func(t *testing.T) {
		const max = 20 // the default
		reqs := make([]backendclient.Opened, max+2)
		for i := range reqs {
			reqs[i] = mustOpen(t, bc, "")
		}
		hold, cancel := context.WithCancel(ctx)
		done := make(chan int, max)
		for _, o := range reqs[:max] {
			go func() {
				// A probe below may hold a place for a moment: take
				// the next free one.
				got := awaitAs(hold, url, "203.0.113.1", o)
				for got == 429 {
					got = awaitAs(hold, url, "203.0.113.1", o)
				}
				done <- got
			}()
		}
		full := false
		for deadline := time.Now().Add(15 * time.Second); time.Now().Before(deadline); {
			if probeAwait(url, "203.0.113.1", reqs[max]) == 429 {
				full = true
				break
			}
		}
		if !full {
			cancel()
			t.Fatalf("%d long polls held, and one more from the same address was never refused", max)
		}
		// Another address still gets a place.
		if got := probeAwait(url, "203.0.113.2", reqs[max+1]); got != 0 {
			t.Fatalf("another address's await → %d, want admitted", got)
		}
		cancel()
		for range max {
			if got := <-done; got != 0 {
				t.Fatalf("a held await ended with %d", got)
			}
		}
		// Places come back when the polls end.
		for deadline := time.Now().Add(10 * time.Second); ; {
			if probeAwait(url, "203.0.113.1", reqs[max]) == 0 {
				break
			}
			if time.Now().After(deadline) {
				t.Fatal("ended long polls did not give their places back")
			}
		}
	})
}

// Two backends on one PostgreSQL database: an approval on one wakes the
// opener awaiting on the other within a second.
func TestCrossReplicaApproveWakesAwait(t *testing.T) {
	dsn := sqldbtest.PostgresDSN(t)
	dir := t.TempDir()
	key := filepath.Join(dir, "seal.key")
	replica := func(extra ...string) (string, *proc) {
		port := freePort(t)
		url := "http://127.0.0.1:" + strconv.Itoa(port)
		p := start(t, nil, "agentkeys-backend", append([]string{"--login", "mock", "--listen", "127.0.0.1:" + strconv.Itoa(port),
			"--database-url", dsn, "--seal-key-file", key}, extra...)...)
		waitHTTP(t, p, url+"/health")
		return url, p
	}
	// A admits one long poll per address, so a refused second one shows
	// the first is waiting.
	urlA, _ := replica("--max-awaiters-per-ip", "1")
	urlB, _ := replica()
	a, _ := backendclient.New(urlA)
	b, _ := backendclient.New(urlB)
	ctx := context.Background()
	alice, err := b.CreateSession(ctx, "xr-alice")
	if err != nil {
		t.Fatal(err)
	}
	for _, decide := range []string{"approve", "deny"} {
		t.Run(decide, func(t *testing.T) {
			o := mustOpen(t, a, alice.Wallet)
			probe := mustOpen(t, a, "")
			type result struct {
				d   backendclient.Decision
				err error
				at  time.Time
			}
			got := make(chan result, 1)
			go func() {
				d, err := a.AwaitAuthDecision(ctx, o)
				for rateLimited(err) { // a probe held the place for a moment
					d, err = a.AwaitAuthDecision(ctx, o)
				}
				got <- result{d, err, time.Now()}
			}()
			for deadline := time.Now().Add(15 * time.Second); probeAwait(urlA, "", probe) != 429; {
				if time.Now().After(deadline) {
					t.Fatal("the await on replica A never started waiting")
				}
			}
			decided := time.Now()
			want := "approved"
			if decide == "approve" {
				if _, err := b.ApproveAuthRequest(ctx, alice.Token, o.PairCode, o.OTP); err != nil {
					t.Fatal(err)
				}
			} else {
				want = "denied"
				if err := b.DenyAuthRequest(ctx, alice.Token, o.PairCode); err != nil {
					t.Fatal(err)
				}
			}
			select {
			case r := <-got:
				if r.err != nil || r.d.Status != want {
					t.Fatalf("await on A: %+v %v, want %s", r.d, r.err, want)
				}
				if want == "approved" && r.d.Session == nil {
					t.Fatal("approved without a session")
				}
				if lag := r.at.Sub(decided); lag > time.Second {
					t.Fatalf("the await on A answered %v after the decision on B, want within 1 s", lag)
				}
			case <-time.After(5 * time.Second):
				t.Fatal("the await on A was not woken by the decision on B")
			}
		})
	}
	t.Run("rendezvous", func(t *testing.T) {
		o := mustOpen(t, a, alice.Wallet)
		probe := mustOpen(t, a, "")
		var reg struct {
			Token string `json:"registration_token"`
		}
		if code := postJSON(t, urlA+"/rendezvous/register", o.AwaitToken.Reveal(),
			`{"daemon_pubkey":"AQID","pair_code":"`+o.PairCode+`"}`, &reg); code != 200 {
			t.Fatalf("register on A → %d", code)
		}
		type result struct {
			code    int
			payload string
			at      time.Time
		}
		got := make(chan result, 1)
		go func() {
			for {
				var out struct {
					Payload string `json:"payload"`
				}
				code := getJSON(urlA+"/rendezvous/poll", reg.Token, &out)
				if code == 429 { // a probe held the place for a moment
					continue
				}
				got <- result{code, out.Payload, time.Now()}
				return
			}
		}()
		for deadline := time.Now().Add(15 * time.Second); probeAwait(urlA, "", probe) != 429; {
			if time.Now().After(deadline) {
				t.Fatal("the poll on replica A never started waiting")
			}
		}
		if _, err := b.ApproveAuthRequest(ctx, alice.Token, o.PairCode, o.OTP); err != nil {
			t.Fatal(err)
		}
		delivered := time.Now()
		if code := postJSON(t, urlB+"/rendezvous/deliver", alice.Token.Reveal(), `{"pair_code":"`+o.PairCode+`","payload":"AAEC/w=="}`, nil); code != 200 {
			t.Fatalf("deliver on B → %d", code)
		}
		select {
		case r := <-got:
			if r.code != 200 || r.payload != "AAEC/w==" {
				t.Fatalf("poll on A → %d %q", r.code, r.payload)
			}
			if lag := r.at.Sub(delivered); lag > time.Second {
				t.Fatalf("the poll on A answered %v after the delivery on B, want within 1 s", lag)
			}
		case <-time.After(5 * time.Second):
			t.Fatal("the poll on A was not woken by the delivery on B")
		}
	})
}

func postJSON(t *testing.T, url, bearer, body string, out any) int {
	t.Helper()
	req, _ := http.NewRequest("POST", url, strings.NewReader(body))
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Authorization", "Bearer "+bearer)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if out != nil {
		json.NewDecoder(resp.Body).Decode(out)
	}
	return resp.StatusCode
}

// getJSON is a GET with a bearer for goroutines: status 0 on failure.
func getJSON(url, bearer string, out any) int {
	req, _ := http.NewRequest("GET", url, nil)
	req.Header.Set("Authorization", "Bearer "+bearer)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return 0
	}
	defer resp.Body.Close()
	json.NewDecoder(resp.Body).Decode(out)
	return resp.StatusCode
}
