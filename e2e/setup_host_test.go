package e2e

// scripts/setup-broker-host.sh, run non-interactively into a temporary
// --prefix (issue 8): the files and modes it writes, its refusals, its
// idempotence, that no secret reaches its output, and that the broker
// really starts from the environment file it writes.

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha256"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"io/fs"
	"math/big"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/agentkeys/agentkeys/internal/testkit"
)

const (
	setupIssuer  = "https://broker.example.com"
	setupAccount = "123456789012"
	// Shaped like AWS keys; made up.
	setupAKID   = "AKIAZZTESTKEYID12345"
	setupSecret = "tEsT+sEcReT/0123456789abcdefghijklmnopQR"
)

// runSetup runs the script with args and extra environment; it fails the
// test if a secret appears in its output.
func runSetup(t *testing.T, env []string, args ...string) (string, int) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, "bash", append([]string{filepath.Join("..", "scripts", "setup-broker-host.sh")}, args...)...)
	cmd.Env = append([]string{"PATH=" + os.Getenv("PATH"), "HOME=" + t.TempDir(), "LC_ALL=C"}, env...)
	cmd.Stdin = nil // not a TTY: non-interactive unless told
	out, err := cmd.CombinedOutput()
	code, ok := testkit.ExitCode(err)
	if !ok {
		t.Fatal(err)
	}
	for _, secret := range []string{setupSecret, setupAKID} {
		if strings.Contains(string(out), secret) {
			t.Fatalf("setup-broker-host.sh printed a secret:\n%s", out)
		}
	}
	return string(out), code
}

// snapshot records every path under root with its mode, and a hash of
// its content (or link target), to compare two runs.
func snapshot(t *testing.T, root string) map[string]string {
	t.Helper()
	m := map[string]string{}
	err := filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		st, err := os.Lstat(p)
		if err != nil {
			return err
		}
		v := fmt.Sprintf("%v %d", st.Mode(), st.ModTime().UnixNano())
		switch {
		case st.Mode()&fs.ModeSymlink != 0:
			target, _ := os.Readlink(p)
			v += " -> " + target
		case st.Mode().IsRegular():
			b, _ := os.ReadFile(p)
			v += fmt.Sprintf(" %x", sha256.Sum256(b))
		}
		m[strings.TrimPrefix(p, root)] = v
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return m
}

func wantMode(t *testing.T, path string, mode fs.FileMode) {
	t.Helper()
	st, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	if st.Mode().Perm() != mode {
		t.Errorf("%s has mode %04o, want %04o", path, st.Mode().Perm(), mode)
	}
}

