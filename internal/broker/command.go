package broker

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"github.com/agentkeys/agentkeys/internal/cmdtree"
	"github.com/agentkeys/agentkeys/internal/envflag"
	"github.com/agentkeys/agentkeys/internal/logging"
	"github.com/agentkeys/agentkeys/internal/oidc"
)

// Exit codes beyond 0 and 1.
const (
	ExitUsage  = 2 // bad flags or arguments
	ExitBroken = 3 // audit verify: the ledger was tampered with
)

// ExitError carries a specific exit code (audit verify uses ExitBroken for
// a broken chain, 1 for "could not check", ExitUsage for usage errors).
// Quiet means the command already reported it.
type ExitError struct {
	Code  int
	Err   error
	Quiet bool
}

func (e *ExitError) Error() string { return e.Err.Error() }
func (e *ExitError) Unwrap() error { return e.Err }

// ExitCode is Code.
func (e *ExitError) ExitCode() int { return e.Code }

// Command returns the agentkeys-broker root command: it serves by default.
func Command() *cobra.Command {
	return command(os.LookupEnv)
}

func command(lookup LookupFunc) *cobra.Command {
	var (
		flags    serveFlags
		logLevel string
	)
	root := &cobra.Command{
		Use:   "agentkeys-broker",
		Short: "AgentKeys broker: OIDC issuer and AWS credentials for agents, with a fail-closed audit ledger",
		Long: `agentkeys-broker validates an agent's session bearer against the AgentKeys backend and
mints either a short-lived OIDC ID token (POST /v1/mint-oidc-jwt) or AWS temporary
credentials (POST /v1/mint-aws-creds), each recorded in a hash-chained audit ledger
before it is returned.

Configuration comes from the environment (the original broker's names):
  BROKER_BACKEND_URL               backend base URL (default http://127.0.0.1:8090)
  BROKER_OIDC_ISSUER               public issuer URL, absolute, no trailing slash
                                   (default: the loopback listen URL)
  BROKER_OIDC_KEYPAIR_PATH         OIDC key set file, created 0600 on first start
                                   (default ~/.agentkeys/broker/oidc-keypair.json)
  BROKER_OIDC_JWT_TTL_SECONDS      token lifetime, 60-3600 (default 300); never past the
                                   end of the caller's session
  BROKER_DATA_ROLE_ARN             role to assume (fallback BROKER_AGENT_ROLE_ARN, then
                                   arn:aws:iam::$ACCOUNT_ID:role/agentkeys-data-role);
                                   none set disables /v1/mint-aws-creds
  BROKER_AWS_REGION                (fallback REGION, default us-east-1)
  BROKER_SESSION_DURATION_SECONDS  AWS session length, 900-43200 (default 3600); capped to
                                   what is left of the caller's session (refused below 900)
  DAEMON_ACCESS_KEY_ID, DAEMON_SECRET_ACCESS_KEY
                                   static AWS keys, both or neither (neither: SDK default chain)
  BROKER_STS_ENDPOINT              STS-compatible endpoint override
  BROKER_SKIP_STARTUP_CHECK        1: start without the STS check (as --skip-startup-check)
  BROKER_AUDIT_DB                  audit ledger: SQLite path or postgres:// URL
                                   (default ~/.agentkeys/broker/audit.sqlite)
  BROKER_AUDIT_CHAIN               this replica's chain in the ledger (default: the host
                                   name); replicas sharing a ledger need distinct names
  BROKER_AUDIT_CHECKPOINT_ROWS (1000), BROKER_AUDIT_CHECKPOINT_SECONDS (60)
                                   how often the chain head is signed with the OIDC key
  BROKER_AUDIT_CHECKPOINT_FILE     also append every signed checkpoint to this file (ship
                                   it off the host; "audit verify --checkpoint" checks it)
  BROKER_BACKEND_TIMEOUT_SECONDS (5), BROKER_STS_TIMEOUT_SECONDS (10),
  BROKER_SHUTDOWN_GRACE_SECONDS (30), BROKER_OIDC_KEY_RELOAD_SECONDS (10),
  BROKER_VALIDATE_CACHE_SECONDS (2, max 5; 0 validates every mint; a cached
  validation is reused only at the backend's current revocation epoch, read
  for every mint, so a revoke is never served from it),
  BROKER_RATE_PER_BEARER (5/s),
  BROKER_RATE_PER_IP (50/s), BROKER_SCOPE_SERVICE (aws; "none" lets any scope mint),
  BROKER_OIDC_ALLOW_INSECURE_ISSUER (0)
  BROKER_TRUSTED_PROXIES           reverse proxies (CIDRs) whose forwarding headers name
                                   the client (default none; same as --trusted-proxies)`,
		Args:          cobra.NoArgs,
		SilenceUsage:  true,
		SilenceErrors: true,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return serve(cmd, lookup, flags, logLevel)
		},
	}
	b := envflag.New(root.Flags(), envflag.Lookup(lookup))
	b.String(&flags.bind, "bind", "BROKER_BIND", DefaultBind, "address to bind; loopback by default")
	b.Int(&flags.port, "port", "BROKER_PORT", DefaultPort, "port to listen on")
	b.Bool(&flags.skipCheck, "skip-startup-check", "BROKER_SKIP_STARTUP_CHECK", false, "skip the STS GetCallerIdentity check at startup (a host that cannot reach AWS yet; /readyz still reports STS)")
	b.String(&flags.tlsCert, "tls-cert", "BROKER_TLS_CERT", "", "serve HTTPS with this certificate")
	b.String(&flags.trustedProxies, "trusted-proxies", "BROKER_TRUSTED_PROXIES", "", "CIDRs of reverse proxies whose X-Forwarded-For/Forwarded headers name the client (the shipped nginx: 127.0.0.1/32); empty trusts none")
	b.String(&flags.tlsKey, "tls-key", "BROKER_TLS_KEY", "", "private key for --tls-cert")
	pb := envflag.New(root.PersistentFlags(), envflag.Lookup(lookup))
	pb.String(&logLevel, "log-level", "BROKER_LOG_LEVEL", "info", "debug, info, warn or error")
	flags.envErr = func() error { return errors.Join(b.Err(), pb.Err()) }
	root.SetFlagErrorFunc(func(c *cobra.Command, err error) error { return envflag.FlagError(c.Flags(), err) })

	serveCmd := &cobra.Command{
		Use:   "serve",
		Short: "Serve the broker (the default)",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return serve(cmd, lookup, flags, logLevel)
		},
	}
	serveCmd.Flags().AddFlagSet(root.Flags())
	root.SetFlagErrorFunc(func(c *cobra.Command, err error) error {
		return &ExitError{Code: ExitUsage, Err: envflag.FlagError(c.Flags(), err)}
	})
	root.AddCommand(serveCmd, keysCommand(lookup), auditCommand(lookup))
	return cmdtree.Finish(root,
		cmdtree.ExitCode{Code: "0", Meaning: "success; the server stopped cleanly (SIGTERM or SIGINT, after draining)"},
		cmdtree.ExitCode{Code: "1", Meaning: "failure (startup check, ledger, key file, …); audit verify: the ledger could not be checked"},
		cmdtree.ExitCode{Code: "2", Meaning: "usage error: unknown command or flag, bad flag or variable value, a configuration it refuses"},
		cmdtree.ExitCode{Code: "3", Meaning: "audit verify: the hash chain is broken (a row was edited, deleted or reordered)"})
}

