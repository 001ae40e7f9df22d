package email

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/agentkeys/agentkeys/internal/backend"
	"github.com/agentkeys/agentkeys/internal/backend/backendtest"
	"github.com/agentkeys/agentkeys/internal/backendclient"
)

const testToken = "sess-SECRET-TOKEN-0123456789"

type mockMsg struct {
	MsgID      string `json:"msg_id"`
	From       string `json:"from"`
	Subject    string `json:"subject"`
	Body       string `json:"body"`
	ReceivedAt int64  `json:"received_at"`
}

// fakeInbox serves GET /mock/inbox/messages like the agentkeys backend.
type fakeInbox struct {
	mu     sync.Mutex
	addr   string
	msgs   []mockMsg   // newest first
	status int         // answer this status instead, when non-zero
	polls  chan string // one value per request
	auths  []string
	sinces []string
}

func newFakeInbox(t *testing.T, addr string) (*fakeInbox, *httptest.Server) {
	fi := &fakeInbox{addr: addr, polls: make(chan string, 1000)}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		fi.mu.Lock()
		fi.auths = append(fi.auths, r.Header.Get("Authorization"))
		fi.sinces = append(fi.sinces, r.URL.Query().Get("since"))
		st, msgs := fi.status, append([]mockMsg(nil), fi.msgs...)
		fi.mu.Unlock()
		defer func() {
			select {
			case fi.polls <- r.URL.String():
			default:
			}
		}()
		w.Header().Set("Content-Type", "application/json")
		if r.URL.Path != "/mock/inbox/messages" {
			w.WriteHeader(http.StatusNotFound)
			_, _ = w.Write([]byte(`{"error":"NOT_FOUND","message":"no route"}`))
			return
		}
		if st != 0 {
			w.WriteHeader(st)
			_, _ = w.Write([]byte(`{"error":"DENIED","message":"nope"}`))
			return
		}
		if !strings.EqualFold(r.URL.Query().Get("address"), fi.addr) {
			w.WriteHeader(http.StatusNotFound)
			_, _ = w.Write([]byte(`{"error":"NOT_FOUND","message":"inbox not found"}`))
			return
		}
		_ = json.NewEncoder(w).Encode(msgs)
	}))
	t.Cleanup(srv.Close)
	return fi, srv
}

func (fi *fakeInbox) deliver(m mockMsg) {
	fi.mu.Lock()
	fi.msgs = append([]mockMsg{m}, fi.msgs...)
	fi.mu.Unlock()
}

func openTestMock(t *testing.T, srv *httptest.Server) Fetcher {
	t.Helper()
	f, err := Open(Config{Backend: BackendMock, BackendURL: srv.URL, SessionToken: testToken, PollInterval: 5 * time.Millisecond}, srv.Client())
	if err != nil {
		t.Fatal(err)
	}
	return f
}

func TestMockCodeArrivesLater(t *testing.T) {
	const addr = "bot-abc123@agentkeys-email.io"
	fi, srv := newFakeInbox(t, addr)
	start := time.Now()
	fi.deliver(mockMsg{MsgID: "old", From: "OpenRouter <notifications@openrouter.ai>", Subject: "Your sign up link", Body: "Your verification code is 111111", ReceivedAt: start.Add(-time.Hour).Unix()})
	f := openTestMock(t, srv)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	go func() {
		<-fi.polls // deliver after the first poll saw nothing fresh
		<-fi.polls
		fi.deliver(mockMsg{MsgID: "m2", From: "Other <x@other.example>", Subject: "Your sign up link", Body: "Your verification code is 222222", ReceivedAt: time.Now().Unix()})
		fi.deliver(mockMsg{MsgID: "m3", From: "OpenRouter <notifications@openrouter.ai>", Subject: "Your sign up link", Body: "Your verification code is 333333", ReceivedAt: time.Now().Unix()})
	}()
	m, err := f.Fetch(ctx, Query{To: strings.ToUpper(addr), From: regexp.MustCompile(`openrouter\.ai`), Since: start})
	if err != nil {
		t.Fatal(err)
	}
	if a := Analyze(m, ExpectOTP); a.Code != "333333" {
		t.Fatalf("got %+v from %+v", a, m)
	}
	if m.ID != "m3" || m.Arrived.IsZero() || m.To[0] != strings.ToUpper(addr) {
		t.Fatalf("message %+v", m)
	}
	fi.mu.Lock()
	defer fi.mu.Unlock()
	if fi.auths[0] != "Bearer "+testToken {
		t.Fatalf("auth header %q", fi.auths[0])
	}
	if s, err := time.Parse(time.RFC3339, fi.sinces[0]); err != nil || s.After(start.Add(-SinceGrace)) || s.Before(start.Add(-SinceGrace-time.Second)) {
		t.Fatalf("since %q (start %v)", fi.sinces[0], start)
	}
}

