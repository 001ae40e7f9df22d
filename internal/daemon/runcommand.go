package daemon

import (
	"context"
	"errors"
	"os"
	"os/signal"
	"syscall"

	"github.com/spf13/cobra"

	"github.com/agentkeys/agentkeys/internal/envflag"
)

// forwardedSignals reach the command of `agentkeys-daemon run` instead of
// ending the client.
var forwardedSignals = []os.Signal{syscall.SIGINT, syscall.SIGTERM, syscall.SIGHUP, syscall.SIGQUIT, syscall.SIGUSR1, syscall.SIGUSR2}

// RunCommandOptions are the flags of `agentkeys-daemon run` (and of
// `agentkeys run --socket`).
type RunCommandOptions struct {
	Socket  string
	Only    []string
	Gateway bool
}

// RunViaDaemon runs argv through the daemon at o.Socket with the caller's
// environment, working directory, stdio and signals, and returns nil or a
// *ChildExit carrying the command's status. started, if set, hears which
// variables were injected.
func RunViaDaemon(ctx context.Context, o RunCommandOptions, argv []string, started func([]string)) error {
	wd, _ := os.Getwd()
	sigs := make(chan os.Signal, 16)
	signal.Notify(sigs, forwardedSignals...)
	defer signal.Stop(sigs)
	res, err := RunOverSocket(ctx, SocketRunOptions{
		Socket: o.Socket,
		Params: SocketRunParams{Command: argv, Only: o.Only, Env: os.Environ(), Dir: wd, Gateway: o.Gateway},
		Stdin:  os.Stdin, Stdout: os.Stdout, Stderr: os.Stderr, Signals: sigs, Started: started,
	})
	if err != nil {
		return err
	}
	if res.ExitCode != 0 || res.Signal != "" {
		return &ChildExit{Code: res.ExitCode, Signal: res.Signal}
	}
	return nil
}

func runCommand(lookup envflag.Lookup) *cobra.Command {
	var o RunCommandOptions
	c := &cobra.Command{
		Use:   "run [--socket S] [--only a,b] [--gateway] -- CMD [ARGS...]",
		Short: "Run a command with the agent's credentials, started by the running daemon (output masked)",
		Long: `Asks the daemon listening on the socket to run CMD with the credentials it holds: each service
the agent holds within its scope becomes <SERVICE>_API_KEY (upper case, '-' becomes '_'), and, when the
scope includes aws and the daemon has a broker, AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY,
AWS_SESSION_TOKEN (or the daemon's --aws-server endpoint) and AWS_REGION. --only a,b injects just those.

The daemon starts the command itself, confined as it confines run_with_credential (--child-user,
--child-landlock), from this shell's environment (without AGENTKEYS_* variables) and working directory,
and streams its stdout and stderr back with every form of the injected secrets replaced by ****; this
shell's stdin is forwarded, and SIGINT, SIGTERM, SIGHUP, SIGQUIT, SIGUSR1 and SIGUSR2 are passed on.
No credential value crosses the socket, so this works in secret-free mode (--no-get-credential).
Each credential read is audited by the backend. The exit status is the command's (128+N for signal N).
--gateway points the command at the daemon's credential gateway instead of injecting the keys it covers.`,
		SilenceUsage:  true,
		SilenceErrors: true,
		RunE: func(cmd *cobra.Command, args []string) error {
			if cmd.ArgsLenAtDash() != 0 || len(args) == 0 {
				return envflag.AsUsage(errors.New("put the command after --: agentkeys-daemon run [--socket S] -- CMD [ARGS...]"))
			}
			// The root context ends on SIGINT/SIGTERM; those belong to the
			// command here.
			return RunViaDaemon(context.WithoutCancel(cmd.Context()), o, args, nil)
		},
	}
	c.SetFlagErrorFunc(func(c *cobra.Command, err error) error { return envflag.FlagError(c.Flags(), err) })
	b := envflag.New(c.Flags(), lookup)
	b.String(&o.Socket, "socket", EnvSocket, "", "daemon socket (default $XDG_RUNTIME_DIR/agentkeys/agentkeys.sock)")
	b.CSV(&o.Only, "only", "", nil, "inject only these services (comma separated; aws for AWS credentials)")
	b.Bool(&o.Gateway, "gateway", "", false, "point the command at the daemon's credential gateway (<SERVICE>_BASE_URL) instead of injecting the keys it covers")
	return c
}
