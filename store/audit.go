package store

import (
	"cmp"
	"context"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"time"

	bolt "go.etcd.io/bbolt"

	"github.com/threatgate/threatgate/bot"
)

// Anchor is a point of the audit chain kept outside the store: the hash
// an event had when someone saw it (a digest posted in chat, an answer of
// GET /api/audit/head, a line an auditor wrote down). A log rewritten
// from some event on, however consistently, no longer holds the anchors
// at or after that event.
type Anchor struct {
	// Seq is the event the hash was seen on; 0 when it is not known
	// (a head seen earlier): then some event must carry Hash.
	Seq  uint64
	Hash string // 64 lowercase hex digits
	// Source says where the anchor was read ("anchors.txt:3",
	// "--expect-head"), for messages.
	Source string
}

// Audited is what Audit found in a chain whose links all hold.
type Audited struct {
	Events   int    // events checked: the whole log
	HeadSeq  uint64 // the last event, 0 for an empty log
	HeadHash string // its hash, "" for an empty log
	// Held are the anchors the chain still holds, in the order given,
	// each with the seq of the event that carries it.
	Held []Anchor
	// Compactions are the retention compactions on the chain, in order:
	// each compacted record was checked against the one that lists it
	// (its place in the chain, what remains of it), but its removed
	// payload cannot be.
	Compactions []Compaction
}

// Compaction is one EventCompacted event: at Seq, compacting Records of
// Escalation at At.
type Compaction struct {
	Seq        uint64
	Escalation string
	At         time.Time
	Records    []uint64
}

// AnchorError is returned by Audit for an anchor that the chain no longer
// holds: the log was rewritten from some event up to Anchor.Seq on, or
// cut short, or it is another log.
type AnchorError struct {
	Anchor Anchor
	// Got is the hash event Anchor.Seq has now; "" when the log has no
	// such event (or Anchor.Seq is 0 and no event carries the hash).
	Got string
	// HeadSeq is the last event of the log.
	HeadSeq uint64
	// Since is the latest anchor before Anchor.Seq that still holds: the
	// rewrite is after it. 0 when none does.
	Since uint64
}

func (e *AnchorError) Error() string {
	a := e.Anchor
	where := a.Source
	if where == "" {
		where = "anchor"
	}
	switch {
	case a.Seq == 0:
		return fmt.Sprintf("%s: no event hashes to %s: the log was rewritten after that head was seen, or it is another log", where, hashPrefix(a.Hash))
	case e.Got == "":
		return fmt.Sprintf("%s: the anchor names event %d, but the log ends at event %d: events were removed from its end", where, a.Seq, e.HeadSeq)
	}
	span := fmt.Sprintf("at or before event %d", a.Seq)
	if e.Since > 0 {
		span = fmt.Sprintf("after event %d (whose anchor holds) and %s", e.Since, span)
	}
	return fmt.Sprintf("%s: event %d hashes to %s, not %s as anchored: the log was rewritten %s", where, a.Seq, hashPrefix(e.Got), hashPrefix(a.Hash), span)
}

