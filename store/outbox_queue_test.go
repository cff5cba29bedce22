package store

import (
	"encoding/json"
	"errors"
	"slices"
	"testing"
	"time"

	bolt "go.etcd.io/bbolt"

	"github.com/threatgate/threatgate/bot"
)

// queued commits effects of ESC-1 (opened first) at at and returns their ids.
func queued(t *testing.T, db *DB, esc *bot.Escalation, at time.Time, effects ...bot.Effect) []string {
	t.Helper()
	c := &bot.Commit{Effects: effects, At: at}
	for i := range c.Effects {
		c.Effects[i].Escalation = esc.ID
	}
	mustCommit(t, db, c)
	recs, err := db.PendingEffects(ctx, 0)
	if err != nil {
		t.Fatal(err)
	}
	return effectIDs(recs)
}

func due(t *testing.T, db *DB, now time.Time) []OutboxRecord {
	t.Helper()
	recs, err := db.DueEffects(ctx, now, 0)
	if err != nil {
		t.Fatal(err)
	}
	return recs
}

func kindsSinks(recs []OutboxRecord) []string {
	var out []string
	for _, r := range recs {
		s := string(r.Effect.Kind) + "@" + r.Effect.Sink
		if r.Superseded {
			s += " superseded"
		}
		out = append(out, s)
	}
	return out
}

// TestOutboxQueuesPerSink: each (sink, escalation) is a queue; only its
// head is due, so a failing chat post holds back later posts and nothing of
// GitLab's; a parked effect holds nothing back; a status superseded by a
// newer one of the same head is marked, and a delivered status retires the
// older ones still parked.
func TestOutboxQueuesPerSink(t *testing.T) {
	db := mustOpen(t)
	esc := mustCommit(t, db, &bot.Commit{Escalation: bot.Replay([]bot.Event{opened("acme/api", 1, "system", t0, t0)}), Events: []bot.Event{opened("acme/api", 1, "system", t0, t0)}, At: t0})
	ids := queued(t, db, esc, t0,
		bot.Effect{Kind: bot.EffectStatus, SHA: "aaa", Status: "pending"},
		bot.Effect{Kind: bot.EffectThreadPost, Text: "one"},
		bot.Effect{Kind: bot.EffectMRNote, Text: "note"},
		bot.Effect{Kind: bot.EffectThreadPost, Text: "two"},
	)
	status, post1, note, post2 := ids[0], ids[1], ids[2], ids[3]
	if got := kindsSinks(due(t, db, t0)); !slices.Equal(got, []string{"status@forge", "thread_post@chat"}) {
		t.Fatalf("due = %v, want the heads of the forge and chat queues", got)
	}
	// Chat is down: its head waits; the forge queue goes on.
	if err := db.EffectFailed(ctx, post1, t0.Add(time.Hour), "503", false); err != nil {
		t.Fatal(err)
	}
	if err := db.EffectDone(ctx, status); err != nil {
		t.Fatal(err)
	}
	if got := effectIDs(due(t, db, t0.Add(time.Minute))); !slices.Equal(got, []string{note}) {
		t.Errorf("due while chat is down = %v, want only the note (post two waits behind post one)", got)
	}
	// Post one fails for good: parked, post two goes on.
	if err := db.EffectFailed(ctx, post1, t0.Add(6*time.Hour), "permanent: 403", true); err != nil {
		t.Fatal(err)
	}
	if got := effectIDs(due(t, db, t0.Add(time.Minute))); !slices.Equal(got, []string{note, post2}) {
		t.Errorf("due after parking = %v, want note and post two", got)
	}

	// Statuses of one head: an older one parked, a newer one queued.
	ids = queued(t, db, esc, t0.Add(2*time.Minute), bot.Effect{Kind: bot.EffectStatus, SHA: "bbb", Status: "success"})
	success := ids[len(ids)-1]
	if err := db.EffectFailed(ctx, success, t0.Add(6*time.Hour), "permanent: 403", true); err != nil {
		t.Fatal(err)
	}
	ids = queued(t, db, esc, t0.Add(3*time.Minute), bot.Effect{Kind: bot.EffectStatus, SHA: "bbb", Status: "pending"})
	pending := ids[len(ids)-1]
	if got := due(t, db, t0.Add(7*time.Hour)); !slices.ContainsFunc(got, func(r OutboxRecord) bool { return r.Effect.ID == success && r.Superseded }) {
		t.Errorf("the older parked success is not marked superseded: %v", kindsSinks(got))
	}
	if err := db.EffectDone(ctx, note); err != nil {
		t.Fatal(err)
	}
	if err := db.EffectDone(ctx, pending); err != nil {
		t.Fatal(err)
	}
	// The newer status went out; the older success, when it comes due, is
	// still superseded (never sent after it), and then dropped.
	got := due(t, db, t0.Add(7*time.Hour))
	if !slices.ContainsFunc(got, func(r OutboxRecord) bool { return r.Effect.ID == success && r.Superseded }) {
		t.Errorf("after the newer status went out, the older success is not marked superseded: %v", kindsSinks(got))
	}
	if err := db.EffectDone(ctx, success); err != nil {
		t.Fatal(err)
	}
	if n := keyCount(t, db, bucketOutboxLatest); n != 0 {
		t.Errorf("outbox_latest has %d entries once nothing waits, want 0", n)
	}
}

