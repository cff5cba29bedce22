package store

import (
	"bytes"
	"context"
	"fmt"
	"time"

	bolt "go.etcd.io/bbolt"
)

// PruneKeys deletes the idempotency keys that have expired at now and
// returns how many it deleted. An expired key no longer refuses a commit
// even before it is pruned; pruning only keeps the bucket small.
func (d *DB) PruneKeys(ctx context.Context, now time.Time) (int, error) {
	if err := ctx.Err(); err != nil {
		return 0, fmt.Errorf("prune idempotency keys: %w", err)
	}
	var n int
	err := d.bolt.Update(func(tx *bolt.Tx) error {
		b := tx.Bucket(bucketIdempotency)
		var expired [][]byte
		err := b.ForEach(func(k, v []byte) error {
			if len(v) != 8 || !now.Before(keyTime(v)) {
				expired = append(expired, bytes.Clone(k))
			}
			return nil
		})
		if err != nil {
			return err
		}
		for _, k := range expired {
			if err := b.Delete(k); err != nil {
				return err
			}
		}
		n = len(expired)
		return nil
	})
	if err != nil {
		return 0, fmt.Errorf("prune idempotency keys: %w", err)
	}
	if n > 0 {
		d.log.Debug("idempotency keys pruned", logCount, n)
	}
	return n, nil
}

// SeenKey reports whether key was committed and has not expired at now.
func (d *DB) SeenKey(ctx context.Context, key string, now time.Time) (bool, error) {
	if err := ctx.Err(); err != nil {
		return false, fmt.Errorf("look up idempotency key: %w", err)
	}
	seen := false
	err := d.bolt.View(func(tx *bolt.Tx) error {
		v := tx.Bucket(bucketIdempotency).Get([]byte(key))
		seen = len(v) == 8 && now.Before(keyTime(v))
		return nil
	})
	if err != nil {
		return false, fmt.Errorf("look up idempotency key: %w", err)
	}
	return seen, nil
}
