package store

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"

	bolt "go.etcd.io/bbolt"
)

// Keys in the meta bucket for the verified checkpoint of the audit chain:
// the last event VerifyFrom found linked to everything before it, and
// that event's hash. Both are absent until the first VerifyFrom that
// finds events, which then starts from the beginning (seq 0, the genesis
// hash), so an older file needs no migration.
const (
	metaVerifiedSeq  = "verified_seq"
	metaVerifiedHash = "verified_hash"
)

// Log attribute keys of the checkpoint (db.go has the others).
const (
	logCheckpointSeq = "checkpoint_seq"
	logCheckpointErr = "err"
)

// errCheckpointKept rolls back the transaction that would move the
// checkpoint when another call has moved it at least as far.
var errCheckpointKept = errors.New("checkpoint already at or past this event")

// VerifyFrom checks the audit chain from the verified checkpoint to the
// head and, when every event after the checkpoint is good, moves the
// checkpoint to the head. Its cost grows with the events appended since
// the checkpoint last moved, not with the whole log.
//
// It checks, as Verify does for the whole log: every event after the
// checkpoint (its seq following the one before, its hash recomputed from
// the stored bytes, its prev_hash naming the event before, the first one's
// naming the checkpoint's hash) and the chain head recorded in meta. It
// also re-reads the checkpoint's own event, whose stored hash must still
// be the one verified and match its content. An event after the
// checkpoint is checked on every call until it is found good: a broken
// one is reported again and again, and the checkpoint does not move past
// it (nor past anything else after it).
//
// What it cannot see: a change to an event before the checkpoint (other
// than the checkpoint's own event) that leaves the checkpoint's event as
// it was, and a rewrite of the checkpoint itself, which lives in the same
// file. Only Verify, the full walk, finds those.
//
// It returns the last event the chain is verified up to (the new
// checkpoint; on an error, the checkpoint it started from) and how many
// events after the checkpoint this call checked and found good. For the
// first broken link the error wraps a *ChainError (use errors.As). It is
// safe to call concurrently with itself and with Commit: the checkpoint
// only moves forward. A failure to save the moved checkpoint is logged
// and not returned (the chain was verified; the next call checks the same
// events again).
func (d *DB) VerifyFrom(ctx context.Context) (verified uint64, checked int, err error) {
	if err := ctx.Err(); err != nil {
		return 0, 0, fmt.Errorf("verify audit chain: %w", err)
	}
	var from, last uint64
	var lastHash string
	err = d.bolt.View(func(tx *bolt.Tx) error {
		meta, events := tx.Bucket(bucketMeta), tx.Bucket(bucketEvents)
		var fromHash string
		var err error
		from, fromHash, err = readCheckpoint(meta, events)
		if err != nil {
			return err
		}
		last, lastHash = from, fromHash
		c := events.Cursor()
		for k, v := c.Seek(u64(from + 1)); k != nil; k, v = c.Next() {
			if len(k) != 8 {
				return &ChainError{Seq: last + 1, Reason: fmt.Sprintf("key %x is not a sequence number", k)}
			}
			seq := binary.BigEndian.Uint64(k)
			if seq%1024 == 0 {
				if err := ctx.Err(); err != nil {
					return err
				}
			}
			hash, err := checkLink(events, tx.Bucket(bucketPayloads), seq, v, last, lastHash)
			if err != nil {
				return err
			}
			last, lastHash = seq, hash
			checked++
		}
		return checkHead(meta, last, lastHash)
	})
	if err != nil {
		return from, checked, fmt.Errorf("verify audit chain: %w", err)
	}
	if last == from {
		return last, checked, nil
	}
	err = d.bolt.Update(func(tx *bolt.Tx) error {
		meta := tx.Bucket(bucketMeta)
		// Another call may have moved it meanwhile, from the same start or
		// a later one: every event up to last is verified either way, and
		// events are never rewritten through the store, so only a lower
		// checkpoint is replaced.
		if getU64(meta, metaVerifiedSeq) >= last {
			return errCheckpointKept
		}
		if err := putU64(meta, metaVerifiedSeq, last); err != nil {
			return err
		}
		return meta.Put([]byte(metaVerifiedHash), []byte(lastHash))
	})
	if err != nil && !errors.Is(err, errCheckpointKept) {
		d.log.Warn("verified checkpoint not saved; the next check reads these events again", logCheckpointSeq, last, logCheckpointErr, err)
	}
	return last, checked, nil
}

// readCheckpoint returns the verified checkpoint, seq 0 and the genesis
// hash when there is none, after checking that the checkpoint's event is
// still the one verified.
func readCheckpoint(meta, events *bolt.Bucket) (uint64, string, error) {
	v := meta.Get([]byte(metaVerifiedSeq))
	if v == nil {
		return 0, genesisHash, nil
	}
	if len(v) != 8 {
		return 0, "", &ChainError{Seq: 0, Reason: fmt.Sprintf("the verified checkpoint %x is not a sequence number", v)}
	}
	seq, hash := binary.BigEndian.Uint64(v), string(meta.Get([]byte(metaVerifiedHash)))
	if seq == 0 {
		return 0, genesisHash, nil
	}
	rec := events.Get(u64(seq))
	if rec == nil {
		return 0, "", &ChainError{Seq: seq, Reason: "missing: it is the verified checkpoint"}
	}
	ev, canon, stored, err := openRecord(seq, rec)
	if err != nil {
		return 0, "", err
	}
	if stored != hash {
		return 0, "", &ChainError{Seq: seq, Reason: "hash is not the one verified at the checkpoint"}
	}
	if chainHash(ev.PrevHash, canon) != stored {
		return 0, "", &ChainError{Seq: seq, Reason: "hash does not match its content"}
	}
	return seq, hash, nil
}
