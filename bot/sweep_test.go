package bot_test

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/threatgate/threatgate/bot"
	"github.com/threatgate/threatgate/internal/testrig"
	"github.com/threatgate/threatgate/policies"
)

// sweepPolicy: T2 decides in 48h, hands off after 4h without a response,
// pages when it lapses; appsec's backups are appsec-backup.
const sweepPolicy = `
version: 1
signals:
  - {id: auth, category: access-control, weight: 50, when: {paths: ["**/auth/**"]}}
tiers:
  - id: T2
    name: high
    when: {min_score: 50}
    artifacts: [threat-model]
    approvals: [{group: appsec, count: 1}]
    inform: [announce]
    first_response: 8h
    decision: 48h
    handoff_after: 4h
    page_on_lapse: true
groups:
  appsec: {members: [alice], backups: [appsec-backup]}
  appsec-backup: {members: [carol]}
  announce: {members: [dave]}
people:
  - {gitlab: ann, email: ann@example.com}
  - {gitlab: alice, email: alice@example.com, timezone: America/New_York, hours: "09:00-17:00"}
  - {gitlab: carol, email: carol@example.com}
  - {gitlab: dave, email: dave@example.com}
`

type sweepRig struct {
	*testrig.Rig
	t   *testing.T
	ctx context.Context
}

func newSweepRig(t *testing.T) *sweepRig {
	return &sweepRig{Rig: testrig.NewRig(t, sweepPolicy), t: t, ctx: context.Background()}
}

// open escalates an MR by ann at the rig's time (T0, a Monday 09:00 UTC).
func (r *sweepRig) open() {
	r.t.Helper()
	_, err := r.Engine.Handle(r.ctx, bot.Input{Kind: bot.InputMR, MR: &bot.MRInput{Action: bot.MROpen, MR: &policies.MergeRequest{
		IID: 1, PathWithNamespace: "shop/api", Title: "t", TargetBranch: "main", SHA: "aaa1111", UpdatedAt: r.Clock.Now(),
		Author: policies.User{Username: "ann"}, Changes: []policies.Change{{OldPath: "src/auth/a.go", NewPath: "src/auth/a.go"}},
	}}})
	if err != nil {
		r.t.Fatal(err)
	}
}

func (r *sweepRig) cmd(person, line string) error {
	r.t.Helper()
	c, err := bot.ParseCommand(line)
	if err != nil {
		r.t.Fatal(err)
	}
	_, err = r.Engine.Handle(r.ctx, bot.Input{Kind: bot.InputCommand, Actor: bot.Identity{Person: person, Surface: "web"}, Command: &c, Escalation: "ESC-1"})
	return err
}

// tickAt moves the clock to at and sweeps.
func (r *sweepRig) tickAt(at time.Time) {
	r.t.Helper()
	r.Clock.Set(at)
	if _, err := r.Engine.Tick(r.ctx, at); err != nil {
		r.t.Fatal(err)
	}
}

func (r *sweepRig) esc() *bot.Escalation {
	r.t.Helper()
	e, err := r.DB.FindEscalation(r.ctx, "ESC-1")
	if err != nil {
		r.t.Fatal(err)
	}
	return e
}

// queued counts the effects waiting in the outbox, by kind and notice.
func (r *sweepRig) queued(kind bot.EffectKind, notice bot.NoticeKind) []bot.Effect {
	r.t.Helper()
	recs, err := r.DB.PendingEffects(r.ctx, 0)
	if err != nil {
		r.t.Fatal(err)
	}
	var out []bot.Effect
	for _, rec := range recs {
		if rec.Effect.Kind == kind && (notice == "" || rec.Effect.Notice != nil && rec.Effect.Notice.Kind == notice) {
			out = append(out, rec.Effect)
		}
	}
	return out
}

