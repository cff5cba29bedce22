package store

import (
	"context"
	"testing"
	"time"

	"github.com/threatgate/threatgate/bot"
)

// TestCommitClearsAnotherTickMark: a projection saved under the mark
// keeps it; one saved under another mark (or none) clears it in the same
// commit; commits without a projection leave it alone.
func TestCommitClearsAnotherTickMark(t *testing.T) {
	db := mustOpen(t)
	ctx := context.Background()
	esc := mustCommit(t, db, openCommit("acme/api", 1, t0, t0.Add(time.Hour)))
	set := func() {
		t.Helper()
		if err := db.SetTickedUnder(ctx, "policy p1 build b1"); err != nil {
			t.Fatal(err)
		}
	}
	mark := func() string {
		t.Helper()
		m, err := db.TickedUnder(ctx)
		if err != nil {
			t.Fatal(err)
		}
		return m
	}
	set()
	c := change(esc, bot.Event{Kind: bot.EventDissent, Actor: "bob", At: t0, Data: bot.EventData{Text: "a"}}, nil)
	c.TickMark = "policy p1 build b1"
	esc = mustCommit(t, db, c)
	if m := mark(); m != "policy p1 build b1" {
		t.Fatalf("a commit under the mark changed it to %q", m)
	}
	mustCommit(t, db, &bot.Commit{Events: []bot.Event{{Kind: bot.EventCapOverridden, Actor: "lead", At: t0, Data: bot.EventData{Person: "ann", Count: 2}}}, At: t0})
	if m := mark(); m == "" {
		t.Fatal("a commit without a projection cleared the mark")
	}
	for _, other := range []string{"policy p2 build b1", ""} {
		set()
		c := change(esc, bot.Event{Kind: bot.EventDissent, Actor: "bob", At: t0, Data: bot.EventData{Text: "b"}}, nil)
		c.TickMark = other
		esc = mustCommit(t, db, c)
		if m := mark(); m != "" {
			t.Errorf("a commit under %q left the mark %q", other, m)
		}
	}
}

// TestConfirmTickedUnder: a pending mark survives commits under its own
// mark and is confirmed; a commit under another removes it, and the
// confirmation then does nothing.
func TestConfirmTickedUnder(t *testing.T) {
	db := mustOpen(t)
	ctx := context.Background()
	esc := mustCommit(t, db, openCommit("acme/api", 1, t0, t0.Add(time.Hour)))
	const m = "policy p1 build b1"
	commitUnder := func(mark string) {
		t.Helper()
		c := change(esc, bot.Event{Kind: bot.EventDissent, Actor: "bob", At: t0, Data: bot.EventData{Text: "x"}}, nil)
		c.TickMark = mark
		esc = mustCommit(t, db, c)
	}
	if err := db.SetTickedUnder(ctx, bot.PendingTickMark(m)); err != nil {
		t.Fatal(err)
	}
	commitUnder(m)
	if ok, err := db.ConfirmTickedUnder(ctx, m); err != nil || !ok {
		t.Fatalf("ConfirmTickedUnder = %v, %v; want true", ok, err)
	}
	if got, _ := db.TickedUnder(ctx); got != m {
		t.Fatalf("mark %q, want %q", got, m)
	}
	if err := db.SetTickedUnder(ctx, bot.PendingTickMark(m)); err != nil {
		t.Fatal(err)
	}
	commitUnder("policy p2 build b1")
	if ok, err := db.ConfirmTickedUnder(ctx, m); err != nil || ok {
		t.Fatalf("ConfirmTickedUnder after a commit under another = %v, %v; want false", ok, err)
	}
	if got, _ := db.TickedUnder(ctx); got != "" {
		t.Fatalf("mark %q, want none", got)
	}
}
