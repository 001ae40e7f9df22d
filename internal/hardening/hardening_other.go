//go:build !linux

package hardening

// Apply reports that kernel hardening is not available on this platform.
func Apply() Report {
	var r Report
	r.add("non_dumpable", Skipped, "not Linux")
	r.add("no_core_dumps", Skipped, "not Linux")
	b := NewBuffer(32)
	if b.Kind() == KindLocked {
		r.add("secret_memory", OK, "mlock")
	} else {
		r.add("secret_memory", Skipped, "mlock unavailable")
	}
	b.Destroy()
	return r
}
