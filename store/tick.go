package store

import (
	"context"
	"encoding/json"
	"fmt"
	"time"

	bolt "go.etcd.io/bbolt"

	"github.com/threatgate/threatgate/bot"
)

// tickKey is the tick_due key of e: the time key of its NextTick and its
// id.
func tickKey(e *bot.Escalation) []byte { return append(timeKey(e.NextTick), e.ID...) }

// TicksDue returns the ids of the escalations whose NextTick has come at
// now, earliest first, at most limit (<= 0: all). It reads only those (the
// tick_due index): a sweep that finds nothing to do reads one key.
func (d *DB) TicksDue(ctx context.Context, now time.Time, limit int) ([]string, error) {
	return d.dueIDs(ctx, bucketTickDue, "ticks", now, limit)
}

// tickEpoch is the NextTick schema 5 gives the open escalations it finds:
// due at once, so the first sweep computes their real next tick.
var tickEpoch = time.Unix(0, 0).UTC()

// migrate5TickIndex adds the tick index and makes every open escalation
// due for a first tick (its projection's NextTick is set to the epoch, so
// the index entry and the projection agree).
func migrate5TickIndex(tx *bolt.Tx) error {
	if err := createBuckets(tx, bucketTickDue); err != nil {
		return err
	}
	escs, ticks := tx.Bucket(bucketEscalations), tx.Bucket(bucketTickDue)
	type upd struct {
		k, v []byte
		e    *bot.Escalation
	}
	var todo []upd
	err := escs.ForEach(func(k, v []byte) error {
		var e bot.Escalation
		if err := decodeProjection(v, &e); err != nil {
			return fmt.Errorf("escalation %s: %w", k, err)
		}
		if !e.State.Active() || !e.NextTick.IsZero() {
			return nil
		}
		e.NextTick = tickEpoch
		nv, err := json.Marshal(&e)
		if err != nil {
			return err
		}
		todo = append(todo, upd{k: append([]byte(nil), k...), v: nv, e: &e})
		return nil
	})
	if err != nil {
		return err
	}
	for _, u := range todo {
		if err := escs.Put(u.k, u.v); err != nil {
			return err
		}
		if err := ticks.Put(tickKey(u.e), nil); err != nil {
			return err
		}
	}
	return nil
}
