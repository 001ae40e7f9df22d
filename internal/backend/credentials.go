package backend

import (
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"net/http"
	"slices"

	"github.com/agentkeys/agentkeys/internal/agentkeys"
	"github.com/agentkeys/agentkeys/internal/api"
	"github.com/agentkeys/agentkeys/internal/jsonhttp"
	"github.com/agentkeys/agentkeys/internal/seal"
	"github.com/agentkeys/agentkeys/internal/store"
)

// credentialAAD binds a sealed value to its wallet and service.
func credentialAAD(w agentkeys.Wallet, service string) []byte {
	return seal.AAD("agentkeys-credential-v1", string(w), service)
}

func serviceField(v string) (string, error) {
	if v == "" {
		return "", badRequest("service required")
	}
	if err := agentkeys.ValidateService(v); err != nil {
		return "", badRequest("%v", err)
	}
	return v, nil
}

// storeCredential seals and upserts a credential. The wire field keeps the
// original's name, "ciphertext", but carries the value base64-encoded; the
// backend seals it before it reaches the database.
func (s *Server) storeCredential(r *http.Request, c *caller) (any, error) {
	ctx := r.Context()
	var req api.StoreCredentialRequest
	if err := decode(r, &req, 2*MaxSecretSize); err != nil {
		return nil, err
	}
	addr, err := parseWalletField("agent_id", req.AgentID) // Validate checked it
	if err != nil {
		return nil, err
	}
	svc := req.Service
	value, err := base64.StdEncoding.DecodeString(req.Ciphertext)
	if err != nil {
		return nil, badRequest("ciphertext must be standard base64")
	}
	defer clear(value)
	if len(value) > MaxSecretSize {
		return nil, badRequest("credential exceeds %d bytes", MaxSecretSize)
	}
	tw, err := s.ownedTarget(ctx, c, addr, svc, agentkeys.ActionStore)
	if err != nil {
		return nil, err
	}
	switch {
	case !c.scope.Allows(svc):
		s.auditDenial(ctx, c.addr(), addr, svc, agentkeys.ActionStore, agentkeys.ResultDeniedScope)
		return nil, denied("session scope does not include service %s", svc)
	case !c.scope.CanWrite():
		s.auditDenial(ctx, c.addr(), addr, svc, agentkeys.ActionStore, agentkeys.ResultDeniedReadOnly)
		return nil, denied("session scope is read-only")
	case tw.TornDown:
		return nil, notFound("agent %s was torn down", addr)
	}
	sealed, err := s.sealer.Seal(value, credentialAAD(addr, svc))
	if err != nil {
		return nil, err
	}
	now := s.now()
	err = s.store.Tx(ctx, func(q store.Queries) error {
		fresh, err := s.recheck(ctx, q, c, addr)
		if err != nil {
			return err
		}
		if !fresh.scope.Allows(svc) {
			return denied("session scope does not include service %s", svc)
		}
		if err := s.checkCredentialQuota(ctx, q, addr, svc); err != nil {
			return err
		}
		if err := q.PutCredential(ctx, store.Credential{Wallet: addr, Service: svc, Sealed: sealed, CreatedAt: now, UpdatedAt: now}); err != nil {
			return err
		}
		return s.audit(ctx, q, c.addr(), addr, svc, agentkeys.ActionStore, agentkeys.ResultOK)
	})
	if err != nil {
		return nil, err
	}
	return api.OK{OK: true}, nil
}

// readCredential returns a credential to its owner (or an ancestor) within
// scope. Ownership is checked before scope and scope before existence, so
// a refused caller learns nothing about what exists. The read is audited
// before the value leaves; if the audit write fails, nothing leaves.
func (s *Server) readCredential(r *http.Request, c *caller) (any, error) {
	ctx := r.Context()
	qs := r.URL.Query()
	addr, err := parseWalletField("agent_id", qs.Get("agent_id"))
	if err != nil {
		return nil, err
	}
	svc, err := serviceField(qs.Get("service"))
	if err != nil {
		return nil, err
	}
	tw, err := s.ownedTarget(ctx, c, addr, svc, agentkeys.ActionRead)
	if err != nil {
		return nil, err
	}
	if !c.scope.Allows(svc) {
		s.auditDenial(ctx, c.addr(), addr, svc, agentkeys.ActionRead, agentkeys.ResultDeniedScope)
		return nil, denied("agent %s does not have scope for service %s", c.addr(), svc)
	}
	var cred store.Credential
	if !tw.TornDown {
		cred, err = s.store.Credential(ctx, addr, svc)
	}
	if tw.TornDown || errors.Is(err, store.ErrNotFound) {
		s.auditDenial(ctx, c.addr(), addr, svc, agentkeys.ActionRead, agentkeys.ResultNotFound)
		return nil, notFound("credential not found for agent=%s service=%s", addr, svc)
	}
	if err != nil {
		return nil, err
	}
	value, err := s.sealer.Open(cred.Sealed, credentialAAD(addr, svc))
	if err != nil {
		s.log.ErrorContext(ctx, "stored credential failed to open; wrong seal key or tampered row", "wallet", addr, "service", svc)
		return nil, jsonhttp.Errorf(http.StatusInternalServerError, KindInternal, "stored credential cannot be opened")
	}
	defer clear(value)
	if err := s.audit(ctx, s.store, c.addr(), addr, svc, agentkeys.ActionRead, agentkeys.ResultOK); err != nil {
		return nil, err
	}
	return api.ReadCredentialResponse{Ciphertext: base64.StdEncoding.EncodeToString(value)}, nil
}

