package cli

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"strings"

	"github.com/spf13/cobra"

	"github.com/agentkeys/agentkeys/internal/agentkeys"
	"github.com/agentkeys/agentkeys/internal/backendclient"
)

func (a *App) newRevokeCmd() *cobra.Command {
	var self bool
	cmd := &cobra.Command{
		Use:   "revoke [<agent> | --self]",
		Short: "Revoke an agent's sessions, or with --self this profile's own session",
		Long: `With <agent>: revoke every session of that agent wallet and its sub-agents;
its credentials stay (see teardown). With --self: revoke this profile's
master session (and every agent session minted from it) and wipe it locally.

Without <agent> or --self, revoke asks for confirmation on a terminal and
refuses elsewhere (exit 2), so one forgotten word cannot log everything out.
Revoking what is already revoked succeeds and says so.`,
		Args:              maxArgs(1, "[<agent>]"),
		ValidArgsFunction: a.completeAgents,
		RunE: func(cmd *cobra.Command, args []string) error {
			ctx := cmdContext(cmd.Context())
			if self && len(args) > 0 {
				return usagef("revoke takes <agent> or --self, not both")
			}
			if len(args) == 0 && !self {
				if !a.stdinIsTerminal() {
					return usagef("revoke without <agent> would revoke this profile's own master session and every agent session minted from it; pass --self to do that, or name the agent")
				}
				ok, err := a.confirm(fmt.Sprintf("Revoke the master session of profile %q and every agent session minted from it?", a.Profile))
				if err != nil {
					return err
				}
				if !ok {
					return errors.New("revoke cancelled")
				}
			}
			type result struct {
				Revoked         agentkeys.Wallet `json:"revoked"`
				SessionsRevoked int              `json:"sessions_revoked"`
				LocalWiped      bool             `json:"local_session_wiped"`
				Already         bool             `json:"already_revoked"`
			}
			m, ref, err := a.withAgent(cmd.Context(), optionalArg(args))
			if len(args) == 0 && errors.Is(err, errNoSession) {
				// Idempotent: nothing left to revoke.
				if a.JSON {
					return a.printJSON(map[string]any{"revoked": nil, "sessions_revoked": 0, "local_session_wiped": false, "already_revoked": true})
				}
				a.printf("Profile %q has no session: nothing to revoke.\n", a.Profile)
				return nil
			}
			if err != nil {
				return err
			}
			st, err := a.Store()
			if err != nil {
				return err
			}
			if len(args) == 0 {
				n, err := m.Client.RevokeSession(ctx, m.Session.Token, m.Session.Token)
				already := errors.Is(err, backendclient.ErrUnauthorized)
				if err != nil && !already {
					return err
				}
				if err := st.Delete(a.Profile); err != nil {
					return fmt.Errorf("the session was revoked on the backend, but the local copy could not be fully removed: %w", err)
				}
				if a.JSON {
					return a.printJSON(result{m.Session.Wallet, n, true, already})
				}
				if already {
					a.printf("The session of wallet=%s was already invalid. Local session wiped. Run `agentkeys init` to log in again.\n", m.Session.Wallet)
				} else {
					a.printf("Revoked current session for wallet=%s. Local session wiped. Run `agentkeys init` to log in again.\n", m.Session.Wallet)
				}
				return nil
			}
			n, err := m.Client.RevokeWallet(ctx, m.Session.Token, ref.Wallet)
			// The backend answers 404 when the wallet has no active session
			// left: revoking it again is not a failure.
			already := errors.Is(err, backendclient.ErrNotFound)
			if err != nil && !already {
				return err
			}
			own := ref.Wallet == m.Session.Wallet
			if own {
				if err := st.Delete(a.Profile); err != nil {
					return fmt.Errorf("the wallet's sessions were revoked, but the local session could not be fully removed: %w", err)
				}
			}
			if a.JSON {
				return a.printJSON(result{ref.Wallet, n, own, already})
			}
			switch {
			case own:
				a.printf("Revoked %s (was your own session — local state wiped, run `agentkeys init` to log in again).\n", ref.tag())
			case already:
				a.printf("%s has no active session: already revoked.\n", ref.tag())
			default:
				a.printf("Revoked %s (%d session(s)).\n", ref.tag(), n)
			}
			return nil
		},
	}
	cmd.Flags().BoolVar(&self, "self", false, "revoke this profile's own master session (required without <agent> when stdin is not a terminal)")
	return cmd
}

