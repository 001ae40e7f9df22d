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

	"github.com/spf13/cobra"

	"github.com/agentkeys/agentkeys/internal/agentkeys"
	"github.com/agentkeys/agentkeys/internal/mask"
)

// envOverride is one --env NAME=SERVICE.
type envOverride struct {
	Name    string
	Service string
}

// parseEnvSpec parses NAME=SERVICE, split at the first '='. NAME must be a
// portable environment variable name; SERVICE a valid service name.
func parseEnvSpec(raw string) (envOverride, error) {
	name, svc, ok := strings.Cut(raw, "=")
	switch {
	case !ok:
		return envOverride{}, fmt.Errorf("Invalid --env format %q: expected KEY=SERVICE (no '=' found)", raw)
	case name == "":
		return envOverride{}, fmt.Errorf("Invalid --env format %q: KEY must not be empty", raw)
	case svc == "":
		return envOverride{}, fmt.Errorf("Invalid --env format %q: SERVICE must not be empty", raw)
	}
	if !validEnvName(name) {
		return envOverride{}, fmt.Errorf("Invalid --env format %q: KEY must be letters, digits and '_', not starting with a digit", raw)
	}
	if err := agentkeys.ValidateService(svc); err != nil {
		return envOverride{}, fmt.Errorf("Invalid --env format %q: %v", raw, err)
	}
	return envOverride{Name: name, Service: svc}, nil
}

func validEnvName(s string) bool {
	if s == "" {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !('A' <= c && c <= 'Z' || 'a' <= c && c <= 'z' || c == '_' || (i > 0 && '0' <= c && c <= '9')) {
			return false
		}
	}
	return true
}

// EnvNameFor is the variable `run` sets for a service:
// upper case, '-' → '_', plus "_API_KEY".
func EnvNameFor(service string) string {
	return strings.ReplaceAll(strings.ToUpper(service), "-", "_") + "_API_KEY"
}

// strippedEnv are variables of the CLI's environment a child never sees.
var strippedEnv = []string{EnvAuthToken}

