package bot_test

import (
	"context"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/threatgate/threatgate/bot"
	"github.com/threatgate/threatgate/internal/testrig"
	"github.com/threatgate/threatgate/policies"
)

// reviewClockPolicy: T3 (crypto) decides in 24h, pages on lapse and may
// not be deferred; T2 (auth) decides in 48h and may be deferred, without
// paging. ann writes the MRs and is also a member of appsec (authors are
// often in the security champions' group). leads may re-tier.
const reviewClockPolicy = `
version: 1
signals:
  - {id: auth, category: access-control, weight: 50, when: {paths: ["**/auth/**"]}}
  - {id: crypto, category: crypto, weight: 100, when: {paths: ["**/crypto/**"]}}
tiers:
  - id: T3
    name: critical
    when: {min_score: 100}
    approvals: [{group: appsec, count: 1}]
    first_response: 4h
    decision: 24h
    page_on_lapse: true
  - id: T2
    name: high
    when: {min_score: 50}
    approvals: [{group: appsec, count: 1}]
    first_response: 8h
    decision: 48h
    deferrable: true
groups:
  appsec: {members: [alice, ann], backups: [appsec-backup]}
  appsec-backup: {members: [carol]}
  leads: {members: [lead]}
authority: {retier: [leads]}
backlog: {peak_open_threshold: 3}
people:
  - {gitlab: ann, email: ann@example.com}
  - {gitlab: alice, email: alice@example.com}
  - {gitlab: carol, email: carol@example.com}
  - {gitlab: lead, email: lead@example.com}
`

type clockRig struct {
	*testrig.Rig
	t   *testing.T
	ctx context.Context
}

func newClockRig(t *testing.T) *clockRig {
	return &clockRig{Rig: testrig.NewRig(t, reviewClockPolicy), t: t, ctx: context.Background()}
}

// mr sends an MR webhook for iid by ann touching paths, at the clock's
// time.
func (r *clockRig) mr(iid int64, sha string, paths ...string) {
	r.t.Helper()
	var ch []policies.Change
	for _, p := range paths {
		ch = append(ch, policies.Change{OldPath: p, NewPath: p})
	}
	_, err := r.Engine.Handle(r.ctx, bot.Input{Kind: bot.InputMR, MR: &bot.MRInput{Action: bot.MRUpdate, MR: &policies.MergeRequest{
		IID: iid, PathWithNamespace: "shop/api", Title: "t", TargetBranch: "main", SHA: sha, UpdatedAt: r.Clock.Now(),
		Author: policies.User{Username: "ann"}, Changes: ch, State: "opened",
	}}})
	if err != nil {
		r.t.Fatal(err)
	}
}

func (r *clockRig) cmd(person, esc, line string) error {
	r.t.Helper()
	c, err := bot.ParseCommand(line)
	if err != nil {
		r.t.Fatal(err)
	}
	_, err = r.Engine.Handle(r.ctx, bot.Input{Kind: bot.InputCommand, Actor: bot.Identity{Person: person, Surface: "web"}, Command: &c, Escalation: esc})
	return err
}

func (r *clockRig) tickAt(at time.Time) {
	r.t.Helper()
	r.Clock.Set(at)
	if _, err := r.Engine.Tick(r.ctx, at); err != nil {
		r.t.Fatal(err)
	}
}

func (r *clockRig) esc(id string) *bot.Escalation {
	r.t.Helper()
	e, err := r.DB.FindEscalation(r.ctx, id)
	if err != nil {
		r.t.Fatal(err)
	}
	return e
}

func (r *clockRig) queued(kind bot.EffectKind) []bot.Effect {
	r.t.Helper()
	recs, err := r.DB.PendingEffects(r.ctx, 0)
	if err != nil {
		r.t.Fatal(err)
	}
	var out []bot.Effect
	for _, rec := range recs {
		if rec.Effect.Kind == kind {
			out = append(out, rec.Effect)
		}
	}
	return out
}

