package cmdtree_test

import (
	"bytes"
	"context"
	"fmt"
	"strings"
	"testing"

	"github.com/spf13/cobra"

	"github.com/agentkeys/agentkeys/internal/backend"
	"github.com/agentkeys/agentkeys/internal/broker"
	"github.com/agentkeys/agentkeys/internal/cli"
	"github.com/agentkeys/agentkeys/internal/cmdtree"
	"github.com/agentkeys/agentkeys/internal/daemon"
	"github.com/agentkeys/agentkeys/internal/envflag"
)

var roots = map[string]func() *cobra.Command{
	"agentkeys":         cli.Command,
	"agentkeys-daemon":  daemon.Command,
	"agentkeys-backend": backend.Command,
	"agentkeys-broker":  broker.Command,
}

func run(t *testing.T, mk func() *cobra.Command, args ...string) (string, error) {
	t.Helper()
	c := mk()
	var out bytes.Buffer
	c.SetArgs(args)
	c.SetOut(&out)
	c.SetErr(&out)
	err := c.ExecuteContext(context.Background())
	return out.String(), err
}

// mistype returns name with its last letter dropped (or doubled when it
// is one letter long): within the suggestion distance, never a real name.
func mistype(name string) string {
	if len(name) < 3 {
		return name + name[len(name)-1:]
	}
	return name[:len(name)-1]
}

// At every level of every binary a mistyped subcommand is a usage error
// (exit 2) that suggests the right one.
func TestDidYouMeanAtEveryLevel(t *testing.T) {
	for name, mk := range roots {
		var walk func(c *cobra.Command, path []string)
		walk = func(c *cobra.Command, path []string) {
			for _, sub := range c.Commands() {
				if !sub.IsAvailableCommand() {
					continue
				}
				typo := mistype(sub.Name())
				if c.SuggestionsFor(typo) == nil || slicesHas(c, typo) {
					continue // the typo is ambiguous with a real name
				}
				args := append(append([]string{}, path...), typo)
				out, err := run(t, mk, args...)
				if code := envflag.ExitCode(err); code != 2 && !(name == "agentkeys" && err != nil) {
					t.Errorf("%s %v: exit %d (%v), want 2", name, args, code, err)
				}
				_, sugg, _ := strings.Cut(fmt.Sprint(err), "Did you mean this?\n")
				if !strings.Contains(sugg+"\n", "\t"+sub.Name()+"\n") {
					t.Errorf("%s %v: error %v, output %q; want a suggestion of %q", name, args, err, out, sub.Name())
				}
				if sub.HasAvailableSubCommands() {
					walk(sub, append(append([]string{}, path...), sub.Name()))
				}
			}
		}
		walk(mk(), nil)
	}
}

func slicesHas(c *cobra.Command, name string) bool {
	for _, s := range c.Commands() {
		if s.Name() == name || s.HasAlias(name) {
			return true
		}
	}
	return false
}

// A command that only holds subcommands refuses to run bare (it used to
// print its help and exit 0, as if something had been done).
func TestBareGroupIsUsageError(t *testing.T) {
	for _, tc := range []struct {
		bin  string
		args []string
	}{
		{"agentkeys-broker", []string{"keys"}},
		{"agentkeys-broker", []string{"audit"}},
		{"agentkeys-daemon", []string{"aws"}},
	} {
		_, err := run(t, roots[tc.bin], tc.args...)
		if envflag.ExitCode(err) != 2 || !strings.Contains(err.Error(), "needs a subcommand") {
			t.Errorf("%s %v: %v, want a usage error naming the subcommands", tc.bin, tc.args, err)
		}
	}
}

// Every binary's help lists its exit codes, the daemon's pairing codes
// and the broker's broken-chain code included, and --version prints the
// same format.
func TestHelpListsExitCodesAndVersion(t *testing.T) {
	want := map[string][]string{
		"agentkeys":         {"0", "1", "2", "126", "127", "128+N"},
		"agentkeys-daemon":  {"0", "1", "2", "3", "4", "5"},
		"agentkeys-backend": {"0", "1", "2"},
		"agentkeys-broker":  {"0", "1", "2", "3"},
	}
	for name, mk := range roots {
		out, err := run(t, mk, "--help")
		if err != nil {
			t.Fatalf("%s --help: %v", name, err)
		}
		_, section, ok := strings.Cut(out, "\nExit codes:\n")
		if !ok {
			t.Fatalf("%s --help has no exit codes:\n%s", name, out)
		}
		for _, code := range want[name] {
			if !strings.Contains(section, "\n  "+code+" ") && !strings.HasPrefix(section, "  "+code+" ") {
				t.Errorf("%s --help does not document exit code %s:\n%s", name, code, section)
			}
		}
		out, err = run(t, mk, "--version")
		if err != nil || out != name+" version "+cmdtree.VersionLine()+"\n" {
			t.Errorf("%s --version = %q, %v", name, out, err)
		}
	}
}
