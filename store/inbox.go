package store

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	bolt "go.etcd.io/bbolt"

	"github.com/threatgate/threatgate/bot"
)

// InboxItem is a verified input waiting to be processed (bot.InboxItem).
type InboxItem = bot.InboxItem

// inboxKeyTTL is how long a delivery id is remembered after its item was
// recorded: GitLab retries a webhook for far less.
const inboxKeyTTL = 72 * time.Hour

// Enqueue records an item. When key was recorded before (and has not
// expired) it writes nothing and reports dup. Calls from many goroutines are
// coalesced into few transactions (bbolt's Batch), so a burst of webhooks
// shares fsyncs; when Enqueue returns without error the item is durable.
func (d *DB) Enqueue(ctx context.Context, key, kind string, body []byte, at time.Time) (dup bool, err error) {
	if err := ctx.Err(); err != nil {
		return false, fmt.Errorf("record input: %w", err)
	}
	if at.IsZero() {
		return false, errors.New("record input: no time given")
	}
	err = d.bolt.Batch(func(tx *bolt.Tx) error {
		// Batch may run this twice; every result is set afresh.
		dup = false
		keys := tx.Bucket(bucketInboxKeys)
		if key != "" {
			if v := keys.Get([]byte(key)); len(v) == 8 && at.Before(keyTime(v)) {
				dup = true
				return nil
			}
		}
		in := tx.Bucket(bucketInbox)
		id, err := in.NextSequence()
		if err != nil {
			return err
		}
		rec, err := json.Marshal(InboxItem{ID: id, Key: key, Kind: kind, Body: body, At: at, NextAttempt: at})
		if err != nil {
			return err
		}
		if err := in.Put(u64(id), rec); err != nil {
			return err
		}
		if key != "" {
			return keys.Put([]byte(key), timeKey(at.Add(inboxKeyTTL)))
		}
		return nil
	})
	if err != nil {
		return false, fmt.Errorf("record input: %w", err)
	}
	return dup, nil
}

// InboxDue returns up to limit items whose next attempt is due at now, in
// the order they arrived; limit <= 0 means all.
func (d *DB) InboxDue(ctx context.Context, now time.Time, limit int) ([]InboxItem, error) {
	if err := ctx.Err(); err != nil {
		return nil, fmt.Errorf("read inbox: %w", err)
	}
	var out []InboxItem
	err := d.bolt.View(func(tx *bolt.Tx) error {
		c := tx.Bucket(bucketInbox).Cursor()
		for k, v := c.First(); k != nil; k, v = c.Next() {
			var it InboxItem
			if err := json.Unmarshal(v, &it); err != nil {
				return fmt.Errorf("inbox item %x: %w", k, err)
			}
			if it.NextAttempt.After(now) {
				continue
			}
			out = append(out, it)
			if limit > 0 && len(out) >= limit {
				break
			}
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("read inbox: %w", err)
	}
	return out, nil
}

// InboxDone removes a processed item. Removing one that is gone is not an
// error: two workers may finish the same item.
func (d *DB) InboxDone(ctx context.Context, id uint64) error {
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("finish inbox item %d: %w", id, err)
	}
	err := d.bolt.Update(func(tx *bolt.Tx) error { return tx.Bucket(bucketInbox).Delete(u64(id)) })
	if err != nil {
		return fmt.Errorf("finish inbox item %d: %w", id, err)
	}
	return nil
}

// InboxFailed records a failed attempt and when to try again.
func (d *DB) InboxFailed(ctx context.Context, id uint64, next time.Time, errText string) error {
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("reschedule inbox item %d: %w", id, err)
	}
	err := d.bolt.Update(func(tx *bolt.Tx) error {
		b := tx.Bucket(bucketInbox)
		v := b.Get(u64(id))
		if v == nil {
			return bot.ErrNotFound
		}
		var it InboxItem
		if err := json.Unmarshal(v, &it); err != nil {
			return err
		}
		it.Attempts++
		it.NextAttempt = next
		it.LastError = errText
		rec, err := json.Marshal(it)
		if err != nil {
			return err
		}
		return b.Put(u64(id), rec)
	})
	if err != nil {
		return fmt.Errorf("reschedule inbox item %d: %w", id, err)
	}
	return nil
}

// InboxDepth counts the items waiting.
func (d *DB) InboxDepth(ctx context.Context) (int, error) {
	n := 0
	err := d.bolt.View(func(tx *bolt.Tx) error {
		n = tx.Bucket(bucketInbox).Stats().KeyN
		return nil
	})
	if err != nil {
		return 0, fmt.Errorf("count inbox: %w", err)
	}
	return n, nil
}

// PruneInboxKeys forgets delivery ids that expired at now.
func (d *DB) PruneInboxKeys(ctx context.Context, now time.Time) (int, error) {
	n := 0
	err := d.bolt.Update(func(tx *bolt.Tx) error {
		b := tx.Bucket(bucketInboxKeys)
		var old [][]byte
		_ = b.ForEach(func(k, v []byte) error {
			if len(v) != 8 || !now.Before(keyTime(v)) {
				old = append(old, bytes.Clone(k))
			}
			return nil
		})
		for _, k := range old {
			if err := b.Delete(k); err != nil {
				return err
			}
		}
		n = len(old)
		return nil
	})
	if err != nil {
		return 0, fmt.Errorf("prune inbox keys: %w", err)
	}
	return n, nil
}

// migrate3InboxDue adds the inbox's due-time index.
func migrate3InboxDue(tx *bolt.Tx) error {
	return createBuckets(tx, bucketInboxDue)
}
