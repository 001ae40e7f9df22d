package cli

import (
	"errors"
	"fmt"
	"io/fs"
	"os"

	"github.com/spf13/cobra"

	"github.com/agentkeys/agentkeys/internal/keychain"
	"github.com/agentkeys/agentkeys/internal/secretref"
)

func (a *App) newInjectCmd() *cobra.Command {
	var in, out string
	cmd := &cobra.Command{
		Use:   "inject [-i TEMPLATE] [-o FILE]",
		Short: "Write a file from a template, replacing {{ agentkeys://<agent>/<service> }} with credentials",
		Long: `Read TEMPLATE (default: stdin) and replace every
{{ agentkeys://<agent>/<service> }} (blanks inside the braces optional; the
agent is a name, an alias or a 0x wallet) with that agent's credential,
read through your session and audited like any read. Other {{ … }} text is
left alone. Every reference is checked (known agent, service within its
scope, credential stored) before anything is written; the first failure
names its reference.

With -o FILE the result replaces FILE atomically (a temporary file in the
same directory, renamed over it), with mode 0600 whatever FILE's mode was;
a symlink or anything but a regular file at FILE is refused. Without -o the
result goes to stdout (with a warning when stdout is a terminal).`,
		Args: exactArgs(0, "none (use -i and -o)"),
		RunE: func(cmd *cobra.Command, _ []string) error {
			if a.JSON && out == "" {
				return usagef("--json needs -o FILE (the rendered text would be stdout)")
			}
			return a.inject(cmd, in, out)
		},
	}
	cmd.Flags().StringVarP(&in, "in", "i", "-", "template file (- for stdin)")
	cmd.Flags().StringVarP(&out, "out", "o", "", "output file, written 0600 (default: stdout)")
	return cmd
}

func (a *App) inject(cmd *cobra.Command, in, out string) error {
	ctx := cmdContext(cmd.Context())
	name := in
	if in == "-" {
		name = "stdin"
	}
	data, err := readBounded(in)
	if err != nil {
		return fmt.Errorf("template %s: %w", name, err)
	}
	segs, err := secretref.ParseTemplate(data)
	if err != nil {
		return fmt.Errorf("template %s: %w", name, err)
	}
	if out != "" {
		if err := checkOutputPath(out); err != nil {
			return err
		}
	}
	m, err := a.LoadMaster()
	if err != nil {
		return err
	}
	refs := secretref.Refs(segs)
	values, _, err := a.readRefs(ctx, m, refs)
	if err != nil {
		return err
	}
	defer func() {
		for _, v := range values {
			clear(v)
		}
	}()
	rendered := secretref.Render(segs, func(r secretref.Ref) []byte { return values[r] })
	defer clear(rendered)
	if out == "" {
		if a.stdoutIsTerminal() {
			fmt.Fprintln(a.Err, "agentkeys: warning: writing credentials to a terminal")
		}
		_, err := a.Out.Write(rendered)
		return err
	}
	if err := keychain.WritePrivateFile(out, rendered); err != nil {
		return err
	}
	if a.JSON {
		return a.printJSON(map[string]any{"path": out, "references": len(refs)})
	}
	a.notef("wrote %s (%d references)", out, len(refs))
	return nil
}

// checkOutputPath refuses to write over a symlink or a non-regular file.
func checkOutputPath(path string) error {
	fi, err := os.Lstat(path)
	switch {
	case errors.Is(err, fs.ErrNotExist):
		return nil
	case err != nil:
		return fmt.Errorf("-o %s: %w", path, errors.Unwrap(err))
	case fi.Mode()&fs.ModeSymlink != 0:
		return fmt.Errorf("-o %s is a symlink; refusing to replace it (write to the real path instead)", path)
	case !fi.Mode().IsRegular():
		return fmt.Errorf("-o %s is not a regular file", path)
	}
	return nil
}