// TestSweepNudgesInWorkingHours: alice (New York, 09:00-17:00) is reminded
// at 50% and 90% of the 48h window, once each, and never outside her
// working hours: the 50% mark falls at 04:00 in New York, so her reminder
// waits for 09:00 there.
func TestSweepNudgesInWorkingHours(t *testing.T) {
	r := newSweepRig(t)
	r.open()
	if err := r.cmd("ann", "/threatgate artifact ESC-1 threat-model https://wiki/tm"); err != nil {
		t.Fatal(err)
	}
	if err := r.cmd("carol", "/threatgate dissent responding so no handoff"); err != nil {
		t.Fatal(err)
	}
	t0 := testrig.T0 // Monday 2026-11-02 09:00 UTC = 04:00 in New York
	nyNine := time.Date(2026, 11, 3, 9, 0, 0, 0, mustZone(t, "America/New_York"))
	if got := r.esc().NextTick; !got.Equal(nyNine) {
		t.Fatalf("NextTick %v after opening, want the first reminder's time, her Tuesday 09:00 (%v)", got, nyNine)
	}
	// 50% of 48h = Tuesday 09:00 UTC = 04:00 EST: not her hours.
	r.tickAt(t0.Add(24 * time.Hour))
	if n := len(r.queued(bot.EffectThreadPost, bot.NoticeNudge)); n != 0 {
		t.Fatalf("%d reminders at 04:00 in New York", n)
	}
	if got := r.esc().NextTick; !got.Equal(nyNine) {
		t.Errorf("NextTick %v, want her next working start %v", got, nyNine)
	}
	r.tickAt(nyNine)
	nudges := r.queued(bot.EffectThreadPost, bot.NoticeNudge)
	if len(nudges) != 1 || nudges[0].Notice.Threshold != 50 || strings.Join(nudges[0].Mention, ",") != "alice" {
		t.Fatalf("reminders at 09:00 New York: %+v", nudges)
	}
	r.tickAt(nyNine.Add(time.Hour))
	if n := len(r.queued(bot.EffectThreadPost, bot.NoticeNudge)); n != 1 {
		t.Errorf("%d reminders after a second sweep, want still 1", n)
	}
	// 90%: Wednesday 04:12 UTC, 23:12 in New York: waits for Wednesday 09:00.
	r.tickAt(t0.Add(time.Duration(0.9 * float64(48*time.Hour))))
	if n := len(r.queued(bot.EffectThreadPost, bot.NoticeNudge)); n != 1 {
		t.Errorf("%d reminders at night in New York, want still 1", n)
	}
	r.tickAt(nyNine.Add(24 * time.Hour))
	nudges = r.queued(bot.EffectThreadPost, bot.NoticeNudge)
	if len(nudges) != 2 || nudges[1].Notice.Threshold != 90 {
		t.Errorf("reminders after the 90%% mark: %+v", nudges)
	}
}

func mustZone(t *testing.T, name string) *time.Location {
	t.Helper()
	loc, err := time.LoadLocation(name)
	if err != nil {
		t.Fatal(err)
	}
	return loc
}

// TestNextWorkStartAcrossDST: the start of a working day follows the
// person's wall clock across a daylight-saving change.
func TestNextWorkStartAcrossDST(t *testing.T) {
	ny := mustZone(t, "America/New_York")
	p := &policies.Person{ID: "alice", Hours: "09:00-17:00", Location: ny}
	// Saturday 7 March 2026 (EST); the clocks go forward on Sunday 8 March.
	sat := time.Date(2026, 3, 7, 12, 0, 0, 0, ny)
	got := bot.NextWorkStart(p, sat)
	want := time.Date(2026, 3, 9, 13, 0, 0, 0, time.UTC) // Monday 09:00 EDT
	if !got.Equal(want) {
		t.Errorf("NextWorkStart(Saturday before DST) = %v, want %v", got.UTC(), want)
	}
	if bot.WorkingAt(p, time.Date(2026, 3, 9, 13, 30, 0, 0, time.UTC)) != true || bot.WorkingAt(p, time.Date(2026, 3, 9, 12, 30, 0, 0, time.UTC)) {
		t.Errorf("WorkingAt on the Monday after DST: 09:30 EDT should be working, 08:30 EDT not")
	}
	// November: the clocks go back on Sunday 1 November 2026.
	got = bot.NextWorkStart(p, time.Date(2026, 10, 31, 12, 0, 0, 0, ny))
	if want := time.Date(2026, 11, 2, 14, 0, 0, 0, time.UTC); !got.Equal(want) {
		t.Errorf("NextWorkStart(Saturday before the clocks go back) = %v, want %v", got.UTC(), want)
	}
}

