package broker

import (
	"context"
	"errors"
	"net/http"
	"strconv"
	"time"

	"github.com/agentkeys/agentkeys/internal/agentkeys"
	"github.com/agentkeys/agentkeys/internal/api"
	"github.com/agentkeys/agentkeys/internal/audit"
	"github.com/agentkeys/agentkeys/internal/jsonhttp"
	"github.com/agentkeys/agentkeys/internal/ratelimit"
)

// TreeSource tells which wallets a bearer may see in the audit view (the
// backend's GET /session/tree; implemented by *HTTPValidator).
type TreeSource interface {
	Tree(ctx context.Context, token string) ([]agentkeys.Wallet, error)
}

// LedgerReader reads the ledger for the audit view (implemented by
// *audit.SQL).
type LedgerReader interface {
	Query(ctx context.Context, q audit.Query) ([]audit.Record, error)
}

// endpointAudit labels the audit view in metrics.
const endpointAudit = "audit_view"

// Audit view limits.
const (
	defaultAuditViewLimit = 100
	maxAuditViewLimit     = 1000
)

// auditView answers GET /v1/audit: the ledger's rows for the bearer's
// wallet and every wallet below it, newest first. The ledger stays the
// only record of mints: this route reads it and writes nothing, and a
// mint never depends on it. Who may see what is the backend's answer
// (GET /session/tree), asked with the caller's own bearer; rows whose
// wallet is unknown (failed authentication) belong to nobody and are not
// shown. Filters: since, until (RFC 3339 or unix seconds), outcome, kind
// (jwt | aws), wallet (one wallet of the tree), limit (1–1000, default
// 100), cursor (from next_cursor).
func (s *Server) auditView(w http.ResponseWriter, r *http.Request) {
	reader, ok := s.deps.Audit.(LedgerReader)
	if !ok || s.deps.Tree == nil {
		jsonhttp.WriteError(w, jsonhttp.Errorf(http.StatusNotFound, KindNotFound, "not found: this broker's ledger cannot be queried"))
		return
	}
	if ok, wait := s.ipLimit.Allow(ratelimit.ClientIP(r)); !ok {
		s.rateLimited(w, r, endpointAudit, "ip", wait)
		return
	}
	token, hash, reason := bearer(r)
	if reason != "" {
		jsonhttp.WriteError(w, jsonhttp.Errorf(http.StatusUnauthorized, KindUnauthorized, "unauthorized: %s", reason))
		return
	}
	if ok, wait := s.bearerLimit.Allow(hash); !ok {
		s.rateLimited(w, r, endpointAudit, "bearer", wait)
		return
	}
	q, e := parseAuditViewQuery(r)
	if e != nil {
		jsonhttp.WriteError(w, e)
		return
	}
	ctx := r.Context()
	tree, err := s.deps.Tree.Tree(ctx, token)
	if err != nil {
		var ue *UnauthorizedError
		if errors.As(err, &ue) {
			jsonhttp.WriteError(w, jsonhttp.Errorf(http.StatusUnauthorized, KindUnauthorized, "unauthorized: %s", ue.Reason))
			return
		}
		s.log.Warn("audit view: backend could not list the caller's wallets", "err", err)
		jsonhttp.WriteError(w, jsonhttp.Errorf(http.StatusBadGateway, KindBackendUnreachable, "backend unreachable: the session backend could not say which wallets the bearer may see"))
		return
	}
	var visible []string
	for _, wlt := range tree {
		if len(q.Wallets) == 0 || string(wlt) == q.Wallets[0] {
			visible = append(visible, string(wlt))
		}
	}
	if len(visible) > audit.MaxQueryWallets {
		visible = visible[:audit.MaxQueryWallets] // the caller's own wallet comes first
	}
	q.Wallets = visible // a wallet outside the caller's tree shows nothing
	qctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	recs, err := reader.Query(qctx, q)
	if err != nil {
		s.log.Error("audit view: ledger query failed", "err", err)
		jsonhttp.WriteError(w, jsonhttp.Errorf(http.StatusInternalServerError, KindAuditError, "audit error: the ledger could not be read"))
		return
	}
	page := api.BrokerAuditPage{Events: make([]api.BrokerAuditEvent, len(recs))}
	for i, rec := range recs {
		kind := api.MintKindAWS
		if rec.RequestedRole == audit.RoleOIDCJWT {
			kind = api.MintKindJWT
		}
		page.Events[i] = api.BrokerAuditEvent{
			Chain: rec.Chain, ID: rec.ID, Timestamp: rec.Time.Unix(), Time: rec.Time.UTC().Format(time.RFC3339),
			Wallet: agentkeys.Wallet(rec.RequesterWallet), Kind: kind, Outcome: rec.Outcome, Detail: rec.Detail,
			ClientIP: rec.ClientIP, RequestID: rec.RequestID, CredentialID: rec.CredentialID,
			CredentialExpiresAt: rec.CredentialExpiresAt,
		}
	}
	if len(recs) == q.Limit {
		page.NextCursor = audit.CursorOf(recs[len(recs)-1]).String()
	}
	jsonhttp.Write(w, http.StatusOK, page)
}

