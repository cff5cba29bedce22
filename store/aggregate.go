package store

import (
	"bytes"
	"cmp"
	"context"
	"encoding/binary"
	"encoding/json"
	"fmt"
	"slices"
	"time"

	bolt "go.etcd.io/bbolt"

	"github.com/threatgate/threatgate/bot"
)

// Schema 11: the read side's counters and the first-response index.
var (
	// bucketAggregates holds the dashboard's and /metrics' counters:
	// key (bot.Contributions) -> big-endian int64.
	bucketAggregates = []byte("aggregates")
	// bucketFirstResponse holds time key of FirstResponseDue + id -> the
	// JSON of bot.FirstResponseWatch (empty when nobody acted), for the
	// escalations that watch applies to.
	bucketFirstResponse = []byte("first_response_due")
)

// aggregate moves the counters from old (the stored projection, nil for a
// new escalation) to esc (the one about to be stored): it takes away
// what old contributed and adds what esc does (bot.Contributions), and
// replaces old's first-response entry with esc's. Commit and Compact call
// it next to unindex and index.
//
// In a file older than schema 11 (only opened read-only, or by tests that
// stop the migrations early) the buckets are missing and it does
// nothing: migrate11Aggregates builds them from the projections.
func aggregate(tx *bolt.Tx, old, esc *bot.Escalation) error {
	b, fr := tx.Bucket(bucketAggregates), tx.Bucket(bucketFirstResponse)
	if b == nil || fr == nil {
		return nil
	}
	delta := map[string]int64{}
	for _, c := range bot.Contributions(old) {
		delta[c.Key] -= c.N
	}
	for _, c := range bot.Contributions(esc) {
		delta[c.Key] += c.N
	}
	for k, n := range delta {
		if n == 0 {
			continue
		}
		if err := addCounter(b, k, n); err != nil {
			return err
		}
	}
	if k := firstResponseKey(old); k != nil {
		if err := fr.Delete(k); err != nil {
			return err
		}
	}
	return putFirstResponse(fr, esc)
}

// addCounter adds n to the counter k, removing it when it comes to 0.
func addCounter(b *bolt.Bucket, k string, n int64) error {
	var v int64
	if old := b.Get([]byte(k)); len(old) == 8 {
		v = int64(binary.BigEndian.Uint64(old))
	}
	v += n
	if v == 0 {
		return b.Delete([]byte(k))
	}
	if err := b.Put([]byte(k), binary.BigEndian.AppendUint64(nil, uint64(v))); err != nil {
		return fmt.Errorf("count %q: %w", k, err)
	}
	return nil
}

// firstResponseKey is e's first_response_due key, nil when it has none.
func firstResponseKey(e *bot.Escalation) []byte {
	if bot.FirstResponseWatch(e) == nil {
		return nil
	}
	return append(timeKey(e.FirstResponseDue), e.ID...)
}

func putFirstResponse(b *bolt.Bucket, e *bot.Escalation) error {
	w := bot.FirstResponseWatch(e)
	if w == nil {
		return nil
	}
	var v []byte
	if w.Tier != "" || len(w.Approvals)+len(w.Rejections)+len(w.Dissents)+len(w.Actions) > 0 || w.Risk != nil {
		var err error
		if v, err = json.Marshal(w); err != nil {
			return fmt.Errorf("encode first-response watch of %s: %w", e.ID, err)
		}
	}
	return b.Put(append(timeKey(e.FirstResponseDue), e.ID...), v)
}

// migrate11Aggregates builds the counters and the first-response index
// from the stored projections (rebuildAggregates). Self-contained: it
// reads only the escalations bucket and writes only its own two buckets.
func migrate11Aggregates(tx *bolt.Tx) error {
	if err := createBuckets(tx, bucketAggregates, bucketFirstResponse); err != nil {
		return err
	}
	return rebuildAggregates(tx)
}