// TestSweepHandsOffWhenNobodyResponds: after handoff_after with no
// response, the backups are asked once.
func TestSweepHandsOffWhenNobodyResponds(t *testing.T) {
	r := newSweepRig(t)
	r.open()
	r.tickAt(testrig.T0.Add(3 * time.Hour))
	if len(r.esc().HandedOff) != 0 {
		t.Fatal("handed off before handoff_after")
	}
	r.tickAt(testrig.T0.Add(4 * time.Hour))
	e := r.esc()
	if len(e.HandedOff) != 1 || e.HandedOff[0].Reason != bot.HandoffNoResponse || strings.Join(e.HandedOff[0].People, ",") != "carol" {
		t.Fatalf("handoffs %+v", e.HandedOff)
	}
	posts := r.queued(bot.EffectThreadPost, bot.NoticeHandoff)
	if len(posts) != 1 || strings.Join(posts[0].Mention, ",") != "carol" {
		t.Errorf("handoff posts %+v", posts)
	}
	r.tickAt(testrig.T0.Add(5 * time.Hour))
	if len(r.esc().HandedOff) != 1 {
		t.Errorf("handed off twice")
	}
}

// TestSweepHandsOffWhenAway: someone the escalation waits on who is away
// (people[].away_until) has their group's backups asked.
func TestSweepHandsOffWhenAway(t *testing.T) {
	r := newSweepRig(t)
	r.Policy.Person("id", "alice").AwayUntil = testrig.T0.Add(7 * 24 * time.Hour)
	r.open()
	if err := r.cmd("ann", "/threatgate artifact ESC-1 threat-model https://wiki/tm"); err != nil {
		t.Fatal(err)
	}
	if err := r.cmd("carol", "/threatgate dissent responding"); err != nil {
		t.Fatal(err)
	}
	r.tickAt(time.Date(2026, 11, 3, 15, 0, 0, 0, time.UTC)) // 50%, 10:00 in New York
	e := r.esc()
	if len(e.HandedOff) != 1 || e.HandedOff[0].Reason != "away:alice" {
		t.Fatalf("handoffs %+v", e.HandedOff)
	}
}

// TestSweepPagesOnceAndResolves: a lapsed decision pages on-call once
// (also in the security channel); the decision resolves the page.
func TestSweepPagesOnceAndResolves(t *testing.T) {
	r := newSweepRig(t)
	r.open()
	if err := r.cmd("ann", "/threatgate artifact ESC-1 threat-model https://wiki/tm"); err != nil {
		t.Fatal(err)
	}
	r.tickAt(testrig.T0.Add(47 * time.Hour))
	if r.esc().Paged {
		t.Fatal("paged before the deadline")
	}
	r.tickAt(testrig.T0.Add(48 * time.Hour))
	r.tickAt(testrig.T0.Add(49 * time.Hour))
	pages := r.queued(bot.EffectPage, "")
	if len(pages) != 1 || !r.esc().Paged || !strings.Contains(pages[0].Text, "ESC-1") {
		t.Fatalf("pages %+v", pages)
	}
	lapsed := r.queued(bot.EffectThreadPost, bot.NoticeLapsed)
	if len(lapsed) != 1 || !lapsed[0].Security {
		t.Errorf("lapse posts %+v", lapsed)
	}
	if err := r.cmd("alice", "/approve ESC-1 fine"); err != nil {
		t.Fatal(err)
	}
	resolves := r.queued(bot.EffectResolve, "")
	if len(resolves) != 1 || resolves[0].Text != bot.PageKey("ESC-1") || r.esc().Paged {
		t.Errorf("resolves %+v, paged %v", resolves, r.esc().Paged)
	}
	if got := r.esc().NextTick; !got.IsZero() {
		t.Errorf("a decided escalation is still ticked at %v", got)
	}
}

// TestSweepDeferralPausesTheClock: the decision deadline moves by how long
// the escalation was deferred.
func TestSweepDeferralPausesTheClock(t *testing.T) {
	r := newSweepRig(t)
	r.Policy.Tier("T2").Deferrable = true
	r.open()
	due := r.esc().DecisionDue
	r.Clock.Set(testrig.T0.Add(time.Hour))
	if err := r.cmd("alice", "/threatgate defer ESC-1 2d waiting for the vendor"); err != nil {
		t.Fatal(err)
	}
	r.tickAt(testrig.T0.Add(time.Hour + 48*time.Hour))
	e := r.esc()
	if e.State == bot.StateDeferred {
		t.Fatal("still deferred")
	}
	if want := due.Add(48 * time.Hour); !e.DecisionDue.Equal(want) {
		t.Errorf("decision due %v after a 2-day deferral, want %v", e.DecisionDue, want)
	}
}

