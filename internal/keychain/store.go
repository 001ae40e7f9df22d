package keychain

import (
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"
)

// Mode says where a Store keeps sessions.
type Mode int

const (
	// ModeAuto uses the OS keychain when one answers and the file otherwise.
	ModeAuto Mode = iota
	// ModeFile uses only the file (AGENTKEYS_SESSION_STORE=file).
	ModeFile
	// ModeKeyring uses only the OS keychain (AGENTKEYS_SESSION_STORE=keychain).
	ModeKeyring
)

func (m Mode) String() string {
	switch m {
	case ModeFile:
		return "file"
	case ModeKeyring:
		return "keychain"
	}
	return "auto"
}

// EnvSessionStore selects the Mode: "file", "keychain" (or "keyring"),
// "auto" or unset.
const EnvSessionStore = "AGENTKEYS_SESSION_STORE"

// ModeFromEnv reads AGENTKEYS_SESSION_STORE.
func ModeFromEnv() (Mode, error) {
	switch v := strings.ToLower(strings.TrimSpace(os.Getenv(EnvSessionStore))); v {
	case "", "auto":
		return ModeAuto, nil
	case "file":
		return ModeFile, nil
	case "keychain", "keyring":
		return ModeKeyring, nil
	default:
		return ModeAuto, fmt.Errorf("%s=%q: want file, keychain or auto", EnvSessionStore, v)
	}
}

// ErrNoSession means the profile holds no session.
var ErrNoSession = errors.New("no session stored")

// SessionFileName is the name of the session file in a profile directory.
const SessionFileName = "session.json"

// ConfigDir returns $XDG_CONFIG_HOME/agentkeys, or ~/.config/agentkeys when
// XDG_CONFIG_HOME is unset or not absolute (XDG Base Directory spec).
func ConfigDir() (string, error) {
	if x := os.Getenv("XDG_CONFIG_HOME"); x != "" && filepath.IsAbs(x) {
		return filepath.Join(x, "agentkeys"), nil
	}
	home, err := os.UserHomeDir()
	if err != nil || home == "" {
		return "", errors.New("cannot find the configuration directory: set HOME or XDG_CONFIG_HOME")
	}
	return filepath.Join(home, ".config", "agentkeys"), nil
}

// ValidateProfile checks a profile name: 1–64 of [A-Za-z0-9._-], starting
// with a letter or digit. The name is a directory name and a keychain
// account, so nothing else is allowed.
func ValidateProfile(name string) error {
	if name == "" || len(name) > 64 {
		return errors.New("profile name must be 1 to 64 characters")
	}
	for i := 0; i < len(name); i++ {
		c := name[i]
		alnum := 'a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9'
		if !alnum && (i == 0 || (c != '.' && c != '_' && c != '-')) {
			return fmt.Errorf("profile name %q: use letters, digits, '.', '_' and '-', starting with a letter or digit", name)
		}
	}
	return nil
}

// Store keeps one session per profile.
type Store struct {
	// Dir is the base directory (ConfigDir()); profiles are subdirectories.
	Dir  string
	Mode Mode
	// Keyring is the OS keychain; nil means the real one.
	Keyring Keyring
	// Timeout bounds each keychain operation (DefaultKeyringTimeout).
	Timeout time.Duration
	// Notes receives one-line notes for --verbose (where the session is
	// kept, why the keychain was skipped). nil discards them.
	Notes io.Writer

	once       sync.Once
	kcOK       bool
	kcWhy      string
	noteOnce   sync.Once
	mu         sync.Mutex
	kcTimedOut bool
}

// New returns the Store the environment selects (ConfigDir, ModeFromEnv).
func New(notes io.Writer) (*Store, error) {
	dir, err := ConfigDir()
	if err != nil {
		return nil, err
	}
	mode, err := ModeFromEnv()
	if err != nil {
		return nil, err
	}
	return &Store{Dir: dir, Mode: mode, Notes: notes}, nil
}

// Load returns the profile's session, or an error wrapping ErrNoSession.
func Load(profile string) (Session, error) {
	s, err := New(nil)
	if err != nil {
		return Session{}, err
	}
	return s.Load(profile)
}

// Save stores the profile's session.
func Save(profile string, sess Session) error {
	s, err := New(nil)
	if err != nil {
		return err
	}
	_, err = s.Save(profile, sess)
	return err
}

// Delete removes the profile's session.
func Delete(profile string) error {
	s, err := New(nil)
	if err != nil {
		return err
	}
	return s.Delete(profile)
}

