package store

import (
	"bytes"
	"context"
	"encoding/binary"
	"encoding/json"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"time"

	bolt "go.etcd.io/bbolt"

	"github.com/threatgate/threatgate/bot"
)

// OutboxRecord is an effect waiting for delivery (bot.OutboxRecord).
type OutboxRecord = bot.OutboxRecord

var _ bot.Outbox = (*DB)(nil)

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
	outbox := tx.Bucket(bucketOutbox)
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
		if ef.Sink == "" {
			ef.Sink = bot.SinkClass(ef.Kind)
		}
		rec := OutboxRecord{Effect: ef, NextAttempt: c.At, Created: c.At}
		if err := queueEffect(tx, &rec); err != nil {
			return fmt.Errorf("enqueue effect %d (%s): %w", i, ef.Kind, err)
		}
	}
	return nil
}

// Delivery queues. Each (sink, escalation) pair is one queue, delivered in
// the order its effects were enqueued (a global enqueue sequence, Seq: ids
// do not sort in that order); an effect of no escalation is a queue of its
// own. Only the head of a queue is in outbox_due, so a pass reads what is
// due and nothing that waits behind a failing effect. An effect that
// failed for good is parked: out of its queue (it holds nothing up),
// retried on its own.
//
//	outbox_queue   queue key + 0x00 + big-endian Seq + effect id -> nil
//	outbox_latest  sink + 0x00 + kind + 0x00 + (project!iid + 0x00 + sha
//	               for a status, the escalation for a summary) -> the Seq of the
//	               newest such effect waiting and how many wait (8 + 8
//	               bytes): an older one is superseded, whoever queued it
//	               (an escalation, or a status check answered before the MR
//	               had one). Removed when none waits.

// metaOutboxSeq counts enqueued effects (Seq).
const metaOutboxSeq = "outbox_seq"

// queueKey names the queue of ef.
func queueKey(ef bot.Effect) string {
	if ef.Escalation == "" {
		return ef.Sink + "\x00~" + ef.ID
	}
	return ef.Sink + "\x00" + ef.Escalation
}

func queueEntry(rec *OutboxRecord) []byte {
	k := []byte(queueKey(rec.Effect) + "\x00")
	k = binary.BigEndian.AppendUint64(k, rec.Seq)
	return append(k, rec.Effect.ID...)
}

// latestKey is the outbox_latest key of ef, nil for kinds that are never
// superseded.
func latestKey(ef bot.Effect) []byte {
	switch {
	case ef.Kind == bot.EffectStatus && ef.SHA != "":
		return []byte(ef.Sink + "\x00" + string(ef.Kind) + "\x00" + strings.ToLower(ef.Project) + "!" + strconv.FormatInt(ef.MRIID, 10) + "\x00" + ef.SHA)
	case ef.Kind == bot.EffectThreadSummary && ef.Escalation != "":
		return []byte(ef.Sink + "\x00" + string(ef.Kind) + "\x00" + ef.Escalation)
	}
	return nil
}

// latest reads an outbox_latest value: the newest Seq and how many wait.
func latest(v []byte) (newest, count uint64) {
	if len(v) != 16 {
		return 0, 0
	}
	return binary.BigEndian.Uint64(v[:8]), binary.BigEndian.Uint64(v[8:])
}

func latestValue(newest, count uint64) []byte {
	return binary.BigEndian.AppendUint64(binary.BigEndian.AppendUint64(nil, newest), count)
}

