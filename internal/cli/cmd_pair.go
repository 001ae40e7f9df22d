package cli

import (
	"context"
	"errors"
	"fmt"
	"regexp"
	"slices"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/agentkeys/agentkeys/internal/agentkeys"
	"github.com/agentkeys/agentkeys/internal/authreq"
	"github.com/agentkeys/agentkeys/internal/backendclient"
	"github.com/agentkeys/agentkeys/internal/jsonhttp"
	"github.com/agentkeys/agentkeys/internal/keychain"
)

var otpPattern = regexp.MustCompile(`^\d{6}$`)

type approveResult struct {
	RequestID   string           `json:"request_id"`
	RequestType string           `json:"request_type"`
	Status      string           `json:"status"`
	Wallet      agentkeys.Wallet `json:"wallet,omitempty"`
	Name        string           `json:"name,omitempty"`
	// Signature is the backend's approval signature the daemon verifies
	// (standard base64 of 64 bytes), KeyID the key that made it.
	Signature []byte `json:"signature,omitempty"`
	KeyID     string `json:"key_id,omitempty"`
}

func (a *App) newApproveCmd() *cobra.Command {
	var (
		otp       string
		yes, deny bool
		name      string
	)
	cmd := &cobra.Command{
		Use:   "approve <pair-code>",
		Short: "Approve (or --deny) a daemon's pairing, recovery or scope-change request",
		Long: `Show what a daemon asks for, then approve it with the OTP the daemon prints
next to its pair code. Five wrong OTPs lock the request.

A pairing creates an agent under this master with the scope the daemon asked
for (never wider than yours); --name records it locally under that name. A
recovery gives the daemon a new session on a wallet you already own. A scope
change is shown as a change: every service added or removed, and read_only.

A recovery of a master wallet (yours, named by its address, alias or e-mail)
hands over the whole account, not an agent. It is never approved by --yes:
it needs a terminal and a typed confirmation phrase.

  agentkeys approve K7QD-93XM --otp 123456 --yes`,
		Args: exactArgs(1, "<pair-code>"),
		RunE: func(cmd *cobra.Command, args []string) error {
			code, ok := authreq.NormalizePairCode(args[0])
			if !ok {
				return usagef("%q is not a pair code (8 letters and digits, like K7QD-93XM)", args[0])
			}
			if otp != "" && !otpPattern.MatchString(otp) {
				return usagef("--otp must be the 6 digits the daemon shows")
			}
			if name != "" {
				var err error
				if name, err = parseAgentName("--name", name); err != nil {
					return err
				}
			}
			return a.runApprove(cmdContext(cmd.Context()), approveInput{Code: code, OTP: otp, Yes: yes, Deny: deny, Name: name})
		},
	}
	f := cmd.Flags()
	f.StringVar(&otp, "otp", "", "the 6-digit OTP the daemon shows (prompted on a terminal)")
	f.BoolVarP(&yes, "yes", "y", false, "do not ask for confirmation")
	f.BoolVar(&deny, "deny", false, "refuse the request instead")
	f.StringVar(&name, "name", "", "name the paired agent (kept by the backend, unique among your agents)")
	return cmd
}

const masterRecoveryWarning = `
  !! This is NOT an agent. It recovers your MASTER wallet %s:
  !! approving gives whoever runs the requesting program a full session of
  !! your account (every credential, every agent, approvals in your name).
  !! Approve only a recovery you started yourself on a machine you control.

`

// masterRecoveryPhrase is what the approver types to hand over a master.
func masterRecoveryPhrase(w agentkeys.Wallet) string {
	s := strings.ToLower(string(w))
	return "recover master " + s[len(s)-6:]
}

// promptOTP asks on the terminal for the 6-digit OTP, again while what is
// typed is not 6 digits (three tries).
func (a *App) promptOTP() (string, error) {
	for range 3 {
		fmt.Fprintf(a.Err, "OTP shown by the daemon: ")
		line, err := a.lines().ReadString('\n')
		otp := strings.TrimSpace(line)
		if otpPattern.MatchString(otp) {
			return otp, nil
		}
		if err != nil {
			break
		}
		fmt.Fprintln(a.Err, "The OTP is the 6 digits printed next to the pair code; try again.")
	}
	return "", errors.New("the OTP is 6 digits")
}

