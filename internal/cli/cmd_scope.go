package cli

import (
	"context"

	"github.com/spf13/cobra"

	"github.com/agentkeys/agentkeys/internal/agentkeys"
)

type scopeView struct {
	Agent    agentkeys.Wallet `json:"agent"`
	Name     string           `json:"name,omitempty"`
	Services []string         `json:"services"` // null = unrestricted
	ReadOnly bool             `json:"read_only"`
}

func (a *App) printScope(ref agentRef, sc *agentkeys.Scope) error {
	v := scopeView{Agent: ref.Wallet, Name: ref.Name}
	if sc != nil {
		v.Services, v.ReadOnly = sc.Services, sc.ReadOnly
		if v.Services == nil {
			v.Services = []string{}
		}
	}
	if a.JSON {
		return a.printJSON(v)
	}
	a.printf("Scope for agent %s:\n", ref)
	if sc == nil {
		a.printf("  services:  unrestricted\n")
	} else {
		a.printf("  services:  %s\n", displayList(sc.Services))
	}
	a.printf("  read_only: %t\n", v.ReadOnly)
	return nil
}

func (a *App) newScopeCmd() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "scope",
		Short: "Show or change an agent's scope",
	}
	get := a.agentCommand("get <agent>", "Show an agent's effective scope", false,
		func(ctx context.Context, m *Master, ref agentRef) error {
			sc, err := m.Client.GetScope(ctx, m.Session.Token, ref.Wallet)
			if err != nil {
				return err
			}
			return a.printScope(ref, sc)
		})
	var (
		in          scopeSetInput
		services    string
		add, remove []string
	)
	set := &cobra.Command{
		Use:   "set <agent> (--services a,b | --add S... | --remove S...) [--read-only[=false]]",
		Short: "Replace or edit an agent's scope",
		Long: `Replace an agent's scope with --services (read_only follows --read-only), or
edit it with --add/--remove (read_only is kept unless --read-only is given).
The change applies at once to every session of the agent.`,
		Args:              exactArgs(1, "<agent>"),
		ValidArgsFunction: a.completeAgents,
		RunE: func(cmd *cobra.Command, args []string) error {
			f := cmd.Flags()
			in.Agent, in.Replace, in.ReadOnlySet = args[0], f.Changed("services"), f.Changed("read-only")
			edit := len(add) > 0 || len(remove) > 0
			switch {
			case in.Replace && edit:
				return usagef("--services replaces the scope; do not combine it with --add/--remove")
			case !in.Replace && !edit && !in.ReadOnlySet:
				return usagef("nothing to change: give --services, --add, --remove or --read-only")
			}
			var err error
			if in.Add, err = parseServiceFlags("--add", add); err != nil {
				return err
			}
			if in.Remove, err = parseServiceFlags("--remove", remove); err != nil {
				return err
			}
			if in.Replace {
				if in.Services, err = parseServices("--services", services); err != nil {
					return err
				}
			}
			return a.runScopeSet(cmdContext(cmd.Context()), in)
		},
	}
	f := set.Flags()
	f.StringVar(&services, "services", "", "comma-separated services: the new scope")
	f.StringArrayVar(&add, "add", nil, "services to add (repeatable, comma-separated)")
	f.StringArrayVar(&remove, "remove", nil, "services to remove (repeatable, comma-separated)")
	f.BoolVar(&in.ReadOnly, "read-only", false, "the agent may read but not store")
	cmd.AddCommand(get, set)
	return group(cmd)
}

// scopeSetInput is `agentkeys scope set` once its flags are parsed.
type scopeSetInput struct {
	Agent       string
	Replace     bool     // --services given: Services is the new scope
	Services    []string //
	Add, Remove []string // otherwise: the edit of the current scope
	ReadOnly    bool
	ReadOnlySet bool // --read-only given (else an edit keeps read_only)
}

// runScopeSet replaces or edits an agent's scope and prints the result.
func (a *App) runScopeSet(ctx context.Context, in scopeSetInput) error {
	m, ref, err := a.withAgent(ctx, in.Agent)
	if err != nil {
		return err
	}
	var next, cur *agentkeys.Scope
	if in.Replace {
		next, err = (&agentkeys.Scope{Services: in.Services, ReadOnly: in.ReadOnly}).Normalize()
	} else {
		var gerr error
		cur, gerr = m.Client.GetScope(ctx, m.Session.Token, ref.Wallet)
		if gerr != nil {
			return gerr
		}
		if cur == nil {
			return usagef("agent %s is unrestricted (a master); its scope cannot be edited", ref.Wallet)
		}
		if next, err = cur.Edit(in.Add, in.Remove); err == nil && in.ReadOnlySet {
			next.ReadOnly = in.ReadOnly
		}
	}
	if err != nil {
		return usagef("%v", err)
	}
	if err := m.Client.SetScope(ctx, m.Session.Token, ref.Wallet, *next); err != nil {
		return err
	}
	added := in.Add
	if in.Replace {
		added = next.Services
	}
	if len(added) > 0 {
		known, _ := m.Client.ListCredentials(ctx, m.Session.Token, ref.Wallet)
		if cur != nil {
			known = append(known, cur.Services...)
		}
		a.warnUnknownServices(added, nil, known)
	}
	return a.printScope(ref, next)
}

// parseServiceFlags parses each value of a repeatable comma-separated
// service flag.
func parseServiceFlags(flag string, values []string) ([]string, error) {
	var out []string
	for _, v := range values {
		l, err := parseServices(flag, v)
		if err != nil {
			return nil, err
		}
		out = append(out, l...)
	}
	return out, nil
}
