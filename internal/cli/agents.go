package cli

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"net/http"
	"os"
	"path/filepath"
	"sort"
	"strings"

	"github.com/spf13/cobra"

	"github.com/agentkeys/agentkeys/internal/agentkeys"
	"github.com/agentkeys/agentkeys/internal/api"
	"github.com/agentkeys/agentkeys/internal/backendclient"
	"github.com/agentkeys/agentkeys/internal/textcheck"
)

// Agent names live on the backend: `agent create`, `approve --name` and
// `agent rename` set them, `agent list` reads them, and every <agent>
// argument goes through one resolver (resolveAgent), which asks the backend
// to map a name, an alias or e-mail made with `link`, or a 0x wallet to a
// wallet of the caller's own tree.
//
// Earlier versions kept names in a per-profile file (agents.json). On first
// use (a name the backend does not know, `agent list`, `agent create`) the
// CLI moves the names in that file to the backend, for agents the backend
// has no name for yet, and deletes the file.

// agentsFileName is the former local name → wallet map of a profile.
const agentsFileName = "agents.json"

// agentBook is the former local map of agent names, read only to move
// them to the backend. It belongs to one master on one backend.
type agentBook struct {
	Master  agentkeys.Wallet            `json:"master"`
	Backend string                      `json:"backend"`
	Agents  map[string]agentkeys.Wallet `json:"agents"`
}

// parseAgentName checks a name given on the command line (usage error).
func parseAgentName(flag, s string) (string, error) {
	name, err := agentkeys.ParseAgentName(s)
	if err != nil {
		return "", usagef("%s: %v", flag, err)
	}
	return name, nil
}

func (a *App) agentsPath() (string, error) {
	st, err := a.Store()
	if err != nil {
		return "", err
	}
	return filepath.Join(st.Dir, a.Profile, agentsFileName), nil
}

// loadBook reads the profile's former agent names for master m; ok is
// false when there is no such file or it belongs to another master.
func (a *App) loadBook(m *Master) (book *agentBook, path string, ok bool, err error) {
	path, err = a.agentsPath()
	if err != nil {
		return nil, "", false, err
	}
	f, err := os.Open(path)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, path, false, nil
	}
	if err != nil {
		return nil, path, false, fmt.Errorf("open %s: %w", path, err)
	}
	defer f.Close()
	var onDisk agentBook
	if err := json.NewDecoder(io.LimitReader(f, 4<<20)).Decode(&onDisk); err != nil {
		return nil, path, false, fmt.Errorf("%s is not a valid agent map; fix or delete it", path)
	}
	if onDisk.Master != m.Session.Wallet || trimURL(onDisk.Backend) != m.Session.Backend {
		return nil, path, false, nil
	}
	return &onDisk, path, true, nil
}

// migrateBook moves the profile's former local names to the backend (for
// agents the backend has no name for) and deletes the local file. It
// reports how many names it moved; a name the backend refuses is reported
// and dropped.
func (a *App) migrateBook(ctx context.Context, m *Master) (int, error) {
	book, path, ok, err := a.loadBook(m)
	if err != nil || !ok {
		return 0, err
	}
	agents, err := m.Client.ListAgents(ctx, m.Session.Token)
	if err != nil {
		return 0, err
	}
	named := map[agentkeys.Wallet]string{}
	for _, ag := range agents {
		named[ag.Wallet] = ag.Name
	}
	names := make([]string, 0, len(book.Agents))
	for n := range book.Agents {
		names = append(names, n)
	}
	sort.Strings(names)
	moved := 0
	for _, n := range names {
		w, err := agentkeys.ParseWallet(string(book.Agents[n]))
		name, nerr := agentkeys.ParseAgentName(n)
		if err != nil || nerr != nil {
			continue
		}
		cur, known := named[w]
		if !known || cur != "" {
			continue // torn down, not ours, or already named on the backend
		}
		if _, err := m.Client.NameAgent(ctx, m.Session.Token, w, name); err != nil {
			fmt.Fprintf(a.Err, "agentkeys: could not move the local agent name %q (%s) to the backend: %v\n", name, w, err)
			continue
		}
		moved++
	}
	if moved > 0 {
		fmt.Fprintf(a.Err, "agentkeys: moved %d agent name(s) from %s to the backend\n", moved, path)
	}
	if err := os.Remove(path); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return moved, fmt.Errorf("remove %s: %w", path, err)
	}
	return moved, nil
}

// agentRef is a resolved <agent> argument.
type agentRef struct {
	Wallet agentkeys.Wallet
	Name   string // the backend's name for it, if any
}

// String is how a message names the agent: "helper (0x…)" or the wallet.
func (r agentRef) String() string {
	if r.Name != "" {
		return fmt.Sprintf("%s (%s)", r.Name, r.Wallet)
	}
	return string(r.Wallet)
}

// tag is "agent=0x…" followed by " (name)" when it has one.
func (r agentRef) tag() string {
	if r.Name != "" {
		return fmt.Sprintf("agent=%s (%s)", r.Wallet, r.Name)
	}
	return "agent=" + string(r.Wallet)
}

