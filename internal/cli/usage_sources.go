package cli

import (
	"context"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/agentkeys/agentkeys/internal/api"
	"github.com/agentkeys/agentkeys/internal/audit"
	"github.com/agentkeys/agentkeys/internal/backendclient"
	"github.com/agentkeys/agentkeys/internal/brokerclient"
)

// Sources of usage events.
const (
	sourceBackend = "backend"
	sourceBroker  = "broker"
)

// usageSources is where `usage` reads: the backend's audit log and, when a
// broker is known, the broker's mint ledger (each stays the authority on
// its own events; usage only merges what they say).
type usageSources struct {
	m      *Master
	broker *brokerclient.Client // nil: backend only
	// What each source is asked; skip means the filters exclude it.
	backend     backendclient.AuditFilter
	skipBackend bool
	brokerF     brokerclient.AuditFilter
	skipBroker  bool
	// keepAttempts shows sts_attempt rows even when their outcome row is
	// there too (--result sts_attempt).
	keepAttempts bool
}

// usageCursor is where a listing continues in each source. A source's
// cursor "" means from its newest event; done means it has no more.
type usageCursor struct {
	backend, broker         string
	backendDone, brokerDone bool
}

// String encodes c for --cursor: "b:<backend>|k:<broker>", "-" for a
// source that is done.
func (c usageCursor) String() string {
	if c.backendDone && c.brokerDone {
		return ""
	}
	side := func(cur string, done bool) string {
		if done {
			return "-"
		}
		return cur
	}
	return "b:" + side(c.backend, c.backendDone) + "|k:" + side(c.broker, c.brokerDone)
}

// parseUsageCursor reads --cursor: a cursor printed by usage, or a bare
// backend cursor (what usage printed before it read the broker).
func parseUsageCursor(s string) (usageCursor, error) {
	if s == "" {
		return usageCursor{}, nil
	}
	b, k, ok := strings.Cut(s, "|")
	if !ok {
		if _, err := strconv.ParseInt(s, 10, 64); err != nil {
			return usageCursor{}, usagef("--cursor: not a cursor usage printed")
		}
		return usageCursor{backend: s, brokerDone: true}, nil
	}
	bv, okb := strings.CutPrefix(b, "b:")
	kv, okk := strings.CutPrefix(k, "k:")
	if !okb || !okk {
		return usageCursor{}, usagef("--cursor: not a cursor usage printed")
	}
	c := usageCursor{backend: bv, broker: kv, backendDone: bv == "-", brokerDone: kv == "-"}
	if c.backendDone {
		c.backend = ""
	} else if bv != "" {
		if _, err := strconv.ParseInt(bv, 10, 64); err != nil {
			return usageCursor{}, usagef("--cursor: not a cursor usage printed")
		}
	}
	if c.brokerDone {
		c.broker = ""
	} else if kv != "" {
		if _, err := audit.ParseCursor(kv); err != nil {
			return usageCursor{}, usagef("--cursor: not a cursor usage printed")
		}
	}
	return c, nil
}

// brokerUnavailable wraps a failure to read the broker's ledger.
func brokerUnavailable(err error) error {
	return withHint(fmt.Errorf("reading the broker's mints: %w", err),
		"the backend's events alone: `agentkeys usage --source backend`")
}

// fetchBackend reads up to n events of the backend from cursor (all with
// n < 0); next is "" when the backend has no more.
func (s *usageSources) fetchBackend(ctx context.Context, cursor string, n int) ([]usageEvent, string, error) {
	f := s.backend
	return fetchPages(cursor, n, func(cursor string, limit int) ([]usageEvent, string, error) {
		f.Cursor, f.Limit = cursor, limit
		page, err := s.m.Client.QueryAudit(ctx, s.m.Session.Token, f)
		if err != nil {
			return nil, "", err
		}
		out := make([]usageEvent, len(page.Events))
		for i, e := range page.Events {
			out[i] = backendEvent(e)
		}
		return out, page.NextCursor, nil
	})
}

// fetchBroker is fetchBackend for the broker's ledger.
func (s *usageSources) fetchBroker(ctx context.Context, cursor string, n int) ([]usageEvent, string, error) {
	f := s.brokerF
	return fetchPages(cursor, n, func(cursor string, limit int) ([]usageEvent, string, error) {
		f.Cursor, f.Limit = cursor, limit
		page, err := s.broker.Audit(ctx, s.m.Session.Token, f)
		if err != nil {
			return nil, "", brokerUnavailable(err)
		}
		out := make([]usageEvent, len(page.Events))
		for i, e := range page.Events {
			out[i] = brokerEvent(e)
		}
		return out, page.NextCursor, nil
	})
}

// fetchPages reads pages of at most maxAuditPage events from cursor until
// n events (every one with n < 0) or the last page; next is the cursor
// after the last page read ("" at the end).
func fetchPages(cursor string, n int, page func(cursor string, limit int) ([]usageEvent, string, error)) (events []usageEvent, next string, err error) {
	for {
		limit := maxAuditPage
		if n >= 0 {
			limit = min(n-len(events), maxAuditPage)
		}
		if limit == 0 {
			return events, cursor, nil
		}
		got, next, err := page(cursor, limit)
		if err != nil {
			return nil, "", err
		}
		events = append(events, got...)
		if next == "" || len(got) == 0 || (n >= 0 && len(events) >= n) {
			return events, next, nil
		}
		cursor = next
	}
}

