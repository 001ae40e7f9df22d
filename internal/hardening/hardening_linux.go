//go:build linux

package hardening

import (
	"errors"

	"golang.org/x/sys/unix"
)

// Apply makes the process non-dumpable (no core files, no same-uid ptrace
// or /proc/<pid>/mem reads), sets RLIMIT_CORE to 0, and probes whether
// secret buffers can be placed in memfd_secret or mlock'ed memory.
// PR_SET_DUMPABLE and RLIMIT_CORE are process-wide, so the Go runtime's
// threads are covered.
func Apply() Report {
	var r Report
	if err := unix.Prctl(unix.PR_SET_DUMPABLE, 0, 0, 0, 0); err != nil {
		r.add("non_dumpable", Failed, "prctl(PR_SET_DUMPABLE, 0): "+err.Error())
	} else if v, err := unix.PrctlRetInt(unix.PR_GET_DUMPABLE, 0, 0, 0, 0); err != nil || v != 0 {
		r.add("non_dumpable", Failed, "PR_GET_DUMPABLE does not report 0")
	} else {
		r.add("non_dumpable", OK, "")
	}
	if err := unix.Setrlimit(unix.RLIMIT_CORE, &unix.Rlimit{Cur: 0, Max: 0}); err != nil {
		r.add("no_core_dumps", Failed, "setrlimit(RLIMIT_CORE, 0): "+err.Error())
	} else {
		r.add("no_core_dumps", OK, "")
	}
	b := NewBuffer(32)
	switch b.Kind() {
	case KindSecretMem:
		r.add("secret_memory", OK, "memfd_secret")
	case KindLocked:
		r.add("secret_memory", OK, "mlock+MADV_DONTDUMP (memfd_secret unavailable: "+probeSecretErr()+")")
	default:
		r.add("secret_memory", Failed, "neither memfd_secret nor mlock is available (RLIMIT_MEMLOCK or CAP_IPC_LOCK); secrets live in ordinary memory")
	}
	b.Destroy()
	return r
}

var errNoSecretMem = errors.New("memfd_secret unsupported on this architecture")
