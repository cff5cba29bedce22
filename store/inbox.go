package store

import (
	"bytes"
	"context"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
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
// expired), in an earlier call or in a concurrent one, it writes nothing
// and reports dup. Concurrent calls are coalesced into few transactions
// by the inbox's group commit (groupcommit.go), so a burst of webhooks
// shares fsyncs without any call waiting for a timer. When Enqueue
// returns without error the item is durable. When ctx ends first it
// returns ctx's error (wrapped): the item was either withdrawn before it
// was written, or its commit was already under way and it may have been
// recorded; a redelivery under the same key tells which. After Close it
// returns bbolt's ErrDatabaseNotOpen (wrapped).
func (d *DB) Enqueue(ctx context.Context, key, kind string, body []byte, at time.Time) (dup bool, err error) {
	if err := ctx.Err(); err != nil {
		return false, fmt.Errorf("record input: %w", err)
	}
	if at.IsZero() {
		return false, errors.New("record input: no time given")
	}
	// Encoded before the round: the transaction holds every caller of the
	// round, so it does no more than bbolt's own work.
	rec, err := encodeInbox(&InboxItem{Key: key, Kind: kind, Body: body, At: at, NextAttempt: at})
	if err != nil {
		return false, fmt.Errorf("record input: %w", err)
	}
	w := &inboxWrite{at: at, rec: rec}
	if key != "" {
		w.key = []byte(key)
	}
	dup, err = d.enqueueInbox(ctx, w)
	if err != nil {
		return false, fmt.Errorf("record input: %w", err)
	}
	return dup, nil
}

// InboxDue returns up to limit items whose next attempt is due at now, in
// the order they arrived; limit <= 0 means all. It reads the keys of the
// inbox_due index up to now, and decodes only the items it returns: items
// waiting for a later attempt cost nothing.
func (d *DB) InboxDue(ctx context.Context, now time.Time, limit int) ([]InboxItem, error) {
	if err := ctx.Err(); err != nil {
		return nil, fmt.Errorf("read inbox: %w", err)
	}
	var out []InboxItem
	end := timeKey(now)
	err := d.bolt.View(func(tx *bolt.Tx) error {
		// The index sorts by due time, then arrival; the oldest items due
		// may be anywhere in it up to now.
		var ids []uint64
		c := tx.Bucket(bucketInboxDue).Cursor()
		for k, _ := c.First(); k != nil && bytes.Compare(k[:min(len(k), 8)], end) <= 0; k, _ = c.Next() {
			if len(k) != 16 {
				return fmt.Errorf("index inbox_due has a malformed key %x", k)
			}
			ids = append(ids, binary.BigEndian.Uint64(k[8:]))
		}
		slices.Sort(ids)
		if limit > 0 && len(ids) > limit {
			ids = ids[:limit]
		}
		in := tx.Bucket(bucketInbox)
		for _, id := range ids {
			v := in.Get(u64(id))
			if v == nil {
				return fmt.Errorf("index inbox_due names item %d, which is missing", id)
			}
			it, err := decodeInbox(id, v)
			if err != nil {
				return err
			}
			out = append(out, it)
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("read inbox: %w", err)
	}
	return out, nil
}

// InboxDone removes processed items, all in one transaction (one fsync
// for a pass's worth). Items that are gone are not an error: two workers
// may finish the same item, and the commit of an item's decision removes
// it already (bot.Commit.Inbox). When every item is gone it writes
// nothing: a read tells, and a read costs no fsync.
func (d *DB) InboxDone(ctx context.Context, ids ...uint64) error {
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("finish inbox items %v: %w", ids, err)
	}
	var left []uint64
	err := d.bolt.View(func(tx *bolt.Tx) error {
		in := tx.Bucket(bucketInbox)
		for _, id := range ids {
			if in.Get(u64(id)) != nil {
				left = append(left, id)
			}
		}
		return nil
	})
	if err != nil || len(left) == 0 {
		return err
	}
	err = d.bolt.Update(func(tx *bolt.Tx) error {
		for _, id := range left {
			if _, err := deleteInbox(tx, id); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("finish inbox items %v: %w", left, err)
	}
	return nil
}

// finishInbox removes inbox item id (0: none) inside a decision's
// transaction (Commit, bot.Commit.Inbox): the webhook is finished exactly
// when its decision is durable. One already gone is no error.
func finishInbox(tx *bolt.Tx, id uint64) error {
	if id == 0 {
		return nil
	}
	if _, err := deleteInbox(tx, id); err != nil {
		return fmt.Errorf("finish inbox item %d: %w", id, err)
	}
	return nil
}

// InboxFailed records a failed attempt and when to try again (a zero next
// means at once), or returns bot.ErrNotFound when the item is gone.
func (d *DB) InboxFailed(ctx context.Context, id uint64, next time.Time, errText string) error {
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("reschedule inbox item %d: %w", id, err)
	}
	err := d.bolt.Update(func(tx *bolt.Tx) error {
		v := tx.Bucket(bucketInbox).Get(u64(id))
		if v == nil {
			return bot.ErrNotFound
		}
		it, err := decodeInbox(id, v)
		if err != nil {
			return err
		}
		if _, err := deleteInbox(tx, id); err != nil {
			return err
		}
		it.Attempts++
		it.NextAttempt = next
		it.LastError = errText
		return putInbox(tx, &it)
	})
	if err != nil {
		return fmt.Errorf("reschedule inbox item %d: %w", id, err)
	}
	return nil
}

// inboxDueKey is the inbox_due key of an item: the time key of its next
// attempt, then its id, so that the index sorts by due time and, within
// one, by arrival. A zero next attempt (which no writer sets) is due at
// once, as it always was, rather than never as timeKey would sort it.
func inboxDueKey(next time.Time, id uint64) []byte {
	if next.IsZero() {
		next = minNanoTime
	}
	return binary.BigEndian.AppendUint64(timeKey(next), id)
}

// putInbox stores it in the inbox and its entry in inbox_due. The caller
// removes the entry of a record it replaces (deleteInbox).
func putInbox(tx *bolt.Tx, it *InboxItem) error {
	rec, err := encodeInbox(it)
	if err != nil {
		return fmt.Errorf("encode inbox item %d: %w", it.ID, err)
	}
	return putInboxRecord(tx, it.ID, it.NextAttempt, rec)
}

// putInboxRecord stores an encoded item (encodeInbox) under id, with its
// inbox_due entry.
func putInboxRecord(tx *bolt.Tx, id uint64, next time.Time, rec []byte) error {
	if err := tx.Bucket(bucketInbox).Put(u64(id), rec); err != nil {
		return err
	}
	return tx.Bucket(bucketInboxDue).Put(inboxDueKey(next, id), nil)
}

// inboxHeader is an inbox record but its id (the key) and its body.
type inboxHeader struct {
	Key         string    `json:"key,omitempty"`
	Kind        string    `json:"kind"`
	At          time.Time `json:"at"`
	Attempts    int       `json:"attempts,omitempty"`
	NextAttempt time.Time `json:"next_attempt"`
	LastError   string    `json:"last_error,omitempty"`
}

// inboxRecordV2 starts an inbox record written since the write-side
// work of issue 14: 0x01, the uvarint length of the JSON inboxHeader, the
// header, then the body as it was received (no base64: a third smaller,
// and nothing to encode). Older records are the JSON of an InboxItem and
// start with '{'; both are read.
const inboxRecordV2 = 0x01

func encodeInbox(it *InboxItem) ([]byte, error) {
	h, err := json.Marshal(inboxHeader{Key: it.Key, Kind: it.Kind, At: it.At, Attempts: it.Attempts, NextAttempt: it.NextAttempt, LastError: it.LastError})
	if err != nil {
		return nil, err
	}
	rec := make([]byte, 0, 1+binary.MaxVarintLen64+len(h)+len(it.Body))
	rec = append(rec, inboxRecordV2)
	rec = binary.AppendUvarint(rec, uint64(len(h)))
	rec = append(rec, h...)
	return append(rec, it.Body...), nil
}

// decodeInbox reads the record of item id, in either form.
func decodeInbox(id uint64, v []byte) (InboxItem, error) {
	if len(v) > 0 && v[0] == inboxRecordV2 {
		n, w := binary.Uvarint(v[1:])
		if w <= 0 || n > uint64(len(v)-1-w) {
			return InboxItem{}, fmt.Errorf("inbox item %d: malformed record", id)
		}
		var h inboxHeader
		if err := json.Unmarshal(v[1+w:1+w+int(n)], &h); err != nil {
			return InboxItem{}, fmt.Errorf("inbox item %d: %w", id, err)
		}
		return InboxItem{ID: id, Key: h.Key, Kind: h.Kind, Body: bytes.Clone(v[1+w+int(n):]), At: h.At,
			Attempts: h.Attempts, NextAttempt: h.NextAttempt, LastError: h.LastError}, nil
	}
	var it InboxItem
	if err := json.Unmarshal(v, &it); err != nil {
		return InboxItem{}, fmt.Errorf("inbox item %d: %w", id, err)
	}
	it.ID = id
	return it, nil
}

// deleteInbox removes an item and its inbox_due entry, and reports
// whether there was such an item. Whatever removes an inbox item (setting
// it aside included) goes through here, so that the index names no
// missing item. A record too damaged to say when it was due still goes,
// with whatever entry names its id.
func deleteInbox(tx *bolt.Tx, id uint64) (bool, error) {
	in, due := tx.Bucket(bucketInbox), tx.Bucket(bucketInboxDue)
	v := in.Get(u64(id))
	if v == nil {
		return false, nil
	}
	if it, err := decodeInbox(id, v); err == nil {
		if err := due.Delete(inboxDueKey(it.NextAttempt, id)); err != nil {
			return false, err
		}
	} else {
		var stale [][]byte
		_ = due.ForEach(func(k, _ []byte) error {
			if len(k) == 16 && binary.BigEndian.Uint64(k[8:]) == id {
				stale = append(stale, bytes.Clone(k))
			}
			return nil
		})
		for _, k := range stale {
			if err := due.Delete(k); err != nil {
				return false, err
			}
		}
	}
	return true, in.Delete(u64(id))
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

// migrate3InboxDue adds the inbox's due-time index and indexes the items
// already waiting in the inbox.
func migrate3InboxDue(tx *bolt.Tx) error {
	if err := createBuckets(tx, bucketInboxDue); err != nil {
		return err
	}
	due := tx.Bucket(bucketInboxDue)
	return tx.Bucket(bucketInbox).ForEach(func(k, v []byte) error {
		if len(k) != 8 {
			return fmt.Errorf("inbox key %x is not an item id", k)
		}
		var it struct {
			NextAttempt time.Time `json:"next_attempt"`
		}
		if err := json.Unmarshal(v, &it); err != nil {
			return fmt.Errorf("decode inbox item %d: %w", binary.BigEndian.Uint64(k), err)
		}
		return due.Put(inboxDueKey(it.NextAttempt, binary.BigEndian.Uint64(k)), nil)
	})
}
