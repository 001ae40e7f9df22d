package cli

import (
	"context"
	"errors"
	"fmt"
	"net/url"
	"os"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/agentkeys/agentkeys/internal/agentkeys"
	"github.com/agentkeys/agentkeys/internal/backendclient"
	"github.com/agentkeys/agentkeys/internal/envflag"
	"github.com/agentkeys/agentkeys/internal/keychain"
)

func (a *App) newInitCmd() *cobra.Command {
	var force bool
	var issuer, clientID string
	cmd := &cobra.Command{
		Use:   "init",
		Short: "Log in as a master and keep the session in the profile",
		Long: `Log in as a master: the backend maps an identity assertion to a master wallet
(the same identity always reaches the same wallet) and issues a session, which
is kept in the OS keychain or in $XDG_CONFIG_HOME/agentkeys/<profile>/session.json.

The identity assertion is read from ` + EnvAuthToken + `, or from a hidden prompt
on a terminal; never from the command line. With --oidc-issuer (for a backend
started with --login-oidc-issuer) init instead runs the OAuth device flow
(RFC 8628): it shows a code and a URL, and sends the provider's ID token.
Running init again with the same identity keeps the existing session (so the
sessions of its agents live on).

With --broker-url (or AGENTKEYS_BROKER_URL) init binds the profile to that
broker: later commands send broker tokens of this profile only there, and
refuse a different --broker-url or AGENTKEYS_BROKER_URL. Re-run init with
another --broker-url to change it. The broker never receives the session
itself, only short-lived tokens the backend derives from it for the broker.`,
		Args: exactArgs(0, "none"),
		RunE: func(cmd *cobra.Command, _ []string) error {
			if (issuer == "") != (clientID == "") {
				return usagef("give --oidc-issuer and --oidc-client-id together")
			}
			if issuer != "" {
				if u, err := url.Parse(issuer); err != nil || (u.Scheme != "https" && u.Scheme != "http") || u.Host == "" {
					return usagef("--oidc-issuer must be an absolute URL")
				}
			}
			return a.runInit(cmdContext(cmd.Context()), initInput{Force: force, Issuer: issuer, ClientID: clientID})
		},
	}
	cmd.Flags().BoolVar(&force, "force", false, "replace a live session of another master in this profile")
	b := envflag.New(cmd.Flags(), nil)
	b.String(&issuer, "oidc-issuer", EnvLoginIssuer, "", "log in through this OpenID provider with the device flow")
	b.String(&clientID, "oidc-client-id", EnvLoginClientID, "", "client id registered with the provider")
	return cmd
}

// initInput is `agentkeys init` once its flags are parsed.
type initInput struct {
	Force            bool   // replace a live session of another master
	Issuer, ClientID string // log in with the OAuth device flow of this provider
}

func (a *App) readIdentity(ctx context.Context, in initInput) (string, error) {
	if in.Issuer != "" {
		return deviceLogin(ctx, a.httpClient(), in.Issuer, in.ClientID, a.Err)
	}
	if v := strings.TrimSpace(os.Getenv(EnvAuthToken)); v != "" {
		return v, nil
	}
	if !a.stdinIsTerminal() {
		return "", withHint(errors.New("no identity assertion: "+EnvAuthToken+" is not set and stdin is not a terminal"),
			"export %s=<identity assertion> (it is never read from the command line)", EnvAuthToken)
	}
	fmt.Fprint(a.Err, "Identity assertion (input hidden): ")
	b, err := a.readPassword(int(a.In.Fd()))
	fmt.Fprintln(a.Err)
	if err != nil {
		return "", fmt.Errorf("read identity assertion: %w", err)
	}
	defer clear(b)
	v := strings.TrimSpace(string(b))
	if v == "" {
		return "", errors.New("empty identity assertion")
	}
	return v, nil
}

type initResult struct {
	Profile      string           `json:"profile"`
	Wallet       agentkeys.Wallet `json:"wallet"`
	Backend      string           `json:"backend"`
	Broker       string           `json:"broker,omitempty"`
	ExpiresAt    string           `json:"expires_at,omitempty"`
	SessionStore string           `json:"session_store,omitempty"`
	Reused       bool             `json:"reused"`
}

// storedSessionLive reports whether the profile's stored session (old, or
// the error loading it) is a live session of the backend base, saying on
// stderr why one that is not will be replaced.
func (a *App) storedSessionLive(ctx context.Context, c *backendclient.Client, base string, old keychain.Session, oldErr error) (bool, error) {
	switch {
	case oldErr == nil && old.Backend == base:
		_, verr := c.Validate(ctx, old.Token)
		switch {
		case verr == nil:
			return true, nil
		case errors.Is(verr, backendclient.ErrUnauthorized):
			a.notef("the stored session of profile %q is no longer valid; replacing it", a.Profile)
		default:
			return false, verr
		}
	case oldErr == nil:
		fmt.Fprintf(a.Err, "agentkeys: replacing the session of profile %q issued by %s\n", a.Profile, old.Backend)
	case !errors.Is(oldErr, keychain.ErrNoSession):
		fmt.Fprintf(a.Err, "agentkeys: warning: the stored session is unreadable and will be replaced: %v\n", oldErr)
	}
	return false, nil
}

