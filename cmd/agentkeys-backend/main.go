// Command agentkeys-backend serves the AgentKeys backend API.
package main

import (
	"os"

	"github.com/agentkeys/agentkeys/internal/backend"
)

func main() { os.Exit(backend.Main()) }
