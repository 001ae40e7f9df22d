package daemon

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	mrand "math/rand/v2"
	"time"

	"github.com/agentkeys/agentkeys/internal/agentkeys"
	"github.com/agentkeys/agentkeys/internal/authreq"
	"github.com/agentkeys/agentkeys/internal/backendclient"
	"github.com/agentkeys/agentkeys/internal/jsonhttp"
)

// PairReason says why pairing or recovery ended without a session.
type PairReason string

// Pair reasons and the daemon's exit status for each (PairError.ExitCode).
const (
	PairDenied     PairReason = "denied"     // the master denied the request: 3
	PairLocked     PairReason = "locked"     // too many wrong OTPs: 4
	PairExpired    PairReason = "expired"    // the code expired before approval: 5
	PairTimeout    PairReason = "timeout"    // no approval within --pair-timeout: 5
	PairUnverified PairReason = "unverified" // the approval signature did not verify: 1
	PairFailed     PairReason = "failed"     // anything else: 1
)

// PairError is a pairing/recovery failure the daemon reports and exits on.
type PairError struct {
	Reason  PairReason
	Message string
}

func (e *PairError) Error() string { return e.Message }

// ExitCode is the daemon's exit status for the failure: 3 denied, 4
// locked, 5 expired or timed out, 1 otherwise.
func (e *PairError) ExitCode() int {
	switch e.Reason {
	case PairDenied:
		return 3
	case PairLocked:
		return 4
	case PairExpired, PairTimeout:
		return 5
	}
	return 1
}

// resolveParent turns --parent into the master wallet the request is bound
// to.
func resolveParent(ctx context.Context, bc *backendclient.Client, parent string) (agentkeys.Wallet, error) {
	if parent == "" {
		return "", nil
	}
	id, err := agentkeys.ParseIdentity(parent)
	if err != nil {
		return "", fmt.Errorf("--parent %q: %w", parent, err)
	}
	if id.Kind == agentkeys.KindWallet {
		return agentkeys.Wallet(id.Value), nil
	}
	r, err := bc.ResolveIdentityLink(ctx, string(id.Kind), id.Value)
	if err != nil {
		return "", fmt.Errorf("could not resolve --parent %q (%s): %w", parent, id.Kind, err)
	}
	if !r.Verified && id.Kind != agentkeys.KindAlias {
		return "", fmt.Errorf("--parent %q is an unverified %s link (anyone can claim one first), so the request is not bound to it: give the master's wallet address (agentkeys whoami) or an alias instead", parent, id.Kind)
	}
	return r.Wallet, nil
}

// PairOptions drive one pairing or recovery.
type PairOptions struct {
	Backend *backendclient.Client
	// Recover names the agent to recover (alias, e-mail, ENS or wallet);
	// empty means Pair.
	Recover string
	Parent  string
	// PairingKeyID pins the backend's approval-signing key (its RFC 7638
	// thumbprint); empty trusts what the backend publishes.
	PairingKeyID string
	Services     []string
	ReadOnly     bool
	Timeout      time.Duration
	// Prompt receives the single "Pair code: … OTP: …" (or "Recovery
	// code: …") line and a hint; it is the daemon's stderr, never stdout.
	Prompt io.Writer
	Log    *slog.Logger
	// Backoff bounds for transport errors while awaiting (defaults 250 ms
	// and 10 s).
	MinBackoff, MaxBackoff time.Duration
}

