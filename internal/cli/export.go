package cli

import (
	"context"
	"errors"
	"fmt"

	"github.com/spf13/cobra"

	"github.com/agentkeys/agentkeys/internal/secretref"
	"github.com/agentkeys/agentkeys/internal/services"
)

func (a *App) newExportCmd() *cobra.Command {
	var format string
	var only []string
	cmd := a.agentCommand("export <agent> [--format dotenv|json|shell] [--only svc,svc]",
		"Print an agent's credentials as dotenv, JSON or shell exports", false,
		func(ctx context.Context, m *Master, ref agentRef) error {
			if a.JSON {
				format = "json"
			}
			if format != "dotenv" && format != "json" && format != "shell" {
				return usagef("--format must be dotenv, json or shell")
			}
			if err := (&refRunOptions{Only: only}).check(); err != nil {
				return err
			}
			return a.export(ctx, m, ref, format, only)
		})
	cmd.Long = `Print the credentials run would inject for <agent> (each stored service within
its scope, or those of --only) as <SERVICE>_API_KEY variables:

  dotenv  NAME='value' lines, readable by run --env-file and dotenv tools
  json    one JSON object {"NAME": "value", …} (also --json)
  shell   export NAME='value' lines, quoted for any POSIX shell: eval "$(agentkeys export bot --format shell)"

Every read is audited. AWS credentials are minted by run (see run --help),
not exported. A warning goes to stderr when stdout is a terminal: prefer a
pipe or run, which never shows the values.`
	cmd.Flags().StringVar(&format, "format", "dotenv", "dotenv, json or shell")
	cmd.Flags().StringSliceVar(&only, "only", nil, "export only these services (comma-separated)")
	return cmd
}

func (a *App) export(ctx context.Context, m *Master, ref agentRef, format string, only []string) error {
	if err := a.refuseRevoked(ctx, m, ref); err != nil {
		return err
	}
	held, scope, err := agentServices(ctx, m, ref.Wallet)
	if err != nil {
		return err
	}
	svcs, err := onlyServices(only, scope, held)
	if err != nil {
		return err
	}
	values, err := readServices(ctx, m, ref.Wallet, svcs, serviceLabel)
	if err != nil {
		return err
	}
	defer func() {
		for _, v := range values {
			clear(v)
		}
	}()
	if a.stdoutIsTerminal() {
		fmt.Fprintln(a.Err, "agentkeys: warning: printing credentials to a terminal (pipe them, or use agentkeys run)")
	}
	if format == "json" {
		obj := make(map[string]string, len(svcs))
		for i, s := range svcs {
			obj[services.EnvNameFor(s)] = string(values[i])
		}
		return a.printJSON(obj)
	}
	var buf []byte
	defer func() { clear(buf) }()
	for i, s := range svcs {
		name := services.EnvNameFor(s)
		switch format {
		case "shell":
			buf = fmt.Appendf(buf, "export %s=%s\n", name, secretref.QuoteShell(string(values[i])))
		default:
			q, err := secretref.QuoteDotenv(string(values[i]))
			if errors.Is(err, secretref.ErrUnrepresentable) {
				return fmt.Errorf("service %s: its credential cannot be written as dotenv (use --format json or shell)", s)
			}
			buf = fmt.Appendf(buf, "%s=%s\n", name, q)
		}
	}
	_, err = a.Out.Write(buf)
	return err
}