// approveAfterConfirm asks "Approve this request?" unless --yes, then
// approves.
func (a *App) approveAfterConfirm(ctx context.Context, m *Master, code, otp, name string, yes, interactive bool) (backendclient.Approval, error) {
	if !yes {
		if !interactive {
			return backendclient.Approval{}, withHint(errors.New("refusing to approve without confirmation (stdin is not a terminal)"), "pass --yes to confirm")
		}
		ok, err := a.confirm("Approve this request?")
		if err != nil {
			return backendclient.Approval{}, err
		}
		if !ok {
			return backendclient.Approval{}, errors.New("approval cancelled")
		}
	}
	if name != "" {
		return m.Client.ApproveNamedPairing(ctx, m.Session.Token, code, otp, name)
	}
	return m.Client.ApproveAuthRequest(ctx, m.Session.Token, code, otp)
}

// scopeChangeLines shows a scope change as a change: each service added or
// removed and read_only before and after. cur is nil when the backend did
// not say (then only the new scope is shown).
func scopeChangeLines(cur, next *agentkeys.Scope) []string {
	if next == nil {
		return nil
	}
	lines := []string{fmt.Sprintf("new scope: services=[%s] read_only=%v", strings.Join(next.Services, ", "), next.ReadOnly)}
	if cur == nil {
		return append(lines, "(this session cannot see the current scope: compare with `agentkeys scope get`)")
	}
	changed := false
	for _, svc := range next.Services {
		if !slices.Contains(cur.Services, svc) {
			lines, changed = append(lines, "+ service "+svc), true
		}
	}
	for _, svc := range cur.Services {
		if !slices.Contains(next.Services, svc) {
			lines, changed = append(lines, "- service "+svc), true
		}
	}
	if cur.ReadOnly != next.ReadOnly {
		lines, changed = append(lines, fmt.Sprintf("read_only: %v → %v", cur.ReadOnly, next.ReadOnly)), true
	}
	if !changed {
		lines = append(lines, "(no change)")
	}
	return lines
}

// pairingError adds hints for the pairing failures a person can act on.
func pairingError(err error) error {
	var apiErr *backendclient.Error
	if !errors.As(err, &apiErr) {
		return err
	}
	switch {
	case apiErr.Kind == "MASTER_RECOVERY_UNCONFIRMED":
		return withHint(err, "a master recovery is approved only on a terminal, with its typed confirmation; --yes never approves one")
	case apiErr.Kind == "LOCKED":
		return withHint(err, "start pairing again on the daemon; it will show a new code and OTP")
	case apiErr.Status == 410:
		return withHint(err, "the code expired; restart pairing on the daemon")
	case apiErr.Status == 404:
		return withHint(err, "check the code the daemon printed (codes expire after a few minutes)")
	case apiErr.Status == 403 && strings.Contains(apiErr.Message, "OTP"):
		return withHint(err, "type the 6 digits printed next to the pair code")
	}
	return err
}

