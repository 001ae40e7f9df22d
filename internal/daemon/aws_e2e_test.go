package daemon

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/config"

	"github.com/agentkeys/agentkeys/internal/agentkeys"
	"github.com/agentkeys/agentkeys/internal/keychain"
)

// TestAWSSDKCredentialProcess: the stock AWS SDK for Go runs the built
// binary as its credential_process and accepts what it prints.
func TestAWSSDKCredentialProcess(t *testing.T) {
	tok := agentkeys.NewToken()
	fb := newFakeBroker(t, tok.Reveal(), time.Hour)
	dir := t.TempDir()
	sf := filepath.Join(dir, "agent.json")
	if err := keychain.WriteSessionFile(sf, keychain.Session{Token: tok, Wallet: agentkeys.NewWallet(), Backend: "http://127.0.0.1:8090"}); err != nil {
		t.Fatal(err)
	}
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
}

// TestSocketBrokerMethods: aws_credentials and oidc_token through the
// running daemon, and credential-process via its socket.
func TestSocketBrokerMethods(t *testing.T) {
	b := startBackend(t)
	home := t.TempDir()
	ks, sf := b.agent(t, home, "openrouter")
	fb := newFakeBroker(t, ks.Token.Reveal(), time.Hour)
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
}
