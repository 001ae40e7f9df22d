package cli

import (
	"slices"

	"github.com/spf13/cobra"

	"github.com/agentkeys/agentkeys/internal/agentkeys"
)

type scopeView struct {
	Agent    agentkeys.Wallet `json:"agent"`
	Services []string         `json:"services"` // null = unrestricted
	ReadOnly bool             `json:"read_only"`
}

func (a *App) printScope(w agentkeys.Wallet, sc *agentkeys.Scope) error {
	v := scopeView{Agent: w}
	if sc != nil {
		v.Services, v.ReadOnly = sc.Services, sc.ReadOnly
		if v.Services == nil {
			v.Services = []string{}
		}
	}
	if a.JSON {
		return a.printJSON(v)
	}
	a.printf("Scope for agent %s:\n", w)
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
	get := &cobra.Command{
		Use:               "get <agent>",
		Short:             "Show an agent's effective scope",
		Args:              exactArgs(1, "<agent>"),
		ValidArgsFunction: a.completeAgents,
		RunE: func(cmd *cobra.Command, args []string) error {
			m, err := a.LoadMaster()
			if err != nil {
				return err
			}
			ref, _, err := a.resolveAgent(m, args[0])
			if err != nil {
				return err
			}
			sc, err := m.Client.GetScope(cmdContext(cmd.Context()), m.Session.Token, ref.Wallet)
			if err != nil {
				return err
			}
			return a.printScope(ref.Wallet, sc)
		},
	}
	var (
		services      string
		add, remove   []string
		readOnly      bool
		setReadOnlyOK bool
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
			replace := f.Changed("services")
			edit := len(add) > 0 || len(remove) > 0
			setReadOnlyOK = f.Changed("read-only")
			switch {
			case replace && edit:
				return usagef("--services replaces the scope; do not combine it with --add/--remove")
			case !replace && !edit && !setReadOnlyOK:
				return usagef("nothing to change: give --services, --add, --remove or --read-only")
			}
			var addList, removeList []string
			for _, s := range add {
				l, err := parseServices("--add", s)
				if err != nil {
					return err
				}
				addList = append(addList, l...)
			}
			for _, s := range remove {
				l, err := parseServices("--remove", s)
				if err != nil {
					return err
				}
				removeList = append(removeList, l...)
			}
			for _, s := range addList {
				if slices.Contains(removeList, s) {
					return usagef("service %s is both added and removed", s)
				}
			}
			var newSvcs []string
			if replace {
				l, err := parseServices("--services", services)
				if err != nil {
					return err
				}
				newSvcs = l
			}
			ctx := cmdContext(cmd.Context())
			m, err := a.LoadMaster()
			if err != nil {
				return err
			}
			ref, _, err := a.resolveAgent(m, args[0])
			if err != nil {
				return err
			}
			next := agentkeys.Scope{Services: newSvcs, ReadOnly: readOnly}
			if !replace {
				cur, err := m.Client.GetScope(ctx, m.Session.Token, ref.Wallet)
				if err != nil {
					return err
				}
				if cur == nil {
					return usagef("agent %s is unrestricted (a master); its scope cannot be edited", ref.Wallet)
				}
				svcs := slices.Clone(cur.Services)
				for _, s := range addList {
					if !slices.Contains(svcs, s) {
						svcs = append(svcs, s)
					}
				}
				svcs = slices.DeleteFunc(svcs, func(s string) bool { return slices.Contains(removeList, s) })
				next.Services = svcs
				if !setReadOnlyOK {
					next.ReadOnly = cur.ReadOnly
				}
			}
			norm, err := next.Normalize()
			if err != nil {
				return usagef("%v", err)
			}
			if err := m.Client.SetScope(ctx, m.Session.Token, ref.Wallet, *norm); err != nil {
				return err
			}
			return a.printScope(ref.Wallet, norm)
		},
	}
	f := set.Flags()
	f.StringVar(&services, "services", "", "comma-separated services: the new scope")
	f.StringArrayVar(&add, "add", nil, "services to add (repeatable, comma-separated)")
	f.StringArrayVar(&remove, "remove", nil, "services to remove (repeatable, comma-separated)")
	f.BoolVar(&readOnly, "read-only", false, "the agent may read but not store")
	cmd.AddCommand(get, set)
	return group(cmd)
}
