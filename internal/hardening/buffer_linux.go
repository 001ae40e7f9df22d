//go:build linux

package hardening

import (
	"os"
	"sync"

	"golang.org/x/sys/unix"
)

var (
	secretOnce sync.Once
	secretErr  error
)

func probeSecretErr() string {
	if secretErr == nil {
		return "untested"
	}
	return secretErr.Error()
}

// NewBuffer allocates n bytes of secret memory: memfd_secret if the kernel
// offers it (Linux 5.14+, secretmem enabled), else mlock'ed anonymous
// memory, else the Go heap.
func NewBuffer(n int) *Buffer {
	size := n
	if size == 0 {
		size = 1
	}
	page := os.Getpagesize()
	size = (size + page - 1) / page * page
	if b, err := secretMem(size); err == nil {
		return &Buffer{b: b, n: n, kind: KindSecretMem, unmap: munmap}
	}
	if b, err := unix.Mmap(-1, 0, size, unix.PROT_READ|unix.PROT_WRITE, unix.MAP_PRIVATE|unix.MAP_ANONYMOUS); err == nil {
		if unix.Mlock(b) == nil {
			_ = unix.Madvise(b, unix.MADV_DONTDUMP)
			return &Buffer{b: b, n: n, kind: KindLocked, unmap: func(b []byte) { unix.Munlock(b); munmap(b) }}
		}
		munmap(b)
	}
	return &Buffer{b: make([]byte, n), n: n, kind: KindHeap}
}

func munmap(b []byte) { _ = unix.Munmap(b) }

// secretMem maps size bytes of memfd_secret memory. The descriptor is ours
// and is closed once mapped (the mapping keeps the memory).
func secretMem(size int) ([]byte, error) {
	if sysMemfdSecret < 0 {
		secretOnce.Do(func() { secretErr = errNoSecretMem })
		return nil, errNoSecretMem
	}
	secretOnce.Do(func() {
		fd, _, errno := unix.Syscall(uintptr(sysMemfdSecret), unix.O_CLOEXEC, 0, 0)
		if errno != 0 {
			secretErr = errno
			return
		}
		unix.Close(int(fd))
	})
	if secretErr != nil {
		return nil, secretErr
	}
	fd, _, errno := unix.Syscall(uintptr(sysMemfdSecret), unix.O_CLOEXEC, 0, 0)
	if errno != 0 {
		return nil, errno
	}
	defer unix.Close(int(fd))
	if err := unix.Ftruncate(int(fd), int64(size)); err != nil {
		return nil, err
	}
	b, err := unix.Mmap(int(fd), 0, size, unix.PROT_READ|unix.PROT_WRITE, unix.MAP_SHARED)
	if err != nil {
		return nil, err
	}
	return b, nil
}
