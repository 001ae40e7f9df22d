package e2e

// Federation end to end: the broker's OIDC tokens are
// exchanged for S3 credentials by software nobody here wrote — the SeaweedFS
// S3 gateway with its STS (AssumeRoleWithWebIdentity) — and the per-wallet
// policy really pins each wallet to its own prefix.
//
// The weed binary is built outside this module by
// scripts/ci/build-seaweedfs.sh; give its path in AGENTKEYS_WEED_BIN. Without
// it the test skips, unless AGENTKEYS_REQUIRE_E2E=1.

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/aws/aws-sdk-go-v2/service/sts"
	"github.com/aws/smithy-go"
	"github.com/go-jose/go-jose/v4"
	"github.com/go-jose/go-jose/v4/jwt"

	"github.com/agentkeys/agentkeys/internal/agentkeys"
	"github.com/agentkeys/agentkeys/internal/backendclient"
	"github.com/agentkeys/agentkeys/internal/oidc/oidctest"
)

const (
	fedBucket  = "agentkeys-data"
	fedRoleARN = "arn:aws:iam::123456789012:role/agentkeys-data-role"
	// fedBareRoleARN trusts the provider without the aud/sub conditions, so
	// that the provider's own audience check is what a wrong audience meets.
	fedBareRoleARN = "arn:aws:iam::123456789012:role/agentkeys-bare-role"
	fedProvider    = "agentkeys"
	fedAudience    = "sts.amazonaws.com"
)

// e2eRequire skips the test with reason, or fails it when
// AGENTKEYS_REQUIRE_E2E=1 (CI), so a missing peer cannot pass silently.
func e2eRequire(t *testing.T, reason string) {
	t.Helper()
	if os.Getenv("AGENTKEYS_REQUIRE_E2E") == "1" {
		t.Fatal(reason + " — AGENTKEYS_REQUIRE_E2E=1 forbids skipping")
	}
	t.Skip(reason)
}

// fedStack is a backend and a broker for federation tests: like startStack,
// but the broker re-reads its key file every second so that rotations show
// up at once, and the key file path is known.
type fedStack struct {
	backendURL, brokerURL string
	keyFile, auditDB      string
	broker                *proc
}

func startFedStack(t *testing.T) *fedStack {
	t.Helper()
	dir := t.TempDir()
	s := &fedStack{ // where startBroker puts them
		keyFile: filepath.Join(dir, "broker", "oidc-keypair.json"),
		auditDB: filepath.Join(dir, "broker", "audit.sqlite"),
	}
	s.backendURL, _ = startBackend(t, dir, nil)
	s.brokerURL, s.broker = startBroker(t, s.backendURL, dir, "BROKER_VALIDATE_CACHE_SECONDS=0", "BROKER_OIDC_KEY_RELOAD_SECONDS=1")
	return s
}

// agents creates a master session and one agent per name, each scoped to
// "aws" so that it may mint.
func (s *fedStack) agents(t *testing.T, ctx context.Context, names ...string) []backendclient.Session {
	t.Helper()
	c, master := loginMaster(t, s.backendURL, "federation-master")
	var out []backendclient.Session
	for range names {
		out = append(out, newAgent(t, ctx, c, master.Token, "aws"))
	}
	return out
}

// agent creates one more agent with scope under a master session.
func (s *fedStack) agent(t *testing.T, ctx context.Context, scope agentkeys.Scope) backendclient.Session {
	t.Helper()
	c, master := loginMaster(t, s.backendURL, "federation-master")
	a, err := c.CreateChild(ctx, master.Token, scope, 0)
	if err != nil {
		t.Fatal(err)
	}
	return a
}

// mintJWT asks the broker for an ID token for the agent's wallet.
func (s *fedStack) mintJWT(t *testing.T, tok agentkeys.Token) string {
	t.Helper()
	status, body := mint(t, s.brokerURL+"/v1/mint-oidc-jwt", tok)
	if status != 200 {
		t.Fatalf("mint-oidc-jwt → %d %v", status, body)
	}
	return body["jwt"].(string)
}

// brokerCLI runs `agentkeys-broker args…` (the operator commands the
// runbook documents) and returns its stdout.
func brokerCLI(t *testing.T, args ...string) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, bin["agentkeys-broker"], args...)
	cmd.Env = []string{"PATH=" + os.Getenv("PATH"), "HOME=" + t.TempDir()}
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	if err := cmd.Run(); err != nil {
		t.Fatalf("agentkeys-broker %s: %v\n%s%s", strings.Join(args, " "), err, out.String(), errb.String())
	}
	return out.String()
}

