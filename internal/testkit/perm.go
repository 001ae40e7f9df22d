package testkit

import (
	"os"
	"testing"
)

// WantPerm fails t unless path exists with exactly the permission bits
// want (0o600 for a private file, 0o700 for a private directory).
func WantPerm(t testing.TB, path string, want os.FileMode) {
	t.Helper()
	st, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	if got := st.Mode().Perm(); got != want {
		t.Errorf("%s mode %04o, want %04o", path, got, want)
	}
}