func (a *App) newRunCmd() *cobra.Command {
	var envSpecs []string
	var noMasking, viaGateway bool
	var aws awsRunOptions
	var socket string
	cmd := &cobra.Command{
		Use:   "run (<agent> [--env NAME=SERVICE]... | --socket PATH) -- <command> [args...]",
		Short: "Run a command with an agent's credentials in its environment",
		Long: `Run <command> with the agent's credentials as environment variables: each
service the agent holds, within the agent's scope, becomes <SERVICE>_API_KEY
(upper case, '-' becomes '_'); --env NAME=SERVICE sets NAME as well (and
overrides). Credentials are read all-or-nothing: if one read fails, nothing
runs. Values never appear on any command line.

The exit status is the command's (128+N if it died of signal N, 127 if it
was not found). SIGINT, SIGTERM, SIGHUP, SIGQUIT, SIGUSR1 and SIGUSR2 sent to
agentkeys are forwarded to the command.

Masking is on by default: the command's stdout and stderr go through pipes
and every form of an injected credential in them (verbatim, base64
standard or URL-safe, hex, percent-encoded, also wrapped over lines) is
replaced by ****, as it streams (a partial line is shown after 50 ms of
silence). Masking is a guard against accidents, not against a command
that wants to leak: a transformed secret (reversed, split, compressed,
encrypted) gets through. Because the command's output is a pipe, not the
terminal, programs that need a TTY (editors, pagers, interactive shells)
should be run with --no-masking, which gives the command the CLI's own
stdout and stderr. With masking, output that processes the command left
running write more than 2 s after it exits is cut off.

AWS: when the agent's scope includes "aws", run also asks the broker for
temporary AWS credentials for the agent's wallet (tagged with it and with
agentkeys_access read or write, lifetime capped to the agent's session) and
sets AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY, AWS_SESSION_TOKEN, AWS_REGION
and AWS_DEFAULT_REGION, as AWS SDKs and the aws CLI expect. The broker is
sent only a short-lived broker token derived from the agent's own session,
read from --session-file (written by agent create --session-out): the
master's session is never used for the agent's AWS identity. The region is
--region, else AWS_REGION or AWS_DEFAULT_REGION. Without --session-file run
warns and runs the command without AWS credentials (as before); with one but
no broker or no region it refuses. --no-aws skips the AWS credentials.

--gateway (secretless): no stored credential enters the command's
environment. run serves a gateway on 127.0.0.1 for the command's lifetime
and sets, for each service of the service table in the agent's scope, the
variable its SDKs read the API's base URL from (OPENAI_BASE_URL=
http://127.0.0.1:PORT/openai/v1, OPENROUTER_BASE_URL=…/openrouter/api/v1,
ANTHROPIC_BASE_URL=…/anthropic) and a placeholder <SERVICE>_API_KEY. The
gateway adds the real key to each request on its way to the service's API
(AGENTKEYS_<SERVICE>_API_URL overrides that origin), masks it in
responses, audits every call for the agent, and stops serving, open
streams included, once the agent is revoked (watched through
--session-file when given, else checked every second). It excludes --env.

--aws-server serves the credentials instead from an endpoint on 127.0.0.1
for the command's lifetime, the way ECS does (AWS_CONTAINER_CREDENTIALS_FULL_URI
and AWS_CONTAINER_AUTHORIZATION_TOKEN, a random token every request must
carry): SDKs fetch them there and get fresh ones, minted shortly before the
old ones expire, as long as the agent's session lives. Only the first
credentials and the token are masked in the output.

Inside a sandbox, run --socket PATH -- <command> (no <agent>) has the
agentkeys-daemon listening on PATH run the command with the credentials it
holds (the same as agentkeys-daemon run): the daemon starts it and streams
its output back masked; stdin and the signals above are forwarded; no
credential value crosses the socket, so it works when the daemon is
secret-free.`,
		Args:              cobra.ArbitraryArgs,
		ValidArgsFunction: a.completeAgents,
		RunE: func(cmd *cobra.Command, args []string) error {
			if socket != "" {
				return a.runViaSocket(cmd, socket, args)
			}
			dash := cmd.ArgsLenAtDash()
			switch {
			case dash < 0:
				return usagef("missing -- before the command: agentkeys run <agent> -- <command> [args...]")
			case dash != 1:
				return usagef("run takes exactly one <agent> before -- (got %d)", dash)
			case len(args) == 1:
				return usagef("no command after --")
			}
			if viaGateway && len(envSpecs) > 0 {
				return usagef("--gateway puts no credential in the environment: drop --env")
			}
			var overrides []envOverride
			for _, raw := range envSpecs {
				o, err := parseEnvSpec(raw)
				if err != nil {
					return usagef("%v", err)
				}
				overrides = append(overrides, o)
			}
			return a.runWithCredentials(cmd.Context(), args[0], overrides, args[1:], !noMasking, viaGateway, aws)
		},
	}
	cmd.Flags().StringArrayVar(&envSpecs, "env", nil, "also set NAME to SERVICE's credential (repeatable)")
	cmd.Flags().StringVar(&aws.SessionFile, "session-file", "", "the agent's session file (agent create --session-out), for its AWS credentials")
	cmd.Flags().StringVar(&aws.Region, "region", "", "AWS region for AWS_REGION and AWS_DEFAULT_REGION (default: AWS_REGION, AWS_DEFAULT_REGION)")
	cmd.Flags().BoolVar(&aws.Server, "aws-server", false, "serve the AWS credentials from a loopback endpoint that refreshes them (AWS_CONTAINER_CREDENTIALS_FULL_URI) instead of static variables")
	cmd.Flags().BoolVar(&aws.Skip, "no-aws", false, "do not mint AWS credentials even if the agent's scope includes aws")
	cmd.Flags().BoolVar(&viaGateway, "gateway", false, "secretless: serve a loopback gateway that adds the keys to API calls, and give the command only <SERVICE>_BASE_URL variables and placeholder keys")
	cmd.Flags().BoolVar(&noMasking, "no-masking", false, "do not mask credentials in the command's output (and give it the terminal)")
	addRunSocketFlag(cmd, &socket)
	return cmd
}