// nameSuffix is " name=<name>", or "" without a name: appended to the
// lines whose format the original CLI had (Stored credential for
// agent=<wallet> service=<service>, Linked agent=<wallet> alias=<alias>),
// so scripts that parse them keep working.
func (r agentRef) nameSuffix() string {
	if r.Name == "" {
		return ""
	}
	return " name=" + r.Name
}

// resolveAgent turns an <agent> argument (a name, an alias or e-mail made
// with `link`, or a 0x wallet) into a wallet of m's own tree, asking the
// backend. A name the backend does not know but the profile's former local
// file does is moved to the backend first.
func (a *App) resolveAgent(ctx context.Context, m *Master, arg string) (agentRef, error) {
	id, err := agentkeys.ParseIdentity(arg)
	if err != nil {
		return agentRef{}, usagef("agent %q: %v", textcheck.Escape(arg), err)
	}
	res, err := m.Client.ResolveAgent(ctx, m.Session.Token, id.Value)
	if isNotFound(err) {
		if moved, merr := a.migrateBook(ctx, m); merr == nil && moved > 0 {
			res, err = m.Client.ResolveAgent(ctx, m.Session.Token, id.Value)
		}
	}
	if isNotFound(err) {
		return agentRef{}, withHint(fmt.Errorf("unknown agent %q", id.Value),
			"`agentkeys agent list` shows your agents' names; an alias made with `agentkeys link` or the 0x wallet works too")
	}
	if err != nil {
		return agentRef{}, err
	}
	return agentRef{Wallet: res.Wallet, Name: res.Name}, nil
}

// isNotFound reports whether err is the backend's 404.
func isNotFound(err error) bool {
	var apiErr *backendclient.Error
	return errors.As(err, &apiErr) && apiErr.Status == http.StatusNotFound
}

// withAgent loads the profile's master session and resolves arg (a name,
// alias, e-mail or 0x wallet; "" is the master itself) with it: how every
// command acting on one agent starts.
func (a *App) withAgent(ctx context.Context, arg string) (*Master, agentRef, error) {
	m, err := a.LoadMaster()
	if err != nil {
		return nil, agentRef{}, err
	}
	if arg == "" {
		return m, agentRef{Wallet: m.Session.Wallet}, nil
	}
	ref, err := a.resolveAgent(cmdContext(ctx), m, arg)
	if err != nil {
		return nil, agentRef{}, err
	}
	return m, ref, nil
}

// agentCommand is a command acting on one agent, named by its only argument
// (with optional, the argument may be left out: the master itself). run
// receives the command's context, the profile's master session and the
// resolved agent.
func (a *App) agentCommand(use, short string, optional bool, run func(ctx context.Context, m *Master, ref agentRef) error) *cobra.Command {
	args := exactArgs(1, "<agent>")
	if optional {
		args = maxArgs(1, "[<agent>]")
	}
	return &cobra.Command{
		Use:               use,
		Short:             short,
		Args:              args,
		ValidArgsFunction: a.completeAgents,
		RunE: func(cmd *cobra.Command, args []string) error {
			ctx := cmdContext(cmd.Context())
			m, ref, err := a.withAgent(ctx, optionalArg(args))
			if err != nil {
				return err
			}
			return run(ctx, m, ref)
		},
	}
}

// agentNames returns the backend's names of m's agents, by wallet (empty
// if the backend cannot say: names are decoration there).
func agentNames(ctx context.Context, m *Master) map[agentkeys.Wallet]string {
	out := map[agentkeys.Wallet]string{}
	agents, err := m.Client.ListAgents(ctx, m.Session.Token)
	if err != nil {
		return out
	}
	for _, ag := range agents {
		if ag.Name != "" {
			out[ag.Wallet] = ag.Name
		}
	}
	return out
}

// sortAgents orders named agents by name, then unnamed ones by wallet.
func sortAgents(list []api.AgentInfo) {
	sort.SliceStable(list, func(i, j int) bool {
		x, y := list[i], list[j]
		if (x.Name == "") != (y.Name == "") {
			return x.Name != ""
		}
		if x.Name != y.Name {
			return x.Name < y.Name
		}
		return x.Wallet < y.Wallet
	})
}

// optionalArg is the first argument, or "" when there is none.
func optionalArg(args []string) string {
	if len(args) == 0 {
		return ""
	}
	return args[0]
}

// completeAgents offers the backend's agent names for shell completion.
func (a *App) completeAgents(cmd *cobra.Command, args []string, toComplete string) ([]string, cobra.ShellCompDirective) {
	if len(args) > 0 {
		return nil, cobra.ShellCompDirectiveNoFileComp
	}
	m, err := a.LoadMaster()
	if err != nil {
		return nil, cobra.ShellCompDirectiveNoFileComp
	}
	var out []string
	for _, n := range agentNames(cmdContext(cmd.Context()), m) {
		if strings.HasPrefix(n, toComplete) {
			out = append(out, n)
		}
	}
	sort.Strings(out)
	return out, cobra.ShellCompDirectiveNoFileComp
}
