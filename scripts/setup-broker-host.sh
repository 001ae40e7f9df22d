#!/usr/bin/env bash
# setup-broker-host.sh — install the AgentKeys backend and broker on one Linux
# host (systemd; optional nginx + certbot webroot), the way
# docs/operator-runbook.md describes. Safe to re-run: a second run with the
# same answers changes nothing.
#
# Usage:
#   sudo scripts/setup-broker-host.sh                      # interactive on a TTY
#   sudo scripts/setup-broker-host.sh --non-interactive --issuer-url https://broker.example.com \
#        --cred-mode instance-profile --account-id 123456789012 --with-nginx --with-certbot
#   scripts/setup-broker-host.sh --prefix /tmp/root --non-interactive ...   # write under a directory, start nothing
#   scripts/setup-broker-host.sh --dry-run ...             # print what would be done, change nothing
#
# Options:
#   --issuer-url URL        public issuer: https://HOST[:PORT], no trailing slash, path or query (required)
#   --account-id ID         12-digit AWS account; the broker assumes arn:aws:iam::ID:role/agentkeys-data-role
#   --role-arn ARN          role to assume instead (BROKER_DATA_ROLE_ARN)
#   --region REGION         AWS region (default us-east-1)
#   --cred-mode MODE        the broker's own AWS principal, for /v1/mint-aws-creds:
#                             instance-profile  EC2 instance role (default chain; nothing on disk)
#                             profile           named profile in /var/lib/agentkeys/.aws (placeholder written 0600)
#                             static            access keys, read from the environment (DAEMON_ACCESS_KEY_ID and
#                                               DAEMON_SECRET_ACCESS_KEY) or a hidden prompt, written only into
#                                               /etc/agentkeys/broker.env (0600). Never pass keys as arguments.
#                             none              no AWS principal: OIDC-only broker (default when no account/role)
#   --profile-name NAME     profile for --cred-mode profile (default agentkeys-broker)
#   --bucket NAME           S3 bucket named in the rendered IAM data policy (default agentkeys-data)
#   --with-nginx | --without-nginx       write the nginx site (phase 1: HTTP-01 only; phase 2 once the cert exists)
#   --with-certbot | --without-certbot   install certbot (webroot); with --certbot-email, request the certificate
#   --certbot-email EMAIL   account e-mail for Let's Encrypt
#   --backend-host NAME     also expose the backend (masters' `agentkeys init`, daemons' pairing) at
#                           https://NAME through nginx: its own server_name and certificate,
#                           AGENTKEYS_PUBLIC_URL=https://NAME and trusted proxies in backend.env.
#                           Needs --with-nginx and a master login (--login-oidc-*).
#   --skip-startup-check    the broker starts without checking its AWS principal with STS (a host
#                           that cannot reach AWS yet); writes BROKER_SKIP_STARTUP_CHECK=1
#   --login-oidc-issuer URL     OpenID provider whose ID tokens log masters in to the backend (https)
#   --login-oidc-client-id ID   client id (audience) those ID tokens carry; both or neither.
#                           Without them the backend is installed but refuses to start until
#                           AGENTKEYS_LOGIN_OIDC_ISSUER/_CLIENT_ID are set in /etc/agentkeys/backend.env.
#                           (There is deliberately no option for mock login: it lets anyone log in as any master.)
#   --bin-dir DIR           where agentkeys-backend and agentkeys-broker were built (default: the repo's bin/)
#   --prefix DIR            write everything under DIR instead of /; never creates users or starts services
#   --dry-run               print what would be done; change nothing
#   --no-start              install but do not (re)start the services
#   --interactive | --non-interactive    default: interactive when stdin is a terminal
#   -y, --yes               do not ask "Proceed?"
#   -h, --help              this text
#
# Re-running is the upgrade path: settings given by an option replace the
# env files' values; every other value, and every line an operator added
# (a PostgreSQL URL, a tuned limit), is kept. The script names each key it
# changes (never a value) and restarts a service whose binary, unit or env
# file changed; nginx is reloaded when a site changed.
#
# Exit codes: 0 done, 1 a step failed, 2 bad usage or a refused value.
set -euo pipefail
umask 077

SCRIPT_DIR="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
REPO_DIR="$(cd "$SCRIPT_DIR/.." && pwd)"
DEPLOY_DIR="$REPO_DIR/deploy"

SERVICE_USER=agentkeys
ISSUER="" ACCOUNT_ID="" ROLE_ARN="" REGION="" CRED_MODE="" PROFILE_NAME="" BUCKET=""
WITH_NGINX="" WITH_CERTBOT="" CERTBOT_EMAIL="" BIN_DIR="" PREFIX="" DRY_RUN=0 NO_START=0
INTERACTIVE="" YES=0 LOGIN_ISSUER="" LOGIN_CLIENT_ID="" BACKEND_HOST="" SKIP_CHECK=""
CHANGED=0
FLAGGED=" " # env keys whose value an option (or the environment) sets this run

say()  { printf '%s\n' "$*"; }
note() { printf '  - %s\n' "$*"; }
warn() { printf 'WARNING: %s\n' "$*" >&2; }
die()  { printf 'setup-broker-host: %s\n' "$1" >&2; exit "${2:-1}"; }
usage_die() { die "$1 (see --help)" 2; }

usage() { sed -n '2,/^set -euo/p' "${BASH_SOURCE[0]}" | sed '$d' | sed 's/^# \{0,1\}//'; }

# --- Arguments ----------------------------------------------------------------
need_arg() { [[ $# -ge 2 && -n "$2" ]] || usage_die "$1 needs a value"; }
while [[ $# -gt 0 ]]; do
  arg="$1"
  if [[ "$arg" == --*=* ]]; then set -- "${arg%%=*}" "${arg#*=}" "${@:2}"; arg="$1"; fi
  case "$arg" in
    --issuer-url)    need_arg "$@"; ISSUER="$2"; shift 2 ;;
    --account-id)    need_arg "$@"; ACCOUNT_ID="$2"; shift 2 ;;
    --role-arn)      need_arg "$@"; ROLE_ARN="$2"; shift 2 ;;
    --region)        need_arg "$@"; REGION="$2"; shift 2 ;;
    --cred-mode)     need_arg "$@"; CRED_MODE="$2"; shift 2 ;;
    --profile-name)  need_arg "$@"; PROFILE_NAME="$2"; shift 2 ;;
    --bucket)        need_arg "$@"; BUCKET="$2"; shift 2 ;;
    --certbot-email) need_arg "$@"; CERTBOT_EMAIL="$2"; shift 2 ;;
    --backend-host)  need_arg "$@"; BACKEND_HOST="$2"; shift 2 ;;
    --skip-startup-check) SKIP_CHECK=1; shift ;;
    --login-oidc-issuer)    need_arg "$@"; LOGIN_ISSUER="$2"; shift 2 ;;
    --login-oidc-client-id) need_arg "$@"; LOGIN_CLIENT_ID="$2"; shift 2 ;;
    --bin-dir)       need_arg "$@"; BIN_DIR="$2"; shift 2 ;;
    --prefix)        need_arg "$@"; PREFIX="$2"; shift 2 ;;
    --with-nginx)      WITH_NGINX=yes; shift ;;
    --without-nginx)   WITH_NGINX=no; shift ;;
    --with-certbot)    WITH_CERTBOT=yes; shift ;;
    --without-certbot) WITH_CERTBOT=no; shift ;;
    --dry-run)         DRY_RUN=1; shift ;;
    --no-start)        NO_START=1; shift ;;
    --interactive)     INTERACTIVE=yes; shift ;;
    --non-interactive) INTERACTIVE=no; shift ;;
    -y|--yes)          YES=1; shift ;;
    -h|--help)         usage; exit 0 ;;
    --access-key-id|--secret-access-key|--aws-access-key-id|--aws-secret-access-key)
      usage_die "$arg: secrets are never taken from the command line (other users can read it); set DAEMON_ACCESS_KEY_ID and DAEMON_SECRET_ACCESS_KEY in the environment or answer the prompt" ;;
    *) usage_die "unknown argument: $arg" ;;
  esac
