package cli

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"strings"

	"github.com/spf13/cobra"

	"github.com/agentkeys/agentkeys/internal/agentkeys"
	"github.com/agentkeys/agentkeys/internal/keychain"
)

// agentsFileName is the local name → wallet map of a profile's agents.
const agentsFileName = "agents.json"

// agentBook is the local map of agent names. It belongs to one master on
// one backend; a book written for another master is ignored.
type agentBook struct {
	Master  agentkeys.Wallet            `json:"master"`
	Backend string                      `json:"backend"`
	Agents  map[string]agentkeys.Wallet `json:"agents"`
}

// validateAgentName checks a local agent name: 1–64 of [a-z0-9._-],
// starting with a letter or digit, and not a 0x wallet look-alike.
func validateAgentName(name string) error {
	if err := agentkeys.ValidAlias(name); err != nil {
		return fmt.Errorf("agent name %q: %w", name, err)
	}
	return nil
}

func (a *App) agentsPath() (string, error) {
	st, err := a.Store()
	if err != nil {
		return "", err
	}
	return filepath.Join(st.Dir, a.Profile, agentsFileName), nil
}

// loadBook reads the profile's agent names for master m (an empty book if
// none or if the file belongs to another master).
func (a *App) loadBook(m *Master) (*agentBook, error) {
	book := &agentBook{Master: m.Session.Wallet, Backend: m.Session.Backend, Agents: map[string]agentkeys.Wallet{}}
	path, err := a.agentsPath()
	if err != nil {
		return nil, err
	}
	f, err := os.Open(path)
	if errors.Is(err, fs.ErrNotExist) {
		return book, nil
	}
	if err != nil {
		return nil, fmt.Errorf("open %s: %w", path, err)
	}
	defer f.Close()
	var onDisk agentBook
	if err := json.NewDecoder(io.LimitReader(f, 4<<20)).Decode(&onDisk); err != nil {
		return nil, fmt.Errorf("%s is not a valid agent map; fix or delete it", path)
	}
	if onDisk.Master != m.Session.Wallet || trimURL(onDisk.Backend) != m.Session.Backend {
		a.notef("ignoring %s: it names the agents of %s on %s", path, onDisk.Master, onDisk.Backend)
		return book, nil
	}
	for name, w := range onDisk.Agents {
		if validateAgentName(name) != nil {
			continue
		}
		if pw, err := agentkeys.ParseWallet(string(w)); err == nil {
			book.Agents[name] = pw
		}
	}
	return book, nil
}

func (a *App) saveBook(book *agentBook) error {
	st, err := a.Store()
	if err != nil {
		return err
	}
	dir, err := st.ProfileDir(a.Profile)
	if err != nil {
		return err
	}
	data, err := json.MarshalIndent(book, "", "  ")
	if err != nil {
		return err
	}
	return keychain.WritePrivateFile(filepath.Join(dir, agentsFileName), append(data, '\n'))
}

// nameOf returns the local name of w, or "".
func (b *agentBook) nameOf(w agentkeys.Wallet) string {
	for n, x := range b.Agents {
		if x == w {
			return n
		}
	}
	return ""
}

func (b *agentBook) sortedNames() []string {
	names := make([]string, 0, len(b.Agents))
	for n := range b.Agents {
		names = append(names, n)
	}
	sort.Strings(names)
	return names
}

// agentRef is a resolved <agent> argument.
type agentRef struct {
	Wallet agentkeys.Wallet
	Name   string // local name, if any
}

func (r agentRef) String() string {
	if r.Name != "" {
		return fmt.Sprintf("%s (%s)", r.Name, r.Wallet)
	}
	return string(r.Wallet)
}

// resolveAgent turns an <agent> argument (0x wallet or local name) into a
// wallet. It reads only the local map: no round-trip.
func (a *App) resolveAgent(m *Master, arg string) (agentRef, *agentBook, error) {
	book, err := a.loadBook(m)
	if err != nil {
		return agentRef{}, nil, err
	}
	if strings.HasPrefix(arg, "0x") || strings.HasPrefix(arg, "0X") {
		w, err := agentkeys.ParseWallet(arg)
		if err != nil {
			return agentRef{}, nil, usagef("agent %q: %v", arg, err)
		}
		return agentRef{Wallet: w, Name: book.nameOf(w)}, book, nil
	}
	if err := validateAgentName(arg); err != nil {
		return agentRef{}, nil, usagef("%v", err)
	}
	w, ok := book.Agents[arg]
	if !ok {
		return agentRef{}, nil, withHint(fmt.Errorf("unknown agent %q in profile %q", arg, a.Profile),
			"pass the agent's 0x wallet, or see `agentkeys agent list` for the names this profile knows")
	}
	return agentRef{Wallet: w, Name: arg}, book, nil
}

// withAgent loads the profile's master session and resolves arg (an agent
// name or 0x wallet; "" is the master itself) with it: how every command
// acting on one agent starts.
func (a *App) withAgent(arg string) (*Master, agentRef, error) {
	m, err := a.LoadMaster()
	if err != nil {
		return nil, agentRef{}, err
	}
	if arg == "" {
		return m, agentRef{Wallet: m.Session.Wallet}, nil
	}
	ref, _, err := a.resolveAgent(m, arg)
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
			m, ref, err := a.withAgent(optionalArg(args))
			if err != nil {
				return err
			}
			return run(cmdContext(cmd.Context()), m, ref)
		},
	}
}

// withBook loads the profile's master session and its agent address book.
func (a *App) withBook() (*Master, *agentBook, error) {
	m, err := a.LoadMaster()
	if err != nil {
		return nil, nil, err
	}
	book, err := a.loadBook(m)
	if err != nil {
		return nil, nil, err
	}
	return m, book, nil
}

// forgetAgent drops name from the profile's address book (best effort: a
// failure is only a note).
func (a *App) forgetAgent(m *Master, name string) {
	book, err := a.loadBook(m)
	if err == nil {
		delete(book.Agents, name)
		err = a.saveBook(book)
	}
	if err != nil {
		a.notef("could not forget the name %q: %v", name, err)
	}
}

// optionalArg is the first argument, or "" when there is none.
func optionalArg(args []string) string {
	if len(args) == 0 {
		return ""
	}
	return args[0]
}

// completeAgents offers the profile's agent names for shell completion.
func (a *App) completeAgents(cmd *cobra.Command, args []string, toComplete string) ([]string, cobra.ShellCompDirective) {
	if len(args) > 0 {
		return nil, cobra.ShellCompDirectiveNoFileComp
	}
	_, book, err := a.withBook()
	if err != nil {
		return nil, cobra.ShellCompDirectiveNoFileComp
	}
	var out []string
	for _, n := range book.sortedNames() {
		if strings.HasPrefix(n, toComplete) {
			out = append(out, n)
		}
	}
	return out, cobra.ShellCompDirectiveNoFileComp
}
