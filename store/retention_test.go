package store

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	bolt "go.etcd.io/bbolt"

	"github.com/threatgate/threatgate/bot"
	"github.com/threatgate/threatgate/policies"
)

const keep = 365 * 24 * time.Hour

var longText = "STRIDE: spoofing of the session cookie is mitigated by ... " + strings.Repeat("threat model line. ", 40)

// closedWithEvidence builds ESC-1 of g/p!1: opened with signal evidence,
// a text artifact, a link artifact, an approval, then merged at t0+2h.
// A second escalation, ESC-2, stays open.
func closedWithEvidence(t *testing.T, db *DB) *bot.Escalation {
	t.Helper()
	ev := opened("g/p", 1, "system", t0, t0.Add(48*time.Hour))
	ev.Data.Title = "Rework session handling"
	ev.Data.Signals = []policies.Fired{{ID: "auth-paths", Category: "path", Weight: 5, Evidence: []string{"src/auth/session.go", "src/auth/token.go"}}}
	esc := bot.Replay([]bot.Event{ev})
	esc = mustCommit(t, db, &bot.Commit{Escalation: esc, Events: []bot.Event{ev}, At: t0})
	step := func(ev bot.Event) {
		ev.Escalation = esc.ID
		next := bot.Replay(append(events(t, db, esc.ID), ev))
		next.ID = esc.ID
		esc = mustCommit(t, db, &bot.Commit{Escalation: next, Expect: esc.Version, Events: []bot.Event{ev}, At: ev.At})
	}
	step(bot.Event{Kind: bot.EventArtifactAdded, Actor: "ann", At: t0.Add(time.Minute), SHA: "c0ffee", Data: bot.EventData{Artifact: "threat-model", Ref: longText}})
	step(bot.Event{Kind: bot.EventArtifactAdded, Actor: "ann", At: t0.Add(2 * time.Minute), SHA: "c0ffee", Data: bot.EventData{Artifact: "dfd", Ref: "https://wiki.example.com/dfd/" + strings.Repeat("x", 300)}})
	step(bot.Event{Kind: bot.EventApproved, Actor: "bob", At: t0.Add(time.Hour), SHA: "c0ffee", Data: bot.EventData{Group: "appsec", Text: "looks fine"}})
	step(bot.Event{Kind: bot.EventStateChanged, Actor: "bob", At: t0.Add(time.Hour), Data: bot.EventData{From: bot.StateInReview, To: bot.StateApproved}})
	step(bot.Event{Kind: bot.EventMerged, Actor: "system", At: t0.Add(2 * time.Hour), SHA: "c0ffee"})
	step(bot.Event{Kind: bot.EventStateChanged, Actor: "system", At: t0.Add(2 * time.Hour), Data: bot.EventData{From: bot.StateApproved, To: bot.StateMerged}})
	mustCommit(t, db, openCommit("g/p", 2, t0, t0.Add(48*time.Hour), "bob"))
	return esc
}

func events(t *testing.T, db *DB, id string) []bot.Event {
	t.Helper()
	evs, err := db.Events(ctx, id)
	if err != nil {
		t.Fatal(err)
	}
	return evs
}

func compactEvent(id string, at time.Time) bot.Event {
	return bot.Event{Kind: bot.EventCompacted, Escalation: id, Actor: "system", At: at, Data: bot.EventData{Text: "retention: 365 days"}}
}

