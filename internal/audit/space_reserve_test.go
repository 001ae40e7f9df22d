package audit_test

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"syscall"
	"testing"
	"time"

	"github.com/agentkeys/agentkeys/internal/audit"
	"github.com/agentkeys/agentkeys/internal/testkit"
)

// volumeSpace is the size of dir's volume and the space free on it for
// unprivileged writes.
func volumeSpace(t *testing.T, dir string) (total, free int64) {
	t.Helper()
	var st syscall.Statfs_t
	if err := syscall.Statfs(dir, &st); err != nil {
		t.Fatal(err)
	}
	return int64(st.Blocks) * int64(st.Bsize), int64(st.Bavail) * int64(st.Bsize)
}

func volumeFree(t *testing.T, dir string) int64 {
	t.Helper()
	_, free := volumeSpace(t, dir)
	return free
}

// setFree grows or shrinks the file filler (on a tmpfs, whose blocks are
// pages) until exactly want bytes are free on its volume.
func setFree(t *testing.T, filler string, want int64) {
	t.Helper()
	dir := filepath.Dir(filler)
	free := volumeFree(t, dir)
	f, err := os.OpenFile(filler, os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		t.Fatal(err)
	}
	switch {
	case free > want:
		if _, err := f.WriteAt(make([]byte, free-want), fi.Size()); err != nil {
			t.Fatal(err)
		}
	case free < want:
		if fi.Size() < want-free {
			t.Fatalf("test setup: filler of %d bytes cannot free %d bytes", fi.Size(), want-free)
		}
		if err := f.Truncate(fi.Size() - (want - free)); err != nil {
			t.Fatal(err)
		}
	}
	if got := volumeFree(t, dir); got != want {
		t.Fatalf("test setup: %d bytes free, want %d", got, want)
	}
}

