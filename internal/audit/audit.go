// Package audit is the broker's append-only, hash-chained mint ledger.
//
// Every mint attempt becomes one Record. A Sink appends records durably and
// chains them: each row carries the hash of the row before it (prev_hash) and
// its own hash (row_hash), a SHA-256 over a length-prefixed encoding of every
// field and prev_hash. Verify walks the chain and reports the first broken
// link, so an edited, deleted or reordered row is detected.
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
	"hash"
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
)

// OutcomeSessionExpiring means the session ends too soon for the shortest
// credential the endpoint may issue: credentials never outlive their session.
const OutcomeSessionExpiring = "session_expiring"

// Requested roles recorded for JWT mints; AWS mints record the role ARN.
const RoleOIDCJWT = "oidc_jwt"

// UnknownWallet is recorded when the caller's wallet is not known.
const UnknownWallet = "unknown"

// GenesisHash is the prev_hash of the first row.
const GenesisHash = "0000000000000000000000000000000000000000000000000000000000000000"

// Record is one audit row. The fields up to Detail are the original
// broker's; the rest help correlate a mint with CloudTrail and request logs.
// ID, PrevHash and RowHash are assigned by the sink.
type Record struct {
	ID   int64     // position in the chain, 1-based, gapless
	Time time.Time // stored with second precision (unix seconds)

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

// VerifyReport summarises a successful walk of the chain.
type VerifyReport struct {
	Rows     int64
	LastID   int64
	LastHash string
}

// ChainError is the first broken link Verify found.
type ChainError struct {
	ID     int64  // the row at which the chain breaks (0 for the chain head)
	Reason string // what is wrong, e.g. "row hash mismatch (row edited)"
}

func (e *ChainError) Error() string {
	if e.ID == 0 {
		return "audit chain broken at the chain head: " + e.Reason
	}
	return fmt.Sprintf("audit chain broken at row %d: %s", e.ID, e.Reason)
}

// hashVersion is mixed into every row hash so a future encoding can coexist.
const hashVersion = "agentkeys-broker-audit-v1"

// ComputeHash returns the row hash of r chained after prevHash: hex SHA-256
// over a length-prefixed encoding of the version tag, every field of r
// (ID included, hashes excluded) and prevHash. Length prefixes make the
// encoding injective: no two different records encode alike.
func ComputeHash(r Record, prevHash string) string {
	h := sha256.New()
	put := func(s string) { writeField(h, s) }
	put(hashVersion)
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

func writeField(h hash.Hash, s string) {
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
