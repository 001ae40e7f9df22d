package clidoc

import (
	"bytes"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"

	"github.com/agentkeys/agentkeys/internal/cmdtree"
)

// clean unsets (blanks) every variable the flags read, as the generator
// does, so that defaults are the built-in ones.
func clean(t *testing.T) {
	for _, v := range Vars() {
		t.Setenv(v, "")
	}
}

func TestCLIDocIsCurrent(t *testing.T) {
	clean(t)
	want := Render()
	got, err := os.ReadFile(filepath.Join("..", "..", Path))
	if err != nil {
		t.Fatalf("%s: %v; create it with: %s", Path, err, Regenerate)
	}
	if !bytes.Equal(got, want) {
		gl, wl := strings.Split(string(got), "\n"), strings.Split(string(want), "\n")
		first := 0
		for first < len(gl) && first < len(wl) && gl[first] == wl[first] {
			first++
		}
		line := func(l []string) string {
			if first < len(l) {
				return l[first]
			}
			return "(end of file)"
		}
		t.Fatalf("%s is stale (a command, flag, variable or exit code changed); regenerate it with:\n\t%s\nfirst difference at line %d:\n\tfile:      %s\n\tgenerated: %s",
			Path, Regenerate, first+1, line(gl), line(wl))
	}
}

// The reference covers every command of every binary, and every
// environment variable the binaries' code names.
func TestCLIDocCoversEverything(t *testing.T) {
	clean(t)
	doc := string(Render())
	for _, root := range Roots() {
		walk(root, func(c *cobra.Command) {
			if !strings.Contains(doc, "\n#### "+c.CommandPath()+"\n") {
				t.Errorf("%s is not documented", c.CommandPath())
			}
			c.LocalFlags().VisitAll(func(f *pflag.Flag) {
				if !f.Hidden && !strings.Contains(doc, "`--"+f.Name+"`") {
					t.Errorf("%s --%s is not documented", c.CommandPath(), f.Name)
				}
			})
		})
		for _, code := range annotationRows(root, cmdtree.ExitCodesAnnotation) {
			if !strings.Contains(doc, "| "+code[0]+" | ") {
				t.Errorf("%s exit code %s is not documented", root.Name(), code[0])
			}
		}
	}
	// Every AGENTKEYS_/BROKER_/DAEMON_ variable named in the binaries'
	// code is in the reference (error codes and test-only switches are
	// not variables a user sets).
	notVars := map[string]bool{
		"BROKER_ERROR": true, "BROKER_NOT_CONFIGURED": true, "BROKER_DAEMON_ACCESS_KEY_ID": true, "BROKER_DAEMON_SECRET_ACCESS_KEY": true,
		"AGENTKEYS_PLANTED": true, "AGENTKEYS_PLANTED_SECRET": true, "AGENTKEYS_TEST_CHILD_MARKER": true,
		"AGENTKEYS_REQUIRE_E2E": true, "AGENTKEYS_REQUIRE_POSTGRES": true, "AGENTKEYS_TEST_POSTGRES_URL": true,
		"AGENTKEYS_OPENROUTER_API_URL": true, "AGENTKEYS_OPENROUTER_SIGNUP_URL": true,
	}
	re := regexp.MustCompile(`"((?:AGENTKEYS|BROKER|DAEMON)_[A-Z0-9_]+)"`)
	out, err := exec.Command("go", "list", "-deps", "-f", "{{if not .Standard}}{{.Dir}}{{end}}",
		"github.com/agentkeys/agentkeys/cmd/...").Output()
	if err != nil {
		t.Fatal(err)
	}
	for dir := range strings.FieldsSeq(string(out)) {
		if !strings.Contains(dir, "agentkeys") || strings.Contains(dir, "/pkg/mod/") {
			continue
		}
		files, _ := filepath.Glob(filepath.Join(dir, "*.go"))
		for _, f := range files {
			if strings.HasSuffix(f, "_test.go") || strings.Contains(f, "sqldbtest") {
				continue
			}
			src, _ := os.ReadFile(f)
			for _, m := range re.FindAllStringSubmatch(string(src), -1) {
				if !notVars[m[1]] && !strings.Contains(doc, m[1]) {
					t.Errorf("%s (named in %s) is not in %s", m[1], f, Path)
				}
			}
		}
	}
}