// TestThreadRefs: the first reference recorded for an escalation on a sink
// stays; others are ignored; it survives a reopen.
func TestThreadRefs(t *testing.T) {
	dir := t.TempDir()
	db := mustOpenDir(t, dir)
	if ref, err := db.ThreadRef(ctx, "ESC-1", "console"); err != nil || ref != (bot.MessageRef{}) {
		t.Fatalf("no thread yet: %+v, %v", ref, err)
	}
	first := bot.MessageRef{Channel: "C1", TS: "1.0"}
	if err := db.SetThreadRef(ctx, "ESC-1", "console", first); err != nil {
		t.Fatal(err)
	}
	if err := db.SetThreadRef(ctx, "ESC-1", "console", bot.MessageRef{Channel: "C2", TS: "2.0"}); err != nil {
		t.Fatal(err)
	}
	mustClose(t, db)
	db = mustOpenDir(t, dir)
	if ref, _ := db.ThreadRef(ctx, "ESC-1", "console"); ref != first {
		t.Errorf("ThreadRef = %+v, want %+v", ref, first)
	}
	if ref, _ := db.ThreadRef(ctx, "ESC-1", "slack"); ref != (bot.MessageRef{}) {
		t.Errorf("another sink shares the thread: %+v", ref)
	}
	// The reverse: a reply in the thread finds its escalation, on that
	// sink only, and only through the reference that was kept.
	if esc, err := db.EscalationOfThread(ctx, "console", first); err != nil || esc != "ESC-1" {
		t.Errorf("EscalationOfThread(first) = %q, %v; want ESC-1", esc, err)
	}
	for _, tc := range []struct {
		sink string
		ref  bot.MessageRef
	}{{"console", bot.MessageRef{Channel: "C2", TS: "2.0"}}, {"slack", first}, {"console", bot.MessageRef{Channel: "C1", TS: "1.00"}}} {
		if esc, err := db.EscalationOfThread(ctx, tc.sink, tc.ref); !errors.Is(err, bot.ErrNotFound) {
			t.Errorf("EscalationOfThread(%s, %+v) = %q, %v; want not found", tc.sink, tc.ref, esc, err)
		}
	}
}

