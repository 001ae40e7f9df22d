package keychain

import (
	"bytes"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/agentkeys/agentkeys/internal/agentkeys"
)

func testSession() Session {
	return Session{
		Token:     agentkeys.NewToken(),
		Wallet:    agentkeys.NewWallet(),
		Backend:   "http://127.0.0.1:8090",
		ExpiresAt: 1893456000,
	}
}

func mode(t *testing.T, path string) os.FileMode {
	t.Helper()
	fi, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	return fi.Mode().Perm()
}

func TestParseSession(t *testing.T) {
	s := testSession()
	good, err := s.Marshal()
	if err != nil {
		t.Fatal(err)
	}
	got, err := ParseSession(good)
	if err != nil || got != s {
		t.Fatalf("round trip: %+v, %v", got, err)
	}
	tok := s.Token.Reveal()
	w := string(s.Wallet)
	cases := map[string]string{
		"empty":          ``,
		"not object":     `[]`,
		"no session":     `{"wallet":"` + w + `","backend":"http://x"}`,
		"no wallet":      `{"session":"` + tok + `","backend":"http://x"}`,
		"no backend":     `{"session":"` + tok + `","wallet":"` + w + `"}`,
		"short token":    `{"session":"abc","wallet":"` + w + `","backend":"http://x"}`,
		"upper token":    `{"session":"` + strings.ToUpper(tok) + `","wallet":"` + w + `","backend":"http://x"}`,
		"bad wallet":     `{"session":"` + tok + `","wallet":"0x12","backend":"http://x"}`,
		"ftp backend":    `{"session":"` + tok + `","wallet":"` + w + `","backend":"ftp://x"}`,
		"userinfo":       `{"session":"` + tok + `","wallet":"` + w + `","backend":"http://u:p@x"}`,
		"trailing data":  `{"session":"` + tok + `","wallet":"` + w + `","backend":"http://x"} {}`,
		"negative exp":   `{"session":"` + tok + `","wallet":"` + w + `","backend":"http://x","expires_at":-1}`,
		"token a number": `{"session":1,"wallet":"` + w + `","backend":"http://x"}`,
	}
	for name, doc := range cases {
		_, err := ParseSession([]byte(doc))
		if err == nil {
			t.Errorf("%s: accepted", name)
			continue
		}
		if strings.Contains(err.Error(), tok) || strings.Contains(err.Error(), strings.ToUpper(tok)) {
			t.Errorf("%s: error quotes the token: %v", name, err)
		}
	}
	// Normalisation: mixed-case wallet, trailing slash, unknown fields.
	doc := `{"session":"` + tok + `","wallet":"` + strings.ToUpper(w[:2]) + strings.ToUpper(w[2:]) + `","backend":"http://h:1/","future":true}`
	got, err = ParseSession([]byte(doc))
	if err != nil {
		t.Fatal(err)
	}
	if got.Wallet != s.Wallet || got.Backend != "http://h:1" {
		t.Fatalf("not normalised: %+v", got)
	}
	if _, err := ParseSession(bytes.Repeat([]byte(" "), MaxSessionFileSize+1)); err == nil {
		t.Fatal("oversized file accepted")
	}
}

func TestSessionDoesNotFormatToken(t *testing.T) {
	s := testSession()
	for _, f := range []string{"%v", "%+v", "%#v", "%s"} {
		if out := fmtSprintf(f, s); strings.Contains(out, s.Token.Reveal()) {
			t.Fatalf("%s prints the token: %s", f, out)
		}
	}
}

