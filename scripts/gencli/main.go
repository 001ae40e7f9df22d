// Command gencli writes docs/cli.md, the command-line reference generated
// from the four binaries' command trees (internal/clidoc). Run it from the
// module root: go run ./scripts/gencli (or make docs).
package main

import (
	"fmt"
	"os"

	"github.com/agentkeys/agentkeys/internal/clidoc"
)

func main() {
	// Flags take their defaults from these variables: document the
	// built-in ones.
	for _, v := range clidoc.Vars() {
		os.Unsetenv(v)
	}
	if err := os.WriteFile(clidoc.Path, clidoc.Render(), 0o644); err != nil {
		fmt.Fprintln(os.Stderr, "gencli:", err)
		os.Exit(1)
	}
}
