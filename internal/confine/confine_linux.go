//go:build linux

package confine

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"strconv"
	"syscall"
	"unsafe"

	"golang.org/x/sys/unix"
)

// ABI returns the Landlock ABI version the kernel offers, 0 when it has
// none (older kernel, Landlock not enabled in the LSM list, or a seccomp
// policy that refuses the call).
func ABI() int {
	r, _, e := unix.Syscall(unix.SYS_LANDLOCK_CREATE_RULESET, 0, 0, unix.LANDLOCK_CREATE_RULESET_VERSION)
	if e != 0 {
		return 0
	}
	return int(r)
}

// CanSwitchUser reports whether this process may start children as
// another uid: it needs CAP_SETUID and CAP_SETGID in its effective set
// (root normally has both).
func CanSwitchUser() error {
	hdr := unix.CapUserHeader{Version: unix.LINUX_CAPABILITY_VERSION_3}
	var data [2]unix.CapUserData
	if err := unix.Capget(&hdr, &data[0]); err != nil {
		return fmt.Errorf("cannot read this process's capabilities: %w", err)
	}
	eff := uint64(data[0].Effective) | uint64(data[1].Effective)<<32
	for _, c := range []struct {
		bit  uint
		name string
	}{{unix.CAP_SETUID, "CAP_SETUID"}, {unix.CAP_SETGID, "CAP_SETGID"}} {
		if eff&(1<<c.bit) == 0 {
			return fmt.Errorf("--child-user needs root or %s and %s; this daemon (uid %d) lacks %s, so it cannot start children as another user", "CAP_SETUID", "CAP_SETGID", os.Geteuid(), c.name)
		}
	}
	return nil
}

// ruleset_attr up to the scoped field (ABI 6); older kernels accept the
// larger struct as long as the fields they do not know are zero.
type rulesetAttr struct {
	handledFS, handledNet, scoped uint64
}

const fileRights = unix.LANDLOCK_ACCESS_FS_EXECUTE | unix.LANDLOCK_ACCESS_FS_WRITE_FILE | unix.LANDLOCK_ACCESS_FS_READ_FILE |
	unix.LANDLOCK_ACCESS_FS_TRUNCATE | unix.LANDLOCK_ACCESS_FS_IOCTL_DEV

// fsRights is every filesystem right the ABI knows.
func fsRights(abi int) uint64 {
	r := uint64(unix.LANDLOCK_ACCESS_FS_EXECUTE | unix.LANDLOCK_ACCESS_FS_WRITE_FILE | unix.LANDLOCK_ACCESS_FS_READ_FILE |
		unix.LANDLOCK_ACCESS_FS_READ_DIR | unix.LANDLOCK_ACCESS_FS_REMOVE_DIR | unix.LANDLOCK_ACCESS_FS_REMOVE_FILE |
		unix.LANDLOCK_ACCESS_FS_MAKE_CHAR | unix.LANDLOCK_ACCESS_FS_MAKE_DIR | unix.LANDLOCK_ACCESS_FS_MAKE_REG |
		unix.LANDLOCK_ACCESS_FS_MAKE_SOCK | unix.LANDLOCK_ACCESS_FS_MAKE_FIFO | unix.LANDLOCK_ACCESS_FS_MAKE_BLOCK |
		unix.LANDLOCK_ACCESS_FS_MAKE_SYM)
	if abi >= 2 {
		r |= unix.LANDLOCK_ACCESS_FS_REFER
	}
	if abi >= 3 {
		r |= unix.LANDLOCK_ACCESS_FS_TRUNCATE
	}
	if abi >= 5 {
		r |= unix.LANDLOCK_ACCESS_FS_IOCTL_DEV
	}
	return r
}

// Restrict confines this process (and everything it execs) so that the
// hidden paths cannot be opened (read, written, executed) nor anything
// created or removed in them (their names can still be listed), while the
// rest of the filesystem keeps every right. Landlock only grants, so the
// rule set is built by walking from / towards each hidden path: every
// directory on the way (an "ancestor") may only be listed, every other
// entry beside that path is granted in full, and the hidden path itself
// gets nothing. Consequences: entries created later directly in an
// ancestor directory are not accessible, and nothing can be created or
// removed directly in an ancestor directory. With ABI 6 the process can
// also neither signal processes outside its domain nor connect to their
// abstract Unix sockets; at every ABI it cannot ptrace them or open their
// /proc/<pid>/mem (Linux 6.18 still lets a root process read their
// /proc/<pid>/environ and maps).
func Restrict(hidden []string) error {
	abi := ABI()
	if abi < 1 {
		return errors.New("the kernel offers no Landlock")
	}
	hide := map[string]bool{}
	anc := map[string]bool{}
	for _, h := range hidden {
		p, err := resolve(h)
		if err != nil {
			return err
		}
		if p == "/" {
			return errors.New("cannot hide the root directory")
		}
		hide[p] = true
		for d := filepath.Dir(p); ; d = filepath.Dir(d) {
			anc[d] = true
			if d == "/" {
				break
			}
		}
	}
	all := fsRights(abi)
	attr := rulesetAttr{handledFS: all}
	if abi >= 6 {
		attr.scoped = unix.LANDLOCK_SCOPE_ABSTRACT_UNIX_SOCKET | unix.LANDLOCK_SCOPE_SIGNAL
	}
	size := unsafe.Sizeof(attr)
	if abi < 6 {
		size = unsafe.Offsetof(attr.scoped)
	}
	rfd, _, e := unix.Syscall(unix.SYS_LANDLOCK_CREATE_RULESET, uintptr(unsafe.Pointer(&attr)), size, 0)
	if e != 0 {
		return fmt.Errorf("landlock_create_ruleset: %w", e)
	}
	defer unix.Close(int(rfd))
	if len(hide) == 0 {
		if err := addRule(int(rfd), "/", all); err != nil {
			return err
		}
	} else if err := walk(int(rfd), "/", hide, anc, all); err != nil {
		return err
	}
	if err := unix.Prctl(unix.PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0); err != nil {
		return fmt.Errorf("prctl(PR_SET_NO_NEW_PRIVS): %w", err)
	}
	if _, _, e := unix.Syscall(unix.SYS_LANDLOCK_RESTRICT_SELF, rfd, 0, 0); e != 0 {
		return fmt.Errorf("landlock_restrict_self: %w", e)
	}
	return nil
}

