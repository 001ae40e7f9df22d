package daemon

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"os"
	"sort"
	"strings"
	"time"

	"github.com/agentkeys/agentkeys/internal/backendclient"
	"github.com/agentkeys/agentkeys/internal/keychain"
)

// SessionIDPrefix starts the store id of every daemon session.
const SessionIDPrefix = "daemon-"

// SessionOptions say where the daemon's session comes from.
type SessionOptions struct {
	BackendURL string // --backend; may be empty when a stored session names it
	// BrokerURL is --broker-url: recorded in a session this daemon pairs;
	// a stored session bound to another broker is refused.
	BrokerURL   string
	SessionFile string // --session-file: read if it exists, written after pairing
	SessionID   string // --session-id
	Store       *keychain.Store
	Pair        bool   // --pair: pair even if a session is stored
	Recover     string // --recover
	Parent      string
	// PairingKeyID pins the backend's approval-signing key.
	PairingKeyID string
	Services     []string
	ReadOnly     bool
	PairTimeout  time.Duration
	Prompt       io.Writer // stderr
	Log          *slog.Logger
	HTTP         backendclient.Option // optional (tests)
}

func (o *SessionOptions) backend(url string) (*backendclient.Client, error) {
	if url == "" {
		return nil, errors.New("no backend: pass --backend URL or set AGENTKEYS_BACKEND_URL")
	}
	var opts []backendclient.Option
	if o.HTTP != nil {
		opts = append(opts, o.HTTP)
	}
	return backendclient.New(url, opts...)
}

// AcquireSession returns the daemon's session: by recovery (--recover) or
// pairing (--pair) when asked; else the --session-file if it exists; else
// the stored session named by --session-id; else the one stored daemon
// session; else it pairs. A stored session is validated once against the
// backend; a revoked or expired one is reported and not replaced unless
// --pair or --recover asks for that.
func AcquireSession(ctx context.Context, o SessionOptions) (Session, *backendclient.Client, error) {
	if o.Log == nil {
		o.Log = slog.New(slog.DiscardHandler)
	}
	if o.Prompt == nil {
		o.Prompt = io.Discard
	}
	if o.Recover != "" || o.Pair {
		return pairAndStore(ctx, o)
	}
	if o.SessionFile != "" {
		ks, err := keychain.ReadSessionFile(o.SessionFile)
		switch {
		case err == nil:
			return resume(ctx, o, ks, o.SessionID, "session file "+o.SessionFile)
		case errors.Is(err, fs.ErrNotExist):
			o.Log.Info("session file does not exist yet; pairing", "path", o.SessionFile)
			return pairAndStore(ctx, o)
		default:
			return Session{}, nil, err
		}
	}
	if o.Store == nil {
		return pairAndStore(ctx, o)
	}
	if o.SessionID != "" {
		ks, err := o.Store.Load(o.SessionID)
		switch {
		case err == nil:
			return resume(ctx, o, ks, o.SessionID, "stored session "+o.SessionID)
		case errors.Is(err, keychain.ErrNoSession):
			o.Log.Info("no stored session under this id; pairing", "session_id", o.SessionID)
			return pairAndStore(ctx, o)
		default:
			return Session{}, nil, err
		}
	}
	ids, err := storedDaemonSessions(o.Store)
	if err != nil {
		return Session{}, nil, err
	}
	var found []string
	var sessions []keychain.Session
	for _, id := range ids {
		ks, err := o.Store.Load(id)
		if err != nil {
			if !errors.Is(err, keychain.ErrNoSession) {
				o.Log.Warn("ignoring an unreadable stored daemon session", "session_id", id, "err", err.Error())
			}
			continue
		}
		found, sessions = append(found, id), append(sessions, ks)
	}
	switch len(found) {
	case 0:
		return pairAndStore(ctx, o)
	case 1:
		return resume(ctx, o, sessions[0], found[0], "stored session "+found[0])
	}
	return Session{}, nil, fmt.Errorf("%d stored daemon sessions found (%s): pass --session-id NAME to pick one", len(found), strings.Join(found, ", "))
}

// storedDaemonSessions lists the daemon-* profiles of the store. Each
// profile has a directory even when its session lives in the OS keychain
// (pairAndStore creates it), so this works in every store mode.
func storedDaemonSessions(st *keychain.Store) ([]string, error) {
	entries, err := os.ReadDir(st.Dir)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("list stored sessions: %w", err)
	}
	var ids []string
	for _, e := range entries {
		if e.IsDir() && strings.HasPrefix(e.Name(), SessionIDPrefix) && keychain.ValidateProfile(e.Name()) == nil {
			ids = append(ids, e.Name())
		}
	}
	sort.Strings(ids)
	return ids, nil
}

