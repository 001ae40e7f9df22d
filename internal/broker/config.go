package broker

import (
	"crypto/tls"
	"errors"
	"fmt"
	"net"
	"net/url"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/agentkeys/agentkeys/internal/audit"
	"github.com/agentkeys/agentkeys/internal/clientip"
	"github.com/agentkeys/agentkeys/internal/envflag"
	"github.com/agentkeys/agentkeys/internal/oidc"
	"github.com/agentkeys/agentkeys/internal/sts"
)

// Defaults.
const (
	DefaultBind            = "127.0.0.1"
	DefaultPort            = 8091
	DefaultBackendURL      = "http://127.0.0.1:8090"
	DefaultJWTTTL          = 300 * time.Second
	DefaultSessionDuration = 3600 * time.Second
	DefaultRegion          = "us-east-1"
	DefaultBackendTimeout  = 5 * time.Second
	DefaultAuditTimeout    = 2 * time.Second
	DefaultSTSTimeout      = 10 * time.Second
	DefaultShutdownGrace   = 30 * time.Second
	DefaultKeyReload       = 10 * time.Second
	DefaultValidateCache   = 2 * time.Second
	DefaultScopeService    = "aws"
	DefaultRatePerBearer   = 5.0 // mints per second, burst DefaultBurstPerBearer
	DefaultBurstPerBearer  = 20
	DefaultRatePerIP       = 50.0
	DefaultBurstPerIP      = 100

	MinJWTTTL = 60 * time.Second
	MaxJWTTTL = oidc.MaxTokenTTL

	// MaxValidateCache bounds the session validation cache TTL (a revoked
	// session is refused at once through the revocation epoch; this only
	// bounds how stale an unrevoked session's expiry or scope can be).
	MaxValidateCache = 5 * time.Second
)

// Config is everything an operator can set. Environment variables keep the
// original broker's names; see FromEnv.
type Config struct {
	Bind             string
	Port             int
	TLSCertFile      string
	TLSKeyFile       string
	SkipStartupCheck bool
	LogLevel         string

	BackendURL     string
	BackendTimeout time.Duration

	Issuer              string // empty: derived from a loopback bind
	AllowInsecureIssuer bool
	KeyFile             string
	JWTTTL              time.Duration
	KeyReload           time.Duration

	// DataRoleARN empty disables /v1/mint-aws-creds (an OIDC-only broker
	// needs no AWS principal at all).
	DataRoleARN     string
	Region          string
	SessionDuration time.Duration
	AccessKeyID     string
	SecretAccessKey string
	STSEndpoint     string
	STSTimeout      time.Duration

	AuditDB      string
	AuditTimeout time.Duration
	// AuditChain names this replica's chain in the ledger (default: the
	// host name). Replicas sharing a PostgreSQL ledger need distinct names.
	AuditChain string
	// Signed checkpoints of the chain head: every AuditCheckpointRows rows
	// or AuditCheckpointInterval, stored in the ledger and, when
	// AuditCheckpointFile is set, appended to that file.
	AuditCheckpointRows     int64
	AuditCheckpointInterval time.Duration
	AuditCheckpointFile     string

	ShutdownGrace time.Duration

	RatePerBearer  float64
	BurstPerBearer int
	RatePerIP      float64
	BurstPerIP     int

	// ScopeService is the service a scoped (agent) session's scope must
	// list to mint; empty lets every session mint.
	ScopeService string
	// ValidateCache is how long a successful session validation may be
	// reused (0 = ask the backend on every mint; at most MaxValidateCache).
	// Reuse also requires the backend's revocation epoch, read for every
	// mint, to be the one the validation was made at.
	ValidateCache time.Duration

	// TrustedProxies lists the reverse proxies (CIDRs, comma-separated)
	// whose X-Forwarded-For / Forwarded headers name the client.
	TrustedProxies string
	// hostCheck refuses requests for host names other than loopback and
	// the issuer's (DNS rebinding); Run turns it on.
	hostCheck bool
}

// AWSEnabled reports whether /v1/mint-aws-creds is configured.
func (c *Config) AWSEnabled() bool { return c.DataRoleARN != "" }

