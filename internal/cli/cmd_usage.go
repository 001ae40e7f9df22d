package cli

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/signal"
	"slices"
	"strings"
	"syscall"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"github.com/agentkeys/agentkeys/internal/agentkeys"
	"github.com/agentkeys/agentkeys/internal/api"
	"github.com/agentkeys/agentkeys/internal/backendclient"
	"github.com/agentkeys/agentkeys/internal/provision"
	"github.com/agentkeys/agentkeys/internal/textcheck"
)

// maxAuditPage is the backend's largest page (a variable for tests).
var maxAuditPage = 1000

// followInterval is how often `usage --follow` asks for new events.
const followInterval = time.Second

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
	// Source is "backend" (its audit log) or "broker" (its mint ledger).
	Source string           `json:"source"`
	ID     int64            `json:"id"`
	Time   string           `json:"time"`
	Owner  agentkeys.Wallet `json:"owner"`
	Agent  agentkeys.Wallet `json:"agent"`
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
	// Broker rows: the request id, the credential's id (AWS access key id
	// or JWT jti) and its expiry.
	RequestID           string `json:"request_id,omitempty"`
	CredentialID        string `json:"credential_id,omitempty"`
	CredentialExpiresAt string `json:"credential_expires_at,omitempty"`

	unix   int64  // Time as unix seconds, for merging
	key    string // unique across sources, for --follow
	cursor string // broker rows: the ledger cursor after this row
}

// unverifiedRow reports whether an audit row was written for an
// unauthenticated caller (older backends wrote such opens unmarked).
func unverifiedRow(action, detail string) bool {
	return action == agentkeys.ActionAuthRequestOpen || strings.HasPrefix(detail, agentkeys.DetailUnverified)
}

// usageFlags are `agentkeys usage`'s flags as given.
type usageFlags struct {
	service, action, result, since, until, cursor, source string
	limit                                                 int
	all, follow                                           bool
}

func (a *App) newUsageCmd() *cobra.Command {
	var fl usageFlags
	cmd := &cobra.Command{
		Use:   "usage [<agent>]",
		Short: "Show the audit log (newest first): every grant, read, denial, revoke and broker mint",
		Long: `Show the audit events visible to this master, newest first, as a table
(time, owner, agent, service, action, result) or with --json as
{"events":[…],"next_cursor":"…"}. <agent> limits the log to one agent.

Two sources are merged: the backend's audit log (logins, grants, reads,
denials, revokes, teardowns, pairing) and, when a broker is known (the
profile is bound to one, or --broker-url / AGENTKEYS_BROKER_URL), the
broker's mint ledger: every OIDC token (action mint_jwt, service oidc) and
AWS credential (action mint_aws, service aws) minted or refused for this
master or one of its agents, with the ledger's outcome (ok, auth_failed,
scope_denied, sts_error, …). Each source stays the authority on its own
events; --source backend or --source broker reads only one. When the
broker cannot be read, usage fails rather than show half the picture.

Rows written for a caller the backend did not authenticate (someone opened
a pairing or recovery request naming you) are marked unverified: their
DETAIL starts with "unverified:" and their JSON has "unverified": true.

--action and --result take only values AgentKeys writes (case-sensitive);
anything else is refused (exit 2) with the nearest value. --since and
--until take a duration back from now (24h, 7d) or an RFC 3339 time.
--limit caps the number of events (default 100); --all follows the
cursors to the end.

--follow prints the newest --limit events oldest first, then every new
event as it is recorded (checking once a second) until interrupted; with
--json each event is one JSON object per line.`,
		Args:              maxArgs(1, "[<agent>]"),
		ValidArgsFunction: a.completeAgents,
		RunE: func(cmd *cobra.Command, args []string) error {
			in, err := fl.parse(time.Now())
			if err != nil {
				return err
			}
			in.Agent = optionalArg(args)
			return a.runUsage(cmdContext(cmd.Context()), in)
		},
	}
	f := cmd.Flags()
	f.StringVar(&fl.service, "service", "", "only this service (aws and oidc are the broker's mints)")
	f.StringVar(&fl.action, "action", "", "only this action (read, store, list, child_create, revoke, teardown, mint_jwt, mint_aws, …)")
	f.StringVar(&fl.result, "result", "", "only this result (ok, DENIED, DENIED_SCOPE, DENIED_READ_ONLY, NOT_FOUND, auth_failed, sts_error, …)")
	f.StringVar(&fl.since, "since", "", "only events after this (24h, 7d or RFC 3339)")
	f.StringVar(&fl.until, "until", "", "only events before this (24h, 7d or RFC 3339)")
	f.IntVar(&fl.limit, "limit", 100, "show at most this many events")
	f.BoolVar(&fl.all, "all", false, "follow cursors: show every matching event")
	f.StringVar(&fl.cursor, "cursor", "", "continue from a next_cursor of an earlier page")
	f.StringVar(&fl.source, "source", "", "read only one source: backend or broker (default: both when a broker is known)")
	f.BoolVarP(&fl.follow, "follow", "f", false, "keep printing new events until interrupted")
	return cmd
}

