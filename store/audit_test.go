package store

import (
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	bolt "go.etcd.io/bbolt"

	"github.com/threatgate/threatgate/bot"
)

func TestHeadOf(t *testing.T) {
	db := mustOpen(t)
	if seq, hash, err := db.HeadOf(ctx); seq != 0 || hash != "" || err != nil {
		t.Errorf("HeadOf(empty) = %d, %q, %v; want 0, \"\", nil", seq, hash, err)
	}
	chainOfFour(t, db)
	// A commit without events leaves the head where it is.
	mustCommit(t, db, &bot.Commit{Effects: []bot.Effect{{Kind: bot.EffectDigest}}, Key: "digest:x", At: t0})
	evs := allEvents(t, db)
	seq, hash, err := db.HeadOf(ctx)
	if last := evs[len(evs)-1]; err != nil || seq != last.Seq || hash != last.Hash {
		t.Errorf("HeadOf = %d, %q, %v; want the last event's %d, %q", seq, hash, err, last.Seq, last.Hash)
	}
}

// TestAuditAnchors: Audit holds every anchor the log still has and, for
// the others, says which event differs and after which anchor that still
// holds the rewrite must be.
func TestAuditAnchors(t *testing.T) {
	db := mustOpen(t)
	if res, err := db.Audit(ctx, nil); err != nil || res.Events != 0 || res.HeadSeq != 0 || res.HeadHash != "" {
		t.Errorf("Audit(empty) = %+v, %v", res, err)
	}
	chainOfFour(t, db)
	evs := allEvents(t, db)
	other := strings.Repeat("e", 64)
	res, err := db.Audit(ctx, []Anchor{
		{Seq: 3, Hash: evs[2].Hash, Source: "a:1"},
		{Hash: evs[1].Hash, Source: "--expect-head"},
		{Seq: 1, Hash: evs[0].Hash, Source: "a:2"},
		{Seq: 4, Hash: other, Source: "a:3"},
		{Seq: 2, Hash: other, Source: "a:4"},
		{Seq: 9, Hash: other, Source: "a:5"},
		{Hash: other, Source: "--expect-head"},
	})
	if res.Events != 4 || res.HeadSeq != 4 || res.HeadHash != evs[3].Hash {
		t.Errorf("Audit = %+v; want 4 events up to event 4", res)
	}
	var held []string
	for _, a := range res.Held {
		held = append(held, fmt.Sprintf("%s@%d", a.Source, a.Seq))
	}
	if got, want := strings.Join(held, " "), "a:1@3 --expect-head@2 a:2@1"; got != want {
		t.Errorf("held %s, want %s", got, want)
	}
	var msgs []string
	for _, e := range err.(interface{ Unwrap() []error }).Unwrap() {
		var ae *AnchorError
		if !errors.As(e, &ae) {
			t.Fatalf("%v is not an AnchorError", e)
		}
		msgs = append(msgs, ae.Error())
	}
	want := []string{
		"--expect-head: no event hashes to eeeeeeeeeeee…: the log was rewritten after that head was seen, or it is another log",
		"a:4: event 2 hashes to " + evs[1].Hash[:12] + "…, not eeeeeeeeeeee… as anchored: the log was rewritten after event 1 (whose anchor holds) and at or before event 2",
		"a:3: event 4 hashes to " + evs[3].Hash[:12] + "…, not eeeeeeeeeeee… as anchored: the log was rewritten after event 3 (whose anchor holds) and at or before event 4",
		"a:5: the anchor names event 9, but the log ends at event 4: events were removed from its end",
	}
	if strings.Join(msgs, "\n") != strings.Join(want, "\n") {
		t.Errorf("anchor errors:\n%s\nwant\n%s", strings.Join(msgs, "\n"), strings.Join(want, "\n"))
	}
}

// TestAuditAgreesWithVerify: on a good log Audit and Verify count the
// same, and Audit moves no checkpoint.
func TestAuditAgreesWithVerify(t *testing.T) {
	db := mustOpen(t)
	for i := range 30 {
		mustCommit(t, db, openCommit("acme/api", int64(i+1), t0.Add(time.Duration(i)*time.Minute), t0))
	}
	n, err := db.Verify(ctx)
	res, aerr := db.Audit(ctx, nil)
	if err != nil || aerr != nil || n != res.Events || n != 30 {
		t.Errorf("Verify = %d, %v; Audit = %+v, %v", n, err, res, aerr)
	}
	if err := db.bolt.View(func(tx *bolt.Tx) error {
		if v := tx.Bucket(bucketMeta).Get([]byte(metaVerifiedSeq)); v != nil {
			t.Errorf("Audit or Verify set the checkpoint: %x", v)
		}
		return nil
	}); err != nil {
		t.Fatal(err)
	}
}
