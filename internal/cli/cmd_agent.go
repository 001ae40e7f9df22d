package cli

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"github.com/agentkeys/agentkeys/internal/agentkeys"
	"github.com/agentkeys/agentkeys/internal/backendclient"
	"github.com/agentkeys/agentkeys/internal/keychain"
	"github.com/agentkeys/agentkeys/internal/textcheck"
)

// parseServices splits a comma-separated list, trims, drops empties,
// validates, sorts and de-duplicates.
func parseServices(flag, csv string) ([]string, error) {
	var out []string
	for _, s := range strings.Split(csv, ",") {
		s = strings.TrimSpace(s)
		if s == "" {
			continue
		}
		if err := agentkeys.ValidateService(s); err != nil {
			return nil, usagef("%s: %v", flag, err)
		}
		out = append(out, s)
	}
	sc, err := (&agentkeys.Scope{Services: out}).Normalize()
	if err != nil {
		return nil, usagef("%s: %v", flag, err)
	}
	return sc.Services, nil
}

// parseDuration accepts Go durations (90m, 1h30m) and whole days (7d).
func parseDuration(s string) (time.Duration, error) {
	if d, ok := strings.CutSuffix(s, "d"); ok {
		n, err := strconv.ParseUint(d, 10, 16)
		if err != nil {
			return 0, fmt.Errorf("invalid duration %q", s)
		}
		return time.Duration(n) * 24 * time.Hour, nil
	}
	d, err := time.ParseDuration(s)
	if err != nil {
		return 0, fmt.Errorf("invalid duration %q (use e.g. 90m, 12h or 7d)", s)
	}
	return d, nil
}

func (a *App) newAgentCmd() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "agent",
		Short: "Create, list and rename agents (child wallets with a scope)",
	}
	cmd.AddCommand(a.newAgentCreateCmd(), a.newAgentListCmd(), a.newAgentRenameCmd())
	return group(cmd)
}

type agentCreateResult struct {
	Name        string           `json:"name"`
	Wallet      agentkeys.Wallet `json:"wallet"`
	Scope       agentkeys.Scope  `json:"scope"`
	ExpiresAt   string           `json:"expires_at,omitempty"`
	SessionFile string           `json:"session_file,omitempty"`
}

func (a *App) newAgentCreateCmd() *cobra.Command {
	var (
		services   string
		readOnly   bool
		ttl        string
		sessionOut string
	)
	cmd := &cobra.Command{
		Use:   "create <name> --services a,b [--read-only] [--ttl D] [--session-out FILE]",
		Short: "Create an agent wallet with a scope; print its wallet",
		Long: `Create an agent: a child wallet of the master, limited to the listed services
(and to reading them with --read-only). The backend keeps the name, unique
among your agents, so every machine logged in as you (or recovered) sees
it; <agent> arguments of other commands accept it, an alias or e-mail made
with ` + "`agentkeys link`" + `, or the 0x wallet.

--session-out FILE writes the agent's own session (mode 0600) in the session
file format {"session","wallet","backend"}, for agentkeys-daemon --session-file.
Without it, the agent's session is discarded and only the master acts for it.`,
		Args: exactArgs(1, "<name>"),
		RunE: func(cmd *cobra.Command, args []string) error {
			name, err := parseAgentName("<name>", args[0])
			if err != nil {
				return err
			}
			if !cmd.Flags().Changed("services") {
				return usagef("--services is required (an agent is always scoped; --services '' grants nothing yet)")
			}
			svcs, err := parseServices("--services", services)
			if err != nil {
				return err
			}
			var d time.Duration
			if ttl != "" {
				if d, err = parseDuration(ttl); err != nil || d < time.Second {
					return usagef("--ttl: want a duration of at least 1s such as 12h or 7d")
				}
			}
			var outPath string
			if sessionOut != "" {
				if outPath, err = filepath.Abs(sessionOut); err != nil {
					return usagef("--session-out: %v", err)
				}
				if fi, err := os.Stat(filepath.Dir(outPath)); err != nil || !fi.IsDir() {
					return fmt.Errorf("--session-out: directory %s does not exist", filepath.Dir(outPath))
				}
				if fi, err := os.Stat(outPath); err == nil && fi.IsDir() {
					return fmt.Errorf("--session-out: %s is a directory", outPath)
				}
			}
			return a.runAgentCreate(cmdContext(cmd.Context()), agentCreateInput{
				Name: name, Scope: agentkeys.Scope{Services: svcs, ReadOnly: readOnly}, TTL: d, SessionOut: outPath})
		},
	}
	f := cmd.Flags()
	f.StringVar(&services, "services", "", "comma-separated services the agent may use (required)")
	f.BoolVar(&readOnly, "read-only", false, "the agent may read but not store credentials")
	f.StringVar(&ttl, "ttl", "", "lifetime of the agent's session (e.g. 12h, 7d; default: the backend's, never beyond the master's)")
	f.StringVar(&sessionOut, "session-out", "", "write the agent's session to FILE (mode 0600)")
	return cmd
}