func TestCompactKeepsTheChainVerifiable(t *testing.T) {
	db := mustOpen(t)
	esc := closedWithEvidence(t, db)
	before := events(t, db, esc.ID)
	_, headBefore, _ := db.HeadOf(ctx)

	// Not due before the retention period is over; the open one never.
	if ids, err := db.RetentionDue(ctx, t0, 0); err != nil || len(ids) != 0 {
		t.Fatalf("due before the merge: %v, %v", ids, err)
	}
	now := t0.Add(2*time.Hour + keep)
	ids, err := db.RetentionDue(ctx, now.Add(-keep), 0)
	if err != nil || len(ids) != 1 || ids[0] != esc.ID {
		t.Fatalf("due after a year: %v, %v; want [%s]", ids, err, esc.ID)
	}
	if !esc.RetentionDue(now, keep) || esc.RetentionDue(now.Add(-time.Second), keep) {
		t.Error("bot.RetentionDue disagrees with the index")
	}

	n, err := db.Compact(ctx, esc.ID, esc.Version, compactEvent(esc.ID, now))
	if err != nil || n != 2 {
		t.Fatalf("Compact = %d, %v; want 2 records (the opening's evidence, the artifact text)", n, err)
	}
	after := events(t, db, esc.ID)
	if len(after) != len(before)+1 {
		t.Fatalf("%d events after, %d before: want one compaction event more", len(after), len(before))
	}
	for i, ev := range after[:len(before)] {
		if ev.Hash != before[i].Hash || ev.PrevHash != before[i].PrevHash || ev.Seq != before[i].Seq {
			t.Errorf("event %d changed its place in the chain", ev.Seq)
		}
	}
	if before[0].Data.Signals[0].Evidence == nil || before[1].Data.Ref != longText {
		t.Fatalf("before compaction the events did not read back with their payloads: %+v", before[:2])
	}
	opened, text, link := after[0], after[1], after[2]
	if opened.Compacted == nil || opened.Data.Signals[0].Evidence != nil || opened.Data.Signals[0].ID != "auth-paths" || opened.Data.Title != "Rework session handling" {
		t.Errorf("opening after compaction: %+v", opened)
	}
	if text.Compacted == nil || text.Data.Ref != "" || text.Data.Artifact != "threat-model" {
		t.Errorf("text artifact after compaction: %+v", text)
	}
	if link.Compacted != nil || link.Data.Ref != before[2].Data.Ref {
		t.Errorf("a link artifact was compacted: %+v", link)
	}
	for _, ev := range after[3 : len(after)-1] {
		if ev.Compacted != nil {
			t.Errorf("event %d (%s) has no bulky payload but was compacted", ev.Seq, ev.Kind)
		}
	}
	ce := after[len(after)-1]
	if ce.Kind != bot.EventCompacted || len(ce.Data.Records) != 2 || ce.Data.Records[0].Seq != opened.Seq || ce.Data.Records[0].Hash != before[0].Hash {
		t.Fatalf("compaction event: %+v", ce)
	}
	if opened.Compacted.By != ce.Seq || !opened.Compacted.At.Equal(now) || ce.Data.Records[0].Digest != opened.Sealed.Payload {
		t.Errorf("opening's marker %+v, want by %d at %s", opened.Compacted, ce.Seq, now)
	}

	// The projection: no evidence, no text, not active, left the index.
	got, _ := db.FindEscalation(ctx, esc.ID)
	if got.Signals[0].Evidence != nil || got.Artifacts[0].Ref != "" || got.Artifacts[0].Removed.IsZero() || got.Artifacts[1].Ref == "" {
		t.Errorf("projection after compaction: %+v", got)
	}
	if !got.UpdatedAt.Equal(esc.UpdatedAt) || got.CompactedVersion != got.Version {
		t.Errorf("compaction moved UpdatedAt to %s (was %s) or left CompactedVersion %d != %d", got.UpdatedAt, esc.UpdatedAt, got.CompactedVersion, got.Version)
	}
	if ids, _ := db.RetentionDue(ctx, now, 0); len(ids) != 0 {
		t.Errorf("still due after compaction: %v", ids)
	}
	// Replaying the stored events gives the stored projection's payloads.
	if re := bot.Replay(after); re.Signals[0].Evidence != nil || re.Artifacts[0].Ref != "" {
		t.Errorf("replay of the compacted events: %+v", re)
	}
	if n, err := db.Compact(ctx, esc.ID, got.Version, compactEvent(esc.ID, now)); err != nil || n != 0 {
		t.Errorf("second Compact = %d, %v; want 0", n, err)
	}
	if len(events(t, db, esc.ID)) != len(after) {
		t.Error("a compaction with nothing to compact appended an event")
	}

	// Verify, VerifyFrom and Audit all pass; Audit names the compaction;
	// an anchor seen before still holds.
	if _, err := db.Verify(ctx); err != nil {
		t.Fatalf("Verify: %v", err)
	}
	if _, _, err := db.VerifyFrom(ctx); err != nil {
		t.Fatalf("VerifyFrom: %v", err)
	}
	res, err := db.Audit(ctx, []Anchor{{Hash: headBefore, Source: "before"}})
	if err != nil {
		t.Fatalf("Audit: %v", err)
	}
	if len(res.Compactions) != 1 || res.Compactions[0].Seq != ce.Seq || len(res.Compactions[0].Records) != 2 || res.Compactions[0].Escalation != esc.ID {
		t.Errorf("Audit.Compactions = %+v", res.Compactions)
	}
	if len(res.Held) != 1 {
		t.Errorf("the anchor taken before compaction no longer holds: %+v", res)
	}
}

