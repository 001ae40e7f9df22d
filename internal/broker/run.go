package broker

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"strconv"
	"sync"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/agentkeys/agentkeys/internal/audit"
	"github.com/agentkeys/agentkeys/internal/jsonhttp"
	"github.com/agentkeys/agentkeys/internal/oidc"
	"github.com/agentkeys/agentkeys/internal/sqldb"
	"github.com/agentkeys/agentkeys/internal/sts"
)

// Running is a started broker.
type Running struct {
	cfg      Config
	srv      *http.Server
	ln       net.Listener
	sink     audit.Sink
	issuer   *oidc.Issuer
	log      *slog.Logger
	stop     context.CancelFunc
	wg       sync.WaitGroup
	serveErr <-chan error
}

// Addr is the address the broker listens on.
func (r *Running) Addr() string { return r.ln.Addr().String() }

// URL is the broker's base URL.
func (r *Running) URL() string {
	scheme := "http"
	if r.cfg.TLSCertFile != "" {
		scheme = "https"
	}
	return scheme + "://" + r.Addr()
}

// Issuer returns the OIDC issuer URL in use.
func (r *Running) Issuer() string { return r.cfg.Issuer }

// Start validates cfg, opens the audit ledger and the key set, checks AWS
// (unless skipped), binds the listener and serves in the background.
func Start(ctx context.Context, cfg Config, log *slog.Logger) (*Running, error) {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if !isLoopback(cfg.Bind) && cfg.TLSCertFile == "" {
		log.Warn("SECURITY: broker bound to a non-loopback address without TLS; bearer tokens and minted credentials will cross the network in cleartext. Put a TLS proxy in front (bind 127.0.0.1) or pass --tls-cert/--tls-key.",
			"bind", cfg.Bind, "port", cfg.Port)
	}
	if u := cfg.Issuer; len(u) >= 7 && u[:7] == "http://" {
		log.Warn("OIDC issuer uses plain http; AWS IAM accepts only https issuers (fine for local tests)", "issuer", u)
	}

	// What can fail without writing anything (the listen address, AWS,
	// the ledger's PostgreSQL) comes before the key set and the ledger
	// file are created.
	ln, err := net.Listen("tcp", net.JoinHostPort(cfg.Bind, strconv.Itoa(cfg.Port)))
	if err != nil {
		return nil, fmt.Errorf("listen on %s: %w", net.JoinHostPort(cfg.Bind, strconv.Itoa(cfg.Port)), err)
	}
	early := func(err error) (*Running, error) {
		ln.Close()
		return nil, err
	}
	var aws AWSMinter
	if cfg.AWSEnabled() {
		client, err := sts.New(ctx, sts.Config{
			Region: cfg.Region, AccessKeyID: cfg.AccessKeyID, SecretAccessKey: cfg.SecretAccessKey,
			Endpoint: cfg.STSEndpoint, Timeout: cfg.STSTimeout,
		})
		if err != nil {
			return early(err)
		}
		log.Info("AWS credential minting enabled", "role_arn", cfg.DataRoleARN, "region", cfg.Region,
			"credentials", client.CredentialSource(), "sts_endpoint", cfg.STSEndpoint)
		if !cfg.SkipStartupCheck {
			cctx, cancel := context.WithTimeout(ctx, cfg.STSTimeout)
			id, err := client.CallerIdentity(cctx)
			cancel()
			if err != nil {
				log.Error("startup STS check failed", "err", err)
				return early(errors.New("startup STS check (GetCallerIdentity) failed: give the broker an AWS principal (AWS_PROFILE, an instance profile, or both DAEMON_ACCESS_KEY_ID and DAEMON_SECRET_ACCESS_KEY), check BROKER_AWS_REGION / BROKER_STS_ENDPOINT, or pass --skip-startup-check for offline development"))
			}
			log.Info("startup STS check passed", "account", id.Account, "principal", id.ARN)
		}
		aws = client
	} else {
		log.Info("AWS credential minting disabled (none of BROKER_DATA_ROLE_ARN, BROKER_AGENT_ROLE_ARN, ACCOUNT_ID set); /v1/mint-aws-creds answers 404")
	}

	if audit.IsPostgres(cfg.AuditDB) {
		if err := pingPostgres(ctx, cfg.AuditDB); err != nil {
			return early(fmt.Errorf("audit ledger (BROKER_AUDIT_DB): %w", err))
		}
	}
	// The key set signs the ledger's checkpoints, so it is loaded first.
	issuer, err := oidc.NewIssuer(oidc.Config{Issuer: cfg.Issuer, TTL: cfg.JWTTTL, KeyFile: cfg.KeyFile, Logger: log})
	if err != nil {
		return early(fmt.Errorf("OIDC key set (BROKER_OIDC_KEYPAIR_PATH): %w", err))
	}
	sink, err := audit.OpenWith(ctx, cfg.AuditDB, audit.Options{
		Chain: cfg.AuditChain, Signer: issuer, Logger: log,
		CheckpointEvery: cfg.AuditCheckpointRows, CheckpointInterval: cfg.AuditCheckpointInterval,
		CheckpointFile: cfg.AuditCheckpointFile,
	})
	if err != nil {
		return early(fmt.Errorf("open audit ledger (BROKER_AUDIT_DB): %w", err))
	}

	log.Info("OIDC signer ready", "kid", issuer.CurrentKID(), "issuer", cfg.Issuer, "path", cfg.KeyFile, "ttl_seconds", int(cfg.JWTTTL.Seconds()))

	validator := NewHTTPValidator(cfg.BackendURL, cfg.BackendTimeout)
	// Say at once when the backend does not answer: every mint needs it.
	// Not fatal, since the backend may simply start later.
	hctx, hcancel := context.WithTimeout(ctx, min(cfg.BackendTimeout, 3*time.Second))
	if err := validator.Health(hctx); err != nil {
		log.Warn("backend not reachable at startup: every mint fails (backend_unreachable) until it answers; check BROKER_BACKEND_URL and that agentkeys-backend is running",
			"backend_url", cfg.BackendURL)
	} else {
		log.Info("backend reachable", "backend_url", cfg.BackendURL)
	}
	hcancel()
	// Host checks (DNS rebinding) on a loopback bind, the default; behind
	// a non-loopback bind the broker is reached by names only its operator
	// knows.
	cfg.hostCheck = isLoopback(cfg.Bind)
	server := NewServer(cfg, Deps{
		Validator: validator, BackendHealth: validator.Health, Tree: validator,
		Issuer: issuer, AWS: aws, Audit: sink, Logger: log,
	})

	bg, stop := context.WithCancel(context.WithoutCancel(ctx))
	r := &Running{
		cfg: cfg, ln: ln, sink: sink, issuer: issuer, log: log, stop: stop,
		srv: jsonhttp.NewServer(server, log),
	}
	r.wg.Go(func() { issuer.Watch(bg, cfg.KeyReload, server.KeyReloaded) })
	r.serveErr = jsonhttp.Serve(r.srv, ln, cfg.TLSCertFile, cfg.TLSKeyFile)
	log.Info("broker listening", "addr", r.Addr(), "url", r.URL(), "backend", cfg.BackendURL, "audit_db", auditLabel(cfg.AuditDB), "audit_chain", cfg.AuditChain)
	return r, nil
}

