package cli

import (
	"context"
	"fmt"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"github.com/agentkeys/agentkeys/internal/agentkeys"
	"github.com/agentkeys/agentkeys/internal/backendclient"
	"github.com/agentkeys/agentkeys/internal/textcheck"
)

// maxAuditPage is the backend's largest page (a variable for tests).
var maxAuditPage = 1000

// parseSince accepts a duration back from now (24h, 7d) or an RFC 3339
// time.
func parseSince(s string, now time.Time) (time.Time, error) {
	if t, err := time.Parse(time.RFC3339, s); err == nil {
		return t, nil
	}
	d, err := parseDuration(s)
	if err != nil || d <= 0 {
		return time.Time{}, fmt.Errorf("want a positive duration (24h, 7d) or an RFC 3339 time, got %q", s)
	}
	return now.Add(-d), nil
}

type usageEvent struct {
	ID    int64            `json:"id"`
	Time  string           `json:"time"`
	Owner agentkeys.Wallet `json:"owner"`
	Agent agentkeys.Wallet `json:"agent"`
	// OwnerName and AgentName are the backend's names of those wallets,
	// when they are agents of this master with a name.
	OwnerName string `json:"owner_name,omitempty"`
	AgentName string `json:"agent_name,omitempty"`
	Service   string `json:"service"`
	Action    string `json:"action"`
	Result    string `json:"result"`
	Detail    string `json:"detail,omitempty"`
	// ClientIP is where the request came from (rows recorded since the
	// backend stores it).
	ClientIP string `json:"client_ip,omitempty"`
	// Unverified marks rows written on behalf of a caller the backend did
	// not authenticate (an auth request opened naming this master): what
	// they say is the opener's claim.
	Unverified bool `json:"unverified,omitempty"`
}

// unverifiedRow reports whether an audit row was written for an
// unauthenticated caller (older backends wrote such opens unmarked).
func unverifiedRow(action, detail string) bool {
	return action == agentkeys.ActionAuthRequestOpen || strings.HasPrefix(detail, agentkeys.DetailUnverified)
}

func (a *App) newUsageCmd() *cobra.Command {
	var (
		service, action, result, since, until, cursor string
		limit                                         int
		all                                           bool
	)
	cmd := &cobra.Command{
		Use:   "usage [<agent>]",
		Short: "Show the audit log (newest first): every grant, read, denial, revoke",
		Long: `Show the audit events visible to this master, newest first, as a table
(time, owner, agent, service, action, result) or with --json as
{"events":[…],"next_cursor":"…"}. <agent> limits the log to one agent.
Rows written for a caller the backend did not authenticate (someone opened
a pairing or recovery request naming you) are marked unverified: their
DETAIL starts with "unverified:" and their JSON has "unverified": true.

--since and --until take a duration back from now (24h, 7d) or an RFC 3339
time. --limit caps the number of events (default 100); --all follows the
backend's cursors to the end.`,
		Args:              maxArgs(1, "[<agent>]"),
		ValidArgsFunction: a.completeAgents,
		RunE: func(cmd *cobra.Command, args []string) error {
			now := time.Now()
			f := backendclient.AuditFilter{Service: service, Action: action, Result: result, Cursor: cursor}
			var err error
			if since != "" {
				if f.Since, err = parseSince(since, now); err != nil {
					return usagef("--since: %v", err)
				}
			}
			if until != "" {
				if f.Until, err = parseSince(until, now); err != nil {
					return usagef("--until: %v", err)
				}
			}
			if limit < 1 {
				return usagef("--limit must be at least 1")
			}
			if service != "" {
				if err := validServiceArg(service); err != nil {
					return err
				}
			}
			return a.runUsage(cmdContext(cmd.Context()), usageInput{Agent: optionalArg(args), Filter: f, Limit: limit, All: all})
		},
	}
	fl := cmd.Flags()
	fl.StringVar(&service, "service", "", "only this service")
	fl.StringVar(&action, "action", "", "only this action (read, store, list, child_create, revoke, teardown, …)")
	fl.StringVar(&result, "result", "", "only this result (ok, DENIED, DENIED_SCOPE, DENIED_READ_ONLY, NOT_FOUND)")
	fl.StringVar(&since, "since", "", "only events after this (24h, 7d or RFC 3339)")
	fl.StringVar(&until, "until", "", "only events before this (24h, 7d or RFC 3339)")
	fl.IntVar(&limit, "limit", 100, "show at most this many events")
	fl.BoolVar(&all, "all", false, "follow cursors: show every matching event")
	fl.StringVar(&cursor, "cursor", "", "continue from a next_cursor of an earlier page")
	return cmd
}

