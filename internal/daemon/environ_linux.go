//go:build linux

package daemon

import (
	"bytes"
	"errors"
	"os"
	"strconv"
)

// scrubEnviron zeroes, in the process's initial environment block (what
// /proc/<pid>/environ shows), the values of the variables for which
// secret reports true, and returns how many it zeroed. Go copied the
// environment at start (os.Getenv keeps working); the block is only what
// other processes that pass the ptrace read check (root, or a root
// command under Landlock) could still read.
func scrubEnviron(secret func(name string) bool) (int, error) {
	stat, err := os.ReadFile("/proc/self/stat")
	if err != nil {
		return 0, err
	}
	i := bytes.LastIndexByte(stat, ')')
	if i < 0 || i+2 > len(stat) {
		return 0, errors.New("unexpected /proc/self/stat")
	}
	// Fields after "pid (comm)" start at field 3; env_start and env_end
	// are fields 50 and 51 (proc_pid_stat(5)).
	f := bytes.Fields(stat[i+2:])
	if len(f) < 49 {
		return 0, errors.New("/proc/self/stat has no env_start/env_end")
	}
	start, err1 := strconv.ParseInt(string(f[47]), 10, 64)
	end, err2 := strconv.ParseInt(string(f[48]), 10, 64)
	if err1 != nil || err2 != nil || end <= start || end-start > 16<<20 {
		return 0, errors.New("bad env_start/env_end in /proc/self/stat")
	}
	mem, err := os.OpenFile("/proc/self/mem", os.O_RDWR, 0)
	if err != nil {
		return 0, err
	}
	defer mem.Close()
	block := make([]byte, end-start)
	if _, err := mem.ReadAt(block, start); err != nil {
		return 0, err
	}
	defer clear(block)
	n := 0
	for off := 0; off < len(block); {
		entry := block[off:]
		if j := bytes.IndexByte(entry, 0); j >= 0 {
			entry = entry[:j]
		}
		if eq := bytes.IndexByte(entry, '='); eq > 0 && eq+1 < len(entry) && secret(string(entry[:eq])) {
			zeros := make([]byte, len(entry)-eq-1)
			if _, err := mem.WriteAt(zeros, start+int64(off+eq+1)); err != nil {
				return n, err
			}
			n++
		}
		off += len(entry) + 1
	}
	return n, nil
}