// keyFileEntry mirrors one key of the broker's key set file (internal/oidc
// file format, version 1). The test reads it the way an attacker with a
// stolen file, or an operator's tool, would.
type keyFileEntry struct {
	KID           string `json:"kid"`
	State         string `json:"state"`
	CreatedAt     int64  `json:"created_at"`
	ActivatedAt   int64  `json:"activated_at,omitempty"`
	RetiredAt     int64  `json:"retired_at,omitempty"`
	PrivateKeyPEM string `json:"private_key_pem"`
}

type keyFileSet struct {
	Version int            `json:"version"`
	Keys    []keyFileEntry `json:"keys"`
}

func readKeyFile(t *testing.T, path string) keyFileSet {
	t.Helper()
	raw, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var ks keyFileSet
	if err := json.Unmarshal(raw, &ks); err != nil {
		t.Fatalf("key file: %v", err)
	}
	return ks
}

// brokerKey returns the private key and kid of the key in state.
func brokerKey(t *testing.T, path, state string) (*ecdsa.PrivateKey, string) {
	t.Helper()
	for _, k := range readKeyFile(t, path).Keys {
		if k.State != state {
			continue
		}
		block, _ := pem.Decode([]byte(k.PrivateKeyPEM))
		if block == nil {
			t.Fatal("key file: no PEM block")
		}
		priv, err := x509.ParsePKCS8PrivateKey(block.Bytes)
		if err != nil {
			t.Fatal(err)
		}
		return priv.(*ecdsa.PrivateKey), k.KID
	}
	t.Fatalf("key file has no %s key", state)
	return nil, ""
}

// tokenKID returns the kid in a JWT's header.
func tokenKID(t *testing.T, raw string) string {
	t.Helper()
	tok, err := jwt.ParseSigned(raw, []jose.SignatureAlgorithm{jose.ES256})
	if err != nil || len(tok.Headers) != 1 {
		t.Fatalf("parse JWT: %v", err)
	}
	return tok.Headers[0].KeyID
}

// forgeOpts describes a token signed outside the broker.
type forgeOpts struct {
	issuer, wallet, audience string
	iat, exp                 time.Time
}

// forgeJWT signs a token shaped exactly like the broker's with key/kid.
func forgeJWT(t *testing.T, key *ecdsa.PrivateKey, kid string, o forgeOpts) string {
	t.Helper()
	signer, err := jose.NewSigner(jose.SigningKey{Algorithm: jose.ES256, Key: key},
		(&jose.SignerOptions{}).WithType("JWT").WithHeader("kid", kid))
	if err != nil {
		t.Fatal(err)
	}
	var jti [16]byte
	rand.Read(jti[:])
	claims := map[string]any{
		"iss":                   o.issuer,
		"sub":                   "agentkeys:agent:" + o.wallet,
		"aud":                   o.audience, // a single audience is a string, as the broker writes it
		"iat":                   o.iat.Unix(),
		"nbf":                   o.iat.Unix(),
		"exp":                   o.exp.Unix(),
		"jti":                   hex.EncodeToString(jti[:]),
		"agentkeys_user_wallet": o.wallet,
		"https://aws.amazon.com/tags": map[string]any{
			"principal_tags":      map[string][]string{"agentkeys_user_wallet": {o.wallet}},
			"transitive_tag_keys": []string{"agentkeys_user_wallet"},
		},
	}
	raw, err := jwt.Signed(signer).Claims(claims).Serialize()
	if err != nil {
		t.Fatal(err)
	}
	return raw
}

