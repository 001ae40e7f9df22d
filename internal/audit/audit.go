// Package audit is the broker's append-only, hash-chained mint ledger.
//
// Every mint attempt becomes one Record. A Sink appends records durably and
// chains them: each row carries the hash of the row before it (prev_hash) and
// its own hash (row_hash), a SHA-256 over a length-prefixed encoding of every
// field and prev_hash. Verify walks the chain and reports the first broken
// link, so an edited, deleted or reordered row is detected.
//
// Each broker replica extends its own chain (Record.Chain, one head row per
// chain), so replicas never wait for each other's locks; readers merge the
// chains. The chain is unkeyed, so someone who can write the database can
// rewrite it consistently from an edited row onward. Two things catch that:
// signed checkpoints (Checkpoint: the broker periodically signs a chain's
// head with its OIDC key and stores and exports it; verifiers check them
// with public keys only) and expected heads (a head hash kept elsewhere must
// still be in the chain).
//
// Sink is an interface so that chain or sealed-log destinations can be added
// later; this package ships SQLite and PostgreSQL engines (Open).
package audit

import (
	"context"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"fmt"
	"io"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"
)

// Outcomes of a mint attempt.
const (
	OutcomeOK           = "ok"
	OutcomeAuthFailed   = "auth_failed"   // no, malformed or rejected bearer
	OutcomeBackendError = "backend_error" // session backend unreachable or misbehaving
	OutcomeSTSError     = "sts_error"     // AssumeRole failed
	OutcomeBadRequest   = "bad_request"   // request body rejected
	OutcomeScopeDenied  = "scope_denied"  // the session's scope does not allow this mint
	OutcomeInternal     = "internal"      // signing failed or another broker fault
	// OutcomeAttempt is written before the broker calls an external issuer
	// (STS); the row with the same request_id after it is the outcome. An
	// attempt without an outcome row means the caller got an error
	// (audit_error) although the issuer may have issued credentials.
	OutcomeAttempt = "sts_attempt"
)

// OutcomeSessionExpiring means the session ends too soon for the shortest
// credential the endpoint may issue: credentials never outlive their session.
const OutcomeSessionExpiring = "session_expiring"

// Requested roles recorded for JWT mints; AWS mints record the role ARN.
const RoleOIDCJWT = "oidc_jwt"

// UnknownWallet is recorded when the caller's wallet is not known.
const UnknownWallet = "unknown"

// DefaultChain is the chain of rows written before ledgers had one chain
// per replica (and of ledgers opened without a chain name).
const DefaultChain = "default"

// ValidChain reports whether name can name a chain: 1 to 253 bytes of
// letters, digits, '.', '_' and '-' (a host name fits).
func ValidChain(name string) bool {
	if len(name) == 0 || len(name) > 253 {
		return false
	}
	for _, c := range []byte(name) {
		switch {
		case c >= 'a' && c <= 'z', c >= 'A' && c <= 'Z', c >= '0' && c <= '9', c == '.', c == '_', c == '-':
		default:
			return false
		}
	}
	return true
}

// GenesisHash is the prev_hash of the first row.
const GenesisHash = "0000000000000000000000000000000000000000000000000000000000000000"

// Record is one audit row. The fields up to Detail are the original
// broker's; the rest help correlate a mint with CloudTrail and request logs.
// ID, PrevHash and RowHash are assigned by the sink.
type Record struct {
	Chain string    // the replica's chain; "" means DefaultChain
	ID    int64     // position in the chain, 1-based, gapless
	Time  time.Time // stored with second precision (unix seconds)

	RequesterTokenHash string // hex SHA-256 of the bearer; never the bearer
	RequesterWallet    string // wallet, or UnknownWallet
	RequestedRole      string // data role ARN or RoleOIDCJWT
	DurationSeconds    int64  // AWS session duration or JWT lifetime
	STSSessionName     string // RoleSessionName, or the signing key id for JWTs
	Outcome            string
	Detail             string // empty on success; never a secret

	ClientIP            string
	RequestID           string
	CredentialID        string // AWS AccessKeyId, or the JWT's jti
	CredentialExpiresAt int64  // unix seconds, 0 when nothing was issued

	PrevHash string
	RowHash  string
}

// Sink is an append-only, tamper-evident destination for audit records.
type Sink interface {
	// Append stores r durably, chained after the previous record, and
	// returns only once it is committed. An error (including ctx expiry)
	// means the caller must not treat the record as written.
	Append(ctx context.Context, r Record) error
	// Verify walks the whole chain. It returns nil when the chain is intact
	// and a *ChainError naming the first broken link otherwise; any other
	// error means the check could not be completed.
	Verify(ctx context.Context) (VerifyReport, error)
	// Ping reports whether the sink can currently take writes.
	Ping(ctx context.Context) error
	Close() error
}

