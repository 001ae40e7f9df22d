// Package hardening applies the process hardening the daemon can get from
// the kernel — no core dumps, not ptrace-attachable by same-uid processes,
// secret buffers kept out of swap and core files — and reports each step.
// Nothing here is fatal: a step that the platform or the sandbox refuses is
// reported as skipped or failed, with the reason, and the caller decides
// (see Report.Failed).
//
// Unlike the original it never closes a descriptor it did not open and
// does not call mlockall (which makes later mmaps fail under a small
// RLIMIT_MEMLOCK): it locks only the secret buffers it allocates.
package hardening

import (
	"fmt"
	"log/slog"
	"strings"
)

// Status of one step.
type Status string

// Step outcomes.
const (
	OK      Status = "ok"
	Skipped Status = "skipped"
	Failed  Status = "failed"
)

// Step is the outcome of one hardening measure.
type Step struct {
	Name   string `json:"name"`
	Status Status `json:"status"`
	Detail string `json:"detail,omitempty"`
}

// Report lists what Apply did.
type Report struct {
	Steps []Step `json:"steps"`
}

func (r *Report) add(name string, st Status, detail string) {
	r.Steps = append(r.Steps, Step{Name: name, Status: st, Detail: detail})
}

// Failed returns the names of the steps that failed.
func (r Report) Failed() []string {
	var out []string
	for _, s := range r.Steps {
		if s.Status == Failed {
			out = append(out, s.Name)
		}
	}
	return out
}

// String is a one-line summary: "dumpable=ok core=ok ...".
func (r Report) String() string {
	var b strings.Builder
	for i, s := range r.Steps {
		if i > 0 {
			b.WriteByte(' ')
		}
		fmt.Fprintf(&b, "%s=%s", s.Name, s.Status)
	}
	return b.String()
}

// Log writes one line per step that did not succeed and a summary line.
func (r Report) Log(log *slog.Logger) {
	for _, s := range r.Steps {
		if s.Status != OK {
			log.Warn("hardening step not applied", "step", s.Name, "status", string(s.Status), "detail", s.Detail)
		}
	}
	log.Info("process hardening", "summary", r.String())
}