// pingPostgres connects to the ledger's PostgreSQL once, so that an
// unreachable database is reported before the key set file is created.
func pingPostgres(ctx context.Context, dsn string) error {
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	conn, err := pgx.Connect(ctx, dsn)
	if err != nil {
		return fmt.Errorf("cannot connect to PostgreSQL at %s", sqldb.Redact(dsn))
	}
	return conn.Close(ctx)
}

// auditLabel names the audit database without a PostgreSQL password.
func auditLabel(dsn string) string {
	if audit.IsPostgres(dsn) {
		return "postgres"
	}
	return dsn
}

// Shutdown stops accepting connections, drains in-flight requests until ctx
// ends, then closes the ledger.
func (r *Running) Shutdown(ctx context.Context) error {
	err := r.srv.Shutdown(ctx)
	r.stop()
	r.wg.Wait()
	if cerr := r.sink.Close(); err == nil {
		err = cerr
	}
	return err
}

// Wait blocks until the server stops serving on its own (a listener error).
func (r *Running) Wait() error { return <-r.serveErr }

// Run starts the broker and serves until ctx is cancelled (SIGTERM/SIGINT),
// then drains for at most cfg.ShutdownGrace.
func Run(ctx context.Context, cfg Config, log *slog.Logger) error {
	r, err := Start(ctx, cfg, log)
	if err != nil {
		return err
	}
	return jsonhttp.Drain(ctx, log, r.serveErr, cfg.ShutdownGrace, r.Shutdown)
}
