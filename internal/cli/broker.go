package cli

import (
	"errors"
	"fmt"

	"github.com/agentkeys/agentkeys/internal/backendclient"
	"github.com/agentkeys/agentkeys/internal/brokerclient"
	"github.com/agentkeys/agentkeys/internal/keychain"
)

// explicitBroker returns --broker-url or AGENTKEYS_BROKER_URL, normalised
// ("" if neither is set).
func (a *App) explicitBroker() (string, error) {
	if a.BrokerURL == "" {
		return "", nil
	}
	u, err := keychain.NormalizeURL(a.BrokerURL, "broker")
	if err != nil {
		return "", usagef("--broker-url / %s: %v", EnvBrokerURL, err)
	}
	return u, nil
}

// bindBroker returns the broker a session's tokens may go to. A session
// bound to a broker (by init --broker-url, or its first use) only ever
// talks to that one: a different --broker-url or AGENTKEYS_BROKER_URL is
// refused, so a stray environment variable cannot send the profile's broker
// tokens to another listener. A profile session with no broker yet is bound
// to the explicit one on first use (profile ""  means a session file,
// which is not rewritten).
func (a *App) bindBroker(sess *keychain.Session, profile string) (string, error) {
	explicit, err := a.explicitBroker()
	if err != nil {
		return "", err
	}
	switch {
	case sess.Broker != "" && explicit != "" && explicit != sess.Broker:
		what := fmt.Sprintf("profile %q is", profile)
		how := fmt.Sprintf("to bind it to %s, log in again with `agentkeys init --broker-url %s`; or use another --profile, or unset %s", explicit, explicit, EnvBrokerURL)
		if profile == "" {
			what = "the session file is"
			how = fmt.Sprintf("edit the file's \"broker\" field, or unset %s", EnvBrokerURL)
		}
		return "", withHint(fmt.Errorf("%s bound to broker %s, but the broker is set to %s; refusing to send its tokens elsewhere", what, sess.Broker, explicit), "%s", how)
	case sess.Broker != "":
		return sess.Broker, nil
	case explicit == "":
		return "", withHint(errors.New("no broker configured"), "pass --broker-url or set %s (agentkeys dev prints it); the profile remembers it", EnvBrokerURL)
	}
	if profile != "" {
		st, err := a.Store()
		if err != nil {
			return "", err
		}
		bound := *sess
		bound.Broker = explicit
		if _, err := st.Save(profile, bound); err != nil {
			return "", fmt.Errorf("record the broker in profile %q: %w", profile, err)
		}
		*sess = bound
		fmt.Fprintf(a.Err, "agentkeys: profile %q is now bound to broker %s (change it with `agentkeys init --broker-url URL`)\n", profile, explicit)
	}
	return explicit, nil
}

// brokerFor returns a client of the session's broker that sends it only
// tokens derived from the session by its backend, c.
func (a *App) brokerFor(sess *keychain.Session, profile string, c *backendclient.Client) (*brokerclient.Client, error) {
	u, err := a.bindBroker(sess, profile)
	if err != nil {
		return nil, err
	}
	b, err := brokerclient.New(u, a.httpClient(), c)
	if err != nil {
		return nil, usagef("%v", err)
	}
	return b, nil
}