func (a *App) newRecoverCmd() *cobra.Command {
	var timeout time.Duration
	cmd := &cobra.Command{
		Use:   "recover <wallet|alias|email>",
		Short: "Recover a master session on a new machine, approved from a machine that still has one",
		Long: `Ask for a new session on an existing wallet. This prints a recovery code and
an OTP and waits; on a machine that still holds a live session of the owning
wallet, run:

  agentkeys approve <code> --otp <otp>

on a terminal: recovering a master wallet hands over the whole account, so
the approver is shown that and must type a confirmation phrase (--yes does
not approve it). Recovery never works without that approval: there is no password or e-mail
shortcut. The new session arrives sealed to a key generated for this request
and is saved in this profile only if the backend's approval signature
verifies over the request and that session.`,
		Args: exactArgs(1, "<wallet|alias|email>"),
		RunE: func(cmd *cobra.Command, args []string) error {
			parsed, err := agentkeys.ParseIdentity(args[0])
			if err != nil {
				return usagef("%q is not a wallet (0x…), an e-mail address, an ENS name or an alias (letters, digits, '.', '_', '-'): %v", args[0], err)
			}
			id, typ := authreq.IdentityOf(parsed), string(parsed.Kind)
			if timeout <= 0 {
				return usagef("--timeout must be positive")
			}
			st, err := a.Store()
			if err != nil {
				return err
			}
			base := a.BackendURL()
			c, err := a.newClient(base)
			if err != nil {
				return err
			}
			// The new session is sealed to this key and the approval
			// signature is verified before anything is saved.
			boxKey, err := authreq.NewBoxKey()
			if err != nil {
				return err
			}
			pub := boxKey.PublicKey().Bytes()
			details, err := authreq.Encode(authreq.Request{Type: authreq.TypeRecover, AgentIdentity: id, NewDaemonPubkey: pub})
			if err != nil {
				return err
			}
			ctx, cancel := context.WithTimeout(cmdContext(cmd.Context()), timeout)
			defer cancel()
			o, err := c.OpenAuthRequest(ctx, backendclient.OpenRequest{
				ChildPubkey: pub, BoxKey: boxKey, RequestType: authreq.TypeRecover, RequestDetails: details,
				IdentityType: typ, IdentityValue: id.Value,
			})
			if err != nil {
				return err
			}
			fmt.Fprintf(a.Err, "Recovery code: %s  OTP: %s\n", o.PairCode, o.OTP)
			fmt.Fprintf(a.Err, "On a machine with a live session of %s, run: agentkeys approve %s --otp %s\n", id.Value, o.PairCode, o.OTP)
			d, err := awaitDecision(ctx, c, o)
			if err != nil {
				return err
			}
			if d.Status != "approved" || d.Session == nil {
				return fmt.Errorf("recovery %s", d.Status)
			}
			broker, _ := a.explicitBroker() // a malformed one is refused at first use
			ks := keychain.Session{Token: d.Session.Token, Wallet: d.Session.Wallet, Backend: base, ExpiresAt: d.Session.ExpiresAt.Unix(), Broker: broker}
			where, err := st.Save(a.Profile, ks)
			if err != nil {
				return fmt.Errorf("save session: %w", err)
			}
			if a.JSON {
				return a.printJSON(map[string]any{"wallet": d.Session.Wallet, "profile": a.Profile, "session_store": where})
			}
			a.printf("Recovered. Session for %s saved in profile %q.\n", d.Session.Wallet, a.Profile)
			return nil
		},
	}
	cmd.Flags().DurationVar(&timeout, "timeout", 5*time.Minute, "how long to wait for the approval")
	return cmd
}

// awaitDecision long-polls until the request is decided, retrying transport
// errors with backoff until ctx ends.
func awaitDecision(ctx context.Context, c *backendclient.Client, o backendclient.Opened) (backendclient.Decision, error) {
	backoff := 500 * time.Millisecond
	for {
		d, err := c.AwaitAuthDecision(ctx, o)
		switch {
		case err == nil && d.Status == "timeout":
			continue
		case err == nil:
			return d, nil
		case ctx.Err() != nil:
			return d, errors.New("no approval before the deadline")
		}
		var te *jsonhttp.TransportError
		if !errors.As(err, &te) {
			return d, pairingError(err)
		}
		select {
		case <-ctx.Done():
			return d, errors.New("no approval before the deadline")
		case <-time.After(backoff):
		}
		backoff = min(2*backoff, 10*time.Second)
	}
}

// approveInput is `agentkeys approve` once its flags are parsed.
type approveInput struct {
	Code string // normalized pair code
	OTP  string // "" = prompt on a terminal
	Yes  bool   // no confirmation (never for a master recovery)
	Deny bool
	Name string // the paired agent's name, kept by the backend
}

// describeRequest tells the master on stderr what a request asks for.
func (a *App) describeRequest(code string, p backendclient.PendingRequest, masterRecovery bool) {
	fmt.Fprintf(a.Err, "Request %s: %s\n", authreq.FormatPairCode(code), p.Description)
	switch {
	case p.RequestedScope != nil && p.RequestType == authreq.TypePair:
		fmt.Fprintf(a.Err, "  scope: services=[%s] read_only=%v\n", strings.Join(p.RequestedScope.Services, ", "), p.RequestedScope.ReadOnly)
	case p.RequestType == authreq.TypeScopeChange:
		for _, l := range scopeChangeLines(p.CurrentScope, p.RequestedScope) {
			fmt.Fprintf(a.Err, "  %s\n", l)
		}
	}
	if masterRecovery {
		fmt.Fprintf(a.Err, masterRecoveryWarning, p.TargetWallet)
	}
	fmt.Fprintf(a.Err, "  expires: %s\n", time.Unix(p.ExpiresAt, 0).Format(time.RFC3339))
}

