package store

import (
	"encoding/json"
	"strings"
	"testing"
	"time"

	bolt "go.etcd.io/bbolt"

	"github.com/threatgate/threatgate/bot"
)

// forgeCompaction is what an insider with write access to the bbolt file
// (but not to anchors kept elsewhere) does: rewrite record seq with edit,
// mark it compacted by a new event at the head, and append that
// EventCompacted event, listing seq with the hash the record keeps and
// the digest of its new canonical JSON. Every step is what Compact itself
// does; nothing needs a secret.
func forgeCompaction(tx *bolt.Tx, seq uint64, at time.Time, edit func(ev *bot.Event)) error {
	events, meta := tx.Bucket(bucketEvents), tx.Bucket(bucketMeta)
	orig, _, hash, err := openRecord(seq, events.Get(u64(seq)))
	if err != nil {
		return err
	}
	headSeq := getU64(meta, metaHeadSeq)
	forged := orig
	edit(&forged)
	forged.Compacted = &bot.Compaction{By: headSeq + 1, At: at}
	forged.Hash = ""
	canon, err := json.Marshal(forged)
	if err != nil {
		return err
	}
	if err := events.Put(u64(seq), withHash(canon, hash)); err != nil {
		return err
	}
	if forged.Escalation != orig.Escalation {
		byEsc := tx.Bucket(bucketEventsByEsc)
		if err := byEsc.Delete(escSeqKey(orig.Escalation, seq)); err != nil {
			return err
		}
		if err := byEsc.Put(escSeqKey(forged.Escalation, seq), nil); err != nil {
			return err
		}
	}
	ev := bot.Event{Kind: bot.EventCompacted, Escalation: forged.Escalation, Actor: "system", At: at,
		Data: bot.EventData{Text: "retention: closed and inactive for 365 days",
			Records: []bot.CompactedRecord{{Seq: seq, Hash: hash, Digest: digest(canon)}}}}
	return appendEvent(tx, &ev)
}

// TestReviewForgedCompactionRewritesAnchoredRecords: a compaction event is
// made by the store itself, with no key, so whoever can write the file can
// append one at the head and use it to vouch for any earlier record,
// rewritten at will: another actor, another kind, another head SHA,
// another escalation, another time. The record keeps its hash, so every
// link and every anchor taken before still holds; Verify, VerifyFrom and
// Audit (with those anchors) all pass. Before compaction existed, a change
// to an anchored record always broke the anchor; now anchors protect
// nothing before them. checkCompacted does not even require the record to
// be of a kind that has anything to compact (an approval, a decision).
func TestReviewForgedCompactionRewritesAnchoredRecords(t *testing.T) {
	for _, tt := range []struct {
		name string
		pick func(evs []bot.Event) uint64
		edit func(ev *bot.Event)
	}{
		{"the approver is someone else", kindOf(bot.EventApproved), func(ev *bot.Event) { ev.Actor = "mallory" }},
		{"the approval becomes a rejection", kindOf(bot.EventApproved), func(ev *bot.Event) { ev.Kind = bot.EventRejected }},
		{"the decision says rejected", func(evs []bot.Event) uint64 {
			for _, ev := range evs {
				if ev.Kind == bot.EventStateChanged && ev.Data.To == bot.StateApproved {
					return ev.Seq
				}
			}
			return 0
		}, func(ev *bot.Event) { ev.Data.To = bot.StateRejected }},
		{"the approval was of another head, at another time", kindOf(bot.EventApproved), func(ev *bot.Event) {
			ev.SHA = "deadbeef"
			ev.At = ev.At.Add(-24 * time.Hour)
		}},
		{"the merge was a bypass", kindOf(bot.EventMerged), func(ev *bot.Event) { ev.Data.Bypassed = true }},
		{"the opening's tier and evidence changed", kindOf(bot.EventOpened), func(ev *bot.Event) {
			ev.Data.Tier = "T0"
			ev.Data.Signals[0].Evidence = []string{"README.md"}
		}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			dir := t.TempDir()
			db := mustOpenDir(t, dir)
			esc := closedWithEvidence(t, db)
			// An auditor keeps the head (GET /api/audit/head), and the
			// server's VerifyFrom has a checkpoint there.
			anchorSeq, anchorHash, err := db.HeadOf(ctx)
			if err != nil {
				t.Fatal(err)
			}
			if _, _, err := db.VerifyFrom(ctx); err != nil {
				t.Fatal(err)
			}
			target := tt.pick(events(t, db, esc.ID))
			if target == 0 || target > anchorSeq {
				t.Fatalf("no record to rewrite before the anchor (%d)", anchorSeq)
			}
			db = tamper(t, dir, db, func(tx *bolt.Tx) error {
				return forgeCompaction(tx, target, t0.Add(2*time.Hour+keep), tt.edit)
			})
			var caught []string
			if _, err := db.Verify(ctx); err != nil {
				caught = append(caught, "Verify: "+err.Error())
			}
			if _, _, err := db.VerifyFrom(ctx); err != nil {
				caught = append(caught, "VerifyFrom: "+err.Error())
			}
			res, err := db.Audit(ctx, []Anchor{{Seq: anchorSeq, Hash: anchorHash, Source: "anchors.txt:1"}})
			if err != nil {
				caught = append(caught, "Audit: "+err.Error())
			}
			if len(caught) == 0 {
				got, _, _, _ := openRecord(target, rawEvent(t, db, target))
				t.Errorf("event %d rewritten before anchor %d (now kind %s, actor %s, sha %s, at %s, to %q, bypassed %v, tier %q) and nothing noticed: Verify, VerifyFrom and Audit pass, the anchor holds (%d held); compactions: %+v",
					target, anchorSeq, got.Kind, got.Actor, got.SHA, got.At.Format(time.RFC3339), got.Data.To, got.Data.Bypassed, got.Data.Tier, len(res.Held), res.Compactions)
			}
		})
	}
}