// remindedBoth brings the sweep rig's ESC-1 (T2 without page_on_lapse) to
// the point where alice has had both reminders and carol responded, so
// the clock has nothing left to do with it: NextTick is zero.
func remindedBoth(t *testing.T, r *sweepRig) {
	t.Helper()
	r.open()
	if err := r.cmd("ann", "/threatgate artifact ESC-1 threat-model https://wiki/tm"); err != nil {
		t.Fatal(err)
	}
	if err := r.cmd("carol", "/threatgate dissent responding so no handoff"); err != nil {
		t.Fatal(err)
	}
	r.tickAt(time.Date(2026, 11, 3, 14, 0, 0, 0, time.UTC)) // 50%, 09:00 in New York
	r.tickAt(time.Date(2026, 11, 4, 14, 0, 0, 0, time.UTC)) // past 90%, 09:00 in New York
	e := r.esc()
	if len(e.Nudged) != 2 {
		t.Fatalf("setup: reminders sent %v, want 50%% and 90%% to alice", e.Nudged)
	}
	if !e.NextTick.IsZero() {
		t.Fatalf("setup: NextTick %v, want zero (nothing left for the clock)", e.NextTick)
	}
}

// TestReviewClockAwayNeverHandsOff: /threatgate away is a personal event;
// it recomputes no escalation's NextTick, and NextTick does not consider
// absences. An escalation waiting on alice whose clock has nothing else to
// do is never looked at again, so her backups are never asked, however
// long she is away.
func TestReviewClockAwayNeverHandsOff(t *testing.T) {
	r := newSweepRig(t)
	r.Policy.Tier("T2").PageOnLapse = false
	remindedBoth(t, r)
	r.Clock.Set(time.Date(2026, 11, 4, 15, 0, 0, 0, time.UTC))
	if err := r.cmd("alice", "/threatgate away until 2026-11-20"); err != nil {
		t.Fatal(err)
	}
	for _, at := range []time.Time{
		time.Date(2026, 11, 4, 16, 0, 0, 0, time.UTC),
		time.Date(2026, 11, 5, 15, 0, 0, 0, time.UTC),
		time.Date(2026, 11, 10, 15, 0, 0, 0, time.UTC),
	} {
		r.tickAt(at)
	}
	e := r.esc()
	if !slices.ContainsFunc(e.HandedOff, func(h bot.Handoff) bool { return h.Reason == "away:alice" }) {
		t.Errorf("alice has been away since %s and ESC-1 waits only on her, yet her backups were never asked (handoffs %+v, NextTick %v)",
			"2026-11-04", e.HandedOff, e.NextTick)
	}
}

// TestReviewClockPolicyChangeStrandsEscalation: a policy that starts
// paging on lapse (a restart with the new file, or SetPolicy) leaves the
// NextTick computed under the old one in the index. An escalation the old
// policy had nothing more to do with is never swept again: its lapse is
// never paged.
func TestReviewClockPolicyChangeStrandsEscalation(t *testing.T) {
	r := newSweepRig(t)
	r.Policy.Tier("T2").PageOnLapse = false
	remindedBoth(t, r)
	pol, err := policies.Load("new.yaml", []byte(sweepPolicy)) // page_on_lapse: true
	if err != nil {
		t.Fatal(err)
	}
	r.Engine.SetPolicy(pol)
	r.tickAt(testrig.T0.Add(49 * time.Hour))
	r.tickAt(testrig.T0.Add(72 * time.Hour))
	if pages := r.queued(bot.EffectPage, ""); len(pages) != 1 || !r.esc().Paged {
		t.Errorf("T2 now pages on lapse and ESC-1 lapsed at %v, yet %d pages (NextTick %v): the escalation is stranded outside the tick index",
			r.esc().DecisionDue, len(pages), r.esc().NextTick)
	}
}

// TestReviewClockRetierBelowPageLeavesIncidentOpen: a paged T3 escalation
// re-tiered to T2 (no page_on_lapse, a fresh 48h window) no longer lapses
// and its tier never pages, yet the PagerDuty incident stays open until
// someone decides it.
func TestReviewClockRetierBelowPageLeavesIncidentOpen(t *testing.T) {
	r := newClockRig(t)
	r.mr(1, "aaa1111", "src/crypto/k.go")
	if e := r.esc("ESC-1"); e.Tier != "T3" {
		t.Fatalf("setup: tier %s", e.Tier)
	}
	r.tickAt(testrig.T0.Add(24 * time.Hour))
	if !r.esc("ESC-1").Paged || len(r.queued(bot.EffectPage)) != 1 {
		t.Fatalf("setup: not paged at the lapse")
	}
	r.Clock.Set(testrig.T0.Add(25 * time.Hour))
	if err := r.cmd("lead", "ESC-1", "/threatgate retier ESC-1 T2 only a test key, not production crypto"); err != nil {
		t.Fatal(err)
	}
	e := r.esc("ESC-1")
	if e.Tier != "T2" || !e.DecisionDue.After(r.Clock.Now()) {
		t.Fatalf("setup: tier %s due %v", e.Tier, e.DecisionDue)
	}
	if len(r.queued(bot.EffectResolve)) == 0 || e.Paged {
		t.Errorf("ESC-1 is now %s (no page_on_lapse, due %v, not overdue) but its page is never resolved: paged=%v, resolves=%d",
			e.Tier, e.DecisionDue, e.Paged, len(r.queued(bot.EffectResolve)))
	}
}

