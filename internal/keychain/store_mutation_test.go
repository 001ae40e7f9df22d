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

// TestFallbackNoteOnLoad: --verbose says the keychain was skipped when
// auto mode finds no keychain, and says nothing of the kind when the user
// chose the file.
func TestFallbackNoteOnLoad(t *testing.T) {
	for _, name := range []string{"bus", "dbus-session"} {
		if _, err := os.Stat(filepath.Join("/run/user/"+itoa(os.Getuid()), name)); err == nil {
			t.Skip("a per-user D-Bus session bus exists here")
		}
	}
	t.Setenv("DBUS_SESSION_BUS_ADDRESS", "")
	t.Setenv("XDG_RUNTIME_DIR", t.TempDir())
	st := fileStore(t)
	if _, err := st.Save("default", testSession()); err != nil {
		t.Fatal(err)
	}

	var notes bytes.Buffer
	file := &Store{Dir: st.Dir, Mode: ModeFile, Notes: &notes}
	if _, err := file.Load("default"); err != nil {
		t.Fatal(err)
	}
	if strings.Contains(notes.String(), "OS keychain unavailable") {
		t.Fatalf("file mode noted a keychain fallback:\n%s", notes.String())
	}

	notes.Reset()
	auto := &Store{Dir: st.Dir, Mode: ModeAuto, Notes: &notes}
	if _, err := auto.Load("default"); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(notes.String(), "OS keychain unavailable") {
		t.Fatalf("auto mode without a keychain did not say so:\n%s", notes.String())
	}
}