// parseAuditViewQuery reads the filters of GET /v1/audit (untrusted input).
func parseAuditViewQuery(r *http.Request) (audit.Query, *jsonhttp.Error) {
	qs := r.URL.Query()
	bad := func(msg string) (audit.Query, *jsonhttp.Error) {
		return audit.Query{}, jsonhttp.Errorf(http.StatusBadRequest, KindBadRequest, "bad request: %s", msg)
	}
	for k := range qs {
		switch k {
		case "since", "until", "outcome", "kind", "limit", "cursor", "wallet":
		default:
			return bad("unknown parameter " + strconv.Quote(k) + " (since, until, outcome, kind, wallet, limit, cursor)")
		}
	}
	q := audit.Query{Limit: defaultAuditViewLimit}
	var err error
	if v := qs.Get("wallet"); v != "" {
		w, err := agentkeys.ParseWallet(v)
		if err != nil {
			return bad("wallet must be a 0x wallet address")
		}
		q.Wallets = []string{string(w)} // narrowed to the caller's tree by auditView
	}
	if q.Since, err = parseViewTime(qs.Get("since")); err != nil {
		return bad("since must be RFC 3339 or unix seconds")
	}
	if q.Until, err = parseViewTime(qs.Get("until")); err != nil {
		return bad("until must be RFC 3339 or unix seconds")
	}
	if o := qs.Get("outcome"); o != "" {
		if len(o) > 40 || !snakeCase(o) {
			return bad("outcome must be an outcome name such as ok, auth_failed, sts_error")
		}
		q.Outcome = o
	}
	switch qs.Get("kind") {
	case "":
	case api.MintKindJWT:
		q.JWT = new(bool)
		*q.JWT = true
	case api.MintKindAWS:
		q.JWT = new(bool)
	default:
		return bad(`kind must be "jwt" or "aws"`)
	}
	if v := qs.Get("limit"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 1 || n > maxAuditViewLimit {
			return bad("limit must be an integer from 1 to " + strconv.Itoa(maxAuditViewLimit))
		}
		q.Limit = n
	}
	if v := qs.Get("cursor"); v != "" {
		c, err := audit.ParseCursor(v)
		if err != nil {
			return bad(err.Error())
		}
		q.Before = &c
	}
	return q, nil
}

func parseViewTime(v string) (time.Time, error) {
	if v == "" {
		return time.Time{}, nil
	}
	if n, err := strconv.ParseInt(v, 10, 64); err == nil {
		if n < 0 {
			return time.Time{}, errors.New("negative")
		}
		return time.Unix(n, 0), nil
	}
	return time.Parse(time.RFC3339, v)
}

// snakeCase reports whether v is lower-case letters and underscores.
func snakeCase(v string) bool {
	for _, c := range v {
		if (c < 'a' || c > 'z') && c != '_' {
			return false
		}
	}
	return v != ""
}
