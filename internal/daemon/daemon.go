package daemon

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/agentkeys/agentkeys/internal/gateway"
	"github.com/agentkeys/agentkeys/internal/hardening"
	"github.com/agentkeys/agentkeys/internal/keychain"
	"github.com/agentkeys/agentkeys/internal/provision"
)

// EnvMCPToken gives the Streamable HTTP bearer instead of a generated one.
const EnvMCPToken = "AGENTKEYS_MCP_TOKEN"

// Config is the daemon's configuration (flags of agentkeys-daemon).
type Config struct {
	Session SessionOptions

	BrokerURL string
	Region    string

	Socket   string // "" = DefaultSocketPath()
	NoSocket bool

	Stdio         bool
	HTTPAddr      string // loopback host:port
	HTTPTokenFile string // where the generated bearer is written (0600)

	// AWSServer serves the broker's AWS credentials as an ECS container
	// endpoint at this loopback host:port; its token goes to AWSTokenFile
	// (default next to the socket).
	AWSServer    string
	AWSTokenFile string

	// Gateway, when set, serves the credential-injecting gateway there
	// (loopback host:port or unix:PATH).
	Gateway string
	// GatewayServices are extra NAME=ORIGIN,AUTH services for it.
	GatewayServices []string

	NoGetCredential      bool
	ChildUser            string // --child-user USER|UID[:GID]
	ChildLandlock        string // --child-landlock auto|on|off ("" = auto)
	WebIdentityTokenFile string
	CacheTTL             time.Duration
	IdleEvict            time.Duration
	RequireHardening     bool
	Provisioner          Provisioner
	// Provision, when set and Provisioner is nil, enables the
	// agentkeys.provision tool with the daemon's own session.
	Provision *ProvisionConfig

	Stderr io.Writer
	Log    *slog.Logger
}

