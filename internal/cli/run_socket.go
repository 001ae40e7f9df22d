package cli

import (
	"context"
	"errors"
	"os"
	"os/signal"
	"strings"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"

	"github.com/agentkeys/agentkeys/internal/daemon"
)

// run --socket: inside a sandbox, `agentkeys run --socket S -- CMD` (no
// <agent>) asks the agentkeys-daemon listening on S to run CMD with the
// credentials it holds, exactly as `agentkeys-daemon run` does: the daemon
// starts the command, confined as it confines run_with_credential, and
// streams its output back masked; stdin and signals are forwarded; no
// credential value crosses the socket.

// addRunSocketFlag registers run's --socket flag.
func addRunSocketFlag(cmd *cobra.Command, socket *string) {
	cmd.Flags().StringVar(socket, "socket", "",
		"inside a sandbox: have the agentkeys-daemon listening on this Unix socket run the command with the credentials it holds (no <agent>; output masked)")
}

// masterOnlyRunFlags are run's flags that mean nothing when the daemon
// runs the command (it holds the agent's session and always masks).
var masterOnlyRunFlags = []string{"env", "session-file", "region", "aws-server", "no-aws", "no-masking", "env-file", "watch", "watch-signal", "watch-interval"}

// runViaSocket is `run --socket S -- CMD`. --only and --gateway, when run
// has them, narrow the credentials or point the command at the daemon's
// gateway.
func (a *App) runViaSocket(cmd *cobra.Command, socket string, args []string) error {
	dash := cmd.ArgsLenAtDash()
	switch {
	case dash < 0:
		return usagef("missing -- before the command: agentkeys run --socket PATH -- <command> [args...]")
	case dash != 0:
		return usagef("run --socket takes no <agent>: the daemon runs the command as the agent it holds")
	case len(args) == 0:
		return usagef("no command after --")
	}
	for _, name := range masterOnlyRunFlags {
		if f := cmd.Flags().Lookup(name); f != nil && f.Changed {
			return usagef("--%s does not apply with --socket (the daemon holds the agent's credentials and always masks)", name)
		}
	}
	o := daemon.SocketRunOptions{Socket: socket, Stdout: a.Out, Stderr: a.Err,
		Params:  daemon.SocketRunParams{Command: args, Env: os.Environ(), Only: listFlag(cmd.Flags(), "only"), Gateway: boolFlag(cmd.Flags(), "gateway")},
		Started: func(names []string) { a.notef("the daemon injects %s", displayList(names)) },
	}
	o.Params.Dir, _ = os.Getwd()
	if a.In != nil {
		o.Stdin = a.In
	}
	sigs := make(chan os.Signal, 16)
	signal.Notify(sigs, forwardedSignals...)
	defer signal.Stop(sigs)
	o.Signals = sigs
	res, err := daemon.RunOverSocket(context.WithoutCancel(cmdContext(cmd.Context())), o)
	if err != nil {
		var re *daemon.RPCError
		switch {
		case errors.As(err, &re) && re.Code == daemon.CodeDenied:
			return withHint(err, "the agent's scope does not allow this; ask for more with `agentkeys-daemon request-scope --services …`")
		case errors.As(err, &re):
			return err
		}
		return withHint(err, "is agentkeys-daemon running with --socket %s?", socket)
	}
	if res.ExitCode != 0 {
		return &ExitError{Code: res.ExitCode}
	}
	return nil
}

// listFlag is the value of a comma-separated list flag, or nil when run
// has no such flag.
func listFlag(fs *pflag.FlagSet, name string) []string {
	f := fs.Lookup(name)
	if f == nil || !f.Changed {
		return nil
	}
	if sv, ok := f.Value.(pflag.SliceValue); ok {
		return sv.GetSlice()
	}
	var out []string
	for _, s := range strings.Split(f.Value.String(), ",") {
		if s = strings.TrimSpace(s); s != "" {
			out = append(out, s)
		}
	}
	return out
}

func boolFlag(fs *pflag.FlagSet, name string) bool {
	f := fs.Lookup(name)
	return f != nil && f.Value.String() == "true"
}
