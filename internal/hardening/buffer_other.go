//go:build !linux

package hardening

// NewBuffer allocates n bytes on the Go heap (zeroed on Destroy).
func NewBuffer(n int) *Buffer { return &Buffer{b: make([]byte, n), n: n, kind: KindHeap} }
