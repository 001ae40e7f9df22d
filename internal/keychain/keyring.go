package keychain

import (
	"errors"
	"os"
	"path/filepath"
	"runtime"
	"strconv"
	"time"

	gokeyring "github.com/zalando/go-keyring"
)

// KeyringService is the service name of AgentKeys entries in the OS
// keychain (the original's).
const KeyringService = "agentkeys"

// DefaultKeyringTimeout bounds each keychain operation: a locked keychain
// waiting for a prompt nobody answers must not hang the CLI.
const DefaultKeyringTimeout = 2 * time.Second

// Keyring is the OS keychain seen by a Store; tests substitute a fake.
type Keyring interface {
	Get(service, account string) (string, error)
	Set(service, account, secret string) error
	Delete(service, account string) error
}

// ErrKeyringNotFound is what Keyring.Get and Delete return for a missing
// entry.
var ErrKeyringNotFound = gokeyring.ErrNotFound

// errKeyringTimeout reports a keychain operation that did not answer in
// time.
var errKeyringTimeout = errors.New("the OS keychain did not answer in time")

// osKeyring is the real OS keychain (zalando/go-keyring).
type osKeyring struct{}

func (osKeyring) Get(service, account string) (string, error) {
	return gokeyring.Get(service, account)
}
func (osKeyring) Set(service, account, secret string) error {
	return gokeyring.Set(service, account, secret)
}
func (osKeyring) Delete(service, account string) error {
	return gokeyring.Delete(service, account)
}

// withTimeout runs op on its own goroutine and gives up after d. A timed
// out operation keeps running in the background (the keychain libraries
// cannot be cancelled); callers stop using the keychain afterwards.
func withTimeout[T any](d time.Duration, op func() (T, error)) (T, error) {
	type result struct {
		v   T
		err error
	}
	ch := make(chan result, 1)
	go func() {
		v, err := op()
		ch <- result{v, err}
	}()
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case r := <-ch:
		return r.v, r.err
	case <-t.C:
		var zero T
		return zero, errKeyringTimeout
	}
}

// osKeyringReachable reports, without any I/O that can block, whether an
// OS keychain can exist here. On macOS and Windows it always can. Elsewhere
// the keychain is the Secret Service on the D-Bus session bus: with no bus
// address in the environment and no per-user bus socket, go-keyring would
// run dbus-launch, so we do not even try.
func osKeyringReachable() (bool, string) {
	switch runtime.GOOS {
	case "darwin", "windows":
		return true, ""
	}
	if a := os.Getenv("DBUS_SESSION_BUS_ADDRESS"); a != "" && a != "autolaunch:" {
		return true, ""
	}
	run := "/run/user/" + strconv.Itoa(os.Getuid())
	for _, name := range []string{"bus", "dbus-session"} {
		if _, err := os.Stat(filepath.Join(run, name)); err == nil {
			return true, ""
		}
	}
	// dbus itself only looks in /run/user/<uid>; honour XDG_RUNTIME_DIR too.
	if x := os.Getenv("XDG_RUNTIME_DIR"); x != "" && x != run && safeBusPath(x) {
		if fi, err := os.Stat(filepath.Join(x, "bus")); err == nil && fi.Mode()&os.ModeSocket != 0 {
			os.Setenv("DBUS_SESSION_BUS_ADDRESS", "unix:path="+filepath.Join(x, "bus"))
			return true, ""
		}
	}
	return false, "no D-Bus session bus (no Secret Service keychain)"
}

// safeBusPath reports whether p can go into a D-Bus address unescaped.
func safeBusPath(p string) bool {
	for i := 0; i < len(p); i++ {
		c := p[i]
		if !('a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' || c == '/' || c == '_' || c == '-' || c == '.') {
			return false
		}
	}
	return true
}