// credentialEnv reads what `run` injects in one audited round trip (the
// agent's scope and every credential it holds within it), refusing an
// agent whose sessions were revoked. It also returns the injected values,
// for masking (the caller clears them). stop ends what the environment
// depends on (the AWS endpoint); it is non-nil when err is nil.
// secretless (run --gateway) injects no stored credential (the values
// still mask the command's output).
func (a *App) credentialEnv(ctx context.Context, m *Master, ref agentRef, overrides []envOverride, secretless bool, aws awsRunOptions) (_ []string, _ [][]byte, stop func(), err error) {
	agent := ref.Wallet
	got, err := m.Client.ReadCredentials(ctx, m.Session.Token, agent, nil)
	if err != nil {
		return nil, nil, nil, err
	}
	if !got.RevokedAt.IsZero() && agent != m.Session.Wallet {
		return nil, nil, nil, revokedError(ref, got.RevokedAt)
	}
	scope := got.Scope
	if scope != nil {
		sort.Strings(scope.Services)
	}
	var awsEnv []string
	var awsSecrets [][]byte
	stop = func() {}
	if scope != nil && scope.Allows(awsService) && !aws.Skip {
		if awsEnv, awsSecrets, stop, err = a.awsRunEnv(ctx, agent, aws); err != nil {
			return nil, nil, nil, err
		}
		defer func() {
			if err != nil {
				stop()
			}
		}()
	} else if aws.Server {
		return nil, nil, nil, usagef("--aws-server: the agent's scope does not include %q", awsService)
	}
	held := make([]string, 0, len(got.Values))
	for svc := range got.Values {
		held = append(held, svc)
	}
	sort.Strings(held)
	values := make([][]byte, 0, len(held))
	for _, svc := range held {
		values = append(values, got.Values[svc])
	}
	fail := func(err error) ([]string, [][]byte, func(), error) {
		for _, v := range values {
			clear(v)
		}
		return nil, nil, nil, err
	}
	auto := scope.Filter(held)
	if secretless {
		auto = nil
	}
	for _, o := range overrides {
		if !scope.Allows(o.Service) {
			return fail(fmt.Errorf("--env %s=%s: service %s is outside the agent's scope (%s)", o.Name, o.Service, o.Service, describeScope(scope)))
		}
		if _, ok := got.Values[o.Service]; !ok {
			return fail(fmt.Errorf("read credential for service %q: credential not found for agent=%s service=%s", o.Service, agent, o.Service))
		}
	}
	byService := make(map[string]string, len(held))
	for svc, v := range got.Values {
		byService[svc] = string(v)
	}
	set := map[string]string{}
	var names []string
	add := func(name, val string) {
		if _, dup := set[name]; !dup {
			names = append(names, name)
		}
		set[name] = val
	}
	for _, s := range auto {
		add(EnvNameFor(s), byService[s])
	}
	for _, o := range overrides {
		add(o.Name, byService[o.Service])
	}
	for _, kv := range awsEnv {
		k, v, _ := strings.Cut(kv, "=")
		add(k, v)
	}
	values = append(values, awsSecrets...)
	drop := map[string]bool{}
	for _, n := range strippedEnv {
		drop[n] = true
	}
	for n := range set {
		drop[n] = true
	}
	if awsEnv != nil {
		for _, n := range awsShadowing {
			drop[n] = true
		}
	}
	var env []string
	for _, kv := range os.Environ() {
		k, _, _ := strings.Cut(kv, "=")
		if !drop[k] {
			env = append(env, kv)
		}
	}
	for _, n := range names {
		env = append(env, n+"="+set[n])
	}
	a.notef("injecting %s", displayList(names))
	return env, values, stop, nil
}