// fedIAMConfig is SeaweedFS's -s3.iam.config: the broker as OIDC provider,
// a role whose trust policy names that provider, and the data policy of
// deploy/aws/data-policy.json (per-wallet prefix, writes denied unless
// agentkeys_access is write) with each AWS session tag
// (aws:PrincipalTag/<key>, as a ${…} variable or a condition key) replaced
// by SeaweedFS's jwt:<key> claim (SeaweedFS reads principal tags from a flat
// claim; the broker keeps AWS's nested format and also emits both tags as
// plain top-level claims).
func fedIAMConfig(t *testing.T, issuer string) []byte {
	t.Helper()
	tmpl, err := os.ReadFile(filepath.Join("..", "deploy", "aws", "data-policy.json"))
	if err != nil {
		t.Fatal(err)
	}
	doc := strings.ReplaceAll(string(tmpl), "aws:PrincipalTag/", "jwt:")
	doc = strings.ReplaceAll(doc, "@BUCKET@", fedBucket)
	for _, want := range []string{"${jwt:agentkeys_user_wallet}", `"jwt:agentkeys_access"`} {
		if !strings.Contains(doc, want) {
			t.Fatalf("deploy/aws/data-policy.json no longer uses the session tag behind %s", want)
		}
	}
	var policyDoc map[string]any
	if err := json.Unmarshal([]byte(doc), &policyDoc); err != nil {
		t.Fatalf("deploy/aws/data-policy.json: %v", err)
	}
	signingKey := make([]byte, 32)
	rand.Read(signingKey)
	cfg := map[string]any{
		"sts": map[string]any{
			"tokenDuration": "1h", "maxSessionLength": "12h", "issuer": "seaweedfs-sts",
			"signingKey": signingKey, // []byte → base64, as SeaweedFS expects
		},
		"policy": map[string]any{"defaultEffect": "Deny", "storeType": "memory"},
		"providers": []any{map[string]any{
			"name": fedProvider, "type": "oidc", "enabled": true,
			"config": map[string]any{
				"issuer":   issuer,
				"clientId": fedAudience,
				// Re-read the JWKS every second so that a key the broker
				// stopped publishing is forgotten at once.
				"jwksCacheTTLSeconds": 1,
			},
		}},
		"policies": []any{map[string]any{"name": "agentkeys-data", "document": policyDoc}},
		"roles": []any{map[string]any{
			"roleName": "agentkeys-bare-role", "roleArn": fedBareRoleARN,
			"attachedPolicies": []string{"agentkeys-data"},
			"trustPolicy": map[string]any{
				"Version": "2012-10-17",
				"Statement": []any{map[string]any{
					"Effect": "Allow", "Principal": map[string]any{"Federated": fedProvider},
					"Action": []string{"sts:AssumeRoleWithWebIdentity"},
				}},
			},
		}, map[string]any{
			"roleName": "agentkeys-data-role", "roleArn": fedRoleARN,
			"attachedPolicies": []string{"agentkeys-data"},
			"trustPolicy": map[string]any{
				"Version": "2012-10-17",
				"Statement": []any{map[string]any{
					"Effect":    "Allow",
					"Principal": map[string]any{"Federated": fedProvider},
					"Action":    []string{"sts:AssumeRoleWithWebIdentity"},
					// The AWS recipe's aud/sub conditions, under SeaweedFS's
					// condition-key names.
					"Condition": map[string]any{
						"StringEquals": map[string]any{"oidc:aud": fedAudience},
						"StringLike":   map[string]any{"oidc:sub": "agentkeys:agent:*"},
					},
				}},
			},
		}},
	}
	out, err := json.MarshalIndent(cfg, "", "  ")
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// weedServer is a SeaweedFS master+volume+filer+S3 on loopback ports.
type weedServer struct {
	bin           string
	s3URL         string
	filerURL      string // the filer's HTTP API (no S3 policy applies there)
	master, filer string // host:port.grpcPort, as weed shell wants them
	log           string
	dir           string
	args          []string
	grpcSock      string
	stopFn        func()
}

func startWeed(t *testing.T, weedBin, iamConfig string) *weedServer {
	t.Helper()
	dir := t.TempDir()
	p := map[string]int{}
	for _, n := range []string{"master", "master.grpc", "volume", "volume.grpc", "filer", "filer.grpc", "s3", "s3.grpc"} {
		p[n] = freePort(t)
	}
	w := &weedServer{
		bin:      weedBin,
		s3URL:    fmt.Sprintf("http://127.0.0.1:%d", p["s3"]),
		filerURL: fmt.Sprintf("http://127.0.0.1:%d", p["filer"]),
		master:   fmt.Sprintf("127.0.0.1:%d.%d", p["master"], p["master.grpc"]),
		filer:    fmt.Sprintf("127.0.0.1:%d.%d", p["filer"], p["filer.grpc"]),
		log:      filepath.Join(dir, "weed.log"),
		dir:      dir,
		grpcSock: fmt.Sprintf("/tmp/seaweedfs-s3-grpc-%d.sock", p["s3.grpc"]),
	}
	w.args = []string{"server",
		"-ip", "127.0.0.1", "-ip.bind", "127.0.0.1", "-dir", filepath.Join(dir, "data"),
		"-master.port", strconv.Itoa(p["master"]), "-master.port.grpc", strconv.Itoa(p["master.grpc"]),
		"-master.volumeSizeLimitMB", "64",
		"-volume.port", strconv.Itoa(p["volume"]), "-volume.port.grpc", strconv.Itoa(p["volume.grpc"]),
		"-volume.max", "4", "-volume.preStopSeconds", "0",
		"-filer", "-filer.port", strconv.Itoa(p["filer"]), "-filer.port.grpc", strconv.Itoa(p["filer.grpc"]),
		"-s3", "-s3.port", strconv.Itoa(p["s3"]), "-s3.port.grpc", strconv.Itoa(p["s3.grpc"]),
		"-s3.port.iceberg", "0", "-s3.port.lance", "0",
		"-s3.iam.config", iamConfig,
	}
	if err := os.MkdirAll(filepath.Join(dir, "data"), 0o700); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		w.stop()
		os.Remove(w.grpcSock)
		if t.Failed() {
			t.Logf("weed log (tail):\n%s", tailFile(w.log, 4000))
		}
	})
	w.run(t)
	return w
}

