package gateway

import (
	"bufio"
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"golang.org/x/time/rate"

	"github.com/agentkeys/agentkeys/internal/agentkeys"
	"github.com/agentkeys/agentkeys/internal/services"
)

func newKey(t testing.TB) string {
	var b [16]byte
	rand.Read(b[:])
	return "sk-test-" + hex.EncodeToString(b[:])
}

// upstream is a TLS fixture of an API: it records what it saw.
type upstream struct {
	*httptest.Server
	mu   sync.Mutex
	seen []*http.Request
}

func (u *upstream) last() *http.Request {
	u.mu.Lock()
	defer u.mu.Unlock()
	return u.seen[len(u.seen)-1]
}

func newUpstream(t *testing.T, h http.HandlerFunc) *upstream {
	u := &upstream{}
	u.Server = httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		u.mu.Lock()
		u.seen = append(u.seen, r.Clone(context.Background()))
		u.mu.Unlock()
		h(w, r)
	}))
	u.EnableHTTP2 = true
	u.StartTLS()
	t.Cleanup(u.Close)
	return u
}

type memAudit struct {
	mu    sync.Mutex
	calls []Call
	full  bool
	got   chan struct{} // one send per record (buffered)
}

func (m *memAudit) Reserve(ctx context.Context) (func(Call), error) {
	m.mu.Lock()
	full := m.full
	m.mu.Unlock()
	if full {
		<-ctx.Done()
		return nil, ErrBacklogFull
	}
	return func(c Call) {
		m.mu.Lock()
		m.calls = append(m.calls, c)
		m.mu.Unlock()
		select {
		case m.got <- struct{}{}:
		default:
		}
	}, nil
}

// wait returns the records once there are n (a record is written after
// the response reached the client).
func (m *memAudit) wait(t *testing.T, n int) []Call {
	t.Helper()
	timeout := time.After(5 * time.Second)
	for {
		if c := m.all(); len(c) >= n {
			return c
		}
		select {
		case <-m.got:
		case <-timeout:
			t.Fatalf("want %d audit records, got %d", n, len(m.all()))
		}
	}
}

func (m *memAudit) all() []Call {
	m.mu.Lock()
	defer m.mu.Unlock()
	return append([]Call(nil), m.calls...)
}

type fixture struct {
	gw    *Gateway
	url   string
	key   string
	audit *memAudit
	up    *upstream
}

func setup(t *testing.T, up *upstream, scope *agentkeys.Scope, mod func(*Options)) *fixture {
	t.Helper()
	key := newKey(t)
	f := &fixture{key: key, audit: &memAudit{got: make(chan struct{}, 100)}, up: up}
	o := Options{
		Services: []services.Service{
			{Name: "openai", APIBase: up.URL, Auth: services.Bearer},
			{Name: "anthropic", APIBase: up.URL, Auth: services.Auth{In: "header", Name: "x-api-key"}},
			{Name: "qsvc", APIBase: up.URL, Auth: services.Auth{In: "query", Name: "key"}},
		},
		Scope: scope,
		Source: SourceFunc(func(_ context.Context, s string) ([]byte, error) {
			return []byte(key), nil
		}),
		Audit:     f.audit,
		Transport: up.Client().Transport,
		Rate:      rate.Inf,
	}
	if mod != nil {
		mod(&o)
	}
	g, err := New(o)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(g.Close)
	srv := httptest.NewServer(g)
	t.Cleanup(srv.Close)
	f.gw, f.url = g, srv.URL
	return f
}

// findCall returns the record of the one call to service (records are
// written as responses end, not necessarily in request order).
func findCall(t *testing.T, calls []Call, service string) Call {
	t.Helper()
	for _, c := range calls {
		if c.Service == service {
			return c
		}
	}
	t.Fatalf("no audit record for %s in %+v", service, calls)
	return Call{}
}

func errKind(t *testing.T, resp *http.Response) string {
	t.Helper()
	defer resp.Body.Close()
	var e struct{ Error, Message string }
	if err := json.NewDecoder(resp.Body).Decode(&e); err != nil {
		t.Fatalf("status %d: body is not the JSON error envelope: %v", resp.StatusCode, err)
	}
	return e.Error
}

