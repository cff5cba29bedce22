package store

import (
	"testing"
	"time"

	bolt "go.etcd.io/bbolt"

	"github.com/threatgate/threatgate/bot"
)

func awayEvent(person string, at, until time.Time) bot.Event {
	return bot.Event{Kind: bot.EventAway, Actor: person, At: at, Data: bot.EventData{Person: person, Until: until}}
}

// TestAway: Commit keeps what away events record, per person, without an
// escalation; Away reads who is away at a time; it survives a reopen.
func TestAway(t *testing.T) {
	dir := t.TempDir()
	db := mustOpenDir(t, dir)
	day := func(d int) time.Time { return time.Date(2026, 5, d, 0, 0, 0, 0, time.UTC) }

	// An absence next to an escalation's commit: the escalation's events are
	// stamped, the absence is not.
	c := openCommit("acme/api", 1, t0, t0.Add(48*time.Hour))
	c.Events = append(c.Events, awayEvent("ann", t0, day(11)))
	mustCommit(t, db, c)
	mustCommit(t, db, &bot.Commit{Events: []bot.Event{awayEvent("bob", t0, day(8))}, At: t0})
	mustCommit(t, db, &bot.Commit{Events: []bot.Event{awayEvent("carol", t0, day(20)), awayEvent("carol", t0, time.Time{})}, At: t0})

	evs, err := db.Events(ctx, "ESC-1")
	if err != nil || len(evs) != 1 {
		t.Fatalf("ESC-1's events = %d, %v; want only its own", len(evs), err)
	}

	for _, tt := range []struct {
		at   time.Time
		want map[string]time.Time
	}{
		{t0, map[string]time.Time{"ann": day(11), "bob": day(8)}},
		{day(8), map[string]time.Time{"ann": day(11)}},
		{day(11), map[string]time.Time{}},
	} {
		got, err := db.Away(ctx, tt.at)
		if err != nil {
			t.Fatal(err)
		}
		if len(got) != len(tt.want) {
			t.Errorf("Away(%s) = %v, want %v", tt.at.Format(time.DateOnly), got, tt.want)
			continue
		}
		for p, u := range tt.want {
			if !got[p].Equal(u) {
				t.Errorf("Away(%s)[%s] = %v, want %v", tt.at.Format(time.DateOnly), p, got[p], u)
			}
		}
	}

	// Back: the entry goes. A later absence replaces an earlier one, and
	// entries that have ended are pruned as absences are recorded.
	mustCommit(t, db, &bot.Commit{Events: []bot.Event{awayEvent("ann", t0, time.Time{}), awayEvent("dave", day(9), day(30))}, At: day(9)})
	mustClose(t, db)
	db = mustOpenDir(t, dir)
	got, err := db.Away(ctx, t0)
	if err != nil || len(got) != 1 || !got["dave"].Equal(day(30)) {
		t.Errorf("Away after ann came back, reopened = %v, %v; want dave only", got, err)
	}
	var keys int
	if err := db.bolt.View(func(tx *bolt.Tx) error { keys = tx.Bucket(bucketAway).Stats().KeyN; return nil }); err != nil {
		t.Fatal(err)
	}
	if keys != 1 {
		t.Errorf("the away bucket holds %d keys, want 1 (bob's ended absence pruned)", keys)
	}
}

// TestMigrateAway: a file from before absences were kept gets the bucket.
func TestMigrateAway(t *testing.T) {
	dir := t.TempDir()
	db := mustOpenDir(t, dir, withMigrations(migrations[:5]))
	if err := db.bolt.View(func(tx *bolt.Tx) error {
		if tx.Bucket(bucketAway) != nil {
			t.Error("schema 5 already has the away bucket")
		}
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	mustClose(t, db)
	db = mustOpenDir(t, dir)
	if err := db.bolt.View(func(tx *bolt.Tx) error {
		if tx.Bucket(bucketAway) == nil || schemaVersion(tx) < 6 {
			t.Errorf("after migrating: schema %d, away bucket %v", schemaVersion(tx), tx.Bucket(bucketAway) != nil)
		}
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	if got, err := db.Away(ctx, t0); err != nil || len(got) != 0 {
		t.Errorf("Away on a migrated file = %v, %v", got, err)
	}
}

// TestCountOpen: the open index's size, without reading escalations;
// closed ones do not count.
func TestCountOpen(t *testing.T) {
	db := mustOpen(t)
	if n, err := db.CountOpen(ctx); err != nil || n != 0 {
		t.Fatalf("CountOpen of an empty store = %d, %v", n, err)
	}
	for i := int64(1); i <= 3; i++ {
		mustCommit(t, db, openCommit("acme/api", i, t0, t0.Add(time.Duration(i)*time.Hour)))
	}
	if n, err := db.CountOpen(ctx); err != nil || n != 3 {
		t.Errorf("CountOpen = %d, %v; want 3", n, err)
	}
	e, err := db.FindEscalation(ctx, "ESC-2")
	if err != nil {
		t.Fatal(err)
	}
	ev := bot.Event{Kind: bot.EventStateChanged, Actor: "system", At: t0, Data: bot.EventData{From: e.State, To: bot.StateMerged}}
	closed := bot.Replay(append(mustEvents(t, db, "ESC-2"), ev))
	mustCommit(t, db, &bot.Commit{Escalation: closed, Expect: e.Version, Events: []bot.Event{ev}, At: t0})
	if n, _ := db.CountOpen(ctx); n != 2 {
		t.Errorf("CountOpen after a merge = %d, want 2", n)
	}
	open, _ := db.FindOpen(ctx)
	if len(open) != 2 {
		t.Errorf("FindOpen = %d, CountOpen disagrees", len(open))
	}
}

func mustEvents(tb testing.TB, db *DB, id string) []bot.Event {
	tb.Helper()
	evs, err := db.Events(ctx, id)
	if err != nil {
		tb.Fatal(err)
	}
	return evs
}