// resolve makes p absolute and resolves its symbolic links (of its parent
// when p does not exist yet), so the rules name the real location.
func resolve(p string) (string, error) {
	p, err := filepath.Abs(p)
	if err != nil {
		return "", err
	}
	if r, err := filepath.EvalSymlinks(p); err == nil {
		return r, nil
	}
	if r, err := filepath.EvalSymlinks(filepath.Dir(p)); err == nil {
		return filepath.Join(r, filepath.Base(p)), nil
	}
	return p, nil
}

func walk(rfd int, dir string, hide, anc map[string]bool, all uint64) error {
	if err := addRule(rfd, dir, unix.LANDLOCK_ACCESS_FS_READ_DIR); err != nil {
		return err
	}
	ents, err := os.ReadDir(dir)
	if err != nil {
		return nil // not listable by us: nothing beneath it is granted
	}
	for _, e := range ents {
		p := filepath.Join(dir, e.Name())
		switch {
		case hide[p]:
		case anc[p]:
			if err := walk(rfd, p, hide, anc, all); err != nil {
				return err
			}
		default:
			if err := addRule(rfd, p, all); err != nil {
				return err
			}
		}
	}
	return nil
}

// addRule grants access beneath p. Symbolic links are skipped (a rule
// follows the inode, so a link would grant its target, possibly a hidden
// path); entries that vanished or cannot be opened are skipped too.
func addRule(rfd int, p string, access uint64) error {
	fd, err := unix.Open(p, unix.O_PATH|unix.O_CLOEXEC|unix.O_NOFOLLOW, 0)
	if err != nil {
		return nil
	}
	defer unix.Close(fd)
	var st unix.Stat_t
	if err := unix.Fstat(fd, &st); err != nil {
		return nil
	}
	switch st.Mode & unix.S_IFMT {
	case unix.S_IFLNK:
		return nil
	case unix.S_IFDIR:
	default:
		access &= fileRights
	}
	rule := unix.LandlockPathBeneathAttr{Allowed_access: access, Parent_fd: int32(fd)}
	if _, _, e := unix.Syscall6(unix.SYS_LANDLOCK_ADD_RULE, uintptr(rfd), unix.LANDLOCK_RULE_PATH_BENEATH,
		uintptr(unsafe.Pointer(&rule)), 0, 0, 0); e != 0 {
		return fmt.Errorf("landlock_add_rule %s: %w", p, e)
	}
	return nil
}

// ExecMain is the helper: HelperCommand [--hide PATH]... [--uid N --gid N]
// --path PROGRAM -- ARGV... It confines itself, drops to the uid if
// given, and execs PROGRAM with ARGV and its own environment. It returns
// only on failure, with a shell-like exit status (126).
func ExecMain(args []string) int {
	var hide []string
	var prog string
	uid, gid := -1, -1
	fail := func(format string, a ...any) int {
		fmt.Fprintf(os.Stderr, "agentkeys-daemon: confined start: "+format+"\n", a...)
		return 126
	}
	for len(args) > 0 {
		a := args[0]
		if a == "--" {
			args = args[1:]
			break
		}
		if len(args) < 2 {
			return fail("flag %s needs a value", a)
		}
		v := args[1]
		args = args[2:]
		switch a {
		case "--hide":
			hide = append(hide, v)
		case "--path":
			prog = v
		case "--uid", "--gid":
			n, err := strconv.ParseUint(v, 10, 32)
			if err != nil {
				return fail("bad %s", a)
			}
			if a == "--uid" {
				uid = int(n)
			} else {
				gid = int(n)
			}
		default:
			return fail("unknown flag %s", a)
		}
	}
	if prog == "" || len(args) == 0 || (uid < 0) != (gid < 0) {
		return fail("usage: %s [--hide PATH]... [--uid N --gid N] --path PROGRAM -- ARGV...", HelperCommand)
	}
	// landlock_restrict_self and no_new_privs apply to the calling thread;
	// the exec must come from that same thread.
	runtime.LockOSThread()
	if err := Restrict(hide); err != nil {
		return fail("landlock: %v", err)
	}
	if uid >= 0 {
		if err := syscall.Setgroups([]int{}); err != nil {
			return fail("setgroups: %v", err)
		}
		if err := unix.Setresgid(gid, gid, gid); err != nil {
			return fail("setresgid: %v", err)
		}
		if err := unix.Setresuid(uid, uid, uid); err != nil {
			return fail("setresuid: %v", err)
		}
	}
	err := unix.Exec(prog, args, os.Environ())
	if errors.Is(err, unix.ENOENT) {
		fmt.Fprintf(os.Stderr, "agentkeys-daemon: confined start: %s: %v\n", args[0], err)
		return 127
	}
	return fail("%s: %v", args[0], err)
}
