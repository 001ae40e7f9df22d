package e2e

import (
	"context"
	"crypto/tls"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/agentkeys/agentkeys/internal/agentkeys"
	"github.com/agentkeys/agentkeys/internal/backendclient"
	"github.com/agentkeys/agentkeys/internal/sqldb/sqldbtest"
	"github.com/agentkeys/agentkeys/internal/testkit"
	_ "modernc.org/sqlite"
)

// nginxBin finds Debian's nginx; without it the test skips, unless the run
// requires every peer (AGENTKEYS_REQUIRE_E2E=1, as CI does).
func nginxBin(t *testing.T) string {
	t.Helper()
	if p, err := exec.LookPath("nginx"); err == nil {
		return p
	}
	if _, err := os.Stat("/usr/sbin/nginx"); err == nil {
		return "/usr/sbin/nginx"
	}
	e2eRequire(t, "nginx is not installed (apt-get install nginx)")
	return ""
}

// startNginx runs the shipped phase 2 site (TLS, limit_req, forwarding
// headers) as a foreground nginx with its own prefix, on a loopback port,
// proxying to brokerPort. It returns the https base URL.
func startNginx(t *testing.T, host string, brokerPort int) string {
	t.Helper()
	nginxBin(t)
	dir := t.TempDir()
	certDir := filepath.Join(dir, "etc/letsencrypt/live", host)
	writeSelfSigned(t, certDir)
	site := readFile(t, filepath.Join("..", "deploy", "nginx", "agentkeys-broker.phase2.conf"))
	port := freePort(t)
	site = strings.NewReplacer(
		"@HOST@", host,
		"/etc/letsencrypt/", dir+"/etc/letsencrypt/",
		"/var/www/certbot", dir,
		"listen 80;", "listen 127.0.0.1:"+strconv.Itoa(freePort(t))+";", "listen [::]:80;", "",
		"listen 443 ssl http2;", "listen 127.0.0.1:"+strconv.Itoa(port)+" ssl http2;", "listen [::]:443 ssl http2;", "",
		"http://127.0.0.1:8091", "http://127.0.0.1:"+strconv.Itoa(brokerPort),
	).Replace(site)
	return runNginx(t, dir, site, port)
}

// runNginx runs site (its paths and ports already moved into dir and onto
// loopback) in a foreground nginx and returns https://127.0.0.1:port once
// it listens there.
func runNginx(t *testing.T, dir, site string, port int) string {
	t.Helper()
	nginx := nginxBin(t)
	conf := fmt.Sprintf(`daemon off;
master_process off;
pid %[1]s/nginx.pid;
error_log stderr;
events {}
http {
  access_log off;
  client_body_temp_path %[1]s/body;
  proxy_temp_path %[1]s/proxy;
  fastcgi_temp_path %[1]s/fastcgi;
  uwsgi_temp_path %[1]s/uwsgi;
  scgi_temp_path %[1]s/scgi;
%[2]s
}
`, dir, site)
	cf := filepath.Join(dir, "nginx.conf")
	if err := os.WriteFile(cf, []byte(conf), 0o600); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(nginx, "-p", dir, "-c", cf, "-e", "stderr")
	var stderr testkit.SyncBuffer
	cmd.Stderr = &stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	t.Cleanup(func() {
		cmd.Process.Signal(os.Interrupt)
		select {
		case <-done:
		case <-time.After(10 * time.Second):
			cmd.Process.Kill()
		}
	})
	base := "https://127.0.0.1:" + strconv.Itoa(port)
	deadline := time.Now().Add(15 * time.Second)
	for {
		c, err := net.Dial("tcp", "127.0.0.1:"+strconv.Itoa(port))
		if err == nil {
			c.Close()
			return base
		}
		select {
		case err := <-done:
			t.Fatalf("nginx exited: %v\n%s", err, stderr.String())
		case <-time.After(50 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			t.Fatalf("nginx did not listen\n%s", stderr.String())
		}
	}
}

// clientFrom is an HTTPS client whose connections leave from a given
// loopback address (127.0.0.2, 127.0.0.3, ...), each a distinct client to
// nginx, and that names host in TLS and Host.
func clientFrom(src, host string) *http.Client {
	d := &net.Dialer{LocalAddr: &net.TCPAddr{IP: net.ParseIP(src)}}
	return &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{
		DialContext:         d.DialContext,
		TLSClientConfig:     &tls.Config{InsecureSkipVerify: true, ServerName: host},
		MaxIdleConnsPerHost: 16,
	}}
}

