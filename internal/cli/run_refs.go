package cli

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"slices"
	"sort"
	"sync"
	"time"

	"github.com/spf13/cobra"

	"github.com/agentkeys/agentkeys/internal/agentkeys"
	"github.com/agentkeys/agentkeys/internal/secretref"
)

// refRunOptions are run's flags for env files, --only and --watch.
type refRunOptions struct {
	EnvFiles      []string
	Only          []string
	Watch         bool
	WatchSignal   string
	WatchInterval time.Duration
}

func (o *refRunOptions) addFlags(cmd *cobra.Command) {
	f := cmd.Flags()
	f.StringArrayVar(&o.EnvFiles, "env-file", nil, "set the variables of this dotenv file; agentkeys://<agent>/<service> values become credentials (repeatable)")
	f.StringSliceVar(&o.Only, "only", nil, "inject only these services of the agent (comma-separated; aws included only if named)")
	f.BoolVar(&o.Watch, "watch", false, "restart the command when a credential it was given changes")
	f.StringVar(&o.WatchSignal, "watch-signal", "", "with --watch, send this signal (HUP, USR1, …) instead of restarting")
	f.DurationVar(&o.WatchInterval, "watch-interval", 10*time.Second, "with --watch, how often to check for changes (at least 100ms)")
}

// check validates the flags that need no backend.
func (o *refRunOptions) check() error {
	for _, s := range o.Only {
		if err := agentkeys.ValidateService(s); err != nil {
			return usagef("--only %q: %v", s, err)
		}
	}
	if !o.Watch && (o.WatchSignal != "") {
		return usagef("--watch-signal needs --watch")
	}
	if o.Watch && o.WatchInterval < 100*time.Millisecond {
		return usagef("--watch-interval must be at least 100ms")
	}
	if o.WatchSignal != "" {
		if _, err := parseSignal(o.WatchSignal); err != nil {
			return usagef("--watch-signal: %v", err)
		}
	}
	return nil
}

// fileVar is one variable of an --env-file: a literal or a reference.
type fileVar struct {
	name, value string
	ref         *secretref.Ref
	where       string // FILE:LINE
}

// loadEnvFiles reads and parses the --env-file files, in order.
func loadEnvFiles(paths []string) ([]fileVar, error) {
	var out []fileVar
	for _, p := range paths {
		data, err := readBounded(p)
		if err != nil {
			return nil, fmt.Errorf("--env-file %s: %w", p, err)
		}
		es, err := secretref.ParseDotenv(data)
		clear(data)
		if err != nil {
			return nil, fmt.Errorf("--env-file %s: %w", p, err)
		}
		for _, e := range es {
			out = append(out, fileVar{name: e.Key, value: e.Value, ref: e.Ref, where: fmt.Sprintf("%s:%d", p, e.Line)})
		}
	}
	return out, nil
}

// readBounded reads a file (or stdin for "-") of at most MaxFileSize bytes.
func readBounded(path string) ([]byte, error) {
	var r io.Reader = os.Stdin
	if path != "-" {
		f, err := os.Open(path)
		if err != nil {
			return nil, errors.Unwrap(err)
		}
		defer f.Close()
		r = f
	}
	data, err := io.ReadAll(io.LimitReader(r, secretref.MaxFileSize+1))
	if err != nil {
		return nil, err
	}
	if len(data) > secretref.MaxFileSize {
		clear(data)
		return nil, fmt.Errorf("larger than %d bytes", secretref.MaxFileSize)
	}
	return data, nil
}

// refAgent resolves the agent part of a reference with the CLI's one agent
// resolver (names, aliases, wallets), naming the reference on failure.
func (a *App) refAgent(ctx context.Context, m *Master, r secretref.Ref) (agentRef, error) {
	ref, err := a.resolveAgent(ctx, m, r.Agent)
	if err != nil {
		return agentRef{}, fmt.Errorf("reference %s: %w", r, err)
	}
	return ref, nil
}

// readRefs resolves references before anything runs: each agent part to a
// wallet, each service checked against that agent's scope (not revoked),
// then every value read (each read audited by the backend). The first
// failure names its reference; values read so far are cleared.
func (a *App) readRefs(ctx context.Context, m *Master, refs []secretref.Ref) (map[secretref.Ref][]byte, watchSet, error) {
	byWallet := map[agentkeys.Wallet][]secretref.Ref{}
	var wallets []agentRef
	resolved := map[string]agentRef{} // one resolution per agent as written
	for _, r := range refs {
		ag, ok := resolved[r.Agent]
		if !ok {
			var err error
			if ag, err = a.refAgent(ctx, m, r); err != nil {
				return nil, nil, err
			}
			resolved[r.Agent] = ag
		}
		if _, seen := byWallet[ag.Wallet]; !seen {
			wallets = append(wallets, ag)
		}
		byWallet[ag.Wallet] = append(byWallet[ag.Wallet], r)
	}
	values := map[secretref.Ref][]byte{}
	watch := watchSet{}
	var mu sync.Mutex
	errs := make([]error, len(wallets))
	var wg sync.WaitGroup
	for i, ag := range wallets {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if err := a.refuseRevoked(ctx, m, ag); err != nil {
				errs[i] = fmt.Errorf("reference %s: %w", byWallet[ag.Wallet][0], err)
				return
			}
			scope, err := m.Client.GetScope(ctx, m.Session.Token, ag.Wallet)
			if err != nil {
				errs[i] = fmt.Errorf("reference %s: %w", byWallet[ag.Wallet][0], err)
				return
			}
			var services []string
			for _, r := range byWallet[ag.Wallet] {
				if !scope.Allows(r.Service) {
					errs[i] = fmt.Errorf("reference %s: service %s is outside the scope of agent %s (%s)", r, r.Service, ag, describeScope(scope))
					return
				}
				if !slices.Contains(services, r.Service) {
					services = append(services, r.Service)
				}
			}
			vals, err := readServices(ctx, m, ag.Wallet, services, func(svc string) string {
				for _, r := range byWallet[ag.Wallet] {
					if r.Service == svc {
						return "reference " + r.String()
					}
				}
				return svc
			})
			if err != nil {
				errs[i] = err
				return
			}
			mu.Lock()
			defer mu.Unlock()
			t := watch.target(ag.Wallet)
			for j, svc := range services {
				t.services[svc] = true
				for _, r := range byWallet[ag.Wallet] {
					if r.Service == svc {
						values[r] = vals[j]
					}
				}
			}
		}()
	}
	wg.Wait()
	if err := errors.Join(errs...); err != nil {
		for _, v := range values {
			clear(v)
		}
		return nil, nil, err
	}
	return values, watch, nil
}

