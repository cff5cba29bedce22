package store

import (
	"context"
	"fmt"
	"path/filepath"
	"testing"
	"time"

	bolt "go.etcd.io/bbolt"
)

// TestReview14ShortIndexKeysDoNotPanic: a damaged (or hand-edited) index
// key shorter than a time key makes the dispatcher's DueQueues and the
// dashboard's counts and urgent page slice k[:8] out of range and panic,
// taking the process down on every pass (Dispatcher.Run does not
// recover), where InboxDue returns an error naming the key. Each read
// should return an error instead.
func TestReview14ShortIndexKeysDoNotPanic(t *testing.T) {
	ctx := context.Background()
	now := time.Date(2026, 12, 7, 9, 0, 0, 0, time.UTC)
	for _, c := range []struct {
		bucket []byte
		read   func(*DB) error
	}{
		{bucketOutboxDue, func(d *DB) error { _, err := d.DueQueues(ctx, now, 0, 15); return err }},
		{bucketOpenByDeadline, func(d *DB) error { _, err := d.CountOverdue(ctx, now); return err }},
		{bucketOpenByDeadline, func(d *DB) error { _, _, err := d.MostUrgent(ctx, 10); return err }},
		{bucketTickDue, func(d *DB) error { _, err := d.TicksDue(ctx, now, 0); return err }},
	} {
		t.Run(string(c.bucket), func(t *testing.T) {
			db, err := Open(filepath.Join(t.TempDir(), "data"))
			if err != nil {
				t.Fatal(err)
			}
			defer db.Close()
			if err := db.bolt.Update(func(tx *bolt.Tx) error {
				return tx.Bucket(c.bucket).Put([]byte("x"), nil)
			}); err != nil {
				t.Fatal(err)
			}
			var perr error
			func() {
				defer func() {
					if v := recover(); v != nil {
						perr = fmt.Errorf("panic: %v", v)
					}
				}()
				_ = c.read(db)
			}()
			if perr != nil {
				t.Errorf("a 1-byte key in %s: %v; want an error", c.bucket, perr)
			}
		})
	}
}
