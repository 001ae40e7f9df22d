//go:build unix

package cli

import (
	"os"
	"syscall"
)

// watchSignalNames are the signals run --watch-signal accepts.
var watchSignalNames = map[string]os.Signal{
	"HUP": syscall.SIGHUP, "INT": syscall.SIGINT, "TERM": syscall.SIGTERM,
	"QUIT": syscall.SIGQUIT, "USR1": syscall.SIGUSR1, "USR2": syscall.SIGUSR2,
}
