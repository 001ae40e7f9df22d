package e2e

// Issue 22 item 2: masters and daemons reach the backend through the
// shipped nginx site for its public name, with TLS and OIDC login. The
// setup script writes the site and backend.env (--backend-host); the test
// runs them: a loopback OpenID provider with the device grant, the backend
// from the env file, Debian's nginx with the phase 2 site and a
// certificate from a CA the test makes, and the CLI and daemon resolving
// the public name through their own /etc/hosts (a mount namespace each).

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"fmt"
	"math/big"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/agentkeys/agentkeys/internal/oidc/oidctest"
)

// testCA issues TLS certificates that clients trust through SSL_CERT_FILE.
type testCA struct {
	cert    *x509.Certificate
	key     *ecdsa.PrivateKey
	pemFile string
}

func newTestCA(t *testing.T) *testCA {
	t.Helper()
	key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "AgentKeys test CA"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(24 * time.Hour),
		IsCA: true, BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign | x509.KeyUsageDigitalSignature}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	cert, _ := x509.ParseCertificate(der)
	f := filepath.Join(t.TempDir(), "ca.pem")
	if err := os.WriteFile(f, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o644); err != nil {
		t.Fatal(err)
	}
	return &testCA{cert: cert, key: key, pemFile: f}
}

var testCASerial atomic.Int64

// issue returns a leaf for names (DNS names or IP addresses) as PEM.
func (ca *testCA) issue(t *testing.T, names ...string) (certPEM, keyPEM []byte) {
	t.Helper()
	key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(100 + testCASerial.Add(1)), Subject: pkix.Name{CommonName: names[0]},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(24 * time.Hour),
		KeyUsage: x509.KeyUsageDigitalSignature, ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}}
	for _, n := range names {
		if ip := net.ParseIP(n); ip != nil {
			tmpl.IPAddresses = append(tmpl.IPAddresses, ip)
		} else {
			tmpl.DNSNames = append(tmpl.DNSNames, n)
		}
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca.cert, &key.PublicKey, ca.key)
	if err != nil {
		t.Fatal(err)
	}
	kder, _ := x509.MarshalPKCS8PrivateKey(key)
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: kder})
}

// issueTo writes fullchain.pem and privkey.pem into dir, as certbot does.
func (ca *testCA) issueTo(t *testing.T, dir string, names ...string) {
	t.Helper()
	c, k := ca.issue(t, names...)
	if err := os.MkdirAll(dir, 0o700); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "fullchain.pem"), c, 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "privkey.pem"), k, 0o600); err != nil {
		t.Fatal(err)
	}
}

// startDeviceIdP is an https OpenID provider on loopback offering the
// device grant; the user "approves" on the second poll of each login.
func startDeviceIdP(t *testing.T, ca *testCA, clientID, subject string) string {
	t.Helper()
	return startNamedDeviceIdP(t, ca, clientID, subject, "")
}

// startNamedDeviceIdP is startDeviceIdP listening on every address under
// name (resolved by the test's /etc/hosts), when name is not empty.
func startNamedDeviceIdP(t *testing.T, ca *testCA, clientID, subject, name string) string {
	t.Helper()
	mux := http.NewServeMux()
	srv := httptest.NewUnstartedServer(mux)
	c, k := ca.issue(t, "127.0.0.1")
	if name != "" {
		l, err := net.Listen("tcp", "0.0.0.0:0")
		if err != nil {
			t.Fatal(err)
		}
		srv.Listener.Close()
		srv.Listener = l
		c, k = ca.issue(t, name)
	}
	pair, err := tls.X509KeyPair(c, k)
	if err != nil {
		t.Fatal(err)
	}
	srv.TLS = &tls.Config{Certificates: []tls.Certificate{pair}}
	srv.StartTLS()
	t.Cleanup(srv.Close)
	u := srv.URL
	if name != "" {
		u = "https://" + name + ":" + strconv.Itoa(srv.Listener.Addr().(*net.TCPAddr).Port)
	}
	mux.Handle("/", oidctest.NewDeviceProvider(t, clientID, subject).Handler(u))
	return u
}

// hostsWrapper returns a script that runs exe in its own mount namespace
// with hosts bind-mounted over /etc/hosts: the process resolves the
// public names the test chose, nothing else on the machine sees them.
func hostsWrapper(t *testing.T, exe, hosts string) string {
	t.Helper()
	if os.Geteuid() != 0 {
		e2eRequire(t, "needs root for a mount namespace (unshare -m) with its own /etc/hosts")
	}
	if err := exec.Command("unshare", "-m", "--", "sh", "-c", `mount --bind "$0" /etc/hosts`, hosts).Run(); err != nil {
		e2eRequire(t, "unshare -m with a bind mount over /etc/hosts does not work here: "+err.Error())
	}
	w := filepath.Join(t.TempDir(), filepath.Base(exe))
	script := fmt.Sprintf("#!/bin/sh\nexec unshare -m -- sh -c 'mount --bind \"$0\" /etc/hosts && exec \"$@\"' '%s' '%s' \"$@\"\n", hosts, exe)
	if err := os.WriteFile(w, []byte(script), 0o755); err != nil {
		t.Fatal(err)
	}
	return w
}

// envFileVars returns the assignments of a systemd env file, with the
// given keys replaced.
func envFileVars(t *testing.T, path string, replace map[string]string) []string {
	t.Helper()
	var env []string
	for _, line := range strings.Split(readFile(t, path), "\n") {
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		if _, ok := replace[strings.SplitN(line, "=", 2)[0]]; ok {
			continue
		}
		env = append(env, line)
	}
	for k, v := range replace {
		env = append(env, k+"="+v)
	}
	return env
}