func TestForwardsWithTheKeyAndMasksIt(t *testing.T) {
	var key string
	up := newUpstream(t, func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		fmt.Fprintf(w, `{"echo":%q,"path":%q}`, key, r.URL.RequestURI())
	})
	f := setup(t, up, &agentkeys.Scope{Services: []string{"openai", "anthropic", "qsvc"}}, nil)
	key = f.key

	req, _ := http.NewRequest("POST", f.url+"/openai/v1/chat/completions?x=1", strings.NewReader(`{"model":"m"}`))
	req.Header.Set("Authorization", "Bearer placeholder")
	req.Header.Set("X-Forwarded-Host", "evil.example")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 200 {
		t.Fatalf("status %d: %s", resp.StatusCode, body)
	}
	if strings.Contains(string(body), f.key) || !strings.Contains(string(body), `"echo":"****"`) {
		t.Fatalf("the key echoed by the API was not masked: %s", body)
	}
	if !strings.Contains(string(body), `"path":"/v1/chat/completions?x=1"`) {
		t.Fatalf("path or query not forwarded unchanged: %s", body)
	}
	got := f.up.last()
	if got.Header.Get("Authorization") != "Bearer "+f.key {
		t.Fatal("the API did not get the key as a bearer")
	}
	if got.Header.Get("X-Forwarded-Host") != "" || got.Host != strings.TrimPrefix(up.URL, "https://") {
		t.Fatalf("host not fixed by the table: Host %q, X-Forwarded-Host %q", got.Host, got.Header.Get("X-Forwarded-Host"))
	}

	// x-api-key and query forms.
	resp, err = http.Get(f.url + "/anthropic/v1/messages")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if got := f.up.last(); got.Header.Get("x-api-key") != f.key || got.Header.Get("Authorization") != "" {
		t.Fatal("anthropic: key not in x-api-key alone")
	}
	resp, err = http.Get(f.url + "/qsvc/v1/x?key=agent-chosen&a=b")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if q := f.up.last().URL.Query(); q.Get("key") != f.key || q.Get("a") != "b" || len(q["key"]) != 1 {
		t.Fatal("query auth: key not set in place of the agent's value")
	}

	calls := f.audit.wait(t, 3)
	c := findCall(t, calls, "openai")
	if c.Service != "openai" || c.Method != "POST" || c.Path != "/v1/chat/completions" || c.Status != 200 || c.Refused != "" ||
		c.BytesIn != int64(len(`{"model":"m"}`)) || c.BytesOut != int64(len(body)) {
		t.Fatalf("audit record: %+v", c)
	}
	if strings.Contains(fmt.Sprint(calls), f.key) || strings.Contains(fmt.Sprint(calls), "agent-chosen") {
		t.Fatal("audit holds the key or the query")
	}
}

func TestRefusals(t *testing.T) {
	up := newUpstream(t, func(w http.ResponseWriter, r *http.Request) {})
	f := setup(t, up, &agentkeys.Scope{Services: []string{"openai"}}, nil)
	n := 0
	check := func(name string, resp *http.Response, err error, status int, kind string) {
		t.Helper()
		n++
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		if resp.StatusCode != status || errKind(t, resp) != kind {
			t.Fatalf("%s: got %d, want %d %s", name, resp.StatusCode, status, kind)
		}
	}
	resp, err := http.Get(f.url + "/anthropic/v1/messages")
	check("out of scope", resp, err, 403, KindOutOfScope)
	resp, err = http.Get(f.url + "/nosuch/x")
	check("unknown service", resp, err, 404, KindNotFound)

	req, _ := http.NewRequest("GET", f.url+"/openai/v1/models", nil)
	req.Host = "api.openai.com"
	resp, err = http.DefaultClient.Do(req)
	check("foreign Host", resp, err, 421, KindMisdirected)

	// Absolute-URI (forward proxy) form, written by hand.
	conn, err := net.Dial("tcp", strings.TrimPrefix(f.url, "http://"))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	fmt.Fprintf(conn, "GET http://other.example/openai/v1/models HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
	resp, err = http.ReadResponse(bufio.NewReader(conn), nil)
	check("absolute URI", resp, err, 400, KindBadRequest)

	if len(up.seen) != 0 {
		t.Fatalf("a refused request reached the API (%d)", len(up.seen))
	}
	calls := f.audit.wait(t, n)
	if c := findCall(t, calls, "anthropic"); c.Refused != "denied_scope" || c.Status != 403 || c.Path != "/v1/messages" {
		t.Fatalf("refusal record: %+v", c)
	}
}

func TestStreamsUnbufferedAndRevocationCutsIt(t *testing.T) {
	next := make(chan struct{})
	up := newUpstream(t, func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/event-stream")
		for i := 0; ; i++ {
			fmt.Fprintf(w, "data: {\"n\":%d}\n\n", i)
			w.(http.Flusher).Flush()
			select {
			case <-next:
			case <-r.Context().Done():
				return
			}
		}
	})
	revoked := make(chan struct{})
	f := setup(t, up, nil, func(o *Options) { o.Revoked = revoked })
	resp, err := http.Get(f.url + "/openai/v1/chat/completions")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	br := bufio.NewReader(resp.Body)
	for i := range 3 {
		line, err := br.ReadString('\n')
		if err != nil {
			t.Fatal(err)
		}
		if want := fmt.Sprintf("data: {\"n\":%d}\n", i); line != want {
			t.Fatalf("event %d: %q", i, line)
		}
		br.ReadString('\n')
		next <- struct{}{} // the upstream sends the next event only after we read this one
	}
	close(revoked)
	done := make(chan error, 1)
	go func() { _, err := io.Copy(io.Discard, br); done <- err }()
	select {
	case err := <-done:
		if err == nil {
			t.Fatal("the stream ended cleanly after revocation; want it cut")
		}
	case <-time.After(time.Second):
		t.Fatal("revocation did not cut the open stream within 1 s")
	}
	resp2, err := http.Get(f.url + "/openai/v1/models")
	if err != nil {
		t.Fatal(err)
	}
	if resp2.StatusCode != 401 || errKind(t, resp2) != KindRevoked {
		t.Fatalf("after revocation: %d", resp2.StatusCode)
	}
}

