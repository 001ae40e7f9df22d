// Package sts mints AWS temporary credentials for a wallet: sts:AssumeRole on
// the data role, with a session name derived from the wallet and transitive
// session tags that IAM policies use to pin each wallet to its own resources
// (agentkeys_user_wallet, e.g. an S3 prefix
// ${aws:PrincipalTag/agentkeys_user_wallet}/*) and to deny writes to
// read-only agents (agentkeys_access = read | write). The role's trust
// policy must allow sts:TagSession as well as sts:AssumeRole.
package sts

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"strings"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	awshttp "github.com/aws/aws-sdk-go-v2/aws/transport/http"
	"github.com/aws/aws-sdk-go-v2/config"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/sts"
	"github.com/aws/aws-sdk-go-v2/service/sts/types"
	"github.com/aws/smithy-go"
)

// Session tag keys set on every AssumeRole.
const (
	TagWallet = "agentkeys_user_wallet"
	TagKind   = "agentkeys_session_kind"
	// TagAccess is "read" for a read-only agent and "write" otherwise
	// (the same key and values as the broker's OIDC access claim).
	TagAccess = "agentkeys_access"
)

// Duration bounds of an AWS role session.
const (
	MinDuration = 900 * time.Second
	MaxDuration = 43200 * time.Second
)

// DefaultTimeout bounds each STS HTTP request.
const DefaultTimeout = 10 * time.Second

// Config says how to reach STS and with which principal.
type Config struct {
	Region string
	// AccessKeyID and SecretAccessKey, both or neither: static IAM-user
	// keys. Neither means the SDK default chain (environment, shared config
	// and AWS_PROFILE, web identity, container, instance profile).
	AccessKeyID     string
	SecretAccessKey string
	// Endpoint overrides the STS endpoint (any STS-compatible service).
	Endpoint string
	// Timeout bounds each HTTP request (DefaultTimeout when zero).
	Timeout time.Duration
	// HTTPClient replaces the HTTP client (tests).
	HTTPClient *http.Client
}

// Client calls STS.
type Client struct {
	api    *sts.Client
	static bool
}

// New builds a client. It does not contact AWS.
func New(ctx context.Context, cfg Config) (*Client, error) {
	if (cfg.AccessKeyID == "") != (cfg.SecretAccessKey == "") {
		return nil, errors.New("DAEMON_ACCESS_KEY_ID and DAEMON_SECRET_ACCESS_KEY must be set together, or both left unset to use the AWS SDK default credential chain")
	}
	if cfg.Region == "" {
		return nil, errors.New("AWS region is empty")
	}
	if cfg.Timeout <= 0 {
		cfg.Timeout = DefaultTimeout
	}
	opts := []func(*config.LoadOptions) error{
		config.WithRegion(cfg.Region),
		config.WithRetryMaxAttempts(2),
	}
	if cfg.HTTPClient != nil {
		opts = append(opts, config.WithHTTPClient(cfg.HTTPClient))
	} else {
		opts = append(opts, config.WithHTTPClient(awshttp.NewBuildableClient().WithTimeout(cfg.Timeout)))
	}
	static := cfg.AccessKeyID != ""
	if static {
		opts = append(opts, config.WithCredentialsProvider(
			credentials.NewStaticCredentialsProvider(cfg.AccessKeyID, cfg.SecretAccessKey, "")))
	}
	awsCfg, err := config.LoadDefaultConfig(ctx, opts...)
	if err != nil {
		return nil, fmt.Errorf("load AWS configuration: %w", err)
	}
	api := sts.NewFromConfig(awsCfg, func(o *sts.Options) {
		if cfg.Endpoint != "" {
			o.BaseEndpoint = aws.String(cfg.Endpoint)
		}
	})
	return &Client{api: api, static: static}, nil
}

// CredentialSource describes where the client's AWS principal comes from,
// for the startup log.
func (c *Client) CredentialSource() string {
	if c.static {
		return "static IAM-user keys (DAEMON_ACCESS_KEY_ID)"
	}
	return "AWS SDK default chain (environment, AWS_PROFILE / ~/.aws, web identity, container, instance profile)"
}

// Identity is the broker's own AWS principal.
type Identity struct {
	Account string
	ARN     string
}

// CallerIdentity calls sts:GetCallerIdentity (the startup and readiness
// check).
func (c *Client) CallerIdentity(ctx context.Context) (Identity, error) {
	out, err := c.api.GetCallerIdentity(ctx, &sts.GetCallerIdentityInput{})
	if err != nil {
		return Identity{}, fmt.Errorf("get_caller_identity: %w", err)
	}
	return Identity{Account: aws.ToString(out.Account), ARN: aws.ToString(out.Arn)}, nil
}

