package bot_test

// The digest and the weekly report through the engine, a real store and
// the dispatcher: what they read, that they post once per day or week in
// the main channel of each chat surface, and that the windowed reads give
// what a read of everything would. digest_test.go tests the builders and
// the text.

import (
	"context"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/threatgate/threatgate/bot"
	"github.com/threatgate/threatgate/bot/bottest"
	"github.com/threatgate/threatgate/internal/testrig"
	"github.com/threatgate/threatgate/policies"
	"github.com/threatgate/threatgate/store"
)

const reportPolicy = `
version: 1
signals:
  - {id: auth, category: access-control, weight: 50, when: {paths: ["**/auth/**"]}}
  - {id: pii, category: data-exposure, weight: 100, when: {paths: ["**/migrations/**"]}}
tiers:
  - id: T3
    name: critical
    when: {min_score: 100}
    approvals: [{group: appsec, count: 2}]
    first_response: 4h
    decision: 48h
    deferrable: true
  - id: T2
    name: high
    when: {min_score: 50}
    approvals: [{group: appsec, count: 1}]
    first_response: 2h
    decision: 24h
groups:
  appsec: {members: [alice, bob]}
  leads: {members: [dave]}
people:
  - {gitlab: ann, slack: UANN, email: ann@example.com}
  - {gitlab: alice, slack: UALICE, email: alice@example.com}
  - {gitlab: bob, slack: UBOB, email: bob@example.com}
  - {gitlab: dave, slack: UDAVE, email: dave@example.com}
caps: {manual_escalations_per_quarter: 3, override_group: leads}
authority: {retier: [leads], arbiter: [leads]}
`

const dashboardURL = "https://threatgate.example.com/"

// watched is a store that records the windows of the log read through it
// and fails the test on a read of everything.
type watched struct {
	*store.DB
	t       *testing.T
	windows [][2]time.Time
}

func (w *watched) EventsBetween(ctx context.Context, from, to time.Time) ([]bot.Event, error) {
	w.windows = append(w.windows, [2]time.Time{from, to})
	return w.DB.EventsBetween(ctx, from, to)
}

func (w *watched) List(context.Context) ([]*bot.Escalation, error) {
	w.t.Error("List: a whole-store read")
	return nil, nil
}

func (w *watched) AllEvents(context.Context, func(bot.Event) error) error {
	w.t.Error("AllEvents: a whole-log read")
	return nil
}

// reportRig is a rig whose engine reads through watched, with a
// dispatcher delivering chat effects to a recording chat.
type reportRig struct {
	*testrig.Rig
	t    *testing.T
	st   *watched
	eng  *bot.Engine
	chat *bottest.Chat
	disp *bot.Dispatcher
}

func newReportRig(t *testing.T) *reportRig {
	t.Helper()
	r := testrig.NewRig(t, reportPolicy)
	st := &watched{DB: r.DB, t: t}
	rr := &reportRig{Rig: r, t: t, st: st, eng: bot.NewEngine(st, r.Policy, r.Clock, nil), chat: &bottest.Chat{}}
	rr.disp = bot.NewDispatcher(r.DB, nil, rr.chat, nil, r.Clock, nil)
	rr.disp.Threads = r.DB
	return rr
}

// mr opens or updates MR iid touching path, by ann.
func (r *reportRig) mr(iid int64, sha, path string) {
	r.t.Helper()
	in := bot.Input{Kind: bot.InputMR, MR: &bot.MRInput{Action: bot.MRUpdate, MR: &policies.MergeRequest{
		IID: iid, PathWithNamespace: "shop/api", Title: "change " + sha, TargetBranch: "main", SHA: sha, UpdatedAt: r.Clock.Now(),
		Author: policies.User{Username: "ann"}, Changes: []policies.Change{{OldPath: path, NewPath: path}},
	}}}
	if _, err := r.eng.Handle(context.Background(), in); err != nil {
		r.t.Fatalf("MR %d: %v", iid, err)
	}
}

// say runs a chat command as the person with Slack id slackID.
func (r *reportRig) say(slackID, line string) {
	r.t.Helper()
	c, err := bot.ParseCommand(line)
	if err != nil {
		r.t.Fatalf("parse %q: %v", line, err)
	}
	if _, err := r.eng.Handle(context.Background(), bot.Input{Kind: bot.InputCommand, Actor: bot.Identity{Surface: "slack", ExternalID: slackID}, Command: &c}); err != nil {
		r.t.Fatalf("%s: %v", line, err)
	}
}

