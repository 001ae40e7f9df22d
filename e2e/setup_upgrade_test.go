package e2e

// scripts/setup-broker-host.sh re-run as the runbook's upgrade path (issue
// 22 items 2 and 3), in --prefix mode: operator-added settings and values
// no option changes survive, changed files restart the services and
// changed sites reload nginx (host_cmd reports what it would run), the
// certbot deploy hook, the backend's own nginx site and env settings.

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/agentkeys/agentkeys/internal/audit"
)

func TestSetupBrokerHostUpgrade(t *testing.T) {
	binDir := filepath.Dir(bin["agentkeys-broker"])
	root := filepath.Join(t.TempDir(), "root")
	keys := []string{"DAEMON_ACCESS_KEY_ID=" + setupAKID, "DAEMON_SECRET_ACCESS_KEY=" + setupSecret}
	const backendHost = "agentkeys.example.com"
	install := []string{"--non-interactive", "--prefix", root, "--issuer-url", setupIssuer, "--account-id", setupAccount,
		"--region", "eu-west-1", "--cred-mode", "static", "--with-nginx", "--with-certbot", "--bin-dir", binDir,
		"--skip-startup-check", "--login-oidc-issuer", "https://idp.example.com", "--login-oidc-client-id", "agentkeys-cli",
		"--backend-host", backendHost}
	// What the runbook's upgrade section runs: no options but where to write.
	rerun := []string{"--non-interactive", "--prefix", root, "--bin-dir", binDir}
	const restart = "skipped (--prefix): systemctl restart agentkeys-backend.service agentkeys-broker.service"
	const start = "skipped (--prefix): systemctl start agentkeys-backend.service agentkeys-broker.service"
	const reload = "skipped (--prefix): sh -c nginx -t && systemctl reload nginx"
	brokerEnv := filepath.Join(root, "etc/agentkeys/broker.env")
	backendEnv := filepath.Join(root, "etc/agentkeys/backend.env")

	out, code := runSetup(t, keys, install...)
	if code != 0 || !strings.Contains(out, restart) || !strings.Contains(out, reload) {
		t.Fatalf("install exit %d (want a restart and an nginx reload):\n%s", code, out)
	}
	hook := filepath.Join(root, "etc/letsencrypt/renewal-hooks/deploy/agentkeys-reload-nginx")
	wantMode(t, hook, 0o755)
	if h := readFile(t, hook); !strings.HasPrefix(h, "#!/bin/sh\n") || !strings.Contains(h, "systemctl reload nginx") {
		t.Errorf("certbot deploy hook:\n%s", h)
	}
	benv := readFile(t, backendEnv)
	for _, want := range []string{"\nAGENTKEYS_PUBLIC_URL=https://" + backendHost + "\n", "\nAGENTKEYS_TRUSTED_PROXIES=127.0.0.1/32,::1/128\n",
		"\nAGENTKEYS_LOGIN_OIDC_ISSUER=https://idp.example.com\n"} {
		if !strings.Contains(benv, want) {
			t.Errorf("backend.env lacks %q:\n%s", strings.TrimSpace(want), benv)
		}
	}
	if strings.Contains(benv, "AGENTKEYS_LOGIN=") {
		t.Errorf("backend.env sets a login mode other than OIDC:\n%s", benv)
	}
	if env := readFile(t, brokerEnv); !strings.Contains(env, "\nBROKER_SKIP_STARTUP_CHECK=1\n") {
		t.Errorf("broker.env lacks BROKER_SKIP_STARTUP_CHECK=1:\n%s", env)
	}
	bsite := readFile(t, filepath.Join(root, "etc/nginx/sites-available/agentkeys-backend"))
	if !strings.Contains(bsite, "server_name "+backendHost+";") || !strings.Contains(bsite, "acme-challenge") || strings.Contains(bsite, "listen 443") {
		t.Errorf("backend phase 1 site:\n%s", bsite)
	}
	if target, err := os.Readlink(filepath.Join(root, "etc/nginx/sites-enabled/agentkeys-backend")); err != nil || target != "/etc/nginx/sites-available/agentkeys-backend" {
		t.Errorf("backend sites-enabled link: %q %v", target, err)
	}

	// The operator adds settings (the multi-replica section's PostgreSQL
	// URLs, a tuned limit) and edits one the script wrote.
	const dbURL = "postgres://agentkeys:pw-" + "0perator@db.internal:5432/agentkeys?sslmode=verify-full&application_name=x"
	appendFile(t, backendEnv, "AGENTKEYS_DATABASE_URL="+dbURL+"\n")
	env := readFile(t, brokerEnv)
	env = strings.Replace(env, "BROKER_AUDIT_DB=/var/lib/agentkeys/broker/audit.sqlite", "BROKER_AUDIT_DB="+dbURL, 1)
	if err := os.WriteFile(brokerEnv, []byte(env+"BROKER_RATE_PER_IP=10\n"), 0o600); err != nil {
		t.Fatal(err)
	}

	// Upgrade without the original options (and no keys in the
	// environment): everything is kept.
	out, code = runSetup(t, nil, rerun...)
	if code != 0 {
		t.Fatalf("re-run exit %d:\n%s", code, out)
	}
	if strings.Contains(out, dbURL) || strings.Contains(out, "removed ") {
		t.Errorf("re-run printed a value or removed a setting:\n%s", out)
	}
	if !strings.Contains(out, "kept BROKER_AUDIT_DB") {
		t.Errorf("re-run does not say it kept the operator's BROKER_AUDIT_DB:\n%s", out)
	}
	env, benv = readFile(t, brokerEnv), readFile(t, backendEnv)
	for _, want := range []string{"\nDAEMON_ACCESS_KEY_ID=" + setupAKID + "\n", "\nDAEMON_SECRET_ACCESS_KEY=" + setupSecret + "\n",
		"\nBROKER_AUDIT_DB=" + dbURL + "\n", "\nBROKER_RATE_PER_IP=10\n", "\nBROKER_AWS_REGION=eu-west-1\n", "\nACCOUNT_ID=" + setupAccount + "\n",
		"\nBROKER_SKIP_STARTUP_CHECK=1\n", "\nBROKER_TRUSTED_PROXIES=127.0.0.1/32,::1/128\n", "\nBROKER_OIDC_ISSUER=" + setupIssuer + "\n"} {
		if !strings.Contains(env, want) {
			t.Errorf("after the re-run broker.env lacks %s", strings.SplitN(strings.TrimSpace(want), "=", 2)[0])
		}
	}
	for _, want := range []string{"\nAGENTKEYS_DATABASE_URL=" + dbURL + "\n", "\nAGENTKEYS_PUBLIC_URL=https://" + backendHost + "\n",
		"\nAGENTKEYS_LOGIN_OIDC_CLIENT_ID=agentkeys-cli\n"} {
		if !strings.Contains(benv, want) {
			t.Errorf("after the re-run backend.env lacks %s", strings.SplitN(strings.TrimSpace(want), "=", 2)[0])
		}
	}
	wantMode(t, brokerEnv, 0o600)

	// Nothing changed since: start (not restart), no reload, no writes.
	before := snapshot(t, root)
	out, code = runSetup(t, nil, rerun...)
	if code != 0 || !strings.Contains(out, start) || strings.Contains(out, "systemctl restart") || strings.Contains(out, reload) {
		t.Fatalf("unchanged re-run exit %d (want start, no restart, no reload):\n%s", code, out)
	}
	for k, v := range snapshot(t, root) {
		if before[k] != v {
			t.Errorf("an unchanged re-run changed %s", k)
		}
	}

	// An option changes one value: named, written, services restarted.
	out, code = runSetup(t, nil, append(rerun, "--region", "us-west-2")...)
	if code != 0 || !strings.Contains(out, "broker.env: changed BROKER_AWS_REGION") || !strings.Contains(out, restart) {
		t.Fatalf("--region re-run exit %d (want the key named and a restart):\n%s", code, out)
	}
	if env = readFile(t, brokerEnv); !strings.Contains(env, "\nBROKER_AWS_REGION=us-west-2\n") || !strings.Contains(env, "\nBROKER_AUDIT_DB="+dbURL+"\n") {
		t.Errorf("--region re-run broker.env:\n%s", strings.ReplaceAll(env, setupSecret, "…"))
	}

	// Another credential mode drops the static keys (and says so); the
	// operator's own lines stay.
	out, code = runSetup(t, nil, append(rerun, "--cred-mode", "instance-profile")...)
	if code != 0 || !strings.Contains(out, "broker.env: removed DAEMON_SECRET_ACCESS_KEY") {
		t.Fatalf("--cred-mode instance-profile re-run exit %d:\n%s", code, out)
	}
	if env = readFile(t, brokerEnv); strings.Contains(env, "DAEMON_") || !strings.Contains(env, "\nBROKER_RATE_PER_IP=10\n") {
		t.Errorf("after --cred-mode instance-profile broker.env:\n%s", env)
	}

	// Certificates issued: phase 2 for both sites, and nginx is reloaded.
	writeSelfSigned(t, filepath.Join(root, "etc/letsencrypt/live/broker.example.com"))
	writeSelfSigned(t, filepath.Join(root, "etc/letsencrypt/live", backendHost))
	out, code = runSetup(t, nil, rerun...)
	if code != 0 || !strings.Contains(out, reload) || !strings.Contains(out, "nginx site backend ("+backendHost+"): phase 2") ||
		!strings.Contains(out, "nginx site broker (broker.example.com): phase 2") {
		t.Fatalf("phase 2 re-run exit %d (want both sites in phase 2 and a reload):\n%s", code, out)
	}
	bsite = readFile(t, filepath.Join(root, "etc/nginx/sites-available/agentkeys-backend"))
	for _, want := range []string{"listen 443 ssl", "server_name " + backendHost + ";", "ssl_certificate     /etc/letsencrypt/live/" + backendHost + "/fullchain.pem;",
		"proxy_pass http://127.0.0.1:8090;", "proxy_set_header X-Forwarded-For $remote_addr;", "limit_req zone=agentkeys_backend", "location ^~ /mock/"} {
		if !strings.Contains(bsite, want) {
			t.Errorf("backend phase 2 site lacks %q", want)
		}
	}
	nginxCheck(t, root, readFile(t, filepath.Join(root, "etc/nginx/sites-available/agentkeys-broker"))+"\n"+bsite)

	// The broker starts from the env file as written, STS check skipped by
	// BROKER_SKIP_STARTUP_CHECK alone (this test has no route to AWS).
	env = strings.Replace(readFile(t, brokerEnv), "BROKER_AUDIT_DB="+dbURL, "BROKER_AUDIT_DB=/var/lib/agentkeys/broker/audit.sqlite", 1)
	checkBrokerStartsFromEnvFile(t, env, false)
}

