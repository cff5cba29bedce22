package store

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"strings"

	bolt "go.etcd.io/bbolt"

	"github.com/threatgate/threatgate/bot"
)

// genesisHash is the PrevHash of the first event.
var genesisHash = strings.Repeat("0", sha256.Size*2)

// hashMember is what seal inserts before the closing brace of an event's
// canonical JSON: `,"hash":"` + 64 hex digits + `"`.
const (
	hashMemberStart = `,"hash":"`
	hashMemberLen   = len(hashMemberStart) + sha256.Size*2 + 1
)

// ChainError is returned by Verify and VerifyFrom for the first event
// whose link in the audit chain is broken.
type ChainError struct {
	Seq    uint64
	Reason string
}

func (e *ChainError) Error() string { return fmt.Sprintf("event %d: %s", e.Seq, e.Reason) }

// seal sets ev.Hash from ev.PrevHash and the rest of ev, and returns the
// record to store: ev's canonical JSON with the hash member appended.
func seal(ev *bot.Event) ([]byte, error) {
	ev.Hash = ""
	canon, err := json.Marshal(ev)
	if err != nil {
		return nil, err
	}
	ev.Hash = chainHash(ev.PrevHash, canon)
	rec := make([]byte, 0, len(canon)+hashMemberLen)
	rec = append(rec, canon[:len(canon)-1]...)
	rec = append(rec, hashMemberStart...)
	rec = append(rec, ev.Hash...)
	rec = append(rec, `"}`...)
	return rec, nil
}

// unseal splits a stored record into the canonical JSON that was hashed
// and the hash it carries; ok is false when the record does not end with a
// hash member.
func unseal(rec []byte) (canon []byte, hash string, ok bool) {
	if len(rec) < hashMemberLen+2 || !bytes.HasSuffix(rec, []byte(`"}`)) {
		return nil, "", false
	}
	member := rec[len(rec)-1-hashMemberLen : len(rec)-1]
	if !bytes.HasPrefix(member, []byte(hashMemberStart)) {
		return nil, "", false
	}
	hash = string(member[len(hashMemberStart) : len(member)-1])
	if _, err := hex.DecodeString(hash); err != nil {
		return nil, "", false
	}
	canon = append(bytes.Clone(rec[:len(rec)-1-hashMemberLen]), '}')
	return canon, hash, true
}

// chainHash is the hex SHA-256 of prev (as text) followed by canon.
func chainHash(prev string, canon []byte) string {
	h := sha256.New()
	h.Write([]byte(prev))
	h.Write(canon)
	return hex.EncodeToString(h.Sum(nil))
}

// escSeqKey is the events_by_esc key of an escalation's event.
func escSeqKey(id string, seq uint64) []byte {
	k := make([]byte, 0, len(id)+9)
	k = append(k, id...)
	k = append(k, 0)
	return binary.BigEndian.AppendUint64(k, seq)
}

// Events returns an escalation's events in order, with their chain
// fields, or bot.ErrNotFound when there is no such escalation.
func (d *DB) Events(ctx context.Context, escalationID string) ([]bot.Event, error) {
	if err := ctx.Err(); err != nil {
		return nil, fmt.Errorf("events of %s: %w", escalationID, err)
	}
	var out []bot.Event
	err := d.bolt.View(func(tx *bolt.Tx) error {
		events := tx.Bucket(bucketEvents)
		prefix := append([]byte(escalationID), 0)
		c := tx.Bucket(bucketEventsByEsc).Cursor()
		for k, _ := c.Seek(prefix); k != nil && bytes.HasPrefix(k, prefix); k, _ = c.Next() {
			seq := k[len(prefix):]
			rec := events.Get(seq)
			if rec == nil {
				return fmt.Errorf("index events_by_esc names event %d, which is missing", binary.BigEndian.Uint64(seq))
			}
			ev, err := decodeEvent(tx.Bucket(bucketPayloads), binary.BigEndian.Uint64(seq), rec)
			if err != nil {
				return err
			}
			if ev.Escalation != escalationID {
				// The index is not under the hash chain: never let it
				// put another escalation's event in this one's record.
				return fmt.Errorf("index events_by_esc files event %d of %q under %s; run threatgate audit verify", ev.Seq, ev.Escalation, escalationID)
			}
			out = append(out, ev)
		}
		if len(out) == 0 && tx.Bucket(bucketEscalations).Get([]byte(escalationID)) == nil {
			return bot.ErrNotFound
		}
		return nil
	})
	if errors.Is(err, bot.ErrNotFound) {
		return nil, err
	}
	if err != nil {
		return nil, fmt.Errorf("events of %s: %w", escalationID, err)
	}
	return out, nil
}

