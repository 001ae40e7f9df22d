// Package cli is the master's command-line interface, agentkeys.
//
// Exit codes: 0 success; 1 failure (the backend refused, a file could not
// be written, …); 2 usage error (unknown command or flag, wrong number of
// arguments, an invalid flag value). `agentkeys run` exits with its child's
// status (128+N when the child died of signal N; 127 when the command was
// not found, 126 when it could not be executed).
//
// Errors go to stderr as "agentkeys: <message>", often followed by a
// "hint:" line; no error, note or --verbose line ever contains a session
// token, an identity assertion or a credential.
package cli

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"strings"
	"time"

	"github.com/spf13/cobra"
	"golang.org/x/term"

	"github.com/agentkeys/agentkeys/internal/cmdtree"
	"github.com/agentkeys/agentkeys/internal/envflag"
	"github.com/agentkeys/agentkeys/internal/keychain"
	"github.com/agentkeys/agentkeys/internal/provision"
	"github.com/agentkeys/agentkeys/internal/provision/scraper"
	"github.com/agentkeys/agentkeys/internal/textcheck"
)

// Environment variables the CLI reads.
const (
	EnvBackendURL = "AGENTKEYS_BACKEND_URL"
	EnvBrokerURL  = "AGENTKEYS_BROKER_URL"
	EnvAuthToken  = "AGENTKEYS_AUTH_TOKEN"
	EnvProfile    = "AGENTKEYS_PROFILE"

	EnvRequestTimeout = "AGENTKEYS_REQUEST_TIMEOUT"
)

// DefaultRequestTimeout bounds each request to the backend or the broker
// unless --request-timeout says otherwise.
const DefaultRequestTimeout = 30 * time.Second

// DefaultBackendURL is where the backend listens by default.
const DefaultBackendURL = "http://127.0.0.1:8090"

// Config is the CLI's global configuration: the flags every command takes,
// each bound to its environment variable. Validate checks it before any
// command runs.
type Config struct {
	BackendFlag string // --backend / AGENTKEYS_BACKEND_URL; empty when neither is given
	BrokerURL   string // --broker-url / AGENTKEYS_BROKER_URL
	JSON        bool   // --json
	Profile     string // --profile / AGENTKEYS_PROFILE, default "default"
	Verbose     bool   // --verbose

	// RequestTimeout bounds each HTTP request (--request-timeout /
	// AGENTKEYS_REQUEST_TIMEOUT); a server that accepts and never answers
	// fails the command instead of hanging it.
	RequestTimeout time.Duration
}

// Validate checks the global configuration and reports every problem at
// once: the profile name, the request timeout, and the backend and broker
// URLs when given (http or https, a host, no user info, query or fragment).
func (c *Config) Validate() error {
	var errs []error
	if err := keychain.ValidateProfile(c.Profile); err != nil {
		errs = append(errs, fmt.Errorf("--profile: %w", err))
	}
	if c.RequestTimeout <= 0 {
		errs = append(errs, fmt.Errorf("--request-timeout / %s must be positive, e.g. 30s", EnvRequestTimeout))
	}
	if c.BackendFlag != "" {
		if _, err := keychain.NormalizeURL(c.BackendFlag, "backend"); err != nil {
			errs = append(errs, fmt.Errorf("--backend / %s: %w", EnvBackendURL, err))
		}
	}
	if c.BrokerURL != "" {
		if _, err := keychain.NormalizeURL(c.BrokerURL, "broker"); err != nil {
			errs = append(errs, fmt.Errorf("--broker-url / %s: %w", EnvBrokerURL, err))
		}
	}
	return errors.Join(errs...)
}

// App is one invocation of the CLI: its streams, global configuration and
// lazily opened session store. Commands added from other files of this
// package (such as `agentkeys dev`) receive it.
type App struct {
	In  *os.File
	Out io.Writer
	Err io.Writer

	Config // global flags

	flagEnvErr error // bad values of the global flags' variables

	// Seams for tests of the terminal paths.
	isTerminal   func(fd int) bool
	readPassword func(fd int) ([]byte, error)

	store   *keychain.Store
	stdin   *bufio.Reader // see lines
	hc      *http.Client
	entered bool // a command's RunE started: later errors are failures, not usage errors
}

// Main runs the CLI with the process's arguments and streams and returns
// the exit code; cmd/agentkeys passes it to os.Exit.
func Main() int {
	return Run(context.Background(), os.Args[1:], os.Stdin, os.Stdout, os.Stderr)
}

// Command returns the CLI's command tree on the process's streams, for
// documentation and tests (Main and Run build and run their own).
func Command() *cobra.Command {
	a := &App{In: os.Stdin, Out: os.Stdout, Err: os.Stderr, isTerminal: term.IsTerminal, readPassword: term.ReadPassword}
	return a.newRoot()
}

