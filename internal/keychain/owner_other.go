//go:build !unix

package keychain

import (
	"io/fs"
	"os"
)

func checkOwner(fs.FileInfo, string) error { return nil }

func openNoFollow(path string) (*os.File, error) { return os.Open(path) }
