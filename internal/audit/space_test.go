package audit_test

import (
	"context"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/agentkeys/agentkeys/internal/audit"
	"github.com/agentkeys/agentkeys/internal/testkit"
)

func fileSize(path string) int64 {
	st, err := os.Stat(path)
	if err != nil {
		return -1
	}
	return st.Size()
}

// TestSmallVolumeDoesNotWedge: on a 2 MiB volume the WAL stays bounded, the
// rows fill the volume (not the WAL), the space reserve lets the ledger
// checkpoint when the disk fills, readiness reports the full disk, and once
// the volume is grown the ledger works again with no repair.
func TestSmallVolumeDoesNotWedge(t *testing.T) {
	dir := testkit.Tmpfs(t, "2m")
	path := filepath.Join(dir, "audit.sqlite")
	s, err := audit.OpenWith(context.Background(), path, audit.Options{ProbeCache: time.Nanosecond})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	if fileSize(path+audit.ReserveSuffix) <= 0 {
		t.Fatal("no space reserve next to the ledger")
	}
	if err := s.Ping(context.Background()); err != nil {
		t.Fatalf("Ping on an empty volume: %v", err)
	}
	rows := 0
	var maxWAL int64
	for ; rows < 100_000; rows++ {
		if err := s.Append(context.Background(), sample(rows)); err != nil {
			break
		}
		maxWAL = max(maxWAL, fileSize(path+"-wal"))
	}
	t.Logf("volume full after %d rows; database %d bytes, WAL at most %d bytes", rows, fileSize(path), maxWAL)
	if rows < 2000 {
		t.Fatalf("only %d rows fit on a 2 MiB volume: the WAL (%d bytes) is eating the disk", rows, maxWAL)
	}
	if maxWAL > 512<<10 {
		t.Fatalf("WAL grew to %d bytes; it should stay near its 256 KiB bound", maxWAL)
	}
	if fileSize(path+audit.ReserveSuffix) >= 0 {
		t.Fatal("the reserve was not used before failing")
	}
	if err := s.Ping(context.Background()); err == nil {
		t.Fatal("Ping reports a full ledger volume as writable")
	}
	if n, _ := s.Count(context.Background()); n != int64(rows) {
		t.Fatalf("%d rows stored, %d appends succeeded", n, rows)
	}

	// A restart on the full volume does not make it worse.
	s.Close()
	s, err = audit.OpenWith(context.Background(), path, audit.Options{ProbeCache: time.Nanosecond})
	if err != nil {
		t.Fatalf("reopen on a full volume: %v", err)
	}
	defer s.Close()

	// The operator grows the volume (the disk alarm fired): writes resume,
	// the reserve comes back, and the chain is intact.
	testkit.GrowTmpfs(t, dir, "8m")
	if err := s.Ping(context.Background()); err != nil {
		t.Fatalf("Ping after growing the volume: %v", err)
	}
	if err := s.Append(context.Background(), sample(rows)); err != nil {
		t.Fatalf("append after growing the volume: %v", err)
	}
	if fileSize(path+audit.ReserveSuffix) <= 0 {
		t.Fatal("the reserve was not recreated")
	}
	if rep, err := s.Verify(context.Background()); err != nil || rep.Rows != int64(rows)+1 {
		t.Fatalf("verify: %+v %v", rep, err)
	}
}
