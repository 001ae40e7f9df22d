package backend

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/signal"
	"strconv"
	"syscall"
	"time"

	"github.com/spf13/cobra"

	"github.com/agentkeys/agentkeys/internal/logging"
)

// Command returns the agentkeys-backend root command. Flags fall back to
// environment variables (listed in each flag's help), then to defaults.
func Command() *cobra.Command {
	var (
		cfg      Config
		logLevel string
		rate     float64
		envErrs  []error
	)
	envDuration := func(name string, def time.Duration) time.Duration {
		v, ok := os.LookupEnv(name)
		if !ok {
			return def
		}
		d, err := time.ParseDuration(v)
		if err != nil {
			envErrs = append(envErrs, fmt.Errorf("%s=%q is not a duration like 720h", name, v))
		}
		return d
	}
	envFloat := func(name string, def float64) float64 {
		v, ok := os.LookupEnv(name)
		if !ok {
			return def
		}
		f, err := strconv.ParseFloat(v, 64)
		if err != nil {
			envErrs = append(envErrs, fmt.Errorf("%s=%q is not a number", name, v))
		}
		return f
	}
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
			if err := errors.Join(envErrs...); err != nil {
				return err
			}
			if cfg.SessionTTL < time.Minute {
				return fmt.Errorf("--session-ttl %v is too short (minimum 1m)", cfg.SessionTTL)
			}
			log, err := logging.New(cmd.ErrOrStderr(), logLevel)
			if err != nil {
				return err
			}
			if _, err := cfg.loginMethod(); err != nil {
				return &configError{err}
			}
			cfg.LoginRate = rate
			ctx, stop := signal.NotifyContext(cmd.Context(), os.Interrupt, syscall.SIGTERM)
			defer stop()
			return Run(ctx, cfg, log)
		},
	}
	f := cmd.Flags()
	f.StringVar(&cfg.Listen, "listen", env("AGENTKEYS_BACKEND_LISTEN", DefaultListen), "address to listen on [AGENTKEYS_BACKEND_LISTEN]")
	f.StringVar(&cfg.DataDir, "data-dir", env("AGENTKEYS_DATA_DIR", ""), "directory for the SQLite database and seal key, created 0700 [AGENTKEYS_DATA_DIR]")
	f.StringVar(&cfg.DatabaseURL, "database-url", env("AGENTKEYS_DATABASE_URL", ""), "postgres:// URL; default is SQLite in --data-dir [AGENTKEYS_DATABASE_URL]")
	f.StringVar(&cfg.SealKeyFile, "seal-key-file", env("AGENTKEYS_SEAL_KEY_FILE", ""), "credential key-encryption key file (64 hex chars, 0600); default <data-dir>/seal.key [AGENTKEYS_SEAL_KEY_FILE]")
	f.DurationVar(&cfg.SessionTTL, "session-ttl", envDuration("AGENTKEYS_SESSION_TTL", DefaultSessionTTL), "master session lifetime; agent sessions never outlive their parent [AGENTKEYS_SESSION_TTL]")
	f.DurationVar(&cfg.SweepInterval, "sweep-interval", DefaultSweepInterval, "how often expired sessions are deleted")
	f.DurationVar(&cfg.ShutdownTimeout, "shutdown-timeout", 30*time.Second, "how long to drain in-flight requests on SIGTERM")
	f.Float64Var(&rate, "login-rate", envFloat("AGENTKEYS_LOGIN_RATE", 5), "POST /session/create per second per client IP (burst 20); negative disables [AGENTKEYS_LOGIN_RATE]")
	f.StringVar(&cfg.TLSCertFile, "tls-cert", env("AGENTKEYS_TLS_CERT", ""), "serve HTTPS with this certificate [AGENTKEYS_TLS_CERT]")
	f.StringVar(&cfg.TLSKeyFile, "tls-key", env("AGENTKEYS_TLS_KEY", ""), "private key for --tls-cert [AGENTKEYS_TLS_KEY]")
	f.BoolVar(&cfg.MockInbox, "mock-inbox", os.Getenv("AGENTKEYS_MOCK_INBOX") == "1", "serve the mock e-mail inbox for provisioner tests; its deliver route is unauthenticated, never enable in production [AGENTKEYS_MOCK_INBOX=1]")
	f.StringVar(&cfg.Login, "login", env("AGENTKEYS_LOGIN", ""), "master login method: oidc (implied by --login-oidc-issuer) or mock (any string logs in as any master: development and tests only); no default [AGENTKEYS_LOGIN]")
	f.StringVar(&cfg.LoginOIDCIssuer, "login-oidc-issuer", env("AGENTKEYS_LOGIN_OIDC_ISSUER", ""), "accept master logins only as ID tokens from this OpenID provider [AGENTKEYS_LOGIN_OIDC_ISSUER]")
	f.StringVar(&cfg.LoginOIDCClientID, "login-oidc-client-id", env("AGENTKEYS_LOGIN_OIDC_CLIENT_ID", ""), "client id (audience) the ID tokens must carry [AGENTKEYS_LOGIN_OIDC_CLIENT_ID]")
	frontdoorFlags(f, &cfg.Frontdoor, &envErrs)
	f.StringVar(&logLevel, "log-level", env("AGENTKEYS_LOG_LEVEL", "info"), "debug, info, warn or error [AGENTKEYS_LOG_LEVEL]")
	return cmd
}

// configError is a configuration the backend refuses to start with (exit 2).
type configError struct{ error }

func (e *configError) Unwrap() error { return e.error }

// Main runs the command and returns the process exit code: 0, 1 for a
// failure while running, 2 for a configuration it refuses.
func Main() int {
	if err := Command().ExecuteContext(context.Background()); err != nil {
		fmt.Fprintln(os.Stderr, "agentkeys-backend:", err)
		var ce *configError
		if errors.As(err, &ce) {
			return 2
		}
		return 1
	}
	return 0
}

func env(name, def string) string {
	if v, ok := os.LookupEnv(name); ok {
		return v
	}
	return def
}