// Defaults returns the configuration with nothing set.
func Defaults() Config {
	home, err := os.UserHomeDir()
	if err != nil || home == "" {
		home = "."
	}
	dir := filepath.Join(home, ".agentkeys", "broker")
	return Config{
		Bind: DefaultBind, Port: DefaultPort, LogLevel: "info",
		BackendURL: DefaultBackendURL, BackendTimeout: DefaultBackendTimeout,
		KeyFile: filepath.Join(dir, "oidc-keypair.json"), JWTTTL: DefaultJWTTTL, KeyReload: DefaultKeyReload,
		Region: DefaultRegion, SessionDuration: DefaultSessionDuration, STSTimeout: DefaultSTSTimeout,
		AuditDB: filepath.Join(dir, "audit.sqlite"), AuditTimeout: DefaultAuditTimeout,
		AuditChain: defaultAuditChain(), AuditCheckpointRows: audit.DefaultCheckpointEvery,
		AuditCheckpointInterval: audit.DefaultCheckpointInterval,
		ShutdownGrace:           DefaultShutdownGrace,
		RatePerBearer:           DefaultRatePerBearer, BurstPerBearer: DefaultBurstPerBearer,
		RatePerIP: DefaultRatePerIP, BurstPerIP: DefaultBurstPerIP,
		ScopeService: DefaultScopeService, ValidateCache: DefaultValidateCache,
	}
}

// LookupFunc reads one environment variable (os.LookupEnv in production).
type LookupFunc func(name string) (string, bool)

// FromEnv reads the environment over Defaults. It reports every bad value at
// once; messages name the variable and the value, except for secrets.
func FromEnv(lookup LookupFunc) (Config, error) {
	c := Defaults()
	var errs []error
	get := func(names ...string) (string, string, bool) { // first set
		for _, n := range names {
			if v, ok := envflag.Get(envflag.Lookup(lookup), n); ok {
				return n, v, true
			}
		}
		return "", "", false
	}
	str := func(dst *string, names ...string) {
		if _, v, ok := get(names...); ok {
			*dst = v
		}
	}
	// *_SECONDS variables take whole seconds only (their names say so).
	seconds := func(dst *time.Duration, name string) {
		if _, v, ok := get(name); ok {
			n, err := strconv.ParseInt(v, 10, 64)
			if err != nil || n < 0 {
				errs = append(errs, fmt.Errorf("%s=%q is not a whole number of seconds", name, v))
				return
			}
			*dst = time.Duration(n) * time.Second
		}
	}
	float := func(dst *float64, name string) {
		if _, v, ok := get(name); ok {
			f, err := strconv.ParseFloat(v, 64)
			if err != nil {
				errs = append(errs, fmt.Errorf("%s=%q is not a number", name, v))
				return
			}
			*dst = f
		}
	}
	boolean := func(dst *bool, name string) {
		if _, v, ok := get(name); ok {
			b, err := strconv.ParseBool(v)
			if err != nil {
				errs = append(errs, fmt.Errorf("%s=%q is not a boolean (1/0/true/false)", name, v))
				return
			}
			*dst = b
		}
	}

	str(&c.BackendURL, "BROKER_BACKEND_URL")
	seconds(&c.BackendTimeout, "BROKER_BACKEND_TIMEOUT_SECONDS")
	str(&c.Issuer, "BROKER_OIDC_ISSUER")
	boolean(&c.AllowInsecureIssuer, "BROKER_OIDC_ALLOW_INSECURE_ISSUER")
	boolean(&c.SkipStartupCheck, "BROKER_SKIP_STARTUP_CHECK")
	str(&c.KeyFile, "BROKER_OIDC_KEYPAIR_PATH")
	seconds(&c.JWTTTL, "BROKER_OIDC_JWT_TTL_SECONDS")
	seconds(&c.KeyReload, "BROKER_OIDC_KEY_RELOAD_SECONDS")
	str(&c.Region, "BROKER_AWS_REGION", "REGION")
	seconds(&c.SessionDuration, "BROKER_SESSION_DURATION_SECONDS")
	str(&c.AccessKeyID, "DAEMON_ACCESS_KEY_ID", "BROKER_DAEMON_ACCESS_KEY_ID")
	str(&c.SecretAccessKey, "DAEMON_SECRET_ACCESS_KEY", "BROKER_DAEMON_SECRET_ACCESS_KEY")
	str(&c.STSEndpoint, "BROKER_STS_ENDPOINT")
	seconds(&c.STSTimeout, "BROKER_STS_TIMEOUT_SECONDS")
	str(&c.AuditDB, "BROKER_AUDIT_DB", "BROKER_AUDIT_DB_PATH")
	str(&c.AuditChain, "BROKER_AUDIT_CHAIN")
	str(&c.AuditCheckpointFile, "BROKER_AUDIT_CHECKPOINT_FILE")
	seconds(&c.AuditCheckpointInterval, "BROKER_AUDIT_CHECKPOINT_SECONDS")
	if name, v, ok := get("BROKER_AUDIT_CHECKPOINT_ROWS"); ok {
		n, err := strconv.ParseInt(v, 10, 64)
		if err != nil || n < 1 {
			errs = append(errs, fmt.Errorf("%s=%q is not a positive number of rows", name, v))
		} else {
			c.AuditCheckpointRows = n
		}
	}
	seconds(&c.ShutdownGrace, "BROKER_SHUTDOWN_GRACE_SECONDS")
	float(&c.RatePerBearer, "BROKER_RATE_PER_BEARER")
	float(&c.RatePerIP, "BROKER_RATE_PER_IP")
	seconds(&c.ValidateCache, "BROKER_VALIDATE_CACHE_SECONDS")
	str(&c.TrustedProxies, "BROKER_TRUSTED_PROXIES")
	if _, v, ok := get("BROKER_SCOPE_SERVICE"); ok {
		if v == "-" || v == "none" {
			v = ""
		}
		c.ScopeService = v
	}

	// Role ARN: BROKER_DATA_ROLE_ARN, then the legacy BROKER_AGENT_ROLE_ARN,
	// then derived from ACCOUNT_ID.
	if _, v, ok := get("BROKER_DATA_ROLE_ARN", "BROKER_AGENT_ROLE_ARN"); ok {
		c.DataRoleARN = v
	} else if _, acct, ok := get("ACCOUNT_ID"); ok {
		if !accountRE().MatchString(acct) {
			errs = append(errs, fmt.Errorf("ACCOUNT_ID=%q is not a 12-digit AWS account id", acct))
		} else {
			c.DataRoleARN = "arn:aws:iam::" + acct + ":role/agentkeys-data-role"
		}
	}
	return c, errors.Join(errs...)
}

