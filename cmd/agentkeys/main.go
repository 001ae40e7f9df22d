// Command agentkeys is the master's CLI.
package main

import (
	"fmt"
	"os"

	"github.com/spf13/cobra"
)

func main() {
	root := &cobra.Command{
		Use:   "agentkeys",
		Short: "AgentKeys master CLI (not yet implemented; see issue 4)",
		RunE: func(cmd *cobra.Command, _ []string) error {
			return cmd.Help()
		},
	}
	if err := root.Execute(); err != nil {
		fmt.Fprintln(os.Stderr, "agentkeys:", err)
		os.Exit(1)
	}
}