// Decider is implemented by sinks whose Append decides: an error means the
// record was not and will never be written, nil that it is committed. Such
// a sink bounds Append itself; callers wait for its answer instead of
// abandoning it at their deadline, so what they tell their own caller
// matches the ledger.
type Decider interface {
	DecidesAppends() bool
}

// VerifyReport summarises a successful walk of the ledger.
type VerifyReport struct {
	Rows int64 // all chains
	// LastID and LastHash are the head of the only chain; with several
	// chains they are zero (see Heads).
	LastID   int64
	LastHash string
	Heads    map[string]Head // every chain's head
	// Checkpoints is how many signed checkpoints were matched against the
	// chain; Expected how many expected heads were found.
	Checkpoints int
	Expected    int
}

// Head is the newest row of a chain.
type Head struct {
	ID   int64  `json:"id"`
	Hash string `json:"hash"`
}

// ChainError is the first broken link Verify found.
type ChainError struct {
	Chain  string // the chain it is on ("" when not specific to a chain)
	ID     int64  // the row at which the chain breaks (0 for the chain head)
	Reason string // what is wrong, e.g. "row hash mismatch (row edited)"
}

func (e *ChainError) Error() string {
	on := ""
	if e.Chain != "" && e.Chain != DefaultChain {
		on = fmt.Sprintf(" (chain %q)", e.Chain)
	}
	if e.ID == 0 {
		return "audit chain broken at the chain head" + on + ": " + e.Reason
	}
	return fmt.Sprintf("audit chain broken at row %d%s: %s", e.ID, on, e.Reason)
}

// hashVersion is mixed into every row hash so a future encoding can coexist.
// Rows of DefaultChain keep the v1 encoding (they predate chain names);
// rows of any other chain use v2, which also covers the chain name, so a
// row cannot be moved from one chain to another.
const (
	hashVersion   = "agentkeys-broker-audit-v1"
	hashVersionV2 = "agentkeys-broker-audit-v2"
)

// ComputeHash returns the row hash of r chained after prevHash: hex SHA-256
// over a length-prefixed encoding of the version tag, the chain name (v2),
// every field of r (ID included, hashes excluded) and prevHash. Length
// prefixes make the encoding injective: no two different records encode
// alike.
func ComputeHash(r Record, prevHash string) string {
	h := sha256.New()
	put := func(s string) { writeField(h, s) }
	if r.Chain == "" || r.Chain == DefaultChain {
		put(hashVersion)
	} else {
		put(hashVersionV2)
		put(r.Chain)
	}
	put(strconv.FormatInt(r.ID, 10))
	put(strconv.FormatInt(r.Time.Unix(), 10))
	put(r.RequesterTokenHash)
	put(r.RequesterWallet)
	put(r.RequestedRole)
	put(strconv.FormatInt(r.DurationSeconds, 10))
	put(r.STSSessionName)
	put(r.Outcome)
	put(r.Detail)
	put(r.ClientIP)
	put(r.RequestID)
	put(r.CredentialID)
	put(strconv.FormatInt(r.CredentialExpiresAt, 10))
	put(prevHash)
	return hex.EncodeToString(h.Sum(nil))
}

func writeField(h io.Writer, s string) {
	var n [8]byte
	binary.BigEndian.PutUint64(n[:], uint64(len(s)))
	h.Write(n[:])
	h.Write([]byte(s))
}

// Field limits keep one hostile request from bloating the ledger.
const (
	maxShortField  = 256
	maxDetailField = 2048
)

// normalize truncates over-long fields and drops sub-second time, so the
// hash computed at append matches the one recomputed from stored columns.
func normalize(r Record) Record {
	r.Time = time.Unix(r.Time.Unix(), 0).UTC()
	if r.Chain == "" {
		r.Chain = DefaultChain
	}
	r.RequesterTokenHash = clip(r.RequesterTokenHash, maxShortField)
	r.RequesterWallet = clip(r.RequesterWallet, maxShortField)
	r.RequestedRole = clip(r.RequestedRole, maxShortField)
	r.STSSessionName = clip(r.STSSessionName, maxShortField)
	r.Outcome = clip(r.Outcome, maxShortField)
	r.Detail = clip(r.Detail, maxDetailField)
	r.ClientIP = clip(r.ClientIP, maxShortField)
	r.RequestID = clip(r.RequestID, maxShortField)
	r.CredentialID = clip(r.CredentialID, maxShortField)
	return r
}

// clip cuts s to at most n bytes without splitting a UTF-8 sequence and
// replaces invalid UTF-8 and NUL bytes, which PostgreSQL TEXT rejects.
func clip(s string, n int) string {
	if len(s) <= n && utf8.ValidString(s) && strings.IndexByte(s, 0) < 0 {
		return s // the common case: nothing to cut or replace
	}
	out := make([]rune, 0, min(len(s), n))
	size := 0
	for _, r := range s {
		if r == 0 {
			r = '\uFFFD'
		}
		l := len(string(r))
		if size+l > n {
			break
		}
		out = append(out, r)
		size += l
	}
	return string(out)
}
