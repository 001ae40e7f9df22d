// Package logging builds the slog loggers every AgentKeys binary uses:
// human-readable text when the destination is a terminal (a person is
// watching), JSON otherwise (journald, a file, a log shipper).
package logging

import (
	"fmt"
	"io"
	"log/slog"
	"os"
	"strings"

	"golang.org/x/term"
)

// isTerminal reports whether fd is a terminal (a seam for tests).
var isTerminal = term.IsTerminal

// New returns a logger at level ("debug", "info", "warn", "error") writing
// text lines when w is a terminal and JSON lines otherwise.
func New(w io.Writer, level string) (*slog.Logger, error) {
	var l slog.Level
	if err := l.UnmarshalText([]byte(strings.ToUpper(strings.TrimSpace(level)))); err != nil {
		return nil, fmt.Errorf("log level %q: want debug, info, warn or error", level)
	}
	opts := &slog.HandlerOptions{Level: l}
	if IsTerminal(w) {
		return slog.New(slog.NewTextHandler(w, opts)), nil
	}
	return slog.New(slog.NewJSONHandler(w, opts)), nil
}

// IsTerminal reports whether w is a terminal.
func IsTerminal(w io.Writer) bool {
	f, ok := w.(*os.File)
	return ok && isTerminal(int(f.Fd()))
}
