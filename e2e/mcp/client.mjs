#!/usr/bin/env node
// MCP peer for e2e/mcp_test.go: the official TypeScript SDK client
// (@modelcontextprotocol/sdk) against the built agentkeys-daemon.
//
// Usage:
//   node client.mjs stdio <daemon-binary> [daemon args...]
//       Spawns the daemon with StdioClientTransport. The daemon gets this
//       process's environment (the Go test builds it: HOME, XDG_*, PATH …);
//       its stderr is passed through to this process's stderr.
//   node client.mjs http <url>
//       Streamable HTTP to <url> (http://127.0.0.1:PORT/mcp) with
//       "Authorization: Bearer $AGENTKEYS_MCP_TOKEN" (the token is read from
//       the environment so that it never appears in argv).
//
// Environment:
//   AGENTKEYS_MCP_TOKEN   bearer for http mode
//   MCP_SERVICE           service to ask for (default openrouter)
//   MCP_DENIED_SERVICE    an out-of-scope service (default openai)
//   MCP_TIMEOUT_MS        per-request timeout (default 20000)
//   MCP_DEADLINE_MS       whole-run deadline, exit 3 (default 50000)
//
// It connects (initialize; protocol negotiated), lists the tools, calls
// every tool plus a few error cases, and prints ONE JSON object on stdout.
// It does not judge the results (the Go test does) except that a failure
// to connect or list tools exits 1. Nothing else is written to stdout.

import { Client } from '@modelcontextprotocol/sdk/client/index.js';
import { StdioClientTransport } from '@modelcontextprotocol/sdk/client/stdio.js';
import { StreamableHTTPClientTransport } from '@modelcontextprotocol/sdk/client/streamableHttp.js';
import { LATEST_PROTOCOL_VERSION } from '@modelcontextprotocol/sdk/types.js';

const [mode, target, ...rest] = process.argv.slice(2);
const service = process.env.MCP_SERVICE || 'openrouter';
const deniedService = process.env.MCP_DENIED_SERVICE || 'openai';
const timeout = Number(process.env.MCP_TIMEOUT_MS || 20000);

function usage(msg) {
  process.stderr.write(`client.mjs: ${msg}\nusage: node client.mjs stdio <daemon> [args...] | node client.mjs http <url>\n`);
  process.exit(2);
}

let transport;
if (mode === 'stdio') {
  if (!target) usage('stdio needs the daemon binary');
  const env = {};
  for (const [k, v] of Object.entries(process.env)) if (typeof v === 'string') env[k] = v;
  transport = new StdioClientTransport({ command: target, args: rest, env, stderr: 'inherit' });
} else if (mode === 'http') {
  if (!target) usage('http needs the endpoint URL');
  const token = process.env.AGENTKEYS_MCP_TOKEN;
  if (!token) usage('http needs AGENTKEYS_MCP_TOKEN');
  transport = new StreamableHTTPClientTransport(new URL(target), {
    requestInit: { headers: { Authorization: `Bearer ${token}` } },
  });
} else {
  usage(`unknown mode ${JSON.stringify(mode)}`);
}

// The SDK tells the transport which protocol version initialize settled
// on; record it (the stdio transport has no getter for it).
let negotiated;
const setVersion = transport.setProtocolVersion?.bind(transport);
transport.setProtocolVersion = (v) => {
  negotiated = v;
  setVersion?.(v);
};

const textOf = (r) => (r?.content ?? []).filter((c) => c.type === 'text').map((c) => c.text).join('');
const brief = (r) => ({ isError: r.isError === true, text: textOf(r), structured: r.structuredContent ?? null });

// call runs a tool and reports either its result or the JSON-RPC error.
async function call(name, args, extra = {}) {
  try {
    const r = await client.callTool({ name, arguments: args }, undefined, { timeout, ...extra });
    return brief(r);
  } catch (e) {
    return { rpcError: { code: e?.code ?? null, message: String(e?.message ?? e) } };
  }
}

const client = new Client({ name: 'agentkeys-e2e-ts-sdk', version: '0.0.0' }, { capabilities: {} });
const out = { transport: mode, clientProtocolVersion: LATEST_PROTOCOL_VERSION };
const hardStop = setTimeout(() => {
  process.stderr.write('client.mjs: overall deadline exceeded\n');
  process.exit(3);
}, Number(process.env.MCP_DEADLINE_MS || 50000));
hardStop.unref();

try {
  await client.connect(transport, { timeout });
} catch (e) {
  process.stderr.write(`client.mjs: connect: ${e?.stack ?? e}\n`);
  process.exit(1);
}
// Record the order of incoming progress notifications and responses as
// the transport hands them to the SDK.
const seen = [];
const deliver = transport.onmessage;
transport.onmessage = (m, extra) => {
  if (m.method === 'notifications/progress') seen.push({ progress: m.params });
  else if (m.id !== undefined && (m.result !== undefined || m.error !== undefined)) seen.push({ response: m.id });
  deliver?.(m, extra);
};

try {
  out.protocolVersion = negotiated ?? transport.protocolVersion ?? null;
  out.serverInfo = client.getServerVersion() ?? null;
  out.toolsCapability = client.getServerCapabilities()?.tools != null;
  out.instructions = client.getInstructions() ?? null;
  await client.ping({ timeout });
  out.ping = true;

  const tools = await client.listTools(undefined, { timeout });
  out.tools = tools.tools.map((t) => t.name).sort();
  out.toolSchemas = Object.fromEntries(tools.tools.map((t) => [t.name, { input: t.inputSchema, output: t.outputSchema ?? null }]));

  out.get = await call('agentkeys.get_credential', { service });
  out.getDenied = await call('agentkeys.get_credential', { service: deniedService });
  out.getMissingService = await call('agentkeys.get_credential', {});
  out.list = await call('agentkeys.list_credentials', {});
  const envName = `${service.toUpperCase().replace(/[^A-Z0-9]/g, '_')}_API_KEY`;
  out.run = await call('agentkeys.run_with_credential', {
    service,
    command: ['sh', '-c', `echo "key=$${envName}"; printf %s "$${envName}" | base64; echo "len=\${#${envName}}" >&2; exit 3`],
    timeout_seconds: 20,
  });
  out.runEnvName = await call('agentkeys.run_with_credential', {
    service,
    env_name: 'MY_KEY',
    command: ['sh', '-c', `test -n "$MY_KEY" && test -z "$${envName}" && echo "custom=$MY_KEY"`],
  });
  out.runDenied = await call('agentkeys.run_with_credential', { service: deniedService, command: ['true'] });

  // provision: progress notifications, then an isError result. The
  // messages as they arrived (wire) are what the test checks; `progress`
  // is what the SDK delivered to onprogress, which can miss a notification
  // that arrives in the same stdio read as the result (the SDK runs
  // notification handlers a microtask later, after the result has already
  // removed the progress handler).
  const progress = [];
  const mark = seen.length;
  out.provision = await call('agentkeys.provision', { service }, { onprogress: (p) => progress.push(p) });
  out.provision.progress = progress;
  out.provision.wire = seen.slice(mark);
  out.unknownTool = await call('agentkeys.nope', {});
} catch (e) {
  out.fatal = String(e?.stack ?? e);
}

await client.close().catch(() => {});
process.stdout.write(JSON.stringify(out) + '\n');
process.exit(out.fatal ? 1 : 0);
