package cli

import (
	"context"

	"github.com/spf13/cobra"

	"github.com/agentkeys/agentkeys/internal/agentkeys"
)

func (a *App) newLinkCmd() *cobra.Command {
	var alias, email, typ, val string
	cmd := a.agentCommand("link <agent> (--alias NAME | --email ADDRESS)", "Link an alias or an email address to an agent wallet", false,
		func(ctx context.Context, m *Master, ref agentRef) error {
			if err := m.Client.LinkIdentity(ctx, m.Session.Token, typ, val, ref.Wallet); err != nil {
				return err
			}
			if a.JSON {
				return a.printJSON(map[string]any{"agent": ref.Wallet, "identity_type": typ, "identity_value": val})
			}
			note := ""
			if typ == "email" {
				note = " (unverified: an e-mail link is first-come-first-served and is never trusted as a daemon's --parent)"
			}
			a.printf("Linked agent=%s %s=%s%s%s\n", ref.Wallet, typ, val, ref.nameSuffix(), note)
			return nil
		})
	// The flags are checked before the session is loaded.
	cmd.PreRunE = func(*cobra.Command, []string) error {
		switch {
		case alias != "" && email != "":
			return usagef("give --alias or --email, not both")
		case alias != "":
			if agentkeys.ValidAlias(alias) != nil {
				return usagef("--alias %q: use lower-case letters, digits, '.', '_' and '-', starting with a letter or digit", alias)
			}
			typ, val = "alias", alias
		case email != "":
			id, err := agentkeys.ParseIdentityAs(agentkeys.KindEmail, email)
			if err != nil {
				return usagef("--email %q is not an email address", email)
			}
			typ, val = string(id.Kind), id.Value
		default:
			return usagef("give --alias NAME or --email ADDRESS")
		}
		return nil
	}
	cmd.Flags().StringVar(&alias, "alias", "", "alias to link")
	cmd.Flags().StringVar(&email, "email", "", "email address to link")
	return cmd
}

func (a *App) newInboxCmd() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "inbox",
		Short: "Mock email inboxes of agents (development backends)",
	}
	provision := a.agentCommand("provision [<agent>]", "Create an inbox for an agent (default: yourself); print its address", true,
		func(ctx context.Context, m *Master, ref agentRef) error {
			addr, err := m.Client.ProvisionInbox(ctx, m.Session.Token, ref.Wallet)
			if err != nil {
				return err
			}
			if a.JSON {
				return a.printJSON(map[string]any{"agent": ref.Wallet, "address": addr})
			}
			a.printf("%s\n", addr)
			return nil
		})
	list := a.agentCommand("list [<agent>]", "List an agent's inbox addresses (default: yours)", true,
		func(ctx context.Context, m *Master, ref agentRef) error {
			addrs, err := m.Client.ListInboxes(ctx, m.Session.Token, ref.Wallet)
			if err != nil {
				return err
			}
			if a.JSON {
				return a.printJSON(map[string]any{"agent": ref.Wallet, "addresses": addrs})
			}
			for _, s := range addrs {
				a.printf("%s\n", s)
			}
			return nil
		})
	cmd.AddCommand(provision, list)
	return group(cmd)
}