func TestWriteAndReadSessionFile(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "agent.json")
	s := testSession()
	if err := WriteSessionFile(path, s); err != nil {
		t.Fatal(err)
	}
	if m := mode(t, path); m != 0o600 {
		t.Fatalf("mode %04o, want 0600", m)
	}
	got, err := ReadSessionFile(path)
	if err != nil || got != s {
		t.Fatalf("read back %+v, %v", got, err)
	}
	// Overwrite keeps 0600 and leaves no temporary files behind.
	s2 := testSession()
	if err := WriteSessionFile(path, s2); err != nil {
		t.Fatal(err)
	}
	entries, _ := os.ReadDir(dir)
	if len(entries) != 1 {
		t.Fatalf("directory holds %d entries, want 1", len(entries))
	}
	if got, _ := ReadSessionFile(path); got != s2 {
		t.Fatal("overwrite did not take")
	}
	// A group/world readable file is refused, naming the fix.
	if err := os.Chmod(path, 0o644); err != nil {
		t.Fatal(err)
	}
	_, err = ReadSessionFile(path)
	if err == nil || !strings.Contains(err.Error(), "chmod 600") {
		t.Fatalf("0644 file: %v", err)
	}
	if err := WriteSessionFile(filepath.Join(dir, "missing", "x.json"), s); err == nil {
		t.Fatal("wrote into a missing directory")
	}
	if err := WriteSessionFile(filepath.Join(dir, "bad.json"), Session{}); err == nil {
		t.Fatal("wrote an invalid session")
	}
	if _, err := ReadSessionFile(filepath.Join(dir, "nope.json")); err == nil {
		t.Fatal("read a missing file")
	}
}

func fileStore(t *testing.T) *Store {
	t.Helper()
	return &Store{Dir: filepath.Join(t.TempDir(), "cfg", "agentkeys"), Mode: ModeFile}
}

func TestFileStoreModes(t *testing.T) {
	st := fileStore(t)
	if _, err := st.Load("default"); !errors.Is(err, ErrNoSession) {
		t.Fatalf("empty store: %v", err)
	}
	s := testSession()
	where, err := st.Save("default", s)
	if err != nil {
		t.Fatal(err)
	}
	if where != st.SessionPath("default") {
		t.Fatalf("saved in %q", where)
	}
	if m := mode(t, st.Dir); m != 0o700 {
		t.Fatalf("base dir mode %04o", m)
	}
	if m := mode(t, filepath.Dir(where)); m != 0o700 {
		t.Fatalf("profile dir mode %04o", m)
	}
	if m := mode(t, where); m != 0o600 {
		t.Fatalf("file mode %04o", m)
	}
	got, err := st.Load("default")
	if err != nil || got != s {
		t.Fatalf("load: %+v %v", got, err)
	}
	// Loose modes made by someone else are repaired on the next use.
	os.Chmod(st.Dir, 0o755)
	os.Chmod(filepath.Dir(where), 0o777)
	os.Chmod(where, 0o644)
	if _, err := st.Load("default"); err != nil {
		t.Fatal(err)
	}
	for path, want := range map[string]os.FileMode{st.Dir: 0o700, filepath.Dir(where): 0o700, where: 0o600} {
		if m := mode(t, path); m != want {
			t.Errorf("%s: mode %04o after load, want %04o", path, m, want)
		}
	}
	// Profiles are separate.
	if _, err := st.Load("other"); !errors.Is(err, ErrNoSession) {
		t.Fatalf("other profile: %v", err)
	}
	if err := st.Delete("default"); err != nil {
		t.Fatal(err)
	}
	if _, err := st.Load("default"); !errors.Is(err, ErrNoSession) {
		t.Fatalf("after delete: %v", err)
	}
	if err := st.Delete("default"); err != nil {
		t.Fatalf("deleting nothing: %v", err)
	}
}

func TestFileStoreRefusesSymlinkAndBadProfiles(t *testing.T) {
	st := fileStore(t)
	s := testSession()
	if _, err := st.Save("p", s); err != nil {
		t.Fatal(err)
	}
	target := filepath.Join(t.TempDir(), "elsewhere.json")
	if err := WriteSessionFile(target, s); err != nil {
		t.Fatal(err)
	}
	os.Remove(st.SessionPath("p"))
	if err := os.Symlink(target, st.SessionPath("p")); err != nil {
		t.Fatal(err)
	}
	if _, err := st.Load("p"); err == nil {
		t.Fatal("followed a symlinked session file")
	}
	if _, err := st.Save("p", s); err == nil {
		t.Fatal("replaced a symlink")
	}
	for _, bad := range []string{"", ".", "..", "../x", "a/b", ".hidden", "-x", strings.Repeat("a", 65), "a b"} {
		if _, err := st.Save(bad, s); err == nil {
			t.Errorf("profile %q accepted", bad)
		}
		if _, err := st.Load(bad); err == nil {
			t.Errorf("profile %q accepted by Load", bad)
		}
	}
}