done

if [[ -z "$INTERACTIVE" ]]; then
  if [[ -t 0 && -r /dev/tty ]]; then INTERACTIVE=yes; else INTERACTIVE=no; fi
fi
if [[ -n "$PREFIX" ]]; then
  [[ "$PREFIX" == /* ]] || PREFIX="$(pwd)/$PREFIX"
  PREFIX="${PREFIX%/}"
  [[ "$PREFIX" != "" ]] || usage_die "--prefix / is the same as no prefix; leave it out"
fi

# --- Re-runs: what the options set, and what the existing env files keep --------
# env_value FILE KEY: the last KEY=value of a systemd env file (quotes removed).
env_value() {
  [[ -r "$1" ]] || return 0
  sed -n "s/^$2=//p" "$1" | tail -n1 | sed -e 's/^"\(.*\)"$/\1/' -e "s/^'\(.*\)'\$/\1/"
}
flag() { FLAGGED+="$* "; }
[[ -z "$ISSUER" ]] || flag BROKER_OIDC_ISSUER
[[ -z "$REGION" ]] || flag BROKER_AWS_REGION
[[ -z "$ACCOUNT_ID" ]] || flag ACCOUNT_ID BROKER_DATA_ROLE_ARN
[[ -z "$ROLE_ARN" ]] || flag ACCOUNT_ID BROKER_DATA_ROLE_ARN
[[ -z "$CRED_MODE" ]] || flag AWS_PROFILE AWS_CONFIG_FILE AWS_SHARED_CREDENTIALS_FILE DAEMON_ACCESS_KEY_ID DAEMON_SECRET_ACCESS_KEY
[[ -z "$PROFILE_NAME" ]] || flag AWS_PROFILE
[[ -z "${DAEMON_ACCESS_KEY_ID:-}${DAEMON_SECRET_ACCESS_KEY:-}" ]] || flag DAEMON_ACCESS_KEY_ID DAEMON_SECRET_ACCESS_KEY
[[ -z "$LOGIN_ISSUER$LOGIN_CLIENT_ID" ]] || flag AGENTKEYS_LOGIN_OIDC_ISSUER AGENTKEYS_LOGIN_OIDC_CLIENT_ID
[[ -z "$BACKEND_HOST" ]] || flag AGENTKEYS_PUBLIC_URL AGENTKEYS_TRUSTED_PROXIES
[[ -z "$WITH_NGINX" ]] || flag BROKER_TRUSTED_PROXIES
[[ -z "$SKIP_CHECK" ]] || flag BROKER_SKIP_STARTUP_CHECK
OLD_BROKER_ENV="$PREFIX/etc/agentkeys/broker.env"
OLD_BACKEND_ENV="$PREFIX/etc/agentkeys/backend.env"
# Without the original options a re-run keeps what the files say.
if [[ -r "$OLD_BROKER_ENV" ]]; then
  [[ -n "$ISSUER" ]] || ISSUER="$(env_value "$OLD_BROKER_ENV" BROKER_OIDC_ISSUER)"
  [[ -n "$REGION" ]] || REGION="$(env_value "$OLD_BROKER_ENV" BROKER_AWS_REGION)"
  if [[ -z "$ACCOUNT_ID" && -z "$ROLE_ARN" ]]; then
    ROLE_ARN="$(env_value "$OLD_BROKER_ENV" BROKER_DATA_ROLE_ARN)"
    [[ -n "$ROLE_ARN" ]] || ACCOUNT_ID="$(env_value "$OLD_BROKER_ENV" ACCOUNT_ID)"
  fi
  if [[ -z "$CRED_MODE" ]]; then
    if [[ -n "$(env_value "$OLD_BROKER_ENV" DAEMON_ACCESS_KEY_ID)" ]]; then CRED_MODE=static
    elif [[ -n "$(env_value "$OLD_BROKER_ENV" AWS_PROFILE)" ]]; then CRED_MODE=profile
    fi
  fi
  [[ -n "$PROFILE_NAME" ]] || PROFILE_NAME="$(env_value "$OLD_BROKER_ENV" AWS_PROFILE)"
  [[ -n "$SKIP_CHECK" || "$(env_value "$OLD_BROKER_ENV" BROKER_SKIP_STARTUP_CHECK)" != 1 ]] || SKIP_CHECK=1
fi
if [[ -z "$BACKEND_HOST" && -r "$OLD_BACKEND_ENV" ]]; then
  BACKEND_HOST="$(env_value "$OLD_BACKEND_ENV" AGENTKEYS_PUBLIC_URL)"; BACKEND_HOST="${BACKEND_HOST#https://}"
fi
if [[ -z "$WITH_NGINX" && -e "$PREFIX/etc/nginx/sites-available/agentkeys-broker" ]]; then WITH_NGINX=yes; fi

# --- Validation ---------------------------------------------------------------
# Each check prints why a value is refused, never the value of a secret.
issuer_error() {
  local u="$1"
  [[ -n "$u" ]] || { echo "the issuer URL is required"; return; }
  case "$u" in
    http://*)  echo "issuer $u uses http: AWS IAM accepts only https issuers"; return ;;
    https://*) ;;
    *)         echo "issuer $u is not an https:// URL"; return ;;
  esac
  [[ "$u" != */ ]] || { echo "issuer $u must not end with a slash (verifiers compare it byte for byte with the token's iss)"; return; }
  local rest="${u#https://}"
  [[ "$rest" != */* ]] || { echo "issuer $u must not have a path (the broker serves discovery at the root)"; return; }
  [[ "$rest" != *\?* && "$rest" != *\#* ]] || { echo "issuer $u must not have a query or fragment"; return; }
  [[ "$rest" != *@* ]] || { echo "issuer $u must not carry user info"; return; }
  [[ "$rest" =~ ^[A-Za-z0-9]([A-Za-z0-9.-]{0,251}[A-Za-z0-9])?(:[0-9]{1,5})?$ ]] || { echo "issuer $u does not have a valid host name"; return; }
}
valid_account()  { [[ "$1" =~ ^[0-9]{12}$ ]]; }
valid_role_arn() { [[ "$1" =~ ^arn:aws[a-z-]*:iam::[0-9]{12}:role/[A-Za-z0-9_+=,.@/-]{1,512}$ ]]; }
valid_region()   { [[ "$1" =~ ^[a-z0-9][a-z0-9-]{0,62}$ ]]; }
valid_profile()  { [[ "$1" =~ ^[A-Za-z0-9_.+-]{1,64}$ ]]; }
valid_bucket()   { [[ "$1" =~ ^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$ ]]; }
valid_login_issuer()    { [[ "$1" =~ ^https://[A-Za-z0-9.-]+(:[0-9]{1,5})?(/[A-Za-z0-9._~/-]*)?$ ]]; }
valid_login_client_id() { [[ "$1" =~ ^[A-Za-z0-9._:@/+-]{1,255}$ ]]; }
valid_email()    { [[ "$1" =~ ^[^[:space:]@]+@[^[:space:]@]+\.[^[:space:]@]+$ ]]; }
valid_akid()     { [[ "$1" =~ ^[A-Z0-9]{16,128}$ ]]; }
valid_secret()   { [[ "$1" =~ ^[A-Za-z0-9/+=]{16,128}$ ]]; }

# --- Prompts (only on a TTY) ----------------------------------------------------
ask() { # ask VAR "question" default
  local __var="$1" __q="$2" __def="${3:-}" __ans
  if [[ -n "$__def" ]]; then printf '%s [%s]: ' "$__q" "$__def" >/dev/tty; else printf '%s: ' "$__q" >/dev/tty; fi
  IFS= read -r __ans </dev/tty || __ans=""
  printf -v "$__var" '%s' "${__ans:-$__def}"
}
ask_secret() { # no echo, never printed back
  local __var="$1" __q="$2" __ans
  printf '%s (input hidden): ' "$__q" >/dev/tty
  IFS= read -rs __ans </dev/tty || __ans=""
  printf '\n' >/dev/tty
  printf -v "$__var" '%s' "$__ans"
}
ask_yes() { # ask_yes "question" default(yes|no) → 0 for yes
  local yn
  ask yn "$1 (yes/no)" "$2"
  [[ "$yn" =~ ^([yY]|[yY][eE][sS])$ ]]
}
explain() { [[ "$INTERACTIVE" == yes ]] && { printf '\n%s\n' "$*" >/dev/tty; } || true; }

if [[ "$INTERACTIVE" == yes ]]; then
  printf '%s\n' "AgentKeys broker host setup. Each question says what it is for; Enter keeps the [default]." >/dev/tty
  while [[ -z "$ISSUER" || -n "$(issuer_error "$ISSUER")" ]]; do
    [[ -z "$ISSUER" ]] || printf '  refused: %s\n' "$(issuer_error "$ISSUER")" >/dev/tty
    explain "The issuer URL is this broker's public https address (for example https://broker.example.com).
It goes into every token's iss claim and is what you register in AWS IAM as the OIDC provider,
so it must match byte for byte: https, no trailing slash, no path. DNS for the host must point here."
    ask ISSUER "Issuer URL" ""
  done
  if [[ -z "$ACCOUNT_ID" && -z "$ROLE_ARN" ]]; then
    explain "Optional: the AWS account whose role 'agentkeys-data-role' the broker assumes for agents
(POST /v1/mint-aws-creds). Leave empty for an OIDC-only broker: agents then exchange the broker's
token with AWS themselves (AssumeRoleWithWebIdentity) and the broker needs no AWS credentials."
    while :; do
      ask ACCOUNT_ID "AWS account id (12 digits, empty for none)" ""
      [[ -z "$ACCOUNT_ID" ]] || valid_account "$ACCOUNT_ID" && break
      printf '  refused: not a 12-digit account id\n' >/dev/tty
    done
  fi
  if [[ -z "$REGION" ]]; then
    explain "The AWS region for STS calls and for the region given to agents."
    ask REGION "AWS region" "us-east-1"
  fi
  if [[ -z "$CRED_MODE" && ( -n "$ACCOUNT_ID" || -n "$ROLE_ARN" ) ]]; then
    explain "How the broker itself authenticates to AWS to assume the data role:
  1) instance-profile  the EC2 instance's role (recommended: no keys on disk)
  2) profile           a named profile in /var/lib/agentkeys/.aws (you fill in the keys later)
  3) static            access keys typed now, stored only in /etc/agentkeys/broker.env (0600)"
    ask choice "Credential mode (1-3)" "1"
    case "$choice" in 1|instance-profile) CRED_MODE=instance-profile ;; 2|profile) CRED_MODE=profile ;;
      3|static) CRED_MODE=static ;; *) usage_die "unknown choice $choice" ;; esac
  fi
  if [[ "$CRED_MODE" == profile && -z "$PROFILE_NAME" ]]; then
    explain "The AWS profile name the broker uses (AWS_PROFILE)."
    ask PROFILE_NAME "Profile name" "agentkeys-broker"
  fi
  if [[ -z "$WITH_NGINX" ]]; then
    explain "nginx terminates TLS on :443 and forwards only the broker's public routes to 127.0.0.1:8091.
Without it you must put another TLS proxy in front (AWS fetches the issuer over https)."
    if ask_yes "Install the nginx site" yes; then WITH_NGINX=yes; else WITH_NGINX=no; fi
  fi
  if [[ -z "$WITH_CERTBOT" ]]; then
    explain "certbot gets a Let's Encrypt certificate through the nginx webroot (HTTP-01 on port 80)."
    def=no; [[ "$WITH_NGINX" == yes ]] && def=yes
    if ask_yes "Install certbot" "$def"; then WITH_CERTBOT=yes; else WITH_CERTBOT=no; fi
  fi
  if [[ -z "$LOGIN_ISSUER" && -z "$LOGIN_CLIENT_ID" ]] && ! grep -qs '^AGENTKEYS_LOGIN_OIDC_ISSUER=.' "$PREFIX/etc/agentkeys/backend.env"; then
    explain "Masters log in to the backend with an ID token from your OpenID provider (Google, Okta, Entra ID,
Keycloak, ...): give its issuer URL and the client id registered for the agentkeys CLI. Leave both
empty to set them later in /etc/agentkeys/backend.env: until then the backend refuses to start."
    while :; do
      ask LOGIN_ISSUER "Login OpenID issuer URL (https, empty to skip)" ""
      [[ -z "$LOGIN_ISSUER" ]] || valid_login_issuer "$LOGIN_ISSUER" && break
      printf '  refused: not an https:// issuer URL\n' >/dev/tty
    done
    while [[ -n "$LOGIN_ISSUER" ]]; do
      ask LOGIN_CLIENT_ID "Login OpenID client id" ""
      valid_login_client_id "$LOGIN_CLIENT_ID" && break
      printf '  refused: the client id is required (letters, digits and ._:@/+-)\n' >/dev/tty
    done
  fi
  if [[ "$WITH_NGINX" == yes && -z "$BACKEND_HOST" && -n "$LOGIN_ISSUER$(env_value "$OLD_BACKEND_ENV" AGENTKEYS_LOGIN_OIDC_ISSUER)" ]]; then
    explain "Masters (agentkeys init on their laptops) and sandbox daemons on other machines reach the backend,
not the broker. Give it its own public name (DNS pointing here, for example agentkeys.example.com) and
nginx serves it with its own certificate; leave empty to keep the backend reachable on this host only."
    while :; do
      ask BACKEND_HOST "Backend public name (empty: this host only)" ""
      [[ -z "$BACKEND_HOST" || "$BACKEND_HOST" =~ ^[A-Za-z0-9]([A-Za-z0-9.-]{0,251}[A-Za-z0-9])?$ ]] && break
      printf '  refused: a DNS name without scheme, port or path\n' >/dev/tty
    done
    [[ -z "$BACKEND_HOST" ]] || flag AGENTKEYS_PUBLIC_URL AGENTKEYS_TRUSTED_PROXIES
  fi
  if [[ "$WITH_CERTBOT" == yes && -z "$CERTBOT_EMAIL" ]]; then
    explain "With an e-mail address the certificate is requested now (the DNS name must already point here);
leave empty to request it later with the command printed at the end."
    ask CERTBOT_EMAIL "Let's Encrypt e-mail (optional)" ""
  fi
fi

# Defaults for what was not asked.
REGION="${REGION:-us-east-1}"
PROFILE_NAME="${PROFILE_NAME:-agentkeys-broker}"
BUCKET="${BUCKET:-agentkeys-data}"
WITH_NGINX="${WITH_NGINX:-no}"
if [[ -z "$WITH_CERTBOT" ]]; then WITH_CERTBOT=no; fi
if [[ -z "$CRED_MODE" ]]; then
  if [[ -n "$ACCOUNT_ID" || -n "$ROLE_ARN" ]]; then CRED_MODE=instance-profile; else CRED_MODE=none; fi
fi

# Checks, all before anything is touched.
err="$(issuer_error "$ISSUER")"; [[ -z "$err" ]] || usage_die "$err"
[[ -z "$ACCOUNT_ID" ]] || valid_account "$ACCOUNT_ID" || usage_die "--account-id must be 12 digits"
[[ -z "$ROLE_ARN" ]] || valid_role_arn "$ROLE_ARN" || usage_die "--role-arn is not an IAM role ARN like arn:aws:iam::123456789012:role/agentkeys-data-role"
valid_region "$REGION" || usage_die "--region $REGION is not a region name like us-east-1"
valid_bucket "$BUCKET" || usage_die "--bucket $BUCKET is not an S3 bucket name"
case "$CRED_MODE" in none|instance-profile|profile|static) ;; *) usage_die "--cred-mode must be instance-profile, profile, static or none" ;; esac
[[ "$CRED_MODE" != profile ]] || valid_profile "$PROFILE_NAME" || usage_die "--profile-name may only hold letters, digits and _.+-"
[[ -z "$CERTBOT_EMAIL" ]] || valid_email "$CERTBOT_EMAIL" || usage_die "--certbot-email is not an e-mail address"
if [[ -n "$LOGIN_ISSUER" || -n "$LOGIN_CLIENT_ID" ]]; then
  [[ -n "$LOGIN_ISSUER" && -n "$LOGIN_CLIENT_ID" ]] || usage_die "give both --login-oidc-issuer and --login-oidc-client-id, or neither"
  valid_login_issuer "$LOGIN_ISSUER" || usage_die "--login-oidc-issuer must be an https:// URL of an OpenID provider"
  valid_login_client_id "$LOGIN_CLIENT_ID" || usage_die "--login-oidc-client-id may only hold letters, digits and ._:@/+-"
fi
if [[ "$CRED_MODE" != none && -z "$ACCOUNT_ID" && -z "$ROLE_ARN" ]]; then
  usage_die "--cred-mode $CRED_MODE needs --account-id or --role-arn (the role the broker assumes)"
fi
if [[ -n "$BACKEND_HOST" ]]; then
  [[ "$BACKEND_HOST" =~ ^[A-Za-z0-9]([A-Za-z0-9.-]{0,251}[A-Za-z0-9])?$ ]] || usage_die "--backend-host must be a DNS name like agentkeys.example.com (no scheme, port or path)"
  [[ "$WITH_NGINX" == yes ]] || usage_die "--backend-host is served through nginx: add --with-nginx"
fi
if [[ "$WITH_CERTBOT" == yes && "$WITH_NGINX" != yes ]]; then
  usage_die "--with-certbot uses the nginx webroot: add --with-nginx"
fi
if [[ -z "$PREFIX" && $DRY_RUN -eq 0 ]]; then
  [[ "$(uname -s)" == Linux ]] || die "only Linux with systemd is supported"
  [[ $EUID -eq 0 ]] || die "run as root (sudo), or use --prefix DIR / --dry-run"
  if [[ $NO_START -eq 0 ]] && { ! command -v systemctl >/dev/null 2>&1 || [[ ! -d /run/systemd/system ]]; }; then
    die "systemd is not running on this host (a container without an init?): the services cannot be started.
  Re-run with --no-start to install only, then run /usr/local/bin/agentkeys-backend and
  '/usr/local/bin/agentkeys-broker serve' as user agentkeys with /etc/agentkeys/backend.env and broker.env
  in their environment (your process supervisor's equivalent of the units in /etc/systemd/system)"
  fi
fi

ISSUER_HOST="${ISSUER#https://}"
ISSUER_HOST_NOPORT="${ISSUER_HOST%%:*}"
if [[ -z "$ACCOUNT_ID" && -n "$ROLE_ARN" ]]; then ACCOUNT_ID="$(cut -d: -f5 <<<"$ROLE_ARN")"; fi

R="$PREFIX" # root of every path written
ENV_DIR="$R/etc/agentkeys"
BROKER_ENV="$ENV_DIR/broker.env"
BACKEND_ENV="$ENV_DIR/backend.env"
STATE="$R/var/lib/agentkeys"
UNIT_DIR="$R/etc/systemd/system"
BIN_DEST="$R/usr/local/bin"
DOC_DEST="$R/usr/local/share/doc/agentkeys"
NGINX_SITE="$R/etc/nginx/sites-available/agentkeys-broker"
NGINX_LINK="$R/etc/nginx/sites-enabled/agentkeys-broker"
WEBROOT="$R/var/www/certbot"
CERT="$R/etc/letsencrypt/live/$ISSUER_HOST_NOPORT/fullchain.pem"

# Static keys: from the environment or a hidden prompt; else kept from an
# existing env file (re-runs). Never printed, never on a command line.
AKID="${DAEMON_ACCESS_KEY_ID:-}" SECRET="${DAEMON_SECRET_ACCESS_KEY:-}"
unset DAEMON_ACCESS_KEY_ID DAEMON_SECRET_ACCESS_KEY
if [[ "$CRED_MODE" == static ]]; then
  if [[ -n "$AKID" && -z "$SECRET" ]] || [[ -z "$AKID" && -n "$SECRET" ]]; then
    usage_die "static credentials need both DAEMON_ACCESS_KEY_ID and DAEMON_SECRET_ACCESS_KEY (only one is set)"
  fi
  if [[ -z "$AKID" && -r "$BROKER_ENV" ]]; then
    AKID="$(sed -n 's/^DAEMON_ACCESS_KEY_ID=//p' "$BROKER_ENV" | tail -n1)"
    SECRET="$(sed -n 's/^DAEMON_SECRET_ACCESS_KEY=//p' "$BROKER_ENV" | tail -n1)"
    [[ -z "$AKID" ]] || note_kept=1
  fi
  if [[ -z "$AKID" && "$INTERACTIVE" == yes ]]; then
    explain "Static keys belong to an IAM user allowed only sts:AssumeRole + sts:TagSession on the data role.
They are written to $BROKER_ENV (0600, root) and nowhere else."
    ask_secret AKID "AWS access key id"
    ask_secret SECRET "AWS secret access key"
  fi
  [[ -n "$AKID" && -n "$SECRET" ]] || usage_die "--cred-mode static: set DAEMON_ACCESS_KEY_ID and DAEMON_SECRET_ACCESS_KEY in the environment (never as arguments)"
  valid_akid "$AKID" || usage_die "the access key id is not well-formed (upper-case letters and digits)"
  valid_secret "$SECRET" || usage_die "the secret access key is not well-formed"
fi

# Master login: from the options, else kept from an existing env file
# (re-runs). Mock login is never written: it would let anyone who reaches
# the backend log in as any master.
if [[ -z "$LOGIN_ISSUER" && -r "$BACKEND_ENV" ]]; then
  LOGIN_ISSUER="$(sed -n 's/^AGENTKEYS_LOGIN_OIDC_ISSUER=//p' "$BACKEND_ENV" | tail -n1)"
  LOGIN_CLIENT_ID="$(sed -n 's/^AGENTKEYS_LOGIN_OIDC_CLIENT_ID=//p' "$BACKEND_ENV" | tail -n1)"
  if [[ -z "$LOGIN_ISSUER" || -z "$LOGIN_CLIENT_ID" ]]; then LOGIN_ISSUER="" LOGIN_CLIENT_ID=""; fi
fi
if [[ -n "$BACKEND_HOST" && -z "$LOGIN_ISSUER" ]]; then
  usage_die "--backend-host exposes the backend to masters: configure their login too (--login-oidc-issuer URL --login-oidc-client-id ID)"
fi
if [[ -n "$BACKEND_HOST" && "$BACKEND_HOST" == "$ISSUER_HOST_NOPORT" ]]; then
  usage_die "--backend-host must be another name than the issuer's ($ISSUER_HOST_NOPORT): each has its own nginx site and certificate"
fi
no_login_warning() {
  warn "no master login is configured: agentkeys-backend will refuse to start until $BACKEND_ENV sets
  AGENTKEYS_LOGIN_OIDC_ISSUER=https://YOUR-IDP and AGENTKEYS_LOGIN_OIDC_CLIENT_ID=CLIENT-ID
  (or re-run this script with --login-oidc-issuer URL --login-oidc-client-id ID)."
}

# Binaries.
if [[ -z "$BIN_DIR" ]]; then BIN_DIR="$REPO_DIR/bin"; fi
HAVE_BINS=1
for b in agentkeys-backend agentkeys-broker; do [[ -x "$BIN_DIR/$b" ]] || HAVE_BINS=0; done

# --- Summary --------------------------------------------------------------------
say "AgentKeys broker host setup$([[ $DRY_RUN -eq 1 ]] && echo ' (dry run: nothing is changed)')"
note "root:        ${PREFIX:-/}"
note "issuer:      $ISSUER"
if [[ -n "$ROLE_ARN" ]]; then note "data role:   $ROLE_ARN"
elif [[ -n "$ACCOUNT_ID" ]]; then note "data role:   arn:aws:iam::$ACCOUNT_ID:role/agentkeys-data-role"
else note "data role:   none (OIDC-only; /v1/mint-aws-creds disabled)"; fi
note "region:      $REGION"
note "credentials: $CRED_MODE$([[ "$CRED_MODE" == profile ]] && echo " ($PROFILE_NAME)")$([[ "$CRED_MODE" == static ]] && echo " (from ${note_kept:+the existing env file}${note_kept:-the environment/prompt}; stored only in $BROKER_ENV)")"
note "nginx:       $WITH_NGINX    certbot: $WITH_CERTBOT"
note "backend:     $([[ -n "$BACKEND_HOST" ]] && echo "https://$BACKEND_HOST (its own nginx site)" || echo "127.0.0.1:8090 only (no --backend-host)")"
if [[ -n "$LOGIN_ISSUER" ]]; then note "login:       OpenID $LOGIN_ISSUER (client $LOGIN_CLIENT_ID)"
else note "login:       NOT CONFIGURED (the backend will refuse to start)"; fi
note "binaries:    $([[ $HAVE_BINS -eq 1 ]] && echo "$BIN_DIR" || echo "not found in $BIN_DIR (run: make build)")"
if [[ "$INTERACTIVE" == yes && $YES -eq 0 && $DRY_RUN -eq 0 ]]; then
  ask_yes "Proceed" yes || die "stopped; nothing was changed" 1
fi

# --- Actions (each idempotent; --dry-run only reports) ---------------------------
owner_ok() { [[ -z "$PREFIX" && $EUID -eq 0 ]]; }
do_chown() { # do_chown OWNER PATH
  if owner_ok; then chown "$1" "$2"; fi
}
ensure_dir() { # ensure_dir PATH MODE OWNER
  local p="$1" mode="$2" owner="$3"
  if [[ -d "$p" ]]; then
    if [[ "$(stat -c '%a' "$p")" != "${mode#0}" ]]; then
      if [[ $DRY_RUN -eq 1 ]]; then say "would chmod $mode $p"; else chmod "$mode" "$p"; say "chmod $mode $p"; CHANGED=1; fi
    fi
  else
    if [[ $DRY_RUN -eq 1 ]]; then say "would create $p/ ($mode, $owner)"; return; fi
    (umask 022; mkdir -p "$p"); chmod "$mode" "$p"; say "created $p/ ($mode, $owner)"; CHANGED=1
  fi
  [[ $DRY_RUN -eq 1 ]] || do_chown "$owner" "$p"
}
# put_file PATH MODE OWNER [keep]: content on stdin; "keep" never replaces
# an existing file (operator-edited placeholders). Feed it with a redirect or
# `< <(cmd)`, never `cmd | put_file`: a pipeline runs it in a subshell and
# its CHANGED=1 (which triggers reloads and restarts) would be lost.
put_file() {
  local p="$1" mode="$2" owner="$3" keep="${4:-}" tmp
  tmp="$(mktemp)"; cat >"$tmp"
  if [[ -e "$p" && -n "$keep" ]]; then rm -f "$tmp"; say "kept $p (existing file is never overwritten)"; return; fi
  if [[ -f "$p" ]] && cmp -s "$tmp" "$p" && [[ "$(stat -c '%a' "$p")" == "${mode#0}" ]]; then
    rm -f "$tmp"; say "unchanged $p"; return
  fi
  if [[ $DRY_RUN -eq 1 ]]; then rm -f "$tmp"; say "would write $p ($mode, $owner)"; return; fi
  (umask 022; mkdir -p "$(dirname "$p")")
  local dst_tmp; dst_tmp="$(mktemp "$(dirname "$p")/.agentkeys-setup.XXXXXX")"
  cat "$tmp" >"$dst_tmp"; rm -f "$tmp"
  chmod "$mode" "$dst_tmp"; do_chown "$owner" "$dst_tmp"
  mv -f "$dst_tmp" "$p"
  say "wrote $p ($mode, $owner)"; CHANGED=1
}
# Keys the script writes itself. An assignment in an existing env file that
# this run does not write is carried over, unless it is one of these and an
# option of this run decided it (e.g. --cred-mode instance-profile drops the
# static keys).
MANAGED_KEYS=" AGENTKEYS_BACKEND_LISTEN AGENTKEYS_DATA_DIR AGENTKEYS_LOGIN_OIDC_ISSUER AGENTKEYS_LOGIN_OIDC_CLIENT_ID
 AGENTKEYS_PUBLIC_URL AGENTKEYS_TRUSTED_PROXIES BROKER_BIND BROKER_PORT BROKER_BACKEND_URL BROKER_OIDC_ISSUER
 BROKER_TRUSTED_PROXIES BROKER_OIDC_KEYPAIR_PATH BROKER_AUDIT_DB BROKER_AWS_REGION BROKER_DATA_ROLE_ARN ACCOUNT_ID
 AWS_PROFILE AWS_CONFIG_FILE AWS_SHARED_CREDENTIALS_FILE DAEMON_ACCESS_KEY_ID DAEMON_SECRET_ACCESS_KEY
 BROKER_SKIP_STARTUP_CHECK "
# put_env PATH: the env file this run computes on stdin, merged with the
# existing file: a key no option set this run keeps its existing value;
# assignments the script does not manage are appended unchanged. Names each
# key that changes (never a value: these files hold secrets).
put_env() {
  local p="$1" new merged rep
  new="$(mktemp)"; merged="$(mktemp)"; rep="$(mktemp)"; cat >"$new"
  if [[ -f "$p" ]]; then
    awk -v flagged="$FLAGGED" -v managed="$MANAGED_KEYS" -v report="$rep" '
      BEGIN { gsub(/[[:space:]]+/, " ", managed); gsub(/[[:space:]]+/, " ", flagged) }
      function key(line) { if (line ~ /^[A-Za-z_][A-Za-z0-9_]*=/) { sub(/=.*/, "", line); return line } return "" }
      FNR == NR { k = key($0); if (k != "") { if (!(k in old)) order[++n] = k; old[k] = $0 } next }
      {
        k = key($0)
        if (k != "") {
          seen[k] = 1
          if ((k in old) && index(flagged, " " k " ") == 0) {
            if (old[k] != $0) print "kept " k " (existing value; no option changes it)" > report
            print old[k]; next
          }
          if (!(k in old)) print "added " k > report
          else if (old[k] != $0) print "changed " k > report
        }
        print
      }
      END {
        for (i = 1; i <= n; i++) {
          k = order[i]
          if (k in seen) continue
          # A setting the options of this run decided against (another
          # credential mode, a role instead of an account) goes; any other
          # belongs to the operator and stays.
          if (index(managed, " " k " ") > 0 && index(flagged, " " k " ") > 0) { print "removed " k > report; continue }
          if (!hdr++) print "# Kept from the previous file: settings added by the operator."
          print old[k]
        }
      }' "$p" "$new" >"$merged"
    sed "s|^|  $(basename "$p"): |" "$rep"; rm -f "$rep"
  else
    cp "$new" "$merged"; rm -f "$rep"
  fi
  rm -f "$new"
  put_file "$p" 0600 root:root <"$merged"
  rm -f "$merged"
}
put_bin() { # put_bin SRC DEST
  if [[ -f "$2" ]] && cmp -s "$1" "$2"; then say "unchanged $2"; return; fi
  if [[ $DRY_RUN -eq 1 ]]; then say "would install $2 (0755)"; return; fi
  (umask 022; mkdir -p "$(dirname "$2")")
  install -m 0755 "$1" "$2.new" && mv -f "$2.new" "$2"
  say "installed $2 (0755)"; CHANGED=1
}
put_link() { # put_link TARGET LINK
  if [[ -L "$2" && "$(readlink "$2")" == "$1" ]]; then say "unchanged $2 -> $1"; return; fi
  if [[ $DRY_RUN -eq 1 ]]; then say "would link $2 -> $1"; return; fi
  (umask 022; mkdir -p "$(dirname "$2")"); ln -sfn "$1" "$2"; say "linked $2 -> $1"; CHANGED=1
}
host_cmd() { # a command that changes the host itself: never under --prefix
  if [[ -n "$PREFIX" ]]; then say "skipped (--prefix): $*"; return 0; fi
  if [[ $DRY_RUN -eq 1 ]]; then say "would run: $*"; return 0; fi
  say "running: $*"; "$@"
}
render() { sed -e "s|@HOST@|$ISSUER_HOST_NOPORT|g" -e "s|@ISSUER_HOST@|$ISSUER_HOST|g" -e "s|@BACKEND_HOST@|$BACKEND_HOST|g" \
               -e "s|@ACCOUNT_ID@|$ACCOUNT_ID|g" -e "s|@BUCKET@|$BUCKET|g" "$1"; }

