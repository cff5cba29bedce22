package store

import (
	"context"
	"encoding/binary"
	"encoding/json"
	"fmt"
	"time"

	bolt "go.etcd.io/bbolt"

	"github.com/threatgate/threatgate/bot"
)

var (
	_ bot.History     = (*DB)(nil)
	_ bot.ReportStore = (*DB)(nil)
)

// windowSkew is how far out of time order the log may be. Events are
// appended in commit order and stamped with the committing input's clock
// (bot.Commit.At), so At is non-decreasing but for inputs that race each
// other to the commit: a few milliseconds, far less than this. A window
// read widens both of its ends by windowSkew and filters by At, so events
// out of order by less than that are read all the same.
const windowSkew = 5 * time.Minute

// eventTime is the part of a stored event the binary search reads.
type eventTime struct {
	At time.Time `json:"at"`
}

// EventsBetween returns the events of the audit log whose At is in
// [from, to), in log (seq) order, with their chain fields; nil when to is
// not after from. A zero from reads from the first event.
//
// Its cost follows the window, not the log: a binary search over seq finds
// the first event at from (about log2(n) events decoded, n the log's
// length), then a cursor reads forward to the first event at to. That
// relies on At growing with seq; events out of order by less than
// windowSkew are found all the same, those further out may be missed (no
// commit makes them: every commit is stamped with its clock's now).
func (d *DB) EventsBetween(ctx context.Context, from, to time.Time) ([]bot.Event, error) {
	if err := ctx.Err(); err != nil {
		return nil, fmt.Errorf("read events from %s to %s: %w", from.Format(time.RFC3339), to.Format(time.RFC3339), err)
	}
	if !to.After(from) {
		return nil, nil
	}
	var out []bot.Event
	err := d.bolt.View(func(tx *bolt.Tx) error {
		var err error
		out, err = eventsBetween(ctx, tx, from, to, nil)
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("read events from %s to %s: %w", from.Format(time.RFC3339), to.Format(time.RFC3339), err)
	}
	return out, nil
}

// eventsBetween is EventsBetween inside tx. decoded, when not nil, counts
// the stored events it decodes (tests check that the count follows the
// window).
func eventsBetween(ctx context.Context, tx *bolt.Tx, from, to time.Time, decoded *int) ([]bot.Event, error) {
	count := func() {
		if decoded != nil {
			*decoded++
		}
	}
	c := tx.Bucket(bucketEvents).Cursor()
	firstKey, _ := c.First()
	lastKey, _ := c.Last()
	if firstKey == nil {
		return nil, nil
	}
	lo, hi := binary.BigEndian.Uint64(firstKey), binary.BigEndian.Uint64(lastKey)
	earliest := from.Add(-windowSkew)
	if from.IsZero() {
		earliest = time.Time{}
	}
	// The smallest seq in [lo, hi+1) whose event (the first stored at or
	// after it) is at earliest or later; hi+1 when there is none. As
	// sort.Search does, the seq before the answer was probed and found
	// earlier than earliest, so no event before it can be in the window
	// (see windowSkew).
	start, end := lo, hi+1
	for start < end {
		mid := start + (end-start)/2
		k, v := c.Seek(u64(mid))
		if k == nil {
			end = mid
			continue
		}
		var et eventTime
		count()
		v, err := unpack(v)
		if err != nil {
			return nil, fmt.Errorf("decode event %d: %w", binary.BigEndian.Uint64(k), err)
		}
		if err := json.Unmarshal(v, &et); err != nil {
			return nil, fmt.Errorf("decode event %d: %w", binary.BigEndian.Uint64(k), err)
		}
		if et.At.Before(earliest) {
			start = mid + 1
		} else {
			end = mid
		}
	}
	if start > hi {
		return nil, nil
	}
	stop := to.Add(windowSkew)
	var out []bot.Event
	n := 0
	for k, v := c.Seek(u64(start)); k != nil; k, v = c.Next() {
		if n++; n%1024 == 0 {
			if err := ctx.Err(); err != nil {
				return nil, err
			}
		}
		count()
		ev, err := decodeEvent(tx.Bucket(bucketPayloads), binary.BigEndian.Uint64(k), v)
		if err != nil {
			return nil, err
		}
		if !ev.At.Before(stop) {
			break
		}
		if !ev.At.Before(from) && ev.At.Before(to) {
			out = append(out, ev)
		}
	}
	return out, nil
}