// TestMigrateOutboxToQueues: a file written before the queues (schema 1)
// keeps every waiting effect, in order, with only queue heads due.
func TestMigrateOutboxToQueues(t *testing.T) {
	dir := t.TempDir()
	db := mustOpenDir(t, dir, withMigrations(migrations[:1]))
	// The old layout: every record in outbox_due, no sink.
	if err := db.bolt.Update(func(tx *bolt.Tx) error {
		for i, ef := range []bot.Effect{
			{ID: "ESC-1/00000000000000000002/001", Escalation: "ESC-1", Kind: bot.EffectStatus, SHA: "a", Status: "pending"},
			{ID: "ESC-1/00000000000000000002/002", Escalation: "ESC-1", Kind: bot.EffectMRNote, Text: "n"},
			{ID: "ESC-1/00000000000000000002/003", Escalation: "ESC-1", Kind: bot.EffectThreadPost, Text: "p"},
			{ID: "ESC-2/00000000000000000003/001", Escalation: "ESC-2", Kind: bot.EffectMRNote, Text: "n2"},
		} {
			rec := OutboxRecord{Effect: ef, Created: t0, NextAttempt: t0.Add(time.Duration(i) * time.Second)}
			v, _ := json.Marshal(rec)
			if err := tx.Bucket(bucketOutbox).Put([]byte(ef.ID), v); err != nil {
				return err
			}
			if err := tx.Bucket(bucketOutboxDue).Put(dueKey(&rec), nil); err != nil {
				return err
			}
		}
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	mustClose(t, db)
	db = mustOpenDir(t, dir)
	got := due(t, db, t0.Add(time.Hour))
	if ids := effectIDs(got); !slices.Equal(ids, []string{"ESC-1/00000000000000000002/001", "ESC-1/00000000000000000002/003", "ESC-2/00000000000000000003/001"}) {
		t.Errorf("due after migration = %v, want the heads: ESC-1's status and post, ESC-2's note", ids)
	}
	if err := db.EffectDone(ctx, "ESC-1/00000000000000000002/001"); err != nil {
		t.Fatal(err)
	}
	if ids := effectIDs(due(t, db, t0.Add(time.Hour))); !slices.Contains(ids, "ESC-1/00000000000000000002/002") {
		t.Errorf("the note did not follow the status: %v", ids)
	}
	if n, _ := db.OutboxDepth(ctx); n != 3 {
		t.Errorf("OutboxDepth = %d, want 3", n)
	}
}

// TestQueueOrderIsEnqueueOrder: a commit without events (a status check
// answered, an answer) gets an id that sorts before the previous commit's;
// its effects still wait behind that commit's in their queue.
func TestQueueOrderIsEnqueueOrder(t *testing.T) {
	db := mustOpen(t)
	c := openCommit("acme/api", 1, t0, t0)
	c.Effects = []bot.Effect{{Kind: bot.EffectMRNote, Text: "first"}, {Kind: bot.EffectMRNote, Text: "second"}}
	esc := mustCommit(t, db, c)
	mustCommit(t, db, &bot.Commit{Effects: []bot.Effect{{Kind: bot.EffectMRNote, Escalation: esc.ID, Text: "later"}}, At: t0})
	var order []string
	for range 3 {
		got := due(t, db, t0)
		if len(got) != 1 {
			t.Fatalf("due = %v, want one head", effectIDs(got))
		}
		order = append(order, got[0].Effect.Text)
		if err := db.EffectDone(ctx, got[0].Effect.ID); err != nil {
			t.Fatal(err)
		}
	}
	if !slices.Equal(order, []string{"first", "second", "later"}) {
		t.Errorf("delivered %v, want first, second, later", order)
	}
}

// TestMigratedPermanentFailureHoldsNothingUp: before queues, an effect that
// failed for good held nothing up; migrated, it is parked, not a queue
// head that blocks the rest for hours.
func TestMigratedPermanentFailureHoldsNothingUp(t *testing.T) {
	dir := t.TempDir()
	db := mustOpenDir(t, dir, withMigrations(migrations[:1]))
	if err := db.bolt.Update(func(tx *bolt.Tx) error {
		for _, rec := range []OutboxRecord{
			{Effect: bot.Effect{ID: "ESC-1/00000000000000000002/001", Escalation: "ESC-1", Kind: bot.EffectStatus, SHA: "a", Status: "pending"},
				Attempts: 1, LastError: "permanent: 403 forbidden", Created: t0, NextAttempt: t0.Add(6 * time.Hour)},
			{Effect: bot.Effect{ID: "ESC-1/00000000000000000002/002", Escalation: "ESC-1", Kind: bot.EffectMRNote, Text: "n"}, Created: t0, NextAttempt: t0},
		} {
			v, _ := json.Marshal(rec)
			if err := tx.Bucket(bucketOutbox).Put([]byte(rec.Effect.ID), v); err != nil {
				return err
			}
			if err := tx.Bucket(bucketOutboxDue).Put(dueKey(&rec), nil); err != nil {
				return err
			}
		}
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	mustClose(t, db)
	db = mustOpenDir(t, dir)
	if ids := effectIDs(due(t, db, t0.Add(time.Minute))); !slices.Equal(ids, []string{"ESC-1/00000000000000000002/002"}) {
		t.Errorf("due after migration = %v, want the note (the permanent failure is parked)", ids)
	}
	if ids := effectIDs(due(t, db, t0.Add(7*time.Hour))); !slices.Contains(ids, "ESC-1/00000000000000000002/001") {
		t.Errorf("the parked status is not retried on its own: %v", ids)
	}
}