// TestReserveAtExactlyFourTimesItsSize: the space reserve (256 KiB on a
// 2 MiB volume) is put back by readiness once four times its size is free,
// and not one page earlier.
func TestReserveAtExactlyFourTimesItsSize(t *testing.T) {
	dir := testkit.Tmpfs(t, "2m")
	db := filepath.Join(dir, "audit.sqlite")
	reserve := db + audit.ReserveSuffix
	filler := filepath.Join(dir, "filler")
	ctx := context.Background()
	s, err := audit.OpenWith(ctx, db, audit.Options{ProbeCache: time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	if err := s.Ping(ctx); err != nil { // the probe row is written now, not between the steps below
		t.Fatal(err)
	}
	if err := os.Remove(reserve); err != nil {
		t.Fatalf("no reserve on a fresh 2 MiB volume: %v", err)
	}
	const need = 4 * 256 << 10
	setFree(t, filler, need-4096)
	s.Ping(ctx)
	if _, err := os.Stat(reserve); err == nil {
		t.Fatalf("reserve created with %d bytes free, under four times its size", need-4096)
	}
	setFree(t, filler, need)
	s.Ping(ctx)
	if fi, err := os.Stat(reserve); err != nil || fi.Size() != 256<<10 {
		t.Fatalf("reserve with exactly four times its size free: %v", err)
	}
}

// TestShortReserveIsNotKept: a reserve whose write fails part way (here
// the process's file-size limit stops it at 512 KiB of 1 MiB) is removed
// rather than left in place holding back less space than promised; when
// writes fit again the next readiness check writes it whole.
func TestShortReserveIsNotKept(t *testing.T) {
	dir := t.TempDir()
	total, free := volumeSpace(t, dir)
	if total < 8<<20 || free < 8<<20 {
		t.Skipf("test needs a volume of 8 MiB or more with 8 MiB free (%d of %d bytes free)", free, total)
	}
	db := filepath.Join(dir, "audit.sqlite")
	reserve := db + audit.ReserveSuffix
	ctx := context.Background()
	s, err := audit.OpenWith(ctx, db, audit.Options{ProbeCache: time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	if err := s.Ping(ctx); err != nil {
		t.Fatal(err)
	}
	fi, err := os.Stat(reserve)
	if err != nil {
		t.Fatalf("no reserve: %v", err)
	}
	size := fi.Size()
	if size <= 512<<10 {
		t.Fatalf("test setup: reserve of %d bytes, want more than 512 KiB", size)
	}
	if err := os.Remove(reserve); err != nil {
		t.Fatal(err)
	}

	var old syscall.Rlimit
	if err := syscall.Getrlimit(syscall.RLIMIT_FSIZE, &old); err != nil {
		t.Fatal(err)
	}
	lim := old
	lim.Cur = 512 << 10
	if err := syscall.Setrlimit(syscall.RLIMIT_FSIZE, &lim); err != nil {
		t.Skipf("cannot set a file-size limit: %v", err)
	}
	s.Ping(ctx)
	if err := syscall.Setrlimit(syscall.RLIMIT_FSIZE, &old); err != nil {
		t.Fatal(err)
	}
	if fi, err := os.Stat(reserve); err == nil {
		t.Fatalf("a short reserve of %d bytes (of %d) was kept after its write failed", fi.Size(), size)
	}

	if err := s.Ping(ctx); err != nil {
		t.Fatal(err)
	}
	if fi, err := os.Stat(reserve); err != nil || fi.Size() != size {
		t.Fatalf("reserve after the limit is lifted: %v", err)
	}
}

// TestFullVolumeAppendUsesReserve: the append that finds the volume full
// is not lost: the reserve is released, the WAL checkpointed, and that
// same append retried and stored. Only a later append fails.
func TestFullVolumeAppendUsesReserve(t *testing.T) {
	dir := testkit.Tmpfs(t, "2m")
	db := filepath.Join(dir, "audit.sqlite")
	reserve := db + audit.ReserveSuffix
	ctx := context.Background()
	s, err := audit.Open(ctx, db)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	rows, released := 0, -1
	for ; rows < 100_000; rows++ {
		had := fileSize(reserve) > 0
		if err := s.Append(ctx, sample(rows)); err != nil {
			break
		}
		if had && fileSize(reserve) < 0 {
			released = rows
		}
	}
	if rows == 100_000 {
		t.Fatal("test setup: the 2 MiB volume never filled")
	}
	if fileSize(reserve) >= 0 {
		t.Fatal("the volume filled but the reserve was not released")
	}
	if released < 0 {
		t.Fatalf("the append that released the reserve failed (after %d rows): it should be retried into the freed space", rows)
	}
	if n, err := s.Count(ctx); err != nil || n != int64(rows) {
		t.Fatalf("%d rows stored (%v), %d appends succeeded", n, err, rows)
	}
}

// TestCrashWALCheckpointedOnFullVolume: a WAL left behind by a crash on a
// volume that then filled up is checkpointed when the ledger opens, with
// the space reserve released to let the database file grow; every row is
// kept and the WAL is truncated.
func TestCrashWALCheckpointedOnFullVolume(t *testing.T) {
	dir := testkit.Tmpfs(t, "16m")
	ctx := context.Background()

	// A ledger on a large volume (SQLite's 1000-page checkpoint interval),
	// copied with its WAL while open: what a crash leaves behind.
	src := filepath.Join(testkit.Tmpfs(t, "256m"), "audit.sqlite")
	s, err := audit.Open(ctx, src)
	if err != nil {
		t.Fatal(err)
	}
	const rows = 120
	for i := range rows {
		if err := s.Append(ctx, sample(i)); err != nil {
			t.Fatal(err)
		}
	}
	db := filepath.Join(dir, "audit.sqlite")
	for _, suffix := range []string{"", "-wal", "-shm"} {
		b, err := os.ReadFile(src + suffix)
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(db+suffix, b, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	s.Close()
	wal := fileSize(db + "-wal")
	if wal < 256<<10 || wal > 4<<20 {
		t.Fatalf("test setup: WAL of %d bytes", wal)
	}
	// The reserve (an eighth of 16 MiB, capped at 1 MiB) is in place and
	// the rest of the volume is full.
	reserve := db + audit.ReserveSuffix
	if err := os.WriteFile(reserve, make([]byte, 1<<20), 0o600); err != nil {
		t.Fatal(err)
	}
	f, err := os.Create(filepath.Join(dir, "filler"))
	if err != nil {
		t.Fatal(err)
	}
	for {
		if _, err := f.Write(make([]byte, 4096)); err != nil {
			if !errors.Is(err, syscall.ENOSPC) {
				t.Fatal(err)
			}
			break
		}
	}
	f.Close()

	s, err = audit.Open(ctx, db)
	if err != nil {
		t.Fatalf("open on a full volume with a WAL to checkpoint: %v", err)
	}
	defer s.Close()
	if n := fileSize(db + "-wal"); n != 0 {
		t.Fatalf("WAL of %d bytes after open: not checkpointed", n)
	}
	if fileSize(reserve) >= 0 {
		t.Fatal("the reserve was kept; the checkpoint could not have grown the database")
	}
	if rep, err := s.Verify(ctx); err != nil || rep.Rows != rows {
		t.Fatalf("verify: %+v %v", rep, err)
	}
}