# Service user.
if [[ -n "$PREFIX" ]]; then
  say "skipped (--prefix): create system user $SERVICE_USER"
elif getent passwd "$SERVICE_USER" >/dev/null 2>&1; then
  say "unchanged user $SERVICE_USER"
else
  host_cmd useradd --system --user-group --home-dir /var/lib/agentkeys --no-create-home --shell /usr/sbin/nologin "$SERVICE_USER"
  [[ $DRY_RUN -eq 1 ]] || CHANGED=1
fi

# Directories: state 0700 owned by the service user; env files root-only.
ensure_dir "$ENV_DIR" 0700 root:root
ensure_dir "$STATE" 0700 "$SERVICE_USER:$SERVICE_USER"
ensure_dir "$STATE/backend" 0700 "$SERVICE_USER:$SERVICE_USER"
ensure_dir "$STATE/broker" 0700 "$SERVICE_USER:$SERVICE_USER"

# Binaries.
if [[ $HAVE_BINS -eq 1 ]]; then
  for b in agentkeys-backend agentkeys-broker agentkeys; do
    [[ -x "$BIN_DIR/$b" ]] && put_bin "$BIN_DIR/$b" "$BIN_DEST/$b"
  done
elif [[ -z "$PREFIX" && $DRY_RUN -eq 0 && ! -x /usr/local/bin/agentkeys-broker ]]; then
  die "no binaries in $BIN_DIR and none installed: run 'make build' first (or give --bin-dir)"
