package audit_test

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/agentkeys/agentkeys/internal/audit"
	"github.com/agentkeys/agentkeys/internal/testkit"
)

// journalLimit opens a fresh ledger at path (its file not yet created)
// and returns the WAL limits it runs with.
func journalLimit(t *testing.T, path string) (pages, limit int64) {
	t.Helper()
	s, err := audit.Open(context.Background(), path)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	if err := s.DB().QueryRow("PRAGMA wal_autocheckpoint").Scan(&pages); err != nil {
		t.Fatal(err)
	}
	if err := s.DB().QueryRow("PRAGMA journal_size_limit").Scan(&limit); err != nil {
		t.Fatal(err)
	}
	return pages, limit
}

// TestWALBoundsByVolumeSize: a ledger on a volume under 256 MiB keeps a
// small WAL (checkpoint every 64 pages, truncated to 256 KiB); from 256
// MiB up, SQLite's 1000 pages and a 4 MiB limit are kept. The volume is
// that of the nearest existing directory when the file is new.
func TestWALBoundsByVolumeSize(t *testing.T) {
	for _, c := range []struct {
		size                 string
		wantPages, wantLimit int64
	}{{"255m", 64, 256 << 10}, {"256m", 1000, 4 << 20}} {
		dir := testkit.Tmpfs(t, c.size)
		pages, limit := journalLimit(t, filepath.Join(dir, "audit.sqlite"))
		if pages != c.wantPages || limit != c.wantLimit {
			t.Errorf("%s volume: wal_autocheckpoint %d, journal_size_limit %d; want %d, %d", c.size, pages, limit, c.wantPages, c.wantLimit)
		}
	}
	// A new ledger in a directory still to be created on a large volume.
	dir := t.TempDir()
	var st syscall.Statfs_t
	if err := syscall.Statfs(dir, &st); err != nil {
		t.Fatal(err)
	}
	if int64(st.Blocks)*int64(st.Bsize) >= 256<<20 {
		pages, limit := journalLimit(t, filepath.Join(dir, "new", "audit.sqlite"))
		if pages != 1000 || limit != 4<<20 {
			t.Errorf("large volume, new directory: wal_autocheckpoint %d, journal_size_limit %d", pages, limit)
		}
	}
}

// TestReserveNeedsFourTimesItsSizeFree: the space reserve (an eighth of the
// volume, here 256 KiB of 2 MiB) is not taken from a volume with less than
// four times its size free, where it would itself bring the disk-full
// condition closer; once room is made, the next open puts it in place.
func TestReserveNeedsFourTimesItsSizeFree(t *testing.T) {
	dir := testkit.Tmpfs(t, "2m")
	filler := filepath.Join(dir, "filler")
	if err := os.WriteFile(filler, make([]byte, 1<<20), 0o600); err != nil {
		t.Fatal(err)
	}
	db := filepath.Join(dir, "audit.sqlite")
	reserve := db + audit.ReserveSuffix
	s, err := audit.Open(context.Background(), db)
	if err != nil {
		t.Fatal(err)
	}
	var st syscall.Statfs_t
	if err := syscall.Statfs(dir, &st); err != nil {
		t.Fatal(err)
	}
	free := int64(st.Bavail) * int64(st.Bsize)
	if _, err := os.Stat(reserve); err == nil {
		t.Fatalf("reserve created with %d KiB free (under 4 x 256 KiB)", free>>10)
	}
	if free < 256<<10 || free >= 1<<20 {
		t.Fatalf("test setup: %d KiB free, want between 256 KiB and 1 MiB", free>>10)
	}
	s.Close()
	if err := os.Remove(filler); err != nil {
		t.Fatal(err)
	}
	s, err = audit.Open(context.Background(), db)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	fi, err := os.Stat(reserve)
	if err != nil || fi.Size() != 256<<10 {
		t.Fatalf("reserve after making room: %v", err)
	}
}

// TestReadinessReportsMissingReserve: once the space reserve is used up and
// the volume is too full to put it back, readiness (Ping) fails, although
// a small write still fits; when room is made, Ping restores the reserve
// and succeeds again.
func TestReadinessReportsMissingReserve(t *testing.T) {
	dir := testkit.Tmpfs(t, "2m")
	db := filepath.Join(dir, "audit.sqlite")
	reserve := db + audit.ReserveSuffix
	ctx := context.Background()
	s, err := audit.OpenWith(ctx, db, audit.Options{ProbeCache: time.Nanosecond}) // no cached success
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	if _, err := os.Stat(reserve); err != nil {
		t.Fatalf("no reserve on a fresh 2 MiB volume: %v", err)
	}
	if err := s.Ping(ctx); err != nil {
		t.Fatal(err)
	}
	filler := filepath.Join(dir, "filler")
	if err := os.WriteFile(filler, make([]byte, 1<<20), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.Remove(reserve); err != nil {
		t.Fatal(err)
	}
	if err := s.Ping(ctx); err == nil || !strings.Contains(err.Error(), "space reserve used up") {
		t.Fatalf("ping with the reserve gone and the volume nearly full: %v", err)
	}
	if err := os.Remove(filler); err != nil {
		t.Fatal(err)
	}
	if err := s.Ping(ctx); err != nil {
		t.Fatalf("ping after making room: %v", err)
	}
	if _, err := os.Stat(reserve); err != nil {
		t.Fatalf("reserve not restored: %v", err)
	}
}

// TestSQLiteWaitsForOtherWriters: a SQLite ledger waits up to 10 s for a
// lock held by another process (audit verify, a second broker) instead of
// failing a mint at once.
func TestSQLiteWaitsForOtherWriters(t *testing.T) {
	s, err := audit.Open(context.Background(), filepath.Join(t.TempDir(), "audit.sqlite"))
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	var ms int64
	if err := s.DB().QueryRow("PRAGMA busy_timeout").Scan(&ms); err != nil {
		t.Fatal(err)
	}
	if ms != 10_000 {
		t.Fatalf("busy_timeout %d ms, want 10000", ms)
	}
}