// agentListEntry is one agent in `agent list --json`.
type agentListEntry struct {
	Name       string           `json:"name"`
	Wallet     agentkeys.Wallet `json:"wallet"`
	Parent     agentkeys.Wallet `json:"parent"`
	Scope      *agentkeys.Scope `json:"scope"`
	ExpiresAt  string           `json:"expires_at,omitempty"`
	LastUsedAt string           `json:"last_used_at,omitempty"`
}

func (a *App) newAgentListCmd() *cobra.Command {
	return &cobra.Command{
		Use:   "list",
		Short: "List your agents as the backend knows them: name, wallet, scope, expiry, last use",
		Long: `List the agents below your session, as the backend knows them (so the same
list on every machine logged in as you): name, wallet, scope, when its
session expires ("none" when it has no live session: revoked or expired)
and when it was last used (read from the audit log: its own requests, and
reads, stores or provisioning done for it). Torn-down agents are not listed.`,
		Args: exactArgs(0, "none"),
		RunE: func(cmd *cobra.Command, _ []string) error {
			ctx := cmdContext(cmd.Context())
			m, err := a.LoadMaster()
			if err != nil {
				return err
			}
			if _, err := a.migrateBook(ctx, m); err != nil {
				a.notef("%v", err)
			}
			agents, err := m.Client.ListAgents(ctx, m.Session.Token)
			if err != nil {
				return err
			}
			sortAgents(agents)
			list := make([]agentListEntry, 0, len(agents))
			for _, ag := range agents {
				list = append(list, agentListEntry{Name: ag.Name, Wallet: ag.Wallet, Parent: ag.Parent, Scope: ag.Scope,
					ExpiresAt: unixRFC3339(ag.ExpiresAt), LastUsedAt: unixRFC3339(ag.LastUsedAt)})
			}
			if a.JSON {
				return a.printJSON(map[string]any{"agents": list})
			}
			if len(list) == 0 {
				a.printf("No agents yet: create one with `agentkeys agent create NAME --services a,b`.\n")
				return nil
			}
			tw := tabwriter.NewWriter(a.Out, 0, 0, 2, ' ', 0)
			fmt.Fprintln(tw, "NAME\tWALLET\tSCOPE\tEXPIRES\tLAST USED")
			for _, e := range list {
				name, expires, last := cmp.Or(e.Name, "-"), cmp.Or(e.ExpiresAt, "none"), cmp.Or(e.LastUsedAt, "never")
				fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\n", textcheck.Escape(name), textcheck.Escape(string(e.Wallet)),
					textcheck.Escape(describeScope(e.Scope)), expires, last)
			}
			return tw.Flush()
		},
	}
}

// unixRFC3339 formats unix seconds as RFC 3339 UTC; 0 is "".
func unixRFC3339(sec int64) string {
	if sec == 0 {
		return ""
	}
	return time.Unix(sec, 0).UTC().Format(time.RFC3339)
}

