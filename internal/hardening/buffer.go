package hardening

// Kind says where a Buffer's bytes live.
type Kind string

// Buffer kinds, strongest first.
const (
	// KindSecretMem: memfd_secret(2) memory, removed from the kernel's
	// direct map (not readable through /proc/<pid>/mem, never swapped).
	KindSecretMem Kind = "memfd_secret"
	// KindLocked: anonymous memory locked with mlock(2) and excluded from
	// core dumps with MADV_DONTDUMP.
	KindLocked Kind = "mlock"
	// KindHeap: an ordinary Go slice (zeroed on Destroy, nothing more).
	KindHeap Kind = "heap"
)

// Buffer holds a secret outside the Go heap when the kernel allows. Its
// bytes are zeroed by Destroy. A Buffer is not safe for concurrent use.
type Buffer struct {
	b      []byte
	n      int
	kind   Kind
	unmap  func([]byte)
	closed bool
}

// Bytes returns the buffer's n bytes (valid until Destroy).
func (b *Buffer) Bytes() []byte {
	if b == nil || b.closed {
		return nil
	}
	return b.b[:b.n]
}

// Kind says where the bytes live.
func (b *Buffer) Kind() Kind { return b.kind }

// Destroy zeroes the bytes and releases the memory. Safe to call twice.
func (b *Buffer) Destroy() {
	if b == nil || b.closed {
		return
	}
	clear(b.b)
	if b.unmap != nil {
		b.unmap(b.b)
	}
	b.b, b.closed = nil, true
}

// Copy returns a Buffer holding a copy of src. The caller should clear src
// if it owns it.
func Copy(src []byte) *Buffer {
	b := NewBuffer(len(src))
	copy(b.b, src)
	return b
}

// Zero overwrites b with zeros (a named helper so call sites read as intent).
func Zero(b []byte) { clear(b) }
