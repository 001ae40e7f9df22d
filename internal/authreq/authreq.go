// Package authreq defines the "child asks, master approves" requests that
// pair an agent with its master, recover a lost agent session and change a
// scope: their canonical CBOR encoding (RFC 8949 §4.2.1 core deterministic
// encoding, byte-compatible with the original), a strict decoder that
// accepts only canonical input, the OTP a human compares on both screens,
// and the pair code the human types.
package authreq

import (
	"bytes"
	"errors"
	"fmt"
	"strings"

	"github.com/fxamacker/cbor/v2"

	"github.com/agentkeys/agentkeys/internal/agentkeys"
)

// Request types (wire strings of the original).
const (
	TypePair             = "Pair"
	TypeRecover          = "Recover"
	TypeScopeChange      = "ScopeChange"
	TypeHighValueRelease = "HighValueRelease"
	TypeKeyRotate        = "KeyRotate"
)

// Identity kinds inside a Recover request (CBOR "type") and their wire
// spellings in HTTP identity_type fields.
const (
	IdentityAlias  = "Alias"
	IdentityEmail  = "Email"
	IdentityEns    = "Ens"
	IdentityWallet = "WalletAddress"
)

// MaxDetailsSize bounds the encoded request.
const MaxDetailsSize = 8 << 10

// Scope is the CBOR form of agentkeys.Scope.
type Scope struct {
	Services []string `cbor:"services"`
	ReadOnly bool     `cbor:"read_only"`
}

// Identity names the agent to recover.
type Identity struct {
	Type  string `cbor:"type"`
	Value string `cbor:"value"`
}

// Request is one decoded request. Which fields are set depends on Type.
type Request struct {
	Type string

	RequestedScope Scope // Pair

	AgentIdentity   Identity // Recover
	NewDaemonPubkey []byte   // Recover

	AgentID            string // ScopeChange, HighValueRelease, KeyRotate
	NewScope           Scope  // ScopeChange
	Service            string // HighValueRelease
	EstimatedCostCents uint64 // HighValueRelease
	NewPubkey          []byte // KeyRotate
}

type pairWire struct {
	Type           string `cbor:"type"`
	RequestedScope Scope  `cbor:"requested_scope"`
}

type recoverWire struct {
	Type            string   `cbor:"type"`
	AgentIdentity   Identity `cbor:"agent_identity"`
	NewDaemonPubkey []byte   `cbor:"new_daemon_pubkey"`
}

type scopeChangeWire struct {
	Type     string `cbor:"type"`
	AgentID  string `cbor:"agent_id"`
	NewScope Scope  `cbor:"new_scope"`
}

type highValueWire struct {
	Type               string `cbor:"type"`
	Service            string `cbor:"service"`
	AgentID            string `cbor:"agent_id"`
	EstimatedCostCents uint64 `cbor:"estimated_cost_cents"`
}

type keyRotateWire struct {
	Type      string `cbor:"type"`
	AgentID   string `cbor:"agent_id"`
	NewPubkey []byte `cbor:"new_pubkey"`
}

var (
	encMode cbor.EncMode
	decMode cbor.DecMode
)

func init() {
	var err error
	if encMode, err = cbor.CoreDetEncOptions().EncMode(); err != nil {
		panic(err)
	}
	if decMode, err = (cbor.DecOptions{
		DupMapKey:         cbor.DupMapKeyEnforcedAPF,
		IndefLength:       cbor.IndefLengthForbidden,
		TagsMd:            cbor.TagsForbidden,
		MaxNestedLevels:   8,
		MaxArrayElements:  agentkeys.MaxServicesPerScope,
		MaxMapPairs:       16,
		ExtraReturnErrors: cbor.ExtraDecErrorUnknownField,
		UTF8:              cbor.UTF8RejectInvalid,
		FieldNameMatching: cbor.FieldNameMatchingCaseSensitive,
	}).DecMode(); err != nil {
		panic(err)
	}
}

func (s Scope) wire() Scope {
	if s.Services == nil {
		s.Services = []string{}
	}
	return s
}