// Audit walks the whole audit chain, as Verify does, and says precisely
// what is wrong with the first record that was changed, removed,
// inserted or reordered: the error wraps a *ChainError whose Reason starts
// with "hash mismatch" (the record's content no longer hashes to the hash
// it carries), "broken prev link" (its prev_hash is not the hash of the
// event before it), "seq gap" (events are missing) or "seq out of order"
// (a record is stored under another event's seq), and names the hashes
// expected and found. It also checks the chain head recorded in meta.
//
// A rewrite of the log from some event on, with every hash recomputed,
// leaves a chain whose links all hold; only a record kept outside the
// store shows it. When the links hold, Audit checks every anchor: the
// event of its Seq must carry its Hash, and an anchor without a seq must
// be the hash of some event. Each anchor that does not hold is an
// *AnchorError (joined; use errors.As, or errors.Join's Unwrap for all).
//
// Its cost grows with the whole log (one read transaction); it writes
// nothing and may run with writers.
func (d *DB) Audit(ctx context.Context, anchors []Anchor) (Audited, error) {
	var res Audited
	if err := ctx.Err(); err != nil {
		return res, fmt.Errorf("audit chain: %w", err)
	}
	bySeq := map[uint64][]int{}
	byHash := map[string][]int{}
	found := make([]uint64, len(anchors)) // the seq holding each anchor
	for i, a := range anchors {
		if a.Seq == 0 {
			byHash[a.Hash] = append(byHash[a.Hash], i)
		} else {
			bySeq[a.Seq] = append(bySeq[a.Seq], i)
		}
	}
	got := map[uint64]string{} // the hashes of the anchored events
	err := d.bolt.View(func(tx *bolt.Tx) error {
		prevSeq, prevHash := uint64(0), genesisHash
		byEsc := tx.Bucket(bucketEventsByEsc)
		indexed := 0
		incidents := tx.Bucket(bucketIncidents) // nil in a copy older than schema 10, read as it is
		indexedIncidents := 0
		c := tx.Bucket(bucketEvents).Cursor()
		for k, v := c.First(); k != nil; k, v = c.Next() {
			if len(k) != 8 {
				return &ChainError{Seq: prevSeq + 1, Reason: fmt.Sprintf("seq out of order: a record was inserted under key %x, which is not a sequence number", k)}
			}
			seq := binary.BigEndian.Uint64(k)
			if seq%1024 == 0 {
				if err := ctx.Err(); err != nil {
					return err
				}
			}
			hash, ev, err := auditLink(tx.Bucket(bucketEvents), tx.Bucket(bucketPayloads), seq, v, prevSeq, prevHash)
			if err != nil {
				return err
			}
			if incidents != nil && (ev.Kind == bot.EventIncident || ev.Kind == bot.EventIncidentFixed) {
				// The incident index is not under the chain either.
				if incidents.Get(incidentKey(ev.Data.Incident, seq)) == nil {
					return &ChainError{Seq: seq, Reason: fmt.Sprintf("index incident_events: event %d of %s is not filed under it (the incident's record would miss it)", seq, ev.Data.Incident)}
				}
				indexedIncidents++
			}
			if ev.Kind == bot.EventCompacted {
				cp := Compaction{Seq: seq, Escalation: ev.Escalation, At: ev.At}
				for _, r := range ev.Data.Records {
					cp.Records = append(cp.Records, r.Seq)
				}
				res.Compactions = append(res.Compactions, cp)
			}
			// The per-escalation index is not under the chain: every
			// event of an escalation must be filed under it, and nothing
			// else (bundles read through it).
			var owner struct {
				Escalation string `json:"escalation"`
			}
			if js, err := unpack(v); err == nil && json.Unmarshal(js, &owner) == nil && owner.Escalation != "" {
				if byEsc.Get(escSeqKey(owner.Escalation, seq)) == nil {
					return &ChainError{Seq: seq, Reason: fmt.Sprintf("index events_by_esc: event %d of %s is not filed under it (an escalation's record would miss it)", seq, owner.Escalation)}
				}
				indexed++
			}
			if _, ok := bySeq[seq]; ok {
				got[seq] = hash
			}
			for _, i := range byHash[hash] {
				found[i] = seq
			}
			prevSeq, prevHash = seq, hash
			res.Events++
		}
		if err := auditHead(tx, prevSeq, prevHash); err != nil {
			return err
		}
		if n := byEsc.Stats().KeyN; n != indexed {
			return &ChainError{Seq: prevSeq, Reason: fmt.Sprintf("index events_by_esc has %d entries for %d events of escalations: an entry files an event under an escalation it is not about", n, indexed)}
		}
		if incidents != nil {
			if n := incidents.Stats().KeyN; n != indexedIncidents {
				return &ChainError{Seq: prevSeq, Reason: fmt.Sprintf("index incident_events has %d entries for %d incident events: an entry files an event under an incident it is not about", n, indexedIncidents)}
			}
		}
		res.HeadSeq = prevSeq
		if prevSeq > 0 {
			res.HeadHash = prevHash
		}
		return nil
	})
	if err != nil {
		return res, fmt.Errorf("audit chain: %w", err)
	}
	for i, a := range anchors {
		if a.Seq != 0 && got[a.Seq] == a.Hash {
			found[i] = a.Seq
		}
	}
	var held []uint64
	for i, a := range anchors {
		if found[i] != 0 {
			a.Seq = found[i]
			res.Held = append(res.Held, a)
			held = append(held, a.Seq)
		}
	}
	slices.Sort(held)
	var errs []error
	for i, a := range anchors {
		if found[i] != 0 {
			continue
		}
		e := &AnchorError{Anchor: a, Got: got[a.Seq], HeadSeq: res.HeadSeq}
		if a.Seq != 0 {
			// The latest anchor that holds before this one.
			if j, _ := slices.BinarySearch(held, a.Seq); j > 0 {
				e.Since = held[j-1]
			}
		}
		errs = append(errs, e)
	}
	slices.SortStableFunc(errs, func(x, y error) int {
		return cmp.Compare(x.(*AnchorError).Anchor.Seq, y.(*AnchorError).Anchor.Seq)
	})
	return res, errors.Join(errs...)
}