// AssumeRequest asks for credentials for one wallet.
type AssumeRequest struct {
	RoleARN     string
	SessionName string // from SessionName
	Duration    time.Duration
	Wallet      string
	Kind        string // "master" or "agent"; tagged when set
	Access      string // "read" or "write"; tagged (transitive) when set
}

// Credentials are AWS temporary credentials. They never format or log their
// secret parts.
type Credentials struct {
	AccessKeyID     string
	SecretAccessKey string
	SessionToken    string
	Expiration      time.Time
}

func (c Credentials) String() string {
	return fmt.Sprintf("Credentials{AccessKeyID:%s Expiration:%s secret:[redacted]}", c.AccessKeyID, c.Expiration.Format(time.RFC3339))
}

// GoString keeps %#v from printing the secrets.
func (c Credentials) GoString() string { return c.String() }

// LogValue keeps slog from printing the secrets.
func (c Credentials) LogValue() slog.Value {
	return slog.GroupValue(slog.String("access_key_id", c.AccessKeyID), slog.Time("expiration", c.Expiration))
}

// AssumeRole calls sts:AssumeRole with the wallet's session tags. Its error
// text is for logs and the audit ledger, never for clients: it can name the
// role and account.
func (c *Client) AssumeRole(ctx context.Context, req AssumeRequest) (Credentials, error) {
	if req.Duration < MinDuration || req.Duration > MaxDuration {
		return Credentials{}, fmt.Errorf("assume_role: duration %v outside STS's range [%v, %v]", req.Duration, MinDuration, MaxDuration)
	}
	tags := []types.Tag{{Key: aws.String(TagWallet), Value: aws.String(req.Wallet)}}
	transitive := []string{TagWallet}
	if req.Kind != "" {
		tags = append(tags, types.Tag{Key: aws.String(TagKind), Value: aws.String(req.Kind)})
		transitive = append(transitive, TagKind)
	}
	if req.Access != "" {
		tags = append(tags, types.Tag{Key: aws.String(TagAccess), Value: aws.String(req.Access)})
		transitive = append(transitive, TagAccess)
	}
	out, err := c.api.AssumeRole(ctx, &sts.AssumeRoleInput{
		RoleArn:           aws.String(req.RoleARN),
		RoleSessionName:   aws.String(req.SessionName),
		DurationSeconds:   aws.Int32(int32(req.Duration / time.Second)),
		Tags:              tags,
		TransitiveTagKeys: transitive,
	})
	if err != nil {
		return Credentials{}, fmt.Errorf("assume_role: %w", err)
	}
	cr := out.Credentials
	if cr == nil || aws.ToString(cr.AccessKeyId) == "" || aws.ToString(cr.SecretAccessKey) == "" || aws.ToString(cr.SessionToken) == "" || cr.Expiration == nil {
		return Credentials{}, errors.New("assume_role: STS returned no credentials")
	}
	return Credentials{
		AccessKeyID:     aws.ToString(cr.AccessKeyId),
		SecretAccessKey: aws.ToString(cr.SecretAccessKey),
		SessionToken:    aws.ToString(cr.SessionToken),
		Expiration:      cr.Expiration.UTC(),
	}, nil
}

// ErrorCode returns the AWS error code of err ("AccessDenied", …), or "".
func ErrorCode(err error) string {
	var ae smithy.APIError
	if errors.As(err, &ae) {
		return ae.ErrorCode()
	}
	return ""
}

// MaxSessionNameLen is STS's limit on RoleSessionName.
const MaxSessionNameLen = 64

const sessionPrefix = "agentkeys-"

// suffixLen is "-" plus 10 random hex digits (40 bits).
const suffixLen = 11

// SessionName builds an STS RoleSessionName for wallet:
// "agentkeys-<wallet>-<10 random hex>". Characters outside [\w+=,.@-] are
// dropped, and the wallet (not the random suffix) is shortened if needed to
// fit 64 characters, so a full 0x+40-hex wallet always fits whole (63
// characters) and names never collide within a wallet.
func SessionName(wallet string) string {
	var b strings.Builder
	for _, r := range wallet {
		if r < 0x80 && (r == '_' || r == '+' || r == '=' || r == ',' || r == '.' || r == '@' || r == '-' ||
			('a' <= r && r <= 'z') || ('A' <= r && r <= 'Z') || ('0' <= r && r <= '9')) {
			b.WriteRune(r)
		}
	}
	safe := b.String()
	if room := MaxSessionNameLen - len(sessionPrefix) - suffixLen; len(safe) > room {
		safe = safe[:room]
	}
	var rnd [5]byte
	if _, err := rand.Read(rnd[:]); err != nil {
		panic("sts: crypto/rand failed")
	}
	return sessionPrefix + safe + "-" + hex.EncodeToString(rnd[:])
}