// readServices reads agent's credentials for services, 8 at a time, all or
// nothing: on failure the values read are cleared and the error names the
// service as label(service) does.
func readServices(ctx context.Context, m *Master, agent agentkeys.Wallet, services []string, label func(string) string) ([][]byte, error) {
	values := make([][]byte, len(services))
	errs := make([]error, len(services))
	sem := make(chan struct{}, 8)
	var wg sync.WaitGroup
	for i, svc := range services {
		wg.Add(1)
		go func() {
			defer wg.Done()
			sem <- struct{}{}
			defer func() { <-sem }()
			v, err := m.Client.ReadCredential(ctx, m.Session.Token, agent, svc)
			if err != nil {
				errs[i] = fmt.Errorf("%s: read credential: %w", label(svc), err)
				return
			}
			values[i] = v
		}()
	}
	wg.Wait()
	if err := errors.Join(errs...); err != nil {
		for _, v := range values {
			clear(v)
		}
		return nil, err
	}
	return values, nil
}

// serviceLabel names a service in errors about the agent of run.
func serviceLabel(svc string) string { return fmt.Sprintf("service %q", svc) }

// envPair is a variable run sets.
type envPair struct{ name, value string }

// fileEnv turns the env files into variables: literals as written,
// references read through readRefs. It returns the reference values too
// (for masking; the caller clears them) and what to watch.
func (a *App) fileEnv(ctx context.Context, m *Master, vars []fileVar) ([]envPair, [][]byte, watchSet, error) {
	var refs []secretref.Ref
	for _, v := range vars {
		if v.ref != nil && !slices.Contains(refs, *v.ref) {
			refs = append(refs, *v.ref)
		}
	}
	watch := watchSet{}
	values := map[secretref.Ref][]byte{}
	if len(refs) > 0 {
		var err error
		if values, watch, err = a.readRefs(ctx, m, refs); err != nil {
			return nil, nil, nil, err
		}
	}
	out := make([]envPair, 0, len(vars))
	for _, v := range vars {
		if v.ref != nil {
			out = append(out, envPair{v.name, string(values[*v.ref])})
		} else {
			out = append(out, envPair{v.name, v.value})
		}
	}
	secrets := make([][]byte, 0, len(values))
	for _, r := range refs {
		secrets = append(secrets, values[r])
	}
	return out, secrets, watch, nil
}

// onlyServices applies --only to the services run would inject for the
// agent: each named service must be in scope and, unless it is aws
// (minted, not stored), held.
func onlyServices(only []string, scope *agentkeys.Scope, held []string) ([]string, error) {
	if only == nil {
		return scope.Filter(held), nil
	}
	var out []string
	for _, s := range only {
		switch {
		case !scope.Allows(s):
			return nil, fmt.Errorf("--only %s: service %s is outside the agent's scope (%s)", s, s, describeScope(scope))
		case s == awsService:
			continue
		case !slices.Contains(held, s):
			return nil, fmt.Errorf("--only %s: the agent has no stored credential for %s", s, s)
		}
		if !slices.Contains(out, s) {
			out = append(out, s)
		}
	}
	sort.Strings(out)
	return out, nil
}

// agentServices is what the agent holds and its scope (sorted): one
// ListCredentials and one GetScope, in parallel.
func agentServices(ctx context.Context, m *Master, agent agentkeys.Wallet) ([]string, *agentkeys.Scope, error) {
	var (
		wg                sync.WaitGroup
		held              []string
		scope             *agentkeys.Scope
		listErr, scopeErr error
	)
	wg.Add(2)
	go func() {
		defer wg.Done()
		held, listErr = m.Client.ListCredentials(ctx, m.Session.Token, agent)
	}()
	go func() {
		defer wg.Done()
		scope, scopeErr = m.Client.GetScope(ctx, m.Session.Token, agent)
	}()
	wg.Wait()
	if err := errors.Join(listErr, scopeErr); err != nil {
		return nil, nil, err
	}
	if scope != nil {
		sort.Strings(scope.Services)
	}
	return held, scope, nil
}

// stdoutIsTerminal reports whether the CLI's stdout is a terminal.
func (a *App) stdoutIsTerminal() bool {
	f, ok := a.Out.(*os.File)
	return ok && a.isTerminal != nil && a.isTerminal(int(f.Fd()))
}

// refuseRevoked refuses an agent whose newest session event is a revoke
// (references and export read service by service; run's batch read gets
// the same answer from the backend).
func (a *App) refuseRevoked(ctx context.Context, m *Master, ref agentRef) error {
	since, revoked, err := agentRevoked(ctx, m, ref)
	if err != nil || !revoked {
		return err
	}
	return revokedError(ref, since)
}