// TestSweepInformsEveryUpdateEvery: informed groups get a status update
// every update_every, once per period.
func TestSweepInformsEveryUpdateEvery(t *testing.T) {
	r := newSweepRig(t)
	r.Policy.Tier("T2").UpdateEvery = 6 * time.Hour
	r.open()
	before := len(r.queued(bot.EffectThreadSummary, ""))
	r.tickAt(testrig.T0.Add(6 * time.Hour))
	r.tickAt(testrig.T0.Add(7 * time.Hour))
	if got := len(r.queued(bot.EffectThreadSummary, "")); got != before+1 {
		t.Errorf("%d summaries after 7h, want %d", got, before+1)
	}
	if e := r.esc(); !e.InformedAt.Equal(testrig.T0.Add(6 * time.Hour)) {
		t.Errorf("informed at %v", e.InformedAt)
	}
}

// TestSweepReadsOnlyWhatIsDue: a sweep before anything is due finds
// nothing in the tick index.
func TestSweepReadsOnlyWhatIsDue(t *testing.T) {
	r := newSweepRig(t)
	r.open()
	ids, err := r.DB.TicksDue(r.ctx, testrig.T0.Add(time.Minute), 0)
	if err != nil || len(ids) != 0 {
		t.Errorf("ticks due a minute after opening: %v, %v", ids, err)
	}
	ids, _ = r.DB.TicksDue(r.ctx, testrig.T0.Add(4*time.Hour), 0)
	if len(ids) != 1 {
		t.Errorf("ticks due at the handoff: %v", ids)
	}
}

// TestSweepRemindsOfOverdueActions: the owner of an action item is
// reminded once when its due day has ended, also after the escalation is
// decided.
func TestSweepRemindsOfOverdueActions(t *testing.T) {
	r := newSweepRig(t)
	r.open()
	if err := r.cmd("ann", "/threatgate artifact ESC-1 threat-model https://wiki/tm"); err != nil {
		t.Fatal(err)
	}
	if err := r.cmd("alice", "/threatgate action ESC-1 @carol due:2026-11-03 rotate the signing key"); err != nil {
		t.Fatal(err)
	}
	if err := r.cmd("alice", "/approve ESC-1 fine"); err != nil {
		t.Fatal(err)
	}
	if e := r.esc(); e.State != bot.StateApproved || e.NextTick.IsZero() {
		t.Fatalf("approved with an open action item: state %s, next tick %v", e.State, e.NextTick)
	}
	r.tickAt(time.Date(2026, 11, 3, 23, 0, 0, 0, time.UTC)) // the due day has not ended
	if n := len(r.queued(bot.EffectThreadPost, bot.NoticeNudge)); n != 0 {
		t.Fatalf("%d reminders on the due day", n)
	}
	r.tickAt(time.Date(2026, 11, 4, 10, 0, 0, 0, time.UTC))
	r.tickAt(time.Date(2026, 11, 4, 11, 0, 0, 0, time.UTC))
	nudges := r.queued(bot.EffectThreadPost, bot.NoticeNudge)
	if len(nudges) != 1 || nudges[0].Notice.Why != "action:1" || strings.Join(nudges[0].Mention, ",") != "carol" {
		t.Fatalf("reminders %+v", nudges)
	}
	if got := r.esc().NextTick; !got.IsZero() {
		t.Errorf("next tick %v after the only reminder", got)
	}
}

// TestSweepHandsOffInOrder: with two backup groups, the first is asked
// after handoff_after and the second after another handoff_after, while
// nobody responds.
func TestSweepHandsOffInOrder(t *testing.T) {
	r := newSweepRig(t)
	r.Policy.Groups["second"] = &policies.Group{ID: "second", Members: []string{"dave"}}
	r.Policy.Groups["appsec"].Backups = []string{"appsec-backup", "second"}
	r.open()
	r.tickAt(testrig.T0.Add(4 * time.Hour))
	r.tickAt(testrig.T0.Add(7 * time.Hour))
	if h := r.esc().HandedOff; len(h) != 1 || h[0].Groups[0] != "appsec-backup" {
		t.Fatalf("after 7h: %+v", h)
	}
	r.tickAt(testrig.T0.Add(8 * time.Hour))
	r.tickAt(testrig.T0.Add(20 * time.Hour))
	h := r.esc().HandedOff
	if len(h) != 2 || h[1].Groups[0] != "second" || strings.Join(h[1].People, ",") != "dave" {
		t.Fatalf("after 8h: %+v", h)
	}
}
