package bot_test

import (
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/threatgate/threatgate/bot"
	"github.com/threatgate/threatgate/internal/testrig"
	"github.com/threatgate/threatgate/policies"
)

// TestReview15TickMarkTrustedAfterCommitsUnderAnotherPolicy: the tick
// mark says "every open escalation's NextTick, WaitedOn and HeldByGroups
// were computed under policy P1 by binary b1", but nothing clears it when
// an engine under another policy commits without ticking first: the
// `threatgate reconcile` command on a stopped store (it builds a server
// and reconciles, no sweep), or serve under a new policy that handles a
// webhook before its first sweep and is stopped (a policy rolled back).
// Those commits compute the escalation's fields under P2; the next start
// under P1 and b1 trusts the mark, skips the recompute, and keeps them.
// Here P2 adds dave to appsec: after the roll back ESC-1 is still shown
// as waiting on dave (and holding up his counters and his App Home queue)
// although the policy in force never named him.
func TestReview15TickMarkTrustedAfterCommitsUnderAnotherPolicy(t *testing.T) {
	r := newSweepRig(t)
	ctx := r.ctx
	r.Engine.SetBuild("b1")
	r.open()
	if err := r.cmd("ann", "/threatgate artifact ESC-1 threat-model https://wiki/tm"); err != nil {
		t.Fatal(err)
	}
	r.tickAt(testrig.T0.Add(time.Minute)) // the mark: P1, b1
	if mark, _ := r.DB.TickedUnder(ctx); mark != bot.TickMark(r.Policy, "b1") {
		t.Fatalf("setup: mark %q", mark)
	}

	// A process under P2 (same binary) decides on ESC-1 before any sweep,
	// then stops.
	p2, err := policies.Load("p2.yaml", []byte(strings.Replace(sweepPolicy, "appsec: {members: [alice]", "appsec: {members: [alice, dave]", 1)))
	if err != nil {
		t.Fatal(err)
	}
	e2 := bot.NewEngine(r.DB, p2, r.Clock, nil)
	e2.SetBuild("b1")
	r.Clock.Advance(time.Hour)
	c, err := bot.ParseCommand("/threatgate dissent the rollout plan is thin")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := e2.Handle(ctx, bot.Input{Kind: bot.InputCommand, Actor: bot.Identity{Person: "carol", Surface: "web"}, Command: &c, Escalation: "ESC-1"}); err != nil {
		t.Fatal(err)
	}
	if e := r.esc(); !slices.Contains(e.WaitedOn, "dave") {
		t.Fatalf("setup: under P2 ESC-1 waits on %v, want dave among them", e.WaitedOn)
	}

	// Back to P1 and b1: the first sweep trusts the mark.
	e3 := bot.NewEngine(r.DB, r.Policy, r.Clock, nil)
	e3.SetBuild("b1")
	r.Clock.Advance(time.Minute)
	if _, err := e3.Tick(ctx, r.Clock.Now()); err != nil {
		t.Fatal(err)
	}
	e := r.esc()
	want := bot.WaitingOn(e, r.Policy)
	if !slices.Equal(e.WaitedOn, want) {
		t.Errorf("under P1 ESC-1 is stored as waiting on %v, the policy in force says %v: the mark %q was trusted although an engine under another policy committed since",
			e.WaitedOn, want, bot.TickMark(r.Policy, "b1"))
	}
	if groups := bot.HeldGroups(e, r.Policy, want); !slices.Equal(e.HeldByGroups, groups) {
		t.Errorf("held by groups %v, the policy in force says %v", e.HeldByGroups, groups)
	}
}
