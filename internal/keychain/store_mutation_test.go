package keychain

import (
	"bytes"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestAutoLoadFallsBackToFileWhenKeychainHasNoEntry: a session saved to
// the file (before a keychain was available, or with
// AGENTKEYS_SESSION_STORE=file) still loads in auto mode once the keychain
// answers without an entry; in keychain mode the file is not consulted.
func TestAutoLoadFallsBackToFileWhenKeychainHasNoEntry(t *testing.T) {
	st := fileStore(t)
	want := testSession()
	if _, err := st.Save("default", want); err != nil {
		t.Fatal(err)
	}
	auto := &Store{Dir: st.Dir, Mode: ModeAuto, Keyring: &fakeKeyring{}}
	got, err := auto.Load("default")
	if err != nil || got.Token != want.Token {
		t.Fatalf("auto mode ignored the session file: %v", err)
	}
	forced := &Store{Dir: st.Dir, Mode: ModeKeyring, Keyring: &fakeKeyring{}}
	if _, err := forced.Load("default"); !errors.Is(err, ErrNoSession) || !strings.Contains(err.Error(), "OS keychain") {
		t.Fatalf("keychain mode: err = %v, want no session in the OS keychain", err)
	}
}

// TestFallbackNote: on save and on load, --verbose says the keychain was
// skipped when auto mode finds no keychain, and says nothing of the kind
// when the user chose the file.
func TestFallbackNote(t *testing.T) {
	for _, name := range []string{"bus", "dbus-session"} {
		if _, err := os.Stat(filepath.Join("/run/user/"+itoa(os.Getuid()), name)); err == nil {
			t.Skip("a per-user D-Bus session bus exists here")
		}
	}
	t.Setenv("DBUS_SESSION_BUS_ADDRESS", "")
	t.Setenv("XDG_RUNTIME_DIR", t.TempDir())
	dir := fileStore(t).Dir
	var notes bytes.Buffer
	check := func(what string, mode Mode, op func(*Store) error, wantNote bool) {
		t.Helper()
		notes.Reset()
		if err := op(&Store{Dir: dir, Mode: mode, Notes: &notes}); err != nil {
			t.Fatalf("%s: %v", what, err)
		}
		if got := strings.Contains(notes.String(), "OS keychain unavailable"); got != wantNote {
			t.Fatalf("%s: fallback noted = %v, want %v:\n%s", what, got, wantNote, notes.String())
		}
	}
	save := func(s *Store) error { _, err := s.Save("default", testSession()); return err }
	load := func(s *Store) error { _, err := s.Load("default"); return err }
	check("file mode save", ModeFile, save, false)
	check("file mode load", ModeFile, load, false)
	check("auto mode save", ModeAuto, save, true)
	check("auto mode load", ModeAuto, load, true)
}