func TestSetupBrokerHost(t *testing.T) {
	if _, err := exec.LookPath("bash"); err != nil {
		t.Skip("bash not found")
	}
	binDir := filepath.Dir(bin["agentkeys-broker"])
	root := filepath.Join(t.TempDir(), "root")
	keys := []string{"DAEMON_ACCESS_KEY_ID=" + setupAKID, "DAEMON_SECRET_ACCESS_KEY=" + setupSecret}
	// The command docs/operator-runbook.md shows for a CI-style install.
	args := []string{"--non-interactive", "--prefix", root, "--issuer-url", setupIssuer,
		"--account-id", setupAccount, "--region", "eu-west-1", "--cred-mode", "static",
		"--with-nginx", "--with-certbot", "--bin-dir", binDir}

	// Dry run: reports, writes nothing.
	out, code := runSetup(t, keys, append(args, "--dry-run")...)
	if code != 0 || !strings.Contains(out, "would write "+root+"/etc/agentkeys/broker.env (0600") {
		t.Fatalf("dry run exit %d:\n%s", code, out)
	}
	if _, err := os.Stat(root); !errors.Is(err, fs.ErrNotExist) {
		t.Fatalf("--dry-run created %s", root)
	}

	// First run.
	out, code = runSetup(t, keys, args...)
	if code != 0 {
		t.Fatalf("setup exit %d:\n%s", code, out)
	}
	for _, want := range []string{"skipped (--prefix): create system user agentkeys", "skipped (--prefix): systemctl"} {
		if !strings.Contains(out, want) {
			t.Errorf("output lacks %q", want)
		}
	}
	// Directories and modes.
	for p, m := range map[string]fs.FileMode{
		"etc/agentkeys": 0o700, "var/lib/agentkeys": 0o700, "var/lib/agentkeys/backend": 0o700, "var/lib/agentkeys/broker": 0o700,
		"etc/agentkeys/broker.env": 0o600, "etc/agentkeys/backend.env": 0o600,
		"etc/systemd/system/agentkeys-broker.service": 0o644, "etc/systemd/system/agentkeys-backend.service": 0o644,
		"usr/local/bin/agentkeys-broker": 0o755, "usr/local/bin/agentkeys-backend": 0o755,
		"etc/nginx/sites-available/agentkeys-broker": 0o644, "var/www/certbot": 0o755,
		"etc/agentkeys/aws/trust-policy.json": 0o644, "etc/agentkeys/aws/data-policy.json": 0o644,
	} {
		wantMode(t, filepath.Join(root, p), m)
	}
	// Units are installed verbatim and carry the hardening.
	for _, u := range []string{"agentkeys-backend.service", "agentkeys-broker.service"} {
		got := readFile(t, filepath.Join(root, "etc/systemd/system", u))
		if got != readFile(t, filepath.Join("..", "deploy", "systemd", u)) {
			t.Errorf("%s differs from deploy/systemd/%s", u, u)
		}
		for _, d := range []string{"User=agentkeys", "NoNewPrivileges=yes", "ProtectSystem=strict", "ProtectHome=yes", "PrivateTmp=yes",
			"PrivateDevices=yes", "ReadWritePaths=/var/lib/agentkeys/", "CapabilityBoundingSet=\n", "RestrictAddressFamilies=",
			"SystemCallFilter=@system-service", "LockPersonality=yes", "MemoryDenyWriteExecute=yes", "Restart=always",
			"EnvironmentFile=/etc/agentkeys/"} {
			if !strings.Contains(got, d) {
				t.Errorf("%s lacks %q", u, d)
			}
		}
	}
	// The env file: issuer, role, region, keys (0600 only).
	env := readFile(t, filepath.Join(root, "etc/agentkeys/broker.env"))
	for _, want := range []string{"BROKER_OIDC_ISSUER=" + setupIssuer + "\n", "ACCOUNT_ID=" + setupAccount + "\n", "BROKER_AWS_REGION=eu-west-1\n",
		"DAEMON_ACCESS_KEY_ID=" + setupAKID + "\n", "DAEMON_SECRET_ACCESS_KEY=" + setupSecret + "\n",
		"BROKER_OIDC_KEYPAIR_PATH=/var/lib/agentkeys/broker/oidc-keypair.json\n", "BROKER_AUDIT_DB=/var/lib/agentkeys/broker/audit.sqlite\n"} {
		if !strings.Contains(env, want) {
			t.Errorf("broker.env lacks %q", strings.TrimSpace(strings.SplitN(want, "=", 2)[0]))
		}
	}
	// No login flags: the backend gets no login method at all (never mock)
	// and the script says the backend will refuse to start.
	benv := readFile(t, filepath.Join(root, "etc/agentkeys/backend.env"))
	if regexp.MustCompile(`(?m)^AGENTKEYS_LOGIN`).MatchString(benv) || strings.Contains(benv, "mock") {
		t.Errorf("backend.env configures a login without being asked to:\n%s", benv)
	}
	if !strings.Contains(out, "agentkeys-backend will refuse to start") || !strings.Contains(out, "AGENTKEYS_LOGIN_OIDC_ISSUER") {
		t.Errorf("no warning that the backend will not start without a login method:\n%s", out)
	}
	// nginx phase 1: ACME only.
	site := readFile(t, filepath.Join(root, "etc/nginx/sites-available/agentkeys-broker"))
	if !strings.Contains(site, "server_name broker.example.com;") || !strings.Contains(site, "acme-challenge") || strings.Contains(site, "listen 443") {
		t.Errorf("phase 1 site:\n%s", site)
	}
	if target, err := os.Readlink(filepath.Join(root, "etc/nginx/sites-enabled/agentkeys-broker")); err != nil || target != "/etc/nginx/sites-available/agentkeys-broker" {
		t.Errorf("sites-enabled link: %q %v", target, err)
	}
	// IAM documents, filled in and valid JSON.
	trust := readFile(t, filepath.Join(root, "etc/agentkeys/aws/trust-policy.json"))
	if !strings.Contains(trust, "arn:aws:iam::"+setupAccount+":oidc-provider/broker.example.com") || !strings.Contains(trust, `"broker.example.com:aud": "sts.amazonaws.com"`) ||
		!strings.Contains(trust, `"broker.example.com:sub": "agentkeys:agent:*"`) || !strings.Contains(trust, "sts:TagSession") || !json.Valid([]byte(trust)) {
		t.Errorf("trust policy:\n%s", trust)
	}
	data := readFile(t, filepath.Join(root, "etc/agentkeys/aws/data-policy.json"))
	if !strings.Contains(data, "arn:aws:s3:::agentkeys-data/${aws:PrincipalTag/agentkeys_user_wallet}/*") || !json.Valid([]byte(data)) {
		t.Errorf("data policy:\n%s", data)
	}

	// Idempotent: a second run (keys now only in the env file) changes
	// nothing at all.
	before := snapshot(t, root)
	out, code = runSetup(t, nil, args...)
	if code != 0 {
		t.Fatalf("second run exit %d:\n%s", code, out)
	}
	if after := snapshot(t, root); fmt.Sprint(after) != fmt.Sprint(before) {
		for k, v := range after {
			if before[k] != v {
				t.Errorf("second run changed %s", k)
			}
		}
		t.Fatalf("second run changed files:\n%s", out)
	}
	if regexp.MustCompile(`(?m)^(wrote|created|installed|linked|chmod) `).MatchString(out) {
		t.Fatalf("second run reports changes:\n%s", out)
	}

	// The broker starts from the written env file (paths moved into the
	// test's directories, the STS check skipped) and serves the issuer.
	checkBrokerStartsFromEnvFile(t, env, true)

	// Phase 2 once the certificate exists: TLS, HSTS, only public routes.
	certDir := filepath.Join(root, "etc/letsencrypt/live/broker.example.com")
	writeSelfSigned(t, certDir)
	if out, code = runSetup(t, nil, args...); code != 0 || !strings.Contains(out, "nginx site broker (broker.example.com): phase 2") || !strings.Contains(out, "skipped (--prefix): sh -c nginx -t && systemctl reload nginx") {
		t.Fatalf("phase 2 run exit %d:\n%s", code, out)
	}
	site = readFile(t, filepath.Join(root, "etc/nginx/sites-available/agentkeys-broker"))
	for _, want := range []string{"listen 443 ssl", "Strict-Transport-Security", "proxy_pass http://127.0.0.1:8091;", "location ^~ /.well-known/",
		"location ^~ /v1/", "location = /healthz", "location = /readyz", "location = /metrics {\n        allow 127.0.0.1;", "return 404;", "return 301 https://"} {
		if !strings.Contains(site, want) {
			t.Errorf("phase 2 site lacks %q", want)
		}
	}
	nginxCheck(t, root, site)

	// With the login flags the backend env file names the OpenID provider;
	// a re-run without them keeps it.
	lroot := filepath.Join(t.TempDir(), "root")
	largs := []string{"--non-interactive", "--prefix", lroot, "--issuer-url", setupIssuer, "--bin-dir", binDir}
	out, code = runSetup(t, nil, append(largs, "--login-oidc-issuer", "https://idp.example.com", "--login-oidc-client-id", "agentkeys-cli")...)
	if code != 0 || strings.Contains(out, "refuse to start") {
		t.Fatalf("setup with login flags exit %d:\n%s", code, out)
	}
	for _, again := range []bool{false, true} {
		if again {
			if out, code = runSetup(t, nil, largs...); code != 0 || strings.Contains(out, "refuse to start") {
				t.Fatalf("re-run without login flags exit %d:\n%s", code, out)
			}
		}
		lenv := readFile(t, filepath.Join(lroot, "etc/agentkeys/backend.env"))
		if !strings.Contains(lenv, "\nAGENTKEYS_LOGIN_OIDC_ISSUER=https://idp.example.com\n") || !strings.Contains(lenv, "\nAGENTKEYS_LOGIN_OIDC_CLIENT_ID=agentkeys-cli\n") ||
			strings.Contains(lenv, "AGENTKEYS_LOGIN=") {
			t.Errorf("backend.env with login flags (re-run %v):\n%s", again, lenv)
		}
	}

	// Named profile: a placeholder credentials file, 0600, never overwritten.
	proot := filepath.Join(t.TempDir(), "root")
	pargs := []string{"--non-interactive", "--prefix", proot, "--issuer-url", setupIssuer, "--account-id", setupAccount,
		"--cred-mode", "profile", "--profile-name", "agentkeys-broker", "--without-nginx", "--bin-dir", binDir}
	if out, code := runSetup(t, nil, pargs...); code != 0 {
		t.Fatalf("profile mode exit %d:\n%s", code, out)
	}
	credFile := filepath.Join(proot, "var/lib/agentkeys/.aws/credentials")
	wantMode(t, credFile, 0o600)
	wantMode(t, filepath.Join(proot, "var/lib/agentkeys/.aws"), 0o700)
	if err := os.WriteFile(credFile, []byte("[agentkeys-broker]\noperator edited\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	runSetup(t, nil, pargs...)
	if readFile(t, credFile) != "[agentkeys-broker]\noperator edited\n" {
		t.Error("a re-run overwrote the operator's AWS credentials file")
	}
	if penv := readFile(t, filepath.Join(proot, "etc/agentkeys/broker.env")); !strings.Contains(penv, "AWS_PROFILE=agentkeys-broker\n") || strings.Contains(penv, "DAEMON_") {
		t.Errorf("profile-mode broker.env:\n%s", penv)
	}
	// Instance profile: nothing AWS-secret on disk.
	iroot := filepath.Join(t.TempDir(), "root")
	if out, code := runSetup(t, nil, "--non-interactive", "--prefix", iroot, "--issuer-url", setupIssuer, "--account-id", setupAccount,
		"--cred-mode", "instance-profile", "--bin-dir", binDir); code != 0 {
		t.Fatalf("instance-profile mode exit %d:\n%s", code, out)
	}
	if ienv := readFile(t, filepath.Join(iroot, "etc/agentkeys/broker.env")); strings.Contains(ienv, "DAEMON_") || strings.Contains(ienv, "AWS_PROFILE") {
		t.Errorf("instance-profile broker.env:\n%s", ienv)
	}

	// Refusals: exit 2, nothing written.
	for _, c := range []struct {
		name string
		env  []string
		args []string
		msg  string
	}{
		{"http issuer", nil, []string{"--issuer-url", "http://broker.example.com"}, "https"},
		{"trailing slash", nil, []string{"--issuer-url", "https://broker.example.com/"}, "slash"},
		{"path", nil, []string{"--issuer-url", "https://broker.example.com/oidc"}, "path"},
		{"query", nil, []string{"--issuer-url", "https://broker.example.com?x=1"}, "query"},
		{"no issuer", nil, nil, "required"},
		{"only one static key", []string{"DAEMON_ACCESS_KEY_ID=" + setupAKID}, []string{"--issuer-url", setupIssuer, "--account-id", setupAccount, "--cred-mode", "static"}, "only one"},
		{"only the secret", []string{"DAEMON_SECRET_ACCESS_KEY=" + setupSecret}, []string{"--issuer-url", setupIssuer, "--account-id", setupAccount, "--cred-mode", "static"}, "only one"},
		{"static without keys", nil, []string{"--issuer-url", setupIssuer, "--account-id", setupAccount, "--cred-mode", "static"}, "DAEMON_ACCESS_KEY_ID"},
		{"secret as an argument", nil, []string{"--issuer-url", setupIssuer, "--secret-access-key", setupSecret}, "never taken from the command line"},
		{"bad account", nil, []string{"--issuer-url", setupIssuer, "--account-id", "12345"}, "12 digits"},
		{"unknown flag", nil, []string{"--issuer-url", setupIssuer, "--frobnicate"}, "unknown argument"},
		{"certbot without nginx", nil, []string{"--issuer-url", setupIssuer, "--with-certbot", "--without-nginx"}, "--with-nginx"},
		{"login issuer alone", nil, []string{"--issuer-url", setupIssuer, "--login-oidc-issuer", "https://idp.example.com"}, "both"},
		{"login client id alone", nil, []string{"--issuer-url", setupIssuer, "--login-oidc-client-id", "x"}, "both"},
		{"backend host without nginx", nil, []string{"--issuer-url", setupIssuer, "--without-nginx", "--backend-host", "agentkeys.example.com",
			"--login-oidc-issuer", "https://idp.example.com", "--login-oidc-client-id", "x"}, "--with-nginx"},
		{"backend host without login", nil, []string{"--issuer-url", setupIssuer, "--with-nginx", "--backend-host", "agentkeys.example.com"}, "login"},
		{"backend host is the issuer", nil, []string{"--issuer-url", setupIssuer, "--with-nginx", "--backend-host", "broker.example.com",
			"--login-oidc-issuer", "https://idp.example.com", "--login-oidc-client-id", "x"}, "another name"},
		{"backend host with a scheme", nil, []string{"--issuer-url", setupIssuer, "--with-nginx", "--backend-host", "https://agentkeys.example.com",
			"--login-oidc-issuer", "https://idp.example.com", "--login-oidc-client-id", "x"}, "DNS name"},
		{"http login issuer", nil, []string{"--issuer-url", setupIssuer, "--login-oidc-issuer", "http://idp.example.com", "--login-oidc-client-id", "x"}, "https"},
	} {
		fresh := filepath.Join(t.TempDir(), "root")
		out, code := runSetup(t, c.env, append([]string{"--non-interactive", "--prefix", fresh, "--bin-dir", binDir}, c.args...)...)
		if code != 2 || !strings.Contains(out, c.msg) {
			t.Errorf("%s: exit %d, want 2 with %q:\n%s", c.name, code, c.msg, out)
		}
		if _, err := os.Stat(fresh); !errors.Is(err, fs.ErrNotExist) {
			t.Errorf("%s: the refused run wrote %s", c.name, fresh)
		}
	}
}

// checkBrokerStartsFromEnvFile starts agentkeys-broker with the variables
// of the written env file, moving its state paths into the test and its
// port to a free one, and checks the discovery document's issuer.
func checkBrokerStartsFromEnvFile(t *testing.T, envFile string, skipCheck bool) {
	t.Helper()
	dir := t.TempDir()
	port := freePort(t)
	var env []string
	for _, line := range strings.Split(envFile, "\n") {
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		switch strings.SplitN(line, "=", 2)[0] {
		case "BROKER_OIDC_KEYPAIR_PATH", "BROKER_AUDIT_DB", "BROKER_PORT":
			continue
		}
		env = append(env, line)
	}
	env = append(env, "BROKER_OIDC_KEYPAIR_PATH="+filepath.Join(dir, "oidc-keypair.json"), "BROKER_AUDIT_DB="+filepath.Join(dir, "audit.sqlite"),
		"BROKER_PORT="+strconv.Itoa(port))
	args := []string{"serve"}
	if skipCheck {
		args = append(args, "--skip-startup-check")
	}
	p := start(t, env, "agentkeys-broker", args...)
	base := "http://127.0.0.1:" + strconv.Itoa(port)
	waitHTTP(t, p, base+"/healthz")
	resp, err := http.Get(base + "/.well-known/openid-configuration")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var d struct {
		Issuer  string `json:"issuer"`
		JWKSURI string `json:"jwks_uri"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&d); err != nil {
		t.Fatal(err)
	}
	if d.Issuer != setupIssuer || d.JWKSURI != setupIssuer+"/.well-known/jwks.json" {
		t.Fatalf("broker from the written env file serves issuer %q, jwks %q", d.Issuer, d.JWKSURI)
	}
	wantMode(t, filepath.Join(dir, "oidc-keypair.json"), 0o600)
	if err := p.stop(t); err != nil {
		t.Fatalf("broker exit: %v", err)
	}
	if strings.Contains(p.stderr.String(), setupSecret) {
		t.Fatal("the broker logged the static secret key")
	}
}

func writeSelfSigned(t *testing.T, dir string) {
	t.Helper()
	key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "broker.example.com"},
		DNSNames: []string{"broker.example.com"}, NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour)}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	kder, _ := x509.MarshalPKCS8PrivateKey(key)
	if err := os.MkdirAll(dir, 0o700); err != nil {
		t.Fatal(err)
	}
	os.WriteFile(filepath.Join(dir, "fullchain.pem"), pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o644)
	os.WriteFile(filepath.Join(dir, "privkey.pem"), pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: kder}), 0o600)
}

// nginxCheck runs `nginx -t` on the phase 2 site when nginx is installed
// (paths moved under root; ports moved off 80/443).
func nginxCheck(t *testing.T, root, site string) {
	t.Helper()
	nginx, err := exec.LookPath("nginx")
	if err != nil {
		if _, err = os.Stat("/usr/sbin/nginx"); err != nil {
			t.Log("nginx not installed: the site's syntax is not checked")
			return
		}
		nginx = "/usr/sbin/nginx"
	}
	dir := t.TempDir()
	s := strings.ReplaceAll(site, "/etc/letsencrypt/", root+"/etc/letsencrypt/")
	s = strings.ReplaceAll(s, "/var/www/certbot", root+"/var/www/certbot")
	s = strings.NewReplacer("listen 80;", "listen 127.0.0.1:18080;", "listen [::]:80;", "", "listen 443 ssl http2;", "listen 127.0.0.1:18443 ssl http2;",
		"listen [::]:443 ssl http2;", "").Replace(s)
	conf := fmt.Sprintf("pid %s/nginx.pid;\nerror_log stderr;\nevents {}\nhttp {\n access_log off;\n client_body_temp_path %[1]s;\n%s\n}\n", dir, s)
	cf := filepath.Join(dir, "nginx.conf")
	if err := os.WriteFile(cf, []byte(conf), 0o600); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	out, err := exec.CommandContext(ctx, nginx, "-t", "-p", dir, "-c", cf).CombinedOutput()
	if err != nil {
		t.Fatalf("nginx -t on the phase 2 site: %v\n%s", err, out)
	}
}

// TestBrokerEnvExampleListsEveryVariable keeps deploy/env/broker.env.example
// in step with the variables the broker reads.
func TestBrokerEnvExampleListsEveryVariable(t *testing.T) {
	example := readFile(t, filepath.Join("..", "deploy", "env", "broker.env.example"))
	re := regexp.MustCompile(`"((?:BROKER|DAEMON)_[A-Z_]+|ACCOUNT_ID|REGION)"`)
	seen := 0
	for _, f := range []string{"config.go", "command.go"} {
		src := readFile(t, filepath.Join("..", "internal", "broker", f))
		for _, m := range re.FindAllStringSubmatch(src, -1) {
			seen++
			if !regexp.MustCompile(`(?m)^#?`+m[1]+`=`).MatchString(example) && !strings.Contains(example, m[1]) {
				t.Errorf("deploy/env/broker.env.example does not mention %s", m[1])
			}
		}
	}
	if seen < 20 {
		t.Fatalf("found only %d variables in internal/broker; did the source move?", seen)
	}
}