// run starts the server (again) on the same ports and data directory and
// waits until its S3 gateway answers.
func (w *weedServer) run(t *testing.T) {
	t.Helper()
	logf, err := os.OpenFile(w.log, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o600)
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(w.bin, w.args...)
	cmd.Dir = w.dir
	cmd.Env = []string{"PATH=" + os.Getenv("PATH"), "HOME=" + w.dir, "TMPDIR=" + w.dir}
	cmd.Stdout, cmd.Stderr = logf, logf
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- cmd.Wait(); logf.Close() }()
	w.stopFn = func() {
		cmd.Process.Signal(syscall.SIGTERM)
		select {
		case err := <-done:
			done <- err
		case <-time.After(20 * time.Second):
			cmd.Process.Kill()
		}
	}
	deadline := time.Now().Add(90 * time.Second)
	for {
		resp, err := http.Get(w.s3URL + "/")
		if err == nil {
			io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
			return
		}
		select {
		case err := <-done:
			done <- err
			t.Fatalf("weed exited early: %v\n%s", err, tailFile(w.log, 4000))
		case <-time.After(200 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			t.Fatalf("weed S3 gateway did not answer within 90 s\n%s", tailFile(w.log, 4000))
		}
	}
}

// stop ends the server (SIGTERM, then SIGKILL after 20 s).
func (w *weedServer) stop() {
	if w.stopFn != nil {
		w.stopFn()
		w.stopFn = nil
	}
}

// shell runs one `weed shell` command (the way the runbook's test setup
// creates a bucket) and returns its output.
func (w *weedServer) shell(t *testing.T, command string) (string, error) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 45*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, w.bin, "shell", "-master", w.master, "-filer", w.filer, "-connectTimeout", "30s")
	cmd.Stdin = strings.NewReader(command + "\n")
	cmd.Env = []string{"PATH=" + os.Getenv("PATH"), "HOME=" + t.TempDir()}
	out, err := cmd.CombinedOutput()
	return string(out), err
}

func tailFile(path string, n int) string {
	b, err := os.ReadFile(path)
	if err != nil {
		return err.Error()
	}
	if len(b) > n {
		b = b[len(b)-n:]
	}
	return string(b)
}

// assume exchanges a web identity token for S3 credentials at SeaweedFS's
// STS with the AWS SDK for Go.
func (w *weedServer) assume(ctx context.Context, token string) (*aws.Credentials, error) {
	return w.assumeRole(ctx, fedRoleARN, token)
}

func (w *weedServer) assumeRole(ctx context.Context, roleARN, token string) (*aws.Credentials, error) {
	client := sts.New(sts.Options{
		Region:       "us-east-1",
		BaseEndpoint: aws.String(w.s3URL),
		HTTPClient:   &http.Client{Timeout: 20 * time.Second},
	})
	out, err := client.AssumeRoleWithWebIdentity(ctx, &sts.AssumeRoleWithWebIdentityInput{
		RoleArn:          aws.String(roleARN),
		RoleSessionName:  aws.String("agentkeys-federation-test"),
		WebIdentityToken: aws.String(token),
		DurationSeconds:  aws.Int32(900),
	})
	if err != nil {
		return nil, err
	}
	c := out.Credentials
	if c == nil || c.AccessKeyId == nil || c.SecretAccessKey == nil || c.SessionToken == nil {
		return nil, errors.New("AssumeRoleWithWebIdentity returned no credentials")
	}
	return &aws.Credentials{AccessKeyID: *c.AccessKeyId, SecretAccessKey: *c.SecretAccessKey, SessionToken: *c.SessionToken}, nil
}

