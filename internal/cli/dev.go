package cli

import (
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"os"
	"os/signal"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/spf13/cobra"

	"github.com/agentkeys/agentkeys/internal/backend"
	"github.com/agentkeys/agentkeys/internal/backendclient"
	"github.com/agentkeys/agentkeys/internal/broker"
	"github.com/agentkeys/agentkeys/internal/provision/fixture"
	"github.com/agentkeys/agentkeys/internal/sts/fakests"
)

// DevStack is a backend and a broker running in this process on loopback,
// like `vault server -dev`.
type DevStack struct {
	Backend *backend.Running
	Broker  *broker.Running
	// Fixture is the local imitation of the sign-up sites (FixtureSite).
	Fixture *fixture.Site
	// STS is the fake STS (FakeSTS), or nil.
	STS     *fakests.Fake
	DataDir string
	LogFile string
	temp    bool
	logf    *os.File
}

// DevOptions configure StartDev.
type DevOptions struct {
	DataDir     string // empty: a temporary directory removed on Stop
	BackendPort int    // 0: a free port
	BrokerPort  int    // 0: a free port
	// STSEndpoint enables /v1/mint-aws-creds against this STS-compatible
	// endpoint with RoleARN (default arn:aws:iam::000000000000:role/agentkeys-data-role).
	STSEndpoint string
	RoleARN     string
	// FakeSTS serves an in-process imitation of AWS STS on loopback
	// (internal/sts/fakests) and points the broker at it, so AWS
	// credentials can be minted offline. Exclusive with STSEndpoint.
	FakeSTS bool
	// FixtureSite also serves a local imitation of the OpenRouter and
	// OpenAI sign-up sites (internal/provision/fixture) whose mail goes to
	// the dev backend's mock inbox, so `agentkeys provision` can be tried
	// offline.
	FixtureSite bool
}

// StartDev starts the dev stack: SQLite and an ephemeral OIDC key in the
// data directory, the mock inbox on, no STS unless asked for.
func StartDev(ctx context.Context, o DevOptions) (*DevStack, error) {
	// Everything that can be checked without writing is checked first, so
	// a stack that cannot start leaves no data directory behind.
	bport, err := pickPort(o.BackendPort)
	if err != nil {
		return nil, err
	}
	kport, err := pickPort(o.BrokerPort)
	if err != nil {
		return nil, err
	}
	if bport == kport {
		return nil, usagef("--backend-port and --broker-port are both %d", bport)
	}
	if o.FakeSTS && o.STSEndpoint != "" {
		return nil, usagef("--fake-sts and --sts-endpoint exclude each other")
	}
	cfg := broker.Defaults()
	cfg.Bind, cfg.Port = "127.0.0.1", kport
	cfg.BackendURL = "http://" + net.JoinHostPort("127.0.0.1", strconv.Itoa(bport))
	cfg.SkipStartupCheck = true
	cfg.LogLevel = "info"
	if o.STSEndpoint != "" {
		cfg.STSEndpoint = o.STSEndpoint
		cfg.DataRoleARN = o.RoleARN
		if cfg.DataRoleARN == "" {
			cfg.DataRoleARN = "arn:aws:iam::000000000000:role/agentkeys-data-role"
		}
	}
	if err := cfg.Validate(); err != nil {
		// The broker names its variables; dev's user gave flags.
		return nil, usagef("%s", strings.NewReplacer("BROKER_STS_ENDPOINT", "--sts-endpoint", "BROKER_DATA_ROLE_ARN", "--role-arn").Replace(err.Error()))
	}

	d := &DevStack{DataDir: o.DataDir}
	if d.DataDir == "" {
		dir, err := os.MkdirTemp("", "agentkeys-dev-")
		if err != nil {
			return nil, err
		}
		d.DataDir, d.temp = dir, true
	}
	if err := os.MkdirAll(d.DataDir, 0o700); err != nil {
		return nil, err
	}
	d.LogFile = filepath.Join(d.DataDir, "dev.log")
	f, err := os.OpenFile(d.LogFile, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o600)
	if err != nil {
		d.cleanup()
		return nil, err
	}
	d.logf = f
	log := slog.New(slog.NewJSONHandler(f, nil))

	d.Backend, err = backend.Start(ctx, backend.Config{
		Listen: net.JoinHostPort("127.0.0.1", strconv.Itoa(bport)), DataDir: filepath.Join(d.DataDir, "backend"), MockInbox: true,
		Login: backend.LoginMock, // dev is loopback-only and throwaway
	}, log.With("component", "backend"))
	if err != nil {
		d.cleanup()
		return nil, fmt.Errorf("start backend: %w", err)
	}
	cfg.BackendURL = d.Backend.URL()
	cfg.KeyFile = filepath.Join(d.DataDir, "broker", "oidc-keypair.json")
	cfg.AuditDB = filepath.Join(d.DataDir, "broker", "audit.sqlite")
	if o.FakeSTS {
		d.STS = fakests.New()
		cfg.STSEndpoint = d.STS.URL
		cfg.DataRoleARN = o.RoleARN
		if cfg.DataRoleARN == "" {
			cfg.DataRoleARN = "arn:aws:iam::000000000000:role/agentkeys-data-role"
		}
		// The fake checks that calls are SigV4-signed, not by whom: any
		// static key does, and none of the caller's AWS settings are used.
		cfg.AccessKeyID, cfg.SecretAccessKey = "AKIAAGENTKEYSDEVFAKE", "agentkeys-dev-fake-sts-"+rand.Text()
	}
	d.Broker, err = broker.Start(ctx, cfg, log.With("component", "broker"))
	if err != nil {
		d.Stop(context.Background())
		return nil, fmt.Errorf("start broker: %w", err)
	}
	if o.FixtureSite {
		bc, err := backendclient.New(d.Backend.URL())
		if err != nil {
			d.Stop(context.Background())
			return nil, err
		}
		d.Fixture = fixture.New(fixture.Options{Deliver: func(ctx context.Context, to, from, subject, text, html string) error {
			body := html
			if body == "" {
				body = text
			}
			return bc.DeliverMail(ctx, to, from, subject, body)
		}})
	}
	return d, nil
}

