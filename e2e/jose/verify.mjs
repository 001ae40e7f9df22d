#!/usr/bin/env node
// Independent verification of an AgentKeys broker token with npm `jose`
// (SPEC §4): nothing here shares code with the broker.
//
//   node verify.mjs <issuer-url> [<jwt>|-]    (no JWT argument, or "-": read it from stdin)
//
// Prefer stdin: a JWT is a bearer credential and must not sit in a process
// argument list where other users can read it.
//
// It fetches <issuer>/.well-known/openid-configuration, checks that the
// document names the same issuer, then verifies the token against the
// document's jwks_uri with createRemoteJWKSet + jwtVerify (ES256, issuer,
// audience sts.amazonaws.com). On success it prints
//   {"ok":true,"kid":…,"claims":{…}}
// on stdout and exits 0; a refused token prints {"ok":false,"code":…,"message":…}
// and exits 1; usage or discovery problems exit 2.
import { createRemoteJWKSet, jwtVerify } from 'jose';

const AUDIENCE = 'sts.amazonaws.com';
const TIMEOUT_MS = 10_000;

function fail(exit, code, message) {
  process.stdout.write(JSON.stringify({ ok: false, code, message }) + '\n');
  process.exit(exit);
}

async function readStdin() {
  const chunks = [];
  for await (const c of process.stdin) chunks.push(c);
  return Buffer.concat(chunks).toString('utf8');
}

const [issuer, arg] = process.argv.slice(2);
if (!issuer) fail(2, 'USAGE', 'usage: node verify.mjs <issuer-url> [<jwt>|-]');
let issuerURL;
try {
  issuerURL = new URL(issuer);
} catch {
  fail(2, 'USAGE', 'issuer is not a URL');
}
if (issuer.endsWith('/')) fail(2, 'USAGE', 'issuer must not end with a slash');

const token = (arg && arg !== '-' ? arg : await readStdin()).trim();
if (!token) fail(2, 'USAGE', 'no JWT given (argument or stdin)');

let discovery;
try {
  const res = await fetch(`${issuer}/.well-known/openid-configuration`, {
    signal: AbortSignal.timeout(TIMEOUT_MS),
    redirect: 'error',
    headers: { accept: 'application/json' },
  });
  if (!res.ok) fail(2, 'DISCOVERY', `discovery answered HTTP ${res.status}`);
  discovery = await res.json();
} catch (e) {
  fail(2, 'DISCOVERY', `discovery failed: ${e.message}`);
}
if (discovery.issuer !== issuer) {
  fail(2, 'DISCOVERY', `discovery names issuer ${JSON.stringify(discovery.issuer)}, expected ${JSON.stringify(issuer)}`);
}
if (typeof discovery.jwks_uri !== 'string') fail(2, 'DISCOVERY', 'discovery has no jwks_uri');
const jwksURL = new URL(discovery.jwks_uri);
if (jwksURL.origin !== issuerURL.origin) fail(2, 'DISCOVERY', 'jwks_uri is not on the issuer origin');

const JWKS = createRemoteJWKSet(jwksURL, { timeoutDuration: TIMEOUT_MS, cooldownDuration: 0 });
try {
  const { payload, protectedHeader } = await jwtVerify(token, JWKS, {
    issuer,
    audience: AUDIENCE,
    algorithms: ['ES256'],
    requiredClaims: ['sub', 'exp', 'iat', 'nbf', 'jti'],
  });
  process.stdout.write(JSON.stringify({ ok: true, kid: protectedHeader.kid, alg: protectedHeader.alg, claims: payload }) + '\n');
} catch (e) {
  // Never echo the token itself.
  fail(1, e.code || 'ERR', e.message);
}
