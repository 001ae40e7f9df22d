package audit

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"time"

	"github.com/agentkeys/agentkeys/internal/sqldb"
)

// A small volume must not wedge the ledger. SQLite's WAL is bounded
// (walBounds), and a reserve file beside the database holds some
// space back: when a write fails because the disk is full, the reserve is
// deleted, the WAL is checkpointed and truncated, and the write is retried
// once. The reserve is recreated when the volume has room again. Without
// it, a WAL that filled the disk could never be checkpointed (the database
// file cannot grow), and every write would fail even after a restart.
const (
	// On a small volume (under smallVolume) the WAL is checkpointed every
	// 64 pages (256 KiB) and truncated back to 256 KiB; elsewhere SQLite's
	// default of 1000 pages is kept (fewer checkpoints, a steadier p99) and
	// the WAL truncated back to 4 MiB.
	smallVolume            = 256 << 20
	walAutoCheckpointSmall = 64
	journalSizeLimitSmall  = 256 << 10
	walAutoCheckpointPages = 1000
	journalSizeLimit       = 4 << 20
	minReserve             = 64 << 10
	maxReserve             = 1 << 20
)

// walBounds picks the WAL policy for a ledger file at path by the size of
// the volume it is on (or will be on: the nearest existing directory).
func walBounds(path string) (pages int, limit int64) {
	for dir := path; ; {
		next := filepath.Dir(dir)
		if total, _, ok := sqldb.VolumeSpace(dir + "/x"); ok {
			if total < smallVolume {
				return walAutoCheckpointSmall, journalSizeLimitSmall
			}
			return walAutoCheckpointPages, journalSizeLimit
		}
		if next == dir {
			return walAutoCheckpointSmall, journalSizeLimitSmall
		}
		dir = next
	}
}

// ReserveSuffix names the space reserve file next to a SQLite ledger.
const ReserveSuffix = ".reserve"

// reserveSize is an eighth of the volume, within [minReserve, maxReserve].
func reserveSize(total int64) int64 {
	return min(max(total/8, minReserve), maxReserve)
}

// ensureReserve creates the reserve file when it is missing and the volume
// has at least four times its size free.
func (s *SQL) ensureReserve() {
	if s.engine != engineSQLite || s.path == "" || s.readOnly {
		return
	}
	s.reserveMu.Lock()
	defer s.reserveMu.Unlock()
	path := s.path + ReserveSuffix
	if _, err := os.Stat(path); err == nil {
		return
	}
	total, free, ok := sqldb.VolumeSpace(path)
	if !ok {
		return
	}
	size := reserveSize(total)
	if free < 4*size {
		return
	}
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		return
	}
	// Written, not truncated: a sparse file would reserve nothing.
	_, err = f.Write(make([]byte, size))
	if err == nil {
		err = f.Sync()
	}
	f.Close()
	if err != nil {
		os.Remove(path)
		return
	}
	s.opts.Logger.Info("audit ledger space reserve in place", "path", path, "bytes", size)
}

// releaseReserve deletes the reserve and checkpoints the WAL into the
// database, truncating it. It reports whether a reserve was released.
func (s *SQL) releaseReserve() bool {
	if s.engine != engineSQLite || s.path == "" {
		return false
	}
	s.reserveMu.Lock()
	defer s.reserveMu.Unlock()
	path := s.path + ReserveSuffix
	if err := os.Remove(path); err != nil {
		return false
	}
	s.opts.Logger.Error("audit ledger volume is full: released the space reserve to keep the ledger writable; free or grow the volume now",
		"path", s.path)
	s.truncateWAL()
	return true
}

// truncateWAL checkpoints the WAL fully and truncates it.
func (s *SQL) truncateWAL() error {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	var busy, log, done int
	return s.db.QueryRowContext(ctx, "PRAGMA wal_checkpoint(TRUNCATE)").Scan(&busy, &log, &done)
}

// isDiskFull reports whether err is SQLite's SQLITE_FULL.
func isDiskFull(err error) bool {
	var c interface{ Code() int }
	return errors.As(err, &c) && c.Code()&0xff == 13
}

// reserveErr reports a SQLite ledger running without its space reserve
// because the volume is too full to recreate it (writes are failing or
// about to).
func (s *SQL) reserveErr() error {
	if s.engine != engineSQLite || s.path == "" || s.readOnly {
		return nil
	}
	path := s.path + ReserveSuffix
	if _, err := os.Stat(path); err == nil {
		return nil
	}
	_, free, ok := sqldb.VolumeSpace(path)
	if !ok {
		return nil
	}
	return fmt.Errorf("audit: ledger volume full (%d bytes free, space reserve used up): free or grow the volume", free)
}
