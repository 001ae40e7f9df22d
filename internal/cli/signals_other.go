//go:build !unix

package cli

import "os"

// forwardedSignals reach the child of `run` instead of ending the CLI.
var forwardedSignals = []os.Signal{os.Interrupt}