// posted delivers what is due and returns the texts posted outside any
// thread since the last call.
func (r *reportRig) posted() []string {
	r.t.Helper()
	before := len(r.chat.Messages())
	if _, err := r.disp.DeliverDue(context.Background()); err != nil {
		r.t.Fatal(err)
	}
	var out []string
	for _, m := range r.chat.Messages()[before:] {
		if m.Escalation == "" {
			out = append(out, m.Text)
		}
	}
	return out
}

// week45 plays ISO week 2026-W45 (the rig starts on its Monday at 09:00):
// ESC-1 (T2) approved on Tuesday within its day; ESC-2 (T3) opened on
// Wednesday, rejected on Saturday, late; ESC-3 (T2) opened on Friday,
// nobody looks at it.
func (r *reportRig) week45() {
	r.mr(1, "aaa111", "internal/auth/session.go")
	r.Clock.Advance(2 * time.Hour)
	r.say("UALICE", "/approve ESC-1 token rotation looks right")
	r.Clock.Set(time.Date(2026, 11, 4, 9, 0, 0, 0, time.UTC))
	r.mr(2, "bbb222", "db/migrations/001_customers.sql")
	r.Clock.Set(time.Date(2026, 11, 6, 10, 0, 0, 0, time.UTC))
	r.say("UBOB", "/threatgate action ESC-2 scrub the audit log")
	r.Clock.Set(time.Date(2026, 11, 6, 15, 0, 0, 0, time.UTC))
	r.mr(3, "ccc333", "internal/auth/reset.go")
	r.Clock.Set(time.Date(2026, 11, 7, 11, 0, 0, 0, time.UTC))
	r.say("UBOB", "/threatgate reject ESC-2 copies PII into the audit log")
}

func TestEngineDigest(t *testing.T) {
	r := newReportRig(t)
	ctx := context.Background()
	r.week45()
	r.posted() // the escalations' own posts

	now := time.Date(2026, 11, 8, 9, 0, 0, 0, time.UTC)
	r.Clock.Set(now)
	if err := r.eng.Digest(ctx, now, now.Add(-24*time.Hour), dashboardURL); err != nil {
		t.Fatal(err)
	}
	if want := [][2]time.Time{{now.Add(-bot.DigestWindow), now.Add(time.Nanosecond)}}; !reflect.DeepEqual(r.st.windows, want) {
		t.Errorf("read the log over %v, want %v", r.st.windows, want)
	}
	got := r.posted()
	if len(got) != 1 {
		t.Fatalf("posted %d digests outside a thread, want 1: %q", len(got), got)
	}
	for _, want := range []string{
		"Security review digest, 2026-11-08 09:00 UTC",
		"1 open (1 overdue); 1 deadline missed since the last digest.",
		"- ESC-3 shop/api!3 \"change ccc333\" · T2 in review · overdue by 18h · waited 1d 18h · waiting on alice, bob",
		"- ESC-3 shop/api!3 T2: decision was due 2026-11-07 15:00 UTC; still open",
		"- people: alice 1 (ESC-3); bob 1 (ESC-3)",
		"Last 7 days: 3 opened, 2 decided. Median time to decision: T3 3d 2h (1), T2 2h (1).",
		"Dashboard: " + dashboardURL,
	} {
		if !strings.Contains(got[0], want) {
			t.Errorf("digest lacks %q:\n%s", want, got[0])
		}
	}

	// Once a day: again the same day, nothing; the next day, a new one.
	r.Clock.Advance(3 * time.Hour)
	if err := r.eng.Digest(ctx, r.Clock.Now(), now, dashboardURL); err != nil {
		t.Fatalf("second digest of the day: %v, want nil", err)
	}
	if got := r.posted(); len(got) != 0 {
		t.Errorf("a second digest the same day posted %q", got)
	}
	next := now.Add(24 * time.Hour)
	r.Clock.Set(next)
	if err := r.eng.Digest(ctx, next, now, dashboardURL); err != nil {
		t.Fatal(err)
	}
	if got := r.posted(); len(got) != 1 || !strings.Contains(got[0], "2026-11-09 09:00 UTC") || !strings.Contains(got[0], "0 deadlines missed since the last digest") {
		t.Errorf("the next day's digest: %q", got)
	}
}

// TestEngineDigestOnEverySurface: the digest goes to each chat sink of
// the engine's routes, once each, outside any thread.
func TestEngineDigestOnEverySurface(t *testing.T) {
	r := newReportRig(t)
	r.eng.SetSinks(map[string][]string{bot.SinkChat: {"chat", "slack"}, bot.SinkForge: {"forge"}})
	slack := &bottest.Chat{}
	r.disp.AddSink("slack", chatOnly{slack})
	r.mr(1, "aaa111", "internal/auth/session.go")
	r.posted()
	slack.Sent = nil
	r.Clock.Advance(time.Hour)
	now := r.Clock.Now()
	if err := r.eng.Digest(context.Background(), now, time.Time{}, ""); err != nil {
		t.Fatal(err)
	}
	if got := r.posted(); len(got) != 1 || strings.Contains(got[0], "Dashboard:") {
		t.Errorf("console: %q; want one digest without a dashboard link", got)
	}
	if m := slack.Messages(); len(m) != 1 || m[0].Escalation != "" || !strings.Contains(m[0].Text, "ESC-1") {
		t.Errorf("slack: %+v; want the digest once", m)
	}
}

