package store

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"reflect"
	"testing"
	"time"

	bolt "go.etcd.io/bbolt"

	"github.com/threatgate/threatgate/bot"
)

// TestCommitFinishesItsInboxItem: a decision's commit removes the inbox
// item it names (bot.Commit.Inbox) in its own transaction, and a refused
// commit leaves it; both hold across a reopen.
func TestCommitFinishesItsInboxItem(t *testing.T) {
	dir := t.TempDir()
	db := mustOpenDir(t, dir)
	at := time.Date(2026, 11, 2, 9, 0, 0, 0, time.UTC)
	for i := range 3 {
		if _, err := db.Enqueue(ctx, fmt.Sprintf("uuid-%d", i), "Merge Request Hook", []byte(`{}`), at); err != nil {
			t.Fatal(err)
		}
	}
	esc := &bot.Escalation{Project: "shop/api", MRIID: 1, State: bot.StateInReview}
	saved, err := db.Commit(ctx, &bot.Commit{Escalation: esc, Events: []bot.Event{{Kind: bot.EventOpened, Actor: "system", At: at}}, Key: "k1", At: at, Inbox: 1})
	if err != nil {
		t.Fatal(err)
	}
	// Refused: a duplicate key, a stale version. Nothing is written, the
	// items stay.
	if _, err := db.Commit(ctx, &bot.Commit{Key: "k1", At: at, Inbox: 2, Effects: []bot.Effect{{Kind: bot.EffectThreadPost, Text: "x"}}}); !errors.Is(err, bot.ErrDuplicate) {
		t.Fatalf("duplicate key: %v", err)
	}
	if _, err := db.Commit(ctx, &bot.Commit{Escalation: saved, Expect: 7, At: at, Inbox: 3, Events: []bot.Event{{Kind: bot.EventMRUpdated, Actor: "system", At: at}}}); !errors.Is(err, bot.ErrConflict) {
		t.Fatalf("stale version: %v", err)
	}
	// An item already gone is no error.
	if _, err := db.Commit(ctx, &bot.Commit{At: at, Inbox: 1, Effects: []bot.Effect{{Kind: bot.EffectThreadPost, Text: "y"}}}); err != nil {
		t.Fatalf("commit finishing a removed item: %v", err)
	}
	db.Close()
	db = mustOpenDir(t, dir)
	items, err := db.InboxDue(ctx, at, 0)
	if err != nil {
		t.Fatal(err)
	}
	var ids []uint64
	for _, it := range items {
		ids = append(ids, it.ID)
	}
	if fmt.Sprint(ids) != "[2 3]" {
		t.Errorf("inbox after reopen = %v, want [2 3]", ids)
	}
}

// TestInboxDoneBatch: InboxDone removes many items in one write, skips
// those gone, and writes nothing when all are gone.
func TestInboxDoneBatch(t *testing.T) {
	dir := t.TempDir()
	db := mustOpenDir(t, dir)
	at := time.Date(2026, 11, 2, 9, 0, 0, 0, time.UTC)
	for i := range 5 {
		if _, err := db.Enqueue(ctx, fmt.Sprintf("uuid-%d", i), "Merge Request Hook", []byte(`{}`), at); err != nil {
			t.Fatal(err)
		}
	}
	before := db.WriteTxs()
	if err := db.InboxDone(ctx, 1, 3, 4, 99); err != nil {
		t.Fatal(err)
	}
	if n := db.WriteTxs() - before; n != 1 {
		t.Errorf("InboxDone of 3 items wrote %d times, want 1", n)
	}
	before = db.WriteTxs()
	if err := db.InboxDone(ctx, 1, 3, 99); err != nil {
		t.Fatal(err)
	}
	if n := db.WriteTxs() - before; n != 0 {
		t.Errorf("InboxDone of items all gone wrote %d times, want 0", n)
	}
	db.Close()
	db = mustOpenDir(t, dir)
	items, _ := db.InboxDue(ctx, at, 0)
	if len(items) != 2 || items[0].ID != 2 || items[1].ID != 5 {
		t.Errorf("inbox after reopen = %+v, want items 2 and 5", items)
	}
}

