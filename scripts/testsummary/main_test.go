package main

import (
	"os"
	"strings"
	"testing"
)

func summarise(t *testing.T, file string, forbid bool) (string, int) {
	t.Helper()
	f, err := os.Open("testdata/" + file)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var out strings.Builder
	code := run(f, &out, forbid)
	return out.String(), code
}

// A failing run keeps go test's closing lines and the failing test's
// output, drops passing tests' logs and the -v framing, and lists every
// skip (subtests too) with its reason.
func TestFailingRunKeepsGoTestLinesAndListsSkips(t *testing.T) {
	out, code := summarise(t, "fail.jsonl", false)
	if code == 0 {
		t.Fatal("a failing run exits 0")
	}
	for _, want := range []string{"FAIL\tfx/p\t", "p_test.go:9: boom", "--- FAIL: TestFail/sub",
		"SKIP fx/p TestSkipPG: p_test.go:6: PostgreSQL half skipped",
		"SKIP fx/p TestSkipOther: p_test.go:7: the kernel offers no Landlock",
		"SKIP fx/p TestFail/subskip: p_test.go:10: needs root"} {
		if !strings.Contains(out, want) {
			t.Errorf("output lacks %q:\n%s", want, out)
		}
	}
	for _, not := range []string{"quiet", "=== RUN", "--- PASS"} {
		if strings.Contains(out, not) {
			t.Errorf("output has %q:\n%s", not, out)
		}
	}
	if strings.Contains(out, "FORBID") {
		t.Errorf("skips refused without %s:\n%s", EnvForbidSkips, out)
	}
}

// A passing run prints only the ok line, then the skips; only skips for
// a peer or privilege CI provides fail it under AGENTKEYS_FORBID_SKIPS=1.
func TestForbiddenSkips(t *testing.T) {
	out, code := summarise(t, "pass.jsonl", true)
	if code != 0 || !strings.Contains(out, "ok  \tfx/q\t") || strings.Contains(out, "quiet") || strings.Contains(out, "PASS\n") {
		t.Fatalf("passing run: exit %d\n%s", code, out)
	}
	if !strings.Contains(out, "SKIP fx/q TestSkipOther: q_test.go:6: the kernel offers no Landlock") {
		t.Fatalf("skip not listed:\n%s", out)
	}
	out, code = summarise(t, "fail.jsonl", true)
	if code == 0 || !strings.Contains(out, EnvForbidSkips+"=1: 2 test(s) skipped") ||
		!strings.Contains(out, "  fx/p TestSkipPG\n") || !strings.Contains(out, "  fx/p TestFail/subskip\n") || strings.Contains(out, "  fx/p TestSkipOther\n") {
		t.Fatalf("forbidden skips: exit %d\n%s", code, out)
	}
	for _, r := range []string{
		"PostgreSQL unreachable, skipped: dial tcp",
		"chromium is not installed",
		"no browser: exec: not found",
		"AGENTKEYS_WEED_BIN is not set; build SeaweedFS",
		"e2e/jose/node_modules is missing; run scripts/ci/npm-e2e.sh",
		"MCP peers not installed (node is not on PATH)",
		"nginx is not installed (apt-get install nginx)",
		"full-disk test skipped: mounting a small tmpfs needs root (CI runs as root)",
	} {
		if !providedPeer.MatchString(r) {
			t.Errorf("%q is not recognised as a provided peer or privilege", r)
		}
	}
	for _, r := range []string{"the kernel offers no Landlock", "a D-Bus session bus exists here", "no_new_privs is Linux-only", "bash not found"} {
		if providedPeer.MatchString(r) {
			t.Errorf("%q is refused although CI does not provide it", r)
		}
	}
}

// A build failure shows the compiler's errors and fails the run.
func TestBuildFailureShown(t *testing.T) {
	out, code := summarise(t, "buildfail.jsonl", false)
	if code == 0 || !strings.Contains(out, "undefined: undefined") || !strings.Contains(out, "FAIL\tfx/b [build failed]") {
		t.Fatalf("build failure: exit %d\n%s", code, out)
	}
}
