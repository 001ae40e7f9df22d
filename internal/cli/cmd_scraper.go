package cli

import (
	"github.com/spf13/cobra"

	"github.com/agentkeys/agentkeys/internal/provision/scraper"
)

// The provisioner runs this binary's hidden provision-scraper subcommand
// as its browser process.
func init() {
	extraCommands = append(extraCommands, func(*App) *cobra.Command { return scraper.NewCommand() })
}