func TestMockRawMIMEAndHTMLBodies(t *testing.T) {
	const addr = "bot-1700000000@bots.example.org"
	fi, srv := newFakeInbox(t, addr)
	raw, err := os.ReadFile(filepath.Join("testdata", "openrouter-signup-link.eml"))
	if err != nil {
		t.Fatal(err)
	}
	now := time.Now()
	f := openTestMock(t, srv)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()

	// Arrived now, but its Date header is from 2024: stale.
	fi.deliver(mockMsg{MsgID: "raw-old", From: "OpenRouter <notifications@openrouter.ai>", Subject: "Your sign up link", Body: string(raw), ReceivedAt: now.Unix()})
	short, cancelShort := context.WithTimeout(ctx, 50*time.Millisecond)
	_, err = f.Fetch(short, Query{To: addr, Since: now})
	cancelShort()
	if !errors.Is(err, ErrTimeout) || !strings.Contains(err.Error(), "stale=1") {
		t.Fatalf("old Date header: %v", err)
	}

	fresh := strings.Replace(string(raw), "Date: Tue, 05 Nov 2024 10:00:00 +0000", "Date: "+now.Format(time.RFC1123Z), 1)
	fi.deliver(mockMsg{MsgID: "raw", From: "OpenRouter <notifications@openrouter.ai>", Subject: "Your sign up link", Body: fresh, ReceivedAt: now.Unix()})
	m, err := f.Fetch(ctx, Query{To: addr, Subject: regexp.MustCompile(`(?i)sign.?up link`), Since: now})
	if err != nil {
		t.Fatal(err)
	}
	if m.ID != "raw" || m.Date.IsZero() {
		t.Fatalf("message %+v", m)
	}
	a := Analyze(m, ExpectLink)
	if a.Kind != KindLink || !strings.HasPrefix(a.URL, "https://clerk.openrouter.ai/v1/verify?") || strings.Contains(a.URL, "&amp;") {
		t.Fatalf("got %+v", a)
	}

	// HTML body, and a QP-mangled text body.
	fi.deliver(mockMsg{MsgID: "html", From: "a@b.example", Subject: "Code", Body: `<html><body style="color:#141415"><p>Your login code is <b>864200</b></p></body></html>`, ReceivedAt: now.Unix() + 1})
	m, err = f.Fetch(ctx, Query{To: addr, Subject: regexp.MustCompile(`^Code$`), Since: now})
	if err != nil || m.HTML == "" || Analyze(m, ExpectOTP).Code != "864200" {
		t.Fatalf("html: %v %+v", err, m)
	}
	fi.deliver(mockMsg{MsgID: "qp", From: "a@b.example", Subject: "Link", Body: "Sign in: https://example.com/verify?a=3D1&token=3Dabcdefghij=\nklmnopqrstuvwxyz\n", ReceivedAt: now.Unix() + 2})
	m, err = f.Fetch(ctx, Query{To: addr, Subject: regexp.MustCompile(`^Link$`), Since: now})
	if err != nil || Analyze(m, ExpectLink).URL != "https://example.com/verify?a=1&token=abcdefghijklmnopqrstuvwxyz" {
		t.Fatalf("qp: %v %+v", err, Analyze(m, ExpectLink))
	}
}

