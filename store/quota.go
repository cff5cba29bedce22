package store

import (
	"context"
	"encoding/json"
	"fmt"
	"time"

	bolt "go.etcd.io/bbolt"

	"github.com/threatgate/threatgate/bot"
)

// Quarter names the calendar quarter of t in UTC: "2026Q1".
func Quarter(t time.Time) string { return bot.Quarter(t) }

// quotaKey is the quota key of a person in a quarter.
func quotaKey(person, quarter string) []byte { return []byte(person + "|" + quarter) }

// Quota returns a person's manual escalations and cap overrides in a
// quarter ("2026Q4"); the zero Quota when there are none.
func (d *DB) Quota(ctx context.Context, person, quarter string) (bot.Quota, error) {
	if err := ctx.Err(); err != nil {
		return bot.Quota{}, fmt.Errorf("read quota of %s in %s: %w", person, quarter, err)
	}
	var q bot.Quota
	err := d.bolt.View(func(tx *bolt.Tx) error {
		v := tx.Bucket(bucketQuota).Get(quotaKey(person, quarter))
		if v == nil {
			return nil
		}
		return json.Unmarshal(v, &q)
	})
	if err != nil {
		return bot.Quota{}, fmt.Errorf("read quota of %s in %s: %w", person, quarter, err)
	}
	return q, nil
}

// countQuota adds what ev counts against a quota: a manual escalation
// filed (its intake complete) for its actor (not when the MR's own
// classification started the review), a cap override for the person
// it names, in the quarter of ev.At.
func countQuota(tx *bolt.Tx, ev bot.Event) error {
	var person string
	var manual, overrides int
	switch {
	case ev.Kind == bot.EventFiled && ev.Actor != "system":
		person, manual = ev.Actor, 1
	case ev.Kind == bot.EventCapOverridden:
		person, overrides = ev.Data.Person, ev.Data.Count
	default:
		return nil
	}
	b := tx.Bucket(bucketQuota)
	k := quotaKey(person, Quarter(ev.At))
	var q bot.Quota
	if v := b.Get(k); v != nil {
		if err := json.Unmarshal(v, &q); err != nil {
			return fmt.Errorf("decode %s: %w", k, err)
		}
	}
	q.Manual += manual
	q.Overrides += overrides
	v, err := json.Marshal(q)
	if err != nil {
		return err
	}
	return b.Put(k, v)
}
