// Package cmdtree gives the four AgentKeys binaries the same command-line
// behaviour, applied to each finished cobra tree by Finish:
//
//   - --version prints "<binary> version <version> (commit <rev>, <go>)",
//     the version coming from -ldflags "-X …/cmdtree.version=v1.2.3" or else
//     from the build information the go command stamps in;
//   - every command that holds subcommands suggests the nearest one for a
//     mistyped name ("Did you mean this?") at every level, and one that
//     cannot run by itself refuses a missing or unknown subcommand as a
//     usage error (exit status 2) instead of printing help and exiting 0;
//   - the root's --help ends with the binary's exit codes.
package cmdtree

import (
	"fmt"
	"runtime"
	"runtime/debug"
	"strings"

	"github.com/spf13/cobra"

	"github.com/agentkeys/agentkeys/internal/envflag"
)

// version is set at link time: go build -ldflags "-X
// github.com/agentkeys/agentkeys/internal/cmdtree.version=v1.2.3".
var version string

// Version is the release version: the link-time one, else the main
// module's version from the build information, else "devel".
func Version() string {
	v := version
	if v == "" {
		if bi, ok := debug.ReadBuildInfo(); ok {
			v = bi.Main.Version
		}
	}
	if v == "" || v == "(devel)" {
		v = "devel"
	}
	return v
}

// VersionLine is what --version prints after the binary's name and
// "version": the version, the VCS commit the binary was built from
// ("unknown" when the build carries none; "+dirty" for uncommitted
// changes) and the Go release.
func VersionLine() string {
	rev, dirty := "unknown", false
	if bi, ok := debug.ReadBuildInfo(); ok {
		for _, s := range bi.Settings {
			switch s.Key {
			case "vcs.revision":
				rev = s.Value
				if len(rev) > 12 {
					rev = rev[:12]
				}
			case "vcs.modified":
				dirty = s.Value == "true"
			}
		}
	}
	if dirty {
		rev += "+dirty"
	}
	return fmt.Sprintf("%s (commit %s, %s)", Version(), rev, runtime.Version())
}

// ExitCode documents one exit status of a binary.
type ExitCode struct {
	Code    string // "2", or a pattern such as "128+N"
	Meaning string
}

// RunExitCodes documents the status of a run subcommand that ends as the
// command it ran did, the way a shell does: the command's own exit status,
// or 128+N when it died of signal N. Both agentkeys run and
// agentkeys-daemon run list them last.
var RunExitCodes = []ExitCode{
	{Code: "128+N", Meaning: "run: the command died of signal N"},
	{Code: "other", Meaning: "run: the command's own exit status"},
}

// ExitCodesAnnotation is the root command annotation holding the exit
// codes Finish documents, one "code<TAB>meaning" per line (docs/cli.md is
// generated from it).
const ExitCodesAnnotation = "agentkeys_exit_codes"

// EnvVar documents an environment variable a binary reads that is not
// bound to a flag (flags name theirs in their help, see package envflag).
type EnvVar struct {
	Name    string
	Meaning string
}

// EnvAnnotation is the root command annotation holding the variables
// given to Environment, one "name<TAB>meaning" per line.
const EnvAnnotation = "agentkeys_env"

// Environment records vars on root for docs/cli.md.
func Environment(root *cobra.Command, vars ...EnvVar) *cobra.Command {
	var b strings.Builder
	for _, v := range vars {
		fmt.Fprintf(&b, "%s\t%s\n", v.Name, v.Meaning)
	}
	if root.Annotations == nil {
		root.Annotations = map[string]string{}
	}
	root.Annotations[EnvAnnotation] += b.String()
	return root
}

// SuggestionDistance is the Levenshtein distance within which a mistyped
// subcommand gets a suggestion.
const SuggestionDistance = 2

// Finish applies the shared behaviour to root (see the package comment)
// and documents codes in its help. Call it once the tree is complete.
func Finish(root *cobra.Command, codes ...ExitCode) *cobra.Command {
	root.Version = VersionLine()
	root.SetVersionTemplate(`{{.Name}} version {{.Version}}` + "\n")
	if len(codes) > 0 {
		var ann, help strings.Builder
		help.WriteString("\n\nExit codes:")
		for _, c := range codes {
			fmt.Fprintf(&ann, "%s\t%s\n", c.Code, c.Meaning)
			fmt.Fprintf(&help, "\n  %-6s %s", c.Code, c.Meaning)
		}
		if root.Annotations == nil {
			root.Annotations = map[string]string{}
		}
		root.Annotations[ExitCodesAnnotation] = ann.String()
		root.Long = strings.TrimRight(root.Long, "\n") + help.String()
	}
	// cobra adds its completion command when the tree runs; add it now so
	// that it is walked (and documented) like the others.
	root.InitDefaultCompletionCmd()
	walk(root)
	return root
}

func walk(c *cobra.Command) {
	if c.HasSubCommands() {
		c.SuggestionsMinimumDistance = SuggestionDistance
		if !c.Runnable() {
			Group(c)
		}
	}
	if args := c.Args; args != nil {
		// Argument errors are usage errors, and a parent that takes no
		// arguments names the subcommand it does not have.
		c.Args = func(cmd *cobra.Command, a []string) error {
			err := args(cmd, a)
			if err == nil {
				return nil
			}
			if len(a) > 0 && cmd.HasSubCommands() && strings.HasPrefix(err.Error(), "unknown command") {
				return UnknownCommand(cmd, a[0])
			}
			return envflag.AsUsage(err)
		}
	}
	for _, sub := range c.Commands() {
		walk(sub)
	}
}

// GroupAnnotation marks a command Group made: it only holds subcommands.
const GroupAnnotation = "agentkeys_group"

// Group makes c a command that only holds subcommands: without one, or
// with an unknown one (suggesting the nearest), it is a usage error.
func Group(c *cobra.Command) *cobra.Command {
	if c.Annotations == nil {
		c.Annotations = map[string]string{}
	}
	c.Annotations[GroupAnnotation] = "true"
	c.SuggestionsMinimumDistance = SuggestionDistance
	c.Args = func(cmd *cobra.Command, args []string) error {
		if len(args) > 0 {
			return UnknownCommand(cmd, args[0])
		}
		return nil
	}
	c.RunE = func(cmd *cobra.Command, _ []string) error {
		var names []string
		for _, sub := range cmd.Commands() {
			if sub.IsAvailableCommand() {
				names = append(names, sub.Name())
			}
		}
		return envflag.Usagef("%s needs a subcommand: %s", cmd.CommandPath(), strings.Join(names, ", "))
	}
	return c
}

// UnknownCommand is the usage error for a subcommand name c does not
// have, with the nearest names when there are any.
func UnknownCommand(c *cobra.Command, name string) error {
	msg := fmt.Sprintf("unknown command %q for %q", name, c.CommandPath())
	if s := c.SuggestionsFor(name); len(s) > 0 {
		msg += "\n\nDid you mean this?\n\t" + strings.Join(s, "\n\t")
	}
	return envflag.Usagef("%s", msg)
}