else
  say "skipped binaries: none in $BIN_DIR"
fi

# Environment files (merged with what is there: see put_env).
put_env "$BACKEND_ENV" < <(
  echo "# Written by scripts/setup-broker-host.sh; every variable: deploy/env/backend.env.example"
  echo "AGENTKEYS_BACKEND_LISTEN=127.0.0.1:8090"
  echo "AGENTKEYS_DATA_DIR=/var/lib/agentkeys/backend"
  if [[ -n "$LOGIN_ISSUER" ]]; then
    echo "AGENTKEYS_LOGIN_OIDC_ISSUER=$LOGIN_ISSUER"
    echo "AGENTKEYS_LOGIN_OIDC_CLIENT_ID=$LOGIN_CLIENT_ID"
  else
    echo "# No master login yet: the backend refuses to start until both are set."
    echo "#AGENTKEYS_LOGIN_OIDC_ISSUER=https://YOUR-IDP"
    echo "#AGENTKEYS_LOGIN_OIDC_CLIENT_ID=CLIENT-ID"
  fi
  if [[ -n "$BACKEND_HOST" ]]; then
    echo "# Reached through nginx at https://$BACKEND_HOST (deploy/nginx/agentkeys-backend.phase2.conf):"
    echo "# other Host names are refused, and X-Forwarded-For is believed only from this host."
    echo "AGENTKEYS_PUBLIC_URL=https://$BACKEND_HOST"
    echo "AGENTKEYS_TRUSTED_PROXIES=127.0.0.1/32,::1/128"
  fi
)

