package store

import (
	"context"
	"encoding/json"
	"fmt"
	"time"

	bolt "go.etcd.io/bbolt"

	"github.com/threatgate/threatgate/bot"
)

// OutboxRecord is an effect waiting for delivery (bot.OutboxRecord).
type OutboxRecord = bot.OutboxRecord

// enqueue puts the effects of c into the outbox; headSeq is the chain
// head before c's events.
func enqueue(tx *bolt.Tx, c *bot.Commit, esc *bot.Escalation, headSeq uint64) error {
	queued := 0
	for _, ef := range c.Effects {
		if ef.Kind != bot.EffectReply {
			queued++
		}
	}
	if queued == 0 {
		return nil
	}
	var seqPart string
	if len(c.Events) > 0 {
		seqPart = fmt.Sprintf("%020d", headSeq+1)
	} else {
		// No event to name the commit by: count such commits, so that an
		// id is never given twice.
		meta := tx.Bucket(bucketMeta)
		n := getU64(meta, metaNextQuiet) + 1
		if err := putU64(meta, metaNextQuiet, n); err != nil {
			return err
		}
		seqPart = fmt.Sprintf("%020d-%d", headSeq, n)
	}
	outbox, due := tx.Bucket(bucketOutbox), tx.Bucket(bucketOutboxDue)
	for i, ef := range c.Effects {
		if ef.Kind == bot.EffectReply {
			continue
		}
		if esc != nil && ef.Escalation == "" {
			ef.Escalation = esc.ID
		}
		owner := ef.Escalation
		if owner == "" {
			owner = "global"
		}
		ef.ID = fmt.Sprintf("%s/%s/%03d", owner, seqPart, i)
		if outbox.Get([]byte(ef.ID)) != nil {
			return fmt.Errorf("effect id %s is taken", ef.ID)
		}
		rec := OutboxRecord{Effect: ef, NextAttempt: c.At, Created: c.At}
		if err := putOutbox(outbox, due, &rec); err != nil {
			return fmt.Errorf("enqueue effect %d (%s): %w", i, ef.Kind, err)
		}
	}
	return nil
}

func putOutbox(outbox, due *bolt.Bucket, rec *OutboxRecord) error {
	v, err := json.Marshal(rec)
	if err != nil {
		return err
	}
	if err := outbox.Put([]byte(rec.Effect.ID), v); err != nil {
		return err
	}
	return due.Put(dueKey(rec), nil)
}

// dueKey is the outbox_due key of rec.
func dueKey(rec *OutboxRecord) []byte { return append(timeKey(rec.NextAttempt), rec.Effect.ID...) }

func getOutbox(outbox *bolt.Bucket, id string) (*OutboxRecord, error) {
	v := outbox.Get([]byte(id))
	if v == nil {
		return nil, nil
	}
	var rec OutboxRecord
	if err := json.Unmarshal(v, &rec); err != nil {
		return nil, fmt.Errorf("decode effect %s: %w", id, err)
	}
	return &rec, nil
}

// DueEffects returns up to limit effects whose NextAttempt is not after
// now, earliest NextAttempt first (then by id, which keeps the order of
// one commit's effects). limit <= 0 means no limit.
func (d *DB) DueEffects(ctx context.Context, now time.Time, limit int) ([]OutboxRecord, error) {
	if err := ctx.Err(); err != nil {
		return nil, fmt.Errorf("read due effects: %w", err)
	}
	var out []OutboxRecord
	until := string(timeKey(now))
	err := d.bolt.View(func(tx *bolt.Tx) error {
		outbox := tx.Bucket(bucketOutbox)
		c := tx.Bucket(bucketOutboxDue).Cursor()
		for k, _ := c.First(); k != nil && string(k[:8]) <= until; k, _ = c.Next() {
			if limit > 0 && len(out) == limit {
				break
			}
			id := string(k[8:])
			rec, err := getOutbox(outbox, id)
			if err != nil {
				return err
			}
			if rec == nil {
				return fmt.Errorf("index outbox_due names effect %s, which is missing", id)
			}
			out = append(out, *rec)
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("read due effects: %w", err)
	}
	return out, nil
}

// PendingEffects returns up to limit effects waiting for delivery, due or
// not, in id order: the effects of one escalation in the order they were
// decided. limit <= 0 means no limit.
func (d *DB) PendingEffects(ctx context.Context, limit int) ([]OutboxRecord, error) {
	if err := ctx.Err(); err != nil {
		return nil, fmt.Errorf("read pending effects: %w", err)
	}
	var out []OutboxRecord
	err := d.bolt.View(func(tx *bolt.Tx) error {
		c := tx.Bucket(bucketOutbox).Cursor()
		for k, v := c.First(); k != nil; k, v = c.Next() {
			if limit > 0 && len(out) == limit {
				break
			}
			var rec OutboxRecord
			if err := json.Unmarshal(v, &rec); err != nil {
				return fmt.Errorf("outbox record %s: %w", k, err)
			}
			out = append(out, rec)
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("read pending effects: %w", err)
	}
	return out, nil
}

// EffectDone removes a delivered effect from the outbox, or returns
// bot.ErrNotFound when it is not there.
func (d *DB) EffectDone(ctx context.Context, id string) error {
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("remove effect %s: %w", id, err)
	}
	found := false
	err := d.bolt.Update(func(tx *bolt.Tx) error {
		outbox, due := tx.Bucket(bucketOutbox), tx.Bucket(bucketOutboxDue)
		rec, err := getOutbox(outbox, id)
		if err != nil || rec == nil {
			return err
		}
		found = true
		if err := due.Delete(dueKey(rec)); err != nil {
			return err
		}
		return outbox.Delete([]byte(id))
	})
	if err != nil {
		return fmt.Errorf("remove effect %s: %w", id, err)
	}
	if !found {
		return bot.ErrNotFound
	}
	return nil
}

// EffectFailed records a failed delivery: one more attempt, the error
// text, and when to try again. It returns bot.ErrNotFound when the effect
// is not in the outbox.
func (d *DB) EffectFailed(ctx context.Context, id string, next time.Time, errText string) error {
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("record failure of effect %s: %w", id, err)
	}
	found := false
	err := d.bolt.Update(func(tx *bolt.Tx) error {
		outbox, due := tx.Bucket(bucketOutbox), tx.Bucket(bucketOutboxDue)
		rec, err := getOutbox(outbox, id)
		if err != nil || rec == nil {
			return err
		}
		found = true
		if err := due.Delete(dueKey(rec)); err != nil {
			return err
		}
		rec.Attempts++
		rec.NextAttempt = next
		rec.LastError = errText
		return putOutbox(outbox, due, rec)
	})
	if err != nil {
		return fmt.Errorf("record failure of effect %s: %w", id, err)
	}
	if !found {
		return bot.ErrNotFound
	}
	return nil
}

// OutboxDepth returns how many effects wait for delivery.
func (d *DB) OutboxDepth(ctx context.Context) (int, error) {
	if err := ctx.Err(); err != nil {
		return 0, fmt.Errorf("count outbox: %w", err)
	}
	var n int
	err := d.bolt.View(func(tx *bolt.Tx) error {
		n = tx.Bucket(bucketOutbox).Stats().KeyN
		return nil
	})
	if err != nil {
		return 0, fmt.Errorf("count outbox: %w", err)
	}
	return n, nil
}

// migrate2OutboxQueues adds the delivery queues (filled in by the outbox
// rework).
func migrate2OutboxQueues(tx *bolt.Tx) error {
	return createBuckets(tx, bucketOutboxQueue, bucketOutboxLatest, bucketThreads)
}
