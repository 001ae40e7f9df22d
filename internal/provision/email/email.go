// Package email waits for the sign-up mail a service sends and finds the
// sign-in link or one-time code in it. Three backends fetch mail: the
// backend's mock inbox (agentkeys dev and tests), IMAP and SES→S3; all of
// them filter by recipient, sender, subject and arrival time, so two runs
// never consume each other's codes.
package email

import (
	"context"
	"errors"
	"regexp"
	"time"
)

// Backend names (Config.Backend).
const (
	BackendMock = "mock"
	BackendIMAP = "imap"
	BackendSES  = "ses"
)

// Config selects and configures a backend. It travels to the scraper as
// part of its JSON configuration on stdin, never in argv or env.
type Config struct {
	Backend string `json:"backend"`

	// mock: the agentkeys backend's /mock/inbox routes.
	BackendURL   string `json:"backend_url,omitempty"`
	SessionToken string `json:"session_token,omitempty"`

	// imap: implicit TLS unless IMAPInsecure (plain TCP, tests only).
	IMAPAddr     string `json:"imap_addr,omitempty"` // host:port, default port 993
	IMAPUser     string `json:"imap_user,omitempty"`
	IMAPPassword string `json:"imap_password,omitempty"`
	IMAPMailbox  string `json:"imap_mailbox,omitempty"` // default INBOX
	IMAPInsecure bool   `json:"imap_insecure,omitempty"`

	// ses: raw MIME objects written by an SES receipt rule. Credentials
	// come from the AWS SDK default chain (the broker-minted AWS_* env).
	SESBucket   string `json:"ses_bucket,omitempty"`
	SESPrefix   string `json:"ses_prefix,omitempty"`  // e.g. "<wallet>/" or "inbound/"
	SESRegion   string `json:"ses_region,omitempty"`  // default from the SDK chain
	S3Endpoint  string `json:"s3_endpoint,omitempty"` // tests: a fake S3
	S3PathStyle bool   `json:"s3_path_style,omitempty"`

	// PollInterval between checks (default 2s).
	PollInterval time.Duration `json:"poll_interval,omitempty"`
}

// Query says which message to wait for.
type Query struct {
	// To is the recipient address (required; compared case-insensitively
	// with To, Cc, Delivered-To, X-Original-To, Received "for" …), so that
	// concurrent runs sharing a mailbox never take each other's mail.
	To      string
	From    *regexp.Regexp // matched against the From header (display name included); nil = any
	Subject *regexp.Regexp // nil = any
	// Since: ignore mail that arrived, or is dated, before Since minus
	// SinceGrace. Take it just before submitting the sign-up form, so that
	// a code from an earlier run is never used. Zero: no freshness check.
	Since time.Time

	// Accept, if set, is a last filter run on a message that passed the
	// others, e.g. func(m Message) bool { return Analyze(m, ExpectOTP).Kind == KindOTP }
	// so that a marketing mail from the same sender is skipped.
	Accept func(Message) bool
}

// SinceGrace is the clock-skew allowance applied to Query.Since: a
// message is stale when its arrival time or its Date header is earlier
// than Since minus SinceGrace.
const SinceGrace = 60 * time.Second

// DefaultPollInterval is used when Config.PollInterval is zero.
const DefaultPollInterval = 2 * time.Second

// Message is a parsed mail.
type Message struct {
	ID      string
	From    string
	To      []string
	Subject string
	Date    time.Time
	Text    string // text/plain body (decoded)
	HTML    string // text/html body (decoded)

	// Recipients holds every recipient address found in the mail, lower
	// case: To, Cc, Bcc, Delivered-To, X-Original-To, Envelope-To and
	// similar delivery headers, and the "for <addr>" clause of Received
	// lines (what SES and most MTAs record as the envelope recipient).
	// The recipient filter matches Query.To against it and To.
	Recipients []string
	// Arrived is when the mailbox received the message (S3 LastModified,
	// IMAP INTERNALDATE, mock received_at); zero when unknown.
	Arrived time.Time
}

// Fetcher waits until a message matching q arrives and returns the newest
// such message. It returns ErrTimeout when ctx ends first (the caller sets
// the deadline) and an error wrapping ErrBackendDown when the mailbox
// cannot be reached at all.
type Fetcher interface {
	Fetch(ctx context.Context, q Query) (Message, error)
}

// Errors.
var (
	ErrTimeout     = errors.New("no matching e-mail arrived in time")
	ErrBackendDown = errors.New("e-mail backend unavailable")
)
