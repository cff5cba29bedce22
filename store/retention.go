package store

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"time"

	bolt "go.etcd.io/bbolt"

	"github.com/threatgate/threatgate/bot"
)

// Schema 7 (retention.go): closed escalations by their last activity,
// for retention (retention.closed_days).
var bucketRetentionDue = []byte("retention_due")

// retentionKey is the retention_due key of e: the time key of its last
// activity and its id; nil when e is not in the index (not closed, or
// compacted since its last event).
func retentionKey(e *bot.Escalation) []byte {
	if !e.Retainable() || e.CompactedVersion == e.Version {
		return nil
	}
	return append(timeKey(e.UpdatedAt), e.ID...)
}

// migrate7Retention adds the retention index and files every closed
// escalation in it (one walk of the escalations, once).
func migrate7Retention(tx *bolt.Tx) error {
	if err := createBuckets(tx, bucketRetentionDue); err != nil {
		return err
	}
	due := tx.Bucket(bucketRetentionDue)
	return tx.Bucket(bucketEscalations).ForEach(func(k, v []byte) error {
		var e bot.Escalation
		if err := json.Unmarshal(v, &e); err != nil {
			return fmt.Errorf("escalation %s: %w", k, err)
		}
		if rk := retentionKey(&e); rk != nil {
			return due.Put(rk, nil)
		}
		return nil
	})
}

// RetentionDue returns the ids of the closed escalations, with events
// since their last compaction, whose last activity was at or before
// before, oldest first, at most limit (<= 0: all). It reads only those
// (the retention_due index).
func (d *DB) RetentionDue(ctx context.Context, before time.Time, limit int) ([]string, error) {
	return d.dueIDs(ctx, bucketRetentionDue, "retention", before, limit)
}

// Compact compacts the events of escalation id that carry bulky payloads
// (bot.CompactEvent) in one transaction, and appends ev, an
// bot.EventCompacted event, listing them. The escalation must be at
// version expect (else bot.ErrConflict). It returns how many records it
// compacted; with none it appends nothing and only takes the escalation
// out of the retention index until its next event.
//
// A compacted record keeps its seq, its prev_hash and the hash it was
// sealed with; its other members are what bot.CompactEvent left, plus a
// "compacted" member naming ev's seq and time. ev lists, for each, the
// seq, that hash and the SHA-256 of the compacted record's canonical
// JSON (checkCompacted): ev is under the chain like any event, so the
// compacted records cannot be changed, nor a record marked compacted,
// without breaking it.
func (d *DB) Compact(ctx context.Context, id string, expect uint64, ev bot.Event) (int, error) {
	if err := ctx.Err(); err != nil {
		return 0, fmt.Errorf("compact %s: %w", id, err)
	}
	if ev.Kind != bot.EventCompacted || ev.Escalation != id {
		return 0, fmt.Errorf("compact %s: want a %s event of %s, got %s of %q", id, bot.EventCompacted, id, ev.Kind, ev.Escalation)
	}
	ev.At = ev.At.UTC()
	n := 0
	err := d.bolt.Update(func(tx *bolt.Tx) error {
		old, err := getEscalation(tx, id)
		if err != nil {
			return err
		}
		if old == nil {
			return fmt.Errorf("%s: %w", id, bot.ErrNotFound)
		}
		if old.Version != expect {
			return fmt.Errorf("%s is at version %d, compaction was decided on version %d: %w", id, old.Version, expect, bot.ErrConflict)
		}
		meta, events := tx.Bucket(bucketMeta), tx.Bucket(bucketEvents)
		headSeq := getU64(meta, metaHeadSeq)
		by := headSeq + 1
		type rewrite struct {
			seq uint64
			rec []byte
		}
		var todo []rewrite
		prefix := append([]byte(id), 0)
		c := tx.Bucket(bucketEventsByEsc).Cursor()
		for k, _ := c.Seek(prefix); k != nil && bytes.HasPrefix(k, prefix); k, _ = c.Next() {
			seq := binary.BigEndian.Uint64(k[len(prefix):])
			rec := events.Get(k[len(prefix):])
			if rec == nil {
				return fmt.Errorf("index events_by_esc names event %d, which is missing", seq)
			}
			orig, _, hash, err := openRecord(seq, rec)
			if err != nil {
				return err
			}
			if orig.Escalation != id {
				return fmt.Errorf("index events_by_esc files event %d of %q under %s; run threatgate audit verify", seq, orig.Escalation, id)
			}
			if orig.Compacted != nil {
				continue
			}
			small, changed := bot.CompactEvent(orig)
			if !changed {
				continue
			}
			small.Compacted = &bot.Compaction{By: by, At: ev.At}
			small.Hash = ""
			canon, err := json.Marshal(small)
			if err != nil {
				return fmt.Errorf("encode compacted event %d: %w", seq, err)
			}
			ev.Data.Records = append(ev.Data.Records, bot.CompactedRecord{Seq: seq, Hash: hash, Digest: digest(canon)})
			todo = append(todo, rewrite{seq: seq, rec: withHash(canon, hash)})
		}
		esc := old.Clone()
		if len(todo) == 0 {
			esc.CompactedVersion = esc.Version
		} else {
			if err := appendEvent(tx, &ev); err != nil {
				return err
			}
			for _, r := range todo {
				if err := events.Put(u64(r.seq), r.rec); err != nil {
					return fmt.Errorf("rewrite event %d: %w", r.seq, err)
				}
			}
			esc = bot.ApplyCompaction(old, ev)
		}
		if err := unindex(tx, old); err != nil {
			return fmt.Errorf("remove index entries: %w", err)
		}
		if err := index(tx, esc); err != nil {
			return fmt.Errorf("add index entries: %w", err)
		}
		saved, err := json.Marshal(esc)
		if err != nil {
			return fmt.Errorf("encode projection: %w", err)
		}
		n = len(todo)
		return tx.Bucket(bucketEscalations).Put([]byte(id), saved)
	})
	if err != nil {
		return 0, fmt.Errorf("compact %s: %w", id, err)
	}
	return n, nil
}

