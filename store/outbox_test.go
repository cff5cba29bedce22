package store

import (
	"errors"
	"slices"
	"testing"
	"time"

	"github.com/threatgate/threatgate/bot"
)

func effectIDs(recs []OutboxRecord) []string {
	out := []string{}
	for _, r := range recs {
		out = append(out, r.Effect.ID)
	}
	return out
}

func TestOutbox(t *testing.T) {
	db := mustOpen(t)
	c := openCommit("acme/api", 1, t0, t0)
	c.Effects = []bot.Effect{
		{Kind: bot.EffectReply, Text: "escalated"},
		{Kind: bot.EffectStatus, Project: "acme/api", MRIID: 1, SHA: "c0ffee", Status: bot.StatusPending},
		{Kind: bot.EffectThreadPost, Text: "review please", Mention: []string{"bob"}},
	}
	mustCommit(t, db, c)
	const (
		status = "ESC-1/00000000000000000001/001"
		post   = "ESC-1/00000000000000000001/002"
	)
	wantDue := func(now time.Time, limit int, want ...string) []OutboxRecord {
		t.Helper()
		got, err := db.DueEffects(ctx, now, limit)
		if err != nil {
			t.Fatalf("DueEffects: %v", err)
		}
		if !slices.Equal(effectIDs(got), want) {
			t.Errorf("DueEffects(%s, %d) = %v, want %v", now.Sub(t0), limit, effectIDs(got), want)
		}
		return got
	}
	wantDepth := func(want int) {
		t.Helper()
		if n, err := db.OutboxDepth(ctx); err != nil || n != want {
			t.Errorf("OutboxDepth = %d, %v, want %d", n, err, want)
		}
	}

	wantDepth(2) // the reply is not queued
	wantDue(t0.Add(-time.Second), 0)
	got := wantDue(t0, 0, status, post)
	if r := got[0]; r.Effect.Escalation != "ESC-1" || r.Effect.Status != bot.StatusPending || !r.Created.Equal(t0) || !r.NextAttempt.Equal(t0) || r.Attempts != 0 {
		t.Errorf("status record = %+v", r)
	}
	wantDue(t0, 1, status)

	if err := db.EffectFailed(ctx, status, t0.Add(time.Minute), "gitlab: 502", false); err != nil {
		t.Fatalf("EffectFailed: %v", err)
	}
	wantDue(t0, 0, post)
	got = wantDue(t0.Add(time.Minute), 0, post, status)
	if r := got[1]; r.Attempts != 1 || r.LastError != "gitlab: 502" || !r.NextAttempt.Equal(t0.Add(time.Minute)) {
		t.Errorf("after failure: %+v", r)
	}
	if err := db.EffectFailed(ctx, status, t0.Add(3*time.Minute), "gitlab: 503", false); err != nil {
		t.Fatal(err)
	}
	if got := wantDue(t0.Add(time.Hour), 0, post, status); got[1].Attempts != 2 || got[1].LastError != "gitlab: 503" {
		t.Errorf("after second failure: %+v", got[1])
	}
	wantDepth(2)

	if err := db.EffectDone(ctx, post); err != nil {
		t.Fatalf("EffectDone: %v", err)
	}
	wantDepth(1)
	wantDue(t0.Add(time.Hour), 0, status)
	if err := db.EffectDone(ctx, post); !errors.Is(err, bot.ErrNotFound) {
		t.Errorf("EffectDone twice: err = %v, want bot.ErrNotFound", err)
	}
	if err := db.EffectFailed(ctx, "nope", t0, "x", false); !errors.Is(err, bot.ErrNotFound) {
		t.Errorf("EffectFailed(unknown): err = %v, want bot.ErrNotFound", err)
	}
	if err := db.EffectDone(ctx, status); err != nil {
		t.Fatal(err)
	}
	wantDepth(0)
	if n := keyCount(t, db, bucketOutboxDue); n != 0 {
		t.Errorf("outbox_due has %d entries, want 0", n)
	}
}

func TestEffectIDsAreUnique(t *testing.T) {
	db := mustOpen(t)
	post := bot.Effect{Kind: bot.EffectThreadPost, Text: "digest"}
	// Effects of commits without events (a digest), twice.
	mustCommit(t, db, &bot.Commit{Effects: []bot.Effect{post}, At: t0})
	mustCommit(t, db, &bot.Commit{Effects: []bot.Effect{post}, At: t0})
	// A cap override: an event about no escalation.
	mustCommit(t, db, &bot.Commit{
		Events:  []bot.Event{{Kind: bot.EventCapOverridden, Actor: "lead", At: t0, Data: bot.EventData{Person: "ann", Count: 1}}},
		Effects: []bot.Effect{{Kind: bot.EffectReply}, post},
		At:      t0,
	})
	mustCommit(t, db, &bot.Commit{Effects: []bot.Effect{post}, At: t0})
	got, err := db.DueEffects(ctx, t0, 0)
	if err != nil {
		t.Fatal(err)
	}
	want := []string{
		"global/00000000000000000000-1/000",
		"global/00000000000000000000-2/000",
		"global/00000000000000000001-3/000",
		"global/00000000000000000001/001",
	}
	if !slices.Equal(effectIDs(got), want) {
		t.Errorf("effect ids = %v, want %v", effectIDs(got), want)
	}
}
