package store

import (
	"slices"
	"testing"
	"time"

	"github.com/threatgate/threatgate/bot"
)

func TestFindOpenOrderAndRemoval(t *testing.T) {
	db := mustOpen(t)
	h := time.Hour
	e1 := mustCommit(t, db, openCommit("acme/api", 1, t0, t0.Add(30*h)))
	e2 := mustCommit(t, db, openCommit("acme/api", 2, t0, t0.Add(10*h)))
	e3 := mustCommit(t, db, openCommit("acme/api", 3, t0, t0.Add(20*h)))
	e4 := mustCommit(t, db, openCommit("acme/api", 4, t0, time.Time{})) // no deadline: last
	wantOpen := func(want ...string) {
		t.Helper()
		open, err := db.FindOpen(ctx)
		if err != nil {
			t.Fatalf("FindOpen: %v", err)
		}
		if !slices.Equal(ids(open), want) {
			t.Errorf("FindOpen = %v, want %v", ids(open), want)
		}
		if n := keyCount(t, db, bucketOpenByDeadline); n != len(want) {
			t.Errorf("open_by_deadline has %d entries, want %d", n, len(want))
		}
	}
	wantOpen("ESC-2", "ESC-3", "ESC-1", "ESC-4")

	// ESC-2 approved: no longer open.
	at := t0.Add(h)
	e2 = mustCommit(t, db, change(e2, stateChanged(e2, "bob", bot.StateApproved, at), func(e *bot.Escalation) {
		e.State, e.DecidedAt = bot.StateApproved, at
	}))
	wantOpen("ESC-3", "ESC-1", "ESC-4")

	// ESC-1's tier rose: a tighter deadline moves it first.
	e1 = mustCommit(t, db, change(e1, bot.Event{Kind: bot.EventTierRaised, Actor: "system", At: at, Data: bot.EventData{Tier: "T3", DecisionDue: t0.Add(5 * h)}}, func(e *bot.Escalation) {
		e.Tier, e.DecisionDue = "T3", t0.Add(5*h)
	}))
	wantOpen("ESC-1", "ESC-3", "ESC-4")

	// Deferred is still active.
	e3 = mustCommit(t, db, change(e3, stateChanged(e3, "bob", bot.StateDeferred, at), func(e *bot.Escalation) {
		e.Resume, e.State, e.DeferredUntil = e.State, bot.StateDeferred, t0.Add(100*h)
	}))
	wantOpen("ESC-1", "ESC-3", "ESC-4")

	// Approved ESC-2 merges, ESC-3 is withdrawn, ESC-4 merged as a bypass.
	mustCommit(t, db, change(e2, bot.Event{Kind: bot.EventMerged, Actor: "system", At: at}, func(e *bot.Escalation) { e.State = bot.StateMerged }))
	mustCommit(t, db, change(e3, stateChanged(e3, "system", bot.StateWithdrawn, at), func(e *bot.Escalation) { e.State = bot.StateWithdrawn }))
	mustCommit(t, db, change(e4, bot.Event{Kind: bot.EventMerged, Actor: "system", At: at, Data: bot.EventData{Bypassed: true}}, func(e *bot.Escalation) {
		e.State, e.Bypassed = bot.StateMerged, true
	}))
	wantOpen("ESC-1")

	// An MR reopened: ESC-3 resumes where it was.
	e3, _ = db.FindEscalation(ctx, "ESC-3")
	mustCommit(t, db, change(e3, stateChanged(e3, "system", bot.StateInReview, at), func(e *bot.Escalation) { e.State = bot.StateInReview }))
	wantOpen("ESC-1", "ESC-3")

	mustCommit(t, db, change(e1, stateChanged(e1, "bob", bot.StateRejected, at), func(e *bot.Escalation) { e.State = bot.StateRejected }))
	wantOpen("ESC-3")
}

func TestFindWaitingOnFollowsWaiting(t *testing.T) {
	db := mustOpen(t)
	h := time.Hour
	e1 := mustCommit(t, db, openCommit("acme/api", 1, t0, t0.Add(20*h), "bob", "carol"))
	mustCommit(t, db, openCommit("acme/api", 2, t0, t0.Add(10*h), "carol"))
	wantWaiting := func(person string, want ...string) {
		t.Helper()
		got, err := db.FindWaitingOn(ctx, person)
		if err != nil {
			t.Fatalf("FindWaitingOn(%s): %v", person, err)
		}
		if !slices.Equal(ids(got), want) {
			t.Errorf("FindWaitingOn(%s) = %v, want %v", person, ids(got), want)
		}
	}
	wantWaiting("bob", "ESC-1")
	wantWaiting("carol", "ESC-2", "ESC-1") // earliest deadline first
	wantWaiting("bo")                      // a prefix of a name is not the name

	at := t0.Add(h)
	e1 = mustCommit(t, db, change(e1, bot.Event{Kind: bot.EventApproved, Actor: "bob", At: at, SHA: "c0ffee"}, func(e *bot.Escalation) {
		e.Approvals = append(e.Approvals, bot.Decision{By: "bob", SHA: "c0ffee", At: at})
		e.Waiting = []string{"carol", "dave"}
	}))
	wantWaiting("bob")
	wantWaiting("dave", "ESC-1")
	wantWaiting("carol", "ESC-2", "ESC-1")

	mustCommit(t, db, change(e1, stateChanged(e1, "system", bot.StateApproved, at), func(e *bot.Escalation) {
		e.State = bot.StateApproved // Waiting left as it was: only active escalations are indexed
	}))
	wantWaiting("carol", "ESC-2")
	wantWaiting("dave")
	if n := keyCount(t, db, bucketByApprover); n != 1 {
		t.Errorf("by_approver has %d entries, want 1", n)
	}
}

// TestFindByMRIgnoresCase: GitLab paths are not case-sensitive, so
// Shop/API!12 and shop/api!12 are one MR with one escalation.
func TestFindByMRIgnoresCase(t *testing.T) {
	db := mustOpen(t)
	mustCommit(t, db, openCommit("Shop/API", 12, t0, t0))
	for _, p := range []string{"shop/api", "SHOP/API", "Shop/API"} {
		if e, err := db.FindByMR(ctx, p, 12); err != nil || e.ID != "ESC-1" {
			t.Errorf("FindByMR(%s!12) = %v, %v", p, e, err)
		}
	}
	if _, err := db.Commit(ctx, openCommit("shop/api", 12, t0, t0)); err == nil {
		t.Errorf("a second escalation of the same MR in another case was stored")
	}
}
