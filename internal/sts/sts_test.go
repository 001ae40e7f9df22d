package sts_test

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"log/slog"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/agentkeys/agentkeys/internal/sts"
	"github.com/agentkeys/agentkeys/internal/sts/ststest"
)

const (
	wallet  = "0xabcdefabcdefabcdefabcdefabcdefabcdef0123"
	roleARN = "arn:aws:iam::000000000000:role/agentkeys-data-role"
)

// isolate keeps the developer's AWS configuration out of the test.
func isolate(t *testing.T) {
	dir := t.TempDir()
	t.Setenv("AWS_CONFIG_FILE", filepath.Join(dir, "config"))
	t.Setenv("AWS_SHARED_CREDENTIALS_FILE", filepath.Join(dir, "credentials"))
	t.Setenv("AWS_EC2_METADATA_DISABLED", "true")
	for _, v := range []string{"AWS_PROFILE", "AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN", "AWS_WEB_IDENTITY_TOKEN_FILE", "AWS_ROLE_ARN"} {
		t.Setenv(v, "")
	}
}

func randKeys() (string, string) {
	b := make([]byte, 28)
	rand.Read(b)
	h := strings.ToUpper(hex.EncodeToString(b))
	return "AKIA" + h[:16], hex.EncodeToString(b)
}

func newClient(t *testing.T, fake *ststest.Fake) (*sts.Client, string) {
	t.Helper()
	isolate(t)
	akid, secret := randKeys()
	c, err := sts.New(context.Background(), sts.Config{Region: "us-east-1", AccessKeyID: akid, SecretAccessKey: secret, Endpoint: fake.URL})
	if err != nil {
		t.Fatal(err)
	}
	return c, akid
}

func TestAssumeRoleSendsWalletTags(t *testing.T) {
	fake := ststest.New()
	defer fake.Close()
	c, akid := newClient(t, fake)
	name := sts.SessionName(wallet)
	creds, err := c.AssumeRole(context.Background(), sts.AssumeRequest{
		RoleARN: roleARN, SessionName: name, Duration: 2 * time.Hour, Wallet: wallet, Kind: "agent", Access: "read",
	})
	if err != nil {
		t.Fatal(err)
	}
	if p := fake.Problems(); len(p) > 0 {
		t.Fatalf("fake STS rejected the request: %v", p)
	}
	calls := fake.Calls()
	if len(calls) != 1 {
		t.Fatalf("%d AssumeRole calls", len(calls))
	}
	call := calls[0]
	if call.RoleArn != roleARN || call.RoleSessionName != name || call.DurationSeconds != 7200 {
		t.Errorf("call = %+v", call)
	}
	if call.AccessKeyID != akid {
		t.Errorf("signed with %s, want the static key %s", call.AccessKeyID, akid)
	}
	if call.Tags[sts.TagWallet] != wallet || call.Tags[sts.TagKind] != "agent" || call.Tags["agentkeys_access"] != "read" {
		t.Errorf("tags = %v", call.Tags)
	}
	if !slices.Contains(call.TransitiveTagKeys, sts.TagWallet) || !slices.Contains(call.TransitiveTagKeys, "agentkeys_access") {
		t.Errorf("transitive tag keys = %v", call.TransitiveTagKeys)
	}
	issued := fake.Issued()[0]
	if creds.AccessKeyID != issued.AccessKeyID || creds.SecretAccessKey != issued.SecretAccessKey ||
		creds.SessionToken != issued.SessionToken || !creds.Expiration.Equal(issued.Expiration) {
		t.Errorf("credentials %v do not match what STS issued", creds)
	}
}

// A duration STS would refuse is refused before any request: the broker
// caps durations to the session's remaining lifetime and must never send
// one below STS's minimum (or silently get STS's default hour instead).
func TestAssumeRoleRefusesOutOfRangeDuration(t *testing.T) {
	fake := ststest.New()
	defer fake.Close()
	c, _ := newClient(t, fake)
	for _, d := range []time.Duration{0, 2 * time.Second, 899 * time.Second, 43201 * time.Second} {
		_, err := c.AssumeRole(context.Background(), sts.AssumeRequest{RoleARN: roleARN, SessionName: sts.SessionName(wallet), Duration: d, Wallet: wallet})
		if err == nil || !strings.Contains(err.Error(), "duration") {
			t.Errorf("duration %v: err = %v", d, err)
		}
	}
	if n := len(fake.Calls()); n != 0 {
		t.Fatalf("%d AssumeRole calls reached STS", n)
	}
}

func TestAssumeRoleFailure(t *testing.T) {
	fake := ststest.New()
	defer fake.Close()
	fake.Set(func(f *ststest.Fake) { f.FailAssume = "simulated AccessDenied" })
	c, _ := newClient(t, fake)
	_, err := c.AssumeRole(context.Background(), sts.AssumeRequest{RoleARN: roleARN, SessionName: sts.SessionName(wallet), Duration: time.Hour, Wallet: wallet})
	if err == nil || !strings.Contains(err.Error(), "simulated AccessDenied") || sts.ErrorCode(err) != "AccessDenied" {
		t.Fatalf("err = %v (code %q)", err, sts.ErrorCode(err))
	}
}