func (s *Store) notef(format string, args ...any) {
	if s.Notes != nil {
		fmt.Fprintf(s.Notes, "agentkeys: "+format+"\n", args...)
	}
}

func (s *Store) timeout() time.Duration {
	if s.Timeout > 0 {
		return s.Timeout
	}
	return DefaultKeyringTimeout
}

func (s *Store) keyring() Keyring {
	if s.Keyring != nil {
		return s.Keyring
	}
	return osKeyring{}
}

// keychainUsable reports whether to try the keychain at all.
func (s *Store) keychainUsable() (bool, string) {
	if s.Mode == ModeFile {
		return false, "AGENTKEYS_SESSION_STORE=file"
	}
	s.once.Do(func() {
		if s.Keyring != nil {
			s.kcOK = true
			return
		}
		s.kcOK, s.kcWhy = osKeyringReachable()
	})
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.kcTimedOut {
		return false, "the OS keychain timed out earlier"
	}
	return s.kcOK, s.kcWhy
}

// fallback notes, once per Store, that the file is used instead of the
// keychain.
func (s *Store) fallback(why string, path string) {
	s.noteOnce.Do(func() {
		s.notef("OS keychain unavailable (%s); session kept in %s", why, path)
	})
}

func (s *Store) keychainErr(err error) error {
	if errors.Is(err, errKeyringTimeout) {
		s.mu.Lock()
		s.kcTimedOut = true
		s.mu.Unlock()
	}
	return err
}

// ProfileDir returns the profile's directory, creating it (and the base
// directory) with mode 0700 and repairing looser modes on directories that
// already exist.
func (s *Store) ProfileDir(profile string) (string, error) {
	if err := ValidateProfile(profile); err != nil {
		return "", err
	}
	if s.Dir == "" {
		return "", errors.New("session store has no directory")
	}
	if err := ensurePrivateDir(s.Dir); err != nil {
		return "", err
	}
	dir := filepath.Join(s.Dir, profile)
	if err := ensurePrivateDir(dir); err != nil {
		return "", err
	}
	return dir, nil
}

// SessionPath is where the profile's session file lives (it may not exist).
func (s *Store) SessionPath(profile string) string {
	return filepath.Join(s.Dir, profile, SessionFileName)
}

// Load returns the profile's session, or an error wrapping ErrNoSession.
func (s *Store) Load(profile string) (Session, error) {
	if err := ValidateProfile(profile); err != nil {
		return Session{}, err
	}
	if ok, why := s.keychainUsable(); ok {
		secret, err := withTimeout(s.timeout(), func() (string, error) {
			return s.keyring().Get(KeyringService, profile)
		})
		switch {
		case err == nil:
			sess, perr := ParseSession([]byte(secret))
			if perr != nil {
				return Session{}, fmt.Errorf("keychain entry %s/%s: %w", KeyringService, profile, perr)
			}
			s.notef("session of profile %q read from the OS keychain", profile)
			return sess, nil
		case errors.Is(err, ErrKeyringNotFound):
			if s.Mode == ModeKeyring {
				return Session{}, fmt.Errorf("%w for profile %q in the OS keychain", ErrNoSession, profile)
			}
		default:
			err = s.keychainErr(err)
			if s.Mode == ModeKeyring {
				return Session{}, fmt.Errorf("read the OS keychain: %w", err)
			}
			s.fallback(err.Error(), s.SessionPath(profile))
		}
	} else if s.Mode == ModeKeyring {
		return Session{}, fmt.Errorf("%s=keychain but %s", EnvSessionStore, why)
	} else if s.Mode == ModeAuto {
		s.fallback(why, s.SessionPath(profile))
	}
	return s.loadFile(profile)
}

func (s *Store) loadFile(profile string) (Session, error) {
	path := s.SessionPath(profile)
	if err := checkPrivateDirIfExists(s.Dir); err != nil {
		return Session{}, err
	}
	if err := checkPrivateDirIfExists(filepath.Dir(path)); err != nil {
		return Session{}, err
	}
	f, err := openNoFollow(path)
	if errors.Is(err, fs.ErrNotExist) {
		return Session{}, fmt.Errorf("%w for profile %q (looked in %s)", ErrNoSession, profile, path)
	}
	if err != nil {
		return Session{}, fmt.Errorf("open session file: %w", pathErr(err))
	}
	defer f.Close()
	return readSession(f, path, func(fi fs.FileInfo) error {
		if fi.Mode().Perm() == 0o600 {
			return nil
		}
		if err := f.Chmod(0o600); err != nil {
			return fmt.Errorf("%s has mode %04o and cannot be repaired: %w", path, fi.Mode().Perm(), pathErr(err))
		}
		s.notef("repaired mode of %s to 0600 (was %04o)", path, fi.Mode().Perm())
		return nil
	})
}