// Encode returns the canonical bytes of r.
func Encode(r Request) ([]byte, error) {
	var v any
	switch r.Type {
	case TypePair:
		v = pairWire{Type: r.Type, RequestedScope: r.RequestedScope.wire()}
	case TypeRecover:
		v = recoverWire{Type: r.Type, AgentIdentity: r.AgentIdentity, NewDaemonPubkey: nonNil(r.NewDaemonPubkey)}
	case TypeScopeChange:
		v = scopeChangeWire{Type: r.Type, AgentID: r.AgentID, NewScope: r.NewScope.wire()}
	case TypeHighValueRelease:
		v = highValueWire{Type: r.Type, Service: r.Service, AgentID: r.AgentID, EstimatedCostCents: r.EstimatedCostCents}
	case TypeKeyRotate:
		v = keyRotateWire{Type: r.Type, AgentID: r.AgentID, NewPubkey: nonNil(r.NewPubkey)}
	default:
		return nil, fmt.Errorf("unknown request type %q", r.Type)
	}
	return encMode.Marshal(v)
}

func nonNil(b []byte) []byte {
	if b == nil {
		return []byte{}
	}
	return b
}

// ErrNotCanonical is returned for well-formed CBOR that is not in the
// canonical form Encode produces (so two encodings of one request cannot
// yield two OTPs).
var ErrNotCanonical = errors.New("request details are not canonical CBOR")

// Decode parses request details, checks that they describe a request of
// wantType, that every field is valid, and that the bytes are canonical.
func Decode(wantType string, details []byte) (Request, error) {
	if len(details) == 0 {
		return Request{}, errors.New("request details are empty")
	}
	if len(details) > MaxDetailsSize {
		return Request{}, fmt.Errorf("request details exceed %d bytes", MaxDetailsSize)
	}
	var head struct {
		Type string `cbor:"type"`
	}
	// Peek at the type with a lenient struct decode (unknown fields allowed).
	if err := cbor.Unmarshal(details, &head); err != nil {
		return Request{}, errors.New("request details are not a CBOR map")
	}
	if head.Type != wantType {
		return Request{}, fmt.Errorf("request details describe %q, not %q", truncate(head.Type), wantType)
	}
	r := Request{Type: head.Type}
	var err error
	switch head.Type {
	case TypePair:
		var w pairWire
		err = decMode.Unmarshal(details, &w)
		r.RequestedScope = w.RequestedScope
	case TypeRecover:
		var w recoverWire
		err = decMode.Unmarshal(details, &w)
		r.AgentIdentity, r.NewDaemonPubkey = w.AgentIdentity, w.NewDaemonPubkey
	case TypeScopeChange:
		var w scopeChangeWire
		err = decMode.Unmarshal(details, &w)
		r.AgentID, r.NewScope = w.AgentID, w.NewScope
	case TypeHighValueRelease:
		var w highValueWire
		err = decMode.Unmarshal(details, &w)
		r.AgentID, r.Service, r.EstimatedCostCents = w.AgentID, w.Service, w.EstimatedCostCents
	case TypeKeyRotate:
		var w keyRotateWire
		err = decMode.Unmarshal(details, &w)
		r.AgentID, r.NewPubkey = w.AgentID, w.NewPubkey
	default:
		return Request{}, fmt.Errorf("unknown request type %q", truncate(head.Type))
	}
	if err != nil {
		return Request{}, fmt.Errorf("request details do not match the %s shape", head.Type)
	}
	if err := r.validate(); err != nil {
		return Request{}, err
	}
	again, err := Encode(r)
	if err != nil || !bytes.Equal(again, details) {
		return Request{}, ErrNotCanonical
	}
	return r, nil
}

