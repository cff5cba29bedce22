package store

import (
	"strings"
	"testing"

	bolt "go.etcd.io/bbolt"

	"github.com/threatgate/threatgate/bot"
)

// TestReviewAuditIndexTamperMakesBundleLie: the events_by_esc index is not
// covered by the hash chain, and Events (which every bundle, the export and
// GET /escalations/{id}/bundle read) trusts it: an entry that files ESC-2's
// event under ESC-1 (or one removed) changes the bundle of ESC-1 while
// Audit, which `threatgate audit verify` runs, passes. Events should refuse
// a record whose escalation is not the one asked for (and Audit should
// check the index against the log).
func TestReviewAuditIndexTamperMakesBundleLie(t *testing.T) {
	dir := t.TempDir()
	db := mustOpenDir(t, dir)
	chainOfFour(t, db) // 1, 2: ESC-1; 3: cap override; 4: ESC-2 opened
	db = tamper(t, dir, db, func(tx *bolt.Tx) error {
		// File ESC-2's opened event (seq 4) under ESC-1 as well.
		return tx.Bucket(bucketEventsByEsc).Put(escSeqKey("ESC-1", 4), nil)
	})
	// audit verify catches the tampered index...
	if _, err := db.Audit(ctx, nil); err == nil || !strings.Contains(err.Error(), "events_by_esc") {
		t.Errorf("Audit with an event filed under the wrong escalation: %v, want the index named", err)
	}
	// ...and Events refuses to hand out another escalation's event.
	evs, err := db.Events(ctx, "ESC-1")
	if err != nil {
		return // refused: fine
	}
	for _, ev := range evs {
		if ev.Escalation != "ESC-1" {
			t.Errorf("audit verify passes, yet Events(ESC-1) returns event %d of %s (%s): its bundle shows another escalation's event", ev.Seq, ev.Escalation, ev.Kind)
		}
	}
	b := bot.BuildBundle(bot.Replay(evs), evs)
	if len(b.Timeline) != 2 {
		t.Errorf("bundle of ESC-1 has %d timeline entries, want its 2 events", len(b.Timeline))
	}
}

// TestReviewAuditIndexDeletionHidesADissent: removing an escalation's
// entry from events_by_esc hides that event (here a dissent) from its
// bundle, while Audit (audit verify) passes: the bundle is not "exactly
// what the hash chain covers" (docs/EXPORT.md).
func TestReviewAuditIndexDeletionHidesADissent(t *testing.T) {
	dir := t.TempDir()
	db := mustOpenDir(t, dir)
	chainOfFour(t, db) // 2: ESC-1's dissent
	db = tamper(t, dir, db, func(tx *bolt.Tx) error {
		return tx.Bucket(bucketEventsByEsc).Delete(escSeqKey("ESC-1", 2))
	})
	// audit verify catches the missing index entry.
	if _, err := db.Audit(ctx, nil); err == nil || !strings.Contains(err.Error(), "not filed under it") {
		t.Errorf("Audit with an event missing from the index: %v, want it named", err)
	}
}