// list reads up to limit events (every one with all) from cur on, newest
// first across both sources, and the cursor to continue from.
func (s *usageSources) list(ctx context.Context, cur usageCursor, limit int, all bool) ([]usageEvent, usageCursor, error) {
	n := limit
	if all {
		n = -1
	}
	var be, ke []usageEvent
	var bnext, knext string
	var err error
	if !cur.backendDone && !s.skipBackend {
		if be, bnext, err = s.fetchBackend(ctx, cur.backend, n); err != nil {
			return nil, cur, err
		}
	}
	if !cur.brokerDone && !s.skipBroker && s.broker != nil {
		if ke, knext, err = s.fetchBroker(ctx, cur.broker, n); err != nil {
			return nil, cur, err
		}
		ke = s.dropSettledAttempts(ke)
	}
	merged := mergeNewestFirst(be, ke)
	if !all && len(merged) > limit {
		merged = merged[:limit]
	}
	// Each source continues after the last of its events shown; one whose
	// fetched events were all shown continues where it said.
	next := usageCursor{
		backend: cur.backend, broker: cur.broker,
		backendDone: cur.backendDone || s.skipBackend,
		brokerDone:  cur.brokerDone || s.skipBroker || s.broker == nil,
	}
	var shownB, shownK int
	for _, e := range merged {
		if e.Source == sourceBroker {
			shownK++
			next.broker = e.cursor
		} else {
			shownB++
			next.backend = strconv.FormatInt(e.ID, 10)
		}
	}
	if !next.backendDone && shownB == len(be) {
		next.backend, next.backendDone = bnext, bnext == ""
	}
	if !next.brokerDone && shownK == len(ke) {
		next.broker, next.brokerDone = knext, knext == ""
	}
	return merged, next, nil
}

// since reads every event at or after t (for --follow), oldest first.
func (s *usageSources) since(ctx context.Context, t time.Time) ([]usageEvent, error) {
	saveB, saveK := s.backend.Since, s.brokerF.Since
	defer func() { s.backend.Since, s.brokerF.Since = saveB, saveK }()
	if s.backend.Since.Before(t) {
		s.backend.Since = t
	}
	if s.brokerF.Since.Before(t) {
		s.brokerF.Since = t
	}
	events, _, err := s.list(ctx, usageCursor{}, 0, true)
	if err != nil {
		return nil, err
	}
	reverse(events)
	return events, nil
}

// dropSettledAttempts hides an sts_attempt row whose outcome row (same
// request id) is among events: the outcome says what happened. An attempt
// without its outcome stays: the caller got an error although STS may
// have issued credentials.
func (s *usageSources) dropSettledAttempts(events []usageEvent) []usageEvent {
	if s.keepAttempts {
		return events
	}
	settled := map[string]bool{}
	for _, e := range events {
		if e.Result != audit.OutcomeAttempt && e.RequestID != "" {
			settled[e.RequestID] = true
		}
	}
	out := events[:0]
	for _, e := range events {
		if e.Result == audit.OutcomeAttempt && settled[e.RequestID] {
			continue
		}
		out = append(out, e)
	}
	return out
}

// mergeNewestFirst merges two newest-first lists by time (the backend's
// event first on a tie).
func mergeNewestFirst(a, b []usageEvent) []usageEvent {
	out := make([]usageEvent, 0, len(a)+len(b))
	for len(a) > 0 && len(b) > 0 {
		if a[0].unix >= b[0].unix {
			out, a = append(out, a[0]), a[1:]
		} else {
			out, b = append(out, b[0]), b[1:]
		}
	}
	return append(append(out, a...), b...)
}

func reverse(events []usageEvent) {
	for i, j := 0, len(events)-1; i < j; i, j = i+1, j-1 {
		events[i], events[j] = events[j], events[i]
	}
}

// backendEvent is a row of the backend's audit log as usage shows it.
func backendEvent(e api.AuditEvent) usageEvent {
	return usageEvent{
		Source: sourceBackend, ID: e.ID, Time: time.Unix(e.Timestamp, 0).UTC().Format(time.RFC3339),
		Owner: e.Owner, Agent: e.Agent, Service: e.Service, Action: e.Action, Result: e.Result, Detail: e.Detail, ClientIP: e.ClientIP,
		Unverified: unverifiedRow(e.Action, e.Detail), unix: e.Timestamp, key: "b" + strconv.FormatInt(e.ID, 10),
	}
}

// brokerEvent is a row of the broker's ledger as usage shows it: the
// minting wallet is both owner and agent.
func brokerEvent(e api.BrokerAuditEvent) usageEvent {
	action, service := actionMintAWS, serviceMintAWS
	if e.Kind == api.MintKindJWT {
		action, service = actionMintJWT, serviceMintJWT
	}
	out := usageEvent{
		Source: sourceBroker, ID: e.ID, Time: time.Unix(e.Timestamp, 0).UTC().Format(time.RFC3339),
		Owner: e.Wallet, Agent: e.Wallet, Service: service, Action: action, Result: e.Outcome, Detail: e.Detail, ClientIP: e.ClientIP,
		RequestID: e.RequestID, CredentialID: e.CredentialID,
		unix: e.Timestamp, key: "k" + e.Chain + ":" + strconv.FormatInt(e.ID, 10),
		cursor: audit.CursorOf(audit.Record{Chain: e.Chain, ID: e.ID, Time: time.Unix(e.Timestamp, 0)}).String(),
	}
	if e.CredentialExpiresAt > 0 {
		out.CredentialExpiresAt = time.Unix(e.CredentialExpiresAt, 0).UTC().Format(time.RFC3339)
	}
	return out
}
