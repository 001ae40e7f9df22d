//go:build linux

package hardening

import (
	"errors"

	"golang.org/x/sys/unix"
)

// Apply makes the process non-dumpable (no core files, no same-uid ptrace
// or /proc/<pid>/mem reads), sets RLIMIT_CORE to 0, sets no_new_privs
// (inherited by every child: setuid binaries grant nothing), and probes whether
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
	// No child (run_with_credential commands, the provisioner's browser)
	// can gain privileges through setuid/setcap binaries; it is also what
	// lets unprivileged processes install seccomp filters.
	if err := unix.Prctl(unix.PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0); err != nil {
		r.add("no_new_privs", Failed, "prctl(PR_SET_NO_NEW_PRIVS, 1): "+err.Error())
	} else if v, err := unix.PrctlRetInt(unix.PR_GET_NO_NEW_PRIVS, 0, 0, 0, 0); err != nil || v != 1 {
		r.add("no_new_privs", Failed, "PR_GET_NO_NEW_PRIVS does not report 1")
	} else {
		r.add("no_new_privs", OK, "")
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
