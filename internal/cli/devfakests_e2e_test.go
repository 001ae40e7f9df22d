package cli

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestDevFakeSTSRun: `agentkeys dev --fake-sts` mints AWS credentials
// offline, and run (the real binary) hands them to the command as the five
// AWS variables, masked in its output, next to an env file's reference.
func TestDevFakeSTSRun(t *testing.T) {
	t.Parallel()
	w, _, info := startDev(t, "--fake-sts")
	if !strings.HasPrefix(info.FakeSTS, "http://127.0.0.1:") {
		t.Fatalf("dev --fake-sts printed fake_sts=%q", info.FakeSTS)
	}
	env := w.env("AGENTKEYS_BROKER_URL="+info.BrokerURL, "AWS_REGION=", "AWS_DEFAULT_REGION=")
	if r := w.exec(nil, append(env, "AGENTKEYS_AUTH_TOKEN=dev-user"), "init"); r.code != 0 {
		t.Fatalf("init: %s", r)
	}
	sf := filepath.Join(w.home, "cloud.session")
	if r := w.exec(nil, env, "agent", "create", "cloud", "--services", "aws,openrouter", "--session-out", sf); r.code != 0 {
		t.Fatalf("agent create: %s", r)
	}
	key := newSecret()
	if r := w.exec(strings.NewReader(key), env, "store", "cloud", "openrouter"); r.code != 0 {
		t.Fatalf("store: %s", r)
	}
	envFile := filepath.Join(w.home, "app.env")
	writeFile(t, envFile, "LLM_KEY=agentkeys://cloud/openrouter\n", 0o600)
	script := `for v in AWS_ACCESS_KEY_ID AWS_SECRET_ACCESS_KEY AWS_SESSION_TOKEN AWS_REGION AWS_DEFAULT_REGION LLM_KEY; do eval "x=\$$v"; test -n "$x" || { echo "missing $v"; exit 3; }; done
echo "region=$AWS_REGION id=${AWS_ACCESS_KEY_ID%%????????????}"; echo "secret=$AWS_SECRET_ACCESS_KEY llm=$LLM_KEY"`
	r := w.exec(nil, env, "run", "cloud", "--session-file", sf, "--region", "eu-west-1", "--env-file", envFile, "--", "sh", "-c", script)
	if r.code != 0 || !strings.Contains(r.stdout, "region=eu-west-1 id=ASIA") || !strings.Contains(r.stdout, "secret=**** llm=****") || strings.Contains(r.stdout, key) {
		t.Fatalf("run with fake STS: %s", r)
	}
	if _, err := os.Stat(info.DataDir); err != nil {
		t.Fatal(err)
	}
}
