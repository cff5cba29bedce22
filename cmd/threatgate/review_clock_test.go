package main

import (
	"context"
	"log/slog"
	"testing"
	"time"

	"github.com/threatgate/threatgate/bot"
	"github.com/threatgate/threatgate/internal/testrig"
	"github.com/threatgate/threatgate/policies"
)

const reviewClockPolicy = `
version: 1
signals:
  - {id: auth, category: access-control, weight: 50, when: {paths: ["**/auth/**"]}}
tiers:
  - id: T2
    name: high
    when: {min_score: 50}
    approvals: [{group: appsec, count: 1}]
    first_response: 4h
    decision: 24h
groups:
  appsec: {members: [alice]}
people:
  - {gitlab: ann, email: ann@example.com}
  - {gitlab: alice, email: alice@example.com}
`

// TestReviewClockCatchUpDigestLosesBreaches: the daily digest lists "the
// deadlines missed since the last digest", but the schedule passes the
// slot before the catch-up slot as since, not when a digest last ran.
// Monday's digest ran; ESC-1 lapsed on Tuesday 09:01 and was decided at
// 12:00; threatgate was down from Tuesday afternoon to Thursday 10:00. The
// catch-up digest (Thursday's slot) counts breaches from Wednesday 09:00,
// so Tuesday's breach is in no digest at all.
func TestReviewClockCatchUpDigestLosesBreaches(t *testing.T) {
	r := testrig.NewRig(t, reviewClockPolicy)
	ctx := context.Background()
	j := engineJobs(r.Engine, "", 0) // the jobs serve runs
	s := newSchedule(policies.Schedule{Digest: "0 9 * * *", Location: time.UTC}, j, r.Clock, slog.New(slog.DiscardHandler))

	mon := testrig.T0 // Monday 09:00 UTC
	r.Clock.Set(mon)
	s.digest(ctx, mon)

	r.Clock.Set(mon.Add(time.Minute))
	if _, err := r.Engine.Handle(ctx, bot.Input{Kind: bot.InputMR, MR: &bot.MRInput{Action: bot.MROpen, MR: &policies.MergeRequest{
		IID: 1, PathWithNamespace: "shop/api", Title: "t", TargetBranch: "main", SHA: "aaa1111", UpdatedAt: r.Clock.Now(),
		Author: policies.User{Username: "ann"}, Changes: []policies.Change{{OldPath: "src/auth/a.go", NewPath: "src/auth/a.go"}},
	}}}); err != nil {
		t.Fatal(err)
	}
	r.Clock.Set(mon.Add(27 * time.Hour)) // Tuesday 12:00, after the 24h deadline
	c, err := bot.ParseCommand("/approve ESC-1 fine")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := r.Engine.Handle(ctx, bot.Input{Kind: bot.InputCommand, Actor: bot.Identity{Person: "alice", Surface: "web"}, Command: &c, Escalation: "ESC-1"}); err != nil {
		t.Fatal(err)
	}
	// Down until Thursday 10:00: the start's catch-up runs Thursday's slot.
	thu := mon.Add(3*24*time.Hour + time.Hour)
	r.Clock.Set(thu)
	s.digest(ctx, thu)

	recs, err := r.DB.PendingEffects(ctx, 0)
	if err != nil {
		t.Fatal(err)
	}
	var digests []*bot.DigestData
	for _, rec := range recs {
		if rec.Effect.Kind == bot.EffectDigest && rec.Effect.Digest != nil {
			digests = append(digests, rec.Effect.Digest)
		}
	}
	if len(digests) != 2 {
		t.Fatalf("%d digests, want Monday's and the catch-up", len(digests))
	}
	reported := false
	for _, d := range digests {
		for _, b := range d.Breaches {
			reported = reported || b.ID == "ESC-1"
		}
	}
	if !reported {
		t.Errorf("ESC-1's deadline (Tuesday 09:01) was missed between two digests (Monday's, and the catch-up since %v), yet no digest lists it",
			digests[1].Since)
	}
}
