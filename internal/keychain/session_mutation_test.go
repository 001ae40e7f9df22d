package keychain

import (
	"bytes"
	"path/filepath"
	"strings"
	"testing"
)

// TestSessionFileSizeLimit: a session file of exactly MaxSessionFileSize
// bytes loads (a hand-edited file padded with whitespace, say); one byte
// more is refused as too large.
func TestSessionFileSizeLimit(t *testing.T) {
	want := testSession()
	doc, err := want.Marshal()
	if err != nil {
		t.Fatal(err)
	}
	pad := func(n int) []byte {
		return append(bytes.Clone(doc), bytes.Repeat([]byte{' '}, n-len(doc))...)
	}
	dir := t.TempDir()
	atLimit := filepath.Join(dir, "at-limit.json")
	if err := WritePrivateFile(atLimit, pad(MaxSessionFileSize)); err != nil {
		t.Fatal(err)
	}
	got, err := ReadSessionFile(atLimit)
	if err != nil {
		t.Fatalf("%d-byte session file refused: %v", MaxSessionFileSize, err)
	}
	if got.Token != want.Token || got.Wallet != want.Wallet {
		t.Fatal("session read back differs")
	}
	over := filepath.Join(dir, "over.json")
	if err := WritePrivateFile(over, pad(MaxSessionFileSize+1)); err != nil {
		t.Fatal(err)
	}
	if _, err := ReadSessionFile(over); err == nil || !strings.Contains(err.Error(), "too large") {
		t.Fatalf("%d-byte session file: err = %v, want too large", MaxSessionFileSize+1, err)
	}
}