// runApprove shows the request, then approves or denies it.
func (a *App) runApprove(ctx context.Context, in approveInput) error {
	m, err := a.LoadMaster()
	if err != nil {
		return err
	}
	p, err := m.Client.FetchAuthRequest(ctx, m.Session.Token, in.Code)
	if err != nil {
		return pairingError(err)
	}
	masterRecovery := p.RequestType == authreq.TypeRecover && p.TargetKind == "master"
	if !a.JSON || masterRecovery {
		a.describeRequest(in.Code, p, masterRecovery)
	}
	if in.Deny {
		if err := m.Client.DenyAuthRequest(ctx, m.Session.Token, in.Code); err != nil {
			return pairingError(err)
		}
		if a.JSON {
			return a.printJSON(approveResult{RequestID: p.ID, RequestType: p.RequestType, Status: "denied"})
		}
		a.printf("Denied.\n")
		return nil
	}
	interactive := a.isTerminal(int(a.In.Fd()))
	if masterRecovery && !interactive {
		return withHint(fmt.Errorf("refusing to approve the recovery of master wallet %s without a typed confirmation (stdin is not a terminal); --yes never approves a master recovery", p.TargetWallet),
			"if you started `agentkeys recover` yourself, run `agentkeys approve %s` on a terminal; otherwise deny it with --deny", authreq.FormatPairCode(in.Code))
	}
	if in.OTP == "" {
		if !interactive {
			return withHint(errors.New("no OTP given and stdin is not a terminal"), "pass --otp with the 6 digits the daemon printed")
		}
		if in.OTP, err = a.promptOTP(); err != nil {
			return err
		}
	}
	var ap backendclient.Approval
	if masterRecovery {
		// --yes does not count here: the phrase must be typed.
		phrase := masterRecoveryPhrase(p.TargetWallet)
		fmt.Fprintf(a.Err, "Type %q to hand this master wallet to the new machine: ", phrase)
		if strings.TrimSpace(a.readLine()) != phrase {
			return errors.New("master recovery not confirmed; nothing was approved")
		}
	}
	// --name names the new agent of a pairing, in the approval itself.
	pairName := ""
	if p.RequestType == authreq.TypePair {
		pairName = in.Name
	} else if in.Name != "" {
		fmt.Fprintf(a.Err, "agentkeys: --name ignored: a %s request creates no agent\n", p.RequestType)
	}
	// On a terminal a wrong OTP is asked again (the backend locks the
	// request after a few wrong ones); elsewhere it fails at once.
	for confirmed := false; ; confirmed = true {
		if masterRecovery {
			ap, err = m.Client.ApproveMasterRecovery(ctx, m.Session.Token, in.Code, in.OTP, p.TargetWallet)
		} else {
			ap, err = a.approveAfterConfirm(ctx, m, in.Code, in.OTP, pairName, in.Yes || confirmed, interactive)
		}
		var apiErr *backendclient.Error
		if err == nil || !interactive || !errors.As(err, &apiErr) || apiErr.Status != 403 || !strings.Contains(apiErr.Message, "wrong OTP") {
			break
		}
		fmt.Fprintf(a.Err, "agentkeys: %s\n", apiErr.Message)
		if in.OTP, err = a.promptOTP(); err != nil {
			return err
		}
	}
	if err != nil {
		if pairName != "" {
			if nerr := nameError(err, pairName); nerr != err {
				return nerr
			}
		}
		return pairingError(err)
	}
	res := approveResult{RequestID: ap.RequestID, RequestType: p.RequestType, Status: ap.Status, Wallet: ap.Wallet, Signature: ap.Signature, KeyID: ap.KeyID}
	if pairName != "" && ap.Wallet != "" {
		res.Name = pairName
	}
	if a.JSON {
		return a.printJSON(res)
	}
	switch p.RequestType {
	case authreq.TypePair:
		a.printf("Approved. Agent %s paired; the daemon now holds its session.\n", agentRef{Wallet: ap.Wallet, Name: res.Name})
	case authreq.TypeRecover:
		if masterRecovery {
			a.printf("Approved. The new machine now holds a session of master wallet %s.\n", ap.Wallet)
		} else {
			a.printf("Approved. The daemon now holds a new session for %s.\n", ap.Wallet)
		}
	default:
		a.printf("Approved.\n")
	}
	return nil
}
