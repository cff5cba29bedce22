package bot

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"
)

// Retention (retention.closed_days in the config): once an escalation's
// MR is merged or closed and nothing has happened on it for the retention
// period, the bulky payloads of its events are removed: the evidence
// lines of the signals that fired and artifact text longer than
// MaxKeptArtifactText. Everything a decision rests on stays: who did
// what and when, the tier and its recorded definition, signal ids and
// weights, MR facts, approvals, checklist answers, rationale, dissent,
// risk, action items, artifact links.
//
// To remove them without weakening the audit chain, the store never
// hashes a bulky payload into an event: it seals the event without it
// (SplitBulk), with the payload's SHA-256 in Sealed, and keeps the payload
// beside the chain. Every hash thus recomputes whether or not the payload
// is still there; compaction replaces the payload with a tombstone naming
// the EventCompacted event that removed it (store/retention.go).

// EventCompacted records that retention removed the payloads of earlier
// events of the escalation: Data.Records lists them (seq, hash, payload
// digest), Data.Text says under which setting.
const EventCompacted EventKind = "compacted"

// MaxKeptArtifactText is the longest artifact text (a ref that is not a
// link) kept in the event itself, whatever the retention.
const MaxKeptArtifactText = 256

// Sealed is set on a stored event whose bulky payload the store keeps
// beside the chain: Payload is the hex SHA-256 of its JSON (Bulk).
type Sealed struct {
	Payload string `json:"payload_sha256"`
}

// Bulk is an event's bulky payload: the evidence lines of each signal (in
// the order of Data.Signals; nil for a signal without any) and the
// artifact text.
type Bulk struct {
	Evidence [][]string `json:"evidence,omitempty"`
	Ref      string     `json:"ref,omitempty"`
}

// Compaction says that retention removed an event's payload: By is the
// seq of the EventCompacted event, At when. The store sets it on events
// it reads; it is not part of the stored event.
type Compaction struct {
	By uint64    `json:"by"`
	At time.Time `json:"at"`
}

// CompactedRecord is one entry of an EventCompacted event: the event at
// Seq, with chain hash Hash, whose payload (of SHA-256 Digest) was
// removed.
type CompactedRecord struct {
	Seq    uint64 `json:"seq"`
	Hash   string `json:"hash"`
	Digest string `json:"digest"`
}

// SplitBulk returns ev without its bulky payload and the payload, nil when
// it has none: the signals' evidence lines, and an artifact's text when it
// is longer than MaxKeptArtifactText and not a link. It leaves ev and its
// slices unmodified.
func SplitBulk(ev Event) (Event, *Bulk) {
	var b Bulk
	bulky := false
	if len(ev.Data.Signals) > 0 {
		sigs := append(ev.Data.Signals[:0:0], ev.Data.Signals...)
		b.Evidence = make([][]string, len(sigs))
		for i := range sigs {
			if sigs[i].Evidence != nil {
				b.Evidence[i], sigs[i].Evidence, bulky = sigs[i].Evidence, nil, true
			}
		}
		if bulky {
			ev.Data.Signals = sigs
		} else {
			b.Evidence = nil
		}
	}
	if ev.Kind == EventArtifactAdded && bulkyRef(ev.Data.Ref) {
		b.Ref, ev.Data.Ref, bulky = ev.Data.Ref, "", true
	}
	if !bulky {
		return ev, nil
	}
	return ev, &b
}

// JoinBulk returns ev with its payload b put back (the inverse of
// SplitBulk).
func JoinBulk(ev Event, b *Bulk) Event {
	if b == nil {
		return ev
	}
	if len(b.Evidence) > 0 && len(ev.Data.Signals) > 0 {
		sigs := append(ev.Data.Signals[:0:0], ev.Data.Signals...)
		for i := range sigs {
			if i < len(b.Evidence) && b.Evidence[i] != nil {
				sigs[i].Evidence = b.Evidence[i]
			}
		}
		ev.Data.Signals = sigs
	}
	if b.Ref != "" {
		ev.Data.Ref = b.Ref
	}
	return ev
}

// CompactEvent returns ev as retention leaves it, and whether anything was
// removed (SplitBulk).
func CompactEvent(ev Event) (Event, bool) {
	s, b := SplitBulk(ev)
	return s, b != nil
}

