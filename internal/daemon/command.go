package daemon

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/spf13/cobra"

	"github.com/agentkeys/agentkeys/internal/cmdtree"
	"github.com/agentkeys/agentkeys/internal/confine"
	"github.com/agentkeys/agentkeys/internal/ecscreds"
	"github.com/agentkeys/agentkeys/internal/envflag"
	"github.com/agentkeys/agentkeys/internal/gateway"
	"github.com/agentkeys/agentkeys/internal/keychain"
	"github.com/agentkeys/agentkeys/internal/logging"
	"github.com/agentkeys/agentkeys/internal/provision"
	"github.com/agentkeys/agentkeys/internal/provision/scraper"
	"github.com/agentkeys/agentkeys/internal/services"
)

// Main runs agentkeys-daemon with the process's arguments and returns its
// exit status: 0; 1 for a failure; 2 for a usage error (a bad flag or
// variable value); a *PairError's ExitCode when pairing or recovery ends
// without a session.
func Main() int {
	if len(os.Args) > 1 && os.Args[1] == confine.HelperCommand {
		// Hidden: the confinement helper run_with_credential starts (it
		// applies Landlock and execs the command; never returns on success).
		return confine.ExecMain(os.Args[2:])
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	err := Command().ExecuteContext(ctx)
	var ce *ChildExit
	if err != nil && !errors.As(err, &ce) {
		fmt.Fprintln(os.Stderr, "agentkeys-daemon:", err)
	}
	return envflag.ExitCode(err)
}

// Command returns the agentkeys-daemon root command.
func Command() *cobra.Command { return command(nil) }

// Validate checks what the command line can get wrong before anything is
// started, and reports every problem at once.
func (c *Config) Validate() error {
	var errs []error
	if c.Session.Recover != "" && c.Session.Pair {
		errs = append(errs, errors.New("--pair and --recover exclude each other"))
	}
	if c.Session.Recover != "" && len(c.Session.Services) > 0 {
		errs = append(errs, errors.New("--services applies to pairing; a recovered agent keeps its scope"))
	}
	if c.Session.PairTimeout <= 0 {
		errs = append(errs, errors.New("--pair-timeout must be positive"))
	}
	switch c.ChildLandlock {
	case "", LandlockAuto, LandlockOn, LandlockOff:
	default:
		errs = append(errs, fmt.Errorf("--child-landlock %q: want auto, on or off", c.ChildLandlock))
	}
	if c.HTTPAddr != "" {
		if err := CheckLoopback(c.HTTPAddr); err != nil {
			errs = append(errs, err)
		}
	}
	if c.AWSServer != "" {
		if err := ecscreds.CheckLoopback(c.AWSServer); err != nil {
			errs = append(errs, fmt.Errorf("--aws-server %w", err))
		}
	}
	if c.Gateway != "" {
		if err := gateway.CheckAddr(c.Gateway); err != nil {
			errs = append(errs, err)
		}
	}
	for _, spec := range c.GatewayServices {
		if _, err := services.ParseSpec(spec); err != nil {
			errs = append(errs, fmt.Errorf("--gateway-service: %w", err))
		}
	}
	return errors.Join(errs...)
}

func command(lookup envflag.Lookup) *cobra.Command {
	var (
		cfg       Config
		logLevel  string
		backend   string
		sessionID string

		provisionOn bool
		prov        ProvisionConfig
		b           *envflag.Binder
	)
	root := &cobra.Command{
		Use:   "agentkeys-daemon",
		Short: "AgentKeys sandbox daemon: holds an agent's session and serves its credentials over a Unix socket and MCP",
		Long: `agentkeys-daemon holds one agent session inside a sandbox and serves the agent's credentials.

Session: --session-file FILE ({"session","wallet","backend"}, mode 0600) if it exists; else the stored
session --session-id (default: the single daemon-<wallet> session stored); else it pairs: it prints
"Pair code: XXXX-XXXX  OTP: NNNNNN" on stderr and waits for "agentkeys approve" on the master's machine.
--recover ALIAS|EMAIL|WALLET asks the master to approve a new session for an existing agent instead.
Each request carries a fresh X25519 key: the backend seals the approved session to it, and the daemon
stores it only if the backend's Ed25519 approval signature (keys at /.well-known/agentkeys-pairing-keys)
covers the request, this daemon's keys and that very session; otherwise it refuses and exits 1.

Serving: a Unix-socket JSON-RPC API (read, list, status, aws_credentials, oidc_token, run, request_scope) at --socket
(default $XDG_RUNTIME_DIR/agentkeys/agentkeys.sock), MCP on stdio (--stdio) and MCP Streamable HTTP on a
loopback address (--http 127.0.0.1:PORT, bearer from AGENTKEYS_MCP_TOKEN or a generated 0600 token file).
--aws-server 127.0.0.1:PORT serves the broker's AWS credentials the way ECS does for containers: set
AWS_CONTAINER_CREDENTIALS_FULL_URI to the URL it prints and AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE to its
0600 token file, and AWS SDKs fetch fresh credentials there before the old ones expire.

Secretless gateway (--gateway 127.0.0.1:PORT or unix:PATH): the agent calls http://ADDR/<service>/... without
any key; the daemon forwards the request to the service's API origin from the service table (or from the
operator-trusted AGENTKEYS_<SERVICE>_API_URL, read once at start and logged at WARN; CAs from SSL_CERT_FILE)
with the key added, masks it in the response, refuses services outside the scope and non-loopback Host
headers, audits every call and cuts open streams when the session is revoked. A read-only scope does not
restrict the API's methods. The MCP tool agentkeys.http_request uses the same gateway. Details:
docs/gateway.md in the source tree.

Secret-free mode (--no-get-credential): the agent can use stored credentials only through
agentkeys.run_with_credential, which puts the value in a command's environment and returns the output
masked; agentkeys.get_credential and the socket's read answer DISABLED. Short-lived broker credentials
(aws_credentials, oidc_token, aws credential-process) are still served. What protects the value from a
command run_with_credential starts:
  - the command itself holds the secret (in its environment): anything it does with it (sends it out,
    writes it to a file, prints it transformed) is up to the command; masking is best-effort;
  - same uid, no Landlock: the command can read every file the daemon's uid can (its session file and
    session store) and talk to its socket. The daemon is non-dumpable, so an unprivileged same-uid
    command cannot ptrace it or read /proc/<pid>/environ or mem; a root command can;
  - --child-landlock (default on in secret-free mode when the kernel has Landlock): the command cannot
    open, create or remove anything in the session file, the session store directory, the socket
    directory and the provisioner's state (names there stay listable), cannot ptrace the daemon or
    open its /proc/<pid>/mem (a root command can still read its /proc/<pid>/environ, where the daemon
    clears every AGENTKEYS_* value at start), and (Landlock ABI 6+) cannot signal it or reach abstract
    Unix sockets. Landlock only grants access, so nothing can be created or removed directly in the
    directories that contain those paths (e.g. $HOME, /tmp when the socket falls back there), and
    entries created there later are not reachable. It does not restrict the network, nor connecting to
    the daemon's socket by path (in secret-free mode the socket refuses stored values anyway);
  - --child-user USER: the command runs as another uid with no supplementary groups; file modes (0600
    session file, 0700 directories) and the socket's peer-uid check keep it out, and it cannot ptrace
    the daemon or read its /proc files. Needs root or CAP_SETUID and CAP_SETGID; without them the
    daemon refuses to start. Both can be combined. Details: docs/secret-free.md in the source tree.`,
		SilenceUsage:  true,
		SilenceErrors: true,
		Args:          cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if err := b.Err(); err != nil {
				return err
			}
			if err := cfg.Validate(); err != nil {
				return envflag.AsUsage(err)
			}
			if provisionOn {
				p, err := ProvisionConfigFromEnv(nil)
				if err != nil {
					return envflag.AsUsage(fmt.Errorf("--provision: %w", err))
				}
				p.Headful, p.Chromium, p.Timeout = prov.Headful, prov.Chromium, prov.Timeout
				cfg.Provision = &p
			}
			log, err := logging.New(os.Stderr, logLevel)
			if err != nil {
				return envflag.AsUsage(err)
			}
			st, err := keychain.New(nil)
			if err != nil {
				return err
			}
			cfg.Log, cfg.Stderr = log, os.Stderr
			cfg.Session.BackendURL, cfg.Session.SessionID, cfg.Session.Store = backend, sessionID, st
			return Run(cmd.Context(), cfg)
		},
	}
	root.SetFlagErrorFunc(func(c *cobra.Command, err error) error { return envflag.FlagError(c.Flags(), err) })
	b = envflag.New(root.Flags(), lookup)
	b.String(&backend, "backend", "AGENTKEYS_BACKEND_URL", "", "backend URL")
	b.String(&cfg.Session.SessionFile, "session-file", "", "", "session file (JSON {\"session\",\"wallet\",\"backend\"}, mode 0600): used if it exists, written after pairing")
	b.String(&sessionID, "session-id", "AGENTKEYS_SESSION_ID", "", "id of the stored session (keychain or 0600 file; default daemon-<wallet>)")
	b.String(&cfg.Session.Parent, "parent", "", "", "bind the pair/recover request to this master (alias, e-mail or wallet)")
	b.String(&cfg.Session.PairingKeyID, "pairing-key-id", "AGENTKEYS_PAIRING_KEY_ID", "", "trust only this approval-signing key (its kid at /.well-known/agentkeys-pairing-keys)")
	b.CSV(&cfg.Session.Services, "services", "", nil, "services the pair request asks for (comma separated)")
	b.Bool(&cfg.Session.ReadOnly, "read-only", "", false, "ask for a read-only scope")
	b.String(&cfg.Session.Recover, "recover", "", "", "recover an existing agent (alias, e-mail or wallet) with the master's approval")
	b.Bool(&cfg.Session.Pair, "pair", "", false, "pair again even if a session is stored")
	b.Duration(&cfg.Session.PairTimeout, "pair-timeout", "", 5*time.Minute, "how long to wait for the master's approval (seconds or duration)")
	b.String(&cfg.BrokerURL, "broker-url", "AGENTKEYS_BROKER_URL", "", "broker URL for AWS credentials and OIDC tokens (default: the session's \"broker\"; a different one is refused)")
	region, _ := b.Get("AWS_DEFAULT_REGION")
	b.String(&cfg.Region, "region", "AWS_REGION", region, "AWS region reported with broker credentials (fallback AWS_DEFAULT_REGION)")
	b.String(&cfg.Socket, "socket", "", "", "Unix socket path (default $AGENTKEYS_SOCKET or $XDG_RUNTIME_DIR/agentkeys/agentkeys.sock)")
	b.Bool(&cfg.NoSocket, "no-socket", "", false, "do not serve the Unix socket")
	b.Bool(&cfg.Stdio, "stdio", "", false, "serve MCP on stdin/stdout; exit when stdin closes")
	b.String(&cfg.HTTPAddr, "http", "", "", "serve MCP Streamable HTTP at http://ADDR/mcp (loopback only, e.g. 127.0.0.1:8765)")
	b.String(&cfg.Gateway, "gateway", "", "", "serve the credential-injecting gateway at 127.0.0.1:PORT (or unix:PATH): the agent calls http://ADDR/<service>/... and the daemon adds the key")
	root.Flags().StringArrayVar(&cfg.GatewayServices, "gateway-service", nil, "declare another gateway service NAME=ORIGIN,AUTH with AUTH bearer, header:NAME or query:NAME (operator-trusted; repeatable)")
	b.String(&cfg.HTTPTokenFile, "http-token-file", "", "", "where to write the generated MCP HTTP bearer (0600; default next to the socket; AGENTKEYS_MCP_TOKEN overrides)")
	b.Bool(&cfg.NoGetCredential, "no-get-credential", "", false, "secret-free mode: no stored credential value leaves the daemon (get_credential and the socket's read are refused; run_with_credential, aws_credentials and oidc_token still work)")
	b.String(&cfg.ChildUser, "child-user", "", "", "run run_with_credential commands as USER|UID[:GID] (no supplementary groups); needs root or CAP_SETUID+CAP_SETGID, else the daemon refuses to start")
	b.String(&cfg.ChildLandlock, "child-landlock", "", LandlockAuto, "confine run_with_credential commands with Landlock so they cannot read the daemon's session and state files nor ptrace or signal it: auto (on with --no-get-credential when the kernel has Landlock), on (refuse to start without it) or off")
	b.String(&cfg.AWSServer, "aws-server", "", "", "serve the broker's AWS credentials as an ECS container-credential endpoint at this loopback ADDR (e.g. 127.0.0.1:9911), refreshed before expiry; SDKs read it through AWS_CONTAINER_CREDENTIALS_FULL_URI")
	b.String(&cfg.AWSTokenFile, "aws-token-file", "", "", "where to write the --aws-server authorization token (0600; default aws-token next to the socket)")
	b.String(&cfg.WebIdentityTokenFile, "web-identity-token-file", "", "", "keep a broker-minted OIDC JWT fresh in this 0600 file (for AWS_WEB_IDENTITY_TOKEN_FILE; give each agent its own AWS_ROLE_SESSION_NAME, the AWS CLI caches credentials by role and session name)")
	b.Duration(&cfg.CacheTTL, "cache-ttl", "", 0, "cache credential values in locked memory this long (0: read through); every read from the cache is still audited first, and the cache is dropped the moment the session is revoked")
	b.Duration(&cfg.IdleEvict, "idle-evict", "", 5*time.Minute, "forget cached secrets unused this long")
	b.Bool(&cfg.RequireHardening, "require-hardening", "", false, "refuse to start if a hardening step fails")
	b.String(&logLevel, "log-level", "", "info", "log level: debug, info, warn or error (logs go to stderr: text on a terminal, else JSON lines)")
	b.Bool(&provisionOn, "provision", "", false, "enable the agentkeys.provision tool (sign-ups in Chromium; e-mail settings from AGENTKEYS_EMAIL_BACKEND and friends, default the backend's mock inbox)")
	b.Bool(&prov.Headful, "provision-headful", "", false, "show the provisioner's browser window (a person can solve captchas)")
	b.String(&prov.Chromium, "chromium", "", "", "browser binary for the provisioner (default: chromium on PATH)")
	b.Duration(&prov.Timeout, "provision-timeout", "", 0, "wall clock for one provisioning run (default: the service's budget)")
	root.AddCommand(awsCommand(lookup), statusCommand(), runCommand(lookup), requestScopeCommand(lookup), scraper.NewCommand())
	cmdtree.Environment(root,
		cmdtree.EnvVar{Name: EnvMCPToken, Meaning: "bearer for MCP over HTTP (--http); default: a generated token written 0600 to --http-token-file"},
		cmdtree.EnvVar{Name: EnvSocket, Meaning: "Unix socket path (default $XDG_RUNTIME_DIR/agentkeys/agentkeys.sock, else $TMPDIR/agentkeys-<uid>/agentkeys.sock)"},
		cmdtree.EnvVar{Name: keychain.EnvSessionStore, Meaning: "where stored sessions are kept: keychain, file or unset (keychain when available, else file)"},
		cmdtree.EnvVar{Name: "AWS_DEFAULT_REGION", Meaning: "fallback for --region"})
	cmdtree.Environment(root, provision.EnvironmentHelp("--provision: ")...)
	codes := []cmdtree.ExitCode{
		{Code: "0", Meaning: "stopped cleanly (SIGTERM, SIGINT, or stdin closed with --stdio)"},
		{Code: "1", Meaning: "failure (backend unreachable, session revoked, approval signature not verified, …)"},
		{Code: "2", Meaning: "usage error: unknown command or flag, bad flag or variable value"},
		{Code: "3", Meaning: "pairing or recovery denied by the master"},
		{Code: "4", Meaning: "pairing or recovery locked after too many wrong OTPs"},
		{Code: "5", Meaning: "pairing or recovery expired, or no approval within --pair-timeout"},
	}
	return cmdtree.Finish(root, append(codes, cmdtree.RunExitCodes...)...)
}

