//go:build !unix

package oidc

import (
	"io/fs"
	"os"
)

func checkOwner(fs.FileInfo) error { return nil }

func lockFile(string) (func(), error) { return func() {}, nil }

func statIdentity(path string) (fileIdentity, error) {
	st, err := os.Stat(path)
	if err != nil {
		return fileIdentity{}, err
	}
	return fileIdentity{mod: st.ModTime(), size: st.Size()}, nil
}