func TestMockTimeoutAndFilters(t *testing.T) {
	const addr = "bot-1@agentkeys-email.io"
	fi, srv := newFakeInbox(t, addr)
	now := time.Now()
	fi.deliver(mockMsg{MsgID: "a", From: "OpenRouter <notifications@openrouter.ai>", Subject: "Weekly credit summary from OpenRouter", Body: "hi", ReceivedAt: now.Unix()})
	fi.deliver(mockMsg{MsgID: "b", From: "Evil <notifications@evil.example>", Subject: "Your sign up link", Body: "Your code is 999999", ReceivedAt: now.Unix()})
	fi.deliver(mockMsg{MsgID: "c", From: "OpenRouter <notifications@openrouter.ai>", Subject: "Your sign up link", Body: "stale: Your code is 888888", ReceivedAt: now.Add(-time.Hour).Unix()})
	f := openTestMock(t, srv)
	_, err := fetchWithin(f, Query{
		To: addr, From: regexp.MustCompile(`notifications@openrouter\.ai`),
		Subject: regexp.MustCompile(`(?i)sign.?(up|in) link|verify`), Since: now,
	}, 100*time.Millisecond)
	if !errors.Is(err, ErrTimeout) || errors.Is(err, ErrBackendDown) {
		t.Fatalf("want ErrTimeout, got %v", err)
	}
	for _, w := range []string{"from_rejected=1", "subject_rejected=1", "stale=1", addr} {
		if !strings.Contains(err.Error(), w) {
			t.Errorf("error %q lacks %q", err, w)
		}
	}

	// Accept rejects a mail without a code.
	fi.deliver(mockMsg{MsgID: "d", From: "OpenRouter <notifications@openrouter.ai>", Subject: "Your sign up link", Body: "Welcome aboard!", ReceivedAt: now.Unix()})
	_, err = fetchWithin(f, Query{To: addr, Since: now, Accept: func(m Message) bool { return Analyze(m, ExpectOTP).Kind == KindOTP && m.ID != "b" }}, 100*time.Millisecond)
	if !errors.Is(err, ErrTimeout) || !strings.Contains(err.Error(), "not_accepted=") {
		t.Fatalf("want ErrTimeout with not_accepted, got %v", err)
	}
}

func TestMockBackendErrors(t *testing.T) {
	for _, st := range []int{http.StatusUnauthorized, http.StatusForbidden, http.StatusNotFound} {
		fi, srv := newFakeInbox(t, "bot@x.example")
		fi.status = st
		f := openTestMock(t, srv)
		_, err := fetchWithin(f, Query{To: "bot@x.example"}, 5*time.Second)
		if !errors.Is(err, ErrBackendDown) || errors.Is(err, ErrTimeout) {
			t.Fatalf("%d: got %v", st, err)
		}
		if strings.Contains(err.Error(), testToken) || strings.Contains(err.Error(), "SECRET") {
			t.Fatalf("error leaks the token: %v", err)
		}
		if !strings.Contains(err.Error(), http.StatusText(st)[:3]) && !strings.Contains(err.Error(), "40") {
			t.Fatalf("%d: unclear error %v", st, err)
		}
	}
	// Unknown inbox (404 from the address check).
	_, srv := newFakeInbox(t, "bot@x.example")
	f := openTestMock(t, srv)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if _, err := f.Fetch(ctx, Query{To: "other@x.example"}); !errors.Is(err, ErrBackendDown) || !strings.Contains(err.Error(), "other@x.example") {
		t.Fatalf("got %v", err)
	}
	// Unreachable backend.
	srv.Close()
	if _, err := f.Fetch(ctx, Query{To: "bot@x.example"}); !errors.Is(err, ErrBackendDown) {
		t.Fatalf("got %v", err)
	}
	// Recipient is mandatory.
	if _, err := f.Fetch(ctx, Query{}); err == nil || !strings.Contains(err.Error(), "Query.To") {
		t.Fatalf("got %v", err)
	}
}

// A transient failure after a good poll is retried.
func TestMockTransientErrorRetried(t *testing.T) {
	const addr = "bot@x.example"
	fi, srv := newFakeInbox(t, addr)
	f := openTestMock(t, srv)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	go func() {
		<-fi.polls
		fi.mu.Lock()
		fi.status = http.StatusServiceUnavailable
		fi.mu.Unlock()
		<-fi.polls
		<-fi.polls
		fi.mu.Lock()
		fi.status = 0
		fi.mu.Unlock()
		fi.deliver(mockMsg{MsgID: "x", From: "a@b.example", Subject: "s", Body: "Your code is 123456", ReceivedAt: time.Now().Unix()})
	}()
	m, err := f.Fetch(ctx, Query{To: addr, Since: time.Now()})
	if err != nil || m.ID != "x" {
		t.Fatalf("%v %+v", err, m)
	}
}