// AllEvents calls fn for every event of the log in seq order, inside one
// read transaction, and stops at fn's first error, which it returns as
// is. fn must not write to the store: a write waiting on the read
// transaction can deadlock.
func (d *DB) AllEvents(ctx context.Context, fn func(bot.Event) error) error {
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("read audit log: %w", err)
	}
	var fnErr error
	err := d.bolt.View(func(tx *bolt.Tx) error {
		c := tx.Bucket(bucketEvents).Cursor()
		for k, v := c.First(); k != nil; k, v = c.Next() {
			seq := binary.BigEndian.Uint64(k)
			if seq%1024 == 0 {
				if err := ctx.Err(); err != nil {
					return err
				}
			}
			ev, err := decodeEvent(tx.Bucket(bucketPayloads), seq, v)
			if err != nil {
				return err
			}
			if fnErr = fn(ev); fnErr != nil {
				return fnErr
			}
		}
		return nil
	})
	if fnErr != nil {
		return fnErr
	}
	if err != nil {
		return fmt.Errorf("read audit log: %w", err)
	}
	return nil
}

// Verify walks the whole audit chain, recomputing every hash from the
// stored bytes, and checks the chain head recorded in meta. It returns how
// many events it checked and, for the first broken link, a *ChainError
// (wrapped; use errors.As). Its cost grows with the whole log; VerifyFrom
// (checkpoint.go) checks only what was appended since its last call. Verify
// neither reads nor moves VerifyFrom's checkpoint.
func (d *DB) Verify(ctx context.Context) (int, error) {
	if err := ctx.Err(); err != nil {
		return 0, fmt.Errorf("verify audit chain: %w", err)
	}
	n := 0
	err := d.bolt.View(func(tx *bolt.Tx) error {
		prevSeq, prevHash := uint64(0), genesisHash
		c := tx.Bucket(bucketEvents).Cursor()
		for k, v := c.First(); k != nil; k, v = c.Next() {
			if len(k) != 8 {
				return &ChainError{Seq: prevSeq + 1, Reason: fmt.Sprintf("key %x is not a sequence number", k)}
			}
			seq := binary.BigEndian.Uint64(k)
			if seq%1024 == 0 {
				if err := ctx.Err(); err != nil {
					return err
				}
			}
			hash, err := checkLink(tx.Bucket(bucketEvents), tx.Bucket(bucketPayloads), seq, v, prevSeq, prevHash)
			if err != nil {
				return err
			}
			prevSeq, prevHash = seq, hash
			n++
		}
		return checkHead(tx.Bucket(bucketMeta), prevSeq, prevHash)
	})
	if err != nil {
		return n, fmt.Errorf("verify audit chain: %w", err)
	}
	return n, nil
}

// checkHead checks that the chain head recorded in meta is the last event
// read, lastSeq with hash lastHash.
func checkHead(meta *bolt.Bucket, lastSeq uint64, lastHash string) error {
	headSeq, headHash := getU64(meta, metaHeadSeq), string(meta.Get([]byte(metaHeadHash)))
	switch {
	case headSeq > lastSeq:
		return &ChainError{Seq: lastSeq + 1, Reason: fmt.Sprintf("missing: the log ends at event %d but the chain head is event %d", lastSeq, headSeq)}
	case headSeq < lastSeq:
		return &ChainError{Seq: headSeq + 1, Reason: fmt.Sprintf("is past the chain head, event %d", headSeq)}
	case lastSeq > 0 && headHash != lastHash:
		return &ChainError{Seq: lastSeq, Reason: "hash does not match the chain head"}
	}
	return nil
}

// checkLink checks one stored event against the one before it and
// returns the hash it carries.
func checkLink(events, payloads *bolt.Bucket, seq uint64, rec []byte, prevSeq uint64, prevHash string) (string, error) {
	if seq != prevSeq+1 {
		return "", &ChainError{Seq: seq, Reason: fmt.Sprintf("follows event %d; event %d is missing", prevSeq, prevSeq+1)}
	}
	ev, canon, hash, err := openRecord(seq, rec)
	if err != nil {
		return "", err
	}
	if ev.PrevHash != prevHash {
		if prevSeq == 0 {
			return "", &ChainError{Seq: seq, Reason: "prev_hash is not the start of the chain"}
		}
		return "", &ChainError{Seq: seq, Reason: fmt.Sprintf("prev_hash does not match event %d", prevSeq)}
	}
	if chainHash(ev.PrevHash, canon) != hash {
		return "", &ChainError{Seq: seq, Reason: "hash does not match its content"}
	}
	return hash, checkPayload(events, payloads, seq, ev, hash)
}

// openRecord splits the stored record of event seq into the event, the
// canonical JSON that was hashed and the hash it carries, and checks that
// it is an event under its own seq.
func openRecord(seq uint64, rec []byte) (ev bot.Event, canon []byte, hash string, err error) {
	if rec, err = unpack(rec); err != nil {
		return ev, nil, "", &ChainError{Seq: seq, Reason: fmt.Sprintf("record cannot be read: %v", err)}
	}
	canon, hash, ok := unseal(rec)
	if !ok {
		return ev, nil, "", &ChainError{Seq: seq, Reason: "record does not end with its hash"}
	}
	if err := json.Unmarshal(rec, &ev); err != nil {
		return ev, nil, "", &ChainError{Seq: seq, Reason: fmt.Sprintf("record is not an event: %v", err)}
	}
	if ev.Seq != seq {
		return ev, nil, "", &ChainError{Seq: seq, Reason: fmt.Sprintf("record says seq %d", ev.Seq)}
	}
	return ev, canon, hash, nil
}