type serveFlags struct {
	bind, tlsCert, tlsKey string
	trustedProxies        string
	port                  int
	skipCheck             bool
	envErr                func() error // bad BROKER_* flag variables
}

func serve(cmd *cobra.Command, lookup LookupFunc, flags serveFlags, logLevel string) error {
	log, err := logging.New(cmd.ErrOrStderr(), logLevel)
	if err != nil {
		return envflag.AsUsage(err)
	}
	cfg, err := FromEnv(lookup)
	if err = errors.Join(flags.envErr(), err); err != nil {
		return envflag.Usagef("invalid configuration:\n%w", err)
	}
	cfg.LogLevel = logLevel
	cfg.Bind, cfg.Port = flags.bind, flags.port
	cfg.TLSCertFile, cfg.TLSKeyFile = flags.tlsCert, flags.tlsKey
	cfg.SkipStartupCheck = flags.skipCheck // the flag, else BROKER_SKIP_STARTUP_CHECK
	cfg.TrustedProxies = flags.trustedProxies
	if err := cfg.Validate(); err != nil {
		return envflag.Usagef("invalid configuration:\n%w", err)
	}
	ctx, stop := signal.NotifyContext(cmd.Context(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	return Run(ctx, cfg, log)
}

func envOr(lookup LookupFunc, name, def string) string {
	if v, ok := lookup(name); ok && v != "" {
		return v
	}
	return def
}

// keyFilePath is the key file named by --key-file, else the environment.
func keyFilePath(lookup LookupFunc, flag string) string {
	if flag != "" {
		return flag
	}
	return envOr(lookup, "BROKER_OIDC_KEYPAIR_PATH", Defaults().KeyFile)
}

func keysCommand(lookup LookupFunc) *cobra.Command {
	var keyFile string
	keys := &cobra.Command{
		Use:   "keys",
		Short: "Manage the OIDC signing key set",
	}
	keys.PersistentFlags().StringVar(&keyFile, "key-file", "", "key set file (default BROKER_OIDC_KEYPAIR_PATH or ~/.agentkeys/broker/oidc-keypair.json)")

	var asJSON bool
	list := &cobra.Command{
		Use:   "list",
		Short: "List the keys and their states (never prints private keys)",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			set, err := oidc.Load(keyFilePath(lookup, keyFile))
			if err != nil {
				return err
			}
			return printKeys(cmd.OutOrStdout(), set, asJSON)
		},
	}
	list.Flags().BoolVar(&asJSON, "json", false, "print one JSON document")

	var force, rotJSON bool
	var publishDelay time.Duration
	rotate := &cobra.Command{
		Use:   "rotate",
		Short: "Promote the next key to signing, retire the current one and publish a new next key",
		Long: `rotate promotes the published "next" key to "current" (it must have been in the JWKS
for at least --publish-delay, so verifiers' caches know it), retires the current key
(its public half stays in the JWKS for the longest token lifetime plus a cache margin),
drops retired keys past that window, and publishes a fresh next key.

A running broker picks the change up within BROKER_OIDC_KEY_RELOAD_SECONDS. Replicas
must share the key file. Use --force only when the current key is compromised.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			path := keyFilePath(lookup, keyFile)
			p := oidc.DefaultPolicy
			p.PublishDelay = publishDelay
			if _, err := os.Stat(path); errors.Is(err, os.ErrNotExist) {
				return fmt.Errorf("no key file at %s (the broker creates it on first start)", path)
			}
			set, err := oidc.Rotate(path, time.Now(), p, force)
			if err != nil {
				return err
			}
			if !rotJSON {
				fmt.Fprintf(cmd.OutOrStdout(), "rotated %s\n", path)
			}
			return printKeys(cmd.OutOrStdout(), set, rotJSON)
		},
	}
	rotate.Flags().BoolVar(&force, "force", false, "rotate even if the next key was published less than --publish-delay ago")
	rotate.Flags().DurationVar(&publishDelay, "publish-delay", oidc.DefaultPublishDelay, "minimum time the next key must have been published before it signs")
	rotate.Flags().BoolVar(&rotJSON, "json", false, "print the resulting key set as one JSON document")
	keys.AddCommand(list, rotate)
	return keys
}

type keyView struct {
	KID         string     `json:"kid"`
	State       string     `json:"state"`
	CreatedAt   *time.Time `json:"created_at,omitempty"`
	ActivatedAt *time.Time `json:"activated_at,omitempty"`
	RetiredAt   *time.Time `json:"retired_at,omitempty"`
	UnpublishAt *time.Time `json:"unpublish_at,omitempty"`
}

func tp(t time.Time) *time.Time {
	if t.IsZero() {
		return nil
	}
	return &t
}

func printKeys(w io.Writer, set *oidc.KeySet, asJSON bool) error {
	var views []keyView
	for _, k := range set.Keys() {
		v := keyView{KID: k.KID, State: string(k.State), CreatedAt: tp(k.CreatedAt), ActivatedAt: tp(k.ActivatedAt), RetiredAt: tp(k.RetiredAt)}
		if k.State == oidc.StateRetired {
			v.UnpublishAt = tp(k.RetiredAt.Add(oidc.DefaultRetention))
		}
		views = append(views, v)
	}
	if asJSON {
		return json.NewEncoder(w).Encode(map[string]any{"keys": views})
	}
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "KID\tSTATE\tCREATED\tACTIVATED\tRETIRED\tUNPUBLISH AT")
	ts := func(t *time.Time) string {
		if t == nil {
			return "-"
		}
		return t.UTC().Format(time.RFC3339)
	}
	for _, v := range views {
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\n", v.KID, v.State, ts(v.CreatedAt), ts(v.ActivatedAt), ts(v.RetiredAt), ts(v.UnpublishAt))
	}
	return tw.Flush()
}

// Main runs the command and returns the process exit code.
func Main() int {
	err := Command().ExecuteContext(context.Background())
	if err == nil {
		return 0
	}
	var ee *ExitError
	if !errors.As(err, &ee) || !ee.Quiet {
		fmt.Fprintln(os.Stderr, "agentkeys-broker:", err)
	}
	return envflag.ExitCode(err)
}

// auditDBFromEnvFile returns BROKER_AUDIT_DB (or its alias
// BROKER_AUDIT_DB_PATH) from a systemd EnvironmentFile: KEY=VALUE lines,
// # comments, optional surrounding quotes; the last assignment wins. Errors
// never quote the file's content (it holds secrets).
func auditDBFromEnvFile(path string, stdin io.Reader) (string, error) {
	var r io.Reader = stdin
	if path != "-" {
		f, err := os.Open(path)
		if err != nil {
			return "", fmt.Errorf("env file: %w", err)
		}
		defer f.Close()
		r = f
	}
	b, err := io.ReadAll(io.LimitReader(r, 1<<20))
	if err != nil {
		return "", fmt.Errorf("env file %s: %w", path, err)
	}
	vals := map[string]string{}
	for _, line := range strings.Split(string(b), "\n") {
		line = strings.TrimSpace(line)
		if line == "" || line[0] == '#' || line[0] == ';' {
			continue
		}
		k, v, ok := strings.Cut(line, "=")
		if !ok {
			continue
		}
		k, v = strings.TrimSpace(strings.TrimPrefix(k, "export ")), strings.TrimSpace(v)
		if len(v) >= 2 && (v[0] == '"' || v[0] == '\'') && v[len(v)-1] == v[0] {
			v = v[1 : len(v)-1]
		}
		vals[k] = v
	}
	for _, k := range []string{"BROKER_AUDIT_DB", "BROKER_AUDIT_DB_PATH"} {
		if v := vals[k]; v != "" {
			return v, nil
		}
	}
	return "", fmt.Errorf("env file %s sets neither BROKER_AUDIT_DB nor BROKER_AUDIT_DB_PATH", path)
}