put_env "$BROKER_ENV" < <(
  echo "# Written by scripts/setup-broker-host.sh (mode 0600; it may hold secrets)."
  echo "# Every variable, with defaults and ranges: deploy/env/broker.env.example"
  echo "BROKER_BIND=127.0.0.1"
  echo "BROKER_PORT=8091"
  echo "BROKER_BACKEND_URL=http://127.0.0.1:8090"
  echo "BROKER_OIDC_ISSUER=$ISSUER"
  if [[ "$WITH_NGINX" == yes ]]; then
    echo "# nginx on this host names the client in X-Forwarded-For; believe it only from here."
    echo "BROKER_TRUSTED_PROXIES=127.0.0.1/32,::1/128"
  fi
  echo "BROKER_OIDC_KEYPAIR_PATH=/var/lib/agentkeys/broker/oidc-keypair.json"
  echo "BROKER_AUDIT_DB=/var/lib/agentkeys/broker/audit.sqlite"
  echo "BROKER_AWS_REGION=$REGION"
  if [[ -n "$ROLE_ARN" ]]; then echo "BROKER_DATA_ROLE_ARN=$ROLE_ARN"
  elif [[ -n "$ACCOUNT_ID" ]]; then echo "ACCOUNT_ID=$ACCOUNT_ID"; fi
  case "$CRED_MODE" in
    instance-profile) echo "# AWS credentials: EC2 instance profile (SDK default chain)" ;;
    profile)
      echo "AWS_PROFILE=$PROFILE_NAME"
      echo "AWS_CONFIG_FILE=/var/lib/agentkeys/.aws/config"
      echo "AWS_SHARED_CREDENTIALS_FILE=/var/lib/agentkeys/.aws/credentials" ;;
    static)
      echo "DAEMON_ACCESS_KEY_ID=$AKID"
      echo "DAEMON_SECRET_ACCESS_KEY=$SECRET" ;;
    none) echo "# No AWS principal: OIDC-only broker" ;;
  esac
  if [[ -n "$SKIP_CHECK" ]]; then
    echo "# Start without the STS check (no route to AWS yet); /readyz reports sts_ok=false until there is."
    echo "BROKER_SKIP_STARTUP_CHECK=1"
  fi
)
AKID="" SECRET=""