func TestAuditBacklogFullAnswers503(t *testing.T) {
	up := newUpstream(t, func(w http.ResponseWriter, r *http.Request) {})
	f := setup(t, up, nil, nil)
	f.audit.full = true
	start := time.Now()
	resp, err := http.Get(f.url + "/openai/v1/models")
	if err != nil {
		t.Fatal(err)
	}
	if resp.StatusCode != 503 || errKind(t, resp) != KindAuditBacklog {
		t.Fatalf("status %d", resp.StatusCode)
	}
	if d := time.Since(start); d < AuditWait-100*time.Millisecond {
		t.Fatalf("answered after %v; want to wait %v for room", d, AuditWait)
	}
	if len(up.seen) != 0 {
		t.Fatal("an unaudited request reached the API")
	}
}

func TestRateLimitAndSizeLimits(t *testing.T) {
	up := newUpstream(t, func(w http.ResponseWriter, r *http.Request) {
		io.Copy(io.Discard, r.Body)
		w.Write([]byte(strings.Repeat("x", 2048)))
	})
	f := setup(t, up, nil, func(o *Options) {
		o.Rate, o.Burst = rate.Every(time.Hour), 3
		o.MaxRequestBody, o.MaxResponseBody = 1024, 1024
	})
	resp, err := http.Post(f.url+"/openai/v1/x", "text/plain", strings.NewReader(strings.Repeat("y", 2000)))
	if err != nil {
		t.Fatal(err)
	}
	if resp.StatusCode != 413 || errKind(t, resp) != KindTooLarge {
		t.Fatalf("large body: %d", resp.StatusCode)
	}
	resp, err = http.Get(f.url + "/openai/v1/x")
	if err == nil {
		_, err = io.ReadAll(resp.Body)
		resp.Body.Close()
	}
	if err == nil {
		t.Fatal("a response over the limit was delivered whole")
	}
	http.Get(f.url + "/openai/v1/x")
	resp, err = http.Get(f.url + "/openai/v1/x")
	if err != nil {
		t.Fatal(err)
	}
	if resp.StatusCode != 429 || resp.Header.Get("Retry-After") == "" || errKind(t, resp) != KindRateLimited {
		t.Fatalf("over the rate: %d", resp.StatusCode)
	}
}

func TestBatcherKeepsRecordsUntilSent(t *testing.T) {
	var mu sync.Mutex
	var sent []Call
	fail := true
	b := NewBatcher(BatcherOptions{MaxBacklog: 2, MaxBatch: 10, Send: func(_ context.Context, c []Call) error {
		mu.Lock()
		defer mu.Unlock()
		if fail {
			return errors.New("backend down")
		}
		sent = append(sent, c...)
		return nil
	}})
	for i := range 2 {
		rec, err := b.Reserve(context.Background())
		if err != nil {
			t.Fatal(err)
		}
		rec(Call{Path: fmt.Sprint(i)})
	}
	if err := b.Flush(context.Background()); err == nil {
		t.Fatal("flush succeeded with the backend down")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel()
	if _, err := b.Reserve(ctx); !errors.Is(err, ErrBacklogFull) {
		t.Fatalf("full backlog: %v", err)
	}
	got := make(chan error, 1)
	go func() {
		rec, err := b.Reserve(context.Background())
		if err == nil {
			rec(Call{Path: "2"})
		}
		got <- err
	}()
	mu.Lock()
	fail = false
	mu.Unlock()
	if err := b.Flush(context.Background()); err != nil {
		t.Fatal(err)
	}
	if err := <-got; err != nil {
		t.Fatal(err)
	}
	if err := b.Flush(context.Background()); err != nil {
		t.Fatal(err)
	}
	if len(sent) != 3 || sent[0].Path != "0" || sent[2].Path != "2" {
		t.Fatalf("sent %+v", sent)
	}
}

func TestEnv(t *testing.T) {
	env := Env("http://127.0.0.1:9", services.All(), []string{"openai", "openrouter", "anthropic"})
	want := map[string]string{
		"OPENAI_BASE_URL":     "http://127.0.0.1:9/openai/v1",
		"OPENROUTER_BASE_URL": "http://127.0.0.1:9/openrouter/api/v1",
		"ANTHROPIC_BASE_URL":  "http://127.0.0.1:9/anthropic",
		"OPENAI_API_KEY":      Placeholder,
	}
	got := map[string]string{}
	for _, kv := range env {
		k, v, _ := strings.Cut(kv, "=")
		got[k] = v
	}
	for k, v := range want {
		if got[k] != v {
			t.Errorf("%s = %q, want %q", k, got[k], v)
		}
	}
}
