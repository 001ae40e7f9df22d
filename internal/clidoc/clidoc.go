// Package clidoc renders docs/cli.md, the command-line reference of the
// four binaries, from their cobra command trees: every command, flag,
// environment variable and exit code. scripts/gencli writes the file and a
// test fails when the committed file differs from what Render produces.
package clidoc

import (
	"bytes"
	"fmt"
	"slices"
	"strings"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"

	"github.com/agentkeys/agentkeys/internal/backend"
	"github.com/agentkeys/agentkeys/internal/broker"
	"github.com/agentkeys/agentkeys/internal/cli"
	"github.com/agentkeys/agentkeys/internal/cmdtree"
	"github.com/agentkeys/agentkeys/internal/daemon"
	"github.com/agentkeys/agentkeys/internal/envflag"
)

// Path is the file Render's output belongs in, relative to the module root.
const Path = "docs/cli.md"

// Regenerate is the command that rewrites Path.
const Regenerate = "make docs (or: go run ./scripts/gencli)"

// Roots are the four binaries' command trees, in the order documented.
func Roots() []*cobra.Command {
	return []*cobra.Command{cli.Command(), daemon.Command(), backend.Command(), broker.Command()}
}

// Vars lists every environment variable the trees document. Flags take
// their defaults from them, so Render must run with all of them unset.
func Vars() []string {
	var out []string
	for _, root := range Roots() {
		walk(root, func(c *cobra.Command) {
			eachFlag(c, func(f *pflag.Flag) {
				if env := f.Annotations[envflag.Annotation]; len(env) > 0 {
					out = append(out, env[0])
				}
			})
		})
		for _, v := range annotationRows(root, cmdtree.EnvAnnotation) {
			if !strings.Contains(v[0], "<") {
				out = append(out, v[0])
			}
		}
	}
	slices.Sort(out)
	return slices.Compact(out)
}

// Render returns the reference. Run it with every variable of Vars unset
// (blank), else their values show up as defaults.
func Render() []byte {
	var b bytes.Buffer
	b.WriteString("# Command-line reference\n\n")
	b.WriteString("<!-- Generated from the command trees of the four binaries; do not edit. Regenerate: " + Regenerate + " -->\n\n")
	b.WriteString("Every command, flag, environment variable and exit code of the four AgentKeys binaries. ")
	b.WriteString("A flag bound to a variable names it in brackets; the flag wins over the variable, the variable over the default. ")
	b.WriteString("Durations take whole seconds (`30`) or a unit (`30s`, `5m`).\n\n")
	roots := Roots()
	for _, r := range roots {
		fmt.Fprintf(&b, "- [%s](#%s) — %s\n", r.Name(), r.Name(), r.Short)
	}
	for _, r := range roots {
		renderRoot(&b, r)
	}
	return b.Bytes()
}

func renderRoot(b *bytes.Buffer, root *cobra.Command) {
	fmt.Fprintf(b, "\n## %s\n\n%s\n\n", root.Name(), root.Short)
	if long := trimExitCodes(root.Long); long != "" {
		fmt.Fprintf(b, "```text\n%s\n```\n\n", long)
	}
	fmt.Fprintf(b, "Usage: `%s`\n\n", root.UseLine())

	b.WriteString("### Exit codes\n\n| code | meaning |\n|---|---|\n")
	for _, row := range annotationRows(root, cmdtree.ExitCodesAnnotation) {
		fmt.Fprintf(b, "| %s | %s |\n", cell(row[0]), cell(row[1]))
	}

	b.WriteString("\n### Environment variables\n\n| variable | flag | meaning |\n|---|---|---|\n")
	type envRow struct{ name, flag, meaning string }
	var rows []envRow
	seen := map[string]bool{}
	walk(root, func(c *cobra.Command) {
		eachFlag(c, func(f *pflag.Flag) {
			env := f.Annotations[envflag.Annotation]
			if len(env) == 0 || seen[env[0]+f.Name] {
				return
			}
			seen[env[0]+f.Name] = true
			rows = append(rows, envRow{env[0], c.CommandPath() + " --" + f.Name, strings.TrimSuffix(f.Usage, " ["+env[0]+"]")})
		})
	})
	for _, v := range annotationRows(root, cmdtree.EnvAnnotation) {
		rows = append(rows, envRow{v[0], "", v[1]})
	}
	slices.SortStableFunc(rows, func(a, b envRow) int { return strings.Compare(a.name, b.name) })
	for _, r := range rows {
		flag := ""
		if r.flag != "" {
			flag = "`" + r.flag + "`"
		}
		fmt.Fprintf(b, "| `%s` | %s | %s |\n", r.name, flag, cell(r.meaning))
	}
	if root.Name() == "agentkeys-broker" {
		b.WriteString("\nThe broker's other variables are listed in its description above.\n")
	}

	if root.HasAvailablePersistentFlags() {
		b.WriteString("\n### Global flags\n\nAccepted by every command of " + root.Name() + ".\n\n")
		flagTable(b, root.PersistentFlags())
	}

	b.WriteString("\n### Commands\n")
	walk(root, func(c *cobra.Command) {
		renderCommand(b, c)
	})
}

