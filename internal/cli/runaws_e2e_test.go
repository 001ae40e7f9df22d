package cli

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestRunInjectsAgentAWSCredentials: for an agent whose scope includes
// aws, run (the real binary, against a dev stack whose broker uses a fake
// STS) gives the child the five AWS variables, minted for the agent's
// wallet (its tag and agentkeys_access reached STS), masked in the output;
// without a session file it refuses and runs nothing; --no-aws skips.
func TestRunInjectsAgentAWSCredentials(t *testing.T) {
	w, dev, fake := newDevWorld(t)
	w.initMaster()
	sf := filepath.Join(w.home, "bot.session")
	agent := w.createAgent("bot", "--services", "aws,openrouter", "--read-only", "--session-out", sf)
	other := filepath.Join(w.home, "other.session")
	w.createAgent("other", "--services", "aws", "--session-out", other)

	env := w.env("AGENTKEYS_BROKER_URL="+dev.Broker.URL(), "AWS_REGION=", "AWS_DEFAULT_REGION=")
	script := `for v in AWS_ACCESS_KEY_ID AWS_SECRET_ACCESS_KEY AWS_SESSION_TOKEN AWS_REGION AWS_DEFAULT_REGION; do eval "x=\$$v"; test -n "$x" || { echo "missing $v"; exit 3; }; done
echo "region=$AWS_REGION/$AWS_DEFAULT_REGION id=$AWS_ACCESS_KEY_ID"; echo "secret=$AWS_SECRET_ACCESS_KEY token=$AWS_SESSION_TOKEN"`
	r := w.exec(nil, env, "run", "bot", "--session-file", sf, "--region", "eu-west-3", "--", "sh", "-c", script)
	expectCode(t, r, 0, "run with aws")
	issued := fake.Issued()
	calls := fake.Calls()
	if len(issued) != 1 || len(calls) != 1 {
		t.Fatalf("STS issued %d credentials in %d calls", len(issued), len(calls))
	}
	if c := calls[0]; c.Tags["agentkeys_user_wallet"] != agent || c.Tags["agentkeys_access"] != "read" {
		t.Fatalf("STS saw tags %v, want the agent %s with read access", c.Tags, agent)
	}
	if !strings.Contains(r.stdout, "region=eu-west-3/eu-west-3 id="+issued[0].AccessKeyID) {
		t.Fatalf("child env: %s", r)
	}
	if strings.Contains(r.stdout+r.stderr, issued[0].SecretAccessKey) || strings.Contains(r.stdout+r.stderr, issued[0].SessionToken) ||
		!strings.Contains(r.stdout, "secret=**** token=****") {
		t.Fatalf("AWS secrets not masked: %s", r)
	}

	// --aws-server: the child fetches them from the loopback endpoint, as
	// SDKs do; inherited static keys do not shadow it.
	curl := `test -z "$AWS_ACCESS_KEY_ID$AWS_SESSION_TOKEN$AWS_PROFILE" && test "$AWS_REGION" = eu-west-3 &&
curl -sf -H "Authorization: $AWS_CONTAINER_AUTHORIZATION_TOKEN" "$AWS_CONTAINER_CREDENTIALS_FULL_URI" && echo &&
curl -s -o /dev/null -w 'no-token=%{http_code}' "$AWS_CONTAINER_CREDENTIALS_FULL_URI"`
	stale := append(env[:len(env):len(env)], "AWS_ACCESS_KEY_ID=AKIASTALE", "AWS_SESSION_TOKEN=stale", "AWS_PROFILE=other")
	r = w.exec(nil, stale, "run", "bot", "--no-masking", "--aws-server", "--session-file", sf, "--region", "eu-west-3", "--", "sh", "-c", curl)
	expectCode(t, r, 0, "run --aws-server")
	issued = fake.Issued()
	if len(issued) != 2 || !strings.Contains(r.stdout, `"AccessKeyId":"`+issued[1].AccessKeyID+`"`) ||
		!strings.Contains(r.stdout, `"Token":"`+issued[1].SessionToken+`"`) || !strings.Contains(r.stdout, "no-token=401") {
		t.Fatalf("--aws-server: %d issued; %s", len(issued), r)
	}

	// Refusals: nothing runs, nothing is minted.
	marker := filepath.Join(w.home, "ran")
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"--region", "eu-west-3", "--aws-server"}, "--session-file"},
		{[]string{"--session-file", sf}, "region"},
		{[]string{"--session-file", other, "--region", "eu-west-3"}, "not of the agent"},
	} {
		args := append(append([]string{"run", "bot"}, tc.args...), "--", "touch", marker)
		r := w.exec(nil, env, args...)
		expectCode(t, r, 1, args...)
		if !strings.Contains(r.stderr, tc.want) {
			t.Fatalf("%v: message %s", tc.args, r)
		}
	}
	noBroker := w.env("AWS_REGION=eu-west-3")
	if r := w.exec(nil, noBroker, "run", "bot", "--session-file", sf, "--", "touch", marker); r.code == 0 || !strings.Contains(r.stderr, "--no-aws") {
		t.Fatalf("no broker: %s", r)
	}
	if len(fake.Issued()) != 2 {
		t.Fatal("a refused run minted credentials")
	}
	if _, err := os.Stat(marker); err == nil {
		t.Fatal("a refused run ran its command")
	}
	// Without the agent's session, run warns and runs without AWS
	// credentials, as `run <agent> -- cmd` always did.
	r = w.exec(nil, env, "run", "bot", "--region", "eu-west-3", "--", "sh", "-c", `test -z "$AWS_SESSION_TOKEN"`)
	expectCode(t, r, 0, "run without --session-file")
	if !strings.Contains(r.stderr, "--session-file") || len(fake.Issued()) != 2 {
		t.Fatalf("run without the agent's session: want a warning naming --session-file and no mint: %s", r)
	}
	r = w.exec(nil, noBroker, "run", "bot", "--no-aws", "--", "sh", "-c", `test -z "$AWS_SESSION_TOKEN"`)
	expectCode(t, r, 0, "run --no-aws")
}
