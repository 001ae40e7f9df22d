// Package keychain stores AgentKeys sessions on the machine that holds them:
// in the OS keychain when one answers (macOS Keychain, Windows Credential
// Manager, the freedesktop Secret Service over D-Bus), else in a 0600 file
// under $XDG_CONFIG_HOME/agentkeys/<profile>/session.json.
//
// It also reads and writes session files, the JSON document
// {"session","wallet","backend"} (optionally "expires_at" and "broker")
// shared by the CLI, the daemon and tests.
// No error this package returns contains a token.
package keychain

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"net/url"
	"os"
	"path/filepath"
	"time"

	"github.com/agentkeys/agentkeys/internal/agentkeys"
)

// MaxSessionFileSize bounds a session file; real ones are under 300 bytes.
const MaxSessionFileSize = 64 << 10

// Session is a stored session: the bearer token, the wallet it acts as and
// the backend that issued it. Its JSON form is the session file format
// described above. The token formats as "[redacted]" in fmt and slog.
type Session struct {
	Token   agentkeys.Token  `json:"session"`
	Wallet  agentkeys.Wallet `json:"wallet"`
	Backend string           `json:"backend"`
	// ExpiresAt is the server's expiry in unix seconds; 0 when unknown.
	ExpiresAt int64 `json:"expires_at,omitempty"`
	// Broker is the broker this session's tokens may be sent to ("" until
	// one is bound): a different broker URL given later is refused.
	Broker string `json:"broker,omitempty"`
}

// Expiry returns ExpiresAt as a time; the zero time when unknown.
func (s Session) Expiry() time.Time {
	if s.ExpiresAt <= 0 {
		return time.Time{}
	}
	return time.Unix(s.ExpiresAt, 0)
}

// Validate checks the fields' shapes and normalises the wallet and the
// backend URL (no trailing slash).
func (s *Session) Validate() error {
	tok, err := agentkeys.ParseToken(string(s.Token))
	if err != nil {
		return errors.New("session token is malformed (want 64 lower-case hex digits)")
	}
	w, err := agentkeys.ParseWallet(string(s.Wallet))
	if err != nil {
		return errors.New("wallet is malformed (want 0x followed by 40 hex digits)")
	}
	b, err := normalizeURL(s.Backend, "backend", "http://127.0.0.1:8090")
	if err != nil {
		return err
	}
	if s.ExpiresAt < 0 {
		return errors.New("expires_at must not be negative")
	}
	br := ""
	if s.Broker != "" {
		if br, err = normalizeURL(s.Broker, "broker", "http://127.0.0.1:8091"); err != nil {
			return err
		}
	}
	s.Token, s.Wallet, s.Backend, s.Broker = tok, w, b, br
	return nil
}

// NormalizeURL checks an http(s) service URL and drops trailing slashes;
// what names it in errors ("backend", "broker").
func NormalizeURL(raw, what string) (string, error) {
	example := "http://127.0.0.1:8090"
	if what == "broker" {
		example = "http://127.0.0.1:8091"
	}
	return normalizeURL(raw, what, example)
}

func normalizeURL(raw, what, example string) (string, error) {
	if raw == "" {
		return "", errors.New(what + " URL is missing")
	}
	u, err := url.Parse(raw)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" || u.User != nil || u.RawQuery != "" || u.Fragment != "" {
		return "", errors.New(what + " URL must be an http(s) URL such as " + example)
	}
	for len(raw) > 0 && raw[len(raw)-1] == '/' {
		raw = raw[:len(raw)-1]
	}
	return raw, nil
}

// ParseSession decodes and validates a session document. Unknown fields are
// ignored (later versions may add some); trailing data is an error. Error
// messages never quote the input.
func ParseSession(data []byte) (Session, error) {
	if len(data) > MaxSessionFileSize {
		return Session{}, errors.New("session file is too large")
	}
	var raw struct {
		Token     *string `json:"session"`
		Wallet    *string `json:"wallet"`
		Backend   *string `json:"backend"`
		ExpiresAt *int64  `json:"expires_at"`
		Broker    *string `json:"broker"`
	}
	dec := json.NewDecoder(bytes.NewReader(data))
	if err := dec.Decode(&raw); err != nil {
		return Session{}, errors.New("session file is not a JSON object of the form {\"session\",\"wallet\",\"backend\"}")
	}
	if _, err := dec.Token(); err != io.EOF {
		return Session{}, errors.New("session file has data after its JSON object")
	}
	switch {
	case raw.Token == nil:
		return Session{}, errors.New("session file lacks \"session\"")
	case raw.Wallet == nil:
		return Session{}, errors.New("session file lacks \"wallet\"")
	case raw.Backend == nil:
		return Session{}, errors.New("session file lacks \"backend\"")
	}
	s := Session{Token: agentkeys.Token(*raw.Token), Wallet: agentkeys.Wallet(*raw.Wallet), Backend: *raw.Backend}
	if raw.ExpiresAt != nil {
		s.ExpiresAt = *raw.ExpiresAt
	}
	if raw.Broker != nil {
		s.Broker = *raw.Broker
	}
	if err := s.Validate(); err != nil {
		return Session{}, fmt.Errorf("session file: %w", err)
	}
	return s, nil
}