// Run starts the daemon and serves until ctx ends or, with Stdio, until
// the MCP client closes stdin.
func Run(ctx context.Context, cfg Config) error {
	log := cfg.Log
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	if cfg.Stderr == nil {
		cfg.Stderr = os.Stderr
	}
	rep := hardening.Apply()
	rep.Log(log)
	// The daemon's own settings (AGENTKEYS_MCP_TOKEN, e-mail passwords…)
	// stay in Go's copy of the environment; children never get them
	// (childEnv) and /proc/<pid>/environ no longer shows them.
	if n, err := scrubEnviron(func(name string) bool { return strings.HasPrefix(name, "AGENTKEYS_") }); err != nil {
		log.Warn("could not clear AGENTKEYS_* values from /proc/self/environ", "err", err.Error())
	} else if n > 0 {
		log.Debug("cleared AGENTKEYS_* values from /proc/self/environ", "count", n)
	}
	if cfg.RequireHardening {
		if f := rep.Failed(); len(f) > 0 {
			return fmt.Errorf("--require-hardening: hardening steps failed: %s", strings.Join(f, ", "))
		}
	}
	if cfg.HTTPAddr != "" {
		if err := CheckLoopback(cfg.HTTPAddr); err != nil {
			return err
		}
	}
	gwServices, err := gateway.ServicesFromEnv(nil, cfg.GatewayServices, log)
	if err != nil {
		return err
	}
	cfg.Log = log
	sockPath := cfg.Socket
	if sockPath == "" {
		sockPath = DefaultSocketPath()
	}
	child, err := setupChildren(cfg, sockPath)
	if err != nil {
		return err
	}
	if cfg.BrokerURL != "" {
		if _, err := BindBroker(cfg.BrokerURL, "", ""); err != nil {
			return err
		}
	}

	// Bind the socket before pairing: an unusable path fails now, not
	// after the master approved a pair code.
	var sockLn *net.UnixListener
	if !cfg.NoSocket {
		sockLn, err = BindSocket(sockPath)
		if err != nil {
			if cfg.Socket != "" || !cfg.Stdio {
				return fmt.Errorf("socket %s is not usable (pass another --socket, or --no-socket): %w", sockPath, err)
			}
			log.Warn("Unix socket not served", "err", err.Error())
		} else {
			defer func() {
				if sockLn != nil {
					sockLn.Close()
				}
			}()
		}
	}

	cfg.Session.Log, cfg.Session.Prompt = log, cfg.Stderr
	cfg.Session.BrokerURL = cfg.BrokerURL
	sess, bc, err := AcquireSession(ctx, cfg.Session)
	if err != nil {
		return err
	}
	// The broker is the one the session is bound to (else --broker-url);
	// it is sent only broker tokens derived from the session by bc.
	var broker *BrokerClient
	if sess.Broker != "" {
		if broker, err = NewBrokerClient(sess.Broker, nil, bc); err != nil {
			return err
		}
		log.Info("broker configured", "url", broker.URL())
	} else if cfg.WebIdentityTokenFile != "" {
		return errors.New("--web-identity-token-file needs --broker-url (or AGENTKEYS_BROKER_URL)")
	}
	if cfg.Provisioner == nil && cfg.Provision != nil {
		if cfg.Provisioner, err = NewProvisioner(*cfg.Provision, bc, broker, sess, cfg.Region); err != nil {
			return err
		}
		log.Info("provisioner enabled", "services", strings.Join(provision.Services(), ","))
	}
	svc := NewService(ServiceOptions{Backend: bc, Broker: broker, Session: sess, Log: log, CacheTTL: cfg.CacheTTL, IdleEvict: cfg.IdleEvict,
		DisableGet: cfg.NoGetCredential, Child: child, Region: cfg.Region, Hardening: rep, Provisioner: cfg.Provisioner})
	defer svc.Close()

	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	go svc.RunEviction(ctx)
	svc.StartWatch(ctx)

	// The gateway backs agentkeys.http_request; --gateway also serves it.
	gw, err := NewGateway(ctx, svc, gwServices, log)
	if err != nil {
		return err
	}
	defer gw.Shutdown()
	svc.UseGateway(gw)

	errc := make(chan error, 5)
	if cfg.Gateway != "" {
		base, gerr, err := ServeGateway(ctx, gw, cfg.Gateway, log)
		if err != nil {
			return err
		}
		go func() {
			if err := <-gerr; err != nil {
				errc <- fmt.Errorf("gateway: %w", err)
			}
		}()
		fmt.Fprint(cfg.Stderr, gatewayBanner(base, cfg.Gateway, gw.Services()))
		// Before the socket serves: `agentkeys-daemon run --gateway`.
		svc.o.Gateway = runGatewayHook(base, gw, gwServices)
	}
	var sock *SocketServer
	if sockLn != nil {
		sock, sockLn = NewSocketServer(sockLn, sockPath, svc, log), nil
		defer sock.Close()
		go func() {
			if err := sock.Serve(); err != nil {
				errc <- fmt.Errorf("socket: %w", err)
			}
		}()
	}

	mcpSrv := NewMCPServer(svc, log)
	if cfg.HTTPAddr != "" {
		token, tokenFile, err := httpBearer(cfg, sock)
		if err != nil {
			return err
		}
		ln, err := net.Listen("tcp", cfg.HTTPAddr)
		if err != nil {
			return fmt.Errorf("--http: %w", err)
		}
		hs := &http.Server{Handler: MCPHTTPHandler(mcpSrv, token, log), ReadHeaderTimeout: 10 * time.Second,
			ErrorLog: slog.NewLogLogger(log.Handler(), slog.LevelWarn)}
		go func() {
			if err := hs.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
				errc <- fmt.Errorf("http: %w", err)
			}
		}()
		defer func() {
			sctx, c := context.WithTimeout(context.Background(), 5*time.Second)
			defer c()
			hs.Shutdown(sctx)
		}()
		where := "from " + EnvMCPToken
		if tokenFile != "" {
			where = "in " + tokenFile
		}
		fmt.Fprintf(cfg.Stderr, "MCP HTTP: http://%s/mcp (Authorization: Bearer token %s)\n", ln.Addr(), where)
	}

	if cfg.AWSServer != "" {
		tf := cfg.AWSTokenFile
		if tf == "" {
			tf = filepath.Join(filepath.Dir(sockPath), "aws-token")
		}
		ecs, err := svc.startAWSServer(cfg.AWSServer, tf)
		if err != nil {
			return err
		}
		defer ecs.Close()
		fmt.Fprintf(cfg.Stderr, "AWS credentials endpoint: %s (AWS_CONTAINER_CREDENTIALS_FULL_URI; authorization token in %s, for AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE)\n", ecs.URL(), tf)
	}

	if cfg.WebIdentityTokenFile != "" {
		ready := make(chan error, 1)
		go svc.KeepTokenFile(ctx, cfg.WebIdentityTokenFile, ready)
		if err := <-ready; err != nil {
			log.Warn("web identity token file not written yet", "err", err.Error())
		}
	}

	attrs := []any{"wallet", sess.Wallet, "backend", sess.Backend, "session_id", sess.StoreID, "get_credential", !cfg.NoGetCredential}
	if sock != nil {
		attrs = append(attrs, "socket", sock.Path())
	}
	if !sess.ExpiresAt.IsZero() {
		attrs = append(attrs, "expires_at", sess.ExpiresAt.UTC().Format(time.RFC3339))
	}
	log.Info("daemon ready", attrs...)

	if cfg.Stdio {
		go func() { errc <- RunMCPStdio(ctx, mcpSrv) }()
	}
	select {
	case <-ctx.Done():
		log.Info("shutting down")
		return nil
	case err := <-errc:
		if err == nil {
			log.Info("MCP client closed stdin; shutting down")
		}
		return err
	}
}

// httpBearer returns the MCP HTTP bearer: AGENTKEYS_MCP_TOKEN, or a fresh
// random token written 0600 to the token file (--http-token-file, default
// next to the socket).
func httpBearer(cfg Config, sock *SocketServer) (token, file string, err error) {
	if t := os.Getenv(EnvMCPToken); t != "" {
		if len(t) < 16 {
			return "", "", fmt.Errorf("%s must be at least 16 characters", EnvMCPToken)
		}
		return t, "", nil
	}
	file = cfg.HTTPTokenFile
	if file == "" {
		dir := filepath.Dir(DefaultSocketPath())
		if sock != nil {
			dir = filepath.Dir(sock.Path())
		}
		if err := os.MkdirAll(dir, 0o700); err != nil {
			return "", "", err
		}
		file = filepath.Join(dir, "mcp-token")
	}
	var b [32]byte
	rand.Read(b[:])
	token = hex.EncodeToString(b[:])
	if err := keychain.WritePrivateFile(file, []byte(token+"\n")); err != nil {
		return "", "", fmt.Errorf("write the MCP token file: %w", err)
	}
	return token, file, nil
}