// lines is the one buffered reader of stdin: every prompt reads through
// it, so that a line typed ahead is not lost between prompts.
func (a *App) lines() *bufio.Reader {
	if a.stdin == nil {
		a.stdin = bufio.NewReader(a.In)
	}
	return a.stdin
}

// readLine reads one line of stdin ("" at its end).
func (a *App) readLine() string {
	line, _ := a.lines().ReadString('\n')
	return line
}

// confirm asks a yes/no question on the terminal; only y or yes accepts.
func (a *App) confirm(question string) (bool, error) {
	fmt.Fprintf(a.Err, "%s [y/N] ", question)
	line, err := a.lines().ReadString('\n')
	if err != nil && line == "" {
		return false, nil
	}
	switch strings.ToLower(strings.TrimSpace(line)) {
	case "y", "yes":
		return true, nil
	}
	return false, nil
}

func (a *App) newTeardownCmd() *cobra.Command {
	var yes, self bool
	cmd := a.agentCommand("teardown <agent> | --self", "Delete an agent (its credentials, sessions, links and inboxes, and its sub-agents'), or with --self everything of this master", true,
		func(ctx context.Context, m *Master, ref agentRef) error {
			own := ref.Wallet == m.Session.Wallet
			question := fmt.Sprintf("Tear down agent %s? Its credentials and sessions, and its sub-agents', are deleted.", ref)
			if own {
				question = fmt.Sprintf("Tear down your own master wallet %s? EVERY agent and EVERY credential of profile %q is deleted and every session revoked.", ref.Wallet, a.Profile)
			}
			if !yes {
				if !a.stdinIsTerminal() {
					return usagef("refusing to tear down %s without confirmation (stdin is not a terminal): pass --yes to confirm", ref)
				}
				ok, err := a.confirm(question)
				if err != nil {
					return err
				}
				if !ok {
					return errors.New("teardown cancelled")
				}
			}
			res, err := m.Client.Teardown(ctx, m.Session.Token, ref.Wallet)
			if err != nil {
				return err
			}
			if own {
				st, err := a.Store()
				if err != nil {
					return err
				}
				if err := st.Delete(a.Profile); err != nil {
					return fmt.Errorf("the master wallet was torn down, but the local session could not be fully removed: %w", err)
				}
			}
			if a.JSON {
				return a.printJSON(map[string]any{
					"agent": ref.Wallet, "wallets_removed": res.WalletsRemoved,
					"sessions_revoked": res.SessionsRevoked, "credentials_removed": res.CredentialsRemoved,
					"local_session_wiped": own,
				})
			}
			a.printf("Torn down %s (wallets: %d, sessions revoked: %d, credentials removed: %d)\n",
				ref.tag(), res.WalletsRemoved, res.SessionsRevoked, res.CredentialsRemoved)
			if own {
				a.printf("That was your own master wallet: local session wiped. Run `agentkeys init` to log in again.\n")
			}
			return nil
		})
	cmd.Long = `Delete an agent for good: the backend revokes its sessions and deletes its
credentials, identity links and inboxes, and those of its sub-agents, in one
transaction.

With --self (or this master's own wallet as <agent>): the same for the
master's whole tree — every agent is deleted, every credential removed,
every session revoked, and the local session wiped. The master's identity
can log in again with ` + "`agentkeys init`" + ` and finds an empty wallet.

Asks for confirmation on a terminal; elsewhere --yes is required (without
it teardown refuses with exit status 2).`
	oneAgent := cmd.Args
	cmd.Args = func(c *cobra.Command, args []string) error {
		if err := oneAgent(c, args); err != nil {
			return err
		}
		if self == (len(args) == 1) {
			return usagef("teardown takes <agent> or --self (this master's own wallet), exactly one of them")
		}
		return nil
	}
	cmd.Flags().BoolVarP(&yes, "yes", "y", false, "do not ask for confirmation")
	cmd.Flags().BoolVar(&self, "self", false, "tear down this master's own wallet: every agent, credential and session")
	return cmd
}