// Marshal returns the session file document (with a trailing newline).
func (s Session) Marshal() ([]byte, error) {
	if err := s.Validate(); err != nil {
		return nil, err
	}
	b, err := json.MarshalIndent(s, "", "  ")
	if err != nil {
		return nil, errors.New("encode session")
	}
	return append(b, '\n'), nil
}

// ReadSessionFile reads a session file written by WriteSessionFile (or by
// hand). Like ssh with a private key, it refuses a file that other users
// can read or write, or that belongs to another user.
func ReadSessionFile(path string) (Session, error) {
	f, err := os.Open(path)
	if err != nil {
		return Session{}, fmt.Errorf("open session file: %w", pathErr(err))
	}
	defer f.Close()
	return readSession(f, path, func(fi fs.FileInfo) error {
		if fi.Mode().Perm()&0o077 != 0 {
			return fmt.Errorf("session file %s has mode %04o; it holds a bearer token, so other users must not read it: chmod 600 %s", path, fi.Mode().Perm(), path)
		}
		return nil
	})
}

// readSession reads the session in the open file f (named path in
// messages, which never quote the content). It refuses anything but a
// regular file of this user, and checkMode decides about its permission
// bits (refuse or repair) before anything is read.
func readSession(f *os.File, path string, checkMode func(fs.FileInfo) error) (Session, error) {
	fi, err := f.Stat()
	if err != nil {
		return Session{}, fmt.Errorf("stat session file: %w", pathErr(err))
	}
	if !fi.Mode().IsRegular() {
		return Session{}, fmt.Errorf("session file %s is not a regular file; refusing to use it", path)
	}
	if err := checkOwner(fi, path); err != nil {
		return Session{}, err
	}
	if err := checkMode(fi); err != nil {
		return Session{}, err
	}
	data, err := io.ReadAll(io.LimitReader(f, MaxSessionFileSize+1))
	if err != nil {
		return Session{}, fmt.Errorf("read session file: %w", pathErr(err))
	}
	defer clear(data)
	sess, err := ParseSession(data)
	if err != nil {
		return Session{}, fmt.Errorf("%s: %w", path, err)
	}
	return sess, nil
}

// WriteSessionFile writes s to path with mode 0600, atomically (temporary
// file in the same directory, fsync, rename, fsync of the directory). The
// directory must exist.
func WriteSessionFile(path string, s Session) error {
	data, err := s.Marshal()
	if err != nil {
		return err
	}
	defer clear(data)
	return WritePrivateFile(path, data)
}

// WritePrivateFile atomically replaces path with data, mode 0600.
func WritePrivateFile(path string, data []byte) (err error) {
	dir := filepath.Dir(path)
	if fi, err := os.Lstat(path); err == nil && fi.IsDir() {
		return fmt.Errorf("%s is a directory", path)
	}
	tmp, err := os.CreateTemp(dir, "."+filepath.Base(path)+".tmp-*")
	if err != nil {
		return fmt.Errorf("create file in %s: %w", dir, pathErr(err))
	}
	name := tmp.Name()
	defer func() {
		if err != nil {
			tmp.Close()
			os.Remove(name)
		}
	}()
	if err = tmp.Chmod(0o600); err != nil {
		return fmt.Errorf("chmod %s: %w", name, pathErr(err))
	}
	if _, err = tmp.Write(data); err != nil {
		return fmt.Errorf("write %s: %w", path, pathErr(err))
	}
	if err = tmp.Sync(); err != nil {
		return fmt.Errorf("sync %s: %w", path, pathErr(err))
	}
	if err = tmp.Close(); err != nil {
		return fmt.Errorf("close %s: %w", path, pathErr(err))
	}
	if err = os.Rename(name, path); err != nil {
		return fmt.Errorf("rename into %s: %w", path, pathErr(err))
	}
	syncDir(dir)
	return nil
}

func syncDir(dir string) {
	if d, err := os.Open(dir); err == nil {
		d.Sync() // best effort: some filesystems refuse fsync on directories
		d.Close()
	}
}

// pathErr strips the *PathError wrapper's operation, keeping path and cause
// (the callers name the operation).
func pathErr(err error) error {
	var pe *os.PathError
	if errors.As(err, &pe) {
		return fmt.Errorf("%s: %w", pe.Path, pe.Err)
	}
	return err
}
