package store

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/threatgate/threatgate/bot"
)

func TestCommitNewEscalationGetsNextID(t *testing.T) {
	db := mustOpen(t)
	c1 := openCommit("acme/api", 1, t0, t0.Add(48*time.Hour))
	e1 := mustCommit(t, db, c1)
	e2 := mustCommit(t, db, openCommit("acme/api", 2, t0, t0.Add(48*time.Hour)))
	if e1.ID != "ESC-1" || e2.ID != "ESC-2" {
		t.Fatalf("IDs = %q, %q, want ESC-1, ESC-2", e1.ID, e2.ID)
	}
	if c1.Escalation.ID != "" || c1.Events[0].Escalation != "" || c1.Events[0].Seq != 0 {
		t.Errorf("Commit modified its argument: %+v", c1)
	}

	got, err := db.FindEscalation(ctx, "ESC-1")
	if err != nil {
		t.Fatalf("FindEscalation: %v", err)
	}
	if got.ID != "ESC-1" || got.Project != "acme/api" || got.MRIID != 1 || got.Version != 1 || got.State != bot.StateInReview {
		t.Errorf("FindEscalation(ESC-1) = %+v", got)
	}
	byMR, err := db.FindByMR(ctx, "acme/api", 2)
	if err != nil || byMR.ID != "ESC-2" {
		t.Errorf("FindByMR(acme/api!2) = %v, %v, want ESC-2", byMR, err)
	}

	evs, err := db.Events(ctx, "ESC-2")
	if err != nil {
		t.Fatalf("Events: %v", err)
	}
	if len(evs) != 1 || evs[0].Escalation != "ESC-2" || evs[0].Seq != 2 {
		t.Errorf("Events(ESC-2) = %+v, want one event of ESC-2 with seq 2", evs)
	}

	out, err := db.DueEffects(ctx, t0, 0)
	if err != nil {
		t.Fatalf("DueEffects: %v", err)
	}
	if len(out) != 2 || out[0].Effect.Escalation != "ESC-1" || out[1].Effect.Escalation != "ESC-2" {
		t.Errorf("queued effects = %+v, want one MR note stamped with each id", out)
	}

	list, err := db.List(ctx)
	if err != nil || !slices.Equal(ids(list), []string{"ESC-1", "ESC-2"}) {
		t.Errorf("List = %v, %v, want [ESC-1 ESC-2]", ids(list), err)
	}
}

func TestFindMissingIsErrNotFound(t *testing.T) {
	db := mustOpen(t)
	mustCommit(t, db, openCommit("acme/api", 1, t0, t0))
	if _, err := db.FindEscalation(ctx, "ESC-9"); err != bot.ErrNotFound {
		t.Errorf("FindEscalation(ESC-9) err = %v, want bot.ErrNotFound", err)
	}
	if _, err := db.FindByMR(ctx, "acme/api", 2); err != bot.ErrNotFound {
		t.Errorf("FindByMR(acme/api!2) err = %v, want bot.ErrNotFound", err)
	}
	if _, err := db.Events(ctx, "ESC-9"); err != bot.ErrNotFound {
		t.Errorf("Events(ESC-9) err = %v, want bot.ErrNotFound", err)
	}
}

func TestListOrdersByIDNumber(t *testing.T) {
	db := mustOpen(t)
	for i := range 11 {
		mustCommit(t, db, openCommit("acme/api", int64(i+1), t0, t0))
	}
	list, err := db.List(ctx)
	if err != nil {
		t.Fatal(err)
	}
	var want []string
	for i := range 11 {
		want = append(want, fmt.Sprintf("ESC-%d", i+1))
	}
	if !slices.Equal(ids(list), want) {
		t.Errorf("List = %v, want %v", ids(list), want)
	}
}

// snapshot is what a refused commit must leave as it was.
type snapshot struct {
	events, outbox, keys int
	list                 string
}

func snap(t *testing.T, db *DB) snapshot {
	t.Helper()
	list, err := db.List(ctx)
	if err != nil {
		t.Fatal(err)
	}
	b, _ := json.Marshal(list)
	depth, err := db.OutboxDepth(ctx)
	if err != nil {
		t.Fatal(err)
	}
	return snapshot{len(allEvents(t, db)), depth, keyCount(t, db, bucketIdempotency), string(b)}
}

