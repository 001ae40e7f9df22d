package backend

import (
	"context"
	"fmt"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/spf13/cobra"

	"github.com/agentkeys/agentkeys/internal/cmdtree"
	"github.com/agentkeys/agentkeys/internal/envflag"
	"github.com/agentkeys/agentkeys/internal/logging"
)

// Command returns the agentkeys-backend root command. Flags fall back to
// environment variables (listed in each flag's help), then to defaults.
func Command() *cobra.Command { return command(nil) }

func command(lookup envflag.Lookup) *cobra.Command {
	var (
		cfg      Config
		logLevel string
		b        *envflag.Binder
	)
	cmd := &cobra.Command{
		Use:   "agentkeys-backend",
		Short: "AgentKeys backend: wallets, sessions, scopes, sealed credentials and audit",
		Long: `agentkeys-backend serves the AgentKeys API that the CLI, the daemon and the broker use.

By default it listens on 127.0.0.1:8090 and keeps an embedded SQLite database and
the credential seal key (created 0600 on first start) in --data-dir. Give a
postgres:// --database-url to run several replicas on one PostgreSQL; they must
then share the same --seal-key-file.

Master login has no default: give an OpenID provider
(--login-oidc-issuer URL --login-oidc-client-id ID) and masters log in with its
ID tokens. --login mock accepts any string as a master's identity, so anyone
who can reach the backend can act as any master: it exists for
'agentkeys dev' and tests, never for a shared host. Without either the
backend refuses to start.`,
		Args:          cobra.NoArgs,
		SilenceUsage:  true,
		SilenceErrors: true,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if err := b.Err(); err != nil {
				return err
			}
			if err := cfg.Validate(); err != nil {
				return envflag.AsUsage(err)
			}
			log, err := logging.New(cmd.ErrOrStderr(), logLevel)
			if err != nil {
				return envflag.AsUsage(err)
			}
			ctx, stop := signal.NotifyContext(cmd.Context(), os.Interrupt, syscall.SIGTERM)
			defer stop()
			return Run(ctx, cfg, log)
		},
	}
	cmd.SetFlagErrorFunc(func(c *cobra.Command, err error) error { return envflag.FlagError(c.Flags(), err) })
	b = envflag.New(cmd.Flags(), lookup)
	b.String(&cfg.Listen, "listen", "AGENTKEYS_BACKEND_LISTEN", DefaultListen, "address to listen on")
	b.String(&cfg.DataDir, "data-dir", "AGENTKEYS_DATA_DIR", "", "directory for the SQLite database and seal key, created 0700")
	b.String(&cfg.DatabaseURL, "database-url", "AGENTKEYS_DATABASE_URL", "", "postgres:// URL; default is SQLite in --data-dir")
	b.String(&cfg.SealKeyFile, "seal-key-file", "AGENTKEYS_SEAL_KEY_FILE", "", "credential key-encryption key file (64 hex chars, 0600); default <data-dir>/seal.key")
	b.Duration(&cfg.SessionTTL, "session-ttl", "AGENTKEYS_SESSION_TTL", DefaultSessionTTL, "master session lifetime (seconds or a duration like 720h); agent sessions never outlive their parent")
	b.Duration(&cfg.SweepInterval, "sweep-interval", "", DefaultSweepInterval, "how often expired sessions are deleted")
	b.Duration(&cfg.ShutdownTimeout, "shutdown-timeout", "", 30*time.Second, "how long to drain in-flight requests on SIGTERM")
	b.Float(&cfg.LoginRate, "login-rate", "AGENTKEYS_LOGIN_RATE", 5, "POST /session/create per second per client IP (burst 20); negative disables")
	b.String(&cfg.TLSCertFile, "tls-cert", "AGENTKEYS_TLS_CERT", "", "serve HTTPS with this certificate")
	b.String(&cfg.TLSKeyFile, "tls-key", "AGENTKEYS_TLS_KEY", "", "private key for --tls-cert")
	b.Bool(&cfg.MockInbox, "mock-inbox", "AGENTKEYS_MOCK_INBOX", false, "serve the mock e-mail inbox for provisioner tests; its deliver route is unauthenticated, never enable in production")
	b.String(&cfg.Login, "login", "AGENTKEYS_LOGIN", "", "master login method: oidc (implied by --login-oidc-issuer) or mock (any string logs in as any master: development and tests only); no default")
	b.String(&cfg.LoginOIDCIssuer, "login-oidc-issuer", "AGENTKEYS_LOGIN_OIDC_ISSUER", "", "accept master logins only as ID tokens from this OpenID provider")
	b.String(&cfg.LoginOIDCClientID, "login-oidc-client-id", "AGENTKEYS_LOGIN_OIDC_CLIENT_ID", "", "client id (audience) the ID tokens must carry")
	frontdoorFlags(b, &cfg.Frontdoor)
	b.String(&logLevel, "log-level", "AGENTKEYS_LOG_LEVEL", "info", "debug, info, warn or error")
	return cmdtree.Finish(cmd,
		cmdtree.ExitCode{Code: "0", Meaning: "stopped cleanly (SIGTERM or SIGINT, after draining requests)"},
		cmdtree.ExitCode{Code: "1", Meaning: "failure while starting or serving (database, seal key, address in use, …)"},
		cmdtree.ExitCode{Code: "2", Meaning: "usage error: unknown flag, bad flag or variable value, a configuration it refuses"})
}

// Main runs the command and returns the process exit code (documented in
// its help): 0, 1 for a failure while running, 2 for a usage error.
func Main() int {
	err := Command().ExecuteContext(context.Background())
	if err != nil {
		fmt.Fprintln(os.Stderr, "agentkeys-backend:", err)
	}
	return envflag.ExitCode(err)
}