// chatOnly is a chat as a sink of its own.
type chatOnly struct{ c *bottest.Chat }

func (s chatOnly) Deliver(ctx context.Context, e bot.Effect) (bot.MessageRef, error) {
	text := bot.RenderDigestText(e.Digest)
	if e.Kind != bot.EffectDigest {
		text = e.Body()
	}
	return s.c.Post(ctx, bot.Message{Key: e.ID, Escalation: e.Escalation, Text: text})
}

func TestEngineReport(t *testing.T) {
	r := newReportRig(t)
	ctx := context.Background()
	r.week45()
	r.posted()

	now := time.Date(2026, 11, 9, 8, 0, 0, 0, time.UTC) // Monday of W46
	r.Clock.Set(now)
	if err := r.eng.Report(ctx, now, dashboardURL); err != nil {
		t.Fatal(err)
	}
	from := time.Date(2026, 11, 2, 0, 0, 0, 0, time.UTC)
	if want := [][2]time.Time{{from, from.AddDate(0, 0, 7)}}; !reflect.DeepEqual(r.st.windows, want) {
		t.Errorf("read the log over %v, want %v", r.st.windows, want)
	}
	got := r.posted()
	if len(got) != 1 {
		t.Fatalf("posted %d reports, want 1: %q", len(got), got)
	}
	for _, want := range []string{
		"Weekly security review report, 2026-W45 (2026-11-02 to 2026-11-08, UTC)",
		"3 opened, 2 decided (1 approved, 1 rejected).",
		"- T3 critical: first response 2d 1h / 2d 1h (1); decision 3d 2h / 3d 2h (1)",
		"- T2 high: first response 2h / 2h (1); decision 2h / 2h (1)",
		"SLA breaches: 2 of 3 (67%)",
		"- pii (data-exposure): fired on 1 opened; of 1 decided, 1 rejected, 1 with changes asked",
		"- auth (access-control): fired on 2 opened; of 1 decided, 0 rejected, 0 with changes asked",
		"On the dashboard: https://threatgate.example.com/reports/weekly?week=2026-W45",
	} {
		if !strings.Contains(got[0], want) {
			t.Errorf("report lacks %q:\n%s", want, got[0])
		}
	}
	if err := r.eng.Report(ctx, now.Add(48*time.Hour), dashboardURL); err != nil {
		t.Fatalf("second report of the week: %v, want nil", err)
	}
	if got := r.posted(); len(got) != 0 {
		t.Errorf("a second report of W45 posted %q", got)
	}
}

// TestWeeklyReportOfReadsTheWeek: the report made from one week of the
// log and the escalations it names is the report made from everything.
func TestWeeklyReportOfReadsTheWeek(t *testing.T) {
	r := newReportRig(t)
	ctx := context.Background()
	// Weeks 44 to 46, so that the log holds more than the week.
	r.Clock.Set(time.Date(2026, 10, 28, 9, 0, 0, 0, time.UTC))
	r.mr(9, "zzz999", "internal/auth/old.go")
	r.Clock.Set(time.Date(2026, 11, 2, 9, 0, 0, 0, time.UTC))
	r.week45()
	r.Clock.Set(time.Date(2026, 11, 10, 9, 0, 0, 0, time.UTC))
	r.say("UALICE", "/approve ESC-3 fine after all")

	got, err := bot.WeeklyReportOf(ctx, r.st, 2026, 45, r.Clock.Now(), r.Policy)
	if err != nil {
		t.Fatal(err)
	}
	var all []bot.Event
	if err := r.DB.AllEvents(ctx, func(ev bot.Event) error { all = append(all, ev); return nil }); err != nil {
		t.Fatal(err)
	}
	escs := map[string]*bot.Escalation{}
	list, err := r.DB.List(ctx)
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range list {
		escs[e.ID] = e
	}
	want := bot.BuildWeeklyReport(all, escs, nil, 2026, 45, r.Clock.Now(), r.Policy)
	if !reflect.DeepEqual(got, want) {
		t.Errorf("from the week:\n%+v\nfrom everything:\n%+v", got, want)
	}
	if got.Opened != 3 || got.Decided != 2 {
		t.Errorf("Opened, Decided = %d, %d; want 3, 2", got.Opened, got.Decided)
	}
}
