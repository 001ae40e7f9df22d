//go:build unix

package sqldb

import (
	"path/filepath"
	"syscall"
)

// VolumeSpace returns the size and the space available to this process on
// the file system holding path.
func VolumeSpace(path string) (total, free int64, ok bool) {
	var st syscall.Statfs_t
	if err := syscall.Statfs(filepath.Dir(path), &st); err != nil {
		return 0, 0, false
	}
	return int64(st.Blocks) * int64(st.Bsize), int64(st.Bavail) * int64(st.Bsize), true
}