// rebuildAggregates empties the counters and the first-response index
// and computes them again from every stored projection.
func rebuildAggregates(tx *bolt.Tx) error {
	for _, name := range [][]byte{bucketAggregates, bucketFirstResponse} {
		if err := tx.DeleteBucket(name); err != nil {
			return fmt.Errorf("empty %s: %w", name, err)
		}
		if _, err := tx.CreateBucket(name); err != nil {
			return fmt.Errorf("create %s: %w", name, err)
		}
	}
	counters := map[string]int64{}
	fr := tx.Bucket(bucketFirstResponse)
	err := tx.Bucket(bucketEscalations).ForEach(func(k, v []byte) error {
		var e bot.Escalation
		if err := decodeProjection(v, &e); err != nil {
			return fmt.Errorf("decode %s: %w", k, err)
		}
		for _, c := range bot.Contributions(&e) {
			counters[c.Key] += c.N
		}
		return putFirstResponse(fr, &e)
	})
	if err != nil {
		return err
	}
	b := tx.Bucket(bucketAggregates)
	for k, n := range counters {
		if n == 0 {
			continue
		}
		if err := b.Put([]byte(k), binary.BigEndian.AppendUint64(nil, uint64(n))); err != nil {
			return err
		}
	}
	return nil
}

// RebuildAggregates recomputes the counters and the first-response index
// from the stored projections, in one transaction (threatgate aggregates
// rebuild). It reads every escalation: for a stopped store, not a hot
// path.
func (d *DB) RebuildAggregates(ctx context.Context) error {
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("rebuild aggregates: %w", err)
	}
	if err := d.bolt.Update(rebuildAggregates); err != nil {
		return fmt.Errorf("rebuild aggregates: %w", err)
	}
	return nil
}

// Counters returns the raw counters (key -> value), for tests and the
// rebuild command's comparison.
func (d *DB) Counters(ctx context.Context) (map[string]int64, error) {
	if err := ctx.Err(); err != nil {
		return nil, fmt.Errorf("read aggregates: %w", err)
	}
	out := map[string]int64{}
	err := d.bolt.View(func(tx *bolt.Tx) error {
		b := tx.Bucket(bucketAggregates)
		if b == nil {
			return fmt.Errorf("bucket %s is missing (schema migration 11)", bucketAggregates)
		}
		return b.ForEach(func(k, v []byte) error {
			if len(v) != 8 {
				return fmt.Errorf("counter %q: %d bytes, want 8", k, len(v))
			}
			out[string(k)] = int64(binary.BigEndian.Uint64(v))
			return nil
		})
	})
	if err != nil {
		return nil, fmt.Errorf("read aggregates: %w", err)
	}
	return out, nil
}

// Aggregates returns the whole record's counters (bot.AggregatesOf): one
// read of a bucket whose size follows the tiers, states, weeks, people
// and groups, not the escalations.
func (d *DB) Aggregates(ctx context.Context) (bot.Aggregates, error) {
	c, err := d.Counters(ctx)
	if err != nil {
		return bot.Aggregates{}, err
	}
	return bot.AggregatesOf(c), nil
}

// CountOverdue returns how many escalations are overdue at now
// (bot.Overdue: open, clock running, decision due before now). It walks
// the open_by_deadline keys due before now without decoding them, less
// the deferred ones, and decodes only the deferred escalations
// (deferred_until), whose deadline moves with their pause: its cost
// follows the overdue and deferred escalations, not the store.
func (d *DB) CountOverdue(ctx context.Context, now time.Time) (int, error) {
	if err := ctx.Err(); err != nil {
		return 0, fmt.Errorf("count overdue escalations: %w", err)
	}
	n := 0
	err := d.bolt.View(func(tx *bolt.Tx) error {
		deferred := map[string]bool{}
		c := tx.Bucket(bucketDeferred).Cursor()
		for k, _ := c.First(); k != nil; k, _ = c.Next() {
			if len(k) <= 8 {
				return malformedKey(bucketDeferred, k)
			}
			id := string(k[8:])
			deferred[id] = true
			e, err := mustGetEscalation(tx, id, "deferred_until")
			if err != nil {
				return err
			}
			if bot.Overdue(e, now) {
				n++
			}
		}
		until := timeKey(now)
		c = tx.Bucket(bucketOpenByDeadline).Cursor()
		for k, _ := c.First(); k != nil && bytes.Compare(k[:min(len(k), 8)], until) < 0; k, _ = c.Next() {
			if len(k) <= 8 {
				return malformedKey(bucketOpenByDeadline, k)
			}
			if !deferred[string(k[8:])] {
				n++
			}
		}
		return nil
	})
	if err != nil {
		return 0, fmt.Errorf("count overdue escalations: %w", err)
	}
	return n, nil
}