// Save stores the profile's session and says where ("OS keychain" or the
// file path).
func (s *Store) Save(profile string, sess Session) (string, error) {
	if err := ValidateProfile(profile); err != nil {
		return "", err
	}
	data, err := sess.Marshal()
	if err != nil {
		return "", err
	}
	defer clear(data)
	if ok, why := s.keychainUsable(); ok {
		_, err := withTimeout(s.timeout(), func() (struct{}, error) {
			return struct{}{}, s.keyring().Set(KeyringService, profile, string(data))
		})
		if err == nil {
			// A file left from an earlier fallback would hold a stale token.
			if rerr := os.Remove(s.SessionPath(profile)); rerr != nil && !errors.Is(rerr, fs.ErrNotExist) {
				return "", fmt.Errorf("session saved in the OS keychain, but the old session file could not be removed: %w", pathErr(rerr))
			}
			s.notef("session of profile %q saved in the OS keychain (service %q)", profile, KeyringService)
			return "OS keychain", nil
		}
		err = s.keychainErr(err)
		if s.Mode == ModeKeyring {
			return "", fmt.Errorf("write the OS keychain: %w", err)
		}
		s.fallback(err.Error(), s.SessionPath(profile))
	} else if s.Mode == ModeKeyring {
		return "", fmt.Errorf("%s=keychain but %s", EnvSessionStore, why)
	} else if s.Mode == ModeAuto {
		s.fallback(why, s.SessionPath(profile))
	}
	dir, err := s.ProfileDir(profile)
	if err != nil {
		return "", err
	}
	path := filepath.Join(dir, SessionFileName)
	if fi, err := os.Lstat(path); err == nil && !fi.Mode().IsRegular() {
		return "", fmt.Errorf("%s is not a regular file; refusing to replace it", path)
	}
	if err := WritePrivateFile(path, data); err != nil {
		return "", err
	}
	return path, nil
}

// Delete removes the profile's session from the keychain and the file. A
// missing session is not an error.
func (s *Store) Delete(profile string) error {
	if err := ValidateProfile(profile); err != nil {
		return err
	}
	var errs []error
	if ok, _ := s.keychainUsable(); ok {
		_, err := withTimeout(s.timeout(), func() (struct{}, error) {
			return struct{}{}, s.keyring().Delete(KeyringService, profile)
		})
		if err != nil && !errors.Is(err, ErrKeyringNotFound) {
			err = s.keychainErr(err)
			if s.Mode == ModeKeyring {
				errs = append(errs, fmt.Errorf("remove the OS keychain entry %s/%s: %w", KeyringService, profile, err))
			} else {
				// Auto mode: a keychain that does not answer now most
				// likely never held the session (the file did). Callers
				// delete after revoking, so a copy left behind is a dead
				// token; a successful revoke must not become a failure.
				s.notef("could not check the OS keychain for a copy of the session (%v); if one is there, it is no longer valid", err)
			}
		}
	}
	if err := os.Remove(s.SessionPath(profile)); err != nil && !errors.Is(err, fs.ErrNotExist) {
		errs = append(errs, fmt.Errorf("remove session file: %w", pathErr(err)))
	}
	return errors.Join(errs...)
}

// ensurePrivateDir creates dir with mode 0700 or repairs an existing one
// that is ours; it refuses a directory owned by another user.
func ensurePrivateDir(dir string) error {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return fmt.Errorf("create %s: %w", dir, pathErr(err))
	}
	return fixPrivateDir(dir)
}

func checkPrivateDirIfExists(dir string) error {
	if _, err := os.Stat(dir); errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	return fixPrivateDir(dir)
}

func fixPrivateDir(dir string) error {
	fi, err := os.Stat(dir)
	if err != nil {
		return fmt.Errorf("stat %s: %w", dir, pathErr(err))
	}
	if !fi.IsDir() {
		return fmt.Errorf("%s is not a directory", dir)
	}
	if err := checkOwner(fi, dir); err != nil {
		return err
	}
	if fi.Mode().Perm() != 0o700 {
		if err := os.Chmod(dir, 0o700); err != nil {
			return fmt.Errorf("%s has mode %04o and cannot be repaired to 0700: %w", dir, fi.Mode().Perm(), pathErr(err))
		}
	}
	return nil
}