// usageInput is `agentkeys usage` once its flags are parsed.
type usageInput struct {
	Agent   string // "" = every agent
	Filter  backendclient.AuditFilter
	Cursor  usageCursor
	Source  string // "" = both
	Limit   int
	All     bool // follow cursors to the end
	Follow  bool
	Service string // as given (the broker's mints have their own)
}

// parse checks every flag before anything is sent (exit 2 on a mistake).
func (fl usageFlags) parse(now time.Time) (usageInput, error) {
	in := usageInput{
		Filter: backendclient.AuditFilter{Service: fl.service, Action: fl.action, Result: fl.result},
		Limit:  fl.limit, All: fl.all, Follow: fl.follow, Service: fl.service, Source: fl.source,
	}
	var err error
	if fl.since != "" {
		if in.Filter.Since, err = parseSince(fl.since, now); err != nil {
			return in, usagef("--since: %v", err)
		}
	}
	if fl.until != "" {
		if in.Filter.Until, err = parseSince(fl.until, now); err != nil {
			return in, usagef("--until: %v", err)
		}
	}
	if fl.limit < 1 {
		return in, usagef("--limit must be at least 1")
	}
	if fl.service != "" {
		if err := validServiceArg(fl.service); err != nil {
			return in, err
		}
	}
	if err := checkChoice("--action", fl.action, knownActions()); err != nil {
		return in, err
	}
	if err := checkChoice("--result", fl.result, knownResults()); err != nil {
		return in, err
	}
	if err := checkChoice("--source", fl.source, []string{sourceBackend, sourceBroker}); err != nil {
		return in, err
	}
	if fl.follow && (fl.all || fl.cursor != "" || fl.until != "") {
		return in, usagef("--follow shows new events as they come: it does not combine with --all, --cursor or --until")
	}
	if in.Cursor, err = parseUsageCursor(fl.cursor); err != nil {
		return in, err
	}
	return in, nil
}

// sources decides what each source is asked for in.
func (a *App) usageSources(m *Master, ref agentRef, in usageInput) (*usageSources, error) {
	s := &usageSources{m: m, backend: in.Filter, keepAttempts: in.Filter.Result == "sts_attempt"}
	if in.Agent != "" {
		s.backend.Agent = ref.Wallet
		s.brokerF.Wallet = string(ref.Wallet)
	}
	s.brokerF.Since, s.brokerF.Until, s.brokerF.Outcome = in.Filter.Since, in.Filter.Until, in.Filter.Result

	// Which source can hold what the filters ask for.
	switch in.Filter.Action {
	case "":
	case actionMintJWT:
		s.skipBackend, s.brokerF.Kind = true, api.MintKindJWT
	case actionMintAWS:
		s.skipBackend, s.brokerF.Kind = true, api.MintKindAWS
	default:
		s.skipBroker = true
	}
	switch in.Service {
	case "":
	case serviceMintJWT, serviceMintAWS:
		kind := api.MintKindJWT
		if in.Service == serviceMintAWS {
			kind = api.MintKindAWS
		}
		if s.brokerF.Kind != "" && s.brokerF.Kind != kind {
			s.skipBroker = true
		}
		s.brokerF.Kind = kind
	default:
		s.skipBroker = true
	}
	if r := in.Filter.Result; r != "" {
		if !slices.Contains(brokerResults, r) {
			s.skipBroker = true
		}
		if !slices.Contains(backendResults, r) && !isProvisionCode(r) {
			s.skipBackend = true
		}
	}
	switch in.Source {
	case sourceBackend:
		s.skipBroker = true
	case sourceBroker:
		s.skipBackend = true
	}
	if s.skipBroker {
		return s, nil
	}
	explicit, err := a.explicitBroker()
	if err != nil {
		return nil, err
	}
	if m.Session.Broker == "" && explicit == "" {
		if in.Source == sourceBroker {
			return nil, withHint(fmt.Errorf("--source broker: no broker configured"), "pass --broker-url or set %s", EnvBrokerURL)
		}
		fmt.Fprintf(a.Err, "agentkeys: no broker configured: showing the backend's events only (pass --broker-url or set %s to include the broker's mints)\n", EnvBrokerURL)
		s.skipBroker = true
		return s, nil
	}
	if s.broker, err = a.brokerFor(&m.Session, a.Profile, m.Client); err != nil {
		return nil, err
	}
	return s, nil
}