// listCredentials lists the services a wallet holds, filtered to the
// caller's scope.
func (s *Server) listCredentials(r *http.Request, c *caller) (any, error) {
	ctx := r.Context()
	addr, err := parseWalletField("agent_id", r.URL.Query().Get("agent_id"))
	if err != nil {
		return nil, err
	}
	if _, err := s.ownedTarget(ctx, c, addr, agentkeys.AuditWildcard, agentkeys.ActionList); err != nil {
		return nil, err
	}
	all, err := s.store.Services(ctx, addr)
	if err != nil {
		return nil, err
	}
	if err := s.audit(ctx, s.store, c.addr(), addr, agentkeys.AuditWildcard, agentkeys.ActionList, agentkeys.ResultOK); err != nil {
		return nil, err
	}
	return api.ListCredentialsResponse{Services: c.scope.Filter(all)}, nil
}

// credentialVersions answers the versions of the agent's credentials
// within the caller's scope: a digest of each sealed blob (a fresh nonce
// seals every store, so it changes with every store and reveals nothing
// about the value) and its update time. It writes no audit row when it
// answers (nothing secret leaves, and watchers poll it); a refusal is
// audited like any other.
func (s *Server) credentialVersions(r *http.Request, c *caller) (any, error) {
	ctx := r.Context()
	addr, err := parseWalletField("agent_id", r.URL.Query().Get("agent_id"))
	if err != nil {
		return nil, err
	}
	tw, err := s.ownedTarget(ctx, c, addr, agentkeys.AuditWildcard, agentkeys.ActionList)
	if err != nil {
		return nil, err
	}
	if tw.TornDown {
		// As for a read: a watcher learns the agent is gone, not that it
		// has nothing.
		return nil, notFound("agent %s was torn down", addr)
	}
	out := api.CredentialVersionsResponse{Versions: []api.CredentialVersion{}}
	creds, err := s.store.Credentials(ctx, addr)
	if err != nil {
		return nil, err
	}
	for _, cr := range creds {
		if !c.scope.Allows(cr.Service) {
			continue
		}
		sum := sha256.Sum256(cr.Sealed)
		out.Versions = append(out.Versions, api.CredentialVersion{Service: cr.Service, Version: hex.EncodeToString(sum[:16]), UpdatedAt: cr.UpdatedAt.UTC()})
	}
	return out, nil
}

// teardown removes an agent and everything under it in one transaction:
// its descendants are tombstoned, their sessions revoked, their credentials,
// identity links and inboxes deleted. A master may tear down its own
// wallet: the same happens to the whole tree, except that the master
// wallet itself stays (empty, every session revoked) so that its identity
// can log in again.
func (s *Server) teardown(r *http.Request, c *caller) (any, error) {
	ctx := r.Context()
	var req api.TeardownRequest
	if err := decode(r, &req, smallBody); err != nil {
		return nil, err
	}
	addr, err := parseWalletField("agent_id", req.AgentID) // Validate checked it
	if err != nil {
		return nil, err
	}
	var revoked, removed int
	var tree []agentkeys.Wallet
	err = s.revocationTx(ctx, c, agentkeys.ActionTeardown, addr, func(q store.Queries) (agentkeys.Wallet, error) {
		tw, owned, err := s.target(ctx, q, c, addr)
		if err != nil {
			return "", err
		}
		if !owned {
			return "", denied("session does not own agent %s", addr)
		}
		if !c.scope.CanWrite() {
			return "", jsonhttp.Errorf(http.StatusForbidden, KindDenied, "session scope is read-only")
		}
		if tw.TornDown {
			return "", notFound("agent %s was already torn down", addr)
		}
		if tree, err = q.Subtree(ctx, addr); err != nil {
			return "", err
		}
		if revoked, err = q.RevokeWalletSessions(ctx, tree, s.now()); err != nil {
			return "", err
		}
		if removed, err = q.DeleteWalletData(ctx, tree); err != nil {
			return "", err
		}
		// A master's own wallet is emptied but not tombstoned: its identity
		// may log in again and starts afresh on the same wallet, as with the
		// original backend. Everything below it is gone for good.
		gone := tree
		if tw.Kind == store.KindMaster {
			gone = slices.DeleteFunc(slices.Clone(tree), func(w agentkeys.Wallet) bool { return w == addr })
		}
		return addr, q.TombstoneWallets(ctx, gone)
	})
	if err != nil {
		return nil, err
	}
	return api.TeardownResponse{OK: true, WalletsRemoved: len(tree), SessionsRevoked: revoked, CredentialsRemoved: removed}, nil
}
