// Package docs holds checks of the documentation that must not go stale.
package docs

import (
	"io/fs"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
)

// TestCompatibilityEntriesArePinned: every entry of compatibility.md names
// at least one test on a "Pinned by:" line, and every test named there
// exists in the repository, so a difference cannot be listed without a
// test that shows it, nor keep pointing at a test that was removed.
func TestCompatibilityEntriesArePinned(t *testing.T) {
	doc, err := os.ReadFile("compatibility.md")
	if err != nil {
		t.Fatal(err)
	}
	defined := testFuncs(t, "..")
	named := regexp.MustCompile("`((?:Test|Fuzz)[A-Za-z0-9_]+)`")
	entries := strings.Split(string(doc), "\n### ")[1:]
	if len(entries) < 30 {
		t.Fatalf("compatibility.md has %d entries; the parser no longer finds them", len(entries))
	}
	for _, e := range entries {
		title, _, _ := strings.Cut(e, "\n")
		var pins []string
		for _, line := range strings.Split(e, "\n") {
			if rest, ok := strings.CutPrefix(line, "Pinned by:"); ok {
				for _, m := range named.FindAllStringSubmatch(rest, -1) {
					pins = append(pins, m[1])
				}
			}
		}
		if len(pins) == 0 {
			t.Errorf("entry %q names no test on a \"Pinned by:\" line", title)
		}
		for _, p := range pins {
			if !defined[p] {
				t.Errorf("entry %q names %s, which no _test.go file defines", title, p)
			}
		}
	}
	// The document stands alone.
	for _, banned := range []string{"SPEC", "reference/", "../shared", "seed/"} {
		if strings.Contains(string(doc), banned) {
			t.Errorf("compatibility.md points outside the repository (%q)", banned)
		}
	}
}

// testFuncs returns the names of the Test and Fuzz functions defined in
// the _test.go files below root.
func testFuncs(t *testing.T, root string) map[string]bool {
	t.Helper()
	def := regexp.MustCompile(`(?m)^func ((?:Test|Fuzz)[A-Za-z0-9_]+)\(`)
	out := map[string]bool{}
	err := filepath.WalkDir(root, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() && (d.Name() == ".git" || d.Name() == "node_modules" || d.Name() == "bin") {
			return filepath.SkipDir
		}
		if d.IsDir() || !strings.HasSuffix(path, "_test.go") {
			return nil
		}
		b, err := os.ReadFile(path)
		if err != nil {
			return err
		}
		for _, m := range def.FindAllSubmatch(b, -1) {
			out[string(m[1])] = true
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if len(out) < 100 {
		t.Fatalf("found only %d test functions below %s", len(out), root)
	}
	return out
}
