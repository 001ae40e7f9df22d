// Package confine runs the daemon's run_with_credential children with less
// than the daemon's own authority: as another uid (no supplementary
// groups) and, where the kernel has it, inside a Landlock domain that
// cannot read the daemon's session and state files nor ptrace or signal
// the daemon.
//
// Go cannot run code between fork and exec, so Landlock is applied by a
// small helper: the daemon re-executes its own binary with HelperCommand,
// which restricts itself, drops to the child uid if asked and then execs
// the target command (the restriction is inherited across exec).
package confine

import (
	"errors"
	"fmt"
	"os"
	"os/user"
	"strconv"
	"strings"
)

// HelperCommand is the hidden first argument of the daemon binary that
// runs ExecMain.
const HelperCommand = "__confine-exec"

// Cred is the uid and gid a child runs as.
type Cred struct {
	Uid, Gid uint32
}

// ParseUser parses --child-user: USER, USER:GROUP, UID or UID:GID. A user
// name (or a uid found in the user database) without a group takes the
// user's primary group; an unknown numeric uid without a group takes the
// gid of the same number. Root (uid 0) is refused.
func ParseUser(s string) (Cred, error) {
	u, g, hasGroup := strings.Cut(s, ":")
	if u == "" || (hasGroup && g == "") {
		return Cred{}, fmt.Errorf("--child-user %q: want USER, USER:GROUP, UID or UID:GID", s)
	}
	var c Cred
	primary := ""
	if n, err := strconv.ParseUint(u, 10, 32); err == nil {
		c.Uid = uint32(n)
		if pw, err := user.LookupId(u); err == nil {
			primary = pw.Gid
		} else {
			primary = u
		}
	} else {
		pw, err := user.Lookup(u)
		if err != nil {
			return Cred{}, fmt.Errorf("--child-user: no user %q", u)
		}
		n, err := strconv.ParseUint(pw.Uid, 10, 32)
		if err != nil {
			return Cred{}, fmt.Errorf("--child-user: user %q has a non-numeric uid", u)
		}
		c.Uid, primary = uint32(n), pw.Gid
	}
	if !hasGroup {
		g = primary
	}
	if n, err := strconv.ParseUint(g, 10, 32); err == nil {
		c.Gid = uint32(n)
	} else {
		gr, err := user.LookupGroup(g)
		if err != nil {
			return Cred{}, fmt.Errorf("--child-user: no group %q", g)
		}
		n, err := strconv.ParseUint(gr.Gid, 10, 32)
		if err != nil {
			return Cred{}, fmt.Errorf("--child-user: group %q has a non-numeric gid", g)
		}
		c.Gid = uint32(n)
	}
	if c.Uid == 0 || c.Gid == 0 {
		return Cred{}, errors.New("--child-user must not be root (uid or gid 0): the point is a child with less authority than the daemon")
	}
	if int(c.Uid) == os.Geteuid() {
		return Cred{}, fmt.Errorf("--child-user uid %d is the daemon's own uid: a child of the same uid can read the daemon's files", c.Uid)
	}
	return c, nil
}