// queueEffect stores a new record, with the next Seq, at the end of its
// queue; it is due at once when the queue was empty.
func queueEffect(tx *bolt.Tx, rec *OutboxRecord) error {
	meta := tx.Bucket(bucketMeta)
	rec.Seq = getU64(meta, metaOutboxSeq) + 1
	if err := putU64(meta, metaOutboxSeq, rec.Seq); err != nil {
		return err
	}
	outbox, due, queue := tx.Bucket(bucketOutbox), tx.Bucket(bucketOutboxDue), tx.Bucket(bucketOutboxQueue)
	v, err := json.Marshal(rec)
	if err != nil {
		return err
	}
	if err := outbox.Put([]byte(rec.Effect.ID), v); err != nil {
		return err
	}
	if rec.Parked {
		// Out of line from the start (a migrated permanent failure).
		if err := due.Put(dueKey(rec), nil); err != nil {
			return err
		}
	} else {
		prefix := []byte(queueKey(rec.Effect) + "\x00")
		if k, _ := queue.Cursor().Seek(prefix); k == nil || !bytes.HasPrefix(k, prefix) {
			if err := due.Put(dueKey(rec), nil); err != nil {
				return err
			}
		}
		if err := queue.Put(queueEntry(rec), nil); err != nil {
			return err
		}
	}
	if lk := latestKey(rec.Effect); lk != nil {
		b := tx.Bucket(bucketOutboxLatest)
		_, count := latest(b.Get(lk))
		return b.Put(lk, latestValue(rec.Seq, count+1))
	}
	return nil
}

