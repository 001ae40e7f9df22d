package keychain

import (
	"net"
	"os"
	"path/filepath"
	"runtime"
	"testing"
)

// busSocket creates a listening unix socket named "bus" in dir (made if
// missing), as a D-Bus session daemon would.
func busSocket(t *testing.T, dir string) string {
	t.Helper()
	if err := os.MkdirAll(dir, 0o700); err != nil {
		t.Fatal(err)
	}
	p := filepath.Join(dir, "bus")
	l, err := net.Listen("unix", p)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { l.Close() })
	return p
}

// TestKeyringReachableDecisions pins how the CLI decides, without touching
// D-Bus, whether a Secret Service keychain can exist: a bus address in the
// environment (but not dbus' "autolaunch:", which would spawn dbus-launch),
// or a bus socket in $XDG_RUNTIME_DIR whose path is safe to put in a D-Bus
// address unescaped; a plain file named "bus" is not a bus.
func TestKeyringReachableDecisions(t *testing.T) {
	if runtime.GOOS == "darwin" || runtime.GOOS == "windows" {
		return // the keychain always exists there
	}
	run := "/run/user/" + itoa(os.Getuid())
	for _, name := range []string{"bus", "dbus-session"} {
		if _, err := os.Stat(filepath.Join(run, name)); err == nil {
			t.Skip("a per-user D-Bus session bus exists here")
		}
	}
	empty := t.TempDir()

	t.Run("bus address in the environment", func(t *testing.T) {
		t.Setenv("DBUS_SESSION_BUS_ADDRESS", "unix:path=/nonexistent/bus")
		t.Setenv("XDG_RUNTIME_DIR", empty)
		if ok, why := osKeyringReachable(); !ok {
			t.Fatalf("an explicit bus address was ignored: %q", why)
		}
	})
	t.Run("autolaunch is no bus", func(t *testing.T) {
		t.Setenv("DBUS_SESSION_BUS_ADDRESS", "autolaunch:")
		t.Setenv("XDG_RUNTIME_DIR", empty)
		if ok, _ := osKeyringReachable(); ok {
			t.Fatal("autolaunch: counted as a reachable keychain (go-keyring would run dbus-launch)")
		}
	})
	t.Run("socket in XDG_RUNTIME_DIR", func(t *testing.T) {
		// Every character class safeBusPath allows, at its boundaries.
		dir := filepath.Join(t.TempDir(), "azAZ09_-.d")
		sock := busSocket(t, dir)
		t.Setenv("DBUS_SESSION_BUS_ADDRESS", "")
		t.Setenv("XDG_RUNTIME_DIR", dir)
		ok, why := osKeyringReachable()
		if !ok {
			t.Fatalf("bus socket %s not found: %q", sock, why)
		}
		if got, want := os.Getenv("DBUS_SESSION_BUS_ADDRESS"), "unix:path="+sock; got != want {
			t.Fatalf("DBUS_SESSION_BUS_ADDRESS = %q, want %q", got, want)
		}
	})
	t.Run("plain file named bus", func(t *testing.T) {
		dir := t.TempDir()
		if err := os.WriteFile(filepath.Join(dir, "bus"), nil, 0o600); err != nil {
			t.Fatal(err)
		}
		t.Setenv("DBUS_SESSION_BUS_ADDRESS", "")
		t.Setenv("XDG_RUNTIME_DIR", dir)
		if ok, _ := osKeyringReachable(); ok {
			t.Fatal("a regular file named bus counted as a D-Bus socket")
		}
	})
	t.Run("unsafe runtime dir", func(t *testing.T) {
		for _, name := range []string{"semi;colon", "com,ma", "eq=uals", "sp ace"} {
			dir := filepath.Join(t.TempDir(), name)
			busSocket(t, dir)
			t.Setenv("DBUS_SESSION_BUS_ADDRESS", "")
			t.Setenv("XDG_RUNTIME_DIR", dir)
			if ok, _ := osKeyringReachable(); ok {
				t.Fatalf("runtime dir %q went into a D-Bus address unescaped", name)
			}
			if a := os.Getenv("DBUS_SESSION_BUS_ADDRESS"); a != "" {
				t.Fatalf("DBUS_SESSION_BUS_ADDRESS set to %q", a)
			}
		}
	})
}

// TestSafeBusPath: exactly letters, digits and / _ - . pass; the
// neighbours of each allowed range do not.
func TestSafeBusPath(t *testing.T) {
	for _, p := range []string{"", "/run/user/1000", "azAZ09/_-.", "a", "z", "A", "Z", "0", "9"} {
		if !safeBusPath(p) {
			t.Errorf("safeBusPath(%q) = false", p)
		}
	}
	for _, p := range []string{"`", "{", "@", "[", ":", ";", ",", "=", "%", " ", "/ok/then;bad", "é"} {
		if safeBusPath(p) {
			t.Errorf("safeBusPath(%q) = true", p)
		}
	}
}