// TestReviewClockAuthorClosesSecurityActionItem: ann wrote the MR and is
// a member of appsec. alice records a follow-up owned by carol (rotate
// the key); ann closes it herself, because mayClose lets any approver of
// the tier close any item and never asks whether they wrote the change.
func TestReviewClockAuthorClosesSecurityActionItem(t *testing.T) {
	r := newClockRig(t)
	r.mr(1, "aaa1111", "src/auth/a.go")
	if err := r.cmd("alice", "ESC-1", "/threatgate action ESC-1 @carol due:2026-11-10 rotate the signing key before release"); err != nil {
		t.Fatal(err)
	}
	if err := r.cmd("ann", "ESC-1", "/threatgate approve ESC-1"); err == nil {
		t.Fatal("setup: the author's approval was accepted")
	}
	err := r.cmd("ann", "ESC-1", "/threatgate done ESC-1 1")
	if err == nil {
		a := r.esc("ESC-1").Actions[0]
		t.Errorf("the MR's author closed carol's security follow-up on her own MR (done=%v by %s)", a.Done, a.DoneBy)
	}
}

// TestReviewClockDigestKeySkipsADayAtDST: the digest's slot is in the
// schedule's time zone, but DigestKey names the slot's UTC day. With
// digest "0 1 * * *" in Europe/Berlin, Sunday 2026-03-29 01:00 CET and
// Monday 2026-03-30 01:00 CEST are both on 2026-03-29 in UTC: Monday's
// digest is taken for a rerun of Sunday's and never posted.
func TestReviewClockDigestKeySkipsADayAtDST(t *testing.T) {
	r := newClockRig(t)
	berlin, err := time.LoadLocation("Europe/Berlin")
	if err != nil {
		t.Fatalf("time zone data: %v", err)
	}
	sun := time.Date(2026, 3, 29, 1, 0, 0, 0, berlin)
	mon := time.Date(2026, 3, 30, 1, 0, 0, 0, berlin)
	sat := time.Date(2026, 3, 28, 1, 0, 0, 0, berlin)
	r.Clock.Set(sun)
	if err := r.Engine.Digest(r.ctx, sun, sat, ""); err != nil {
		t.Fatal(err)
	}
	r.Clock.Set(mon)
	if err := r.Engine.Digest(r.ctx, mon, sun, ""); err != nil {
		t.Fatal(err)
	}
	if n := len(r.queued(bot.EffectDigest)); n != 2 {
		t.Errorf("%d digests for two daily slots (Sunday %v, Monday %v; keys %s and %s)", n, sun, mon, bot.DigestKey(sun), bot.DigestKey(mon))
	}
}

// TestReviewClockWeeklyReportSkipsAWeekAtDST: the weekly report runs on
// the schedule's time zone but picks LastFullWeek in UTC. With weekly
// "30 0 * * MON" in Europe/London, summer Mondays 00:30 BST are Sunday
// 23:30 UTC (the week before last is reported), winter ones are Monday
// 00:30 UTC (last week): across the October change one week is never
// reported.
func TestReviewClockWeeklyReportSkipsAWeekAtDST(t *testing.T) {
	r := newClockRig(t)
	london, err := time.LoadLocation("Europe/London")
	if err != nil {
		t.Fatalf("time zone data: %v", err)
	}
	for _, day := range []int{12, 19, 26} { // Mondays of October 2026; clocks go back on the 25th
		at := time.Date(2026, 10, day, 0, 30, 0, 0, london)
		r.Clock.Set(at)
		if err := r.Engine.Report(r.ctx, at, ""); err != nil {
			t.Fatal(err)
		}
	}
	var weeks []int
	for _, ef := range r.queued(bot.EffectDigest) {
		if ef.Report != nil {
			weeks = append(weeks, ef.Report.Week)
		}
	}
	slices.Sort(weeks)
	for i := 1; i < len(weeks); i++ {
		if weeks[i] != weeks[i-1]+1 {
			t.Errorf("weekly reports posted for ISO weeks %v on three consecutive Mondays: week %d is never reported", weeks, weeks[i-1]+1)
		}
	}
}

