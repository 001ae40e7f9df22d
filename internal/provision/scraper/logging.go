package scraper

import (
	"fmt"
	"io"
	"strings"
	"sync"
	"time"
)

// logger writes "[service] 15:04:05 msg" lines for people.
type logger struct {
	mu     sync.Mutex
	w      io.Writer
	prefix string
}

func newLogger(w io.Writer, service string) *logger {
	if service == "" {
		service = "scraper"
	}
	return &logger{w: w, prefix: "[" + service + "] "}
}

func (l *logger) printf(format string, args ...any) {
	msg := strings.ReplaceAll(fmt.Sprintf(format, args...), "\n", " ")
	l.mu.Lock()
	defer l.mu.Unlock()
	fmt.Fprintf(l.w, "%s%s %s\n", l.prefix, time.Now().Format("15:04:05"), msg)
}