func TestBackendThroughNginx(t *testing.T) {
	nginxBin(t)
	const host = "agentkeys.example.com"
	hosts := filepath.Join(t.TempDir(), "hosts")
	if err := os.WriteFile(hosts, []byte("127.0.0.1 localhost\n127.0.0.1 "+host+"\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	akExe := hostsWrapper(t, bin["agentkeys"], hosts)
	daemonExe := hostsWrapper(t, bin["agentkeys-daemon"], hosts)
	ca := newTestCA(t)
	idp := startDeviceIdP(t, ca, "agentkeys-cli", "alice@idp")

	// The operator's install: the site and env files, then the certificate
	// and a re-run for phase 2 (docs/operator-runbook.md section 3a).
	root := filepath.Join(t.TempDir(), "root")
	args := []string{"--non-interactive", "--prefix", root, "--issuer-url", setupIssuer, "--with-nginx",
		"--login-oidc-issuer", idp, "--login-oidc-client-id", "agentkeys-cli", "--backend-host", host,
		"--bin-dir", filepath.Dir(bin["agentkeys-broker"])}
	if out, code := runSetup(t, nil, args...); code != 0 {
		t.Fatalf("setup exit %d:\n%s", code, out)
	}
	ca.issueTo(t, filepath.Join(root, "etc/letsencrypt/live", host), host)
	if out, code := runSetup(t, nil, args...); code != 0 || !strings.Contains(out, "nginx site backend ("+host+"): phase 2") {
		t.Fatalf("phase 2 exit %d:\n%s", code, out)
	}

	// The backend from the env file the script wrote (state and port moved
	// into the test), trusting the test CA for the provider.
	bport := freePort(t)
	backendEnv := envFileVars(t, filepath.Join(root, "etc/agentkeys/backend.env"), map[string]string{
		"AGENTKEYS_BACKEND_LISTEN": "127.0.0.1:" + strconv.Itoa(bport), "AGENTKEYS_DATA_DIR": filepath.Join(t.TempDir(), "backend")})
	backend := start(t, append(backendEnv, "SSL_CERT_FILE="+ca.pemFile), "agentkeys-backend")
	waitHTTP(t, backend, "http://127.0.0.1:"+strconv.Itoa(bport)+"/health")

	// nginx with the site as written (paths and ports moved).
	dir := t.TempDir()
	nport := freePort(t)
	site := strings.NewReplacer(
		"/etc/letsencrypt/", root+"/etc/letsencrypt/", "/var/www/certbot", dir,
		"listen 80;", "listen 127.0.0.1:"+strconv.Itoa(freePort(t))+";", "listen [::]:80;", "",
		"listen 443 ssl http2;", "listen 127.0.0.1:"+strconv.Itoa(nport)+" ssl http2;", "listen [::]:443 ssl http2;", "",
		"http://127.0.0.1:8090", "http://127.0.0.1:"+strconv.Itoa(bport),
	).Replace(readFile(t, filepath.Join(root, "etc/nginx/sites-available/agentkeys-backend")))
	runNginx(t, dir, site, nport)
	public := "https://" + host + ":" + strconv.Itoa(nport)
	tlsEnv := "SSL_CERT_FILE=" + ca.pemFile

	// Mock login is refused at the public name.
	hc := &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{
		DialContext: func(ctx context.Context, network, _ string) (net.Conn, error) {
			return (&net.Dialer{}).DialContext(ctx, network, "127.0.0.1:"+strconv.Itoa(nport))
		},
		TLSClientConfig: &tls.Config{RootCAs: certPool(ca), ServerName: host}}}
	resp, err := hc.Post(public+"/session/create", "application/json", strings.NewReader(`{"auth_token":"anyone"}`))
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode == http.StatusOK {
		t.Fatal("mock login accepted through the public name")
	}
	if resp, err = hc.Get(public + "/mock/inbox/list"); err != nil || resp.StatusCode != http.StatusNotFound {
		t.Fatalf("/mock/ through nginx: %v %v", resp, err)
	}
	resp.Body.Close()

	// The master's laptop: init with the provider's device flow, an agent,
	// a credential, all through nginx with TLS.
	master := newCLI(t, public)
	master.exe = akExe
	master.env = append(master.env, tlsEnv)
	if out, errs, code := master.run("", nil, "init", "--backend", public, "--oidc-issuer", idp, "--oidc-client-id", "agentkeys-cli"); code != 0 ||
		!strings.Contains(errs, oidctest.UserCode) || !strings.Contains(out, "Wallet: 0x") {
		t.Fatalf("init through nginx: exit %d\n%s%s", code, out, errs)
	}
	master.must("", "agent", "create", "ci-bot", "--services", "openrouter")
	secret := "sk-or-nginx-" + strconv.FormatInt(time.Now().UnixNano(), 36)
	master.must(secret, "store", "ci-bot", "openrouter")
	if out := master.must("", "read", "ci-bot", "openrouter"); strings.TrimSpace(out) != secret {
		t.Fatalf("read through nginx = %q", out)
	}

	// A sandbox daemon pairs through the public name; the master approves;
	// the sandbox reads through the daemon's socket.
	pairSandbox(t, master, daemonExe, []string{tlsEnv}, public, secret)
	if strings.Contains(backend.stderr.String(), secret) {
		t.Fatal("the backend logged the credential")
	}
}

func certPool(ca *testCA) *x509.CertPool {
	p := x509.NewCertPool()
	p.AddCert(ca.cert)
	return p
}
