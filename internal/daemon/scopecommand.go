package daemon

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"time"

	"github.com/spf13/cobra"

	"github.com/agentkeys/agentkeys/internal/envflag"
)

func requestScopeCommand(lookup envflag.Lookup) *cobra.Command {
	var (
		socket   string
		services []string
		wait     time.Duration
		asJSON   bool
	)
	c := &cobra.Command{
		Use:   "request-scope --services a,b [--socket S] [--wait D]",
		Short: "Ask the agent's master to add services to its scope (approved with agentkeys approve)",
		Long: `Asks the running daemon to open a scope-change request for its agent: the current scope plus
--services. The master sees it in "agentkeys pending" and approves it with the OTP printed here:

  Pair code: XXXX-XXXX  OTP: NNNNNN

  agentkeys approve XXXX-XXXX --otp NNNNNN      (on the master's machine)

Then it waits (--wait, default 5m; 0 returns at once) for the decision and exits 0 if approved, 1 if
denied, locked or expired. The request is bound to the agent's own master and carries the agent's
session, so nobody else can approve it, and it is in the master's audit log. With --json the request
({"request_id","pair_code","otp","expires_at","services","added","read_only","approve"}) is printed on
stdout, and the decision as {"status"} after it.`,
		Args:          cobra.NoArgs,
		SilenceUsage:  true,
		SilenceErrors: true,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if len(services) == 0 {
				return envflag.AsUsage(errors.New("--services is required (comma separated)"))
			}
			if wait < 0 {
				return envflag.AsUsage(errors.New("--wait must not be negative"))
			}
			ctx := cmd.Context()
			dctx, cancel := context.WithTimeout(ctx, 30*time.Second)
			sc, err := DialSocket(dctx, socket)
			cancel()
			if err != nil {
				return err
			}
			defer sc.Close()
			rctx, cancel := context.WithTimeout(ctx, 60*time.Second)
			r, err := sc.RequestScope(rctx, services)
			cancel()
			if err != nil {
				return err
			}
			enc := json.NewEncoder(os.Stdout)
			if asJSON {
				enc.Encode(r)
			}
			fmt.Fprintf(os.Stderr, "Scope request for services: %v (adds %v)\nPair code: %s  OTP: %s\nOn the master's machine: agentkeys pending, then %s (expires %s)\n",
				r.Services, r.Added, r.PairCode, r.OTP, r.Approve, r.ExpiresAt)
			if wait == 0 {
				return nil
			}
			deadline := time.Now().Add(wait)
			status := ScopePending
			for status == ScopePending && time.Now().Before(deadline) {
				step := min(time.Until(deadline), 45*time.Second)
				cctx, cancel := context.WithTimeout(ctx, step+15*time.Second)
				status, err = sc.ScopeRequestStatus(cctx, r.RequestID, step)
				cancel()
				if err != nil {
					return err
				}
			}
			if asJSON {
				enc.Encode(map[string]string{"status": status})
			}
			switch status {
			case ScopeApproved:
				fmt.Fprintln(os.Stderr, "Approved: the agent's scope now includes", r.Services)
				return nil
			case ScopePending:
				return fmt.Errorf("no decision within %s (the request stays open until %s)", wait, r.ExpiresAt)
			}
			return fmt.Errorf("the scope request was %s", status)
		},
	}
	c.SetFlagErrorFunc(func(c *cobra.Command, err error) error { return envflag.FlagError(c.Flags(), err) })
	b := envflag.New(c.Flags(), lookup)
	b.String(&socket, "socket", EnvSocket, "", "daemon socket (default $XDG_RUNTIME_DIR/agentkeys/agentkeys.sock)")
	b.CSV(&services, "services", "", nil, "services to add to the agent's scope (comma separated)")
	b.Duration(&wait, "wait", "", 5*time.Minute, "how long to wait for the master's decision (0: do not wait)")
	b.Bool(&asJSON, "json", "", false, "print the request (and the decision) as JSON on stdout")
	return c
}