// CountPastFirstResponse returns how many escalations are past their
// first-response deadline at now with nobody responding
// (bot.PastFirstResponse, responded being bot.FirstResponded under the
// policy in force). It walks the first_response_due entries due at now
// and decodes only the small watches of those someone acted on.
func (d *DB) CountPastFirstResponse(ctx context.Context, now time.Time, responded func(*bot.Escalation) bool) (int, error) {
	if err := ctx.Err(); err != nil {
		return 0, fmt.Errorf("count escalations past first response: %w", err)
	}
	n := 0
	err := d.bolt.View(func(tx *bolt.Tx) error {
		until := timeKey(now)
		c := tx.Bucket(bucketFirstResponse).Cursor()
		for k, v := c.First(); k != nil && bytes.Compare(k[:min(len(k), 8)], until) <= 0; k, v = c.Next() {
			if len(k) <= 8 {
				return malformedKey(bucketFirstResponse, k)
			}
			if len(v) == 0 {
				n++
				continue
			}
			var w bot.Escalation
			if err := json.Unmarshal(v, &w); err != nil {
				return fmt.Errorf("decode first-response watch %s: %w", k[8:], err)
			}
			if !responded(&w) {
				n++
			}
		}
		return nil
	})
	if err != nil {
		return 0, fmt.Errorf("count escalations past first response: %w", err)
	}
	return n, nil
}

// MostUrgent returns the open escalations closest to (or furthest past)
// their decision deadline: the first limit that are not deferred, from
// open_by_deadline (and any after them due at the same time as the last,
// so that ties are the caller's to order), and the first limit deferred
// ones by the end of their deferral (deferred_until). It decodes only
// those.
func (d *DB) MostUrgent(ctx context.Context, limit int) (open, deferred []*bot.Escalation, err error) {
	if err := ctx.Err(); err != nil {
		return nil, nil, fmt.Errorf("read the most urgent escalations: %w", err)
	}
	err = d.bolt.View(func(tx *bolt.Tx) error {
		isDeferred := map[string]bool{}
		c := tx.Bucket(bucketDeferred).Cursor()
		for k, _ := c.First(); k != nil; k, _ = c.Next() {
			if len(k) <= 8 {
				return malformedKey(bucketDeferred, k)
			}
			id := string(k[8:])
			isDeferred[id] = true
			if len(deferred) < limit {
				e, err := mustGetEscalation(tx, id, "deferred_until")
				if err != nil {
					return err
				}
				deferred = append(deferred, e)
			}
		}
		var last []byte
		c = tx.Bucket(bucketOpenByDeadline).Cursor()
		for k, _ := c.First(); k != nil; k, _ = c.Next() {
			if len(k) <= 8 {
				return malformedKey(bucketOpenByDeadline, k)
			}
			id := string(k[8:])
			if isDeferred[id] {
				continue
			}
			if len(open) >= limit && !bytes.Equal(k[:8], last) {
				break
			}
			e, err := mustGetEscalation(tx, id, "open_by_deadline")
			if err != nil {
				return err
			}
			open = append(open, e)
			last = k[:8]
		}
		return nil
	})
	if err != nil {
		return nil, nil, fmt.Errorf("read the most urgent escalations: %w", err)
	}
	return open, deferred, nil
}

// IncidentEventsBetween returns the incident events (recorded and fixed)
// whose At is in [from, to), in log order, read through the
// incident_events index: its cost follows the incidents ever recorded
// (a few), not the log. The dashboard's incidents tile reads it.
func (d *DB) IncidentEventsBetween(ctx context.Context, from, to time.Time) ([]bot.Event, error) {
	if err := ctx.Err(); err != nil {
		return nil, fmt.Errorf("read incident events: %w", err)
	}
	var out []bot.Event
	err := d.bolt.View(func(tx *bolt.Tx) error {
		events, payloads := tx.Bucket(bucketEvents), tx.Bucket(bucketPayloads)
		return tx.Bucket(bucketIncidents).ForEach(func(k, _ []byte) error {
			if len(k) < 9 {
				return fmt.Errorf("index incident_events: key %q is too short", k)
			}
			sk := k[len(k)-8:]
			seq := binary.BigEndian.Uint64(sk)
			v := events.Get(sk)
			if v == nil {
				return fmt.Errorf("index incident_events names event %d, which is missing", seq)
			}
			ev, err := decodeEvent(payloads, seq, v)
			if err != nil {
				return err
			}
			if !ev.At.Before(from) && ev.At.Before(to) {
				out = append(out, ev)
			}
			return nil
		})
	})
	if err != nil {
		return nil, fmt.Errorf("read incident events: %w", err)
	}
	slices.SortFunc(out, func(a, b bot.Event) int { return cmp.Compare(a.Seq, b.Seq) })
	return out, nil
}
