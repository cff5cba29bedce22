package store

import (
	"context"
	"fmt"

	bolt "go.etcd.io/bbolt"

	"github.com/threatgate/threatgate/bot"
)

// metaTickedUnder keeps bot.TickMark of the policy and binary the open
// escalations' next ticks were last recomputed under (bot.TickMarks); no
// schema change.
const metaTickedUnder = "ticked_under"

// TickedUnder returns the tick mark, "" when none is set.
func (d *DB) TickedUnder(ctx context.Context) (string, error) {
	if err := ctx.Err(); err != nil {
		return "", err
	}
	var mark string
	err := d.bolt.View(func(tx *bolt.Tx) error {
		mark = string(tx.Bucket(bucketMeta).Get([]byte(metaTickedUnder)))
		return nil
	})
	if err != nil {
		return "", fmt.Errorf("read the tick mark: %w", err)
	}
	return mark, nil
}

// SetTickedUnder sets the tick mark; "" removes it.
func (d *DB) SetTickedUnder(ctx context.Context, mark string) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	err := d.bolt.Update(func(tx *bolt.Tx) error {
		meta := tx.Bucket(bucketMeta)
		if mark == "" {
			return meta.Delete([]byte(metaTickedUnder))
		}
		return meta.Put([]byte(metaTickedUnder), []byte(mark))
	})
	if err != nil {
		return fmt.Errorf("set the tick mark: %w", err)
	}
	return nil
}

// ConfirmTickedUnder sets the tick mark to mark where
// bot.PendingTickMark(mark) still stands, in one transaction, and reports
// whether it did.
func (d *DB) ConfirmTickedUnder(ctx context.Context, mark string) (bool, error) {
	if err := ctx.Err(); err != nil {
		return false, err
	}
	var ok bool
	err := d.bolt.Update(func(tx *bolt.Tx) error {
		meta := tx.Bucket(bucketMeta)
		if string(meta.Get([]byte(metaTickedUnder))) != bot.PendingTickMark(mark) || mark == "" {
			return nil
		}
		ok = true
		return meta.Put([]byte(metaTickedUnder), []byte(mark))
	})
	if err != nil {
		return false, fmt.Errorf("confirm the tick mark: %w", err)
	}
	return ok, nil
}