func doMint(t *testing.T, c *http.Client, base, host, bearer string, hdr ...string) (int, string) {
	t.Helper()
	req, _ := http.NewRequest("POST", base+"/v1/mint-oidc-jwt", nil)
	req.Host = host
	req.Header.Set("Authorization", "Bearer "+bearer)
	for i := 0; i+1 < len(hdr); i += 2 {
		req.Header.Set(hdr[i], hdr[i+1])
	}
	resp, err := c.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

// TestTrustedProxiesBehindNginx (issue 17 item 1): the shipped nginx site in
// front of the broker binary. A flood from one client address is cut off
// (by nginx's own limit_req and the broker's per-IP limit, which now sees
// the real address) while another client's mint goes through, and the
// audit ledger and access log record each client's own address, not the
// proxy's; a client-sent X-Forwarded-For does not change that.
func TestTrustedProxiesBehindNginx(t *testing.T) {
	const host = "broker.agentkeys.test"
	dir := t.TempDir()
	kport := freePort(t)
	backendURL, _ := startBackend(t, dir, nil)
	auditDB := filepath.Join(dir, "broker", "audit.sqlite")
	br := start(t, []string{
		"BROKER_BACKEND_URL=" + backendURL,
		"BROKER_OIDC_ISSUER=https://" + host,
		"BROKER_OIDC_KEYPAIR_PATH=" + filepath.Join(dir, "broker", "oidc-keypair.json"),
		"BROKER_AUDIT_DB=" + auditDB,
		"BROKER_VALIDATE_CACHE_SECONDS=0",
		"BROKER_RATE_PER_IP=1",
	}, "agentkeys-broker", "--port", strconv.Itoa(kport), "--skip-startup-check", "--trusted-proxies", "127.0.0.1/32,::1/128")
	waitHTTP(t, br, "http://127.0.0.1:"+strconv.Itoa(kport)+"/healthz")
	base := startNginx(t, host, kport)

	ctx := context.Background()
	bc, master := loginMaster(t, backendURL, "frontdoor-master")
	agent := newAgent(t, ctx, bc, master.Token, "aws")

	// The attacker floods with invalid bearers, forging X-Forwarded-For as
	// the victim's address; nginx overwrites it. nginx passes 20/s (burst
	// 40); the broker's per-IP bucket (burst 100, 1/s here) runs dry after
	// a few seconds of that.
	attacker := clientFrom("127.0.0.2", host)
	nginx429, broker429, flood := 0, 0, 0
	for end := time.Now().Add(20 * time.Second); broker429 == 0 && time.Now().Before(end); flood++ {
		code, body := doMint(t, attacker, base, host, "not-a-token", "X-Forwarded-For", "127.0.0.3")
		if code == 429 {
			if strings.Contains(strings.ToLower(body), "rate_limited") {
				broker429++
			} else {
				nginx429++
			}
		}
	}
	if nginx429 == 0 || broker429 == 0 {
		t.Fatalf("flood of %d: nginx answered 429 %d times, the broker %d times; want both limits to act", flood, nginx429, broker429)
	}

	victim := clientFrom("127.0.0.3", host)
	if code, body := doMint(t, victim, base, host, agent.Token.Reveal()); code != 200 {
		t.Fatalf("legitimate mint during the flood → %d %s", code, body)
	}

	db, err := sql.Open("sqlite", auditDB)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	count := func(ip, outcome string) int {
		var n int
		if err := db.QueryRow(`SELECT count(*) FROM mint_log WHERE client_ip = ? AND outcome = ?`, ip, outcome).Scan(&n); err != nil {
			t.Fatal(err)
		}
		return n
	}
	if n := count("127.0.0.3", "ok"); n != 1 {
		t.Errorf("audit: %d ok rows for the victim's address 127.0.0.3, want 1", n)
	}
	if n := count("127.0.0.2", "auth_failed"); n == 0 {
		t.Error("audit: no auth_failed rows carry the attacker's address 127.0.0.2")
	}
	if n := count("127.0.0.3", "auth_failed") + count("127.0.0.1", "auth_failed"); n != 0 {
		t.Errorf("audit: %d auth_failed rows carry the victim's or the proxy's address", n)
	}
	// The access line is written once the response has gone out.
	waitFor(t, 5*time.Second, "access lines with the real client addresses", func() bool {
		logs := br.stderr.String()
		return strings.Contains(logs, `"client_ip":"127.0.0.3"`) && strings.Contains(logs, `"client_ip":"127.0.0.2"`)
	})

	// Without the trusted-proxies setting the same headers are ignored:
	// a direct request forging X-Forwarded-For is logged with its peer.
	req, _ := http.NewRequest("POST", "http://127.0.0.1:"+strconv.Itoa(kport)+"/v1/mint-oidc-jwt", nil)
	req.Header.Set("X-Forwarded-For", "198.51.100.99")
	d := &net.Dialer{LocalAddr: &net.TCPAddr{IP: net.ParseIP("127.0.0.4")}}
	hc := &http.Client{Transport: &http.Transport{DialContext: d.DialContext}}
	resp, err := hc.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	waitFor(t, 5*time.Second, "access line for 127.0.0.4", func() bool {
		return strings.Contains(br.stderr.String(), `"client_ip":"127.0.0.4"`)
	})
	if strings.Contains(br.stderr.String(), "198.51.100.99") {
		t.Error("an untrusted peer's X-Forwarded-For reached the log")
	}
}

// TestBackendTrustedProxiesAndWalletLimit (issue 17 item 1) drives the
// backend binary: behind a trusted proxy the login limit is per forwarded
// client, not one bucket for everyone, and authenticated routes are limited
// per wallet.
func TestBackendTrustedProxiesAndWalletLimit(t *testing.T) {
	dir := t.TempDir()
	url, be := startBackend(t, dir, nil, "--trusted-proxies", "127.0.0.1/32", "--login-rate", "0.01", "--wallet-rate", "0.01")
	login := func(xff, identity string) (int, map[string]any) {
		req, _ := http.NewRequest("POST", url+"/session/create", strings.NewReader(`{"auth_token":"`+identity+`"}`))
		req.Header.Set("Content-Type", "application/json")
		req.Header.Set("X-Forwarded-For", xff)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		var m map[string]any
		json.NewDecoder(resp.Body).Decode(&m)
		return resp.StatusCode, m
	}
	limited := false
	for i := range 30 {
		if code, _ := login("203.0.113.1", "flooder"+strconv.Itoa(i)); code == 429 {
			limited = true
			break
		}
	}
	if !limited {
		t.Fatal("30 logins from one forwarded client were never limited")
	}
	code, m := login("203.0.113.2", "honest")
	if code != 200 {
		t.Fatalf("another client's login behind the same proxy → %d %v", code, m)
	}
	waitFor(t, 5*time.Second, "access line with the forwarded address", func() bool {
		return strings.Contains(be.stderr.String(), `"client_ip":"203.0.113.2"`)
	})
	bc, _ := backendclient.New(url)
	page, err := bc.QueryAudit(context.Background(), agentkeys.Token(m["session"].(string)), backendclient.AuditFilter{Action: "session_create"})
	if err != nil || len(page.Events) != 1 || page.Events[0].ClientIP != "203.0.113.2" {
		t.Fatalf("the login's audit row: %+v %v, want client_ip 203.0.113.2", page.Events, err)
	}

	validate := func(tok string) int {
		req, _ := http.NewRequest("GET", url+"/session/validate", nil)
		req.Header.Set("Authorization", "Bearer "+tok)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		return resp.StatusCode
	}
	tok := m["session"].(string)
	got429 := false
	for range 250 {
		if validate(tok) == 429 {
			got429 = true
			break
		}
	}
	if !got429 {
		t.Fatal("250 authenticated requests of one wallet were never limited")
	}
	_, other := login("203.0.113.3", "other")
	if c := validate(other["session"].(string)); c != 200 {
		t.Fatalf("another wallet was limited too: %d", c)
	}
}

// hostReq sends method url with a forged Host (and Origin, if given) and
// returns the status and the envelope's error kind.
func hostReq(t *testing.T, method, url, host, origin, body string, hdr ...string) (int, string) {
	t.Helper()
	req, _ := http.NewRequest(method, url, strings.NewReader(body))
	req.Host = host
	if origin != "" {
		req.Header.Set("Origin", origin)
	}
	if body != "" {
		req.Header.Set("Content-Type", "application/json")
	}
	for i := 0; i+1 < len(hdr); i += 2 {
		req.Header.Set(hdr[i], hdr[i+1])
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var env struct{ Error string }
	raw, _ := io.ReadAll(resp.Body)
	json.Unmarshal(raw, &env)
	return resp.StatusCode, env.Error
}

// TestDNSRebindingRefused (issue 17 item 5): the loopback servers answer
// only for loopback names, IP literals and their configured public name,
// and refuse state-changing requests from foreign web origins; the daemon's
// MCP HTTP transport refuses a foreign Host too.
func TestDNSRebindingRefused(t *testing.T) {
	dir := t.TempDir()
	kport := freePort(t)
	backendURL, _ := startBackend(t, dir, nil, "--mock-inbox", "--public-url", "https://agentkeys.example.test")
	const rebind = "rebind.attacker.example:" + "8090"
	for _, c := range []struct{ method, path, body string }{
		{"POST", "/session/create", `{"auth_token":"rebound"}`},
		{"POST", "/auth-request/open", `{}`},
		{"POST", "/mock/inbox/deliver", `{}`},
		{"GET", "/identity/resolve?identity_type=alias&identity_value=x", ""},
		{"GET", "/health", ""},
	} {
		if code, kind := hostReq(t, c.method, backendURL+c.path, rebind, "", c.body); code != 421 || kind != "MISDIRECTED_REQUEST" {
			t.Errorf("backend %s %s with Host %s → %d %s, want 421 MISDIRECTED_REQUEST", c.method, c.path, rebind, code, kind)
		}
	}
	if code, kind := hostReq(t, "POST", backendURL+"/session/create", "127.0.0.1", "https://evil.example", `{"auth_token":"x"}`); code != 403 || kind != "FORBIDDEN_ORIGIN" {
		t.Errorf("backend POST from a foreign Origin → %d %s, want 403 FORBIDDEN_ORIGIN", code, kind)
	}
	for _, host := range []string{"localhost", strings.TrimPrefix(backendURL, "http://"), "[::1]", "agentkeys.example.test"} {
		if code, kind := hostReq(t, "POST", backendURL+"/session/create", host, "", `{"auth_token":"ok-`+host+`"}`); code != 200 {
			t.Errorf("backend POST /session/create with Host %s → %d %s, want 200", host, code, kind)
		}
	}
	if code, _ := hostReq(t, "POST", backendURL+"/session/create", "agentkeys.example.test", "https://agentkeys.example.test", `{"auth_token":"same-origin"}`); code != 200 {
		t.Errorf("backend POST from its own public origin → %d, want 200", code)
	}

	kURL := "http://127.0.0.1:" + strconv.Itoa(kport)
	br := start(t, []string{
		"BROKER_BACKEND_URL=" + backendURL,
		"BROKER_OIDC_ISSUER=https://broker.example.test",
		"BROKER_OIDC_KEYPAIR_PATH=" + filepath.Join(dir, "broker", "oidc-keypair.json"),
		"BROKER_AUDIT_DB=" + filepath.Join(dir, "broker", "audit.sqlite"),
	}, "agentkeys-broker", "--port", strconv.Itoa(kport), "--skip-startup-check")
	waitHTTP(t, br, kURL+"/healthz")
	if code, kind := hostReq(t, "POST", kURL+"/v1/mint-oidc-jwt", rebind, "", ""); code != 421 || kind != "MISDIRECTED_REQUEST" {
		t.Errorf("broker mint with Host %s → %d %s, want 421", rebind, code, kind)
	}
	if code, _ := hostReq(t, "GET", kURL+"/.well-known/openid-configuration", "broker.example.test", "", ""); code != 200 {
		t.Errorf("broker discovery for its issuer's host → %d, want 200", code)
	}
	if code, kind := hostReq(t, "POST", kURL+"/v1/mint-oidc-jwt", "localhost", "http://evil.example", ""); code != 403 || kind != "FORBIDDEN_ORIGIN" {
		t.Errorf("broker mint from a foreign Origin → %d %s, want 403", code, kind)
	}

	// The daemon's MCP HTTP transport (the MCP SDK's localhost protection).
	f := mcpSetup(t)
	token := mcpRandHex(16)
	endpoint, _ := f.startHTTPDaemon(t, token)
	initReq := `{"jsonrpc":"2.0","id":1,"method":"initialize","params":{"protocolVersion":"2025-06-18","capabilities":{},"clientInfo":{"name":"e2e","version":"1"}}}`
	code, _ := hostReq(t, "POST", endpoint, rebind, "", initReq, "Authorization", "Bearer "+token, "Accept", "application/json, text/event-stream")
	if code != http.StatusForbidden {
		t.Errorf("daemon MCP with Host %s → %d, want 403", rebind, code)
	}
	code, _ = hostReq(t, "POST", endpoint, strings.TrimPrefix(strings.TrimSuffix(endpoint, "/mcp"), "http://"), "", initReq, "Authorization", "Bearer "+token, "Accept", "application/json, text/event-stream")
	if code != http.StatusOK {
		t.Errorf("daemon MCP with its own Host → %d, want 200", code)
	}
}

// TestHostileInputIsA4xx (issue 17 item 6) drives the backend binary on
// each engine: NUL bytes and control characters in identity values, audit
// filters and request ids, and an overflowing ttl_seconds, are 400 (the
// unauthenticated routes included), never a 500.
func TestHostileInputIsA4xx(t *testing.T) {
	sqldbtest.ForEach(t, func(t *testing.T, eng sqldbtest.Engine) {
		dir := t.TempDir()
		port := freePort(t)
		base := "http://127.0.0.1:" + strconv.Itoa(port)
		args := []string{"--login", "mock", "--listen", "127.0.0.1:" + strconv.Itoa(port), "--data-dir", filepath.Join(dir, "backend")}
		if eng.Name == "postgres" {
			args = append(args, "--database-url", eng.NewDSN(t))
		}
		be := start(t, nil, "agentkeys-backend", args...)
		waitHTTP(t, be, base+"/health")
		_, m := loginMaster(t, base, "hostile-input")
		bearer := "Bearer " + m.Token.Reveal()
		awaitBearer := "Bearer " + agentkeys.NewToken().Reveal()
		for _, c := range []struct {
			method, path, body, auth string
		}{
			{"GET", "/identity/resolve?identity_type=email&identity_value=a%00b%40example.com", "", ""},
			{"GET", "/identity/resolve?identity_type=ens&identity_value=%FF%FE.eth", "", ""},
			{"GET", "/auth-request/await?request_id=ab%00cd", "", awaitBearer},
			{"GET", "/auth-request/await?request_id=%C0%AF", "", awaitBearer},
			{"GET", "/audit/query?service=a%00b", "", bearer},
			{"GET", "/audit/query?action=%E2%80%AE", "", bearer},
			{"POST", "/identity/link", `{"identity_type":"email","identity_value":"x\u0000y@example.com"}`, bearer},
			{"POST", "/identity/link", `{"identity_type":"email","identity_value":"gpj.exe\u202e@example.com"}`, bearer},
			{"POST", "/session/child", `{"scope":{"services":["x"]},"ttl_seconds":9223372036854775807}`, bearer},
			{"POST", "/session/child", `{"scope":{"services":["x"]},"ttl_seconds":-5}`, bearer},
		} {
			auth := []string{}
			if c.auth != "" {
				auth = []string{"Authorization", c.auth}
			}
			if code, kind := hostReq(t, c.method, base+c.path, "127.0.0.1", "", c.body, auth...); code != 400 || kind != "BAD_REQUEST" {
				t.Errorf("%s %s %s → %d %s, want 400 BAD_REQUEST", c.method, c.path, c.body, code, kind)
			}
		}
	})
}

// TestMasterReadsNoLies (issue 17 item 7), with the real binaries: text
// with bidi or control characters is refused on the way in; a row that
// holds some anyway (written before this rule, or straight into the
// database) is escaped by `agentkeys usage`, as a table and as JSON;
// e-mail links are shown as unverified and a daemon refuses to bind its
// --parent to one.
func TestMasterReadsNoLies(t *testing.T) {
	s := startStack(t)
	master := newMaster(t, s.backendURL, "e2e-lies-master")
	var usage struct {
		Events []struct {
			Owner string `json:"owner"`
		} `json:"events"`
	}
	if err := json.Unmarshal([]byte(master.must("", "usage", "--json")), &usage); err != nil || len(usage.Events) == 0 {
		t.Fatalf("usage --json: %v %+v", err, usage)
	}
	w := usage.Events[0].Owner

	const lie = "fetched invoice\u202egnp.exe\x1b[2J\u0085"
	db, err := sql.Open("sqlite", filepath.Join(s.dir, "backend", "backend.db"))
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	if _, err := db.Exec(`INSERT INTO audit_log (ts, owner_wallet, agent_wallet, service, action, result, detail) VALUES (?, ?, ?, 'svc', 'provision', 'ok', ?)`,
		time.Now().Unix(), w, w, lie); err != nil {
		t.Fatal(err)
	}
	for _, args := range [][]string{{"usage"}, {"usage", "--json"}} {
		out := master.must("", args...)
		if strings.ContainsAny(out, "\u202e\x1b\u0085") {
			t.Errorf("agentkeys %s printed a control or bidi character raw:\n%q", strings.Join(args, " "), out)
		}
		if !strings.Contains(out, `\u202e`) {
			t.Errorf("agentkeys %s does not show the escaped override:\n%s", strings.Join(args, " "), out)
		}
	}

	_, api := loginMaster(t, s.backendURL, "e2e-lies-api")
	bearer := "Bearer " + api.Token.Reveal()
	for _, body := range []string{
		`{"agent_id":"` + string(api.Wallet) + `","service":"svc","result":"ok","detail":"ok\u202e"}`,
		`{"agent_id":"` + string(api.Wallet) + `","service":"svc","result":"ok","detail":"\u009b2J"}`,
		`{"agent_id":"` + string(api.Wallet) + `","service":"svc","result":"ok","detail":"\u0007bell"}`,
	} {
		if code, kind := hostReq(t, "POST", s.backendURL+"/audit/provision", "127.0.0.1", "", body, "Authorization", bearer); code != 400 {
			t.Errorf("audit/provision %s → %d %s, want 400", body, code, kind)
		}
	}
	if code, _ := hostReq(t, "POST", s.backendURL+"/audit/provision", "127.0.0.1", "", `{"agent_id":"`+string(api.Wallet)+`","service":"svc","result":"ok","detail":"signed up: ünïcødé ✓ (עברית)"}`, "Authorization", bearer); code != 200 {
		t.Errorf("a detail in plain Unicode → %d, want 200", code)
	}

	// E-mail links: unverified wherever shown, and never a daemon's parent.
	const email = "lies-master@example.com"
	req, _ := http.NewRequest("POST", s.backendURL+"/identity/link", strings.NewReader(`{"identity_type":"email","identity_value":"`+email+`"}`))
	req.Header.Set("Authorization", bearer)
	req.Header.Set("Content-Type", "application/json")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	var linked map[string]any
	json.NewDecoder(resp.Body).Decode(&linked)
	resp.Body.Close()
	if resp.StatusCode != 200 || linked["verified"] != false {
		t.Fatalf("link e-mail → %d %v, want verified false", resp.StatusCode, linked)
	}
	resp, err = http.Get(s.backendURL + "/identity/resolve?identity_type=email&identity_value=" + email)
	if err != nil {
		t.Fatal(err)
	}
	var resolved map[string]any
	json.NewDecoder(resp.Body).Decode(&resolved)
	resp.Body.Close()
	if resolved["wallet_address"] != string(api.Wallet) || resolved["verified"] != false {
		t.Fatalf("resolve e-mail → %v, want the wallet and verified false", resolved)
	}
	dir := t.TempDir()
	d := startDaemon(t, s.backendURL, "--services", "svc", "--parent", email, "--session-file", filepath.Join(dir, "a.json"), "--socket", filepath.Join(dir, "a.sock"))
	refused := false
	for !refused {
		select {
		case l, ok := <-d.Lines():
			if !ok {
				t.Fatalf("daemon with --parent %s exited (%v) without refusing the unverified link", email, d.Err())
			}
			refused = strings.Contains(l, "unverified")
		case <-time.After(20 * time.Second):
			t.Fatalf("daemon with --parent %s did not refuse it", email)
		}
	}
	// The same master by wallet address is accepted.
	d2 := startDaemon(t, s.backendURL, "--services", "svc", "--parent", string(api.Wallet), "--session-file", filepath.Join(dir, "b.json"), "--socket", filepath.Join(dir, "b.sock"))
	d2.expect(t, pairLine)
}

// TestQuotasOnTheBinary (issue 17 item 4): the default depth limit (16)
// and the configured per-master caps, by flag and by environment, answered
// 403 QUOTA_EXCEEDED by the backend binary.
func TestQuotasOnTheBinary(t *testing.T) {
	ctx := context.Background()
	quotaErr := func(err error) bool {
		var e *backendclient.Error
		return errors.As(err, &e) && e.Status == 403 && e.Kind == "QUOTA_EXCEEDED"
	}
	t.Run("default depth", func(t *testing.T) {
		s := startStack(t)
		bc, _ := backendclient.New(s.backendURL)
		m, err := bc.CreateSession(ctx, "depth-master")
		if err != nil {
			t.Fatal(err)
		}
		parent := m
		for depth := 1; depth <= 16; depth++ {
			if parent, err = bc.CreateChild(ctx, parent.Token, agentkeys.Scope{Services: []string{"x"}}, 0); err != nil {
				t.Fatalf("agent at depth %d: %v", depth, err)
			}
		}
		if _, err := bc.CreateChild(ctx, parent.Token, agentkeys.Scope{Services: []string{"x"}}, 0); !quotaErr(err) {
			t.Fatalf("agent at depth 17 → %v, want 403 QUOTA_EXCEEDED", err)
		}
	})
	t.Run("configured", func(t *testing.T) {
		dir := t.TempDir()
		url, _ := startBackend(t, dir, []string{"AGENTKEYS_MAX_AGENTS_PER_MASTER=2"}, "--max-credentials-per-master", "1")
		bc, _ := backendclient.New(url)
		m, err := bc.CreateSession(ctx, "caps-master")
		if err != nil {
			t.Fatal(err)
		}
		a := newAgent(t, ctx, bc, m.Token, "x", "y")
		newAgent(t, ctx, bc, m.Token, "x")
		if _, err := bc.CreateChild(ctx, a.Token, agentkeys.Scope{Services: []string{"x"}}, 0); !quotaErr(err) {
			t.Fatalf("third agent → %v, want 403 QUOTA_EXCEEDED", err)
		}
		if err := bc.StoreCredential(ctx, m.Token, a.Wallet, "x", []byte("v1")); err != nil {
			t.Fatal(err)
		}
		if err := bc.StoreCredential(ctx, m.Token, a.Wallet, "y", []byte("v2")); !quotaErr(err) {
			t.Fatalf("second credential → %v, want 403 QUOTA_EXCEEDED", err)
		}
		other, err := bc.CreateSession(ctx, "caps-other")
		if err != nil {
			t.Fatal(err)
		}
		if _, err := bc.CreateChild(ctx, other.Token, agentkeys.Scope{Services: []string{"x"}}, 0); err != nil {
			t.Fatalf("another master's first agent: %v", err)
		}
	})
}
