package store

import (
	"bytes"
	"context"
	"fmt"
	"strings"
	"time"

	bolt "go.etcd.io/bbolt"

	"github.com/threatgate/threatgate/bot"
)

// Schema 6 (away.go): who said they are away (/threatgate away).
var bucketAway = []byte("away")

// migrate6Away adds the bucket of absences people recorded.
func migrate6Away(tx *bolt.Tx) error {
	return createBuckets(tx, bucketAway)
}

// recordAway keeps what a bot.EventAway records, inside Commit's
// transaction: the person (Data.Person, else the actor) -> the time key
// of the day they are back; a zero Data.Until (back) removes the entry.
// Entries that have ended by ev.At go too, so the bucket holds about one
// key per person away. Other events are ignored.
func recordAway(tx *bolt.Tx, ev bot.Event) error {
	if ev.Kind != bot.EventAway {
		return nil
	}
	b := tx.Bucket(bucketAway)
	if b == nil {
		return fmt.Errorf("bucket %s is missing (schema migration 6)", bucketAway)
	}
	person := ev.Data.Person
	if person == "" {
		person = ev.Actor
	}
	if person == "" || strings.IndexByte(person, 0) >= 0 {
		return fmt.Errorf("away event names no person (%q)", person)
	}
	var ended [][]byte
	c := b.Cursor()
	for k, v := c.First(); k != nil; k, v = c.Next() {
		if len(v) != 8 || !keyTime(v).After(ev.At) {
			ended = append(ended, bytes.Clone(k))
		}
	}
	for _, k := range ended {
		if err := b.Delete(k); err != nil {
			return err
		}
	}
	if ev.Data.Until.IsZero() {
		return b.Delete([]byte(person))
	}
	return b.Put([]byte(person), timeKey(ev.Data.Until))
}

// Away returns the people who recorded that they are away and still are at
// now: person id -> the day they are back. It reads the away bucket only
// (about one key per person away); the policy's away_until is not in it
// (bot.AwayAt reads both).
func (d *DB) Away(ctx context.Context, now time.Time) (map[string]time.Time, error) {
	if err := ctx.Err(); err != nil {
		return nil, fmt.Errorf("read who is away: %w", err)
	}
	out := map[string]time.Time{}
	err := d.bolt.View(func(tx *bolt.Tx) error {
		b := tx.Bucket(bucketAway)
		if b == nil {
			return fmt.Errorf("bucket %s is missing (schema migration 6)", bucketAway)
		}
		return b.ForEach(func(k, v []byte) error {
			if len(v) == 8 {
				if until := keyTime(v); until.After(now) {
					out[string(k)] = until
				}
			}
			return nil
		})
	})
	if err != nil {
		return nil, fmt.Errorf("read who is away: %w", err)
	}
	return out, nil
}