func resume(ctx context.Context, o SessionOptions, ks keychain.Session, id, where string) (Session, *backendclient.Client, error) {
	url := ks.Backend
	if o.BackendURL != "" && strings.TrimRight(o.BackendURL, "/") != ks.Backend {
		return Session{}, nil, fmt.Errorf("%s was issued by %s, not by --backend %s; pass the matching --backend or pair again with --pair", where, ks.Backend, o.BackendURL)
	}
	broker, err := BindBroker(o.BrokerURL, ks.Broker, where)
	if err != nil {
		return Session{}, nil, err
	}
	bc, err := o.backend(url)
	if err != nil {
		return Session{}, nil, err
	}
	if id == "" {
		id = SessionIDPrefix + string(ks.Wallet)
	}
	s := Session{Token: ks.Token, Wallet: ks.Wallet, Backend: ks.Backend, Broker: broker, ExpiresAt: ks.Expiry(), StoreID: id}
	vctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	ident, err := bc.Validate(vctx, ks.Token)
	switch {
	case err == nil:
		if ident.Wallet != ks.Wallet {
			return Session{}, nil, fmt.Errorf("%s names wallet %s but the backend says the token belongs to %s", where, ks.Wallet, ident.Wallet)
		}
		s.Scope = ident.Scope
		if ident.ExpiresAt > 0 {
			s.ExpiresAt = time.Unix(ident.ExpiresAt, 0)
		}
		o.Log.Info("resumed the stored session", "from", where, "wallet", s.Wallet)
		return s, bc, nil
	case errors.Is(err, backendclient.ErrUnauthorized), errors.Is(err, backendclient.ErrExpired):
		return Session{}, nil, fmt.Errorf("%s (wallet %s) is no longer valid: it was revoked or has expired; start the daemon with --pair to pair again or --recover %s to recover this agent", where, ks.Wallet, ks.Wallet)
	case retryable(err):
		o.Log.Warn("could not validate the stored session (backend unreachable); serving it unvalidated", "from", where, "err", err.Error())
		return s, bc, nil
	default:
		return Session{}, nil, fmt.Errorf("validate %s: %w", where, err)
	}
}

func pairAndStore(ctx context.Context, o SessionOptions) (Session, *backendclient.Client, error) {
	broker, err := BindBroker(o.BrokerURL, "", "")
	if err != nil {
		return Session{}, nil, err
	}
	bc, err := o.backend(o.BackendURL)
	if err != nil {
		return Session{}, nil, err
	}
	got, err := Pair(ctx, PairOptions{Backend: bc, Recover: o.Recover, Parent: o.Parent, PairingKeyID: o.PairingKeyID, Services: o.Services, ReadOnly: o.ReadOnly,
		Timeout: o.PairTimeout, Prompt: o.Prompt, Log: o.Log})
	if err != nil {
		return Session{}, nil, err
	}
	ks := keychain.Session{Token: got.Token, Wallet: got.Wallet, Backend: bc.BaseURL(), Broker: broker}
	if !got.ExpiresAt.IsZero() && got.ExpiresAt.Unix() > 0 {
		ks.ExpiresAt = got.ExpiresAt.Unix()
	}
	id := o.SessionID
	if id == "" {
		id = SessionIDPrefix + string(got.Wallet)
	}
	s := Session{Token: got.Token, Wallet: got.Wallet, Backend: ks.Backend, Broker: broker, ExpiresAt: ks.Expiry(), StoreID: id}
	var where []string
	if o.Store != nil {
		if _, err := o.Store.ProfileDir(id); err != nil {
			return Session{}, nil, fmt.Errorf("store the new session: %w", err)
		}
		w, err := o.Store.Save(id, ks)
		if err != nil {
			return Session{}, nil, fmt.Errorf("store the new session: %w", err)
		}
		where = append(where, w)
	}
	if o.SessionFile != "" {
		if err := keychain.WriteSessionFile(o.SessionFile, ks); err != nil {
			return Session{}, nil, fmt.Errorf("write --session-file: %w", err)
		}
		where = append(where, o.SessionFile)
	}
	vctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	if ident, err := bc.Validate(vctx, s.Token); err == nil {
		s.Scope = ident.Scope
	}
	verb := "Paired"
	if o.Recover != "" {
		verb = "Recovered"
	}
	fmt.Fprintf(o.Prompt, "%s: agent wallet %s; session stored in %s\n", verb, s.Wallet, strings.Join(where, " and "))
	return s, bc, nil
}

// loadForCLI finds a stored session for one-shot commands (aws
// credential-process): --session-file, else --session-id, else the single
// stored daemon session.
func loadForCLI(sessionFile, sessionID string, st *keychain.Store) (keychain.Session, error) {
	if sessionFile != "" {
		return keychain.ReadSessionFile(sessionFile)
	}
	if st == nil {
		return keychain.Session{}, errors.New("no session: pass --session-file or --session-id")
	}
	if sessionID != "" {
		return st.Load(sessionID)
	}
	ids, err := storedDaemonSessions(st)
	if err != nil {
		return keychain.Session{}, err
	}
	var found []keychain.Session
	var names []string
	for _, id := range ids {
		if ks, err := st.Load(id); err == nil {
			found, names = append(found, ks), append(names, id)
		}
	}
	switch len(found) {
	case 0:
		return keychain.Session{}, errors.New("no stored daemon session: pair the daemon first, or pass --session-file")
	case 1:
		return found[0], nil
	}
	return keychain.Session{}, fmt.Errorf("%d stored daemon sessions (%s): pass --session-id", len(found), strings.Join(names, ", "))
}

// BindBroker returns the broker a stored session's tokens may go to: the
// one the session is bound to ("broker" in its file), else the configured
// one (--broker-url / AGENTKEYS_BROKER_URL). A configured broker that
// differs from the session's is refused, so a stray environment variable
// cannot redirect the daemon's broker tokens to another listener.
func BindBroker(configured, bound, where string) (string, error) {
	var err error
	if configured != "" {
		if configured, err = keychain.NormalizeURL(configured, "broker"); err != nil {
			return "", fmt.Errorf("--broker-url: %w", err)
		}
	}
	switch {
	case bound != "" && configured != "" && configured != bound:
		return "", fmt.Errorf("%s is bound to broker %s, not to --broker-url %s; refusing to send its tokens elsewhere (pass the matching --broker-url, leave it unset, or pair again with --pair)", where, bound, configured)
	case bound != "":
		return bound, nil
	}
	return configured, nil
}