func awsCommand(lookup envflag.Lookup) *cobra.Command {
	aws := &cobra.Command{Use: "aws", Short: "AWS helpers backed by the broker"}
	var o CredentialProcessOptions
	cp := &cobra.Command{
		Use:   "credential-process",
		Short: "Print AWS credential_process JSON (Version 1) from the broker",
		Long: `Prints temporary AWS credentials as credential_process JSON. Use it in ~/.aws/config:

  [profile agent]
  credential_process = agentkeys-daemon aws credential-process --socket /run/user/1000/agentkeys/agentkeys.sock

With --socket it asks the running daemon (which caches them); otherwise it uses the stored daemon session
(--session-file or --session-id) and calls the broker (--broker-url or AGENTKEYS_BROKER_URL) itself.`,
		Args:          cobra.NoArgs,
		SilenceUsage:  true,
		SilenceErrors: true,
		RunE: func(cmd *cobra.Command, _ []string) error {
			st, err := keychain.New(nil)
			if err != nil {
				return err
			}
			o.Store, o.TrySocket = st, true
			ctx, cancel := context.WithTimeout(cmd.Context(), 60*time.Second)
			defer cancel()
			out, err := CredentialProcess(ctx, o)
			if err != nil {
				return err
			}
			_, err = os.Stdout.Write(out)
			clear(out)
			return err
		},
	}
	cp.SetFlagErrorFunc(func(c *cobra.Command, err error) error { return envflag.FlagError(c.Flags(), err) })
	b := envflag.New(cp.Flags(), lookup)
	b.String(&o.Socket, "socket", "", "", "ask the daemon listening on this socket")
	b.String(&o.SessionFile, "session-file", "", "", "session file to use (0600)")
	b.String(&o.SessionID, "session-id", "AGENTKEYS_SESSION_ID", "", "stored session id")
	b.String(&o.BrokerURL, "broker-url", "AGENTKEYS_BROKER_URL", "", "broker URL (default: the session's \"broker\"; a different one is refused)")
	aws.AddCommand(cp)
	return aws
}

func statusCommand() *cobra.Command {
	var socket string
	c := &cobra.Command{
		Use:           "status",
		Short:         "Ask a running daemon for its status (JSON on stdout)",
		Args:          cobra.NoArgs,
		SilenceUsage:  true,
		SilenceErrors: true,
		RunE: func(cmd *cobra.Command, _ []string) error {
			ctx, cancel := context.WithTimeout(cmd.Context(), 10*time.Second)
			defer cancel()
			c, err := DialSocket(ctx, socket)
			if err != nil {
				return err
			}
			defer c.Close()
			st, err := c.Status(ctx)
			if err != nil {
				return err
			}
			enc := json.NewEncoder(os.Stdout)
			enc.SetIndent("", "  ")
			return enc.Encode(st)
		},
	}
	c.Flags().StringVar(&socket, "socket", "", "daemon socket (default $AGENTKEYS_SOCKET or $XDG_RUNTIME_DIR/agentkeys/agentkeys.sock)")
	return c
}
