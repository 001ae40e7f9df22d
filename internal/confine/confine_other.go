//go:build !linux

package confine

import (
	"errors"
	"fmt"
	"os"
)

// ABI is 0: Landlock is Linux only.
func ABI() int { return 0 }

// CanSwitchUser allows root only (no capability model to query here).
func CanSwitchUser() error {
	if os.Geteuid() != 0 {
		return fmt.Errorf("--child-user needs root; this daemon runs as uid %d", os.Geteuid())
	}
	return nil
}

// Restrict is unavailable off Linux.
func Restrict([]string) error { return errors.New("Landlock is Linux only") }

// ExecMain is unavailable off Linux.
func ExecMain([]string) int {
	fmt.Fprintln(os.Stderr, "agentkeys-daemon: confined start: Landlock is Linux only")
	return 126
}
