package store

import (
	"context"
	"fmt"
	"time"

	bolt "go.etcd.io/bbolt"
)

// Watermarks are times a background job keeps between runs, such as the
// GitLab reconciliation's "everything updated before this was seen" per
// project. They live in the meta bucket under metaWatermark + name, as
// RFC 3339 text; no schema change.
const metaWatermark = "watermark/"

// Watermark returns the watermark called name; ok is false when none was
// ever set.
func (d *DB) Watermark(ctx context.Context, name string) (t time.Time, ok bool, err error) {
	if err := ctx.Err(); err != nil {
		return time.Time{}, false, err
	}
	err = d.bolt.View(func(tx *bolt.Tx) error {
		v := tx.Bucket(bucketMeta).Get([]byte(metaWatermark + name))
		if v == nil {
			return nil
		}
		p, perr := time.Parse(time.RFC3339Nano, string(v))
		if perr != nil {
			return fmt.Errorf("watermark %s: %w", name, perr)
		}
		t, ok = p, true
		return nil
	})
	return t, ok, err
}

// SetWatermark sets the watermark called name to t (one small write
// transaction).
func (d *DB) SetWatermark(ctx context.Context, name string, t time.Time) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	if name == "" {
		return fmt.Errorf("watermark: empty name")
	}
	return d.bolt.Update(func(tx *bolt.Tx) error {
		return tx.Bucket(bucketMeta).Put([]byte(metaWatermark+name), []byte(t.UTC().Format(time.RFC3339Nano)))
	})
}
