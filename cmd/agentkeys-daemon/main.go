// Command agentkeys-daemon runs inside an agent's sandbox and serves its
// credentials over MCP and a Unix socket.
package main

import (
	"fmt"
	"os"

	"github.com/spf13/cobra"
)

func main() {
	root := &cobra.Command{
		Use:   "agentkeys-daemon",
		Short: "AgentKeys sandbox daemon (not yet implemented; see issue 6)",
		RunE: func(cmd *cobra.Command, _ []string) error {
			return cmd.Help()
		},
	}
	if err := root.Execute(); err != nil {
		fmt.Fprintln(os.Stderr, "agentkeys-daemon:", err)
		os.Exit(1)
	}
}
