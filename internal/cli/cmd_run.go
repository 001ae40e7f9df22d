package cli

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"os/signal"
	"slices"
	"sort"
	"strings"
	"syscall"
	"time"

	"github.com/spf13/cobra"

	"github.com/agentkeys/agentkeys/internal/agentkeys"
	"github.com/agentkeys/agentkeys/internal/backendclient"
	"github.com/agentkeys/agentkeys/internal/mask"
	"github.com/agentkeys/agentkeys/internal/secretref"
	"github.com/agentkeys/agentkeys/internal/services"
	"github.com/agentkeys/agentkeys/internal/textcheck"
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
	if !secretref.ValidEnvName(name) {
		return envOverride{}, fmt.Errorf("Invalid --env format %q: KEY must be letters, digits and '_', not starting with a digit", raw)
	}
	if err := agentkeys.ValidateService(svc); err != nil {
		return envOverride{}, fmt.Errorf("Invalid --env format %q: %v", raw, err)
	}
	return envOverride{Name: name, Service: svc}, nil
}

// strippedEnv are variables of the CLI's environment a child never sees.
var strippedEnv = []string{EnvAuthToken}

func (a *App) newRunCmd() *cobra.Command {
	var envSpecs []string
	var noMasking, viaGateway bool
	var aws awsRunOptions
	var socket string
	var refs refRunOptions
	cmd := &cobra.Command{
		Use:   "run (<agent> [--env NAME=SERVICE]... | --env-file FILE... | --socket PATH) -- <command> [args...]",
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
secret-free.

--only svc,svc limits the agent's services to those named (each must be
in the agent's scope and stored; AWS credentials only if "aws" is named).

--env-file FILE sets the variables of a dotenv file (NAME=value lines,
'#' comments, optional "export ", single or double quotes, no expansion).
A value agentkeys://<agent>/<service> (unquoted or double-quoted; the
agent is a name, an alias or a 0x wallet) is replaced by that agent's
credential, read through your session and audited like any read. With
env files the <agent> argument is optional. An unknown agent, a service
outside that agent's scope or a missing credential stops run before the
command starts, naming the reference. Reference values are masked. The
agent's own variables come first, then the files' (later wins), then
--env, then AWS.

--watch checks every --watch-interval whether a credential the command
was given changed (stored again, added within the agent's scope, or
removed) by polling a route that returns no value and writes no audit
row. On a change it reads the credentials again (audited) and restarts
the command (SIGTERM, then SIGKILL after 10 s); with --watch-signal SIG it
sends SIG instead (the running command keeps its environment: for
programs that reload from elsewhere, e.g. a file rewritten by inject).
If the agent is torn down or a referenced credential can no longer be
read, run stops the command and fails. When the command exits on its
own, run exits with its status.`,
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
			case dash == 0 && len(refs.EnvFiles) == 0:
				return usagef("run needs an <agent> before -- (or --env-file with agentkeys:// references)")
			case dash > 1:
				return usagef("run takes at most one <agent> before -- (got %d)", dash)
			case len(args) == dash:
				return usagef("no command after --")
			case dash == 0 && (len(envSpecs) > 0 || refs.Only != nil || aws.Server || aws.SessionFile != ""):
				return usagef("--env, --only, --aws-server and --session-file need an <agent> before --")
			}
			if err := refs.check(); err != nil {
				return err
			}
			if viaGateway && len(envSpecs) > 0 {
				return usagef("--gateway puts no credential in the environment: drop --env")
			}
			if viaGateway && (dash == 0 || refs.Watch) {
				return usagef("--gateway needs an <agent> before -- and does not combine with --watch")
			}
			var overrides []envOverride
			for _, raw := range envSpecs {
				o, err := parseEnvSpec(raw)
				if err != nil {
					return usagef("%v", err)
				}
				overrides = append(overrides, o)
			}
			return a.runWithCredentials(cmd.Context(), optionalArg(args[:dash]), overrides, args[dash:], !noMasking, viaGateway, aws, refs)
		},
	}
	cmd.Flags().StringArrayVar(&envSpecs, "env", nil, "also set NAME to SERVICE's credential (repeatable)")
	cmd.Flags().StringVar(&aws.SessionFile, "session-file", "", "the agent's session file (agent create --session-out), for its AWS credentials")
	cmd.Flags().StringVar(&aws.Region, "region", "", "AWS region for AWS_REGION and AWS_DEFAULT_REGION (default: AWS_REGION, AWS_DEFAULT_REGION)")
	cmd.Flags().BoolVar(&aws.Server, "aws-server", false, "serve the AWS credentials from a loopback endpoint that refreshes them (AWS_CONTAINER_CREDENTIALS_FULL_URI) instead of static variables")
	cmd.Flags().BoolVar(&aws.Skip, "no-aws", false, "do not mint AWS credentials even if the agent's scope includes aws")
	refs.addFlags(cmd)
	cmd.Flags().BoolVar(&viaGateway, "gateway", false, "secretless: serve a loopback gateway that adds the keys to API calls, and give the command only <SERVICE>_BASE_URL variables and placeholder keys")
	cmd.Flags().BoolVar(&noMasking, "no-masking", false, "do not mask credentials in the command's output (and give it the terminal)")
	addRunSocketFlag(cmd, &socket)
	return cmd
}

// readRunAgent loads the profile's master session and, for an <agent>
// argument, resolves it and reads its credentials in one audited round
// trip. An argument the backend does not know takes withAgent's path
// (which moves names from the former local file and says how to name an
// agent), after which the credentials are read by wallet (creds nil).
func (a *App) readRunAgent(ctx context.Context, arg string) (*Master, agentRef, *backendclient.Credentials, error) {
	if arg == "" {
		m, ref, err := a.withAgent(ctx, arg)
		return m, ref, nil, err
	}
	m, err := a.LoadMaster()
	if err != nil {
		return nil, agentRef{}, nil, err
	}
	id, err := agentkeys.ParseIdentity(arg)
	if err != nil {
		return nil, agentRef{}, nil, usagef("agent %q: %v", textcheck.Escape(arg), err)
	}
	got, w, name, err := m.Client.ReadAgentCredentials(ctx, m.Session.Token, id.Value, nil)
	if isNotFound(err) {
		ref, err := a.resolveAgent(ctx, m, arg)
		return m, ref, nil, err
	}
	if err != nil {
		return nil, agentRef{}, nil, err
	}
	return m, agentRef{Wallet: w, Name: name}, got, nil
}

// runEnv is what run gives a command: its environment, the values to
// mask (the caller clears them), what ends the environment's helpers (the
// AWS endpoint), and what --watch polls.
type runEnv struct {
	env     []string
	secrets [][]byte
	stop    func()
	watch   watchSet
}

// release stops the helpers and clears the values.
func (e *runEnv) release() {
	e.stop()
	for _, v := range e.secrets {
		clear(v)
	}
}

// credentialEnv reads what `run` injects: for the agent (if any), its scope
// and every credential it holds within it in one audited round trip
// (refusing an agent whose sessions were revoked; got, when not nil, is
// that read already done); the env files' references; the AWS credentials.
// Later sources win: the agent's <SERVICE>_API_KEY names, then the env
// files, then --env, then AWS. secretless (run --gateway) injects no
// stored credential of the agent's (the values still mask the output).
func (a *App) credentialEnv(ctx context.Context, m *Master, ref agentRef, agent agentkeys.Wallet, got *backendclient.Credentials, overrides []envOverride, secretless bool, aws awsRunOptions, refs refRunOptions, files []fileVar) (_ *runEnv, err error) {
	re := &runEnv{stop: func() {}, watch: watchSet{}}
	if got != nil {
		for _, v := range got.Values {
			re.secrets = append(re.secrets, v)
		}
	}
	defer func() {
		if err != nil {
			re.release()
		}
	}()
	fileVars, fileSecrets, fileWatch, err := a.fileEnv(ctx, m, files)
	if err != nil {
		return nil, err
	}
	re.secrets = append(re.secrets, fileSecrets...)
	re.watch.merge(fileWatch)

	set := map[string]string{}
	var names []string
	add := func(name, val string) {
		if _, dup := set[name]; !dup {
			names = append(names, name)
		}
		set[name] = val
	}
	var awsEnv []string
	if agent != "" {
		if got == nil {
			if got, err = m.Client.ReadCredentials(ctx, m.Session.Token, agent, nil); err != nil {
				return nil, err
			}
			for _, v := range got.Values {
				re.secrets = append(re.secrets, v)
			}
		}
		if !got.RevokedAt.IsZero() && agent != m.Session.Wallet {
			return nil, revokedError(ref, got.RevokedAt)
		}
		scope := got.Scope
		if scope != nil {
			sort.Strings(scope.Services)
		}
		held := make([]string, 0, len(got.Values))
		for svc := range got.Values {
			held = append(held, svc)
		}
		sort.Strings(held)
		auto, err := onlyServices(refs.Only, scope, held)
		if err != nil {
			return nil, err
		}
		if secretless {
			auto = nil
		}
		wantAWS := refs.Only == nil || slices.Contains(refs.Only, awsService)
		if scope != nil && scope.Allows(awsService) && !aws.Skip && wantAWS {
			var awsSecrets [][]byte
			if awsEnv, awsSecrets, re.stop, err = a.awsRunEnv(ctx, agent, aws); err != nil {
				re.stop = func() {}
				return nil, err
			}
			re.secrets = append(re.secrets, awsSecrets...)
		} else if aws.Server {
			return nil, usagef("--aws-server: the agent's scope does not include %q", awsService)
		}
		need := map[string]bool{}
		for _, s := range auto {
			need[s] = true
		}
		for _, o := range overrides {
			if !scope.Allows(o.Service) {
				return nil, fmt.Errorf("--env %s=%s: service %s is outside the agent's scope (%s)", o.Name, o.Service, o.Service, describeScope(scope))
			}
			if _, ok := got.Values[o.Service]; !ok {
				return nil, fmt.Errorf("read credential for service %q: credential not found for agent=%s service=%s", o.Service, agent, o.Service)
			}
			need[o.Service] = true
		}
		svcs := make([]string, 0, len(need))
		for s := range need {
			svcs = append(svcs, s)
		}
		sort.Strings(svcs)
		byService := map[string]string{}
		for _, s := range svcs {
			byService[s] = string(got.Values[s])
		}
		re.watch.watchAgent(agent, scope, refs.Only, svcs)
		for _, s := range auto {
			add(services.EnvNameFor(s), byService[s])
		}
		for _, v := range fileVars {
			add(v.name, v.value)
		}
		for _, o := range overrides {
			add(o.Name, byService[o.Service])
		}
	} else {
		for _, v := range fileVars {
			add(v.name, v.value)
		}
	}
	for _, kv := range awsEnv {
		k, v, _ := strings.Cut(kv, "=")
		add(k, v)
	}
	kvs := make([]string, len(names))
	for i, n := range names {
		kvs[i] = n + "=" + set[n]
	}
	re.env = secretref.ReplaceEnv(os.Environ(), func(name string) bool {
		return slices.Contains(strippedEnv, name) || awsEnv != nil && slices.Contains(awsShadowing, name)
	}, kvs)
	a.notef("injecting %s", displayList(names))
	return re, nil
}

func (a *App) runWithCredentials(ctx context.Context, agentArg string, overrides []envOverride, argv []string, masking, viaGateway bool, aws awsRunOptions, refs refRunOptions) error {
	ctx = cmdContext(ctx)
	files, err := loadEnvFiles(refs.EnvFiles)
	if err != nil {
		return err
	}
	m, ref, first, err := a.readRunAgent(ctx, agentArg)
	if err != nil {
		return err
	}
	agent := ref.Wallet
	if agentArg == "" {
		agent = "" // env files only
	}
	// The first build uses what readRunAgent read; --watch rebuilds read
	// again by wallet.
	build := func(ctx context.Context) (*runEnv, error) {
		got := first
		first = nil
		return a.credentialEnv(ctx, m, ref, agent, got, overrides, viaGateway, aws, refs, files)
	}
	re, err := build(ctx)
	if err != nil {
		return err
	}
	if viaGateway {
		gwEnv, stopGateway, err := a.gatewayRunEnv(ctx, m, ref, aws.SessionFile)
		if err != nil {
			re.release()
			return err
		}
		defer stopGateway()
		re.env = secretref.ReplaceEnv(re.env, nil, gwEnv)
	}
	if refs.Watch {
		return a.runWatching(ctx, m, build, re, argv, masking, refs)
	}
	defer re.release()
	if !masking {
		return a.execChild(argv, re.env, a.Out, a.Err)
	}
	stdout := mask.NewWriter(a.Out, re.secrets, mask.DefaultIdle)
	stderr := mask.NewWriter(a.Err, re.secrets, mask.DefaultIdle)
	err = a.execChild(argv, re.env, stdout, stderr)
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
	// Catch the signals before the child exists, so none is lost between
	// Start and the forwarding loop.
	sigs := make(chan os.Signal, 16)
	signal.Notify(sigs, forwardedSignals...)
	defer signal.Stop(sigs)
	c, err := a.startChild(argv, env, stdout, stderr)
	if err != nil {
		return err
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
	return childExit(argv[0], c, werr)
}

// startChild starts argv with env (126/127 exit errors when it cannot).
func (a *App) startChild(argv, env []string, stdout, stderr io.Writer) (*exec.Cmd, error) {
	path, err := exec.LookPath(argv[0])
	if err != nil {
		code := 127
		if errors.Is(err, exec.ErrNotFound) || errors.Is(err, os.ErrNotExist) {
			return nil, &ExitError{Code: code, Err: fmt.Errorf("%s: command not found", argv[0])}
		}
		return nil, &ExitError{Code: 126, Err: fmt.Errorf("%s: %v", argv[0], errors.Unwrap(err))}
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
	if err := c.Start(); err != nil {
		return nil, &ExitError{Code: 126, Err: fmt.Errorf("start %s: %v", argv[0], errors.Unwrap(err))}
	}
	return c, nil
}

// childExit turns a waited-for child's end into the CLI's exit status
// (128+N for death by signal N).
func childExit(name string, c *exec.Cmd, werr error) error {
	st := c.ProcessState
	if st == nil {
		return fmt.Errorf("wait for %s: %v", name, werr)
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
