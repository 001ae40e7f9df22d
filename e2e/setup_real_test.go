package e2e

// Issue 22 item 5: scripts/setup-broker-host.sh run for real, as root, the
// way docs/operator-runbook.md tells an operator, not in --prefix mode.
// The test re-runs itself in new mount and network namespaces (unshare -m
// -n) and chroots into an overlay of / whose upper layer is a tmpfs: the
// script writes /etc, /usr/local and /var/lib of the overlay, never the
// machine's. systemd is replaced by a systemctl that records each call and
// runs the units' ExecStart as their User with their EnvironmentFile, and
// certbot by one that answers HTTP-01 through the nginx the script
// configured and then installs a certificate from a CA the test made.
// Debian's nginx serves both sites. A second network namespace joined by a
// veth pair is "another machine": the master's laptop and the sandbox's
// daemon, which reach the host only by its public names.

import (
	"context"
	"crypto/tls"
	"encoding/pem"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

// fakeSystemctl stands in for systemd's: it records every call in
// /var/log/systemctl.calls and runs nginx and the agentkeys units.
const fakeSystemctl = `#!/bin/bash
# Test stand-in for systemctl (no systemd in the namespace).
set -u
echo "$*" >>/var/log/systemctl.calls
state=/run/fake-systemd
mkdir -p "$state"
alive() { local st; st=$(awk '{print $3}' "/proc/$1/stat" 2>/dev/null) && [[ -n "$st" && "$st" != Z ]]; }
running() { [[ -f "$state/$1.pid" ]] && alive "$(cat "$state/$1.pid")"; }
unit_start() {
  local u="${1%.service}"
  case "$u" in
    nginx) [[ -f /run/nginx.pid ]] && kill -0 "$(cat /run/nginx.pid)" 2>/dev/null || nginx ;;
    agentkeys-*)
      running "$u" && return 0
      local f=/etc/systemd/system/$u.service vars=() line
      local envfile exec user
      envfile=$(sed -n 's/^EnvironmentFile=//p' "$f"); exec=$(sed -n 's/^ExecStart=//p' "$f"); user=$(sed -n 's/^User=//p' "$f")
      while IFS= read -r line; do [[ -z "$line" || "$line" == \#* ]] || vars+=("$line"); done <"$envfile"
      (umask 077; exec setsid setpriv --reuid="$user" --regid="$user" --init-groups -- \
        env -i PATH=/usr/local/bin:/usr/bin:/bin HOME=/var/lib/agentkeys "${vars[@]}" $exec \
        >>"/var/log/$u.log" 2>&1 </dev/null) &
      echo $! >"$state/$u.pid" ;;
    *) echo "fake systemctl: unknown unit $1" >&2; return 1 ;;
  esac
}
unit_stop() {
  local u="${1%.service}"
  case "$u" in
    nginx) nginx -s quit 2>/dev/null || true ;;
    *) if running "$u"; then
         local pid; pid=$(cat "$state/$u.pid"); kill "$pid"
         for _ in $(seq 1 100); do alive "$pid" || break; sleep 0.1; done
       fi
       rm -f "$state/$u.pid" ;;
  esac
}
cmd="$1"; shift
case "$cmd" in
  daemon-reload|enable) ;;
  start) for u in "$@"; do unit_start "$u" || exit 1; done ;;
  stop) for u in "$@"; do unit_stop "$u"; done ;;
  restart) for u in "$@"; do unit_stop "$u"; unit_start "$u" || exit 1; done ;;
  reload) for u in "$@"; do [[ "${u%.service}" == nginx ]] && nginx -s reload || exit 1; done ;;
  *) echo "fake systemctl: $cmd not supported" >&2; exit 1 ;;
esac
`

// fakeCertbot stands in for certbot: certonly --webroot answers the
// HTTP-01 challenge through nginx (port 80 of the public name), then
// installs the certificate the test's CA issued for the name; renew
// installs the newer one and runs the deploy hooks, as certbot does.
const fakeCertbot = `#!/bin/bash
set -eu
echo "$*" >>/var/log/certbot.calls
ca=@CA_DIR@
case "$1" in
  certonly)
    shift; webroot="" domain=""
    while [[ $# -gt 0 ]]; do case "$1" in -w) webroot="$2"; shift 2 ;; -d) domain="$2"; shift 2 ;; *) shift ;; esac; done
    token="tok$RANDOM$RANDOM"
    mkdir -p "$webroot/.well-known/acme-challenge"
    echo "$token.key" >"$webroot/.well-known/acme-challenge/$token"
    got=$(curl -fsS --max-time 5 "http://$domain/.well-known/acme-challenge/$token")
    rm -f "$webroot/.well-known/acme-challenge/$token"
    [[ "$got" == "$token.key" ]] || { echo "HTTP-01 challenge for $domain failed" >&2; exit 1; }
    mkdir -p "/etc/letsencrypt/live/$domain"
    install -m 0644 "$ca/$domain/fullchain.pem" "/etc/letsencrypt/live/$domain/fullchain.pem"
    install -m 0600 "$ca/$domain/privkey.pem" "/etc/letsencrypt/live/$domain/privkey.pem"
    echo "Successfully received certificate for $domain" ;;
  renew)
    for d in /etc/letsencrypt/live/*/; do
      domain=$(basename "$d")
      [[ -f "$ca/$domain/renewed/fullchain.pem" ]] || continue
      install -m 0644 "$ca/$domain/renewed/fullchain.pem" "$d/fullchain.pem"
      install -m 0600 "$ca/$domain/renewed/privkey.pem" "$d/privkey.pem"
      for h in /etc/letsencrypt/renewal-hooks/deploy/*; do [[ -x "$h" ]] && RENEWED_LINEAGE="$d" "$h"; done
    done ;;
  *) echo "fake certbot: $1 not supported" >&2; exit 1 ;;
esac
`

func TestSetupHostForReal(t *testing.T) {
	if os.Getenv("AGENTKEYS_E2E_IN_NS") == "" {
		if os.Geteuid() != 0 {
			e2eRequire(t, "runs the setup script as root in namespaces: needs root")
			return
		}
		nginxBin(t)
		if out, err := exec.Command("unshare", "-m", "-n", "--propagation", "private", "--", "sh", "-c",
			"mount -t tmpfs tmpfs /mnt && mkdir /mnt/u /mnt/w /mnt/m && mount -t overlay overlay -o lowerdir=/,upperdir=/mnt/u,workdir=/mnt/w /mnt/m").CombinedOutput(); err != nil {
			e2eRequire(t, "unshare -m -n with an overlay of / does not work here: "+strings.TrimSpace(string(out)))
			return
		}
		ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
		defer cancel()
		// A PID namespace too: whatever the test starts (services, nginx)
		// dies with it.
		cmd := exec.CommandContext(ctx, "unshare", "-m", "-n", "-p", "--fork", "--kill-child", "--mount-proc", "--propagation", "private", "--",
			os.Args[0], "-test.run", "^TestSetupHostForReal$", "-test.v", "-test.count=1")
		cmd.Env = append(os.Environ(), "AGENTKEYS_E2E_IN_NS=1", "AGENTKEYS_E2E_BIN_DIR="+filepath.Dir(bin["agentkeys"]))
		out, err := cmd.CombinedOutput()
		if err != nil || !strings.Contains(string(out), "--- PASS: TestSetupHostForReal") {
			t.Fatalf("in the namespaces: %v\n%s", err, out)
		}
		return
	}
	realHost(t)
}

// realHost runs inside the namespaces (see TestSetupHostForReal).
func realHost(t *testing.T) {
	must := func(name string, args ...string) string {
		t.Helper()
		out, err := exec.Command(name, args...).CombinedOutput()
		if err != nil {
			t.Fatalf("%s %s: %v\n%s", name, strings.Join(args, " "), err, out)
		}
		return string(out)
	}
	cwd, _ := os.Getwd()
	binDir := filepath.Dir(bin["agentkeys"])

	// The overlay: every write lands in a tmpfs (over /mnt, in this mount
	// namespace only) that dies with the namespace.
	base := "/mnt"
	must("mount", "-t", "tmpfs", "tmpfs", base)
	must("mkdir", base+"/u", base+"/w", base+"/m")
	must("mount", "-t", "overlay", "overlay", "-o", "lowerdir=/,upperdir="+base+"/u,workdir="+base+"/w", base+"/m")
	for _, d := range []string{"proc", "sys", "dev"} {
		must("mount", "--rbind", "/"+d, base+"/m/"+d)
	}
	must("mount", "-t", "tmpfs", "tmpfs", base+"/m/run")
	if err := syscall.Chroot(base + "/m"); err != nil {
		t.Fatal(err)
	}
	if err := os.Chdir(cwd); err != nil {
		t.Fatal(err)
	}
	os.Setenv("PATH", "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin")
	os.MkdirAll("/run/systemd/system", 0o755) // "systemd is running"
	os.MkdirAll("/var/log/nginx", 0o755)
	os.MkdirAll("/run/nginx", 0o755)

	// Two machines: this host (10.99.0.1) and the laptop/sandbox (10.99.0.2).
	must("ip", "link", "set", "lo", "up")
	must("ip", "netns", "add", "laptop")
	must("ip", "link", "add", "ak0", "type", "veth", "peer", "name", "ak1", "netns", "laptop")
	must("ip", "addr", "add", "10.99.0.1/24", "dev", "ak0")
	must("ip", "link", "set", "ak0", "up")
	must("ip", "netns", "exec", "laptop", "sh", "-c", "ip addr add 10.99.0.2/24 dev ak1 && ip link set ak1 up && ip link set lo up")
	const brokerHost, backendHost, idpHost = "broker.example.com", "agentkeys.example.com", "idp.example.test"
	if err := os.WriteFile("/etc/hosts", []byte("127.0.0.1 localhost\n10.99.0.1 "+brokerHost+" "+backendHost+" "+idpHost+"\n"), 0o644); err != nil {
		t.Fatal(err)
	}

	// The test's CA is trusted system-wide (as a public CA would be), the
	// provider runs on this host, the stand-ins are on PATH.
	ca := newTestCA(t)
	appendFile(t, "/etc/ssl/certs/ca-certificates.crt", readFile(t, ca.pemFile))
	caDir := t.TempDir()
	for _, h := range []string{brokerHost, backendHost} {
		ca.issueTo(t, filepath.Join(caDir, h), h)
	}
	idp := startNamedDeviceIdP(t, ca, "agentkeys-cli", "alice@idp", idpHost)
	if err := os.WriteFile("/usr/local/sbin/systemctl", []byte(fakeSystemctl), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile("/usr/local/bin/certbot", []byte(strings.ReplaceAll(fakeCertbot, "@CA_DIR@", caDir)), 0o755); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		exec.Command("systemctl", "stop", "agentkeys-broker.service", "agentkeys-backend.service", "nginx").Run()
	})
	calls := func() string { b, _ := os.ReadFile("/var/log/systemctl.calls"); return string(b) }
	since := func(mark int) string { return calls()[mark:] }
	script := filepath.Join(cwd, "..", "scripts", "setup-broker-host.sh")
	setup := func(args ...string) string {
		t.Helper()
		ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
		defer cancel()
		cmd := exec.CommandContext(ctx, "bash", append([]string{script}, args...)...)
		cmd.Env = []string{"PATH=" + os.Getenv("PATH"), "HOME=/root", "LC_ALL=C"}
		out, err := cmd.CombinedOutput()
		if err != nil {
			t.Fatalf("setup-broker-host.sh %v: %v\n%s\nbackend log:\n%s\nbroker log:\n%s", args, err, out, tryRead("/var/log/agentkeys-backend.log"), tryRead("/var/log/agentkeys-broker.log"))
		}
		return string(out)
	}

	// Debian's nginx package starts nginx with its default site.
	must("systemctl", "start", "nginx")

	// Install (phase 1): the runbook's sections 2 and 3a.
	install := []string{"--non-interactive", "--issuer-url", "https://" + brokerHost, "--with-nginx", "--with-certbot",
		"--login-oidc-issuer", idp, "--login-oidc-client-id", "agentkeys-cli", "--backend-host", backendHost, "--bin-dir", binDir}
	out := setup(install...)
	if c := calls(); !strings.Contains(c, "reload nginx") || !strings.Contains(c, "restart agentkeys-backend.service agentkeys-broker.service") ||
		!strings.Contains(out, "broker ready on 127.0.0.1:8091") {
		t.Fatalf("install: systemctl calls:\n%s\noutput:\n%s", c, out)
	}
	if _, err := os.Lstat("/etc/nginx/sites-enabled/default"); err == nil {
		t.Error("the default nginx site is still enabled")
	}

	// Certificates (the stand-in answers HTTP-01 through phase 1), then
	// phase 2 by re-running the script: nginx must be reloaded.
	for _, h := range []string{brokerHost, backendHost} {
		must("certbot", "certonly", "--webroot", "-w", "/var/www/certbot", "-d", h, "-m", "you@example.com", "--agree-tos", "--non-interactive")
	}
	mark := len(calls())
	out = setup(install...)
	if c := since(mark); !strings.Contains(c, "reload nginx") || strings.Contains(c, "restart ") || !strings.Contains(c, "start agentkeys-backend.service agentkeys-broker.service") {
		t.Fatalf("phase 2 re-run: want reload nginx and start (not restart); systemctl calls:\n%s\noutput:\n%s", c, out)
	}

	// From the laptop: the broker's discovery over TLS, then the master's
	// first login (device flow at the provider), an agent and a credential.
	laptop := func(exe string) string {
		w := filepath.Join(t.TempDir(), filepath.Base(exe))
		os.WriteFile(w, []byte("#!/bin/sh\nexec ip netns exec laptop '"+exe+"' \"$@\"\n"), 0o755)
		return w
	}
	disc := must("ip", "netns", "exec", "laptop", "curl", "-fsS", "https://"+brokerHost+"/.well-known/openid-configuration")
	if !strings.Contains(disc, `"issuer":"https://`+brokerHost+`"`) {
		t.Fatalf("discovery from the laptop: %s", disc)
	}
	master := newCLI(t, "https://"+backendHost)
	master.exe = laptop(bin["agentkeys"])
	if o, errs, code := master.run("", nil, "init", "--backend", "https://"+backendHost, "--oidc-issuer", idp, "--oidc-client-id", "agentkeys-cli"); code != 0 {
		t.Fatalf("init from the laptop: exit %d\n%s%s\nbackend log:\n%s", code, o, errs, tryRead("/var/log/agentkeys-backend.log"))
	}
	master.must("", "agent", "create", "ci-bot", "--services", "openrouter")
	secret := "sk-or-real-" + strconv.FormatInt(time.Now().UnixNano(), 36)
	master.must(secret, "store", "ci-bot", "openrouter")

	// A daemon on "another machine" pairs through the public name.
	pairSandbox(t, master, laptop(bin["agentkeys-daemon"]), nil, "https://"+backendHost, secret)
	// The backend saw the laptop's address (nginx's X-Forwarded-For,
	// believed from loopback only).
	if !strings.Contains(tryRead("/var/log/agentkeys-backend.log"), "10.99.0.2") {
		t.Errorf("the backend never logged the laptop's address 10.99.0.2")
	}

	// Upgrade (section 10): the runbook's re-run changes nothing and
	// restarts nothing; a changed setting restarts both services.
	mark = len(calls())
	setup("--non-interactive", "--bin-dir", binDir)
	if c := since(mark); strings.Contains(c, "restart ") || strings.Contains(c, "reload nginx") {
		t.Fatalf("unchanged upgrade restarted or reloaded:\n%s", c)
	}
	mark = len(calls())
	out = setup("--non-interactive", "--bin-dir", binDir, "--region", "eu-west-1")
	if c := since(mark); !strings.Contains(c, "restart agentkeys-backend.service agentkeys-broker.service") || !strings.Contains(out, "changed BROKER_AWS_REGION") {
		t.Fatalf("changed setting: systemctl calls:\n%s\noutput:\n%s", c, out)
	}
	if o := master.must("", "read", "ci-bot", "openrouter"); strings.TrimSpace(o) != secret {
		t.Fatalf("read after the upgrade = %q", o)
	}

	// Renewal: certbot's deploy hook reloads nginx, which then serves the
	// new certificate.
	ca.issueTo(t, filepath.Join(caDir, brokerHost, "renewed"), brokerHost)
	mark = len(calls())
	must("certbot", "renew")
	if c := since(mark); !strings.Contains(c, "reload nginx") {
		t.Fatalf("certbot renew did not reload nginx:\n%s", c)
	}
	// (nginx -s reload returns before the new workers answer: poll.)
	want := readFile(t, filepath.Join(caDir, brokerHost, "renewed", "fullchain.pem"))
	for deadline := time.Now().Add(10 * time.Second); ; {
		conn, err := tls.Dial("tcp", "10.99.0.1:443", &tls.Config{ServerName: brokerHost, RootCAs: certPool(ca)})
		if err != nil {
			t.Fatal(err)
		}
		served := conn.ConnectionState().PeerCertificates[0]
		conn.Close()
		if strings.Contains(want, strings.TrimSpace(string(pemOf(served.Raw)))) {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("nginx still serves the old certificate 10 s after the renewal")
		}
		time.Sleep(100 * time.Millisecond)
	}
}

func tryRead(path string) string { b, _ := os.ReadFile(path); return string(b) }

func pemOf(der []byte) []byte {
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})
}
