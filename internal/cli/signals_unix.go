//go:build unix

package cli

import (
	"os"
	"syscall"
)

// forwardedSignals reach the child of `run` instead of ending the CLI.
var forwardedSignals = []os.Signal{syscall.SIGINT, syscall.SIGTERM, syscall.SIGHUP, syscall.SIGQUIT, syscall.SIGUSR1, syscall.SIGUSR2}
