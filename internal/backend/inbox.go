package backend

import (
	"crypto/rand"
	"encoding/hex"
	"errors"
	"net/http"
	"strconv"
	"strings"

	"github.com/agentkeys/agentkeys/internal/api"
	"github.com/agentkeys/agentkeys/internal/store"
)

// The mock inbox is test scaffolding for the provisioner's e-mail step. It
// is served only when Options.MockInbox is set (agentkeys dev, tests),
// because its deliver route is open: anyone who can reach it can put mail
// in an inbox.

const maxMailBody = 256 << 10

func (s *Server) provisionInbox(r *http.Request, c *caller) (any, error) {
	ctx := r.Context()
	var req api.InboxProvisionRequest
	if err := decode(r, &req, smallBody); err != nil {
		return nil, err
	}
	addr, err := parseWalletField("agent_id", req.AgentID) // Validate checked it
	if err != nil {
		return nil, err
	}
	tw, owned, err := s.target(ctx, s.store, c, addr)
	if err != nil {
		return nil, err
	}
	if !owned || tw.TornDown {
		return nil, denied("session does not own agent %s", addr)
	}
	if !c.scope.CanWrite() {
		return nil, denied("a read-only session cannot provision inboxes")
	}
	for attempt := 0; ; attempt++ {
		in := store.Inbox{Address: "bot-" + randomHex(5) + "@" + s.emailDomain, Wallet: addr, CreatedAt: s.now()}
		err = s.store.Tx(ctx, func(q store.Queries) error {
			if _, err := s.recheck(ctx, q, c, addr); err != nil {
				return err
			}
			return q.InsertInbox(ctx, in)
		})
		if err == nil {
			return api.InboxProvisionResponse{Address: in.Address, AgentWallet: addr}, nil
		}
		if !errors.Is(err, store.ErrConflict) || attempt == 5 {
			return nil, err
		}
	}
}

func (s *Server) listInboxes(r *http.Request, c *caller) (any, error) {
	ctx := r.Context()
	addr, err := parseWalletField("agent_id", r.URL.Query().Get("agent_id"))
	if err != nil {
		return nil, err
	}
	if _, owned, err := s.target(ctx, s.store, c, addr); err != nil {
		return nil, err
	} else if !owned {
		return nil, denied("session does not own agent %s", addr)
	}
	list, err := s.store.Inboxes(ctx, addr)
	if err != nil {
		return nil, err
	}
	out := make([]string, len(list))
	for i, in := range list {
		out[i] = in.Address
	}
	return out, nil
}

// inboxMessages lists messages of an inbox the caller owns, newest first;
// since (unix seconds or RFC 3339) keeps only those received at or after.
func (s *Server) inboxMessages(r *http.Request, c *caller) (any, error) {
	ctx := r.Context()
	q := r.URL.Query()
	address := strings.ToLower(q.Get("address"))
	if address == "" {
		return nil, badRequest("address required")
	}
	since, err := parseTimeParam("since", q.Get("since"))
	if err != nil {
		return nil, err
	}
	limit := 100
	if v := q.Get("limit"); v != "" {
		if limit, err = strconv.Atoi(v); err != nil || limit < 1 || limit > 1000 {
			return nil, badRequest("limit must be an integer from 1 to 1000")
		}
	}
	in, err := s.store.Inbox(ctx, address)
	if errors.Is(err, store.ErrNotFound) {
		return nil, notFound("inbox not found")
	}
	if err != nil {
		return nil, err
	}
	if _, owned, err := s.target(ctx, s.store, c, in.Wallet); err != nil {
		return nil, err
	} else if !owned {
		return nil, denied("session does not own this inbox")
	}
	msgs, err := s.store.InboxMessages(ctx, address, since, limit)
	if err != nil {
		return nil, err
	}
	out := make([]api.InboxMessage, len(msgs))
	for i, m := range msgs {
		out[i] = api.InboxMessage{MsgID: m.ID, From: m.From, Subject: m.Subject, Body: m.Body, ReceivedAt: m.ReceivedAt.Unix()}
	}
	return out, nil
}

// deliverMail puts a message into an inbox (what a mail provider would do).
func (s *Server) deliverMail(r *http.Request) (any, error) {
	if err := s.limitIP(r, s.openLimit); err != nil {
		return nil, err
	}
	var req api.DeliverMailRequest
	if err := decode(r, &req, maxMailBody); err != nil {
		return nil, err
	}
	m := store.InboxMessage{
		ID: uuidLike(), Address: strings.ToLower(req.Address), From: req.From, Subject: req.Subject, Body: req.Body,
		ReceivedAt: s.now(),
	}
	if err := s.store.InsertInboxMessage(r.Context(), m); err != nil {
		if errors.Is(err, store.ErrNotFound) {
			return nil, notFound("inbox not found")
		}
		return nil, err
	}
	return api.DeliverMailResponse{MsgID: m.ID}, nil
}

func uuidLike() string {
	h := randomHex(16)
	return h[:8] + "-" + h[8:12] + "-" + h[12:16] + "-" + h[16:20] + "-" + h[20:]
}

func randomHex(n int) string {
	b := make([]byte, n)
	rand.Read(b)
	return hex.EncodeToString(b)
}
