package store

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"

	bolt "go.etcd.io/bbolt"

	"github.com/threatgate/threatgate/bot"
)

// Commit writes what one decision produced, in one transaction:
//
//   - it refuses c.Key when it was committed before and has not expired
//     at c.At (bot.ErrDuplicate);
//   - for c.Escalation with an empty ID it allocates the next "ESC-n" and
//     stamps it on the projection; for one with an ID it requires the
//     stored Version to be c.Expect (0 when there is none yet), else
//     bot.ErrConflict; a projection for an MR that already has another
//     escalation is refused with bot.ErrConflict;
//   - it stamps the escalation's id on every event (except personal ones,
//     bot.EventKind.Personal: cap overrides and absences, which belong to
//     no escalation) and effect that has none, and refuses one that names
//     another escalation;
//   - it appends the events to the audit chain, saves the projection and
//     its indexes, enqueues the effects except bot.EffectReply with
//     NextAttempt c.At, records c.Key until c.At plus the key TTL,
//     counts manual escalations and cap overrides in the quotas and keeps
//     absences (bot.EventAway) in the away bucket;
//   - it removes the inbox item c.Inbox finishes (finishInbox, inbox.go).
//
// Nothing is written when it returns an error. c is not modified. It
// returns the projection as saved, nil when c.Escalation is nil. c.At is
// required: every stored time comes from it or from the events.
func (d *DB) Commit(ctx context.Context, c *bot.Commit) (*bot.Escalation, error) {
	if c == nil {
		return nil, errors.New("commit: no commit")
	}
	what := "commit"
	if e := c.Escalation; e != nil {
		if e.ID != "" {
			what = "commit " + e.ID
		} else {
			what = "commit new escalation of " + mrKey(e.Project, e.MRIID)
		}
	}
	if err := ctx.Err(); err != nil {
		return nil, fmt.Errorf("%s: %w", what, err)
	}
	if c.At.IsZero() {
		return nil, fmt.Errorf("%s: At is zero; pass the clock's time", what)
	}
	var saved []byte
	err := d.bolt.Update(func(tx *bolt.Tx) error {
		var err error
		saved, err = d.commit(tx, c)
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("%s: %w", what, err)
	}
	if saved == nil {
		return nil, nil
	}
	var out bot.Escalation
	if err := json.Unmarshal(saved, &out); err != nil {
		return nil, fmt.Errorf("%s: decode saved projection: %w", what, err)
	}
	return &out, nil
}

// commit does the work of Commit inside tx and returns the saved
// projection's JSON.
func (d *DB) commit(tx *bolt.Tx, c *bot.Commit) ([]byte, error) {
	fillAppendOnly(tx) // fill.go
	meta := tx.Bucket(bucketMeta)
	keys := tx.Bucket(bucketIdempotency)
	if c.Key != "" {
		if v := keys.Get([]byte(c.Key)); len(v) == 8 && c.At.Before(keyTime(v)) {
			return nil, fmt.Errorf("key %q: %w", c.Key, bot.ErrDuplicate)
		}
	}

	var esc, old *bot.Escalation
	if c.Escalation != nil {
		esc = c.Escalation.Clone()
		var err error
		if old, err = d.claim(tx, esc, c.Expect); err != nil {
			return nil, err
		}
	}

	// Events: stamp, chain, index, count.
	headSeq := getU64(meta, metaHeadSeq)
	prevHash := string(meta.Get([]byte(metaHeadHash)))
	if headSeq == 0 {
		prevHash = genesisHash
	}
	events, byEsc := tx.Bucket(bucketEvents), tx.Bucket(bucketEventsByEsc)
	seq := headSeq
	for i := range c.Events {
		ev := c.Events[i]
		if esc != nil && strings.Contains(ev.Data.GateText, bot.IDPlaceholder) {
			// The gate's text was written before the escalation had an
			// id (GitLab gets it filled in by Effect.Body).
			ev.Data.GateText = strings.ReplaceAll(ev.Data.GateText, bot.IDPlaceholder, esc.ID)
		}
		if esc != nil {
			switch {
			case ev.Kind.Personal():
			case ev.Escalation == "":
				ev.Escalation = esc.ID
			case ev.Escalation != esc.ID:
				return nil, fmt.Errorf("event %d (%s) is about %s, not %s", i, ev.Kind, ev.Escalation, esc.ID)
			}
		}
		seq++
		rec, err := sealEvent(tx.Bucket(bucketPayloads), &ev, seq, prevHash)
		if err != nil {
			return nil, fmt.Errorf("encode event %d (%s): %w", i, ev.Kind, err)
		}
		if err := events.Put(u64(seq), packEvent(rec)); err != nil {
			return nil, fmt.Errorf("append event %d: %w", seq, err)
		}
		if ev.Escalation != "" {
			if err := byEsc.Put(escSeqKey(ev.Escalation, seq), nil); err != nil {
				return nil, fmt.Errorf("index event %d: %w", seq, err)
			}
		}
		if err := countQuota(tx, ev); err != nil {
			return nil, fmt.Errorf("count quota of event %d: %w", seq, err)
		}
		if err := recordAway(tx, ev); err != nil {
			return nil, fmt.Errorf("record absence of event %d: %w", seq, err)
		}
		if err := recordIncident(tx, ev); err != nil {
			return nil, fmt.Errorf("index incident of event %d: %w", seq, err)
		}
		prevHash = ev.Hash
	}
	if seq != headSeq {
		if err := putU64(meta, metaHeadSeq, seq); err != nil {
			return nil, err
		}
		if err := meta.Put([]byte(metaHeadHash), []byte(prevHash)); err != nil {
			return nil, err
		}
	}

	// The projection and its indexes.
	var saved []byte
	if esc != nil {
		// Computed under another policy or binary than the tick mark
		// says every open escalation was: the mark no longer holds.
		if m := meta.Get([]byte(metaTickedUnder)); m != nil && string(m) != c.TickMark && string(m) != bot.PendingTickMark(c.TickMark) {
			if err := meta.Delete([]byte(metaTickedUnder)); err != nil {
				return nil, fmt.Errorf("clear the tick mark: %w", err)
			}
		}
		esc.GateText = strings.ReplaceAll(esc.GateText, bot.IDPlaceholder, esc.ID)
		if old != nil {
			if err := unindex(tx, old); err != nil {
				return nil, fmt.Errorf("remove index entries: %w", err)
			}
		}
		if err := index(tx, esc); err != nil {
			return nil, fmt.Errorf("add index entries: %w", err)
		}
		if err := aggregate(tx, old, esc); err != nil {
			return nil, fmt.Errorf("count aggregates: %w", err)
		}
		var err error
		if saved, err = json.Marshal(esc); err != nil {
			return nil, fmt.Errorf("encode projection: %w", err)
		}
		if err := tx.Bucket(bucketEscalations).Put([]byte(esc.ID), packProjection(saved)); err != nil {
			return nil, fmt.Errorf("save projection: %w", err)
		}
	}

	if err := enqueue(tx, c, esc, headSeq); err != nil {
		return nil, err
	}
	if err := finishInbox(tx, c.Inbox); err != nil {
		return nil, err
	}

	if c.Key != "" {
		ttl := d.keyTTL
		if c.KeyTTL > 0 {
			ttl = c.KeyTTL
		}
		if err := keys.Put([]byte(c.Key), timeKey(c.At.Add(ttl))); err != nil {
			return nil, fmt.Errorf("record key: %w", err)
		}
	}
	return saved, nil
}

// claim checks that esc may be saved and gives a new one its id. It
// returns the stored projection esc replaces, nil for a new one.
func (d *DB) claim(tx *bolt.Tx, esc *bot.Escalation, expect uint64) (*bot.Escalation, error) {
	byMR := tx.Bucket(bucketByMR)
	mk := mrKey(esc.Project, esc.MRIID)
	owner := string(byMR.Get([]byte(mk)))

	if esc.ID == "" {
		if expect != 0 {
			return nil, fmt.Errorf("a new escalation cannot be at version %d: %w", expect, bot.ErrConflict)
		}
		if owner != "" {
			return nil, fmt.Errorf("%s already has %s: %w", mk, owner, bot.ErrConflict)
		}
		meta := tx.Bucket(bucketMeta)
		n := max(getU64(meta, metaNextEscalation), 1)
		// Skip ids a caller chose itself (Commit accepts a new escalation
		// with an id).
		for tx.Bucket(bucketEscalations).Get(fmt.Appendf(nil, "ESC-%d", n)) != nil {
			n++
		}
		esc.ID = fmt.Sprintf("ESC-%d", n)
		return nil, putU64(meta, metaNextEscalation, n+1)
	}

	if strings.IndexByte(esc.ID, 0) >= 0 {
		return nil, fmt.Errorf("id %q contains a NUL byte", esc.ID)
	}
	old, err := getEscalation(tx, esc.ID)
	if err != nil {
		return nil, err
	}
	var have uint64
	if old != nil {
		have = old.Version
	}
	if have != expect {
		if old == nil {
			return nil, fmt.Errorf("%s does not exist, the decision expected version %d: %w", esc.ID, expect, bot.ErrConflict)
		}
		return nil, fmt.Errorf("%s is at version %d, the decision was made on version %d: %w", esc.ID, have, expect, bot.ErrConflict)
	}
	if owner != "" && owner != esc.ID {
		return nil, fmt.Errorf("%s already has %s: %w", mk, owner, bot.ErrConflict)
	}
	return old, nil
}