func kindOf(k bot.EventKind) func([]bot.Event) uint64 {
	return func(evs []bot.Event) uint64 {
		for _, ev := range evs {
			if ev.Kind == k {
				return ev.Seq
			}
		}
		return 0
	}
}

func rawEvent(t *testing.T, db *DB, seq uint64) []byte {
	t.Helper()
	var rec []byte
	if err := db.bolt.View(func(tx *bolt.Tx) error {
		rec = append([]byte(nil), tx.Bucket(bucketEvents).Get(u64(seq))...)
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	return rec
}

// TestReviewForgedCompactionMovesAnEventToAnotherEscalation: the same door
// moves an approval from ESC-1 to the open ESC-2 (the record's escalation
// and the index, both outside any check once the record is "compacted"):
// ESC-2's events then show an approval nobody gave it, on a chain that
// verifies.
func TestReviewForgedCompactionMovesAnEventToAnotherEscalation(t *testing.T) {
	dir := t.TempDir()
	db := mustOpenDir(t, dir)
	esc := closedWithEvidence(t, db)
	anchorSeq, anchorHash, _ := db.HeadOf(ctx)
	target := kindOf(bot.EventApproved)(events(t, db, esc.ID))
	db = tamper(t, dir, db, func(tx *bolt.Tx) error {
		return forgeCompaction(tx, target, t0.Add(3*time.Hour), func(ev *bot.Event) { ev.Escalation = "ESC-2" })
	})
	_, verr := db.Verify(ctx)
	_, aerr := db.Audit(ctx, []Anchor{{Seq: anchorSeq, Hash: anchorHash}})
	if verr == nil && aerr == nil {
		moved := false
		for _, ev := range events(t, db, "ESC-2") {
			moved = moved || ev.Kind == bot.EventApproved
		}
		t.Errorf("approval %d moved from %s to ESC-2 (in ESC-2's events: %v); Verify and Audit with the anchor pass", target, esc.ID, moved)
	}
}

// TestReviewBundleSaysCompactedTextWasRemoved: the evidence bundle (export,
// and the dashboard's GET /escalations/{id}/bundle) is built from
// bot.Replay of the stored events, not from the stored projection. In the
// replay the compacted artifact_added record already has an empty ref,
// so the compaction event's compactProjection (bulkyRef("") is false)
// never sets Removed: the bundle lists the threat model as handed in with
// an empty text, its JSON "removed" is zero, and the Markdown shows an
// empty cell instead of "text removed by retention". The dashboard's
// projection says it was removed; the bundle an auditor gets does not.
func TestReviewBundleSaysCompactedTextWasRemoved(t *testing.T) {
	db := mustOpen(t)
	esc := closedWithEvidence(t, db)
	if _, err := db.Compact(ctx, esc.ID, esc.Version, compactEvent(esc.ID, t0.Add(2*time.Hour+keep))); err != nil {
		t.Fatal(err)
	}
	stored, _ := db.FindEscalation(ctx, esc.ID)
	if stored.Artifacts[0].Removed.IsZero() {
		t.Fatal("the stored projection does not mark the text removed")
	}
	evs := events(t, db, esc.ID)
	b := bot.BuildBundle(bot.Replay(evs), evs) // as ExportOf and the web bundle do
	var tm *bot.BundleArtifact
	for i := range b.Artifacts {
		if b.Artifacts[i].Kind == "threat-model" {
			tm = &b.Artifacts[i]
		}
	}
	if tm == nil {
		t.Fatal("no threat-model in the bundle")
	}
	if tm.Removed.IsZero() {
		t.Errorf("bundle artifact threat-model: ref %q, removed zero: it reads as handed in empty, not as removed by retention", tm.Ref)
	}
	files, err := bot.RenderExport(bot.NewExport(b.OpenedAt, b.OpenedAt, []*bot.Bundle{b}), "md")
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range files {
		if f.Name == bot.BundleFile(esc.ID, "md") && !strings.Contains(string(f.Data), "*text removed by retention ") {
			t.Errorf("%s: its artifacts table does not say the threat model's text was removed by retention", f.Name)
		}
	}
}