func renderCommand(b *bytes.Buffer, c *cobra.Command) {
	fmt.Fprintf(b, "\n#### %s\n\n", c.CommandPath())
	if c.HasParent() {
		fmt.Fprintf(b, "%s\n\n", c.Short)
		if long := strings.TrimSpace(c.Long); long != "" && long != c.Short {
			fmt.Fprintf(b, "```text\n%s\n```\n\n", long)
		}
	}
	if c.Runnable() && c.Annotations[cmdtree.GroupAnnotation] == "" {
		fmt.Fprintf(b, "Usage: `%s`\n\n", c.UseLine())
	}
	if len(c.Aliases) > 0 {
		fmt.Fprintf(b, "Aliases: %s\n\n", strings.Join(c.Aliases, ", "))
	}
	if subs := available(c); len(subs) > 0 {
		b.WriteString("Subcommands:")
		for _, s := range subs {
			fmt.Fprintf(b, " `%s`", s.Name())
		}
		b.WriteString("\n\n")
	}
	defer func() { // one blank line between sections
		for bytes.HasSuffix(b.Bytes(), []byte("\n\n")) {
			b.Truncate(b.Len() - 1)
		}
	}()
	local := c.LocalNonPersistentFlags()
	if c.HasParent() {
		// A subcommand's own persistent flags are its flags too.
		c.PersistentFlags().VisitAll(func(f *pflag.Flag) {
			if local.Lookup(f.Name) == nil {
				local.AddFlag(f)
			}
		})
	}
	if hasFlags(local) {
		flagTable(b, local)
	}
}

func flagTable(b *bytes.Buffer, fs *pflag.FlagSet) {
	b.WriteString("| flag | type | default | meaning |\n|---|---|---|---|\n")
	fs.VisitAll(func(f *pflag.Flag) {
		if f.Hidden || f.Name == "help" {
			return
		}
		name := "`--" + f.Name + "`"
		if f.Shorthand != "" {
			name = "`-" + f.Shorthand + "`, " + name
		}
		typ, usage := pflag.UnquoteUsage(f)
		if typ == "" {
			typ = "bool"
		}
		def := f.DefValue
		switch {
		case def == "" || def == "[]" || (typ == "bool" && def == "false"):
			def = ""
		default:
			def = "`" + def + "`"
		}
		fmt.Fprintf(b, "| %s | %s | %s | %s |\n", name, typ, def, cell(usage))
	})
}

func hasFlags(fs *pflag.FlagSet) bool {
	n := 0
	fs.VisitAll(func(f *pflag.Flag) {
		if !f.Hidden && f.Name != "help" {
			n++
		}
	})
	return n > 0
}

// walk visits c and its available subcommands, depth first in name order;
// the shells under cobra's standard completion command are named there,
// not described one by one.
func walk(c *cobra.Command, fn func(*cobra.Command)) {
	fn(c)
	if c.Name() == "completion" && c.HasParent() && !c.Parent().HasParent() {
		return
	}
	for _, s := range available(c) {
		walk(s, fn)
	}
}

func available(c *cobra.Command) []*cobra.Command {
	var out []*cobra.Command
	for _, s := range c.Commands() {
		if s.IsAvailableCommand() {
			out = append(out, s)
		}
	}
	return out
}

func eachFlag(c *cobra.Command, fn func(*pflag.Flag)) {
	c.LocalFlags().VisitAll(fn)
}

func annotationRows(root *cobra.Command, key string) [][2]string {
	var out [][2]string
	for line := range strings.SplitSeq(strings.TrimSpace(root.Annotations[key]), "\n") {
		if k, v, ok := strings.Cut(line, "\t"); ok {
			out = append(out, [2]string{k, v})
		}
	}
	return out
}

// trimExitCodes drops the exit code list cmdtree.Finish appends to the
// root's help: the reference has it as a table.
func trimExitCodes(long string) string {
	if i := strings.LastIndex(long, "\n\nExit codes:"); i >= 0 {
		long = long[:i]
	}
	return strings.TrimSpace(long)
}

func cell(s string) string {
	s = strings.ReplaceAll(s, "|", `\|`)
	s = strings.ReplaceAll(s, "<", "&lt;")
	return strings.ReplaceAll(s, "\n", " ")
}