func TestModeFromEnv(t *testing.T) {
	for v, want := range map[string]Mode{"": ModeAuto, "auto": ModeAuto, "file": ModeFile, "FILE": ModeFile, "keychain": ModeKeyring, "keyring": ModeKeyring} {
		t.Setenv(EnvSessionStore, v)
		got, err := ModeFromEnv()
		if err != nil || got != want {
			t.Errorf("%q: %v %v", v, got, err)
		}
	}
	t.Setenv(EnvSessionStore, "vault")
	if _, err := ModeFromEnv(); err == nil {
		t.Error("unknown store accepted")
	}
}

func TestConfigDir(t *testing.T) {
	t.Setenv("XDG_CONFIG_HOME", "/x/cfg")
	if d, _ := ConfigDir(); d != "/x/cfg/agentkeys" {
		t.Errorf("XDG: %s", d)
	}
	t.Setenv("XDG_CONFIG_HOME", "relative")
	t.Setenv("HOME", "/home/u")
	if d, _ := ConfigDir(); d != "/home/u/.config/agentkeys" {
		t.Errorf("fallback: %s", d)
	}
}

// fakeKeyring is an in-memory keychain; block, when set, holds every call
// until it is closed.
type fakeKeyring struct {
	mu    sync.Mutex
	m     map[string]string
	err   error
	block chan struct{}
	calls atomic.Int32
}

func (f *fakeKeyring) wait() {
	f.calls.Add(1)
	if f.block != nil {
		<-f.block
	}
}

func (f *fakeKeyring) Get(svc, acct string) (string, error) {
	f.wait()
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.err != nil {
		return "", f.err
	}
	v, ok := f.m[svc+"/"+acct]
	if !ok {
		return "", ErrKeyringNotFound
	}
	return v, nil
}

func (f *fakeKeyring) Set(svc, acct, secret string) error {
	f.wait()
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.err != nil {
		return f.err
	}
	if f.m == nil {
		f.m = map[string]string{}
	}
	f.m[svc+"/"+acct] = secret
	return nil
}

func (f *fakeKeyring) Delete(svc, acct string) error {
	f.wait()
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.err != nil {
		return f.err
	}
	if _, ok := f.m[svc+"/"+acct]; !ok {
		return ErrKeyringNotFound
	}
	delete(f.m, svc+"/"+acct)
	return nil
}

func TestAutoStoreUsesKeychain(t *testing.T) {
	kr := &fakeKeyring{}
	st := fileStore(t)
	st.Mode, st.Keyring = ModeAuto, kr
	// A stale file from an earlier fallback is removed once the keychain
	// takes the session.
	old := testSession()
	if _, err := (&Store{Dir: st.Dir, Mode: ModeFile}).Save("default", old); err != nil {
		t.Fatal(err)
	}
	s := testSession()
	where, err := st.Save("default", s)
	if err != nil || where != "OS keychain" {
		t.Fatalf("save: %q %v", where, err)
	}
	if _, err := os.Stat(st.SessionPath("default")); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("stale session file left behind: %v", err)
	}
	if got, err := st.Load("default"); err != nil || got != s {
		t.Fatalf("load: %+v %v", got, err)
	}
	if err := st.Delete("default"); err != nil {
		t.Fatal(err)
	}
	if _, err := st.Load("default"); !errors.Is(err, ErrNoSession) {
		t.Fatalf("after delete: %v", err)
	}
}

func TestAutoStoreFallsBackAndSaysSoOnce(t *testing.T) {
	var notes bytes.Buffer
	kr := &fakeKeyring{err: errors.New("org.freedesktop.DBus.Error.ServiceUnknown")}
	st := fileStore(t)
	st.Mode, st.Keyring, st.Notes = ModeAuto, kr, &notes
	s := testSession()
	where, err := st.Save("default", s)
	if err != nil || where != st.SessionPath("default") {
		t.Fatalf("save: %q %v", where, err)
	}
	if got, err := st.Load("default"); err != nil || got != s {
		t.Fatalf("load: %v", err)
	}
	if n := strings.Count(notes.String(), "OS keychain unavailable"); n != 1 {
		t.Fatalf("fallback noted %d times:\n%s", n, notes.String())
	}
	if strings.Contains(notes.String(), s.Token.Reveal()) {
		t.Fatal("note leaks the token")
	}
}

