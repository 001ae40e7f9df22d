package backend

import (
	"cmp"
	"context"
	"errors"
	"net/http"
	"strings"

	"github.com/agentkeys/agentkeys/internal/agentkeys"
	"github.com/agentkeys/agentkeys/internal/api"
	"github.com/agentkeys/agentkeys/internal/store"
)

// The agent registry: every master names the wallets of its tree, the
// names live here (so a second laptop, or one recovered, sees them), and
// every <agent> a client sends through /agent/resolve ends in a wallet of
// the caller's own tree or in a 404. One namespace per master: a name is
// unique in the tree, and an alias the tree links may not name another
// wallet of the tree than the name of the same spelling does.

// actionAgentName is the audit action of naming or renaming an agent.
const actionAgentName = "agent_name"

// useActions are the actions a master (or an ancestor) performs for an
// agent that count as using it; anything the agent's own session does
// counts too.
var useActions = []string{agentkeys.ActionRead, agentkeys.ActionStore, agentkeys.ActionProvision}

// msgUnknownAgent answers a name, alias or wallet that is not in the
// caller's tree: the same words whether it exists elsewhere or nowhere.
const msgUnknownAgent = "no agent %q in your tree"

// resolveAgentRoute answers GET /agent/resolve?agent=X.
func (s *Server) resolveAgentRoute(r *http.Request, c *caller) (any, error) {
	arg := r.URL.Query().Get("agent")
	if strings.TrimSpace(arg) == "" {
		return nil, badRequest("agent required")
	}
	return s.resolveAgent(r.Context(), s.store, c, arg)
}

// resolveAgent maps a name, alias, e-mail, ENS name or wallet to a wallet
// of c's tree (c itself included). A name is looked up first, then links;
// whatever matches must be c or below it, else the answer is 404.
func (s *Server) resolveAgent(ctx context.Context, q store.Queries, c *caller, arg string) (api.AgentResolveResponse, error) {
	id, err := agentkeys.ParseIdentity(arg)
	if err != nil {
		return api.AgentResolveResponse{}, badRequest("agent: %v", err)
	}
	_, root, err := rootOf(ctx, q, c.addr())
	if err != nil {
		return api.AgentResolveResponse{}, err
	}
	var (
		w   agentkeys.Wallet
		via string
	)
	if id.Kind == agentkeys.KindWallet {
		w, via = agentkeys.Wallet(id.Value), api.ViaWallet
	} else if id.Kind == agentkeys.KindAlias || id.Kind == agentkeys.KindENS {
		w, err = q.WalletByName(ctx, root, id.Value)
		if err != nil && !errors.Is(err, store.ErrNotFound) {
			return api.AgentResolveResponse{}, err
		}
		via = api.ViaName
	}
	if w == "" {
		l, err := q.ResolveIdentity(ctx, string(id.Kind), id.Value)
		if errors.Is(err, store.ErrNotFound) {
			return api.AgentResolveResponse{}, notFound(msgUnknownAgent, truncateStr(id.Value))
		}
		if err != nil {
			return api.AgentResolveResponse{}, err
		}
		w, via = l.Wallet, string(id.Kind)
	}
	tw, owned, err := s.target(ctx, q, c, w)
	if err != nil {
		return api.AgentResolveResponse{}, err
	}
	if !owned || tw.TornDown {
		return api.AgentResolveResponse{}, notFound(msgUnknownAgent, truncateStr(id.Value))
	}
	name, err := q.WalletName(ctx, w)
	if err != nil {
		return api.AgentResolveResponse{}, err
	}
	return api.AgentResolveResponse{Wallet: w, Name: name, Via: via}, nil
}