func TestCompactRefusesAStaleVersion(t *testing.T) {
	db := mustOpen(t)
	esc := closedWithEvidence(t, db)
	_, err := db.Compact(ctx, esc.ID, esc.Version-1, compactEvent(esc.ID, t0.Add(keep*2)))
	if !errors.Is(err, bot.ErrConflict) {
		t.Fatalf("Compact on a stale version: %v, want ErrConflict", err)
	}
	if ev := events(t, db, esc.ID); ev[0].Compacted != nil {
		t.Error("a refused compaction compacted")
	}
	if _, err := db.Compact(ctx, esc.ID, esc.Version, bot.Event{Kind: bot.EventApproved, Escalation: esc.ID}); err == nil {
		t.Error("Compact accepted an event that is not a compaction")
	}
}

// A later event puts a compacted escalation back in the index; a reopened
// MR takes it out.
func TestRetentionIndexFollowsTheEscalation(t *testing.T) {
	db := mustOpen(t)
	ev := opened("g/p", 1, "system", t0, t0.Add(time.Hour))
	ev.Data.MRState = "opened"
	esc := mustCommit(t, db, &bot.Commit{Escalation: bot.Replay([]bot.Event{ev}), Events: []bot.Event{ev}, At: t0})
	commit := func(ev bot.Event) {
		ev.Escalation = esc.ID
		next := bot.Replay(append(events(t, db, esc.ID), ev))
		next.ID = esc.ID
		esc = mustCommit(t, db, &bot.Commit{Escalation: next, Expect: esc.Version, Events: []bot.Event{ev}, At: ev.At})
	}
	due := func(at time.Time) int {
		ids, err := db.RetentionDue(ctx, at, 0)
		if err != nil {
			t.Fatal(err)
		}
		return len(ids)
	}
	commit(bot.Event{Kind: bot.EventWithdrawn, Actor: "system", At: t0.Add(time.Minute), Data: bot.EventData{MRState: "closed"}})
	commit(bot.Event{Kind: bot.EventStateChanged, Actor: "system", At: t0.Add(time.Minute), Data: bot.EventData{From: bot.StateInReview, To: bot.StateWithdrawn}})
	if due(t0.Add(time.Hour)) != 1 {
		t.Fatal("a closed MR's escalation is not in the retention index")
	}
	commit(bot.Event{Kind: bot.EventReopened, Actor: "system", At: t0.Add(2 * time.Minute)})
	commit(bot.Event{Kind: bot.EventStateChanged, Actor: "system", At: t0.Add(2 * time.Minute), Data: bot.EventData{From: bot.StateWithdrawn, To: bot.StateInReview}})
	if due(t0.Add(keep*3)) != 0 {
		t.Fatal("a reopened MR's escalation stayed in the retention index")
	}
	if keyCount(t, db, bucketRetentionDue) != 0 {
		t.Fatal("stale retention keys")
	}
}

