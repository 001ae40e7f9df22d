package daemon

import (
	"context"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/config"

	"github.com/agentkeys/agentkeys/internal/agentkeys"
	"github.com/agentkeys/agentkeys/internal/broker"
	"github.com/agentkeys/agentkeys/internal/sts/ststest"
)

var awsEndpointLine = regexp.MustCompile(`AWS credentials endpoint: (http://127\.0\.0\.1:\d+/\S+) .*token in (\S+),`)

// awsLifetime is how long the fake STS's credentials live in these tests:
// long enough for a client to use them, short enough to outlive.
const awsLifetime = 4 * time.Second

// startAWSDaemon runs the daemon binary with --aws-server against a real
// broker whose fake STS issues credentials living awsLifetime.
func startAWSDaemon(t *testing.T, extra ...string) (url, tokenFile string, fake *ststest.Fake, home string) {
	t.Helper()
	b := startBackend(t)
	home = t.TempDir()
	ks, sf := b.agent(t, home, "openrouter", broker.DefaultScopeService)
	b.store(t, ks.Wallet, "openrouter", "sk-or-"+agentkeys.NewToken().Reveal()[:20])
	brk, fake := startRealBroker(t, b.url)
	fake.Set(func(f *ststest.Fake) { f.Lifetime = awsLifetime })
	args := append([]string{"--session-file", sf, "--broker-url", brk.URL(), "--aws-server", "127.0.0.1:0"}, extra...)
	d := startDaemon(t, home, nil, args...)
	m := d.waitFor(awsEndpointLine, 30*time.Second)
	d.waitReady()
	if fi, err := os.Stat(m[2]); err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("token file %s: %v %v", m[2], fi, err)
	}
	return m[1], m[2], fake, home
}

// TestDaemonAWSServerGoSDKDefaultChain: the AWS SDK for Go's default
// credential chain, pointed at the daemon's endpoint by the two variables
// ECS sets, gets the credentials STS issued for the agent, and after they
// expire gets fresh ones (a new STS issue), not the expired ones.
func TestDaemonAWSServerGoSDKDefaultChain(t *testing.T) {
	url, tokFile, fake, _ := startAWSDaemon(t)
	for _, k := range []string{"AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN", "AWS_PROFILE", "AWS_CONTAINER_AUTHORIZATION_TOKEN",
		"AWS_CONTAINER_CREDENTIALS_RELATIVE_URI", "AWS_WEB_IDENTITY_TOKEN_FILE", "AWS_ROLE_ARN"} {
		t.Setenv(k, "")
		os.Unsetenv(k)
	}
	t.Setenv("AWS_CONTAINER_CREDENTIALS_FULL_URI", url)
	t.Setenv("AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE", tokFile)
	t.Setenv("AWS_REGION", "eu-west-3")
	ctx := context.Background()
	cfg, err := config.LoadDefaultConfig(ctx)
	if err != nil {
		t.Fatal(err)
	}
	first, err := cfg.Credentials.Retrieve(ctx)
	if err != nil {
		t.Fatal(err)
	}
	issuedAs := func(akid string) (ststest.Issued, bool) {
		for _, i := range fake.Issued() {
			if i.AccessKeyID == akid {
				return i, true
			}
		}
		return ststest.Issued{}, false
	}
	i1, ok := issuedAs(first.AccessKeyID)
	if !ok || first.SecretAccessKey != i1.SecretAccessKey || first.SessionToken != i1.SessionToken || !first.CanExpire {
		t.Fatalf("the SDK got %s, which STS did not issue", first.AccessKeyID)
	}
	// Let them expire (the SDK's own cache treats them as expired even
	// earlier); the SDK's next Retrieve must bring fresh, valid ones.
	time.Sleep(time.Until(i1.Expiration) + 100*time.Millisecond)
	second, err := cfg.Credentials.Retrieve(ctx)
	if err != nil {
		t.Fatal(err)
	}
	i2, ok := issuedAs(second.AccessKeyID)
	if !ok || second.AccessKeyID == first.AccessKeyID || !i2.Expiration.After(time.Now()) {
		t.Fatalf("after expiry the SDK has %s (issued: %v, expires %s), first was %s", second.AccessKeyID, ok, i2.Expiration, first.AccessKeyID)
	}
}

// botoScript runs in one long-lived python3 process: it gets credentials
// through boto3's default chain, waits until they have expired, and gets
// them again from the same session.
const botoScript = `
import boto3, json, time, datetime
s = boto3.Session()
c = s.get_credentials()
f1 = c.get_frozen_credentials()
e1 = c._expiry_time
time.sleep(max(0, (e1 - datetime.datetime.now(datetime.timezone.utc)).total_seconds()) + 0.2)
f2 = c.get_frozen_credentials()
e2 = c._expiry_time
print(json.dumps({"first": f1.access_key, "first_exp": e1.isoformat(), "second": f2.access_key, "second_exp": e2.isoformat(),
  "second_valid": e2 > datetime.datetime.now(datetime.timezone.utc), "method": c.method}))
`

// TestDaemonAWSServerBoto3RefreshAcrossExpiry: Debian's python3-boto3,
// run by the daemon itself (agentkeys-daemon run, which points it at the
// endpoint), obtains the agent's credentials from the daemon's endpoint
// and, inside that one long-running process, refreshes them across their
// expiry.
func TestDaemonAWSServerBoto3RefreshAcrossExpiry(t *testing.T) {
	if _, err := exec.LookPath("python3"); err != nil {
		t.Fatal("python3 with boto3 is needed (scripts/deps.sh installs python3-boto3)")
	}
	_, _, fake, home := startAWSDaemon(t)
	sock := filepath.Join(home, "run", "agentkeys", "agentkeys.sock")
	cmd := commandWithEnv(home, daemonBin, "run", "--socket", sock, "--", "python3", "-c", botoScript)
	// Stale static keys in the caller's environment must not shadow the
	// endpoint the daemon gives the command.
	cmd.Env = append(cmd.Env, "AWS_ACCESS_KEY_ID=AKIASTALE", "AWS_SECRET_ACCESS_KEY=stale", "AWS_PROFILE=stale",
		"AWS_CONFIG_FILE="+filepath.Join(home, "none"), "AWS_SHARED_CREDENTIALS_FILE="+filepath.Join(home, "none"), "AWS_EC2_METADATA_DISABLED=true")
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("python3: %v\n%s", err, out)
	}
	var r struct {
		First, Second string
		SecondValid   bool `json:"second_valid"`
		Method        string
	}
	if err := json.Unmarshal(out, &r); err != nil {
		t.Fatalf("%v: %s", err, out)
	}
	known := map[string]bool{}
	for _, i := range fake.Issued() {
		known[i.AccessKeyID] = true
	}
	if r.Method != "container-role" || !known[r.First] || !known[r.Second] || r.First == r.Second || !r.SecondValid {
		t.Fatalf("boto3: %s (STS issued %v)", out, known)
	}
}