// s3As exchanges token at the STS (the test role) and returns an S3 client
// with the credentials, failing t, which names whose token it was, if the
// STS refuses.
func (w *weedServer) s3As(t *testing.T, ctx context.Context, token, whose string) *s3.Client {
	t.Helper()
	creds, err := w.assume(ctx, token)
	if err != nil {
		t.Fatalf("AssumeRoleWithWebIdentity with %s: %v", whose, err)
	}
	return w.s3Client(creds)
}

func (w *weedServer) s3Client(c *aws.Credentials) *s3.Client {
	return s3.New(s3.Options{
		Region:                     "us-east-1",
		BaseEndpoint:               aws.String(w.s3URL),
		UsePathStyle:               true,
		Credentials:                credentials.NewStaticCredentialsProvider(c.AccessKeyID, c.SecretAccessKey, c.SessionToken),
		HTTPClient:                 &http.Client{Timeout: 20 * time.Second},
		RequestChecksumCalculation: aws.RequestChecksumCalculationWhenRequired,
		ResponseChecksumValidation: aws.ResponseChecksumValidationWhenRequired,
	})
}

func put(ctx context.Context, c *s3.Client, key, body string) error {
	_, err := c.PutObject(ctx, &s3.PutObjectInput{Bucket: aws.String(fedBucket), Key: aws.String(key), Body: strings.NewReader(body)})
	return err
}

func get(ctx context.Context, c *s3.Client, key string) (string, error) {
	out, err := c.GetObject(ctx, &s3.GetObjectInput{Bucket: aws.String(fedBucket), Key: aws.String(key)})
	if err != nil {
		return "", err
	}
	defer out.Body.Close()
	b, err := io.ReadAll(out.Body)
	return string(b), err
}

func del(ctx context.Context, c *s3.Client, key string) error {
	_, err := c.DeleteObject(ctx, &s3.DeleteObjectInput{Bucket: aws.String(fedBucket), Key: aws.String(key)})
	return err
}

// seed writes an object straight through the filer's HTTP API, the way an
// operator (not an agent) would put data in a read-only agent's prefix.
func (w *weedServer) seed(t *testing.T, key, body string) {
	t.Helper()
	req, err := http.NewRequest(http.MethodPut, w.filerURL+"/buckets/"+fedBucket+"/"+key, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("seed %s through the filer: %v", key, err)
	}
	defer resp.Body.Close()
	if resp.StatusCode/100 != 2 {
		b, _ := io.ReadAll(resp.Body)
		t.Fatalf("seed %s through the filer: %d %s", key, resp.StatusCode, b)
	}
}

// denied reports whether err is S3's refusal (403 AccessDenied).
func denied(err error) bool {
	var ae smithy.APIError
	return errors.As(err, &ae) && (ae.ErrorCode() == "AccessDenied" || ae.ErrorCode() == "Forbidden")
}

