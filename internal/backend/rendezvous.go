package backend

import (
	"context"
	"encoding/base64"
	"errors"
	"net/http"
	"time"

	"github.com/agentkeys/agentkeys/internal/agentkeys"
	"github.com/agentkeys/agentkeys/internal/api"
	"github.com/agentkeys/agentkeys/internal/authreq"
	"github.com/agentkeys/agentkeys/internal/jsonhttp"
	"github.com/agentkeys/agentkeys/internal/store"
)

// The rendezvous relay carries one opaque payload (e.g. sealed to the
// daemon's key) from the master who approved a request to the daemon that
// opened it. Unlike the original, a slot can only be registered by the
// opener of a live auth request (no pair-code squatting) and only filled by
// the master who approved that request.

// Rendezvous error kinds of the original.
const (
	kindNoMatch          = "NO_MATCH"
	kindAlreadyDelivered = "ALREADY_DELIVERED"
	maxRendezvousPayload = 4 << 10

	actionRendezvousDeliver = "rendezvous_deliver"
)

func (s *Server) registerRendezvous(r *http.Request) (any, error) {
	ctx := r.Context()
	if err := s.limitIP(r, s.openLimit); err != nil {
		return nil, err
	}
	var req api.RendezvousRegisterRequest
	if err := decode(r, &req, smallBody); err != nil {
		return nil, err
	}
	pub, err := base64.StdEncoding.DecodeString(req.DaemonPubkey)
	if err != nil || len(pub) == 0 || len(pub) > 256 {
		return nil, badRequest("daemon_pubkey must be standard base64 (1 to 256 bytes)")
	}
	await, err := bearer(r)
	if err != nil {
		return nil, unauthorized("register needs the await_token of the auth request as its bearer")
	}
	tok := agentkeys.NewToken()
	var slot store.Rendezvous
	err = s.store.Tx(ctx, func(q store.Queries) error {
		ar, err := lookupAuthRequest(ctx, q, req.PairCode, "")
		if err != nil {
			return err
		}
		if !ar.AwaitHash.Equal(await.Hash()) {
			return unauthorized("await token does not match this pair code")
		}
		if !s.now().Before(ar.ExpiresAt) {
			return jsonhttp.Errorf(http.StatusGone, KindExpired, "auth request expired")
		}
		slot = store.Rendezvous{PairCode: ar.PairCode, TokenHash: tok.Hash(), DaemonPubkey: pub, CreatedAt: s.now(), ExpiresAt: ar.ExpiresAt}
		if err := q.InsertRendezvous(ctx, slot); err != nil {
			if errors.Is(err, store.ErrConflict) {
				return conflict("pair code already registered")
			}
			return err
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	return api.RendezvousRegisterResponse{RegistrationToken: tok.Reveal(), ExpiresAt: slot.ExpiresAt.Unix()}, nil
}

// pollRendezvous long-polls for the payload. The registration token may come
// as a bearer (preferred: it stays out of proxy logs) or as ?token=.
func (s *Server) pollRendezvous(r *http.Request) (any, error) {
	ctx := r.Context()
	raw := r.URL.Query().Get("token")
	if raw == "" {
		t, err := bearer(r)
		if err != nil {
			return nil, badRequest("registration token required (bearer or ?token=)")
		}
		raw = t.Reveal()
	}
	tok, err := agentkeys.ParseToken(raw)
	if err != nil {
		return nil, notFound("registration not found")
	}
	return s.longPoll(r, "", api.RendezvousPollResponse{Status: "timeout"}, func() (pollLook, error) {
		// A plain read while waiting; the key of the in-process wake-up
		// is known only from the slot, so a delivery between this read
		// and the subscription is caught by the pairing epoch (bumped in
		// the delivery's transaction, after moved was taken).
		slot, err := s.store.RendezvousByToken(ctx, tok.Hash())
		left, err := s.pollable(slot, err)
		if err != nil {
			return pollLook{}, err
		}
		if left <= 0 {
			out, done, err := s.pollOnce(ctx, tok)
			if err != nil || done {
				return pollLook{out: out, done: true}, err
			}
			left = time.Second
		}
		return pollLook{key: "rv:" + slot.PairCode, left: left}, nil
	})
}

// pollable checks a plainly read slot: an error for an unknown, consumed
// or expired registration; 0 if its payload waits (collect it); otherwise
// how long it stays open.
func (s *Server) pollable(slot store.Rendezvous, err error) (time.Duration, error) {
	if errors.Is(err, store.ErrNotFound) {
		return 0, notFound("registration not found")
	}
	if err != nil {
		return 0, err
	}
	if slot.Consumed {
		return 0, conflict("registration already consumed")
	}
	if slot.Delivered {
		return 0, nil
	}
	left := slot.ExpiresAt.Sub(s.now())
	if left <= 0 {
		return 0, jsonhttp.Errorf(http.StatusGone, KindExpired, "registration expired")
	}
	return left, nil
}

// pollOnce collects a delivered payload in a transaction (once: the slot
// is then consumed); not done while the slot still waits.
func (s *Server) pollOnce(ctx context.Context, tok agentkeys.Token) (any, bool, error) {
	var (
		out  any
		done bool
	)
	err := s.store.Tx(ctx, func(q store.Queries) error {
		slot, err := q.RendezvousByToken(ctx, tok.Hash())
		left, err := s.pollable(slot, err) // the poll's checks, again under the transaction
		if err != nil || left > 0 {
			return err // still waiting: not done
		}
		done = true
		payload := base64.StdEncoding.EncodeToString(slot.Payload)
		out = api.RendezvousPollResponse{Payload: &payload, Status: "delivered"}
		slot.Consumed, slot.Payload = true, nil
		return q.UpdateRendezvous(ctx, slot)
	})
	return out, done, err
}

func (s *Server) deliverRendezvous(r *http.Request, c *caller) (any, error) {
	ctx := r.Context()
	var req api.RendezvousDeliverRequest
	if err := decode(r, &req, 2*maxRendezvousPayload); err != nil {
		return nil, err
	}
	payload, err := base64.StdEncoding.DecodeString(req.Payload)
	if err != nil || len(payload) > maxRendezvousPayload {
		return nil, badRequest("payload must be standard base64 of at most %d bytes", maxRendezvousPayload)
	}
	code, ok := authreq.NormalizePairCode(req.PairCode)
	if !ok {
		return nil, jsonhttp.Errorf(http.StatusNotFound, kindNoMatch, "no registration for this pair code")
	}
	var pairing int64
	err = s.store.Tx(ctx, func(q store.Queries) error {
		slot, err := q.Rendezvous(ctx, code)
		if errors.Is(err, store.ErrNotFound) {
			return jsonhttp.Errorf(http.StatusNotFound, kindNoMatch, "no registration for this pair code")
		}
		if err != nil {
			return err
		}
		ar, err := q.AuthRequestByPairCode(ctx, code)
		if errors.Is(err, store.ErrNotFound) || (err == nil && ar.ApproverWallet != c.addr()) {
			return denied("only the master who approved this request can deliver to it")
		}
		if err != nil {
			return err
		}
		if ar.Status != store.AuthApproved && ar.Status != store.AuthDelivered {
			return denied("only the master who approved this request can deliver to it")
		}
		if !s.now().Before(slot.ExpiresAt) {
			return jsonhttp.Errorf(http.StatusGone, KindExpired, "registration expired")
		}
		if slot.Delivered {
			return jsonhttp.Errorf(http.StatusConflict, kindAlreadyDelivered, "payload already delivered")
		}
		slot.Payload, slot.Delivered = payload, true
		if err := q.UpdateRendezvous(ctx, slot); err != nil {
			return err
		}
		if err := bumpPairing(ctx, q, &pairing); err != nil {
			return err
		}
		return s.audit(ctx, q, c.addr(), ar.ResultWallet, agentkeys.AuditWildcard, actionRendezvousDeliver, agentkeys.ResultOK)
	})
	if err != nil {
		return nil, err
	}
	s.notify("rv:" + code)
	s.pairings.observe(pairing)
	return api.OK{OK: true}, nil
}