if [[ "$CRED_MODE" == profile ]]; then
  ensure_dir "$STATE/.aws" 0700 "$SERVICE_USER:$SERVICE_USER"
  put_file "$STATE/.aws/credentials" 0600 "$SERVICE_USER:$SERVICE_USER" keep < <(
    printf '[%s]\naws_access_key_id = REPLACE_WITH_ACCESS_KEY_ID\naws_secret_access_key = REPLACE_WITH_SECRET_ACCESS_KEY\n' "$PROFILE_NAME")
  put_file "$STATE/.aws/config" 0600 "$SERVICE_USER:$SERVICE_USER" < <(printf '[profile %s]\nregion = %s\n' "$PROFILE_NAME" "$REGION")
fi

# IAM documents for the AWS recipe (docs/cloud-setup.md), filled in.
if [[ -n "$ACCOUNT_ID" ]]; then
  ensure_dir "$ENV_DIR/aws" 0755 root:root
  put_file "$ENV_DIR/aws/trust-policy.json" 0644 root:root < <(render "$DEPLOY_DIR/aws/trust-policy.json")
  put_file "$ENV_DIR/aws/data-policy.json" 0644 root:root < <(render "$DEPLOY_DIR/aws/data-policy.json")
fi

# systemd units and the runbook they point at.
ensure_dir "$UNIT_DIR" 0755 root:root
for u in agentkeys-backend.service agentkeys-broker.service; do
  put_file "$UNIT_DIR/$u" 0644 root:root <"$DEPLOY_DIR/systemd/$u"