// promote makes the first effect of the queue named by prefix due.
func promote(tx *bolt.Tx, prefix []byte) error {
	outbox, due, queue := tx.Bucket(bucketOutbox), tx.Bucket(bucketOutboxDue), tx.Bucket(bucketOutboxQueue)
	k, _ := queue.Cursor().Seek(prefix)
	if k == nil || !bytes.HasPrefix(k, prefix) {
		return nil
	}
	if len(k) < len(prefix)+8 {
		return fmt.Errorf("queue entry %q is malformed", k)
	}
	id := string(k[len(prefix)+8:])
	next, err := getOutbox(outbox, id)
	if err != nil {
		return err
	}
	if next == nil {
		return fmt.Errorf("queue names effect %s, which is missing", id)
	}
	return due.Put(dueKey(next), nil)
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
// now and that are first in their delivery queue (or parked), earliest
// NextAttempt first (then by id). An effect made pointless by a newer one
// queued (a status of the same head, a summary) comes with Superseded set.
// limit <= 0 means no limit.
func (d *DB) DueEffects(ctx context.Context, now time.Time, limit int) ([]OutboxRecord, error) {
	return d.DueQueues(ctx, now, limit, 0)
}

// DueQueues is DueEffects with, right after each queue head, up to depth
// of the effects that wait behind it in its queue, in order (those due at
// now; each with Behind naming the one before it), so that a dispatcher
// round delivers a queue's run of effects and records them all in one
// transaction. limit counts every record returned.
func (d *DB) DueQueues(ctx context.Context, now time.Time, limit, depth int) ([]OutboxRecord, error) {
	if err := ctx.Err(); err != nil {
		return nil, fmt.Errorf("read due effects: %w", err)
	}
	var out []OutboxRecord
	until := string(timeKey(now))
	err := d.bolt.View(func(tx *bolt.Tx) error {
		outbox, latestB := tx.Bucket(bucketOutbox), tx.Bucket(bucketOutboxLatest)
		read := func(id string) (*OutboxRecord, error) {
			rec, err := getOutbox(outbox, id)
			if err != nil {
				return nil, err
			}
			if rec == nil {
				return nil, fmt.Errorf("the outbox indexes name effect %s, which is missing", id)
			}
			if lk := latestKey(rec.Effect); lk != nil {
				if newest, _ := latest(latestB.Get(lk)); newest > rec.Seq {
					rec.Superseded = true
				}
			}
			return rec, nil
		}
		full := func() bool { return limit > 0 && len(out) >= limit }
		c := tx.Bucket(bucketOutboxDue).Cursor()
		q := tx.Bucket(bucketOutboxQueue).Cursor()
		for k, _ := c.First(); k != nil && string(k[:min(len(k), 8)]) <= until && !full(); k, _ = c.Next() {
			if len(k) <= 8 {
				return malformedKey(bucketOutboxDue, k)
			}
			rec, err := read(string(k[8:]))
			if err != nil {
				return err
			}
			out = append(out, *rec)
			if rec.Parked || depth <= 0 {
				continue
			}
			prefix := []byte(queueKey(rec.Effect) + "\x00")
			prev := rec.Effect.ID
			qk, _ := q.Seek(queueEntry(rec))
			for n := 0; n < depth && !full(); n++ {
				if qk, _ = q.Next(); qk == nil || !bytes.HasPrefix(qk, prefix) || len(qk) < len(prefix)+8 {
					break
				}
				next, err := read(string(qk[len(prefix)+8:]))
				if err != nil {
					return err
				}
				if next.NextAttempt.After(now) {
					break
				}
				next.Behind = prev
				out = append(out, *next)
				prev = next.Effect.ID
			}
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

// EffectDone removes a delivered (or superseded) effect from the outbox
// and makes the next one of its queue due; it returns bot.ErrNotFound when
// the effect is not there. An older status of the same head (or summary)
// still parked stays superseded by this one's Seq, so it never lands after
// it: it is dropped when it comes due.
func (d *DB) EffectDone(ctx context.Context, id string) error {
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("remove effect %s: %w", id, err)
	}
	found := false
	err := d.bolt.Update(func(tx *bolt.Tx) error {
		rec, err := getOutbox(tx.Bucket(bucketOutbox), id)
		if err != nil || rec == nil {
			return err
		}
		found = true
		return removeEffect(tx, rec)
	})
	if err != nil {
		return fmt.Errorf("remove effect %s: %w", id, err)
	}
	if !found {
		return bot.ErrNotFound
	}
	return nil
}

// removeEffect deletes rec and its index entries, and promotes the next of
// its queue when it was the head.
func removeEffect(tx *bolt.Tx, rec *OutboxRecord) error {
	if err := tx.Bucket(bucketOutboxDue).Delete(dueKey(rec)); err != nil {
		return err
	}
	if err := tx.Bucket(bucketOutbox).Delete([]byte(rec.Effect.ID)); err != nil {
		return err
	}
	if lk := latestKey(rec.Effect); lk != nil {
		b := tx.Bucket(bucketOutboxLatest)
		newest, count := latest(b.Get(lk))
		var err error
		if count <= 1 {
			err = b.Delete(lk)
		} else {
			err = b.Put(lk, latestValue(newest, count-1))
		}
		if err != nil {
			return err
		}
	}
	if rec.Parked {
		return nil
	}
	if err := tx.Bucket(bucketOutboxQueue).Delete(queueEntry(rec)); err != nil {
		return err
	}
	return promote(tx, []byte(queueKey(rec.Effect)+"\x00"))
}

// EffectFailed records a failed delivery: one more attempt, the error
// text, and when to try again. With park (a failure retrying will not fix
// soon) the effect leaves its queue, which goes on without it, and is
// retried on its own at next. It returns bot.ErrNotFound when the effect
// is not in the outbox.
func (d *DB) EffectFailed(ctx context.Context, id string, next time.Time, errText string, park bool) error {
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("record failure of effect %s: %w", id, err)
	}
	found := false
	err := d.bolt.Update(func(tx *bolt.Tx) error {
		rec, err := getOutbox(tx.Bucket(bucketOutbox), id)
		if err != nil || rec == nil {
			return err
		}
		found = true
		return failEffect(tx, rec, next, errText, park)
	})
	if err != nil {
		return fmt.Errorf("record failure of effect %s: %w", id, err)
	}
	if !found {
		return bot.ErrNotFound
	}
	return nil
}

// failEffect records a failed attempt at rec (EffectFailed).
func failEffect(tx *bolt.Tx, rec *OutboxRecord, next time.Time, errText string, park bool) error {
	outbox, due := tx.Bucket(bucketOutbox), tx.Bucket(bucketOutboxDue)
	if err := due.Delete(dueKey(rec)); err != nil {
		return err
	}
	rec.Attempts++
	rec.NextAttempt = next
	rec.LastError = errText
	if park && !rec.Parked {
		rec.Parked = true
		if err := tx.Bucket(bucketOutboxQueue).Delete(queueEntry(rec)); err != nil {
			return err
		}
		if err := promote(tx, []byte(queueKey(rec.Effect)+"\x00")); err != nil {
			return err
		}
	}
	return putOutbox(outbox, due, rec)
}

// SettleEffects records what became of a round of deliveries, in one
// transaction (one fsync for the round instead of one per effect), in
// the order given: each delivered (or superseded, or set aside) effect
// is removed and the next of its queue becomes due, as EffectDone does;
// each failed one is rescheduled, as EffectFailed does; each thread an
// effect opened is recorded, as SetThreadRef does. An effect that is no
// longer in the outbox (another pass settled it) is skipped. Either all
// of it is written or none of it: until it returns, every effect of the
// round is still waiting, and would be delivered again, with the same
// id, after a crash.
func (d *DB) SettleEffects(ctx context.Context, outcomes []bot.Outcome) error {
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("settle %d effects: %w", len(outcomes), err)
	}
	if len(outcomes) == 0 {
		return nil
	}
	err := d.bolt.Update(func(tx *bolt.Tx) error {
		outbox := tx.Bucket(bucketOutbox)
		for _, o := range outcomes {
			if o.Thread != (bot.MessageRef{}) && o.Escalation != "" && o.Sink != "" {
				if err := setThreadRef(tx, o.Escalation, o.Sink, o.Thread); err != nil {
					return fmt.Errorf("record thread of %s on %s: %w", o.Escalation, o.Sink, err)
				}
			}
			rec, err := getOutbox(outbox, o.ID)
			if err != nil {
				return err
			}
			if rec == nil {
				continue
			}
			if o.Failed {
				err = failEffect(tx, rec, o.Next, o.Err, o.Park)
			} else {
				err = removeEffect(tx, rec)
			}
			if err != nil {
				return fmt.Errorf("settle effect %s: %w", o.ID, err)
			}
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("settle %d effects: %w", len(outcomes), err)
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

// migrate2OutboxQueues adds the delivery queues: every waiting effect gets
// its sink (by kind) and a place in its queue, in id order (the order it
// was decided in); only queue heads stay in outbox_due.
func migrate2OutboxQueues(tx *bolt.Tx) error {
	if err := createBuckets(tx, bucketOutboxQueue, bucketOutboxLatest, bucketThreads, bucketDeferred); err != nil {
		return err
	}
	// Deferred escalations, by the end of their deferral.
	if err := tx.Bucket(bucketEscalations).ForEach(func(k, v []byte) error {
		var e bot.Escalation
		if err := decodeProjection(v, &e); err != nil {
			return fmt.Errorf("decode escalation %s: %w", k, err)
		}
		if e.State != bot.StateDeferred {
			return nil
		}
		return tx.Bucket(bucketDeferred).Put(deferredKey(&e), nil)
	}); err != nil {
		return err
	}
	// by_mr keys are now in lower case: re-key them (the first escalation
	// of an MR keeps it, should two differ only in case).
	byMR := tx.Bucket(bucketByMR)
	type kv struct{ k, v []byte }
	var old []kv
	if err := byMR.ForEach(func(k, v []byte) error {
		if lk := bytes.ToLower(k); !bytes.Equal(lk, k) {
			old = append(old, kv{slices.Clone(k), slices.Clone(v)})
		}
		return nil
	}); err != nil {
		return err
	}
	for _, e := range old {
		if err := byMR.Delete(e.k); err != nil {
			return err
		}
		lk := bytes.ToLower(e.k)
		if cur := byMR.Get(lk); cur != nil {
			if a, okA := idNumber(string(cur)); okA {
				if b, okB := idNumber(string(e.v)); okB && b > a {
					continue
				}
			}
		}
		if err := byMR.Put(lk, e.v); err != nil {
			return err
		}
	}
	outbox, due := tx.Bucket(bucketOutbox), tx.Bucket(bucketOutboxDue)
	var recs []*OutboxRecord
	if err := outbox.ForEach(func(k, v []byte) error {
		var rec OutboxRecord
		if err := json.Unmarshal(v, &rec); err != nil {
			return fmt.Errorf("decode effect %s: %w", k, err)
		}
		recs = append(recs, &rec)
		return nil
	}); err != nil {
		return err
	}
	for _, rec := range recs {
		if err := due.Delete(dueKey(rec)); err != nil {
			return err
		}
		if rec.Effect.Sink == "" {
			rec.Effect.Sink = bot.SinkClass(rec.Effect.Kind)
		}
		// A permanent failure held nothing up before: it stays out of
		// line, retried on its own.
		rec.Parked = strings.HasPrefix(rec.LastError, "permanent: ")
		if err := queueEffect(tx, rec); err != nil {
			return fmt.Errorf("queue effect %s: %w", rec.Effect.ID, err)
		}
	}
	return nil
}

// ThreadRef returns where escalation esc's thread is on sink, the zero
// MessageRef when none was recorded.
func (d *DB) ThreadRef(ctx context.Context, esc, sink string) (bot.MessageRef, error) {
	var ref bot.MessageRef
	if err := ctx.Err(); err != nil {
		return ref, fmt.Errorf("read thread of %s on %s: %w", esc, sink, err)
	}
	err := d.bolt.View(func(tx *bolt.Tx) error {
		if v := tx.Bucket(bucketThreads).Get([]byte(sink + "\x00" + esc)); v != nil {
			return json.Unmarshal(v, &ref)
		}
		return nil
	})
	if err != nil {
		return ref, fmt.Errorf("read thread of %s on %s: %w", esc, sink, err)
	}
	return ref, nil
}

// SetThreadRef records where escalation esc's thread is on sink, unless one
// is recorded already (the first post opened the thread; later ones go
// into it).
func (d *DB) SetThreadRef(ctx context.Context, esc, sink string, ref bot.MessageRef) error {
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("record thread of %s on %s: %w", esc, sink, err)
	}
	err := d.bolt.Update(func(tx *bolt.Tx) error { return setThreadRef(tx, esc, sink, ref) })
	if err != nil {
		return fmt.Errorf("record thread of %s on %s: %w", esc, sink, err)
	}
	return nil
}

// setThreadRef is SetThreadRef inside tx.
func setThreadRef(tx *bolt.Tx, esc, sink string, ref bot.MessageRef) error {
	b := tx.Bucket(bucketThreads)
	k := []byte(sink + "\x00" + esc)
	if b.Get(k) != nil {
		return nil
	}
	v, err := json.Marshal(ref)
	if err != nil {
		return err
	}
	if err := b.Put(k, v); err != nil {
		return err
	}
	if ref.Channel == "" || ref.TS == "" {
		return nil
	}
	return b.Put(threadKey(sink, ref), []byte(esc))
}

// threadKey is the key of the reverse entry of a thread in the threads
// bucket: 0x01 + sink + 0x00 + channel + 0x00 + ts. No forward key starts
// with 0x01 (sink names are printable).
func threadKey(sink string, ref bot.MessageRef) []byte {
	return []byte("\x01" + sink + "\x00" + ref.Channel + "\x00" + ref.TS)
}

// EscalationOfThread returns the escalation whose thread on sink starts at
// ref (a reply in a Slack thread names its parent), or bot.ErrNotFound.
func (d *DB) EscalationOfThread(ctx context.Context, sink string, ref bot.MessageRef) (string, error) {
	if err := ctx.Err(); err != nil {
		return "", fmt.Errorf("find the escalation of a thread on %s: %w", sink, err)
	}
	var esc string
	err := d.bolt.View(func(tx *bolt.Tx) error {
		if v := tx.Bucket(bucketThreads).Get(threadKey(sink, ref)); v != nil {
			esc = string(v)
		}
		return nil
	})
	if err != nil {
		return "", fmt.Errorf("find the escalation of a thread on %s: %w", sink, err)
	}
	if esc == "" {
		return "", bot.ErrNotFound
	}
	return esc, nil
}
