package cli

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/agentkeys/agentkeys/internal/agentkeys"
	"github.com/agentkeys/agentkeys/internal/keychain"
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
		Short: "Create and list agents (child wallets with a scope)",
	}
	cmd.AddCommand(a.newAgentCreateCmd(), a.newAgentListCmd())
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
(and to reading them with --read-only). The name is local to this profile;
<agent> arguments of other commands accept it or the 0x wallet.

--session-out FILE writes the agent's own session (mode 0600) in the session
file format {"session","wallet","backend"}, for agentkeys-daemon --session-file.
Without it, the agent's session is discarded and only the master acts for it.`,
		Args: exactArgs(1, "<name>"),
		RunE: func(cmd *cobra.Command, args []string) error {
			name := args[0]
			if err := validateAgentName(name); err != nil {
				return usagef("%v", err)
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

func (a *App) newAgentListCmd() *cobra.Command {
	return &cobra.Command{
		Use:   "list",
		Short: "List the agent names this profile knows",
		Args:  exactArgs(0, "none"),
		RunE: func(cmd *cobra.Command, _ []string) error {
			_, book, err := a.withBook()
			if err != nil {
				return err
			}
			type entry struct {
				Name   string           `json:"name"`
				Wallet agentkeys.Wallet `json:"wallet"`
			}
			list := []entry{}
			for _, n := range book.sortedNames() {
				list = append(list, entry{n, book.Agents[n]})
			}
			if a.JSON {
				return a.printJSON(map[string]any{"agents": list})
			}
			for _, e := range list {
				a.printf("%-24s %s\n", e.Name, e.Wallet)
			}
			return nil
		},
	}
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
	m, book, err := a.withBook()
	if err != nil {
		return err
	}
	if w, ok := book.Agents[in.Name]; ok {
		return withHint(fmt.Errorf("profile %q already has an agent named %q (%s)", a.Profile, in.Name, w),
			"choose another name, or `agentkeys teardown %s` first", in.Name)
	}
	scope := in.Scope
	if scope.Services == nil {
		scope.Services = []string{}
	}
	child, err := m.Client.CreateChild(ctx, m.Session.Token, scope, in.TTL)
	if err != nil {
		return err
	}
	res := agentCreateResult{Name: in.Name, Wallet: child.Wallet, Scope: scope}
	if child.ExpiresAt.Unix() > 0 {
		res.ExpiresAt = child.ExpiresAt.UTC().Format(time.RFC3339)
	}
	book.Agents[in.Name] = child.Wallet
	var errs []error
	if err := a.saveBook(book); err != nil {
		errs = append(errs, fmt.Errorf("agent %s created, but its name could not be saved: %w", child.Wallet, err))
	}
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