done
# Binaries, env files and units changed: the services must restart.
SVC_CHANGED=$CHANGED
ensure_dir "$R/usr/local/share/doc" 0755 root:root
ensure_dir "$DOC_DEST" 0755 root:root
for d in operator-runbook.md cloud-setup.md; do
  if [[ -f "$REPO_DIR/docs/$d" ]]; then put_file "$DOC_DEST/$d" 0644 root:root <"$REPO_DIR/docs/$d"; fi
done

APT_UPDATED=0
apt_install() { # apt_install PKG...: the package lists first (a fresh host has none)
  if [[ $APT_UPDATED -eq 0 ]]; then host_cmd apt-get update -qq; APT_UPDATED=1; fi
  host_cmd env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "$@"
}
# nginx_sites: each site in the phase its certificate allows (phase 1:
# HTTP-01 only; phase 2: TLS proxy); nginx is reloaded when a site changed.
nginx_sites() {
  local before="$CHANGED" name host file
  CHANGED=0
  for name in broker ${BACKEND_HOST:+backend}; do
    if [[ $name == broker ]]; then host="$ISSUER_HOST_NOPORT"; else host="$BACKEND_HOST"; fi
    if [[ -f "$R/etc/letsencrypt/live/$host/fullchain.pem" ]]; then PHASE[$name]=2; else PHASE[$name]=1; fi
    file="$R/etc/nginx/sites-available/agentkeys-$name"
    put_file "$file" 0644 root:root < <(render "$DEPLOY_DIR/nginx/agentkeys-$name.phase${PHASE[$name]}.conf")
    put_link "/etc/nginx/sites-available/agentkeys-$name" "$R/etc/nginx/sites-enabled/agentkeys-$name"
    say "nginx site $name ($host): phase ${PHASE[$name]} ($([[ ${PHASE[$name]} -eq 1 ]] && echo 'HTTP-01 only; certificate not yet issued' || echo "TLS proxy to 127.0.0.1:$([[ $name == broker ]] && echo 8091 || echo 8090)"))"
  done
  if [[ -L "$R/etc/nginx/sites-enabled/default" ]]; then
    host_cmd rm -f /etc/nginx/sites-enabled/default
    [[ -n "$PREFIX" || $DRY_RUN -eq 1 ]] || CHANGED=1
  fi
  if [[ $CHANGED -eq 1 ]]; then
    host_cmd sh -c 'nginx -t && systemctl reload nginx' || warn "nginx -t failed (or nginx is not running); the site files are written, nginx keeps its old configuration"
  fi
  CHANGED=$(( before | CHANGED ))
}
declare -A PHASE=()