func TestKeychainTimeout(t *testing.T) {
	kr := &fakeKeyring{block: make(chan struct{})}
	defer close(kr.block)
	st := fileStore(t)
	st.Mode, st.Keyring, st.Timeout = ModeAuto, kr, 20*time.Millisecond
	s := testSession()
	if _, err := st.Save("default", s); err != nil {
		t.Fatal(err)
	}
	if got, err := st.Load("default"); err != nil || got != s {
		t.Fatalf("load: %v", err)
	}
	// After one timeout the keychain is not tried again in this process.
	if n := kr.calls.Load(); n != 1 {
		t.Fatalf("keychain called %d times, want 1", n)
	}
	forced := &Store{Dir: st.Dir, Mode: ModeKeyring, Keyring: kr, Timeout: 20 * time.Millisecond}
	if _, err := forced.Load("default"); err == nil {
		t.Fatal("forced keychain mode fell back to the file")
	}
}

func TestNoBusMeansNoKeychainFast(t *testing.T) {
	if _, err := os.Stat("/run/user/" + itoa(os.Getuid()) + "/bus"); err == nil {
		t.Skip("a D-Bus session bus exists here")
	}
	t.Setenv("DBUS_SESSION_BUS_ADDRESS", "")
	t.Setenv("XDG_RUNTIME_DIR", t.TempDir())
	start := time.Now()
	ok, why := osKeyringReachable()
	if ok || why == "" {
		t.Fatalf("reachable=%v why=%q", ok, why)
	}
	st := &Store{Dir: filepath.Join(t.TempDir(), "agentkeys"), Mode: ModeAuto}
	if _, err := st.Save("default", testSession()); err != nil {
		t.Fatal(err)
	}
	if d := time.Since(start); d > time.Second {
		t.Fatalf("detecting the missing keychain took %s", d)
	}
	forced := &Store{Dir: st.Dir, Mode: ModeKeyring}
	if _, err := forced.Load("default"); err == nil || !strings.Contains(err.Error(), "D-Bus") {
		t.Fatalf("forced keychain without a bus: %v", err)
	}
}

func TestDeleteWithBrokenKeychain(t *testing.T) {
	kr := &fakeKeyring{err: errors.New("org.freedesktop.DBus.Error.ServiceUnknown")}
	st := fileStore(t)
	st.Mode, st.Keyring = ModeAuto, kr
	if _, err := st.Save("default", testSession()); err != nil {
		t.Fatal(err)
	}
	if err := st.Delete("default"); err != nil {
		t.Fatalf("auto mode: a broken keychain turned delete into a failure: %v", err)
	}
	if _, err := os.Stat(st.SessionPath("default")); !errors.Is(err, os.ErrNotExist) {
		t.Fatal("file not removed")
	}
	st2 := &Store{Dir: st.Dir, Mode: ModeKeyring, Keyring: kr}
	if err := st2.Delete("default"); err == nil {
		t.Fatal("keychain mode hid a keychain failure")
	}
}

// TestSessionBroker: the optional "broker" field round-trips, is
// normalised and checked, and files without it still load.
func TestSessionBroker(t *testing.T) {
	s := testSession()
	old, err := s.Marshal()
	if err != nil {
		t.Fatal(err)
	}
	if bytes.Contains(old, []byte(`"broker"`)) {
		t.Fatalf("a session without a broker writes the field: %s", old)
	}
	if got, err := ParseSession(old); err != nil || got.Broker != "" {
		t.Fatalf("old format: %+v, %v", got, err)
	}
	s.Broker = "http://127.0.0.1:8091/"
	b, err := s.Marshal()
	if err != nil {
		t.Fatal(err)
	}
	got, err := ParseSession(b)
	if err != nil || got.Broker != "http://127.0.0.1:8091" {
		t.Fatalf("with broker: %+v, %v", got, err)
	}
	for _, bad := range []string{"127.0.0.1:8091", "ftp://h", "http://u:p@h", "http://h/?q=1"} {
		s.Broker = bad
		if _, err := s.Marshal(); err == nil {
			t.Errorf("broker %q accepted", bad)
		}
	}
}