func TestCommitStaleExpectIsConflict(t *testing.T) {
	db := mustOpen(t)
	esc := mustCommit(t, db, openCommit("acme/api", 1, t0, t0.Add(time.Hour)))
	at := t0.Add(time.Minute)
	mustCommit(t, db, change(esc, bot.Event{Kind: bot.EventDissent, Actor: "bob", At: at, Data: bot.EventData{Text: "no"}}, nil))
	before := snap(t, db)

	// A decision made on version 1, which is now 2.
	stale := change(esc, bot.Event{Kind: bot.EventAction, Actor: "carol", At: at, Data: bot.EventData{Text: "rotate keys"}}, nil)
	stale.Key = "slack:123"
	stale.Effects = []bot.Effect{{Kind: bot.EffectThreadPost, Text: "noted"}}
	_, err := db.Commit(ctx, stale)
	if !errors.Is(err, bot.ErrConflict) {
		t.Fatalf("Commit(stale) err = %v, want bot.ErrConflict", err)
	}
	if after := snap(t, db); after != before {
		t.Errorf("a refused commit wrote:\nbefore %+v\nafter  %+v", before, after)
	}

	// The key was not recorded: the same input, redone on the new version, goes in.
	cur, err := db.FindEscalation(ctx, esc.ID)
	if err != nil {
		t.Fatal(err)
	}
	redo := change(cur, stale.Events[0], nil)
	redo.Key = stale.Key
	if got := mustCommit(t, db, redo); got.Version != 3 {
		t.Errorf("Version = %d, want 3", got.Version)
	}

	// An id that was never stored cannot be at a version.
	ghost := change(&bot.Escalation{ID: "ESC-7", Version: 4, Project: "acme/api", MRIID: 7}, bot.Event{Kind: bot.EventAction, Actor: "x", At: at}, nil)
	if _, err := db.Commit(ctx, ghost); !errors.Is(err, bot.ErrConflict) {
		t.Errorf("Commit(unknown id at version 4) err = %v, want bot.ErrConflict", err)
	}
}

func TestCommitRepeatedKeyIsDuplicate(t *testing.T) {
	db := mustOpen(t)
	c := openCommit("acme/api", 1, t0, t0.Add(time.Hour))
	c.Key = "gitlab:uuid-1"
	mustCommit(t, db, c)
	before := snap(t, db)

	again := openCommit("acme/api", 2, t0.Add(time.Hour), t0.Add(time.Hour))
	again.Key = c.Key
	if _, err := db.Commit(ctx, again); !errors.Is(err, bot.ErrDuplicate) {
		t.Fatalf("Commit(same key) err = %v, want bot.ErrDuplicate", err)
	}
	if after := snap(t, db); after != before {
		t.Errorf("a duplicate commit wrote:\nbefore %+v\nafter  %+v", before, after)
	}
	// No id was used up.
	if e := mustCommit(t, db, openCommit("acme/api", 3, t0, t0)); e.ID != "ESC-2" {
		t.Errorf("next ID = %q, want ESC-2", e.ID)
	}
}