// TestReviewClockPeakCountsDeferred: backlog.peak_open_threshold is 3.
// Three escalations are open, so alice may defer; but CountOpen counts the
// deferred ones as open, so once two are deferred (one left waiting) the
// "peak" still holds and the last one is deferred too: the rule sustains
// itself.
func TestReviewClockPeakCountsDeferred(t *testing.T) {
	r := newClockRig(t)
	for i := int64(1); i <= 3; i++ {
		r.mr(i, "aaa111"+string(rune('0'+i)), "src/auth/a.go")
	}
	if err := r.cmd("alice", "ESC-1", "/threatgate defer ESC-1 3d vendor review"); err != nil {
		t.Fatalf("at the peak: %v", err)
	}
	if err := r.cmd("alice", "ESC-2", "/threatgate defer ESC-2 3d vendor review"); err != nil {
		t.Logf("second deferral refused: %v", err)
	}
	open := 0
	for _, id := range []string{"ESC-1", "ESC-2", "ESC-3"} {
		if e := r.esc(id); e.State.Active() && e.State != bot.StateDeferred {
			open++
		}
	}
	if err := r.cmd("alice", "ESC-3", "/threatgate defer ESC-3 3d vendor review"); err == nil && open < 3 {
		t.Errorf("ESC-3 deferred with only %d escalation(s) waiting (peak_open_threshold 3): deferred escalations count towards the peak", open)
	}
}

// TestReviewClockTierRaiseAfterDeferralIgnoresPause: a T2 escalation
// deferred one hour after opening for a week is raised to T3 on day 5 by a
// new commit. The raise ends the deferral but, unlike the sweep's
// endDeferral, does not move the deadlines by the pause: the decision is
// "due" at T0+48h, days in the past, and on-call is paged at once for a
// deadline that was paused.
func TestReviewClockTierRaiseAfterDeferralIgnoresPause(t *testing.T) {
	r := newClockRig(t)
	r.Policy.Backlog.PeakOpenThreshold = 0 // deferrable whatever the backlog
	r.mr(1, "aaa1111", "src/auth/a.go")
	r.Clock.Set(testrig.T0.Add(time.Hour))
	if err := r.cmd("alice", "ESC-1", "/threatgate defer ESC-1 7d vendor review"); err != nil {
		t.Fatal(err)
	}
	now := testrig.T0.Add(5 * 24 * time.Hour)
	r.Clock.Set(now)
	r.mr(1, "bbb2222", "src/auth/a.go", "src/crypto/k.go")
	e := r.esc("ESC-1")
	if e.Tier != "T3" || e.State == bot.StateDeferred {
		t.Fatalf("setup: tier %s state %s", e.Tier, e.State)
	}
	r.tickAt(now.Add(time.Minute))
	e = r.esc("ESC-1")
	if !e.DecisionDue.After(now) || e.Paged {
		t.Errorf("after a 4-day pause the raised escalation is due %v (now %v) and paged=%v: the pause was dropped, on-call paged for a paused deadline",
			e.DecisionDue, now, e.Paged)
	}
}

// TestReviewClockBystanderActionStopsHandoff: dave is only in the informed
// group, not an approver. An action item he records (or a dissent) counts
// as the first response, so the primary group's silence is never handed
// off to its backups, and the report's time to first response shows a
// response that nobody with authority gave.
func TestReviewClockBystanderActionStopsHandoff(t *testing.T) {
	r := newSweepRig(t)
	r.open()
	r.Clock.Set(testrig.T0.Add(time.Minute))
	if err := r.cmd("dave", "/threatgate action ESC-1 please look at this soon"); err != nil {
		t.Fatal(err)
	}
	r.tickAt(testrig.T0.Add(4 * time.Hour))
	r.tickAt(testrig.T0.Add(5 * time.Hour))
	if e := r.esc(); len(e.HandedOff) == 0 {
		t.Errorf("nobody in appsec responded within handoff_after, but dave's action item (%q) kept the backups from being asked", strings.TrimSpace(e.Actions[0].Text))
	}
}
