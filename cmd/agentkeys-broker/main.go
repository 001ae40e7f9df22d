// Command agentkeys-broker mints OIDC ID tokens and AWS temporary
// credentials for AgentKeys agents, recording each mint in a fail-closed,
// hash-chained audit ledger. See internal/broker.
package main

import (
	"os"

	"github.com/agentkeys/agentkeys/internal/broker"
)

func main() { os.Exit(broker.Main()) }