func TestCallerIdentity(t *testing.T) {
	fake := ststest.New()
	defer fake.Close()
	c, _ := newClient(t, fake)
	id, err := c.CallerIdentity(context.Background())
	if err != nil || id.Account != "000000000000" || !strings.HasPrefix(id.ARN, "arn:aws:iam::") {
		t.Fatalf("CallerIdentity = %+v, %v", id, err)
	}
	fake.Set(func(f *ststest.Fake) { f.FailIdentity = "no credentials" })
	if _, err := c.CallerIdentity(context.Background()); err == nil {
		t.Fatal("failing GetCallerIdentity reported success")
	}
	if p := fake.Problems(); len(p) > 0 {
		t.Fatalf("fake STS rejected requests: %v", p)
	}
}

func TestDefaultChainFromEnvironment(t *testing.T) {
	fake := ststest.New()
	defer fake.Close()
	isolate(t)
	akid, secret := randKeys()
	t.Setenv("AWS_ACCESS_KEY_ID", akid)
	t.Setenv("AWS_SECRET_ACCESS_KEY", secret)
	c, err := sts.New(context.Background(), sts.Config{Region: "eu-west-1", Endpoint: fake.URL})
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(c.CredentialSource(), "default chain") {
		t.Errorf("source = %s", c.CredentialSource())
	}
	if _, err := c.AssumeRole(context.Background(), sts.AssumeRequest{RoleARN: roleARN, SessionName: sts.SessionName(wallet), Duration: time.Hour, Wallet: wallet}); err != nil {
		t.Fatal(err)
	}
	if got := fake.Calls()[0].AccessKeyID; got != akid {
		t.Fatalf("signed with %s, want the environment's key", got)
	}
}

func TestStaticKeysBothOrNeither(t *testing.T) {
	isolate(t)
	for _, cfg := range []sts.Config{
		{Region: "us-east-1", AccessKeyID: "AKIAEXAMPLE"},
		{Region: "us-east-1", SecretAccessKey: "x"},
	} {
		_, err := sts.New(context.Background(), cfg)
		if err == nil || !strings.Contains(err.Error(), "set together") {
			t.Errorf("New(%+v) = %v", cfg.AccessKeyID, err)
		}
		if err != nil && strings.Contains(err.Error(), "AKIAEXAMPLE") {
			t.Errorf("error quotes the key: %v", err)
		}
	}
}

func TestHangingSTSTimesOut(t *testing.T) {
	fake := ststest.New()
	defer fake.Close()
	fake.Set(func(f *ststest.Fake) { f.Hang = true })
	c, _ := newClient(t, fake)
	ctx, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
	defer cancel()
	start := time.Now()
	if _, err := c.AssumeRole(ctx, sts.AssumeRequest{RoleARN: roleARN, SessionName: "agentkeys-x", Duration: time.Hour, Wallet: wallet}); err == nil {
		t.Fatal("hanging STS reported success")
	}
	if d := time.Since(start); d > 5*time.Second {
		t.Fatalf("AssumeRole took %v despite a 200ms deadline", d)
	}
}

var sessionNameRE = regexp.MustCompile(`^[\w+=,.@-]{2,64}$`)

func TestSessionName(t *testing.T) {
	n := sts.SessionName(wallet)
	if !strings.HasPrefix(n, "agentkeys-"+wallet+"-") || len(n) > 64 || !sessionNameRE.MatchString(n) {
		t.Fatalf("SessionName(wallet) = %q (%d chars)", n, len(n))
	}
	if sts.SessionName(wallet) == n {
		t.Fatal("two session names for one wallet collide")
	}
	for _, w := range []string{"", "0x/evil wallet/../", strings.Repeat("a", 200), "0xé☃\x00\n", "a+b=c,d.e@f_g-h"} {
		n := sts.SessionName(w)
		if len(n) > 64 || !sessionNameRE.MatchString(n) || !strings.HasPrefix(n, "agentkeys-") || strings.Count(n, "-") < 2 {
			t.Errorf("SessionName(%q) = %q", w, n)
		}
	}
	if n := sts.SessionName(""); !strings.HasPrefix(n, "agentkeys--") {
		t.Errorf("SessionName(\"\") = %q", n)
	}
	if n := sts.SessionName("a+b=c,d.e@f_g-h"); !strings.Contains(n, "a+b=c,d.e@f_g-h") {
		t.Errorf("allowed characters dropped: %q", n)
	}
}

func TestCredentialsNeverPrintSecrets(t *testing.T) {
	c := sts.Credentials{AccessKeyID: "ASIAVISIBLE", SecretAccessKey: "s3cr3t-" + hex.EncodeToString([]byte("x")), SessionToken: "tok-" + hex.EncodeToString([]byte("y")), Expiration: time.Now()}
	var buf bytes.Buffer
	slog.New(slog.NewJSONHandler(&buf, nil)).Info("minted", "creds", c)
	out := buf.String() + fmt.Sprintf("%v %+v %#v %s", c, c, c, c)
	if strings.Contains(out, c.SecretAccessKey) || strings.Contains(out, c.SessionToken) {
		t.Fatalf("secret printed: %s", out)
	}
	if !strings.Contains(out, "ASIAVISIBLE") {
		t.Fatalf("access key id should stay visible for correlation: %s", out)
	}
}