// Run runs the CLI with args (without the program name).
func Run(ctx context.Context, args []string, in *os.File, out, errw io.Writer) int {
	a := &App{In: in, Out: out, Err: errw, isTerminal: term.IsTerminal, readPassword: term.ReadPassword}
	return a.run(ctx, args)
}

func (a *App) run(ctx context.Context, args []string) int {
	root := a.newRoot()
	root.SetArgs(args)
	root.SetIn(a.In)
	root.SetOut(a.Out)
	root.SetErr(a.Err)
	cmd, err := root.ExecuteContextC(ctx)
	return a.report(cmd, err)
}

// ExitError ends the CLI with Code. With Err nil nothing is printed (the
// child of `run` already spoke for itself).
type ExitError struct {
	Code int
	Err  error
}

func (e *ExitError) Error() string {
	if e.Err == nil {
		return fmt.Sprintf("exit status %d", e.Code)
	}
	return e.Err.Error()
}
func (e *ExitError) Unwrap() error { return e.Err }

// usagef returns a mistake in the command line (exit 2), as the other
// binaries do.
func usagef(format string, args ...any) error { return envflag.Usagef(format, args...) }

// hinted carries a one-line hint printed after the error.
type hinted struct {
	err  error
	hint string
}

func (h *hinted) Error() string { return h.err.Error() }
func (h *hinted) Unwrap() error { return h.err }

func withHint(err error, format string, args ...any) error {
	if err == nil {
		return nil
	}
	return &hinted{err: err, hint: fmt.Sprintf(format, args...)}
}

// report prints err and returns the exit code.
func (a *App) report(cmd *cobra.Command, err error) int {
	if err == nil {
		return 0
	}
	var ee *ExitError
	if errors.As(err, &ee) && ee.Err == nil {
		return ee.Code
	}
	var ue *envflag.UsageError
	usage := errors.As(err, &ue) || !a.entered
	if a.JSON {
		return a.reportJSON(err, usage, ee)
	}
	if usage {
		fmt.Fprintf(a.Err, "agentkeys: %s\n", err)
		path := "agentkeys"
		if cmd != nil {
			path = cmd.CommandPath()
		}
		fmt.Fprintf(a.Err, "Run '%s --help' for usage.\n", path)
		return 2
	}
	fmt.Fprintf(a.Err, "agentkeys: %s\n", err)
	if h := a.hintFor(err); h != "" {
		fmt.Fprintf(a.Err, "hint: %s\n", h)
	}
	if ee != nil {
		return ee.Code
	}
	return 1
}

// reportJSON prints err on stderr as one JSON object {"error", "message"}
// (and "hint" when there is one) for --json: error is "usage" or "failure".
func (a *App) reportJSON(err error, usage bool, ee *ExitError) int {
	kind, code := "failure", 1
	if usage {
		kind, code = "usage", 2
	} else if ee != nil {
		code = ee.Code
	}
	out := map[string]any{"error": kind, "message": err.Error()}
	if h := a.hintFor(err); h != "" && !usage {
		out["hint"] = h
	}
	b, _ := json.Marshal(out)
	a.Err.Write(append(textcheck.EscapeJSON(b), '\n'))
	return code
}

