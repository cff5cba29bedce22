package store

import (
	"bytes"
	"errors"
	"os"
	"path/filepath"
	"testing"
	"time"

	bolt "go.etcd.io/bbolt"
)

// stallingWriter takes a backup, and at its first write lets the test's
// writer commit and waits for it (at most a while: a commit that waited
// for the backup would otherwise never end).
type stallingWriter struct {
	buf     bytes.Buffer
	started chan struct{} // closed at the first write
	resume  chan struct{} // closed once the commits are in
	stalled bool          // the commits did not get in while the copy was open
}

func (w *stallingWriter) Write(p []byte) (int, error) {
	if w.started != nil {
		close(w.started)
		w.started = nil
		select {
		case <-w.resume:
		case <-time.After(10 * time.Second):
			w.stalled = true
		}
	}
	return w.buf.Write(p)
}

// makeRoom leaves about n free pages in db's file: written, then deleted.
// While a backup's read transaction is open, commits can use only pages
// freed before it began; past those, a commit grows the file and waits for
// the backup to end (bbolt remaps the file only when no reader holds it).
// A young store has none, so the first commit during a backup waits.
func makeRoom(t *testing.T, db *DB, n int) {
	t.Helper()
	scratch := []byte("scratch")
	if err := db.bolt.Update(func(tx *bolt.Tx) error {
		b, err := tx.CreateBucket(scratch)
		if err != nil {
			return err
		}
		for i := range n {
			if err := b.Put(u64(uint64(i)), make([]byte, 3000)); err != nil {
				return err
			}
		}
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	if err := db.bolt.Update(func(tx *bolt.Tx) error { return tx.DeleteBucket(scratch) }); err != nil {
		t.Fatal(err)
	}
}

// TestWriteBackupWhileWritesGoOn: commits go in while the copy is being
// written; the copy is the store as it was when the backup began, and
// opens as a store whose chain verifies, with the head start was told.
func TestWriteBackupWhileWritesGoOn(t *testing.T) {
	db := mustOpen(t)
	for i := range 20 {
		mustCommit(t, db, openCommit("acme/api", int64(i+1), t0, t0))
	}
	makeRoom(t, db, 500)
	seq, hash, err := db.HeadOf(ctx)
	if err != nil {
		t.Fatal(err)
	}
	w := &stallingWriter{started: make(chan struct{}), resume: make(chan struct{})}
	started, committed := w.started, make(chan error, 1)
	go func() {
		<-started
		var err error
		for i := range 10 {
			if _, err = db.Commit(ctx, openCommit("acme/api", int64(100+i), t0, t0)); err != nil {
				break
			}
		}
		close(w.resume)
		committed <- err
	}()
	var size int64
	var startSeq uint64
	var startHash string
	n, err := db.WriteBackup(ctx, w, func(s int64, hs uint64, hh string) error {
		size, startSeq, startHash = s, hs, hh
		return nil
	})
	if err != nil {
		t.Fatalf("WriteBackup: %v", err)
	}
	if err := <-committed; err != nil {
		t.Fatalf("commit during the backup: %v", err)
	}
	if w.stalled {
		t.Error("the commits waited for the backup to end")
	}
	if n != size || n != int64(w.buf.Len()) {
		t.Errorf("WriteBackup wrote %d bytes (%d in the writer); start was told %d", n, w.buf.Len(), size)
	}
	if startSeq != seq || startHash != hash {
		t.Errorf("start was told head %d %s, want %d %s", startSeq, startHash, seq, hash)
	}

	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, FileName), w.buf.Bytes(), 0o600); err != nil {
		t.Fatal(err)
	}
	restored := mustOpenDir(t, dir)
	res, err := restored.Audit(ctx, []Anchor{{Seq: seq, Hash: hash}})
	if err != nil || res.Events != 20 || res.HeadSeq != seq || res.HeadHash != hash {
		t.Errorf("Audit(copy) = %+v, %v; want 20 events up to %d %s", res, err, seq, hash)
	}
	if live, err := db.Verify(ctx); err != nil || live != 30 {
		t.Errorf("Verify(live) = %d, %v; want 30", live, err)
	}
}

func TestWriteBackupStartRefuses(t *testing.T) {
	db := mustOpen(t)
	mustCommit(t, db, openCommit("acme/api", 1, t0, t0))
	var buf bytes.Buffer
	no := errors.New("no")
	n, err := db.WriteBackup(ctx, &buf, func(int64, uint64, string) error { return no })
	if !errors.Is(err, no) || n != 0 || buf.Len() != 0 {
		t.Errorf("WriteBackup with a refusing start = %d, %v, %d bytes; want 0, its error, nothing", n, err, buf.Len())
	}
}