// listAgents answers GET /agent/list: the live agents below the caller
// with their names, scopes, session expiry and last use.
func (s *Server) listAgents(r *http.Request, c *caller) (any, error) {
	ctx := r.Context()
	sub, err := s.store.Subtree(ctx, c.addr())
	if err != nil {
		return nil, err
	}
	_, root, err := rootOf(ctx, s.store, c.addr())
	if err != nil {
		return nil, err
	}
	names, err := s.store.WalletNames(ctx, root)
	if err != nil {
		return nil, err
	}
	now := s.now()
	out := api.AgentListResponse{Agents: []api.AgentInfo{}}
	for _, addr := range sub[1:] {
		w, err := s.store.Wallet(ctx, addr)
		if err != nil {
			return nil, err
		}
		if w.TornDown {
			continue
		}
		info := api.AgentInfo{Wallet: addr, Name: names[addr], Parent: w.Parent, Scope: w.Scope, CreatedAt: w.CreatedAt.Unix()}
		exp, err := s.store.SessionExpiry(ctx, addr, now)
		if err != nil {
			return nil, err
		}
		last, err := s.store.LastUse(ctx, addr, useActions)
		if err != nil {
			return nil, err
		}
		if !exp.IsZero() {
			info.ExpiresAt = exp.Unix()
		}
		if !last.IsZero() {
			info.LastUsedAt = last.Unix()
		}
		out.Agents = append(out.Agents, info)
	}
	return out, nil
}

// nameAgent answers POST /agent/name: name (or rename, or unname) a wallet
// below the caller.
func (s *Server) nameAgent(r *http.Request, c *caller) (any, error) {
	ctx := r.Context()
	var req api.AgentNameRequest
	if err := decode(r, &req, smallBody); err != nil {
		return nil, err
	}
	target, err := parseWalletField("wallet", req.Wallet)
	if err != nil {
		return nil, err
	}
	if !c.scope.CanWrite() {
		return nil, denied("a read-only session cannot name agents")
	}
	tw, err := s.ownedTarget(ctx, c, target, agentkeys.AuditWildcard, actionAgentName)
	if err != nil {
		return nil, err
	}
	if tw.TornDown || target == c.addr() {
		return nil, notFound("no agent %s below this session to name", target)
	}
	var prev string
	err = s.store.Tx(ctx, func(q store.Queries) error {
		if _, err := s.recheck(ctx, q, c, target); err != nil {
			return err
		}
		_, root, err := rootOf(ctx, q, target)
		if err != nil {
			return err
		}
		names, err := q.WalletNames(ctx, root)
		if err != nil {
			return err
		}
		prev = names[target]
		if err := s.setName(ctx, q, root, target, req.Name); err != nil {
			return err
		}
		return s.audit(ctx, q, c.addr(), target, agentkeys.AuditWildcard, actionAgentName, agentkeys.ResultOK)
	})
	if err != nil {
		return nil, err
	}
	return api.AgentNameResponse{OK: true, Wallet: target, Name: req.Name, Previous: prev}, nil
}

// setName names addr in root's tree inside a transaction. A name another
// wallet of the tree holds, or that an alias of another wallet of the tree
// already spells, is a 409: one spelling names one agent.
func (s *Server) setName(ctx context.Context, q store.Queries, root, addr agentkeys.Wallet, name string) error {
	if name != "" {
		l, err := q.ResolveIdentity(ctx, string(agentkeys.KindAlias), name)
		switch {
		case errors.Is(err, store.ErrNotFound):
		case err != nil:
			return err
		case l.Wallet != addr:
			// Another tree's alias of that spelling does not clash.
			if _, r, err := rootOf(ctx, q, l.Wallet); err != nil || r == root {
				return cmp.Or(err, conflict("%q is already an alias of another agent in this tree", name))
			}
		}
	}
	err := q.SetWalletName(ctx, root, addr, name, s.now())
	if errors.Is(err, store.ErrConflict) {
		return conflict("an agent named %q already exists in this tree", name)
	}
	return err
}

// checkAliasFree refuses to link alias to addr when an agent of the same
// tree (another wallet) has that name.
func (s *Server) checkAliasFree(ctx context.Context, q store.Queries, addr agentkeys.Wallet, alias string) error {
	_, root, err := rootOf(ctx, q, addr)
	if err != nil {
		return err
	}
	w, err := q.WalletByName(ctx, root, alias)
	switch {
	case errors.Is(err, store.ErrNotFound):
		return nil
	case err != nil:
		return err
	case w != addr:
		return conflict("%q is already the name of another agent in this tree", alias)
	}
	return nil
}
