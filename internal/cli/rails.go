package cli

import (
	"fmt"
	"time"

	"github.com/agentkeys/agentkeys/internal/agentkeys"
	"github.com/agentkeys/agentkeys/internal/services"
)

// revokedError refuses to run a command for an agent revoked at since.
func revokedError(ref agentRef, since time.Time) error {
	return withHint(fmt.Errorf("agent %s was revoked at %s; refusing to run a command with its credentials", ref, since.UTC().Format(time.RFC3339)),
		"its credentials are still stored: give the work to a new agent (`agentkeys agent create`), or delete them with `agentkeys teardown %s`", ref.Wallet)
}

// knownServices are the services AgentKeys itself knows: those of the
// service table (internal/services), and aws (the broker's).
func knownServices() []string { return append(services.Names(), "aws") }

// didYouMean returns the candidate closest to name (at most two edits, and
// fewer than half its length), or "".
func didYouMean(name string, candidates []string) string {
	best, bestD := "", 3
	for _, c := range candidates {
		if c == name {
			continue
		}
		if d := editDistance(name, c); d < bestD && 2*d < len(name) {
			best, bestD = c, d
		}
	}
	return best
}

// editDistance is the edit distance of a and b where a swap of two
// neighbouring letters counts as one edit (optimal string alignment).
func editDistance(a, b string) int {
	d := make([][]int, len(a)+1)
	for i := range d {
		d[i] = make([]int, len(b)+1)
		d[i][0] = i
	}
	for j := range d[0] {
		d[0][j] = j
	}
	for i := 1; i <= len(a); i++ {
		for j := 1; j <= len(b); j++ {
			cost := 1
			if a[i-1] == b[j-1] {
				cost = 0
			}
			d[i][j] = min(d[i-1][j]+1, d[i][j-1]+1, d[i-1][j-1]+cost)
			if i > 1 && j > 1 && a[i-1] == b[j-2] && a[i-2] == b[j-1] {
				d[i][j] = min(d[i][j], d[i-2][j-2]+1)
			}
		}
	}
	return d[len(a)][len(b)]
}

// warnUnknownServices prints a warning for each service that is outside
// scope (nil: unrestricted) or unknown — neither in the service table nor
// in also (the agent's credentials, its scope) — with a suggestion when a
// near name exists. It never fails the command.
func (a *App) warnUnknownServices(services []string, scope *agentkeys.Scope, also []string) {
	known := map[string]bool{}
	var candidates []string
	add := func(xs []string) {
		for _, x := range xs {
			if !known[x] {
				known[x] = true
				candidates = append(candidates, x)
			}
		}
	}
	add(also)
	add(knownServices())
	for _, s := range services {
		inScope := scope.Allows(s)
		if inScope && known[s] {
			continue
		}
		var why string
		switch {
		case !inScope:
			why = fmt.Sprintf("service %q is outside the agent's scope (%s)", s, describeScope(scope))
		default:
			why = fmt.Sprintf("service %q is not one AgentKeys knows (%s) nor one the agent already has", s, displayList(knownServices()))
		}
		if sug := didYouMean(s, candidates); sug != "" {
			why += fmt.Sprintf("; did you mean %q?", sug)
		}
		fmt.Fprintf(a.Err, "agentkeys: warning: %s\n", why)
	}
}
