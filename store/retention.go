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
		if err := decodeProjection(v, &e); err != nil {
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

// Schema 8 (retention.go): the bulky payloads of events, beside the chain.
var bucketPayloads = []byte("payloads")

// migrate8Payloads adds the payloads bucket. Events sealed before it keep
// their payloads inline, hashed, and are never compacted.
func migrate8Payloads(tx *bolt.Tx) error { return createBuckets(tx, bucketPayloads) }

// storedPayload is a payloads value: an event's bot.Bulk, or, once
// retention removed it, a tombstone naming the compaction.
type storedPayload struct {
	bot.Bulk
	Removed *bot.Compaction `json:"removed,omitempty"`
}

// sealEvent seals ev after prevHash as event seq: its bulky payload
// (bot.SplitBulk), if any, is stored under seq in payloads and replaced in
// the sealed record by its digest (Sealed), so the hash never covers it.
// It sets ev's Seq, PrevHash and Hash and returns the record to store.
func sealEvent(payloads *bolt.Bucket, ev *bot.Event, seq uint64, prevHash string) ([]byte, error) {
	ev.Seq, ev.PrevHash, ev.Compacted = seq, prevHash, nil
	stripped, bulk := bot.SplitBulk(*ev)
	stripped.Sealed = nil
	if bulk != nil {
		pj, err := json.Marshal(bulk)
		if err != nil {
			return nil, err
		}
		if err := payloads.Put(u64(seq), pj); err != nil {
			return nil, fmt.Errorf("store payload of event %d: %w", seq, err)
		}
		stripped.Sealed = &bot.Sealed{Payload: digest(pj)}
	}
	rec, err := seal(&stripped)
	if err != nil {
		return nil, err
	}
	ev.Hash = stripped.Hash
	return rec, nil
}

// decodeEvent reads the stored record of event seq, with its payload put
// back, or, when retention removed it, marked Compacted.
func decodeEvent(payloads *bolt.Bucket, seq uint64, rec []byte) (bot.Event, error) {
	var ev bot.Event
	rec, err := unpack(rec)
	if err != nil {
		return ev, fmt.Errorf("decode event %d: %w", seq, err)
	}
	if err := json.Unmarshal(rec, &ev); err != nil {
		return ev, fmt.Errorf("decode event %d: %w", seq, err)
	}
	if ev.Sealed == nil {
		return ev, nil
	}
	var p []byte
	if payloads != nil {
		p = payloads.Get(u64(seq))
	}
	if p == nil {
		return ev, fmt.Errorf("event %d: its payload is missing; run threatgate audit verify", seq)
	}
	var sp storedPayload
	if err := json.Unmarshal(p, &sp); err != nil {
		return ev, fmt.Errorf("event %d: decode payload: %w", seq, err)
	}
	if sp.Removed != nil {
		ev.Compacted = sp.Removed
		return ev, nil
	}
	return bot.JoinBulk(ev, &sp.Bulk), nil
}

// checkPayload checks the payload of a sealed event (ev, stored under seq
// with hash): present with the digest the event was sealed with, or
// removed by a compaction event after it, about the same escalation, that
// lists seq with this hash and digest. The event's own hash never covered
// the payload, so the chain stays whole either way; this binds the
// payload, or its removal, to it.
func checkPayload(events, payloads *bolt.Bucket, seq uint64, ev bot.Event, hash string) error {
	if ev.Sealed == nil {
		return nil
	}
	var p []byte
	if payloads != nil {
		p = payloads.Get(u64(seq))
	}
	if p == nil {
		return &ChainError{Seq: seq, Reason: "its payload (evidence lines or artifact text) is missing, and no compaction removed it"}
	}
	var sp storedPayload
	if err := json.Unmarshal(p, &sp); err != nil {
		return &ChainError{Seq: seq, Reason: fmt.Sprintf("its payload is not readable: %v", err)}
	}
	if sp.Removed == nil {
		if d := digest(p); d != ev.Sealed.Payload {
			return &ChainError{Seq: seq, Reason: fmt.Sprintf("its payload was changed: it digests to %s, the event was sealed with %s", hashPrefix(d), hashPrefix(ev.Sealed.Payload))}
		}
		return nil
	}
	by := sp.Removed.By
	if by <= seq {
		return &ChainError{Seq: seq, Reason: fmt.Sprintf("its payload says it was removed by event %d, which is not after it", by)}
	}
	rec := events.Get(u64(by))
	if rec == nil {
		return &ChainError{Seq: seq, Reason: fmt.Sprintf("its payload says it was removed by event %d, which is missing", by)}
	}
	var m bot.Event
	if rec, err := unpack(rec); err != nil || json.Unmarshal(rec, &m) != nil || m.Seq != by {
		return &ChainError{Seq: seq, Reason: fmt.Sprintf("its payload says it was removed by event %d, which cannot be read", by)}
	}
	if m.Kind != bot.EventCompacted || m.Escalation != ev.Escalation {
		return &ChainError{Seq: seq, Reason: fmt.Sprintf("its payload says it was removed by event %d, which is not a compaction of %s", by, ev.Escalation)}
	}
	for _, r := range m.Data.Records {
		if r.Seq == seq {
			if r.Hash != hash || r.Digest != ev.Sealed.Payload {
				return &ChainError{Seq: seq, Reason: fmt.Sprintf("compaction event %d lists it with another hash or payload digest", by)}
			}
			return nil
		}
	}
	return &ChainError{Seq: seq, Reason: fmt.Sprintf("its payload says it was removed by event %d, which does not list it", by)}
}

// Compact removes the payloads (bot.SplitBulk) of escalation id's events
// in one transaction, leaving in their place a tombstone naming ev, an
// bot.EventCompacted event it appends, which lists each one (seq, hash,
// payload digest). The escalation must be at version expect (else
// bot.ErrConflict). It returns how many payloads it removed; with none it
// appends nothing and only takes the escalation out of the retention
// index until its next event. Records are never rewritten: every hash
// still recomputes from the stored bytes. Events sealed before payloads
// were kept beside the chain (schema 8) hold theirs inline and keep it.
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
		meta, events, payloads := tx.Bucket(bucketMeta), tx.Bucket(bucketEvents), tx.Bucket(bucketPayloads)
		by := getU64(meta, metaHeadSeq) + 1
		tomb, err := json.Marshal(storedPayload{Removed: &bot.Compaction{By: by, At: ev.At}})
		if err != nil {
			return err
		}
		var removed []uint64
		prefix := append([]byte(id), 0)
		c := tx.Bucket(bucketEventsByEsc).Cursor()
		for k, _ := c.Seek(prefix); k != nil && bytes.HasPrefix(k, prefix); k, _ = c.Next() {
			seq := binary.BigEndian.Uint64(k[len(prefix):])
			rec := events.Get(k[len(prefix):])
			if rec == nil {
				return fmt.Errorf("index events_by_esc names event %d, which is missing", seq)
			}
			stored, _, hash, err := openRecord(seq, rec)
			if err != nil {
				return err
			}
			if stored.Escalation != id {
				return fmt.Errorf("index events_by_esc files event %d of %q under %s; run threatgate audit verify", seq, stored.Escalation, id)
			}
			if stored.Sealed == nil {
				continue
			}
			p := payloads.Get(u64(seq))
			if p == nil {
				return fmt.Errorf("event %d: its payload is missing; run threatgate audit verify", seq)
			}
			var sp storedPayload
			if err := json.Unmarshal(p, &sp); err != nil {
				return fmt.Errorf("event %d: decode payload: %w", seq, err)
			}
			if sp.Removed != nil {
				continue
			}
			if digest(p) != stored.Sealed.Payload {
				return fmt.Errorf("event %d: its payload was changed; run threatgate audit verify", seq)
			}
			ev.Data.Records = append(ev.Data.Records, bot.CompactedRecord{Seq: seq, Hash: hash, Digest: stored.Sealed.Payload})
			removed = append(removed, seq)
		}
		esc := old.Clone()
		if len(removed) == 0 {
			esc.CompactedVersion = esc.Version
		} else {
			if err := appendEvent(tx, &ev); err != nil {
				return err
			}
			if ev.Seq != by {
				return fmt.Errorf("compaction event got seq %d, its tombstones name %d", ev.Seq, by)
			}
			for _, seq := range removed {
				if err := payloads.Put(u64(seq), tomb); err != nil {
					return fmt.Errorf("remove payload of event %d: %w", seq, err)
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
		if err := aggregate(tx, old, esc); err != nil {
			return fmt.Errorf("count aggregates: %w", err)
		}
		saved, err := json.Marshal(esc)
		if err != nil {
			return fmt.Errorf("encode projection: %w", err)
		}
		n = len(removed)
		return tx.Bucket(bucketEscalations).Put([]byte(id), packProjection(saved))
	})
	if err != nil {
		return 0, fmt.Errorf("compact %s: %w", id, err)
	}
	return n, nil
}

// appendEvent seals ev after the chain head, stores it, files it under its
// escalation and moves the head.
func appendEvent(tx *bolt.Tx, ev *bot.Event) error {
	fillAppendOnly(tx)
	meta := tx.Bucket(bucketMeta)
	headSeq := getU64(meta, metaHeadSeq)
	prevHash := string(meta.Get([]byte(metaHeadHash)))
	if headSeq == 0 {
		prevHash = genesisHash
	}
	rec, err := sealEvent(tx.Bucket(bucketPayloads), ev, headSeq+1, prevHash)
	if err != nil {
		return fmt.Errorf("encode event %s: %w", ev.Kind, err)
	}
	if err := tx.Bucket(bucketEvents).Put(u64(ev.Seq), packEvent(rec)); err != nil {
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