func TestFederationSeaweedFS(t *testing.T) {
	weedBin := os.Getenv("AGENTKEYS_WEED_BIN")
	if weedBin == "" {
		e2eRequire(t, "AGENTKEYS_WEED_BIN is not set; build SeaweedFS with scripts/ci/build-seaweedfs.sh")
	}
	if st, err := os.Stat(weedBin); err != nil || st.IsDir() || st.Mode()&0o111 == 0 {
		e2eRequire(t, "AGENTKEYS_WEED_BIN="+weedBin+" is not an executable file")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 4*time.Minute)
	defer cancel()

	s := startFedStack(t)
	ag := s.agents(t, ctx, "a", "b")
	agentA, agentB := ag[0], ag[1]
	walletA, walletB := string(agentA.Wallet), string(agentB.Wallet)

	// Two tokens signed by the first key; both are still within their
	// lifetime when, later, that key is retired and then rotated out.
	early1, early2 := s.mintJWT(t, agentA.Token), s.mintJWT(t, agentA.Token)
	firstKID := tokenKID(t, early1)

	iamPath := filepath.Join(t.TempDir(), "iam.json")
	if err := os.WriteFile(iamPath, fedIAMConfig(t, s.brokerURL), 0o600); err != nil {
		t.Fatal(err)
	}
	w := startWeed(t, weedBin, iamPath)
	var created bool
	for i := 0; i < 10 && !created; i++ {
		out, err := w.shell(t, "s3.bucket.create -name "+fedBucket)
		created = err == nil && strings.Contains(out, "created bucket")
		if !created {
			t.Logf("weed shell s3.bucket.create (attempt %d): %v %s", i+1, err, out)
			time.Sleep(time.Second)
		}
	}
	if !created {
		t.Fatal("could not create the bucket with weed shell")
	}

	// Wallet A: a broker JWT → AssumeRoleWithWebIdentity → own prefix only.
	s3A := w.s3As(t, ctx, s.mintJWT(t, agentA.Token), "the broker's JWT for wallet A")
	keyA := walletA + "/notes.txt"
	if err := put(ctx, s3A, keyA, "hello from A"); err != nil {
		t.Fatalf("PutObject under A's own prefix: %v", err)
	}
	if got, err := get(ctx, s3A, keyA); err != nil || got != "hello from A" {
		t.Fatalf("GetObject under A's own prefix: %q %v", got, err)
	}

	// Wallet B writes its own object; A can neither read nor write there.
	s3B := w.s3As(t, ctx, s.mintJWT(t, agentB.Token), "the broker's JWT for wallet B")
	keyB := walletB + "/secret.txt"
	if err := put(ctx, s3B, keyB, "B's data"); err != nil {
		t.Fatalf("PutObject under B's own prefix: %v", err)
	}
	if err := put(ctx, s3A, walletB+"/planted.txt", "from A"); !denied(err) {
		t.Fatalf("A's PutObject under B's prefix: want AccessDenied, got %v", err)
	}
	if got, err := get(ctx, s3A, keyB); !denied(err) {
		t.Fatalf("A's GetObject under B's prefix: want AccessDenied, got %q %v", got, err)
	}
	if _, err := get(ctx, s3B, keyA); !denied(err) {
		t.Fatalf("B's GetObject under A's prefix: want AccessDenied, got %v", err)
	}
	if err := put(ctx, s3A, "outside.txt", "x"); !denied(err) {
		t.Fatalf("A's PutObject at the bucket root: want AccessDenied, got %v", err)
	}
	// A write agent (agentkeys_access=write) may also delete in its prefix.
	if err := put(ctx, s3A, walletA+"/scratch.txt", "tmp"); err != nil {
		t.Fatalf("PutObject under A's own prefix: %v", err)
	}
	if err := del(ctx, s3A, walletA+"/scratch.txt"); err != nil {
		t.Fatalf("write agent's DeleteObject under its own prefix: %v", err)
	}

	// A read-only agent: its token says agentkeys_access=read, and the data
	// policy's deny (writes unless the claim is write) leaves it reading its
	// own prefix only.
	ro := s.agent(t, ctx, agentkeys.Scope{Services: []string{"aws"}, ReadOnly: true})
	walletR := string(ro.Wallet)
	roJWT := s.mintJWT(t, ro.Token)
	if cl := payloadClaims(t, roJWT); cl["agentkeys_access"] != "read" {
		t.Fatalf("read-only agent's JWT: agentkeys_access = %v", cl["agentkeys_access"])
	}
	keyR := walletR + "/report.txt"
	w.seed(t, keyR, "seeded by the operator")
	s3R := w.s3As(t, ctx, roJWT, "the read-only agent's JWT")
	if got, err := get(ctx, s3R, keyR); err != nil || got != "seeded by the operator" {
		t.Fatalf("read-only agent's GetObject under its own prefix: %q %v", got, err)
	}
	if err := put(ctx, s3R, walletR+"/new.txt", "x"); !denied(err) {
		t.Fatalf("read-only agent's PutObject under its own prefix: want AccessDenied, got %v", err)
	}
	if err := put(ctx, s3R, keyR, "overwritten"); !denied(err) {
		t.Fatalf("read-only agent's overwrite under its own prefix: want AccessDenied, got %v", err)
	}
	if err := del(ctx, s3R, keyR); !denied(err) {
		t.Fatalf("read-only agent's DeleteObject under its own prefix: want AccessDenied, got %v", err)
	}
	if got, err := get(ctx, s3R, keyR); err != nil || got != "seeded by the operator" {
		t.Fatalf("the read-only agent's object changed: %q %v", got, err)
	}
	if _, err := get(ctx, s3R, keyA); !denied(err) {
		t.Fatalf("read-only agent's GetObject under A's prefix: want AccessDenied, got %v", err)
	}

	// Tokens the broker did not mint as they are, all refused by the STS.
	curKey, curKID := brokerKey(t, s.keyFile, "current")
	now := time.Now()
	foreign, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	opts := func(iss, aud string, iat, exp time.Time) forgeOpts {
		return forgeOpts{issuer: iss, wallet: walletA, audience: aud, iat: iat, exp: exp}
	}
	for _, c := range []struct {
		name, role, token string
		why               string // in SeaweedFS's refusal, so the test fails if it is refused for another reason
	}{
		// The broker's own key, but an audience other than STS: refused by
		// the trust policy's aud condition, and by the provider's client id
		// check where the role has no condition.
		{"wrong audience", fedRoleARN, forgeJWT(t, curKey, curKID, opts(s.brokerURL, "https://attacker.example", now, now.Add(5*time.Minute))), "trust policy"},
		{"wrong audience (no trust condition)", fedBareRoleARN, forgeJWT(t, curKey, curKID, opts(s.brokerURL, "https://attacker.example", now, now.Add(5*time.Minute))), "audience"},
		// The broker's own key, expired a minute ago.
		{"expired", fedRoleARN, forgeJWT(t, curKey, curKID, opts(s.brokerURL, fedAudience, now.Add(-6*time.Minute), now.Add(-time.Minute))), "expired"},
		// A foreign key claiming the broker's kid.
		{"foreign key", fedRoleARN, forgeJWT(t, foreign, curKID, opts(s.brokerURL, fedAudience, now, now.Add(5*time.Minute))), "signature"},
		// The broker's key, another issuer (no provider is registered for it).
		{"wrong issuer", fedBareRoleARN, forgeJWT(t, curKey, curKID, opts("https://evil.example", fedAudience, now, now.Add(5*time.Minute))), "trust policy"},
	} {
		_, err := w.assumeRole(ctx, c.role, c.token)
		switch {
		case err == nil:
			t.Errorf("AssumeRoleWithWebIdentity accepted a token with a %s", c.name)
		case !strings.Contains(err.Error(), c.why):
			t.Errorf("%s refused, but not for the expected reason (%q): %v", c.name, c.why, err)
		default:
			t.Logf("%s refused: %v", c.name, err)
		}
	}
	// A token without agentkeys_access (shaped like an older broker's) may
	// read but not write: the deny holds unless the claim says write.
	legacy := w.s3As(t, ctx, forgeJWT(t, curKey, curKID, opts(s.brokerURL, fedAudience, now, now.Add(5*time.Minute))), "a token lacking agentkeys_access")
	if got, err := get(ctx, legacy, keyA); err != nil || got != "hello from A" {
		t.Fatalf("GetObject without agentkeys_access: %q %v", got, err)
	}
	if err := put(ctx, legacy, walletA+"/legacy.txt", "x"); !denied(err) {
		t.Fatalf("PutObject without agentkeys_access: want AccessDenied, got %v", err)
	}
	// A tampered broker token (wallet B's tags spliced in) is refused too.
	if _, err := w.assume(ctx, tamper(t, s.mintJWT(t, agentA.Token), walletB)); err == nil || !strings.Contains(err.Error(), "signature") {
		t.Errorf("tampered token: want a signature refusal, got %v", err)
	}

	// Key rotation, with the operator command of docs/operator-runbook.md.
	// Forced twice, the first key is retired (still published, so tokens it
	// signed keep working) and the third key signs.
	// Without --force, rotating right after start is refused: the next key
	// has not been published for the publish delay yet.
	{
		cmd := exec.Command(bin["agentkeys-broker"], "keys", "rotate", "--key-file", s.keyFile)
		cmd.Env = []string{"PATH=" + os.Getenv("PATH"), "HOME=" + t.TempDir()}
		if out, err := cmd.CombinedOutput(); err == nil || !strings.Contains(string(out), "not yet published long enough") {
			t.Fatalf("keys rotate within the publish delay: %v\n%s", err, out)
		}
	}
	brokerCLI(t, "keys", "rotate", "--force", "--key-file", s.keyFile)
	brokerCLI(t, "keys", "rotate", "--force", "--key-file", s.keyFile)
	var list struct {
		Keys []struct{ KID, State string } `json:"keys"`
	}
	if err := json.Unmarshal([]byte(brokerCLI(t, "keys", "list", "--json", "--key-file", s.keyFile)), &list); err != nil {
		t.Fatal(err)
	}
	var newKID string
	for _, k := range list.Keys {
		if k.State == "current" {
			newKID = k.KID
		}
		if k.KID == firstKID && k.State != "retired" {
			t.Fatalf("after two rotations the first key is %s", k.State)
		}
	}
	waitFor(t, 10*time.Second, "the broker to sign with the rotated key", func() bool {
		return tokenKID(t, s.mintJWT(t, agentA.Token)) == newKID
	})
	if _, err := w.assume(ctx, s.mintJWT(t, agentA.Token)); err != nil {
		t.Fatalf("a token from the new signing key is refused: %v", err)
	}
	if _, err := w.assume(ctx, early1); err != nil {
		t.Fatalf("a token from a retired key still within its retention window is refused: %v", err)
	}

	// Past the retention window the retired keys leave the JWKS. That window
	// is the longest token lifetime plus a cache margin (70 minutes), so the
	// test ages the key file's retirement times instead of waiting: exactly
	// what the broker sees when the time has passed.
	ageRetired(t, s.keyFile, 2*time.Hour)
	waitFor(t, 10*time.Second, "the broker to stop publishing the rotated-out key", func() bool {
		return !jwksHas(t, s.brokerURL, firstKID)
	})
	// SeaweedFS caches a JWKS for an hour (the jwksCacheTTLSeconds of a
	// provider from the static config is not read), so a verifier whose
	// cache has expired is a restarted one; buckets and objects persist.
	w.stop()
	w.run(t)
	if _, err := w.assume(ctx, early2); err == nil || !strings.Contains(err.Error(), "not found in JWKS") {
		t.Fatalf("token from a rotated-out key: want an unknown-key refusal, got %v", err)
	} else {
		t.Logf("rotated-out key refused: %v", err)
	}
	fresh := w.s3As(t, ctx, s.mintJWT(t, agentA.Token), "a fresh token after the old key left the JWKS")
	if got, err := get(ctx, fresh, keyA); err != nil || got != "hello from A" {
		t.Fatalf("GetObject under A's prefix after the restart: %q %v", got, err)
	}

	// Every mint above is in the broker's hash-chained ledger.
	if out := brokerCLI(t, "audit", "verify", "--db", s.auditDB); !strings.HasPrefix(out, "OK:") {
		t.Fatalf("audit verify: %s", out)
	}
}

