// Command agentkeys is the master's CLI (see package internal/cli).
package main

import (
	"os"

	"github.com/agentkeys/agentkeys/internal/cli"
)

func main() {
	os.Exit(cli.Main())
}