// TestSettleEffects: one transaction records a round's outcomes in order
// (a head done makes its follower due, which may fail in the same round),
// skips effects gone, records the thread an effect opened, and holds
// across a reopen.
func TestSettleEffects(t *testing.T) {
	dir := t.TempDir()
	db := mustOpenDir(t, dir)
	at := time.Date(2026, 11, 2, 9, 0, 0, 0, time.UTC)
	if _, err := db.Commit(ctx, &bot.Commit{At: at, Effects: []bot.Effect{
		{Kind: bot.EffectThreadSummary, Escalation: "ESC-1", Text: "card"},
		{Kind: bot.EffectThreadPost, Escalation: "ESC-1", Text: "one"},
		{Kind: bot.EffectThreadPost, Escalation: "ESC-1", Text: "two"},
		{Kind: bot.EffectThreadPost, Escalation: "ESC-2", Text: "other"},
	}}); err != nil {
		t.Fatal(err)
	}
	due, err := db.DueEffects(ctx, at, 0)
	if err != nil || len(due) != 2 {
		t.Fatalf("due = %d, %v; want the two queue heads", len(due), err)
	}
	pending, _ := db.PendingEffects(ctx, 0)
	ids := map[string]string{}
	for _, rec := range pending {
		ids[rec.Effect.Escalation+"/"+rec.Effect.Text] = rec.Effect.ID
	}
	thread := bot.MessageRef{Channel: "C1", TS: "1.0"}
	before := db.WriteTxs()
	err = db.SettleEffects(ctx, []bot.Outcome{
		{ID: ids["ESC-1/card"], Thread: thread, Escalation: "ESC-1", Sink: bot.SinkChat},
		{ID: ids["ESC-1/one"], Failed: true, Next: at.Add(time.Minute), Err: "503"},
		{ID: ids["ESC-2/other"]},
		{ID: "ESC-9/00000000000000000000-1/000"}, // gone: skipped
	})
	if err != nil {
		t.Fatal(err)
	}
	if n := db.WriteTxs() - before; n != 1 {
		t.Errorf("settling 4 outcomes wrote %d times, want 1", n)
	}
	db.Close()
	db = mustOpenDir(t, dir)
	if ref, _ := db.ThreadRef(ctx, "ESC-1", bot.SinkChat); ref != thread {
		t.Errorf("thread of ESC-1 = %+v, want %+v", ref, thread)
	}
	if due, _ := db.DueEffects(ctx, at, 0); len(due) != 0 {
		t.Errorf("due at once after settling = %+v, want none (the follower failed and waits)", due)
	}
	due, _ = db.DueEffects(ctx, at.Add(time.Minute), 0)
	if len(due) != 1 || due[0].Effect.ID != ids["ESC-1/one"] || due[0].Attempts != 1 || due[0].LastError != "503" {
		t.Errorf("due a minute later = %+v, want post one after its failed attempt", due)
	}
	if pending, _ := db.PendingEffects(ctx, 0); len(pending) != 2 {
		t.Errorf("%d effects waiting, want 2 (posts one and two)", len(pending))
	}
}

