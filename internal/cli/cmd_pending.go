package cli

import (
	"time"

	"github.com/spf13/cobra"

	"github.com/agentkeys/agentkeys/internal/authreq"
	"github.com/agentkeys/agentkeys/internal/backendclient"
)

func (a *App) newPendingCmd() *cobra.Command {
	return &cobra.Command{
		Use:   "pending",
		Short: "List the pairing, recovery and scope-change requests waiting for your approval",
		Long: `List the pending requests bound to this master, oldest first: pair and
recover requests that name it, and scope changes its agents asked for
(agentkeys-daemon request-scope, or the agent's MCP tool
agentkeys.request_scope). Each shows its pair code, what it asks for and
when it expires; OTPs are never shown here: approve with the one the agent
or daemon shows,

  agentkeys approve <pair-code> --otp <otp>

or refuse with agentkeys approve <pair-code> --deny. With --json: one
document {"requests":[…]} with the backend's fields.`,
		Args: exactArgs(0, "none"),
		RunE: func(cmd *cobra.Command, _ []string) error {
			m, err := a.LoadMaster()
			if err != nil {
				return err
			}
			list, err := m.Client.PendingAuthRequests(cmdContext(cmd.Context()), m.Session.Token)
			if err != nil {
				return err
			}
			if a.JSON {
				if list == nil {
					list = []backendclient.PendingRequest{}
				}
				return a.printJSON(map[string]any{"requests": list})
			}
			if len(list) == 0 {
				a.printf("No pending requests.\n")
				return nil
			}
			for _, p := range list {
				a.printf("%s  %s  %s\n", p.PairCode, p.RequestType, p.Description)
				if p.RequestType == authreq.TypeScopeChange {
					for _, l := range scopeChangeLines(p.CurrentScope, p.RequestedScope) {
						a.printf("    %s\n", l)
					}
				}
				a.printf("    expires %s (in %s); approve: agentkeys approve %s --otp <otp>\n",
					time.Unix(p.ExpiresAt, 0).UTC().Format(time.RFC3339), time.Until(time.Unix(p.ExpiresAt, 0)).Round(time.Second), p.PairCode)
			}
			return nil
		},
	}
}