func TestExpiredKeyIsAcceptedAgain(t *testing.T) {
	db := mustOpen(t, KeyTTL(time.Hour))
	commitKey := func(iid int64, at time.Time) error {
		c := openCommit("acme/api", iid, at, at)
		c.Key = "k"
		_, err := db.Commit(ctx, c)
		return err
	}
	if err := commitKey(1, t0); err != nil {
		t.Fatal(err)
	}
	if err := commitKey(2, t0.Add(59*time.Minute)); !errors.Is(err, bot.ErrDuplicate) {
		t.Fatalf("within TTL: err = %v, want bot.ErrDuplicate", err)
	}
	// Past the TTL the key no longer counts, pruned or not.
	if err := commitKey(2, t0.Add(time.Hour)); err != nil {
		t.Fatalf("at TTL: %v", err)
	}
	// Recorded again until t0+2h.
	if err := commitKey(3, t0.Add(90*time.Minute)); !errors.Is(err, bot.ErrDuplicate) {
		t.Fatalf("renewed key: err = %v, want bot.ErrDuplicate", err)
	}

	c := openCommit("acme/api", 4, t0, t0)
	c.Key = "other" // expires at t0+1h
	mustCommit(t, db, c)
	if n, err := db.PruneKeys(ctx, t0.Add(time.Hour)); err != nil || n != 1 {
		t.Errorf("PruneKeys(t0+1h) = %d, %v, want 1 (other), nil", n, err)
	}
	if n := keyCount(t, db, bucketIdempotency); n != 1 {
		t.Errorf("keys left = %d, want 1", n)
	}
	// Pruned: even a commit dated before its expiry goes in.
	c = openCommit("acme/api", 5, t0.Add(time.Minute), t0)
	c.Key = "other"
	if _, err := db.Commit(ctx, c); err != nil {
		t.Errorf("Commit after PruneKeys: %v", err)
	}
	if n, err := db.PruneKeys(ctx, t0.Add(3*time.Hour)); err != nil || n != 2 {
		t.Errorf("PruneKeys(t0+3h) = %d, %v, want 2", n, err)
	}
}

func TestOneEscalationPerMR(t *testing.T) {
	db := mustOpen(t)
	mustCommit(t, db, openCommit("acme/api", 1, t0, t0))
	before := snap(t, db)
	if _, err := db.Commit(ctx, openCommit("acme/api", 1, t0, t0)); !errors.Is(err, bot.ErrConflict) {
		t.Errorf("second new escalation for acme/api!1: err = %v, want bot.ErrConflict", err)
	}
	named := openCommit("acme/api", 1, t0, t0)
	named.Escalation.ID = "ESC-99"
	if _, err := db.Commit(ctx, named); !errors.Is(err, bot.ErrConflict) {
		t.Errorf("ESC-99 for acme/api!1: err = %v, want bot.ErrConflict", err)
	}
	if after := snap(t, db); after != before {
		t.Errorf("a refused commit wrote:\nbefore %+v\nafter  %+v", before, after)
	}
	if e := mustCommit(t, db, openCommit("acme/web", 1, t0, t0)); e.ID != "ESC-2" {
		t.Errorf("same iid in another project: ID = %q, want ESC-2", e.ID)
	}
}

func TestCommitRefusesEventOfAnotherEscalation(t *testing.T) {
	db := mustOpen(t)
	esc := mustCommit(t, db, openCommit("acme/api", 1, t0, t0))
	c := change(esc, bot.Event{Escalation: "ESC-2", Kind: bot.EventAction, Actor: "bob", At: t0}, nil)
	if _, err := db.Commit(ctx, c); err == nil {
		t.Error("Commit of an event about ESC-2 on ESC-1 succeeded, want an error")
	}
}

func TestCommitCancelledWritesNothing(t *testing.T) {
	db := mustOpen(t)
	cctx, cancel := context.WithCancel(ctx)
	cancel()
	if _, err := db.Commit(cctx, openCommit("acme/api", 1, t0, t0)); !errors.Is(err, context.Canceled) {
		t.Errorf("err = %v, want context.Canceled", err)
	}
	if n := len(allEvents(t, db)); n != 0 {
		t.Errorf("events = %d, want 0", n)
	}
}