func (r Request) validate() error {
	switch r.Type {
	case TypePair:
		return validScope(r.RequestedScope)
	case TypeRecover:
		if err := ValidateIdentity(r.AgentIdentity); err != nil {
			return err
		}
		if len(r.NewDaemonPubkey) > 256 {
			return errors.New("new_daemon_pubkey is too long")
		}
	case TypeScopeChange:
		if _, err := agentkeys.ParseWallet(r.AgentID); err != nil {
			return fmt.Errorf("agent_id: %w", err)
		}
		return validScope(r.NewScope)
	case TypeHighValueRelease:
		if _, err := agentkeys.ParseWallet(r.AgentID); err != nil {
			return fmt.Errorf("agent_id: %w", err)
		}
		return agentkeys.ValidateService(r.Service)
	case TypeKeyRotate:
		if _, err := agentkeys.ParseWallet(r.AgentID); err != nil {
			return fmt.Errorf("agent_id: %w", err)
		}
		if len(r.NewPubkey) == 0 || len(r.NewPubkey) > 256 {
			return errors.New("new_pubkey must be 1 to 256 bytes")
		}
	}
	return nil
}

func validScope(s Scope) error {
	_, err := (&agentkeys.Scope{Services: s.Services, ReadOnly: s.ReadOnly}).Normalize()
	return err
}

// ValidateIdentity checks an identity's kind and value.
func ValidateIdentity(id Identity) error {
	switch id.Type {
	case IdentityAlias, IdentityEmail, IdentityEns:
		if id.Value == "" || len(id.Value) > 254 {
			return fmt.Errorf("%s identity must be 1 to 254 characters", id.Type)
		}
		if id.Type == IdentityEmail && !strings.Contains(id.Value, "@") {
			return errors.New("email identity must contain @")
		}
	case IdentityWallet:
		if _, err := agentkeys.ParseWallet(id.Value); err != nil {
			return err
		}
	default:
		return fmt.Errorf("unknown identity type %q (want Alias, Email, Ens or WalletAddress)", truncate(id.Type))
	}
	return nil
}

// Describe returns the one-line summary a master confirms before approving.
func (r Request) Describe() string {
	switch r.Type {
	case TypePair:
		ro := ""
		if r.RequestedScope.ReadOnly {
			ro = ", read-only"
		}
		if len(r.RequestedScope.Services) == 0 {
			return "Pair a new agent with no services yet" + ro + " (grant some later with `agentkeys scope set`)"
		}
		return fmt.Sprintf("Pair a new agent (services: %s%s)", strings.Join(r.RequestedScope.Services, ", "), ro)
	case TypeRecover:
		// The identity may name an agent or a master; the backend, which
		// knows which, says so to the wallet's owner.
		return fmt.Sprintf("Recover the wallet named by %s %q onto a new machine", r.AgentIdentity.Type, r.AgentIdentity.Value)
	case TypeScopeChange:
		mode := "read-write"
		if r.NewScope.ReadOnly {
			mode = "read-only"
		}
		return fmt.Sprintf("Change the scope of agent %s to services: [%s], %s", r.AgentID, strings.Join(r.NewScope.Services, ", "), mode)
	case TypeHighValueRelease:
		return fmt.Sprintf("Release %s for agent %s (estimated cost %d.%02d)", r.Service, r.AgentID, r.EstimatedCostCents/100, r.EstimatedCostCents%100)
	case TypeKeyRotate:
		return fmt.Sprintf("Rotate the key of agent %s", r.AgentID)
	}
	return r.Type
}

func truncate(s string) string {
	if len(s) > 32 {
		return s[:32] + "…"
	}
	return s
}

// Kind returns the HTTP identity kind of a CBOR identity, or "" for an
// unknown one.
func (id Identity) Kind() agentkeys.IdentityKind {
	switch id.Type {
	case IdentityAlias:
		return agentkeys.KindAlias
	case IdentityEmail:
		return agentkeys.KindEmail
	case IdentityEns:
		return agentkeys.KindENS
	case IdentityWallet:
		return agentkeys.KindWallet
	}
	return ""
}

// IdentityOf returns the CBOR form of a parsed identity.
func IdentityOf(id agentkeys.Identity) Identity {
	typ := ""
	switch id.Kind {
	case agentkeys.KindAlias:
		typ = IdentityAlias
	case agentkeys.KindEmail:
		typ = IdentityEmail
	case agentkeys.KindENS:
		typ = IdentityEns
	case agentkeys.KindWallet:
		typ = IdentityWallet
	}
	return Identity{Type: typ, Value: id.Value}
}
