package store

import (
	"context"
	"errors"
	"testing"
	"time"

	bolt "go.etcd.io/bbolt"

	"github.com/threatgate/threatgate/bot"
)

var (
	ctx = context.Background()
	t0  = time.Date(2026, 5, 4, 9, 0, 0, 0, time.UTC)
)

// mustOpen opens a store in a new temporary directory. Cleanup verifies
// the audit chain, failing the test when it is broken, and closes it.
func mustOpen(tb testing.TB, opts ...Option) *DB {
	tb.Helper()
	return mustOpenDir(tb, tb.TempDir(), opts...)
}

// mustOpenDir is mustOpen on a given directory, to reopen a file.
func mustOpenDir(tb testing.TB, dir string, opts ...Option) *DB {
	tb.Helper()
	db, err := Open(dir, append([]Option{NoSync()}, opts...)...)
	if err != nil {
		tb.Fatalf("Open(%s): %v", dir, err)
	}
	tb.Cleanup(func() {
		// A test that closed the store itself has checked what it wanted.
		if _, err := db.Verify(ctx); err != nil && !errors.Is(err, bolt.ErrDatabaseNotOpen) {
			tb.Errorf("audit chain: %v", err)
		}
		if err := db.Close(); err != nil {
			tb.Errorf("Close: %v", err)
		}
	})
	return db
}

// mustClose closes db, so that the test can open its file again.
func mustClose(tb testing.TB, db *DB) {
	tb.Helper()
	if err := db.Close(); err != nil {
		tb.Fatalf("Close: %v", err)
	}
}

func mustCommit(tb testing.TB, db *DB, c *bot.Commit) *bot.Escalation {
	tb.Helper()
	e, err := db.Commit(ctx, c)
	if err != nil {
		tb.Fatalf("Commit: %v", err)
	}
	return e
}

// opened is the event that opens an escalation of project!iid, in review
// until due.
func opened(project string, iid int64, actor string, at, due time.Time) bot.Event {
	return bot.Event{
		Kind: bot.EventOpened, Actor: actor, At: at, SHA: "c0ffee",
		Data: bot.EventData{Project: project, MRIID: iid, Author: "ann", Tier: "T2", DecisionDue: due, To: bot.StateInReview},
	}
}

// openCommit opens a new escalation of project!iid due at due, waiting on
// the given people, with an MR note and a reply as effects.
func openCommit(project string, iid int64, at, due time.Time, waiting ...string) *bot.Commit {
	ev := opened(project, iid, "system", at, due)
	esc := bot.Replay([]bot.Event{ev})
	esc.Waiting = waiting
	return &bot.Commit{
		Escalation: esc,
		Events:     []bot.Event{ev},
		Effects: []bot.Effect{
			{Kind: bot.EffectReply, Text: "escalated as " + bot.IDPlaceholder},
			{Kind: bot.EffectMRNote, Project: project, MRIID: iid, Text: "under review"},
		},
		At: at,
	}
}

// change is a commit of one event on esc, whose projection edit makes by
// hand from esc.
func change(esc *bot.Escalation, ev bot.Event, edit func(*bot.Escalation)) *bot.Commit {
	e := esc.Clone()
	e.Version++
	e.UpdatedAt = ev.At
	if edit != nil {
		edit(e)
	}
	return &bot.Commit{Escalation: e, Expect: esc.Version, Events: []bot.Event{ev}, At: ev.At}
}

// stateChanged is the event of esc moving to state to at at.
func stateChanged(esc *bot.Escalation, actor string, to bot.State, at time.Time) bot.Event {
	return bot.Event{Escalation: esc.ID, Kind: bot.EventStateChanged, Actor: actor, At: at, Data: bot.EventData{From: esc.State, To: to}}
}

// allEvents reads the whole log.
func allEvents(tb testing.TB, db *DB) []bot.Event {
	tb.Helper()
	var out []bot.Event
	if err := db.AllEvents(ctx, func(ev bot.Event) error { out = append(out, ev); return nil }); err != nil {
		tb.Fatalf("AllEvents: %v", err)
	}
	return out
}

// keyCount counts the keys of a bucket.
func keyCount(tb testing.TB, db *DB, bucket []byte) int {
	tb.Helper()
	var n int
	if err := db.bolt.View(func(tx *bolt.Tx) error { n = tx.Bucket(bucket).Stats().KeyN; return nil }); err != nil {
		tb.Fatal(err)
	}
	return n
}

func ids(es []*bot.Escalation) []string {
	out := []string{}
	for _, e := range es {
		out = append(out, e.ID)
	}
	return out
}
