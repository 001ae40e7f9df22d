//go:build !unix

package sqldb

// VolumeSpace is not available on this platform.
func VolumeSpace(string) (total, free int64, ok bool) { return 0, 0, false }
