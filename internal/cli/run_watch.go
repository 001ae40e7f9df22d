package cli

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"os/signal"
	"sort"
	"strings"
	"syscall"
	"time"

	"github.com/agentkeys/agentkeys/internal/agentkeys"
	"github.com/agentkeys/agentkeys/internal/backendclient"
	"github.com/agentkeys/agentkeys/internal/mask"
)

// watchGrace is how long a restarted command has to exit after SIGTERM
// before it is killed.
const watchGrace = 10 * time.Second

// watchTarget is what run --watch follows for one wallet: named services,
// and with all, any credential within scope (and --only, if given).
type watchTarget struct {
	services map[string]bool
	all      bool
	scope    *agentkeys.Scope
}

func (t *watchTarget) matches(svc string) bool {
	return t.services[svc] || (t.all && t.scope.Allows(svc))
}

// watchSet maps wallets to what is followed of them.
type watchSet map[agentkeys.Wallet]*watchTarget

func (w watchSet) target(wallet agentkeys.Wallet) *watchTarget {
	t, ok := w[wallet]
	if !ok {
		t = &watchTarget{services: map[string]bool{}}
		w[wallet] = t
	}
	return t
}

func (w watchSet) merge(o watchSet) {
	for wallet, ot := range o {
		t := w.target(wallet)
		for s := range ot.services {
			t.services[s] = true
		}
		if ot.all {
			t.all, t.scope = true, ot.scope
		}
	}
}

// watchAgent follows the services run read for the agent and, without
// --only, any credential the agent may get within its scope.
func (w watchSet) watchAgent(agent agentkeys.Wallet, scope *agentkeys.Scope, only, read []string) {
	t := w.target(agent)
	for _, s := range read {
		t.services[s] = true
	}
	if only == nil {
		t.all, t.scope = true, scope
	}
}

// fingerprint is the versions of everything followed, as one string. It
// polls GET /credential/versions: no value, no audit row.
func (a *App) fingerprint(ctx context.Context, m *Master, w watchSet) (string, error) {
	wallets := make([]string, 0, len(w))
	for wallet := range w {
		wallets = append(wallets, string(wallet))
	}
	sort.Strings(wallets)
	var b strings.Builder
	for _, wallet := range wallets {
		vs, err := m.Client.CredentialVersions(ctx, m.Session.Token, agentkeys.Wallet(wallet))
		if err != nil {
			return "", err
		}
		t := w[agentkeys.Wallet(wallet)]
		for _, v := range vs {
			if t.matches(v.Service) {
				fmt.Fprintf(&b, "%s/%s=%s\n", wallet, v.Service, v.Version)
			}
		}
	}
	return b.String(), nil
}

// parseSignal accepts HUP, SIGHUP, hup, ….
func parseSignal(name string) (os.Signal, error) {
	n := strings.TrimPrefix(strings.ToUpper(name), "SIG")
	if s, ok := watchSignalNames[n]; ok {
		return s, nil
	}
	known := make([]string, 0, len(watchSignalNames))
	for k := range watchSignalNames {
		known = append(known, k)
	}
	sort.Strings(known)
	return nil, fmt.Errorf("unknown signal %q (use one of %s)", name, strings.Join(known, ", "))
}

// generation is one run of the command under --watch.
type generation struct {
	cmd            *exec.Cmd
	done           chan error
	stdout, stderr io.WriteCloser // masking writers, or nil
}

func (a *App) startGeneration(argv []string, re *runEnv, masking bool) (*generation, error) {
	g := &generation{done: make(chan error, 1)}
	var stdout, stderr io.Writer = a.Out, a.Err
	if masking {
		g.stdout = mask.NewWriter(a.Out, re.secrets, mask.DefaultIdle)
		g.stderr = mask.NewWriter(a.Err, re.secrets, mask.DefaultIdle)
		stdout, stderr = g.stdout, g.stderr
	}
	c, err := a.startChild(argv, re.env, stdout, stderr)
	if err != nil {
		g.closeOutput()
		return nil, err
	}
	g.cmd = c
	go func() { g.done <- c.Wait() }()
	return g, nil
}

func (g *generation) closeOutput() {
	if g.stdout != nil {
		g.stdout.Close()
		g.stderr.Close()
	}
}

// stop ends the command: SIGTERM, then SIGKILL after watchGrace.
func (g *generation) stop() {
	g.cmd.Process.Signal(syscall.SIGTERM)
	t := time.NewTimer(watchGrace)
	defer t.Stop()
	select {
	case <-g.done:
	case <-t.C:
		g.cmd.Process.Kill()
		<-g.done
	}
	g.closeOutput()
}

// watchFatal reports errors after which watching cannot go on: the session
// or the access is gone, not just the network.
func watchFatal(err error) bool {
	return errors.Is(err, backendclient.ErrUnauthorized) || errors.Is(err, backendclient.ErrDenied) ||
		errors.Is(err, backendclient.ErrNotFound) || errors.Is(err, backendclient.ErrExpired)
}

// runWatching runs the command and follows its credentials (run --watch).
// It owns re and releases every environment it builds.
func (a *App) runWatching(ctx context.Context, m *Master, build func(context.Context) (*runEnv, error), re *runEnv, argv []string, masking bool, o refRunOptions) (err error) {
	defer func() { re.release() }()
	var notify os.Signal
	if o.WatchSignal != "" {
		notify, _ = parseSignal(o.WatchSignal) // checked with the flags
	}
	last, err := a.fingerprint(ctx, m, re.watch)
	if err != nil {
		return err
	}
	sigs := make(chan os.Signal, 16)
	signal.Notify(sigs, forwardedSignals...)
	defer signal.Stop(sigs)
	g, err := a.startGeneration(argv, re, masking)
	if err != nil {
		return err
	}
	tick := time.NewTicker(o.WatchInterval)
	defer tick.Stop()
	for {
		select {
		case s := <-sigs:
			g.cmd.Process.Signal(s)
		case werr := <-g.done:
			g.closeOutput()
			return childExit(argv[0], g.cmd, werr)
		case <-tick.C:
			fp, err := a.fingerprint(ctx, m, re.watch)
			if err != nil {
				if watchFatal(err) {
					fmt.Fprintf(a.Err, "agentkeys: watch: %v; stopping the command\n", err)
					g.stop()
					return err
				}
				fmt.Fprintf(a.Err, "agentkeys: watch: %v (will retry)\n", err)
				continue
			}
			a.notef("watch: checked")
			if fp == last {
				continue
			}
			next, err := build(ctx)
			if err != nil {
				fmt.Fprintf(a.Err, "agentkeys: watch: credentials changed but cannot be read; stopping the command\n")
				g.stop()
				return err
			}
			if last, err = a.fingerprint(ctx, m, next.watch); err != nil {
				last = fp
			}
			if notify != nil {
				// The running command keeps its environment (and its
				// masking); only what is followed is updated.
				re.watch = next.watch
				next.release()
				fmt.Fprintf(a.Err, "agentkeys: watch: credentials changed; sent %s to the command\n", strings.ToUpper(o.WatchSignal))
				g.cmd.Process.Signal(notify)
				continue
			}
			fmt.Fprintf(a.Err, "agentkeys: watch: credentials changed; restarting the command\n")
			g.stop()
			re.release()
			re = next
			if g, err = a.startGeneration(argv, re, masking); err != nil {
				return err
			}
		}
	}
}
