// The agent of e2e/gateway_test.go: an unmodified program using the
// official OpenAI SDK, started by `agentkeys run --gateway`. It only knows
// OPENAI_BASE_URL and a placeholder OPENAI_API_KEY. It reports on stdout,
// one line per step, and waits for a line on stdin before the last step
// (an endless stream the test cuts by revoking the agent).
import OpenAI from "openai";
import { execFileSync } from "node:child_process";
import { createInterface } from "node:readline";

const say = (...a) => console.log(...a);
const base = process.env.OPENAI_BASE_URL;
say("ENV " + JSON.stringify({ base, key: process.env.OPENAI_API_KEY }));

const client = new OpenAI({ maxRetries: 0 });
const chat = await client.chat.completions.create({ model: "fixture", messages: [{ role: "user", content: "hi" }] });
say("CHAT " + chat.choices[0].message.content);

let text = "";
const stream = await client.chat.completions.create({ model: "fixture", stream: true, messages: [{ role: "user", content: "count" }] });
for await (const chunk of stream) text += chunk.choices[0]?.delta?.content ?? "";
say("STREAM " + text);

const curl = (...args) => {
  try {
    return execFileSync("curl", ["-sS", "-o", "/dev/null", "-w", "%{http_code}", "--max-time", "10", ...args], { encoding: "utf8" });
  } catch (e) {
    return "ERR";
  }
};
const origin = new URL(base).origin;
say("CURL " + curl("-X", "POST", "-H", "content-type: application/json", "-d", '{"model":"fixture","messages":[]}', base + "/chat/completions"));
say("OTHER_SERVICE " + curl(origin + "/anthropic/v1/messages"));
say("OTHER_HOST " + curl("-H", "Host: api.openai.com", base + "/models"));

say("PID " + process.pid);
const rl = createInterface({ input: process.stdin });
await new Promise((resolve) => rl.once("line", resolve));
rl.close();

try {
  const endless = await client.chat.completions.create({ model: "endless", stream: true, messages: [] });
  let n = 0;
  for await (const _ of endless) {
    if (n++ === 0) say("CHUNK");
  }
  say("ENDED");
} catch (e) {
  say("CUT " + (e?.constructor?.name ?? "error"));
}
