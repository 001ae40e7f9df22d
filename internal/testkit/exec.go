package testkit

import (
	"errors"
	"os/exec"
)

// ExitCode reads the result of running a command: 0 for a nil err, the
// exit status for an *exec.ExitError (-1 if a signal ended the process),
// and ok false for any other error (the command did not run).
func ExitCode(err error) (code int, ok bool) {
	var ee *exec.ExitError
	switch {
	case err == nil:
		return 0, true
	case errors.As(err, &ee):
		return ee.ExitCode(), true
	default:
		return 0, false
	}
}