func TestReopenFindsEverything(t *testing.T) {
	dir := t.TempDir()
	db := mustOpenDir(t, dir)
	c := openCommit("acme/api", 1, t0, t0.Add(time.Hour), "bob")
	c.Key = "k1"
	esc := mustCommit(t, db, c)
	mustCommit(t, db, change(esc, bot.Event{Kind: bot.EventDissent, Actor: "bob", At: t0, Data: bot.EventData{Text: "hmm"}}, nil))
	manual := openCommit("acme/api", 2, t0, t0.Add(2*time.Hour))
	manual.Events[0].Actor, manual.Events[0].Data.Manual = "ann", true
	manual.Events = append(manual.Events, bot.Event{Kind: bot.EventFiled, Actor: "ann", At: t0})
	mustCommit(t, db, manual)
	wantEvents := allEvents(t, db)
	mustClose(t, db)

	db = mustOpenDir(t, dir)
	got, err := db.FindEscalation(ctx, "ESC-1")
	if err != nil || got.Version != 2 || got.ID != "ESC-1" {
		t.Errorf("FindEscalation(ESC-1) = %+v, %v, want version 2", got, err)
	}
	if gotEvents := allEvents(t, db); !slices.EqualFunc(gotEvents, wantEvents, func(a, b bot.Event) bool { return a.Hash == b.Hash && a.Seq == b.Seq }) {
		t.Errorf("events after reopen = %+v, want %+v", gotEvents, wantEvents)
	}
	if open, _ := db.FindOpen(ctx); !slices.Equal(ids(open), []string{"ESC-1", "ESC-2"}) {
		t.Errorf("FindOpen = %v, want [ESC-1 ESC-2]", ids(open))
	}
	if w, _ := db.FindWaitingOn(ctx, "bob"); !slices.Equal(ids(w), []string{"ESC-1"}) {
		t.Errorf("FindWaitingOn(bob) = %v, want [ESC-1]", ids(w))
	}
	if d, _ := db.OutboxDepth(ctx); d != 2 {
		t.Errorf("OutboxDepth = %d, want 2", d)
	}
	if q, _ := db.Quota(ctx, "ann", "2026Q2"); q.Manual != 1 {
		t.Errorf("Quota(ann, 2026Q2) = %+v, want 1 manual", q)
	}
	dup := openCommit("acme/api", 3, t0, t0)
	dup.Key = "k1"
	if _, err := db.Commit(ctx, dup); !errors.Is(err, bot.ErrDuplicate) {
		t.Errorf("key after reopen: err = %v, want bot.ErrDuplicate", err)
	}
	if e := mustCommit(t, db, openCommit("acme/api", 3, t0, t0)); e.ID != "ESC-3" {
		t.Errorf("next ID after reopen = %q, want ESC-3", e.ID)
	}
	if n, err := db.Verify(ctx); err != nil || n != 5 {
		t.Errorf("Verify = %d, %v, want 5, nil", n, err)
	}
}

func TestConcurrentCommits(t *testing.T) {
	db := mustOpen(t)
	const n = 50
	errs := make(chan error, n)
	var wg sync.WaitGroup
	for i := range n {
		wg.Go(func() {
			c := openCommit("acme/api", int64(i+1), t0, t0.Add(time.Duration(i)*time.Minute), "bob")
			c.Key = fmt.Sprintf("k%d", i)
			_, err := db.Commit(ctx, c)
			errs <- err
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Errorf("Commit: %v", err)
		}
	}
	list, err := db.List(ctx)
	if err != nil {
		t.Fatal(err)
	}
	seen := map[string]bool{}
	for _, e := range list {
		seen[e.ID] = true
	}
	for i := range n {
		if id := fmt.Sprintf("ESC-%d", i+1); !seen[id] {
			t.Errorf("%s missing", id)
		}
	}
	if got, err := db.Verify(ctx); err != nil || got != n {
		t.Errorf("Verify = %d, %v, want %d, nil", got, err, n)
	}
	if w, _ := db.FindWaitingOn(ctx, "bob"); len(w) != n {
		t.Errorf("FindWaitingOn(bob) = %d escalations, want %d", len(w), n)
	}
}

func TestAllocationSkipsChosenIDs(t *testing.T) {
	db := mustOpen(t)
	chosen := openCommit("acme/api", 1, t0, t0)
	chosen.Escalation.ID = "ESC-1"
	mustCommit(t, db, chosen)
	if e := mustCommit(t, db, openCommit("acme/api", 2, t0, t0)); e.ID != "ESC-2" {
		t.Errorf("ID = %q, want ESC-2", e.ID)
	}
	if evs, _ := db.Events(ctx, "ESC-1"); len(evs) != 1 {
		t.Errorf("Events(ESC-1) = %+v, want the opening event stamped ESC-1", evs)
	}
}
