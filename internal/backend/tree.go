package backend

import (
	"net/http"

	"github.com/agentkeys/agentkeys/internal/api"
)

// sessionTree answers GET /session/tree: the bearer's wallet and every
// wallet below it. A broker token may ask as well as a session: the broker
// uses it to show a master the mints of its agents (GET /v1/audit), and a
// list of the caller's own wallets grants nothing.
func (s *Server) sessionTree(r *http.Request) (any, error) {
	c, err := s.authenticateForBroker(r)
	if err != nil {
		return nil, err
	}
	if err := s.limitWallet(c); err != nil {
		return nil, err
	}
	tree, err := s.store.Subtree(r.Context(), c.addr())
	if err != nil {
		return nil, err
	}
	return api.SessionTreeResponse{Wallet: c.addr(), Wallets: tree}, nil
}