// appendEvent seals ev after the chain head, stores it, files it under its
// escalation and moves the head.
func appendEvent(tx *bolt.Tx, ev *bot.Event) error {
	meta := tx.Bucket(bucketMeta)
	headSeq := getU64(meta, metaHeadSeq)
	prevHash := string(meta.Get([]byte(metaHeadHash)))
	if headSeq == 0 {
		prevHash = genesisHash
	}
	ev.Seq, ev.PrevHash = headSeq+1, prevHash
	rec, err := seal(ev)
	if err != nil {
		return fmt.Errorf("encode event %s: %w", ev.Kind, err)
	}
	if err := tx.Bucket(bucketEvents).Put(u64(ev.Seq), rec); err != nil {
		return fmt.Errorf("append event %d: %w", ev.Seq, err)
	}
	if ev.Escalation != "" {
		if err := tx.Bucket(bucketEventsByEsc).Put(escSeqKey(ev.Escalation, ev.Seq), nil); err != nil {
			return fmt.Errorf("index event %d: %w", ev.Seq, err)
		}
	}
	if err := putU64(meta, metaHeadSeq, ev.Seq); err != nil {
		return err
	}
	return meta.Put([]byte(metaHeadHash), []byte(ev.Hash))
}

// withHash is a record: canon with the hash member appended (as seal
// does).
func withHash(canon []byte, hash string) []byte {
	rec := make([]byte, 0, len(canon)+hashMemberLen)
	rec = append(rec, canon[:len(canon)-1]...)
	rec = append(rec, hashMemberStart...)
	rec = append(rec, hash...)
	return append(rec, `"}`...)
}

// digest is the hex SHA-256 of b.
func digest(b []byte) string {
	sum := sha256.Sum256(b)
	return hex.EncodeToString(sum[:])
}

// checkCompacted checks a compacted record (ev, stored under seq as canon
// plus hash): the EventCompacted event it names must come after it, be
// about the same escalation, at the same time, and list seq with this
// hash and the digest of canon. That event is under the chain (its own
// hash is checked where the walk reaches it), so this binds what remains
// of the record, and the hash it keeps, to the chain.
func checkCompacted(events *bolt.Bucket, seq uint64, ev bot.Event, canon []byte, hash string) error {
	m := ev.Compacted
	if m.By <= seq {
		return &ChainError{Seq: seq, Reason: fmt.Sprintf("says it was compacted by event %d, which is not after it", m.By)}
	}
	rec := events.Get(u64(m.By))
	if rec == nil {
		return &ChainError{Seq: seq, Reason: fmt.Sprintf("says it was compacted by event %d, which is missing", m.By)}
	}
	by, _, _, err := openRecord(m.By, rec)
	if err != nil {
		return &ChainError{Seq: seq, Reason: fmt.Sprintf("says it was compacted by event %d, which cannot be read: %v", m.By, err)}
	}
	if by.Kind != bot.EventCompacted || by.Escalation != ev.Escalation || !by.At.Equal(m.At) {
		return &ChainError{Seq: seq, Reason: fmt.Sprintf("says it was compacted by event %d, which is not a compaction of %s at %s", m.By, ev.Escalation, m.At.Format(time.RFC3339))}
	}
	for _, r := range by.Data.Records {
		if r.Seq != seq {
			continue
		}
		if r.Hash != hash {
			return &ChainError{Seq: seq, Reason: fmt.Sprintf("hash mismatch: compacted, it carries %s, but event %d recorded %s", hashPrefix(hash), m.By, hashPrefix(r.Hash))}
		}
		if d := digest(canon); d != r.Digest {
			return &ChainError{Seq: seq, Reason: fmt.Sprintf("compacted record was changed: it digests to %s, event %d recorded %s", hashPrefix(d), m.By, hashPrefix(r.Digest))}
		}
		return nil
	}
	return &ChainError{Seq: seq, Reason: fmt.Sprintf("says it was compacted by event %d, which does not list it", m.By)}
}