// usageInput is `agentkeys usage` once its flags are parsed.
type usageInput struct {
	Agent  string // "" = every agent
	Filter backendclient.AuditFilter
	Limit  int
	All    bool // follow cursors to the end
}

// runUsage queries the audit log and prints it.
func (a *App) runUsage(ctx context.Context, in usageInput) error {
	m, ref, err := a.withAgent(ctx, in.Agent)
	if err != nil {
		return err
	}
	f := in.Filter
	if in.Agent != "" {
		f.Agent = ref.Wallet
	}
	events, next, err := queryUsage(ctx, m, f, in.Limit, in.All)
	if err != nil {
		return err
	}
	nameEvents(events, agentNames(ctx, m))
	if a.JSON {
		return a.printJSON(map[string]any{"events": events, "next_cursor": next})
	}
	if len(events) == 0 {
		a.printf("No audit events found.\n")
		return nil
	}
	tw := tabwriter.NewWriter(a.Out, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "TIME\tOWNER\tAGENT\tSERVICE\tACTION\tRESULT\tDETAIL")
	for _, e := range events {
		// Every server-supplied field is escaped: a detail holding a bidi
		// override or a terminal escape cannot disguise itself or the
		// rows around it.
		detail := textcheck.Escape(e.Detail)
		if e.Unverified && !strings.HasPrefix(e.Detail, agentkeys.DetailUnverified) {
			detail = strings.TrimSpace(agentkeys.DetailUnverified + detail)
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%s\n", e.Time, walletLabel(e.Owner, e.OwnerName), walletLabel(e.Agent, e.AgentName),
			textcheck.Escape(e.Service), textcheck.Escape(e.Action), textcheck.Escape(e.Result), detail)
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	if next != "" {
		fmt.Fprintf(a.Err, "agentkeys: more events exist: use --all, a larger --limit, or --cursor %s\n", next)
	}
	return nil
}

// nameEvents fills in the names of the events' wallets.
func nameEvents(events []usageEvent, names map[agentkeys.Wallet]string) {
	for i := range events {
		events[i].OwnerName, events[i].AgentName = names[events[i].Owner], names[events[i].Agent]
	}
}

// walletLabel is how the usage table shows a wallet: its name when it has
// one, else the wallet, escaped either way.
func walletLabel(w agentkeys.Wallet, name string) string {
	if name != "" {
		return textcheck.Escape(name)
	}
	return textcheck.Escape(string(w))
}

// queryUsage reads up to limit events (every one with all), following the
// backend's cursors; next is the cursor to continue from ("" at the end).
func queryUsage(ctx context.Context, m *Master, f backendclient.AuditFilter, limit int, all bool) (events []usageEvent, next string, err error) {
	events = []usageEvent{}
	for {
		f.Limit = maxAuditPage
		if !all {
			f.Limit = min(limit-len(events), maxAuditPage)
		}
		page, err := m.Client.QueryAudit(ctx, m.Session.Token, f)
		if err != nil {
			return nil, "", err
		}
		for _, e := range page.Events {
			events = append(events, usageEvent{
				ID: e.ID, Time: time.Unix(e.Timestamp, 0).UTC().Format(time.RFC3339),
				Owner: e.Owner, Agent: e.Agent, Service: e.Service, Action: e.Action, Result: e.Result, Detail: e.Detail, ClientIP: e.ClientIP,
				Unverified: unverifiedRow(e.Action, e.Detail),
			})
		}
		next = page.NextCursor
		if next == "" || len(page.Events) == 0 || (!all && len(events) >= limit) {
			return events, next, nil
		}
		f.Cursor = next
	}
}