// tamper replaces the wallet claims of a JWT's payload, keeping its
// signature.
func tamper(t *testing.T, raw, wallet string) string {
	t.Helper()
	parts := strings.Split(raw, ".")
	if len(parts) != 3 {
		t.Fatal("not a compact JWS")
	}
	payload, err := decodeSegment(parts[1])
	if err != nil {
		t.Fatal(err)
	}
	var claims map[string]any
	if err := json.Unmarshal(payload, &claims); err != nil {
		t.Fatal(err)
	}
	claims["sub"] = "agentkeys:agent:" + wallet
	claims["agentkeys_user_wallet"] = wallet
	b, _ := json.Marshal(claims)
	return parts[0] + "." + encodeSegment(b) + "." + parts[2]
}

// ageRetired moves the retirement time of every retired key back by d,
// writing the file the way the broker does (temp file 0600, rename).
func ageRetired(t *testing.T, path string, d time.Duration) {
	t.Helper()
	ks := readKeyFile(t, path)
	for i := range ks.Keys {
		if ks.Keys[i].State == "retired" {
			ks.Keys[i].RetiredAt -= int64(d.Seconds())
		}
	}
	b, err := json.MarshalIndent(ks, "", "  ")
	if err != nil {
		t.Fatal(err)
	}
	tmp := path + ".test-tmp"
	if err := os.WriteFile(tmp, b, 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(tmp, path); err != nil {
		t.Fatal(err)
	}
}

func jwksHas(t *testing.T, issuer, kid string) bool {
	t.Helper()
	set := oidctest.FetchJWKS(t, issuer+"/.well-known/jwks.json")
	return len(set.Key(kid)) > 0
}

func waitFor(t *testing.T, d time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(d)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %v waiting for %s", d, what)
		}
		time.Sleep(200 * time.Millisecond)
	}
}

func decodeSegment(s string) ([]byte, error) { return base64.RawURLEncoding.DecodeString(s) }

func encodeSegment(b []byte) string { return base64.RawURLEncoding.EncodeToString(b) }