// runInit logs the master in and stores the session in the profile.
func (a *App) runInit(ctx context.Context, in initInput) error {
	broker, err := a.explicitBroker()
	if err != nil {
		return err
	}
	identity, err := a.readIdentity(ctx, in)
	if err != nil {
		return err
	}
	st, err := a.Store()
	if err != nil {
		return err
	}
	old, oldErr := st.Load(a.Profile)
	// The backend: --backend / the environment, else the one of the stored
	// session, else the default.
	base := a.explicitBackend()
	if base == "" && oldErr == nil {
		base = old.Backend
	}
	if base == "" {
		base = DefaultBackendURL
	}
	c, err := a.newClient(base)
	if err != nil {
		return err
	}
	oldLive, err := a.storedSessionLive(ctx, c, base, old, oldErr)
	if err != nil {
		return err
	}

	sess, err := c.CreateSession(ctx, identity)
	if errors.Is(err, backendclient.ErrUnauthorized) {
		return withHint(err, "the backend refused the identity assertion; check %s", EnvAuthToken)
	}
	if err != nil {
		return err
	}
	res := initResult{Profile: a.Profile, Wallet: sess.Wallet, Backend: base}
	if oldLive {
		if old.Wallet == sess.Wallet {
			// Same identity: keep the old session (agents minted from it
			// stay alive) and discard the one just issued.
			if _, err := c.RevokeSession(ctx, sess.Token, sess.Token); err != nil {
				a.notef("could not discard the duplicate session: %v", err)
			}
			res.Reused = true
			if !old.Expiry().IsZero() {
				res.ExpiresAt = old.Expiry().UTC().Format(time.RFC3339)
			}
			if broker != "" && broker != old.Broker {
				old.Broker = broker
				if _, err := st.Save(a.Profile, old); err != nil {
					return fmt.Errorf("record the broker: %w", err)
				}
				fmt.Fprintf(a.Err, "agentkeys: profile %q is now bound to broker %s\n", a.Profile, broker)
			}
			res.Broker = old.Broker
			if a.JSON {
				return a.printJSON(res)
			}
			a.printf("Initialized. Wallet: %s (existing session kept)\n", sess.Wallet)
			return nil
		}
		if !in.Force {
			c.RevokeSession(ctx, sess.Token, sess.Token) // best effort
			return withHint(fmt.Errorf("profile %q already holds a live session of master %s; this identity is master %s", a.Profile, old.Wallet, sess.Wallet),
				"use --profile NAME for a second master, or --force to replace the session in this profile")
		}
	}
	// The broker: --broker-url / the environment, else the one the replaced
	// session of this backend was bound to.
	if broker == "" && oldErr == nil && old.Backend == base {
		broker = old.Broker
	}
	ks := keychain.Session{Token: sess.Token, Wallet: sess.Wallet, Backend: base, Broker: broker}
	res.Broker = broker
	if !sess.ExpiresAt.IsZero() && sess.ExpiresAt.Unix() > 0 {
		ks.ExpiresAt = sess.ExpiresAt.Unix()
		res.ExpiresAt = sess.ExpiresAt.UTC().Format(time.RFC3339)
	}
	where, err := st.Save(a.Profile, ks)
	if err != nil {
		c.RevokeSession(ctx, sess.Token, sess.Token) // do not leave a live orphan
		return fmt.Errorf("save session: %w", err)
	}
	res.SessionStore = where
	a.notef("session of profile %q saved in %s", a.Profile, where)
	if a.JSON {
		return a.printJSON(res)
	}
	a.printf("Initialized. Wallet: %s\n", sess.Wallet)
	return nil
}

func (a *App) newWhoamiCmd() *cobra.Command {
	return &cobra.Command{
		Use:   "whoami",
		Short: "Check the profile's session with the backend and show who it is",
		Args:  exactArgs(0, "none"),
		RunE: func(cmd *cobra.Command, _ []string) error {
			m, err := a.LoadMaster()
			if err != nil {
				return err
			}
			id, err := m.Client.Validate(cmdContext(cmd.Context()), m.Session.Token)
			if err != nil {
				return err
			}
			out := struct {
				Profile   string           `json:"profile"`
				Wallet    agentkeys.Wallet `json:"wallet"`
				Kind      string           `json:"kind"`
				Parent    agentkeys.Wallet `json:"parent,omitempty"`
				Scope     *agentkeys.Scope `json:"scope"`
				ExpiresAt string           `json:"expires_at,omitempty"`
				Backend   string           `json:"backend"`
				Broker    string           `json:"broker,omitempty"`
			}{a.Profile, id.Wallet, id.Kind, id.Parent, id.Scope, "", m.Session.Backend, m.Session.Broker}
			if id.ExpiresAt > 0 {
				out.ExpiresAt = time.Unix(id.ExpiresAt, 0).UTC().Format(time.RFC3339)
			}
			if a.JSON {
				return a.printJSON(out)
			}
			a.printf("profile:  %s\n", out.Profile)
			a.printf("wallet:   %s\n", out.Wallet)
			a.printf("kind:     %s\n", out.Kind)
			if out.Parent != "" {
				a.printf("parent:   %s\n", out.Parent)
			}
			a.printf("scope:    %s\n", describeScope(id.Scope))
			if out.ExpiresAt != "" {
				a.printf("expires:  %s\n", out.ExpiresAt)
			}
			a.printf("backend:  %s\n", out.Backend)
			if out.Broker != "" {
				a.printf("broker:   %s\n", out.Broker)
			}
			return nil
		},
	}
}

func describeScope(s *agentkeys.Scope) string {
	if s == nil {
		return "unrestricted"
	}
	d := "services: " + displayList(s.Services)
	if s.ReadOnly {
		d += " (read-only)"
	}
	return d
}
