package backend

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"net/http"
	"time"

	"github.com/agentkeys/agentkeys/internal/agentkeys"
	"github.com/agentkeys/agentkeys/internal/api"
	"github.com/agentkeys/agentkeys/internal/authreq"
	"github.com/agentkeys/agentkeys/internal/jsonhttp"
	"github.com/agentkeys/agentkeys/internal/store"
)

// awaitAuthDecision long-polls for the decision. Only the opener can call
// it: it must present the await token from open as its bearer. An approved
// session is handed out exactly once and then wiped from the server.
func (s *Server) awaitAuthDecision(r *http.Request) (any, error) {
	ctx := r.Context()
	id := r.URL.Query().Get("request_id")
	if id == "" {
		return nil, badRequest("request_id required")
	}
	tok, err := bearer(r)
	if err != nil {
		return nil, unauthorized("await needs the await_token returned by open as its bearer")
	}
	// The wake-up key is known up front: subscribe before reading, so a
	// decision committed after the read still wakes this poll.
	timeout := api.AwaitResponse{Status: "timeout", RequestID: id, Decision: api.Null[struct{}]()}
	return s.longPoll(r, id, timeout, func() (pollLook, error) {
		ar, err := s.store.AuthRequest(ctx, id) // a plain read: no transaction while waiting
		left, err := s.awaitable(ar, err, tok)
		if err != nil {
			return pollLook{}, err
		}
		if left <= 0 {
			// Decided: collect it (once) in a transaction.
			out, done, err := s.awaitOnce(ctx, id, tok)
			if err != nil || done {
				return pollLook{out: out, done: true}, err
			}
			left = time.Second // raced with nothing: look again shortly
		}
		return pollLook{left: left}, nil
	})
}

// awaitable checks a plainly read request against the await token: an
// error for an unknown, foreign, expired or already collected request; 0
// if it is decided (collect it); otherwise how long it stays pending.
func (s *Server) awaitable(ar store.AuthRequest, err error, tok agentkeys.Token) (time.Duration, error) {
	if errors.Is(err, store.ErrNotFound) {
		return 0, notFound("auth request not found")
	}
	if err != nil {
		return 0, err
	}
	if !ar.AwaitHash.Equal(tok.Hash()) {
		return 0, unauthorized("await token does not match this request")
	}
	switch ar.Status {
	case store.AuthPending:
		left := ar.ExpiresAt.Sub(s.now())
		if left <= 0 {
			return 0, jsonhttp.Errorf(http.StatusGone, KindExpired, "auth request expired before approval")
		}
		return left, nil
	case store.AuthDelivered:
		return 0, jsonhttp.Errorf(http.StatusConflict, KindConflict, "auth request already awaited")
	}
	return 0, nil
}

// awaitOnce collects a decided request in a transaction: done with the
// answer for a denied, locked or approved one (an approved session is
// handed out once and wiped), not done while it is still pending.
func (s *Server) awaitOnce(ctx context.Context, id string, tok agentkeys.Token) (any, bool, error) {
	var out any
	done := false
	err := s.store.Tx(ctx, func(q store.Queries) error {
		ar, err := q.AuthRequest(ctx, id)
		left, err := s.awaitable(ar, err, tok) // the poll's checks, again under the transaction
		if err != nil || left > 0 {
			return err // still pending: not done
		}
		done = true
		if ar.Status == store.AuthDenied || ar.Status == store.AuthLocked {
			out = api.AwaitResponse{Status: string(ar.Status), RequestID: id, Approved: new(false)}
			return nil
		}
		resp := api.AwaitResponse{
			Status: "approved", RequestID: id, Approved: new(true), Wallet: ar.ResultWallet,
			Signature: base64.StdEncoding.EncodeToString(ar.Signature), KeyID: s.signKID,
			ApproverWallet: ar.ApproverWallet, CreatedAt: ar.CreatedAt.Unix(),
		}
		if ar.BoxPubkey == nil {
			resp.Session = api.Null[api.AwaitSession]()
		}
		if ar.SealedSession != nil {
			raw, err := s.sealer.Open(ar.SealedSession, sessionAAD(ar.ID))
			if err != nil {
				return err
			}
			st, err := agentkeys.ParseToken(string(raw))
			if err != nil {
				return err
			}
			sess, err := q.Session(ctx, st.Hash())
			if err != nil {
				return err
			}
			session := api.AwaitSession{Token: st.Reveal(), Wallet: sess.Wallet, ExpiresAt: sess.ExpiresAt.Unix()}
			if ar.BoxPubkey == nil {
				resp.Session = api.Some(session)
			} else {
				// Sealed to the opener's key: whoever relays or sees this
				// answer holds no usable bearer.
				plain, err := json.Marshal(session)
				if err != nil {
					return err
				}
				sealed, err := authreq.SealTo(ar.BoxPubkey, ar.ID, plain)
				clear(plain)
				if err != nil {
					return err
				}
				resp.SealedSession = base64.StdEncoding.EncodeToString(sealed)
			}
		}
		ar.Status, ar.SealedSession = store.AuthDelivered, nil
		if err := q.UpdateAuthRequest(ctx, ar); err != nil {
			return err
		}
		if ar.ApproverWallet != "" {
			if err := s.audit(ctx, q, ar.ApproverWallet, ar.ResultWallet, agentkeys.AuditWildcard, actionAuthDelivered, agentkeys.ResultOK); err != nil {
				return err
			}
		}
		out = resp
		return nil
	})
	return out, done, err
}