func (a *App) newRoot() *cobra.Command {
	root := &cobra.Command{
		Use:   "agentkeys",
		Short: "Delegate scoped, revocable access to credentials to AI agents",
		Long: `agentkeys is the master's CLI of AgentKeys: create agents with a scope, store
their credentials in the backend, run commands with credentials injected, and
audit every use.

`,
		SilenceErrors: true,
		SilenceUsage:  true,
		RunE: func(cmd *cobra.Command, args []string) error {
			cmd.SetOut(a.Err)
			cmd.Help()
			return usagef("a command is required")
		},
		PersistentPreRunE: func(cmd *cobra.Command, args []string) error {
			return envflag.AsUsage(errors.Join(a.flagEnvErr, a.Config.Validate()))
		},
	}
	root.CompletionOptions.HiddenDefaultCmd = false
	pf := root.PersistentFlags()
	b := envflag.New(pf, nil)
	b.String(&a.BackendFlag, "backend", EnvBackendURL, "", "backend URL (default: the profile's session, else "+DefaultBackendURL+")")
	b.String(&a.BrokerURL, "broker-url", EnvBrokerURL, "", "broker URL; the profile remembers the first one and refuses another (init --broker-url rebinds)")
	b.Bool(&a.JSON, "json", "", false, "print one JSON document on stdout")
	b.String(&a.Profile, "profile", EnvProfile, "default", "profile: one master session each")
	b.Duration(&a.RequestTimeout, "request-timeout", EnvRequestTimeout, DefaultRequestTimeout, "how long to wait for each answer of the backend or the broker")
	pf.BoolVarP(&a.Verbose, "verbose", "v", false, "print requests (method and path) and notes to stderr")
	a.flagEnvErr = b.Err()
	root.SetFlagErrorFunc(func(c *cobra.Command, err error) error { return envflag.FlagError(c.Flags(), err) })

	root.AddCommand(
		a.newInitCmd(),
		a.newWhoamiCmd(),
		a.newAgentCmd(),
		a.newStoreCmd(),
		a.newReadCmd(),
		a.newListCmd(),
		a.newRunCmd(),
		a.newInjectCmd(),
		a.newExportCmd(),
		a.newRevokeCmd(),
		a.newTeardownCmd(),
		a.newScopeCmd(),
		a.newUsageCmd(),
		a.newLinkCmd(),
		a.newInboxCmd(),
		a.newTokenCmd(),
		a.newApproveCmd(),
		a.newPendingCmd(),
		a.newRecoverCmd(),
		a.newProvisionCmd(),
		a.newDevCmd(),
		// The provisioner runs this binary's hidden scraper subcommand as
		// its browser process.
		scraper.NewCommand(),
	)
	a.markEntered(root)
	cmdtree.Environment(root,
		cmdtree.EnvVar{Name: EnvAuthToken, Meaning: "init: the identity assertion (an ID token, or any string with a backend in --login mock); never an argument"},
		cmdtree.EnvVar{Name: keychain.EnvSessionStore, Meaning: "where sessions are kept: keychain (the OS keychain), file (0600 files) or unset (keychain when available, else file)"})
	cmdtree.Environment(root, provision.EnvironmentHelp("provision: ")...)
	codes := []cmdtree.ExitCode{
		{Code: "0", Meaning: "success"},
		{Code: "1", Meaning: "failure: the backend or broker refused or did not answer, a file could not be written, …"},
		{Code: "2", Meaning: "usage error: unknown command or flag, wrong number of arguments, bad flag or variable value"},
		{Code: "126", Meaning: "run: the command could not be executed"},
		{Code: "127", Meaning: "run: the command was not found"},
	}
	return cmdtree.Finish(root, append(codes, cmdtree.RunExitCodes...)...)
}

// markEntered wraps every RunE so that errors before it (flag parsing,
// argument validation, PersistentPreRunE) count as usage errors.
func (a *App) markEntered(c *cobra.Command) {
	if c.RunE != nil && c.HasParent() {
		inner := c.RunE
		c.RunE = func(cmd *cobra.Command, args []string) error {
			a.entered = true
			return inner(cmd, args)
		}
	}
	for _, sub := range c.Commands() {
		a.markEntered(sub)
	}
}

// group makes cmd a command that only holds subcommands: without one, or
// with an unknown one (the nearest names suggested), it is a usage error.
func group(cmd *cobra.Command) *cobra.Command { return cmdtree.Group(cmd) }

// Arg validators that produce usage errors.
func exactArgs(n int, names string) cobra.PositionalArgs {
	return func(cmd *cobra.Command, args []string) error {
		if len(args) != n {
			return usagef("%s takes %d argument(s): %s (got %d)", cmd.CommandPath(), n, names, len(args))
		}
		return nil
	}
}

func maxArgs(n int, names string) cobra.PositionalArgs {
	return func(cmd *cobra.Command, args []string) error {
		if len(args) > n {
			return usagef("%s takes at most %d argument(s): %s (got %d)", cmd.CommandPath(), n, names, len(args))
		}
		return nil
	}
}

// printJSON writes v as one JSON document.
func (a *App) printJSON(v any) error {
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetIndent("", "  ")
	enc.SetEscapeHTML(false)
	if err := enc.Encode(v); err != nil {
		return err
	}
	// Same JSON value, but bidi and C1 controls from the server (audit
	// details, names) are written as \u escapes, never raw to a terminal.
	_, err := a.Out.Write(textcheck.EscapeJSON(buf.Bytes()))
	return err
}

// printf writes human output to stdout.
func (a *App) printf(format string, args ...any) {
	fmt.Fprintf(a.Out, format, args...)
}

// notef writes a note to stderr when --verbose is on.
func (a *App) notef(format string, args ...any) {
	if a.Verbose {
		fmt.Fprintf(a.Err, "agentkeys: "+format+"\n", args...)
	}
}

func (a *App) stdinIsTerminal() bool {
	return a.In != nil && a.isTerminal != nil && a.isTerminal(int(a.In.Fd()))
}

// Store returns the session store (opened on first use).
func (a *App) Store() (*keychain.Store, error) {
	if a.store != nil {
		return a.store, nil
	}
	var notes io.Writer
	if a.Verbose {
		notes = a.Err
	}
	st, err := keychain.New(notes)
	if err != nil {
		return nil, err
	}
	a.store = st
	return st, nil
}

// trimURL drops trailing slashes.
func trimURL(u string) string { return strings.TrimRight(u, "/") }