// auditLink checks the record stored under seq against the event before
// it (prevSeq with hash prevHash) and returns the hash it carries and the
// event. A compacted record is checked against the compaction event that
// lists it (checkCompacted).
func auditLink(events, payloads *bolt.Bucket, seq uint64, rec []byte, prevSeq uint64, prevHash string) (string, bot.Event, error) {
	rec, err := unpack(rec)
	if err != nil {
		return "", bot.Event{}, &ChainError{Seq: seq, Reason: fmt.Sprintf("hash mismatch: the record cannot be read (%v): it was changed", err)}
	}
	canon, hash, ok := unseal(rec)
	if !ok {
		return "", bot.Event{}, &ChainError{Seq: seq, Reason: "hash mismatch: the record does not end with a hash: it was changed"}
	}
	var ev bot.Event
	if err := json.Unmarshal(rec, &ev); err != nil {
		return "", ev, &ChainError{Seq: seq, Reason: fmt.Sprintf("hash mismatch: the record is not an event (%v): it was changed", err)}
	}
	switch {
	case ev.Seq != seq:
		return "", ev, &ChainError{Seq: seq, Reason: fmt.Sprintf("seq out of order: the record stored as event %d says it is event %d: records were swapped, moved or inserted", seq, ev.Seq)}
	case seq == 0:
		return "", ev, &ChainError{Seq: seq, Reason: "seq out of order: a record was inserted as event 0, before the first event"}
	case seq > prevSeq+1:
		missing := fmt.Sprintf("event %d is missing", prevSeq+1)
		if seq > prevSeq+2 {
			missing = fmt.Sprintf("events %d to %d are missing", prevSeq+1, seq-1)
		}
		return "", ev, &ChainError{Seq: seq, Reason: fmt.Sprintf("seq gap: it follows event %d; %s: removed", prevSeq, missing)}
	case ev.PrevHash != prevHash:
		before := fmt.Sprintf("event %d hashes to %s", prevSeq, hashPrefix(prevHash))
		if prevSeq == 0 {
			before = "the chain starts from " + hashPrefix(genesisHash)
		}
		return "", ev, &ChainError{Seq: seq, Reason: fmt.Sprintf("broken prev link: its prev_hash is %s, but %s: an event before it was changed, removed or inserted", hashPrefix(ev.PrevHash), before)}
	}
	if sum := chainHash(ev.PrevHash, canon); sum != hash {
		return "", ev, &ChainError{Seq: seq, Reason: fmt.Sprintf("hash mismatch: the record carries %s, its content hashes to %s: the record was changed", hashPrefix(hash), hashPrefix(sum))}
	}
	if err := checkPayload(events, payloads, seq, ev, hash); err != nil {
		return "", ev, err
	}
	return hash, ev, nil
}

// auditHead checks the chain head recorded in meta against the last event
// read, lastSeq with hash lastHash.
func auditHead(tx *bolt.Tx, lastSeq uint64, lastHash string) error {
	headSeq, headHash := headOf(tx)
	switch {
	case headSeq > lastSeq:
		return &ChainError{Seq: lastSeq + 1, Reason: fmt.Sprintf("seq gap: the log ends at event %d, but the chain head recorded in the store is event %d: removed from the end", lastSeq, headSeq)}
	case headSeq < lastSeq:
		return &ChainError{Seq: headSeq + 1, Reason: fmt.Sprintf("seq out of order: the log goes on to event %d after the chain head recorded in the store, event %d: appended outside the store", lastSeq, headSeq)}
	case lastSeq > 0 && headHash != lastHash:
		return &ChainError{Seq: lastSeq, Reason: fmt.Sprintf("hash mismatch: the chain head recorded in the store is %s, but event %d hashes to %s", hashPrefix(headHash), lastSeq, hashPrefix(lastHash))}
	}
	return nil
}

// hashPrefix is the first 12 hex digits of a hash and an ellipsis: enough to
// tell two hashes apart in a message.
func hashPrefix(hash string) string {
	if len(hash) <= 12 {
		return fmt.Sprintf("%q", hash)
	}
	return hash[:12] + "…"
}