func appendFile(t *testing.T, path, s string) {
	t.Helper()
	f, err := os.OpenFile(path, os.O_APPEND|os.O_WRONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if _, err := f.WriteString(s); err != nil {
		t.Fatal(err)
	}
}

// runbookBlock returns the commands of the docs/operator-runbook.md sh
// block whose comment names test.
func runbookBlock(t *testing.T, test string) []string {
	t.Helper()
	doc := readFile(t, filepath.Join("..", "docs", "operator-runbook.md"))
	i := strings.Index(doc, "# "+test+" ")
	if i < 0 {
		t.Fatalf("docs/operator-runbook.md has no block marked %q", test)
	}
	end := strings.Index(doc[i:], "```")
	var cmds []string
	for _, line := range strings.Split(doc[i:i+end], "\n")[1:] {
		if line = strings.TrimSpace(line); line != "" && !strings.HasPrefix(line, "#") {
			cmds = append(cmds, line)
		}
	}
	return cmds
}

// TestRunbookAuditVerifyAndBackup runs the runbook's audit commands (issue
// 22 item 4) with the host's paths moved into the test and sudo left out
// (the test is root or owns everything already): verify takes the ledger
// from the env file through a pipe, never from argv, and the backup copy
// is one verify accepts.
func TestRunbookAuditVerifyAndBackup(t *testing.T) {
	if _, err := exec.LookPath("sqlite3"); err != nil {
		e2eRequire(t, "sqlite3 is not installed (apt-get install sqlite3)")
	}
	root := t.TempDir()
	state := filepath.Join(root, "var/lib/agentkeys/broker")
	if err := os.MkdirAll(state, 0o700); err != nil {
		t.Fatal(err)
	}
	os.MkdirAll(filepath.Join(root, "etc/agentkeys"), 0o700)
	ledger, err := audit.Open(context.Background(), filepath.Join(state, "audit.sqlite"))
	if err != nil {
		t.Fatal(err)
	}
	for range 3 {
		if err := ledger.Append(context.Background(), audit.Record{RequesterTokenHash: "h", RequesterWallet: "w", RequestedRole: "oidc_jwt", Outcome: "ok", STSSessionName: "k"}); err != nil {
			t.Fatal(err)
		}
	}
	defer ledger.Close() // open like the running service's
	env := "BROKER_OIDC_ISSUER=" + setupIssuer + "\nBROKER_AUDIT_DB=/var/lib/agentkeys/broker/audit.sqlite\nDAEMON_SECRET_ACCESS_KEY=" + setupSecret + "\n"
	if err := os.WriteFile(filepath.Join(root, "etc/agentkeys/broker.env"), []byte(strings.ReplaceAll(env, "/var/lib/", root+"/var/lib/")), 0o600); err != nil {
		t.Fatal(err)
	}
	local := strings.NewReplacer("sudo -u agentkeys ", "", "sudo ", "", " -o agentkeys -g agentkeys", "",
		"/etc/agentkeys/", root+"/etc/agentkeys/", "/var/lib/agentkeys/", root+"/var/lib/agentkeys/",
		"/var/backups/agentkeys", root+"/var/backups/agentkeys")
	run := func(c string) string {
		t.Helper()
		if strings.Contains(c, "postgres://") || strings.Contains(c, "BROKER_AUDIT_DB") {
			t.Fatalf("a runbook command names the ledger's URL on its command line: %s", c)
		}
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		cmd := exec.CommandContext(ctx, "bash", "-o", "pipefail", "-c", local.Replace(c))
		cmd.Env = []string{"PATH=" + filepath.Dir(bin["agentkeys-broker"]) + ":" + os.Getenv("PATH"), "HOME=" + root}
		out, err := cmd.CombinedOutput()
		if err != nil || strings.Contains(string(out), setupSecret) {
			t.Fatalf("%s: %v\n%s", c, err, out)
		}
		return string(out)
	}
	verify := runbookBlock(t, "TestRunbookAuditVerifyAndBackup")
	if len(verify) != 1 || !strings.Contains(verify[0], "--env-file -") {
		t.Fatalf("runbook verify block: %q", verify)
	}
	if out := run(verify[0]); !strings.Contains(out, "OK: 3 rows") {
		t.Fatalf("verify through the env file: %s", out)
	}
	doc := readFile(t, filepath.Join("..", "docs", "operator-runbook.md"))
	second := strings.Index(doc, "# TestRunbookAuditVerifyAndBackup (e2e/setup_upgrade_test.go) runs these")
	if second < 0 {
		t.Fatal("runbook has no backup block for this test")
	}
	var backup []string
	for _, line := range strings.Split(doc[second:second+strings.Index(doc[second:], "```")], "\n")[1:] {
		if line = strings.TrimSpace(line); line != "" {
			backup = append(backup, line)
		}
	}
	var out string
	for _, c := range backup {
		out = run(c)
	}
	if !strings.Contains(out, "OK: 3 rows") {
		t.Fatalf("verify of the backup copy: %s", out)
	}
	wantMode(t, filepath.Join(root, "var/backups/agentkeys/audit.sqlite"), 0o600)
}