# nginx: phase 1 (HTTP-01 only) until the certificate exists, then phase 2.
if [[ "$WITH_NGINX" == yes ]]; then
  if [[ -z "$PREFIX" ]] && ! command -v nginx >/dev/null 2>&1; then apt_install nginx; fi
  ensure_dir "$R/var/www" 0755 root:root
  ensure_dir "$WEBROOT" 0755 root:root
  nginx_sites
fi
if [[ "$WITH_CERTBOT" == yes ]]; then
  if [[ -z "$PREFIX" ]] && ! command -v certbot >/dev/null 2>&1; then apt_install certbot; fi
  # nginx reads certificates only when it (re)loads: reload after each renewal.
  ensure_dir "$R/etc/letsencrypt" 0755 root:root
  ensure_dir "$R/etc/letsencrypt/renewal-hooks" 0755 root:root
  ensure_dir "$R/etc/letsencrypt/renewal-hooks/deploy" 0755 root:root
  put_file "$R/etc/letsencrypt/renewal-hooks/deploy/agentkeys-reload-nginx" 0755 root:root <<'HOOK'
#!/bin/sh
# Installed by scripts/setup-broker-host.sh: certbot runs this after each
# renewal; nginx serves the new certificate only once it reloads.
nginx -t -q && systemctl reload nginx
HOOK
  if [[ -n "$CERTBOT_EMAIL" ]]; then
    issued=0
    for host in "$ISSUER_HOST_NOPORT" $BACKEND_HOST; do
      [[ ! -f "$R/etc/letsencrypt/live/$host/fullchain.pem" ]] || continue
      if host_cmd certbot certonly --webroot -w /var/www/certbot -d "$host" -m "$CERTBOT_EMAIL" --agree-tos --non-interactive; then
        issued=1
      else
        warn "certbot could not get a certificate for $host (does its DNS name point here, is port 80 open?)"
      fi
    done
    if [[ $issued -eq 1 && -z "$PREFIX" && $DRY_RUN -eq 0 ]]; then nginx_sites; fi
  fi
fi

# Services: never under --prefix or --dry-run (host_cmd only reports there).
if [[ $NO_START -eq 1 ]]; then
  host_cmd systemctl daemon-reload
  say "skipped (--no-start): starting the services"
else
  host_cmd systemctl daemon-reload
  host_cmd systemctl enable agentkeys-backend.service agentkeys-broker.service
  units="agentkeys-backend.service agentkeys-broker.service"
  if [[ -z "$LOGIN_ISSUER" ]]; then
    say "skipped: starting agentkeys-backend (no master login configured; it would refuse to start)"
    units="agentkeys-broker.service"
  fi
  if [[ $SVC_CHANGED -eq 1 ]]; then
    # A binary, unit or env file changed: a running service must pick it up.
    host_cmd systemctl restart $units
  else
    host_cmd systemctl start $units
  fi
  if [[ $DRY_RUN -eq 0 && -z "$PREFIX" ]]; then
    ok=0
    for _ in $(seq 1 30); do
      if curl -fsS --max-time 2 http://127.0.0.1:8091/readyz >/dev/null 2>&1; then ok=1; break; fi
      sleep 1
    done
    if [[ $ok -eq 1 ]]; then say "broker ready on 127.0.0.1:8091"
    else warn "the broker is not ready after 30 s: curl -s http://127.0.0.1:8091/readyz says why; journalctl -u agentkeys-broker -n 50"; fi
  fi
fi

# --- Next steps -------------------------------------------------------------------
# Commands to type: with sudo when this run came through sudo (it is not
# assumed to exist).
SUDO=""; [[ -z "${SUDO_USER:-}" ]] || SUDO="sudo "
[[ -n "$LOGIN_ISSUER" ]] || no_login_warning
cat <<EOF

Next steps (docs/operator-runbook.md has the details):
  1. DNS: an A/AAAA record for $ISSUER_HOST_NOPORT${BACKEND_HOST:+ and for $BACKEND_HOST} pointing at this host;
     firewall: 443 open, 80 for ACME, 8090/8091 loopback only.
EOF
need_cert=""
for name in broker ${BACKEND_HOST:+backend}; do
  if [[ "$WITH_NGINX" == yes && "${PHASE[$name]:-1}" == 1 ]]; then
    if [[ $name == broker ]]; then need_cert+=" $ISSUER_HOST_NOPORT"; else need_cert+=" $BACKEND_HOST"; fi
  fi
done
for host in $need_cert; do
  cat <<EOF
  2. Certificate: ${SUDO}certbot certonly --webroot -w /var/www/certbot -d $host -m YOU@EXAMPLE --agree-tos --non-interactive
EOF
done
if [[ -n "$need_cert" ]]; then
  echo "     then re-run this script (nginx switches to the TLS phase) and check: ${SUDO}certbot renew --dry-run"
fi
cat <<EOF
  3. Smoke test: curl -fsS $ISSUER/healthz && curl -fsS $ISSUER/.well-known/openid-configuration
EOF
if [[ -n "$BACKEND_HOST" ]]; then
  cat <<EOF
     Masters: agentkeys init --backend https://$BACKEND_HOST --oidc-issuer $LOGIN_ISSUER --oidc-client-id $LOGIN_CLIENT_ID
EOF
fi
cat <<EOF
  4. AWS: aws iam create-open-id-connect-provider --url $ISSUER --client-id-list sts.amazonaws.com
EOF
if [[ -n "$ACCOUNT_ID" ]]; then
  cat <<EOF
     aws iam create-role --role-name agentkeys-data-role --assume-role-policy-document file:///etc/agentkeys/aws/trust-policy.json
     aws iam put-role-policy --role-name agentkeys-data-role --policy-name agentkeys-data --policy-document file:///etc/agentkeys/aws/data-policy.json
EOF
fi
