package daemon

import (
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"syscall"

	"github.com/agentkeys/agentkeys/internal/confine"
)

// Landlock modes of --child-landlock.
const (
	LandlockAuto = "auto" // on in secret-free mode when the kernel has Landlock
	LandlockOn   = "on"   // required: the daemon refuses to start without it
	LandlockOff  = "off"
)

// ChildOptions confine run_with_credential commands.
type ChildOptions struct {
	// User, when set, runs children as this uid/gid with no supplementary
	// groups.
	User *confine.Cred
	// Helper is the executable that implements confine.HelperCommand (this
	// daemon's binary); set it to confine children with Landlock, hiding
	// Hide from them.
	Helper string
	Hide   []string
}

// confineCmd rewrites cmd so that it starts as the child user and/or
// through the Landlock helper. cmd.Path is the resolved program.
func (o ChildOptions) confineCmd(cmd *exec.Cmd, attr *syscall.SysProcAttr) {
	if o.Helper == "" {
		if o.User != nil {
			attr.Credential = &syscall.Credential{Uid: o.User.Uid, Gid: o.User.Gid, Groups: []uint32{}}
		}
		return
	}
	// The helper starts with the daemon's uid (so it can read its own
	// binary wherever it lives), confines itself and then switches uid.
	args := []string{o.Helper, confine.HelperCommand}
	for _, h := range o.Hide {
		args = append(args, "--hide", h)
	}
	if o.User != nil {
		args = append(args, "--uid", strconv.FormatUint(uint64(o.User.Uid), 10), "--gid", strconv.FormatUint(uint64(o.User.Gid), 10))
	}
	args = append(args, "--path", cmd.Path, "--")
	cmd.Args = append(args, cmd.Args...)
	cmd.Path = o.Helper
}

// checkProgram reports whether path (relative to dir) is an executable
// regular file.
func checkProgram(path, dir string) error {
	if !filepath.IsAbs(path) && dir != "" {
		path = filepath.Join(dir, path)
	}
	fi, err := os.Stat(path)
	switch {
	case err != nil:
		return errors.New("no such file")
	case !fi.Mode().IsRegular() || fi.Mode().Perm()&0o111 == 0:
		return errors.New("not an executable file")
	}
	return nil
}

// setupChildren resolves --child-user and --child-landlock into
// ChildOptions, refusing to start when a requested confinement cannot be
// had, and logs once what children get.
func setupChildren(cfg Config, sockPath string) (ChildOptions, error) {
	var o ChildOptions
	log := cfg.Log
	if cfg.ChildUser != "" {
		c, err := confine.ParseUser(cfg.ChildUser)
		if err != nil {
			return o, err
		}
		if err := confine.CanSwitchUser(); err != nil {
			return o, err
		}
		o.User = &c
	}
	mode := cfg.ChildLandlock
	if mode == "" {
		mode = LandlockAuto
	}
	want := false
	switch mode {
	case LandlockOn:
		want = true
	case LandlockAuto:
		want = cfg.NoGetCredential
	case LandlockOff:
	default:
		return o, fmt.Errorf("--child-landlock %q: want auto, on or off", mode)
	}
	abi := confine.ABI()
	if want && abi < 1 {
		if mode == LandlockOn {
			return o, fmt.Errorf("--child-landlock on: this kernel offers no Landlock (Linux 5.13+ with landlock in the LSM list)")
		}
		log.Warn("the kernel offers no Landlock: run_with_credential children are not confined by it and, unless --child-user is set, can read what the daemon's uid can read")
		want = false
	}
	if want {
		exe, err := os.Executable()
		if err != nil {
			return o, fmt.Errorf("--child-landlock: cannot find this executable to start the confinement helper: %w", err)
		}
		o.Helper = exe
		o.Hide = hiddenPaths(cfg, sockPath)
	}
	attrs := []any{"landlock", o.Helper != "", "landlock_abi", abi}
	if o.User != nil {
		attrs = append(attrs, "child_uid", o.User.Uid, "child_gid", o.User.Gid)
	}
	if o.Helper != "" {
		attrs = append(attrs, "hidden", o.Hide)
	}
	log.Info("run_with_credential children", attrs...)
	return o, nil
}

// hiddenPaths are what a confined child must not read: the session file,
// the session store's directory (every stored session, master ones too),
// the socket's directory (socket, MCP and AWS endpoint tokens), the MCP
// and AWS endpoint token files and the provisioner's state.
func hiddenPaths(cfg Config, sockPath string) []string {
	var out []string
	add := func(p string) {
		if p == "" {
			return
		}
		if a, err := filepath.Abs(p); err == nil {
			out = append(out, a)
		}
	}
	add(cfg.Session.SessionFile)
	if cfg.Session.Store != nil {
		add(cfg.Session.Store.Dir)
	}
	if sockPath != "" {
		add(filepath.Dir(sockPath))
	}
	add(cfg.HTTPTokenFile)
	add(cfg.AWSTokenFile)
	if cfg.Provision != nil {
		if cfg.Provision.StateDir != "" {
			add(cfg.Provision.StateDir)
		} else if base := stateBase(); base != "" {
			add(filepath.Join(base, "agentkeys"))
		}
	}
	return out
}

func stateBase() string {
	if b := os.Getenv("XDG_STATE_HOME"); b != "" && filepath.IsAbs(b) {
		return b
	}
	if h, err := os.UserHomeDir(); err == nil {
		return filepath.Join(h, ".local", "state")
	}
	return ""
}
