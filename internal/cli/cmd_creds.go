package cli

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"unicode/utf8"

	"github.com/spf13/cobra"

	"github.com/agentkeys/agentkeys/internal/agentkeys"
	"github.com/agentkeys/agentkeys/internal/daemon"
	"github.com/agentkeys/agentkeys/internal/envflag"
)

// maxSecret bounds a credential read from stdin (the backend's limit).
const maxSecret = 64 << 10

func validServiceArg(s string) error {
	if err := agentkeys.ValidateService(s); err != nil {
		return usagef("service: %v", err)
	}
	return nil
}

// readSecret reads a credential: a hidden prompt on a terminal, else all of
// stdin minus one trailing newline. Never argv.
func (a *App) readSecret(service string) ([]byte, error) {
	if a.stdinIsTerminal() {
		fmt.Fprintf(a.Err, "Credential for %s (input hidden): ", service)
		b, err := a.readPassword(int(a.In.Fd()))
		fmt.Fprintln(a.Err)
		if err != nil {
			return nil, fmt.Errorf("read credential from the terminal: %w", err)
		}
		if len(b) == 0 {
			return nil, errors.New("empty credential; nothing stored")
		}
		return b, nil
	}
	if a.In == nil {
		return nil, errors.New("no stdin to read the credential from")
	}
	b, err := io.ReadAll(io.LimitReader(a.In, maxSecret+3))
	if err != nil {
		clear(b)
		return nil, fmt.Errorf("read credential from stdin: %w", err)
	}
	v := bytes.TrimSuffix(b, []byte("\n"))
	v = bytes.TrimSuffix(v, []byte("\r"))
	if len(v) > maxSecret {
		clear(b)
		return nil, fmt.Errorf("credential on stdin exceeds %d bytes", maxSecret)
	}
	if len(v) == 0 {
		return nil, withHint(errors.New("empty credential on stdin; nothing stored"),
			"pipe the credential in, e.g. `agentkeys store <agent> <service> < keyfile`")
	}
	return v, nil
}

func (a *App) newStoreCmd() *cobra.Command {
	return &cobra.Command{
		Use:   "store <agent> <service>",
		Short: "Store an agent's credential for a service (from stdin or a hidden prompt)",
		Long: `Store the credential of <agent> for <service>. The value is read from stdin
when stdin is not a terminal (one trailing newline is dropped), else from a
hidden prompt. It is never taken from the command line.`,
		Args:              exactArgs(2, "<agent> <service>"),
		ValidArgsFunction: a.completeAgents,
		RunE: func(cmd *cobra.Command, args []string) error {
			if err := validServiceArg(args[1]); err != nil {
				return err
			}
			m, ref, err := a.withAgent(cmd.Context(), args[0])
			if err != nil {
				return err
			}
			if ref.Wallet != m.Session.Wallet {
				if scope, err := m.Client.GetScope(cmdContext(cmd.Context()), m.Session.Token, ref.Wallet); err == nil {
					held, _ := m.Client.ListCredentials(cmdContext(cmd.Context()), m.Session.Token, ref.Wallet)
					if scope != nil {
						held = append(held, scope.Services...)
					}
					a.warnUnknownServices(args[1:2], scope, held)
				}
			}
			secret, err := a.readSecret(args[1])
			if err != nil {
				return err
			}
			defer clear(secret)
			if err := m.Client.StoreCredential(cmdContext(cmd.Context()), m.Session.Token, ref.Wallet, args[1], secret); err != nil {
				return err
			}
			if a.JSON {
				out := map[string]any{"agent": ref.Wallet, "service": args[1], "stored": true}
				if ref.Name != "" {
					out["name"] = ref.Name
				}
				return a.printJSON(out)
			}
			a.printf("Stored credential for agent=%s service=%s%s\n", ref.Wallet, args[1], ref.nameSuffix())
			return nil
		},
	}
}

func (a *App) newReadCmd() *cobra.Command {
	var (
		noNewline bool
		socket    string
	)
	cmd := &cobra.Command{
		Use:   "read (<agent> <service> | --socket PATH <service>)",
		Short: "Print an agent's credential for a service (from the backend, or from the sandbox daemon with --socket)",
		Long: `Print a credential. On the master's machine: read <agent> <service>, with the
master's session. Inside a sandbox: read --socket PATH <service> asks the
running agentkeys-daemon over its Unix socket (AGENTKEYS_SOCKET also selects
it), so the sandbox never holds a session token itself.`,
		Args: func(cmd *cobra.Command, args []string) error {
			if socket != "" {
				return exactArgs(1, "<service>")(cmd, args)
			}
			return exactArgs(2, "<agent> <service>")(cmd, args)
		},
		ValidArgsFunction: a.completeAgents,
		RunE: func(cmd *cobra.Command, args []string) error {
			service := args[len(args)-1]
			if err := validServiceArg(service); err != nil {
				return err
			}
			var (
				v      []byte
				err    error
				wallet string
			)
			if socket != "" {
				v, wallet, err = readViaSocket(cmdContext(cmd.Context()), socket, service)
			} else {
				m, ref, werr := a.withAgent(cmd.Context(), args[0])
				if werr != nil {
					return werr
				}
				wallet = string(ref.Wallet)
				v, err = m.Client.ReadCredential(cmdContext(cmd.Context()), m.Session.Token, ref.Wallet, service)
			}
			if err != nil {
				return err
			}
			defer clear(v)
			if a.JSON {
				out := map[string]any{"agent": wallet, "service": service}
				if utf8.Valid(v) {
					out["credential"] = string(v)
				} else {
					out["credential_base64"] = v // []byte encodes as base64
				}
				return a.printJSON(out)
			}
			if _, err := a.Out.Write(v); err != nil {
				return err
			}
			if !noNewline {
				a.printf("\n")
			}
			return nil
		},
	}
	cmd.Flags().BoolVarP(&noNewline, "no-newline", "n", false, "do not print a newline after the value")
	envflag.New(cmd.Flags(), nil).String(&socket, "socket", daemon.EnvSocket, "", "read through the agentkeys-daemon listening on this Unix socket")
	return cmd
}

// readViaSocket asks a running daemon for a credential. Daemon error codes
// become CLI errors with hints.
func readViaSocket(ctx context.Context, path, service string) ([]byte, string, error) {
	c, err := daemon.DialSocket(ctx, path)
	if err != nil {
		return nil, "", withHint(err, "is agentkeys-daemon running with --socket %s?", path)
	}
	defer c.Close()
	st, err := c.Status(ctx)
	if err != nil {
		return nil, "", err
	}
	v, err := c.Read(ctx, service)
	var re *daemon.RPCError
	if errors.As(err, &re) && re.Code == daemon.CodeDenied {
		return nil, "", withHint(err, "the agent's scope does not include %s; ask its master to run `agentkeys scope set`", service)
	}
	return v, string(st.Wallet), err
}

func (a *App) newListCmd() *cobra.Command {
	return a.agentCommand("list <agent>", "List the services an agent holds credentials for", false,
		func(ctx context.Context, m *Master, ref agentRef) error {
			svcs, err := m.Client.ListCredentials(ctx, m.Session.Token, ref.Wallet)
			if err != nil {
				return err
			}
			if svcs == nil {
				svcs = []string{}
			}
			if a.JSON {
				return a.printJSON(map[string]any{"agent": ref.Wallet, "services": svcs})
			}
			for _, s := range svcs {
				a.printf("%s\n", s)
			}
			return nil
		})
}