var (
	accountRE = sync.OnceValue(func() *regexp.Regexp { return regexp.MustCompile(`^\d{12}$`) })
	roleARNRE = sync.OnceValue(func() *regexp.Regexp {
		return regexp.MustCompile(`^arn:aws[a-z-]*:iam::\d{12}:role/[\w+=,.@/-]{1,512}$`)
	})
	regionRE = sync.OnceValue(func() *regexp.Regexp { return regexp.MustCompile(`^[a-z0-9][a-z0-9-]{0,62}$`) })
)

// Validate checks the whole configuration (after flags were applied) and
// fills derived values: an empty issuer becomes the loopback listen URL.
func (c *Config) Validate() error {
	var errs []error
	bad := func(format string, args ...any) { errs = append(errs, fmt.Errorf(format, args...)) }

	if c.Port < 0 || c.Port > 65535 {
		bad("--port %d out of range 0-65535", c.Port)
	}
	if c.Bind == "" {
		bad("--bind is empty (use 127.0.0.1 for loopback only)")
	}
	if (c.TLSCertFile == "") != (c.TLSKeyFile == "") {
		bad("--tls-cert and --tls-key must be given together")
	} else if c.TLSCertFile != "" {
		if _, err := tls.LoadX509KeyPair(c.TLSCertFile, c.TLSKeyFile); err != nil {
			bad("--tls-cert/--tls-key: %v", err)
		}
	}
	if u, err := url.Parse(c.BackendURL); err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" || u.User != nil || u.RawQuery != "" {
		bad("BROKER_BACKEND_URL=%q is not a URL like http://127.0.0.1:8090", c.BackendURL)
	}
	if c.BackendTimeout < time.Second || c.BackendTimeout > time.Minute {
		bad("BROKER_BACKEND_TIMEOUT_SECONDS=%d out of range 1-60", int(c.BackendTimeout.Seconds()))
	}
	if _, err := clientip.Parse(c.TrustedProxies); err != nil {
		bad("BROKER_TRUSTED_PROXIES: %v", err)
	}
	if c.Issuer == "" {
		if !isLoopback(c.Bind) {
			bad("BROKER_OIDC_ISSUER is required when the broker binds to a non-loopback address (give the public https:// URL AWS will fetch)")
		} else {
			scheme := "http"
			if c.TLSCertFile != "" {
				scheme = "https"
			}
			c.Issuer = scheme + "://" + net.JoinHostPort(c.Bind, strconv.Itoa(c.Port))
		}
	} else if err := oidc.ValidateIssuer(c.Issuer, c.AllowInsecureIssuer); err != nil {
		bad("BROKER_OIDC_ISSUER: %v", err)
	}
	if c.KeyFile == "" {
		bad("BROKER_OIDC_KEYPAIR_PATH is empty")
	}
	if c.JWTTTL < MinJWTTTL || c.JWTTTL > MaxJWTTTL {
		bad("BROKER_OIDC_JWT_TTL_SECONDS=%d out of range %d-%d", int(c.JWTTTL.Seconds()), int(MinJWTTTL.Seconds()), int(MaxJWTTTL.Seconds()))
	}
	if c.KeyReload < time.Second || c.KeyReload > 10*time.Minute {
		bad("BROKER_OIDC_KEY_RELOAD_SECONDS=%d out of range 1-600", int(c.KeyReload.Seconds()))
	}
	if (c.AccessKeyID == "") != (c.SecretAccessKey == "") {
		bad("DAEMON_ACCESS_KEY_ID and DAEMON_SECRET_ACCESS_KEY must be set together, or both left unset to use the AWS SDK default chain (AWS_PROFILE, instance profile, ...)")
	}
	if c.DataRoleARN != "" && !roleARNRE().MatchString(c.DataRoleARN) {
		bad("BROKER_DATA_ROLE_ARN=%q is not an IAM role ARN like arn:aws:iam::123456789012:role/agentkeys-data-role", c.DataRoleARN)
	}
	if !regionRE().MatchString(c.Region) {
		bad("BROKER_AWS_REGION=%q is not a region name like us-east-1", c.Region)
	}
	if c.SessionDuration < sts.MinDuration || c.SessionDuration > sts.MaxDuration {
		bad("BROKER_SESSION_DURATION_SECONDS=%d out of range 900-43200", int(c.SessionDuration.Seconds()))
	}
	if c.STSEndpoint != "" {
		if u, err := url.Parse(c.STSEndpoint); err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" || u.User != nil {
			bad("BROKER_STS_ENDPOINT=%q is not a URL like https://sts.us-east-1.amazonaws.com", c.STSEndpoint)
		}
	}
	if c.STSTimeout < time.Second || c.STSTimeout > time.Minute {
		bad("BROKER_STS_TIMEOUT_SECONDS=%d out of range 1-60", int(c.STSTimeout.Seconds()))
	}
	if !audit.ValidChain(c.AuditChain) {
		bad("BROKER_AUDIT_CHAIN=%q is not a chain name (1-253 letters, digits, '.', '_', '-')", c.AuditChain)
	}
	if c.AuditCheckpointInterval < time.Second || c.AuditCheckpointInterval > 24*time.Hour {
		bad("BROKER_AUDIT_CHECKPOINT_SECONDS=%d out of range 1-86400", int(c.AuditCheckpointInterval.Seconds()))
	}
	if c.AuditDB == "" {
		bad("BROKER_AUDIT_DB is empty")
	}
	if c.AuditTimeout <= 0 || c.AuditTimeout > time.Minute {
		bad("audit deadline %v out of range (0, 1m]", c.AuditTimeout)
	}
	if c.ShutdownGrace < time.Second || c.ShutdownGrace > 10*time.Minute {
		bad("BROKER_SHUTDOWN_GRACE_SECONDS=%d out of range 1-600", int(c.ShutdownGrace.Seconds()))
	}
	if c.ValidateCache < 0 || c.ValidateCache > MaxValidateCache {
		bad("BROKER_VALIDATE_CACHE_SECONDS=%d out of range 0-%d (a revoked session must stop minting within seconds)", int(c.ValidateCache.Seconds()), int(MaxValidateCache.Seconds()))
	}
	return errors.Join(errs...)
}

// isLoopback reports whether a bind host only accepts local connections.
func isLoopback(host string) bool {
	host = strings.Trim(host, "[]")
	if host == "localhost" {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}

// defaultAuditChain is this host's chain name: the host name, reduced to
// the characters a chain name allows.
func defaultAuditChain() string {
	h, err := os.Hostname()
	if err != nil {
		return "broker"
	}
	b := make([]byte, 0, len(h))
	for _, c := range []byte(h) {
		switch {
		case c >= 'a' && c <= 'z', c >= 'A' && c <= 'Z', c >= '0' && c <= '9', c == '.', c == '_', c == '-':
			b = append(b, c)
		default:
			b = append(b, '_')
		}
	}
	if len(b) == 0 || len(b) > 253 {
		return "broker"
	}
	return string(b)
}