func (a *App) newAgentRenameCmd() *cobra.Command {
	return &cobra.Command{
		Use:   "rename <agent> <new-name>",
		Short: "Give an agent a new name (names are unique among your agents)",
		Long: `Give an agent a new name on the backend. <agent> is its current name, an
alias or e-mail made with ` + "`agentkeys link`" + `, or its 0x wallet (an agent
without a name gets one this way). The old name stops working at once, on
every machine; a name another of your agents has is refused.`,
		Args:              exactArgs(2, "<agent> <new-name>"),
		ValidArgsFunction: a.completeAgents,
		RunE: func(cmd *cobra.Command, args []string) error {
			name, err := parseAgentName("<new-name>", args[1])
			if err != nil {
				return err
			}
			ctx := cmdContext(cmd.Context())
			m, ref, err := a.withAgent(ctx, args[0])
			if err != nil {
				return err
			}
			if ref.Wallet == m.Session.Wallet {
				return usagef("%s is your own wallet: only agents have names", ref.Wallet)
			}
			prev, err := m.Client.NameAgent(ctx, m.Session.Token, ref.Wallet, name)
			if err != nil {
				return nameError(err, name)
			}
			if a.JSON {
				return a.printJSON(map[string]any{"wallet": ref.Wallet, "name": name, "previous": prev})
			}
			if prev == "" {
				a.printf("Named agent=%s %q\n", ref.Wallet, name)
			} else {
				a.printf("Renamed agent=%s from %q to %q\n", ref.Wallet, prev, name)
			}
			return nil
		},
	}
}

// nameError explains the backend's 409 for a name that is taken.
func nameError(err error, name string) error {
	var apiErr *backendclient.Error
	if errors.As(err, &apiErr) && apiErr.Status == http.StatusConflict {
		return withHint(fmt.Errorf("the name %q is taken: %s", name, apiErr.Message),
			"pick another name; `agentkeys agent list` shows the names in use")
	}
	return err
}

// agentCreateInput is `agentkeys agent create` once its flags are parsed.
type agentCreateInput struct {
	Name       string
	Scope      agentkeys.Scope
	TTL        time.Duration // 0: the backend's default
	SessionOut string        // absolute path, or "" for none
}

// runAgentCreate creates the agent, names it in the profile and writes its
// session file when asked.
func (a *App) runAgentCreate(ctx context.Context, in agentCreateInput) error {
	m, err := a.LoadMaster()
	if err != nil {
		return err
	}
	if _, err := a.migrateBook(ctx, m); err != nil {
		a.notef("%v", err)
	}
	scope := in.Scope
	if scope.Services == nil {
		scope.Services = []string{}
	}
	child, err := m.Client.CreateNamedChild(ctx, m.Session.Token, in.Name, scope, in.TTL)
	if err != nil {
		return nameError(err, in.Name)
	}
	res := agentCreateResult{Name: in.Name, Wallet: child.Wallet, Scope: scope}
	if child.ExpiresAt.Unix() > 0 {
		res.ExpiresAt = child.ExpiresAt.UTC().Format(time.RFC3339)
	}
	var errs []error
	if in.SessionOut != "" {
		// The agent's session file names the profile's broker, so a
		// daemon started with it talks to that broker only.
		ks := keychain.Session{Token: child.Token, Wallet: child.Wallet, Backend: m.Session.Backend, Broker: m.Session.Broker}
		if child.ExpiresAt.Unix() > 0 {
			ks.ExpiresAt = child.ExpiresAt.Unix()
		}
		if err := keychain.WriteSessionFile(in.SessionOut, ks); err != nil {
			errs = append(errs, fmt.Errorf("agent %s created, but its session file could not be written: %w", child.Wallet, err))
		} else {
			res.SessionFile = in.SessionOut
		}
	}
	if err := errors.Join(errs...); err != nil {
		return err
	}
	if a.JSON {
		return a.printJSON(res)
	}
	a.printf("%s\n", child.Wallet)
	a.notef("created agent %q with scope %s", in.Name, describeScope(&scope))
	return nil
}
