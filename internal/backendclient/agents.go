package backendclient

import (
	"context"
	"net/http"
	"net/url"
	"time"

	"github.com/agentkeys/agentkeys/internal/agentkeys"
	"github.com/agentkeys/agentkeys/internal/api"
)

// CreateNamedChild is CreateChild that also names the new agent in the
// caller's tree, in the same transaction: on a name conflict (HTTP 409)
// no agent is created.
func (c *Client) CreateNamedChild(ctx context.Context, tok agentkeys.Token, name string, scope agentkeys.Scope, ttl time.Duration) (Session, error) {
	var out api.SessionResponse
	in := api.CreateChildRequest{Scope: &scope, Name: name}
	if ttl > 0 {
		in.TTLSeconds = int64(ttl / time.Second)
	}
	if err := c.do(ctx, "create agent", http.MethodPost, "/session/child", nil, tok, in, &out); err != nil {
		return Session{}, err
	}
	return sessionFrom("create agent", out)
}

// ApproveNamedPairing approves a pairing and names the new agent in the
// approver's tree, in the same transaction.
func (c *Client) ApproveNamedPairing(ctx context.Context, tok agentkeys.Token, pairCode, otp, name string) (Approval, error) {
	return c.approve(ctx, tok, api.ApproveRequest{PairCode: pairCode, OTP: otp, Name: name})
}

// ResolveAgent maps an <agent> argument (name, alias, e-mail, ENS name or
// wallet) to a wallet of the caller's own tree; a 404 (*Error with Status
// 404) when it names nothing there.
func (c *Client) ResolveAgent(ctx context.Context, tok agentkeys.Token, agent string) (api.AgentResolveResponse, error) {
	var out api.AgentResolveResponse
	err := c.do(ctx, "resolve agent", http.MethodGet, "/agent/resolve", url.Values{"agent": {agent}}, tok, nil, &out)
	return out, err
}

// ListAgents lists the live agents below the caller.
func (c *Client) ListAgents(ctx context.Context, tok agentkeys.Token) ([]api.AgentInfo, error) {
	var out api.AgentListResponse
	err := c.do(ctx, "list agents", http.MethodGet, "/agent/list", nil, tok, nil, &out)
	return out.Agents, err
}

// NameAgent gives wallet a name in its tree ("" removes it) and returns
// the name it had.
func (c *Client) NameAgent(ctx context.Context, tok agentkeys.Token, wallet agentkeys.Wallet, name string) (previous string, err error) {
	var out api.AgentNameResponse
	err = c.do(ctx, "name agent", http.MethodPost, "/agent/name", nil, tok, api.AgentNameRequest{Wallet: string(wallet), Name: name}, &out)
	return out.Previous, err
}