// TestInboxRecordForms: an item written before the raw-body record form
// (JSON, body in base64) and one written now are read alike, the body
// byte for byte; rescheduling the old one rewrites it in the new form.
func TestInboxRecordForms(t *testing.T) {
	dir := t.TempDir()
	db := mustOpenDir(t, dir)
	at := time.Date(2026, 11, 2, 9, 0, 0, 0, time.UTC)
	old := InboxItem{ID: 1, Key: "gitlab:old", Kind: "Merge Request Hook", Body: []byte("{\"a\":\"\xff\x00\"}"), At: at, NextAttempt: at}
	err := db.bolt.Update(func(tx *bolt.Tx) error {
		rec, err := json.Marshal(old)
		if err != nil {
			return err
		}
		if _, err := tx.Bucket(bucketInbox).NextSequence(); err != nil {
			return err
		}
		return putInboxRecord(tx, 1, at, rec)
	})
	if err != nil {
		t.Fatal(err)
	}
	body := []byte("{\"b\":1}\n\x01raw")
	if _, err := db.Enqueue(ctx, "gitlab:new", "Note Hook", body, at); err != nil {
		t.Fatal(err)
	}
	db.Close()
	db = mustOpenDir(t, dir)
	items, err := db.InboxDue(ctx, at, 0)
	if err != nil || len(items) != 2 {
		t.Fatalf("InboxDue = %d items, %v", len(items), err)
	}
	if !reflect.DeepEqual(items[0], old) {
		t.Errorf("old item:\n got %+v\nwant %+v", items[0], old)
	}
	if n := (InboxItem{ID: 2, Key: "gitlab:new", Kind: "Note Hook", Body: body, At: at, NextAttempt: at}); !reflect.DeepEqual(items[1], n) {
		t.Errorf("new item:\n got %+v\nwant %+v", items[1], n)
	}
	if err := db.InboxFailed(ctx, 1, at.Add(time.Minute), "gitlab down"); err != nil {
		t.Fatal(err)
	}
	db.bolt.View(func(tx *bolt.Tx) error {
		if v := tx.Bucket(bucketInbox).Get(u64(1)); len(v) == 0 || v[0] != inboxRecordV2 {
			t.Errorf("rescheduled old item is stored as %q, want the new form", v)
		}
		return nil
	})
	items, _ = db.InboxDue(ctx, at.Add(time.Minute), 0)
	if len(items) != 2 || !bytes.Equal(items[0].Body, old.Body) || items[0].Attempts != 1 || items[0].LastError != "gitlab down" {
		t.Errorf("rescheduled old item = %+v", items[0])
	}
}

// TestDueQueuesReadsRunsBehindHeads: each queue head comes with up to
// depth of the effects behind it, in order, each naming the one before it;
// a parked effect comes alone; limit counts every record.
func TestDueQueuesReadsRunsBehindHeads(t *testing.T) {
	db := mustOpen(t)
	at := time.Date(2026, 11, 2, 9, 0, 0, 0, time.UTC)
	var effs []bot.Effect
	for i := range 4 {
		effs = append(effs, bot.Effect{Kind: bot.EffectThreadPost, Escalation: "ESC-1", Text: fmt.Sprint("a", i)})
	}
	effs = append(effs, bot.Effect{Kind: bot.EffectThreadPost, Escalation: "ESC-2", Text: "b0"})
	if _, err := db.Commit(ctx, &bot.Commit{At: at, Effects: effs}); err != nil {
		t.Fatal(err)
	}
	show := func(recs []OutboxRecord) string {
		var s []string
		for _, r := range recs {
			behind := ""
			if r.Behind != "" {
				behind = "<" + r.Behind[len(r.Behind)-3:]
			}
			s = append(s, r.Effect.Text+behind)
		}
		return fmt.Sprint(s)
	}
	recs, err := db.DueQueues(ctx, at, 0, 2)
	if err != nil {
		t.Fatal(err)
	}
	if got := show(recs); got != "[a0 a1<000 a2<001 b0]" {
		t.Errorf("DueQueues(depth 2) = %s, want [a0 a1<000 a2<001 b0]", got)
	}
	if recs, _ := db.DueQueues(ctx, at, 2, 5); show(recs) != "[a0 a1<000]" {
		t.Errorf("DueQueues(limit 2) = %s, want [a0 a1<000]", show(recs))
	}
	if recs, _ := db.DueEffects(ctx, at, 0); show(recs) != "[a0 b0]" {
		t.Errorf("DueEffects = %s, want the heads [a0 b0]", show(recs))
	}
	// The head parked: it comes alone, and a1 heads the queue.
	if err := db.EffectFailed(ctx, recs[0].Effect.ID, at, "permanent: 404", true); err != nil {
		t.Fatal(err)
	}
	if recs, _ := db.DueQueues(ctx, at, 0, 1); show(recs) != "[a0 a1 a2<001 b0]" {
		t.Errorf("after parking a0: DueQueues = %s, want [a0 a1 a2<001 b0]", show(recs))
	}
}