// Stop drains both servers and removes a temporary data directory.
func (d *DevStack) Stop(ctx context.Context) error {
	var errs []error
	if d.Fixture != nil {
		d.Fixture.Close()
	}
	if d.STS != nil {
		defer d.STS.Close() // after the broker has drained
	}
	if d.Broker != nil {
		errs = append(errs, d.Broker.Shutdown(ctx))
	}
	if d.Backend != nil {
		errs = append(errs, d.Backend.Shutdown(ctx))
	}
	d.cleanup()
	return errors.Join(errs...)
}

func (d *DevStack) cleanup() {
	if d.logf != nil {
		d.logf.Close()
	}
	if d.temp {
		os.RemoveAll(d.DataDir)
	}
}

// pickPort returns port, or a free loopback port for 0 (the broker's issuer
// URL must name its real port, so it cannot bind :0 itself).
func pickPort(port int) (int, error) {
	if port < 0 || port > 65535 {
		return 0, usagef("port %d is out of range 0-65535", port)
	}
	// A fixed port is tried too, so that one in use is reported before
	// anything is written.
	ln, err := net.Listen("tcp", net.JoinHostPort("127.0.0.1", strconv.Itoa(port)))
	if err != nil {
		return 0, fmt.Errorf("port %d on 127.0.0.1: %w", port, err)
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port, nil
}

func (a *App) newDevCmd() *cobra.Command {
	var o DevOptions
	cmd := &cobra.Command{
		Use:   "dev",
		Short: "Run a backend and a broker on loopback for development (embedded SQLite, mock login)",
		Long: `Start agentkeys-backend and agentkeys-broker in this process on loopback, with
embedded SQLite and an ephemeral OIDC key in a temporary directory (or
--data-dir, which is kept), the mock inbox on, and no AWS STS unless
--sts-endpoint is given (or --fake-sts, an imitation of STS on loopback
that hands out well-formed but useless credentials, to try run's AWS
support offline). Master login is mock: any AGENTKEYS_AUTH_TOKEN names
an identity. Prints the export lines to use it; Ctrl-C stops it cleanly.

Never expose it beyond this machine.`,
		Args: exactArgs(0, "none"),
		RunE: func(cmd *cobra.Command, _ []string) error {
			ctx, stop := signal.NotifyContext(cmd.Context(), os.Interrupt, syscall.SIGTERM)
			defer stop()
			d, err := StartDev(ctx, o)
			if err != nil {
				return err
			}
			info := map[string]any{
				"backend_url": d.Backend.URL(), "broker_url": d.Broker.URL(), "issuer": d.Broker.Issuer(),
				"data_dir": d.DataDir, "log_file": d.LogFile, "aws": o.STSEndpoint != "" || o.FakeSTS,
			}
			if d.STS != nil {
				info["fake_sts"] = d.STS.URL
			}
			var fixtureEnv [][2]string
			if d.Fixture != nil {
				for _, svc := range []string{"openrouter", "openai"} {
					up := "AGENTKEYS_" + strings.ToUpper(svc)
					fixtureEnv = append(fixtureEnv, [2]string{up + "_SIGNUP_URL", d.Fixture.SignupURL(svc)}, [2]string{up + "_API_URL", d.Fixture.URL})
				}
				fx := map[string]string{}
				for _, kv := range fixtureEnv {
					fx[kv[0]] = kv[1]
				}
				info["fixture_env"] = fx
			}
			if a.JSON {
				if err := a.printJSON(info); err != nil {
					d.Stop(context.Background())
					return err
				}
			} else {
				a.printf("export %s=%s\n", EnvBackendURL, d.Backend.URL())
				a.printf("export %s=%s\n", EnvBrokerURL, d.Broker.URL())
				for _, kv := range fixtureEnv {
					a.printf("export %s=%s\n", kv[0], kv[1])
				}
				fmt.Fprintf(a.Err, "agentkeys dev: backend %s, broker %s (OIDC issuer %s)\n", d.Backend.URL(), d.Broker.URL(), d.Broker.Issuer())
				kept := ""
				if d.temp {
					kept = " (removed on exit)"
				}
				if d.STS != nil {
					fmt.Fprintf(a.Err, "agentkeys dev: fake STS at %s: AWS credentials minted here work nowhere else\n", d.STS.URL)
				}
				fmt.Fprintf(a.Err, "agentkeys dev: data in %s, logs in %s%s\n", d.DataDir, d.LogFile, kept)
				fmt.Fprintf(a.Err, "agentkeys dev: log in with AGENTKEYS_AUTH_TOKEN=<any identity> agentkeys init; Ctrl-C to stop\n")
			}
			<-ctx.Done()
			fmt.Fprintln(a.Err, "agentkeys dev: stopping")
			sctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			return d.Stop(sctx)
		},
	}
	f := cmd.Flags()
	f.StringVar(&o.DataDir, "data-dir", "", "keep state in this directory (default: a temporary one, removed on exit)")
	f.IntVar(&o.BackendPort, "backend-port", 8090, "backend port on 127.0.0.1 (0: any free port)")
	f.IntVar(&o.BrokerPort, "broker-port", 8091, "broker port on 127.0.0.1 (0: any free port)")
	f.StringVar(&o.STSEndpoint, "sts-endpoint", "", "enable /v1/mint-aws-creds against this STS-compatible endpoint")
	f.StringVar(&o.RoleARN, "role-arn", "", "data role to assume with --sts-endpoint")
	f.BoolVar(&o.FakeSTS, "fake-sts", false, "serve an imitation of AWS STS on loopback and mint AWS credentials from it (offline; the credentials work nowhere)")
	f.BoolVar(&o.FixtureSite, "fixture-site", false, "also serve a local imitation of the OpenRouter/OpenAI sign-up sites (mail to the mock inbox) and print the AGENTKEYS_<SERVICE>_*_URL exports, to try `agentkeys provision` offline")
	return cmd
}
