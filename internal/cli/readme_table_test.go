package cli

import (
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
)

// TestREADMERunComparisonNamesRealTests: every AgentKeys cell of the
// README's comparison of run with op run, doppler run and aws-vault exec
// names at least one test or fuzz target, and every one it names exists.
func TestREADMERunComparisonNamesRealTests(t *testing.T) {
	root := filepath.Join("..", "..")
	readme, err := os.ReadFile(filepath.Join(root, "README.md"))
	if err != nil {
		t.Fatal(err)
	}
	_, table, ok := strings.Cut(string(readme), "### `agentkeys run` next to `op run`")
	if !ok {
		t.Fatal("README has no comparison of run with op run")
	}
	var src strings.Builder
	err = filepath.WalkDir(filepath.Join(root, "internal"), func(p string, d os.DirEntry, err error) error {
		if err == nil && strings.HasSuffix(p, "_test.go") {
			b, err := os.ReadFile(p)
			if err != nil {
				return err
			}
			src.Write(b)
		}
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	name := regexp.MustCompile("`(?:[a-z]+\\.)?((?:Test|Fuzz)[A-Za-z0-9_]+)`")
	rows := 0
	for _, line := range strings.Split(table, "\n") {
		if !strings.HasPrefix(line, "| ") {
			if rows > 0 {
				break
			}
			continue
		}
		cells := strings.Split(line, " | ")
		if len(cells) < 2 || strings.HasPrefix(line, "| feature") || strings.HasPrefix(line, "|---") {
			continue
		}
		rows++
		found := name.FindAllStringSubmatch(cells[1], -1)
		if len(found) == 0 {
			t.Errorf("row %q: the AgentKeys cell names no test", cells[0])
		}
		for _, m := range found {
			if !strings.Contains(src.String(), "func "+m[1]+"(") {
				t.Errorf("row %q names %s, which does not exist", cells[0], m[1])
			}
		}
	}
	if rows < 10 {
		t.Fatalf("read %d rows of the comparison table", rows)
	}
}