// Retainable reports whether e is closed for retention: decided or
// withdrawn, and its MR merged or closed. Only then does its clock of
// inactivity count; a reopened MR leaves it.
func (e *Escalation) Retainable() bool {
	if e == nil || e.State.Active() {
		return false
	}
	return e.State == StateMerged || e.MRState == "merged" || e.MRState == "closed"
}

// RetentionDue reports whether e's bulky payloads should be compacted at
// now when closed escalations keep them for keep: it is closed, nothing
// happened on it for keep, and it has events since its last compaction.
func (e *Escalation) RetentionDue(now time.Time, keep time.Duration) bool {
	return keep > 0 && e.Retainable() && e.CompactedVersion != e.Version && !e.UpdatedAt.After(now.Add(-keep))
}

// bulkyRef reports whether an artifact ref is text that compaction removes.
func bulkyRef(ref string) bool {
	return len(ref) > MaxKeptArtifactText && !IsLink(ref)
}

// IsLink reports whether ref is a single http(s) URL (an artifact handed
// in by link rather than as text).
func IsLink(ref string) bool {
	r := strings.TrimSpace(ref)
	return (strings.HasPrefix(r, "https://") || strings.HasPrefix(r, "http://")) &&
		len(r) <= 4096 && !strings.ContainsAny(r, " \t\r\n")
}

// compactProjection removes from e what CompactEvent removes from events.
func compactProjection(e *Escalation, at time.Time) {
	for i := range e.Signals {
		e.Signals[i].Evidence = nil
	}
	for i := range e.Artifacts {
		if bulkyRef(e.Artifacts[i].Ref) {
			e.Artifacts[i].Ref = ""
			e.Artifacts[i].Removed = at
		}
	}
	e.CompactedAt = at
}

// Retention is what a store offers for compaction (store.DB has it).
type Retention interface {
	// RetentionDue returns the ids of retainable escalations with
	// events since their last compaction and no activity after before,
	// oldest first, at most limit.
	RetentionDue(ctx context.Context, before time.Time, limit int) ([]string, error)
	// Compact removes the payloads of the escalation's events in one
	// transaction (see SplitBulk) and appends an EventCompacted event
	// listing them, made from ev; the escalation must still be at
	// version expect (else ErrConflict). It returns how many payloads it
	// removed; with none it appends nothing and only records that the
	// escalation was looked at.
	Compact(ctx context.Context, id string, expect uint64, ev Event) (int, error)
}

// CompactBatch bounds the escalations one Compact pass handles.
const CompactBatch = 200

// Compact compacts the escalations whose retention period (keep) is over
// at now, at most CompactBatch of them, and returns how many records were
// compacted. The store must implement Retention. An escalation that
// changed meanwhile is left for the next pass.
func (e *Engine) Compact(ctx context.Context, now time.Time, keep time.Duration) (int, error) {
	r, ok := e.store.(Retention)
	if !ok {
		return 0, errors.New("compact: the store does not support retention")
	}
	if keep <= 0 {
		return 0, nil
	}
	ids, err := r.RetentionDue(ctx, now.Add(-keep), CompactBatch)
	if err != nil {
		return 0, fmt.Errorf("compact: %w", err)
	}
	total := 0
	var last error
	for _, id := range ids {
		esc, err := e.store.FindEscalation(ctx, id)
		if err != nil {
			last = fmt.Errorf("compact %s: %w", id, err)
			continue
		}
		if !esc.RetentionDue(now, keep) {
			continue
		}
		ev := Event{Kind: EventCompacted, Escalation: id, Actor: System.Person, At: now,
			Data: EventData{Text: fmt.Sprintf("retention: closed and inactive for %d days", int(keep.Hours()/24))}}
		n, err := compactOne(ctx, r, id, esc.Version, ev)
		if errors.Is(err, ErrConflict) {
			continue
		}
		if err != nil {
			last = fmt.Errorf("compact %s: %w", id, err)
			e.log.Error("compaction failed", LogEscalationID, id, LogErr, err)
			continue
		}
		total += n
	}
	return total, last
}

// compactOne is one Compact, a panic in it returned as an error (a damaged
// record must not stop the sweep).
func compactOne(ctx context.Context, r Retention, id string, version uint64, ev Event) (n int, err error) {
	defer func() {
		if p := recover(); p != nil {
			err = fmt.Errorf("compaction of %s panicked: %s", id, PanicReason(p))
		}
	}()
	return r.Compact(ctx, id, version, ev)
}