func TestMigrateRetentionIndex(t *testing.T) {
	dir := t.TempDir()
	db := mustOpenDir(t, dir, withMigrations(migrations[:6]))
	if err := db.bolt.Update(func(tx *bolt.Tx) error {
		for _, e := range []bot.Escalation{
			{ID: "ESC-1", Project: "g/p", MRIID: 1, State: bot.StateMerged, MRState: "merged", Version: 3, UpdatedAt: t0},
			{ID: "ESC-2", Project: "g/p", MRIID: 2, State: bot.StateApproved, MRState: "opened", Version: 5, UpdatedAt: t0},
			{ID: "ESC-3", Project: "g/p", MRIID: 3, State: bot.StateInReview, Version: 2, UpdatedAt: t0},
		} {
			v, _ := json.Marshal(e)
			if err := tx.Bucket(bucketEscalations).Put([]byte(e.ID), v); err != nil {
				return err
			}
		}
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	mustClose(t, db)
	db = mustOpenDir(t, dir)
	ids, err := db.RetentionDue(ctx, t0, 0)
	if err != nil || len(ids) != 1 || ids[0] != "ESC-1" {
		t.Fatalf("retention due after migration: %v, %v; want ESC-1 only", ids, err)
	}
}

// TestVerifyFindsTamperingWithPayloads: payloads live beside the chain,
// so each is bound to it by the digest its event was sealed with, and its
// removal by a compaction event that lists it.
func TestVerifyFindsTamperingWithPayloads(t *testing.T) {
	put := func(tx *bolt.Tx, seq uint64, v string) error {
		return tx.Bucket(bucketPayloads).Put(u64(seq), []byte(v))
	}
	for _, tt := range []struct {
		name    string
		compact bool
		fn      func(tx *bolt.Tx, opened, text, compaction uint64) error
		reason  string
	}{
		{"evidence edited", false, func(tx *bolt.Tx, o, _, _ uint64) error {
			return put(tx, o, `{"evidence":[["README.md"]]}`)
		}, "its payload was changed"},
		{"artifact text edited", false, func(tx *bolt.Tx, _, x, _ uint64) error {
			return put(tx, x, `{"ref":"`+strings.Repeat("all fine. ", 40)+`"}`)
		}, "its payload was changed"},
		{"payload deleted", false, func(tx *bolt.Tx, o, _, _ uint64) error {
			return tx.Bucket(bucketPayloads).Delete(u64(o))
		}, "no compaction removed it"},
		{"tombstone naming an event that is no compaction", false, func(tx *bolt.Tx, o, x, _ uint64) error {
			return put(tx, o, fmt.Sprintf(`{"removed":{"by":%d,"at":"2027-01-01T00:00:00Z"}}`, x))
		}, "not a compaction"},
		{"tombstone naming a missing event", false, func(tx *bolt.Tx, o, _, _ uint64) error {
			return put(tx, o, `{"removed":{"by":9999,"at":"2027-01-01T00:00:00Z"}}`)
		}, "which is missing"},
		{"tombstone naming an earlier event", false, func(tx *bolt.Tx, _, x, _ uint64) error {
			return put(tx, x, `{"removed":{"by":1,"at":"2027-01-01T00:00:00Z"}}`)
		}, "not after it"},
		{"tombstone naming a compaction that does not list it", false, func(tx *bolt.Tx, o, _, _ uint64) error {
			// An insider appends a compaction event of the escalation at
			// the head, listing nothing, and points the payload at it.
			ev := bot.Event{Kind: bot.EventCompacted, Escalation: "ESC-1", Actor: "system", At: t0.Add(keep * 2)}
			if err := appendEvent(tx, &ev); err != nil {
				return err
			}
			return put(tx, o, fmt.Sprintf(`{"removed":{"by":%d,"at":"2027-01-01T00:00:00Z"}}`, ev.Seq))
		}, "does not list it"},
		{"the compaction event's list rewritten", true, func(tx *bolt.Tx, _, _, c uint64) error {
			b := tx.Bucket(bucketEvents)
			v := bytes.Replace(b.Get(u64(c)), []byte(`"digest":"`), []byte(`"digest":"0`), 1)
			return b.Put(u64(c), v)
		}, ""},
		{"a compacted payload put back altered", true, func(tx *bolt.Tx, o, _, _ uint64) error {
			return put(tx, o, `{"evidence":[["README.md"]]}`)
		}, "its payload was changed"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			dir := t.TempDir()
			db := mustOpenDir(t, dir)
			esc := closedWithEvidence(t, db)
			var compaction uint64
			if tt.compact {
				if _, err := db.Compact(ctx, esc.ID, esc.Version, compactEvent(esc.ID, t0.Add(2*time.Hour+keep))); err != nil {
					t.Fatal(err)
				}
				evs := events(t, db, esc.ID)
				compaction = evs[len(evs)-1].Seq
			}
			evs := events(t, db, esc.ID)
			db = tamper(t, dir, db, func(tx *bolt.Tx) error { return tt.fn(tx, evs[0].Seq, evs[1].Seq, compaction) })
			for name, verify := range map[string]func() error{
				"Verify": func() error { _, err := db.Verify(ctx); return err },
				"Audit":  func() error { _, err := db.Audit(ctx, nil); return err },
			} {
				err := verify()
				var ce *ChainError
				if !errors.As(err, &ce) {
					t.Fatalf("%s after tampering: %v, want a ChainError", name, err)
				}
				if tt.reason != "" && !strings.Contains(ce.Reason, tt.reason) {
					t.Errorf("%s: %v, want a reason with %q", name, err, tt.reason)
				}
			}
		})
	}
}

// The bytes of compacted records hold none of the removed text.
func TestCompactRemovesTheBytes(t *testing.T) {
	dir := t.TempDir()
	db := mustOpenDir(t, dir)
	esc := closedWithEvidence(t, db)
	if _, err := db.Compact(ctx, esc.ID, esc.Version, compactEvent(esc.ID, t0.Add(2*time.Hour+keep))); err != nil {
		t.Fatal(err)
	}
	err := db.bolt.View(func(tx *bolt.Tx) error {
		for _, bucket := range [][]byte{bucketEvents, bucketEscalations, bucketPayloads} {
			err := tx.Bucket(bucket).ForEach(func(k, v []byte) error {
				if bytes.Contains(v, []byte("threat model line")) || bytes.Contains(v, []byte("src/auth/token.go")) {
					t.Errorf("%s %q still holds removed text", bucket, k)
				}
				return nil
			})
			if err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
}
