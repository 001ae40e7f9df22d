package cli

import (
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
)

// TestUsageVocabularyIsComplete: every audit action and result the backend
// and the broker write is a value `usage --action` / `--result` accepts,
// so a new one cannot be refused as unknown. It reads the constants from
// the writers' source.
func TestUsageVocabularyIsComplete(t *testing.T) {
	consts := func(glob string, re *regexp.Regexp) []string {
		t.Helper()
		files, err := filepath.Glob(glob)
		if err != nil || len(files) == 0 {
			t.Fatalf("no files for %s: %v", glob, err)
		}
		var out []string
		for _, f := range files {
			if strings.HasSuffix(f, "_test.go") {
				continue
			}
			b, err := os.ReadFile(f)
			if err != nil {
				t.Fatal(err)
			}
			for _, m := range re.FindAllStringSubmatch(string(b), -1) {
				out = append(out, m[1])
			}
		}
		return out
	}
	actionRE := regexp.MustCompile(`(?m)^\s*(?:Action|action)[A-Za-z]+\s*=\s*"([^"]+)"`)
	resultRE := regexp.MustCompile(`(?m)^\s*(?:Result|result)[A-Za-z]+\s*=\s*"([^"]+)"`)
	outcomeRE := regexp.MustCompile(`(?m)^\s*Outcome[A-Za-z]+\s*=\s*"([^"]+)"`)

	actions := append(consts("../agentkeys/*.go", actionRE), consts("../backend/*.go", actionRE)...)
	results := append(consts("../agentkeys/*.go", resultRE), consts("../backend/*.go", resultRE)...)
	outcomes := consts("../audit/*.go", outcomeRE)
	if len(actions) < 15 || len(results) < 5 || len(outcomes) < 8 {
		t.Fatalf("the source scan found too little: %d actions, %d results, %d outcomes", len(actions), len(results), len(outcomes))
	}
	for _, a := range actions {
		if !slices.Contains(knownActions(), a) {
			t.Errorf("the backend writes action %q, which usage --action refuses", a)
		}
	}
	for _, r := range results {
		if !slices.Contains(backendResults, r) {
			t.Errorf("the backend writes result %q, which usage --result does not know", r)
		}
	}
	for _, o := range outcomes {
		if !slices.Contains(brokerResults, o) {
			t.Errorf("the broker writes outcome %q, which usage --result does not know", o)
		}
	}
}
