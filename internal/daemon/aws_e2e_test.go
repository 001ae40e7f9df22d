package daemon

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/config"

	"github.com/agentkeys/agentkeys/internal/keychain"
)

// TestAWSSDKCredentialProcess: the stock AWS SDK for Go runs the built
// binary as its credential_process and accepts what it prints.
func TestAWSSDKCredentialProcess(t *testing.T) {
	b, dir, ks, sf := startBackendAgent(t, "aws")
	tok := ks.Token
	fb := newFakeBrokerFor(t, b, time.Hour)
	cfgFile := filepath.Join(dir, "config")
	credsFile := filepath.Join(dir, "credentials")
	os.WriteFile(credsFile, nil, 0o600)
	profile := "[profile agent]\ncredential_process = " + daemonBin + " aws credential-process --session-file " + sf + " --broker-url " + fb.URL + "\nregion = us-east-1\n"
	if err := os.WriteFile(cfgFile, []byte(profile), 0o600); err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	cfg, err := config.LoadDefaultConfig(ctx, config.WithSharedConfigFiles([]string{cfgFile}), config.WithSharedCredentialsFiles([]string{credsFile}),
		config.WithSharedConfigProfile("agent"))
	if err != nil {
		t.Fatal(err)
	}
	creds, err := cfg.Credentials.Retrieve(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(creds.AccessKeyID, "ASIAFAKE") || creds.SecretAccessKey == "" || creds.SessionToken != "fake-session-token" || !creds.CanExpire ||
		creds.Expires.Before(time.Now().Add(50*time.Minute)) {
		t.Fatalf("credentials %+v", creds)
	}
	if strings.Contains(profile, tok.Reveal()) {
		t.Fatal("session token in the profile")
	}
	assertUselessAtBackend(t, b, ks, fb.Bearers())
}

// TestSocketBrokerMethods: aws_credentials and oidc_token through the
// running daemon, and credential-process via its socket.
func TestSocketBrokerMethods(t *testing.T) {
	b, home, ks, sf := startBackendAgent(t, "openrouter")
	fb := newFakeBrokerFor(t, b, time.Hour)
	sock := filepath.Join(home, "run", "agentkeys", "agentkeys.sock")
	tokFile := filepath.Join(home, "web-identity-token")
	d := startDaemon(t, home, nil, "--session-file", sf, "--broker-url", fb.URL, "--web-identity-token-file", tokFile)
	d.waitReady()
	ctx := context.Background()
	c := dial(t, sock) // the default path under $XDG_RUNTIME_DIR
	for range 3 {
		a, err := c.AWSCredentials(ctx)
		if err != nil || !strings.HasPrefix(a.AccessKeyID, "ASIAFAKE") {
			t.Fatalf("%+v %v", a, err)
		}
	}
	if n := fb.awsMints.Load(); n != 1 {
		t.Fatalf("%d AWS mints, want 1", n)
	}
	o, err := c.OIDCToken(ctx)
	if err != nil || !strings.HasPrefix(o.JWT, "eyJ") {
		t.Fatalf("%+v %v", o, err)
	}
	jwt, err := os.ReadFile(tokFile)
	if err != nil || !strings.HasPrefix(string(jwt), "eyJ") {
		t.Fatalf("token file: %q %v", jwt, err)
	}
	cmd := commandWithEnv(home, daemonBin, "aws", "credential-process", "--socket", sock)
	out, err := cmd.Output()
	if err != nil || !strings.Contains(string(out), `"Version":1`) {
		t.Fatalf("credential-process via socket: %s %v", out, err)
	}
	if strings.Contains(d.stderr(), "fake-secret-access-key") || strings.Contains(d.stderr(), string(jwt)) {
		t.Fatal("broker secrets on stderr")
	}
	// The daemon's AWS and OIDC fetches sent the broker nothing that works
	// at the backend.
	assertUselessAtBackend(t, b, ks, fb.Bearers())
}

// TestDaemonBrokerBinding: a daemon whose session file names a broker uses
// it without --broker-url, and refuses to start with another one.
func TestDaemonBrokerBinding(t *testing.T) {
	b, home, ks, sf := startBackendAgent(t, "openrouter")
	fb := newFakeBrokerFor(t, b, time.Hour)
	ks.Broker = fb.URL
	if err := keychain.WriteSessionFile(sf, ks); err != nil {
		t.Fatal(err)
	}
	stray := newFakeBrokerFunc(t, func(string) bool { return true }, time.Hour)
	d := startDaemon(t, home, nil, "--session-file", sf, "--broker-url", stray.URL, "--no-socket", "--stdio")
	if code := d.wait(30 * time.Second); code == 0 {
		t.Fatalf("daemon started with a broker URL other than its session's; stderr:\n%s", d.stderr())
	}
	if !strings.Contains(d.stderr(), "bound to broker") {
		t.Fatalf("stderr does not explain the refusal:\n%s", d.stderr())
	}
	if n := len(stray.Bearers()); n != 0 {
		t.Fatalf("the stray broker received %d requests", n)
	}

	sock := filepath.Join(home, "run", "agentkeys", "agentkeys.sock")
	d = startDaemon(t, home, nil, "--session-file", sf)
	d.waitReady()
	if a, err := dial(t, sock).AWSCredentials(context.Background()); err != nil || !strings.HasPrefix(a.AccessKeyID, "ASIAFAKE") {
		t.Fatalf("AWS through the bound broker: %+v %v", a, err)
	}
	assertUselessAtBackend(t, b, ks, fb.Bearers())
}
