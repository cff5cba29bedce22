package store

import (
	"bytes"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	bolt "go.etcd.io/bbolt"

	"github.com/threatgate/threatgate/bot"
)

func TestOpenCreatesPrivateDirectory(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "threatgate-data")
	mustOpenDir(t, dir)
	fi, err := os.Stat(dir)
	if err != nil {
		t.Fatal(err)
	}
	if perm := fi.Mode().Perm(); perm != 0o700 {
		t.Errorf("directory mode = %o, want 700", perm)
	}
	if _, err := os.Stat(filepath.Join(dir, "threatgate.db")); err != nil {
		t.Errorf("threatgate.db: %v", err)
	}
}

func TestOpenWarnsOfOpenDirectory(t *testing.T) {
	dir := t.TempDir()
	if err := os.Chmod(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	var logs bytes.Buffer
	mustOpenDir(t, dir, Logger(slog.New(slog.NewTextHandler(&logs, nil))))
	if !strings.Contains(logs.String(), "level=WARN") || !strings.Contains(logs.String(), "mode=-rwxr-xr-x") {
		t.Errorf("logs = %q, want a warning naming the mode", logs.String())
	}
}

func TestSecondOpenFailsClearly(t *testing.T) {
	dir := t.TempDir()
	mustOpenDir(t, dir)
	start := time.Now()
	db, err := Open(dir, LockTimeout(100*time.Millisecond))
	if err == nil {
		db.Close()
		t.Fatal("second Open succeeded, want ErrInUse")
	}
	if !errors.Is(err, ErrInUse) {
		t.Errorf("err = %v, want ErrInUse", err)
	}
	if msg := err.Error(); !strings.Contains(msg, "in use by another threatgate process") || !strings.Contains(msg, dir) {
		t.Errorf("err = %q, want it to name %s and say it is in use", msg, dir)
	}
	if waited := time.Since(start); waited > 5*time.Second {
		t.Errorf("second Open took %s, want about the 100ms timeout", waited)
	}
}

func TestMigrations(t *testing.T) {
	dir := t.TempDir()
	db := mustOpenDir(t, dir)
	mustCommit(t, db, openCommit("acme/api", 1, t0, t0))
	mustClose(t, db)

	runs := 0
	extra := append(slices.Clone(migrations), func(tx *bolt.Tx) error {
		runs++
		b, err := tx.CreateBucket([]byte("labels"))
		if err != nil {
			return err
		}
		return b.Put([]byte("ESC-1"), []byte("security"))
	})
	for range 2 {
		db = mustOpenDir(t, dir, withMigrations(extra))
		err := db.bolt.View(func(tx *bolt.Tx) error {
			if v := schemaVersion(tx); v != uint64(len(extra)) {
				t.Errorf("schema version = %d, want %d", v, len(extra))
			}
			if b := tx.Bucket([]byte("labels")); b == nil || string(b.Get([]byte("ESC-1"))) != "security" {
				t.Error("the migration's bucket is missing")
			}
			return nil
		})
		if err != nil {
			t.Fatal(err)
		}
		if _, err := db.FindEscalation(ctx, "ESC-1"); err != nil {
			t.Errorf("after migration: %v", err)
		}
		mustClose(t, db)
	}
	if runs != 1 {
		t.Errorf("migration ran %d times, want once", runs)
	}

	// This binary knows only the versions up to len(migrations).
	_, err := Open(dir, NoSync())
	if err == nil || !strings.Contains(err.Error(), fmt.Sprintf("schema version %d", len(extra))) || !strings.Contains(err.Error(), "newer threatgate") {
		t.Errorf("Open of a newer file: err = %v, want it to say the schema is newer", err)
	}

	// A failing migration leaves the file at the last good version.
	failing := append(slices.Clone(extra), func(tx *bolt.Tx) error {
		if err := tx.DeleteBucket([]byte("labels")); err != nil {
			return err
		}
		return errors.New("disk on fire")
	})
	if _, err := Open(dir, NoSync(), withMigrations(failing)); err == nil || !strings.Contains(err.Error(), fmt.Sprintf("migrate schema to version %d: disk on fire", len(failing))) {
		t.Errorf("failing migration: err = %v", err)
	}
	db = mustOpenDir(t, dir, withMigrations(extra))
	if err := db.bolt.View(func(tx *bolt.Tx) error {
		if tx.Bucket([]byte("labels")) == nil || schemaVersion(tx) != uint64(len(extra)) {
			t.Error("the failed migration was not rolled back")
		}
		return nil
	}); err != nil {
		t.Fatal(err)
	}
}

func TestNewFileHasCurrentSchema(t *testing.T) {
	db := mustOpen(t)
	if err := db.bolt.View(func(tx *bolt.Tx) error {
		if v := schemaVersion(tx); v != uint64(len(migrations)) {
			t.Errorf("schema version = %d, want %d", v, len(migrations))
		}
		return nil
	}); err != nil {
		t.Fatal(err)
	}
}

func TestBackupOpensWithSameEvents(t *testing.T) {
	db := mustOpen(t)
	for i := range 5 {
		mustCommit(t, db, openCommit("acme/api", int64(i+1), t0, t0))
	}
	var buf bytes.Buffer
	n, err := db.Backup(ctx, &buf)
	if err != nil {
		t.Fatalf("Backup: %v", err)
	}
	if n != int64(buf.Len()) || n == 0 {
		t.Errorf("Backup = %d bytes, wrote %d", n, buf.Len())
	}
	// Writers go on; the backup keeps what was there.
	mustCommit(t, db, openCommit("acme/api", 99, t0, t0))

	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, FileName), buf.Bytes(), 0o600); err != nil {
		t.Fatal(err)
	}
	restored := mustOpenDir(t, dir)
	want := allEvents(t, db)[:5]
	got := allEvents(t, restored)
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Errorf("restored events:\n got %+v\nwant %+v", got, want)
	}
	if n, err := restored.Verify(ctx); err != nil || n != 5 {
		t.Errorf("Verify(restored) = %d, %v, want 5", n, err)
	}
	if _, err := restored.FindByMR(ctx, "acme/api", 99); !errors.Is(err, bot.ErrNotFound) {
		t.Errorf("FindByMR(acme/api!99) in backup: err = %v, want ErrNotFound", err)
	}
}

