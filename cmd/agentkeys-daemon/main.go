// Command agentkeys-daemon runs inside an agent's sandbox: it holds the
// agent's session (obtained by pairing with the master, by master-approved
// recovery, or from a stored session) and serves the agent's credentials
// over a Unix-socket JSON-RPC API and MCP (stdio and Streamable HTTP).
// See internal/daemon.
//
// Standard output carries nothing but MCP (with --stdio) or the output of
// a subcommand; logs, the pairing prompt and notices go to standard error.
package main

import (
	"os"

	"github.com/agentkeys/agentkeys/internal/daemon"
)

func main() { os.Exit(daemon.Main()) }
