package store

import (
	"context"
	"encoding/json"
	"fmt"

	bolt "go.etcd.io/bbolt"

	"github.com/threatgate/threatgate/bot"
)

var _ bot.DeadLetters = (*DB)(nil)

// migrate4DeadLetters adds the bucket of items set aside.
func migrate4DeadLetters(tx *bolt.Tx) error {
	return createBuckets(tx, bucketDeadLetters)
}

// SetAside records dl in the dead_letters bucket, under the bucket's next
// sequence number; an empty dl.ID becomes "DL-<that number>". dl.At must
// be set (stored times come from the caller). When SetAside returns nil
// the record is durable. It is safe to call from any goroutine: writes
// are serialised by bbolt. It uses Update, not Batch, so the id is
// assigned once.
func (d *DB) SetAside(ctx context.Context, dl bot.DeadLetter) error {
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("set aside %s %s: %w", dl.Kind, dl.Ref, err)
	}
	if dl.At.IsZero() {
		return fmt.Errorf("set aside %s %s: no time given", dl.Kind, dl.Ref)
	}
	err := d.bolt.Update(func(tx *bolt.Tx) error {
		fillAppendOnly(tx)
		b := tx.Bucket(bucketDeadLetters)
		n, err := b.NextSequence()
		if err != nil {
			return err
		}
		if dl.ID == "" {
			dl.ID = fmt.Sprintf("DL-%d", n)
		}
		rec, err := json.Marshal(dl)
		if err != nil {
			return err
		}
		return b.Put(u64(n), rec)
	})
	if err != nil {
		return fmt.Errorf("set aside %s %s: %w", dl.Kind, dl.Ref, err)
	}
	return nil
}

// DeadLetters returns up to limit items set aside, newest first; limit
// <= 0 means all. It reads only the records it returns.
func (d *DB) DeadLetters(ctx context.Context, limit int) ([]bot.DeadLetter, error) {
	if err := ctx.Err(); err != nil {
		return nil, fmt.Errorf("read dead letters: %w", err)
	}
	var out []bot.DeadLetter
	err := d.bolt.View(func(tx *bolt.Tx) error {
		c := tx.Bucket(bucketDeadLetters).Cursor()
		for k, v := c.Last(); k != nil; k, v = c.Prev() {
			var dl bot.DeadLetter
			if err := json.Unmarshal(v, &dl); err != nil {
				return fmt.Errorf("dead letter %x: %w", k, err)
			}
			out = append(out, dl)
			if limit > 0 && len(out) >= limit {
				break
			}
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("read dead letters: %w", err)
	}
	return out, nil
}

// DeadLetterCount counts the items set aside. It decodes no record: the
// count comes from the bucket's page headers (bbolt's bucket stats), so it
// is cheap enough for every /metrics scrape.
func (d *DB) DeadLetterCount(ctx context.Context) (int, error) {
	if err := ctx.Err(); err != nil {
		return 0, fmt.Errorf("count dead letters: %w", err)
	}
	n := 0
	err := d.bolt.View(func(tx *bolt.Tx) error {
		n = tx.Bucket(bucketDeadLetters).Stats().KeyN
		return nil
	})
	if err != nil {
		return 0, fmt.Errorf("count dead letters: %w", err)
	}
	return n, nil
}