func TestTimeKeySorts(t *testing.T) {
	times := []time.Time{
		time.Date(1900, 1, 1, 0, 0, 0, 0, time.UTC),
		time.Unix(0, -1),
		time.Unix(0, 0),
		t0,
		t0.Add(time.Nanosecond),
		time.Date(3000, 1, 1, 0, 0, 0, 0, time.UTC),
		{},
	}
	for i := 1; i < len(times); i++ {
		if bytes.Compare(timeKey(times[i-1]), timeKey(times[i])) >= 0 {
			t.Errorf("timeKey(%s) does not sort before timeKey(%s)", times[i-1], times[i])
		}
	}
	if got := keyTime(timeKey(t0)); !got.Equal(t0) {
		t.Errorf("keyTime(timeKey(%s)) = %s", t0, got)
	}
	if got := keyTime(timeKey(time.Time{})); !got.IsZero() {
		t.Errorf("keyTime(timeKey(zero)) = %s, want zero", got)
	}
}

// TestReadOnlyNeverMigrates: audit verify, export and retro open a copy
// read-only; an older copy is read as it is, its schema untouched, and a
// write fails.
func TestReadOnlyNeverMigrates(t *testing.T) {
	dir := t.TempDir()
	db := mustOpenDir(t, dir, withMigrations(migrations[:6]))
	e := mustCommit(t, db, openCommit("g/p", 1, t0, t0.Add(time.Hour), "bob"))
	mustClose(t, db)

	ro, err := Open(dir, ReadOnly())
	if err != nil {
		t.Fatalf("Open read-only: %v", err)
	}
	if _, err := ro.Verify(ctx); err != nil {
		t.Errorf("Verify read-only: %v", err)
	}
	if got, err := ro.FindEscalation(ctx, e.ID); err != nil || got.ID != e.ID {
		t.Errorf("FindEscalation read-only: %v, %v", got, err)
	}
	if _, err := ro.Commit(ctx, openCommit("g/p", 2, t0, t0.Add(time.Hour))); err == nil {
		t.Error("a read-only store accepted a commit")
	}
	var v uint64
	ro.bolt.View(func(tx *bolt.Tx) error { v = schemaVersion(tx); return nil })
	if v != 6 {
		t.Errorf("schema version after a read-only open = %d, want 6 (untouched)", v)
	}
	if err := ro.Close(); err != nil {
		t.Fatal(err)
	}

	if _, err := Open(t.TempDir(), ReadOnly()); err == nil {
		t.Error("read-only open of a directory without a store succeeded")
	}
	newer := t.TempDir()
	nb := mustOpenDir(t, newer)
	nb.bolt.Update(func(tx *bolt.Tx) error { return putU64(tx.Bucket(bucketMeta), metaSchemaVersion, 99) })
	mustClose(t, nb)
	if _, err := Open(newer, ReadOnly()); err == nil || !strings.Contains(err.Error(), "schema version 99") {
		t.Errorf("read-only open of a newer schema: %v", err)
	}
}