func (a *App) runWithCredentials(ctx context.Context, agentArg string, overrides []envOverride, argv []string, masking, viaGateway bool, aws awsRunOptions) error {
	ctx = cmdContext(ctx)
	m, ref, err := a.withAgent(ctx, agentArg)
	if err != nil {
		return err
	}
	env, secrets, stop, err := a.credentialEnv(ctx, m, ref, overrides, viaGateway, aws)
	if err != nil {
		return err
	}
	defer stop()
	if viaGateway {
		gwEnv, stopGateway, err := a.gatewayRunEnv(ctx, m, ref, aws.SessionFile)
		if err != nil {
			return err
		}
		defer stopGateway()
		env = replaceEnv(env, gwEnv)
	}
	defer func() {
		for _, v := range secrets {
			clear(v)
		}
	}()
	if !masking {
		return a.execChild(argv, env, a.Out, a.Err)
	}
	stdout := mask.NewWriter(a.Out, secrets, mask.DefaultIdle)
	stderr := mask.NewWriter(a.Err, secrets, mask.DefaultIdle)
	err = a.execChild(argv, env, stdout, stderr)
	stdout.Close()
	stderr.Close()
	return err
}

// maskedWaitDelay is how long run, masking, still copies output after the
// command exits, from processes it left running with its stdout or stderr.
const maskedWaitDelay = 2 * time.Second

// execChild runs argv with env, forwarding signals, and turns its end into
// the CLI's exit status.
// stdout and stderr are the CLI's own (the child inherits them) or masking
// Writers (the child writes to pipes that exec copies into them; Wait
// returns once the pipes are drained).
func (a *App) execChild(argv, env []string, stdout, stderr io.Writer) error {
	path, err := exec.LookPath(argv[0])
	if err != nil {
		code := 127
		if errors.Is(err, exec.ErrNotFound) || errors.Is(err, os.ErrNotExist) {
			return &ExitError{Code: code, Err: fmt.Errorf("%s: command not found", argv[0])}
		}
		return &ExitError{Code: 126, Err: fmt.Errorf("%s: %v", argv[0], errors.Unwrap(err))}
	}
	c := &exec.Cmd{Path: path, Args: argv, Env: env, Stdout: stdout, Stderr: stderr}
	if a.In != nil {
		c.Stdin = a.In
	}
	if _, inherited := stdout.(*os.File); !inherited {
		// Output goes through pipes: a background process the command
		// left holding them must not keep run waiting after the command
		// exits (its later output is cut off).
		c.WaitDelay = maskedWaitDelay
	}
	// Catch the signals before the child exists, so none is lost between
	// Start and the forwarding loop.
	sigs := make(chan os.Signal, 16)
	signal.Notify(sigs, forwardedSignals...)
	defer signal.Stop(sigs)
	if err := c.Start(); err != nil {
		return &ExitError{Code: 126, Err: fmt.Errorf("start %s: %v", argv[0], errors.Unwrap(err))}
	}
	done := make(chan struct{})
	fwd := make(chan struct{})
	go func() {
		defer close(fwd)
		for {
			select {
			case s := <-sigs:
				c.Process.Signal(s)
			case <-done:
				return
			}
		}
	}()
	werr := c.Wait()
	close(done)
	<-fwd
	st := c.ProcessState
	if st == nil {
		return fmt.Errorf("wait for %s: %v", argv[0], werr)
	}
	code := st.ExitCode()
	if ws, ok := st.Sys().(syscall.WaitStatus); ok && ws.Signaled() {
		code = 128 + int(ws.Signal())
	}
	if code == 0 {
		return nil
	}
	return &ExitError{Code: code}
}