// Pair opens a Pair (or Recover) request, shows the code and the OTP, and
// long-polls until the master approves, denies, the request locks or
// expires, or the timeout passes. It returns the new session.
func Pair(ctx context.Context, o PairOptions) (*backendclient.Session, error) {
	if o.Log == nil {
		o.Log = slog.New(slog.DiscardHandler)
	}
	if o.Timeout <= 0 {
		o.Timeout = 5 * time.Minute
	}
	if o.MinBackoff <= 0 {
		o.MinBackoff = 250 * time.Millisecond
	}
	if o.MaxBackoff <= 0 {
		o.MaxBackoff = 10 * time.Second
	}
	ctx, cancel := context.WithTimeout(ctx, o.Timeout)
	defer cancel()
	noun, what := "Pair", "pair"
	if o.Recover != "" {
		noun, what = "Recovery", "recovery"
	}

	// One X25519 key per pairing: its public half is both the request's
	// child key and the box key the backend seals the session to, so only
	// this process can open what the master approved.
	boxKey, err := authreq.NewBoxKey()
	if err != nil {
		return nil, err
	}
	pub := boxKey.PublicKey().Bytes()
	req := authreq.Request{Type: authreq.TypePair, RequestedScope: authreq.Scope{Services: o.Services, ReadOnly: o.ReadOnly}}
	if o.Recover != "" {
		id, err := agentkeys.ParseIdentity(o.Recover)
		if err != nil {
			return nil, &PairError{Reason: PairFailed, Message: fmt.Sprintf("--recover %q: %v", o.Recover, err)}
		}
		req = authreq.Request{Type: authreq.TypeRecover, AgentIdentity: authreq.IdentityOf(id), NewDaemonPubkey: pub}
	}
	details, err := authreq.Encode(req)
	if err != nil {
		return nil, &PairError{Reason: PairFailed, Message: fmt.Sprintf("encode the %s request: %v", what, err)}
	}
	parent, err := resolveParent(ctx, o.Backend, o.Parent)
	if err != nil {
		return nil, &PairError{Reason: PairFailed, Message: err.Error()}
	}
	var opened backendclient.Opened
	for attempt := 0; ; attempt++ {
		open := backendclient.OpenRequest{ChildPubkey: pub, BoxKey: boxKey, RequestType: req.Type, RequestDetails: details, ParentWallet: parent}
		if o.PairingKeyID != "" {
			open.PinnedKeyIDs = []string{o.PairingKeyID}
		}
		opened, err = o.Backend.OpenAuthRequest(ctx, open)
		if err == nil {
			break
		}
		if errors.Is(err, backendclient.ErrUnverifiedApproval) {
			return nil, &PairError{Reason: PairUnverified, Message: fmt.Sprintf("refusing to open the %s request: %v", what, err)}
		}
		if !retryable(err) {
			return nil, &PairError{Reason: PairFailed, Message: fmt.Sprintf("open the %s request: %v", what, err)}
		}
		o.Log.Warn("opening the auth request failed; retrying", "err", err.Error(), "attempt", attempt+1)
		if !sleepCtx(ctx, backoff(attempt, o.MinBackoff, o.MaxBackoff)) {
			return nil, &PairError{Reason: PairTimeout, Message: fmt.Sprintf("could not reach the backend to open a %s request within %s", what, o.Timeout)}
		}
	}
	// Exactly one line matching `<Noun> code: (\S+)\s+OTP: (\d+)`.
	fmt.Fprintf(o.Prompt, "%s code: %s  OTP: %s\n", noun, opened.PairCode, opened.OTP)
	fmt.Fprintf(o.Prompt, "Approve on the master's machine: agentkeys approve %s  (type the OTP shown here; the code expires at %s)\n",
		opened.PairCode, opened.ExpiresAt.Local().Format("15:04:05"))
	o.Log.Info("waiting for the master to approve", "type", req.Type, "pair_code", opened.PairCode, "expires_at", opened.ExpiresAt.UTC().Format(time.RFC3339))

	failures := 0
	for {
		callCtx, callCancel := context.WithTimeout(ctx, 45*time.Second)
		d, err := o.Backend.AwaitAuthDecision(callCtx, opened)
		callCancel()
		if ctx.Err() != nil {
			return nil, &PairError{Reason: PairTimeout, Message: fmt.Sprintf("%s timed out: no approval within %s; restart the daemon to get a new code", what, o.Timeout)}
		}
		if err != nil {
			switch {
			case errors.Is(err, backendclient.ErrUnverifiedApproval):
				return nil, &PairError{Reason: PairUnverified, Message: fmt.Sprintf("refusing the %s session: %v", what, err)}
			case errors.Is(err, backendclient.ErrExpired):
				return nil, &PairError{Reason: PairExpired, Message: fmt.Sprintf("the %s code %s expired before it was approved; restart the daemon to get a new code", what, opened.PairCode)}
			case retryable(err):
				o.Log.Warn("waiting for approval: backend unreachable; retrying", "err", err.Error(), "attempt", failures+1)
				if !sleepCtx(ctx, backoff(failures, o.MinBackoff, o.MaxBackoff)) {
					return nil, &PairError{Reason: PairTimeout, Message: fmt.Sprintf("%s timed out: no approval within %s; restart the daemon to get a new code", what, o.Timeout)}
				}
				failures++
				continue
			default:
				return nil, &PairError{Reason: PairFailed, Message: fmt.Sprintf("waiting for %s approval: %v", what, err)}
			}
		}
		failures = 0
		switch d.Status {
		case "timeout", "pending":
			continue
		case "approved":
			if d.Session == nil {
				return nil, &PairError{Reason: PairFailed, Message: "the backend approved the request but delivered no session"}
			}
			o.Log.Info("approval signature verified", "approver", string(d.ApproverWallet), "key_id", d.KeyID)
			return d.Session, nil
		case "denied":
			return nil, &PairError{Reason: PairDenied, Message: fmt.Sprintf("the master denied the %s request %s", what, opened.PairCode)}
		case "locked":
			return nil, &PairError{Reason: PairLocked, Message: fmt.Sprintf("the %s request %s is locked after too many wrong OTPs; restart the daemon to get a new code", what, opened.PairCode)}
		default:
			return nil, &PairError{Reason: PairFailed, Message: fmt.Sprintf("the backend answered an unknown decision status %q", d.Status)}
		}
	}
}

// retryable: transport failures, rate limits and 5xx answers.
func retryable(err error) bool {
	var te *jsonhttp.TransportError
	if errors.As(err, &te) {
		return true
	}
	var be *backendclient.Error
	if errors.As(err, &be) {
		return be.Status == 429 || be.Status >= 500
	}
	return false
}

// backoff is exponential with full jitter in [d/2, d].
func backoff(attempt int, lo, hi time.Duration) time.Duration {
	d := lo << min(attempt, 16)
	if d > hi || d <= 0 {
		d = hi
	}
	return d/2 + time.Duration(mrand.Int64N(int64(d/2)+1))
}

func sleepCtx(ctx context.Context, d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return true
	case <-ctx.Done():
		return false
	}
}
