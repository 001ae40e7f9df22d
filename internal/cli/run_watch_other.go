//go:build !unix

package cli

import "os"

// watchSignalNames are the signals run --watch-signal accepts.
var watchSignalNames = map[string]os.Signal{"INT": os.Interrupt}