// isProvisionCode reports whether r is one of the provisioner's codes
// (the results of "provision" rows).
func isProvisionCode(r string) bool {
	return slices.Contains(provision.ErrorCodes(), provision.ErrorCode(r))
}

// runUsage queries the audit log(s) and prints them.
func (a *App) runUsage(ctx context.Context, in usageInput) error {
	m, ref, err := a.withAgent(ctx, in.Agent)
	if err != nil {
		return err
	}
	src, err := a.usageSources(m, ref, in)
	if err != nil {
		return err
	}
	events, next, err := src.list(ctx, in.Cursor, in.Limit, in.All)
	if err != nil {
		return err
	}
	names := agentNames(ctx, m)
	nameEvents(events, names)
	if in.Follow {
		return a.follow(ctx, src, events, names)
	}
	if a.JSON {
		return a.printJSON(map[string]any{"events": events, "next_cursor": next.String()})
	}
	if len(events) == 0 {
		a.printf("No audit events found.\n")
		return nil
	}
	if err := a.printUsageTable(events, true); err != nil {
		return err
	}
	if c := next.String(); c != "" {
		fmt.Fprintf(a.Err, "agentkeys: more events exist: use --all, a larger --limit, or --cursor '%s'\n", c)
	}
	return nil
}

// printUsageTable prints events as a table (with its header if asked).
func (a *App) printUsageTable(events []usageEvent, header bool) error {
	tw := tabwriter.NewWriter(a.Out, 0, 0, 2, ' ', 0)
	if header {
		fmt.Fprintln(tw, "TIME\tOWNER\tAGENT\tSERVICE\tACTION\tRESULT\tDETAIL")
	}
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
	return tw.Flush()
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

// follow prints the events already read (oldest first), then asks both
// sources once every followInterval for events at or after the newest
// second seen, printing the ones not seen yet, until ctx ends (Ctrl-C:
// exit 0).
func (a *App) follow(ctx context.Context, src *usageSources, initial []usageEvent, names map[agentkeys.Wallet]string) error {
	ctx, stop := signal.NotifyContext(ctx, os.Interrupt, syscall.SIGTERM)
	defer stop()
	reverse(initial)
	var last int64
	seen := map[string]bool{}
	emit := func(events []usageEvent, header bool) error {
		var fresh []usageEvent
		for _, e := range events {
			if seen[e.key] {
				continue
			}
			seen[e.key] = true
			fresh = append(fresh, e)
			last = max(last, e.unix)
		}
		if a.JSON {
			for _, e := range fresh {
				b, err := json.Marshal(e)
				if err != nil {
					return err
				}
				if _, err := a.Out.Write(append(textcheck.EscapeJSON(b), '\n')); err != nil {
					return err
				}
			}
			return nil
		}
		if len(fresh) == 0 && !header {
			return nil
		}
		return a.printUsageTable(fresh, header)
	}
	if err := emit(initial, true); err != nil {
		return err
	}
	if last == 0 {
		last = time.Now().Unix()
	}
	tick := time.NewTicker(followInterval)
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-tick.C:
		}
		events, err := src.since(ctx, time.Unix(last, 0))
		if ctx.Err() != nil {
			return nil
		}
		if err != nil {
			return err
		}
		nameEvents(events, names) // agents created since the start show their wallet
		// Keep only the keys of the newest second: older events cannot
		// come back, since every query starts at that second.
		if err := emit(events, false); err != nil {
			return err
		}
		pruneSeen(seen, events, last)
	}
}

// pruneSeen forgets keys of events older than the second last.
func pruneSeen(seen map[string]bool, recent []usageEvent, last int64) {
	keep := map[string]bool{}
	for _, e := range recent {
		if e.unix >= last {
			keep[e.key] = true
		}
	}
	for k := range seen {
		if !keep[k] {
			delete(seen, k)
		}
	}
}
