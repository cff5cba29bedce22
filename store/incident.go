package store

import (
	"context"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"strings"

	bolt "go.etcd.io/bbolt"

	"github.com/threatgate/threatgate/bot"
)

var _ bot.IncidentStore = (*DB)(nil)

// metaNextIncident is the meta key of the last incident number allocated
// (INC-n); no schema change: the meta bucket has always existed.
const metaNextIncident = "next_incident"

// NextIncident allocates the next incident id, INC-n, in a transaction of
// its own: ids are never reused, and one allocated for a decision that is
// then refused or not committed is skipped.
func (d *DB) NextIncident(ctx context.Context) (string, error) {
	if err := ctx.Err(); err != nil {
		return "", fmt.Errorf("allocate an incident id: %w", err)
	}
	var n uint64
	err := d.bolt.Update(func(tx *bolt.Tx) error {
		meta := tx.Bucket(bucketMeta)
		n = getU64(meta, metaNextIncident) + 1
		return putU64(meta, metaNextIncident, n)
	})
	if err != nil {
		return "", fmt.Errorf("allocate an incident id: %w", err)
	}
	return "INC-" + strconv.FormatUint(n, 10), nil
}

// incidentEvent is the part of a stored event FindIncident reads before
// decoding the whole of a match.
type incidentEvent struct {
	Kind bot.EventKind `json:"kind"`
	Data struct {
		Incident string `json:"incident"`
	} `json:"data"`
}

// FindIncident returns the incident id (INC-n, as NextIncident gave it):
// the event that recorded it and the first that recorded its remediation;
// bot.ErrNotFound when there is none.
//
// Incidents have no index of their own (their events are committed like
// absences, without an escalation), so it reads the audit log backwards
// from the head to the incident's event: its cost follows how many events
// came after the incident, a few days' worth for a fresh one. An id never
// allocated is refused without reading the log.
func (d *DB) FindIncident(ctx context.Context, id string) (*bot.IncidentRecord, error) {
	want, ok := strings.CutPrefix(id, "INC-")
	n, err := strconv.ParseUint(want, 10, 64)
	if !ok || err != nil || n == 0 {
		return nil, fmt.Errorf("find incident %q: %w", id, bot.ErrNotFound)
	}
	var rec *bot.IncidentRecord
	err = d.bolt.View(func(tx *bolt.Tx) error {
		if n > getU64(tx.Bucket(bucketMeta), metaNextIncident) {
			return bot.ErrNotFound
		}
		var fixed *bot.Event
		c := tx.Bucket(bucketEvents).Cursor()
		i := 0
		for k, v := c.Last(); k != nil; k, v = c.Prev() {
			if i++; i%1024 == 0 {
				if err := ctx.Err(); err != nil {
					return err
				}
			}
			var head incidentEvent
			if err := json.Unmarshal(v, &head); err != nil {
				return fmt.Errorf("decode event %d: %w", binary.BigEndian.Uint64(k), err)
			}
			if head.Data.Incident != id || (head.Kind != bot.EventIncident && head.Kind != bot.EventIncidentFixed) {
				continue
			}
			var ev bot.Event
			if err := json.Unmarshal(v, &ev); err != nil {
				return fmt.Errorf("decode event %d: %w", binary.BigEndian.Uint64(k), err)
			}
			if ev.Kind == bot.EventIncidentFixed {
				fixed = &ev // read backwards: the last one seen is the first
				continue
			}
			rec = &bot.IncidentRecord{Recorded: ev, Fixed: fixed}
			return nil
		}
		return bot.ErrNotFound
	})
	if err != nil {
		if errors.Is(err, bot.ErrNotFound) {
			return nil, fmt.Errorf("find incident %s: %w", id, bot.ErrNotFound)
		}
		return nil, fmt.Errorf("find incident %s: %w", id, err)
	}
	return rec, nil
}