// End to end against the real backend's /mock/inbox routes.
func TestMockAgainstRealBackend(t *testing.T) {
	backendURL := backendtest.Serve(t, backend.Options{MockInbox: true, EmailDomain: "agentkeys-email.io"})
	bc, err := backendclient.New(backendURL)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	master, err := bc.CreateSession(ctx, "email-test@example.org")
	if err != nil {
		t.Fatal(err)
	}
	addr, err := bc.ProvisionInbox(ctx, master.Token, master.Wallet)
	if err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	f, err := Open(Config{Backend: "mock", BackendURL: backendURL, SessionToken: master.Token.Reveal(), PollInterval: 10 * time.Millisecond}, nil)
	if err != nil {
		t.Fatal(err)
	}
	if err := bc.DeliverMail(ctx, addr, "OpenRouter <notifications@openrouter.ai>", "Your sign up link", "Your verification code is 424242"); err != nil {
		t.Fatal(err)
	}
	m, err := f.Fetch(ctx, Query{To: addr, From: regexp.MustCompile(`openrouter`), Since: start})
	if err != nil {
		t.Fatal(err)
	}
	if a := Analyze(m, ExpectOTP); a.Code != "424242" {
		t.Fatalf("%+v", a)
	}
	// Another session cannot read the inbox: 403 → ErrBackendDown.
	other, err := bc.CreateSession(ctx, "someone-else@example.org")
	if err != nil {
		t.Fatal(err)
	}
	f2, _ := Open(Config{Backend: "mock", BackendURL: backendURL, SessionToken: other.Token.Reveal()}, nil)
	_, err = f2.Fetch(ctx, Query{To: addr, Since: start})
	if !errors.Is(err, ErrBackendDown) || strings.Contains(err.Error(), other.Token.Reveal()) {
		t.Fatalf("got %v", err)
	}
}

func TestOpenErrors(t *testing.T) {
	cases := []struct {
		cfg  Config
		want string
	}{
		{Config{}, "no e-mail backend"},
		{Config{Backend: "pigeon"}, "unknown e-mail backend"},
		{Config{Backend: "mock"}, "backend_url"},
		{Config{Backend: "mock", BackendURL: "http://127.0.0.1:1"}, "session_token"},
		{Config{Backend: "mock", BackendURL: "ftp://x", SessionToken: "tok-secret"}, "backend_url"},
		{Config{Backend: "imap"}, "imap_addr, imap_user, imap_password"},
		{Config{Backend: "imap", IMAPAddr: "x:993", IMAPUser: "u"}, "imap_password"},
		{Config{Backend: "imap", IMAPAddr: "x:99999", IMAPUser: "u", IMAPPassword: "pw-secret"}, "imap_addr"},
		{Config{Backend: "ses"}, "ses_bucket"},
	}
	for _, c := range cases {
		_, err := Open(c.cfg, nil)
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%+v: got %v, want %q", c.cfg, err, c.want)
		}
		if err != nil && strings.Contains(err.Error(), "secret") {
			t.Errorf("error leaks a secret: %v", err)
		}
	}
	for _, b := range []string{"mock-inbox", "MOCK"} {
		if _, err := Open(Config{Backend: b, BackendURL: "http://127.0.0.1:1", SessionToken: "t"}, nil); err != nil {
			t.Errorf("%s: %v", b, err)
		}
	}
	f, err := Open(Config{Backend: "gmail", IMAPUser: "u@gmail.com", IMAPPassword: "p"}, nil)
	if err != nil || f.(*imapFetcher).addr != "imap.gmail.com:993" {
		t.Errorf("gmail alias: %v", err)
	}
	f, err = Open(Config{Backend: "imap", IMAPAddr: "mail.example.org", IMAPUser: "u", IMAPPassword: "p"}, nil)
	if err != nil || f.(*imapFetcher).addr != "mail.example.org:993" || f.(*imapFetcher).mailbox != "INBOX" {
		t.Errorf("default port: %v", err)
	}
}
