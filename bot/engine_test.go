package bot_test

import (
	"context"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/threatgate/threatgate/bot"
	"github.com/threatgate/threatgate/bot/bottest"
	"github.com/threatgate/threatgate/internal/testrig"
	"github.com/threatgate/threatgate/policies"
	"github.com/threatgate/threatgate/store"
)

const enginePolicy = `
version: 1
signals:
  - {id: auth, category: access-control, weight: 50, when: {paths: ["**/auth/**"]}}
tiers:
  - id: T2
    name: high
    when: {min_score: 50}
    artifacts: [threat-model]
    approvals: [{group: appsec, count: 1}]
groups:
  appsec: {members: [alice, bob]}
  leads: {members: [dave]}
people:
  - {gitlab: ann, slack: UANN, email: ann@example.com}
  - {gitlab: alice, slack: UALICE, email: alice@example.com}
  - {gitlab: bob, email: bob@example.com}
  - {gitlab: dave, email: dave@example.com}
caps: {manual_escalations_per_quarter: 1, override_group: leads}
authority: {retier: [leads], arbiter: [leads]}
`

type rig struct {
	db    *store.DB
	dir   string
	eng   *bot.Engine
	clock *bottest.Clock
	pol   *policies.Policy
}

func newRig(t *testing.T) *rig {
	t.Helper()
	br := testrig.NewRig(t, enginePolicy)
	r := &rig{db: br.DB, dir: br.Dir, eng: br.Engine, clock: br.Clock, pol: br.Policy}
	// A test that reopens the store hands the new handle to the rig's
	// cleanup (registered first, so it runs last).
	t.Cleanup(func() { br.DB = r.db })
	return r
}

func mrInput(iid int64, sha string, updated time.Time, path string) bot.Input {
	return bot.Input{Kind: bot.InputMR, MR: &bot.MRInput{Action: bot.MRUpdate, MR: &policies.MergeRequest{
		IID: iid, PathWithNamespace: "shop/api", Title: "session rework", TargetBranch: "main", SHA: sha, UpdatedAt: updated,
		Author: policies.User{Username: "ann"}, Changes: []policies.Change{{OldPath: path, NewPath: path}},
	}}}
}

func command(t *testing.T, surface, id, line, thread string) bot.Input {
	t.Helper()
	c, err := bot.ParseCommand(line)
	if err != nil {
		t.Fatal(err)
	}
	return bot.Input{Kind: bot.InputCommand, Actor: bot.Identity{Surface: surface, ExternalID: id}, Command: &c, Escalation: thread}
}

func TestEngineApprovalPathIsDurable(t *testing.T) {
	r := newRig(t)
	ctx := context.Background()
	in := mrInput(12, "aaa", r.clock.Now(), "internal/auth/session.go")
	in.Key = "webhook-1"
	rep, err := r.eng.Handle(ctx, in)
	if err != nil {
		t.Fatal(err)
	}
	if rep.Escalation != "ESC-1" || !strings.Contains(rep.Text, "escalated as ESC-1") {
		t.Fatalf("reply %+v, want ESC-1 named", rep)
	}
	// A redelivery of the same webhook changes nothing.
	rep, err = r.eng.Handle(ctx, in)
	if err != nil || !rep.Duplicate {
		t.Fatalf("redelivery: %+v, %v; want Duplicate", rep, err)
	}
	due, _ := r.db.PendingEffects(ctx, 0)
	notes := 0
	for _, rec := range due {
		if rec.Effect.Kind == bot.EffectMRNote {
			notes++
			if body := rec.Effect.Body(); !strings.Contains(body, "ESC-1") || strings.Contains(body, bot.IDPlaceholder) {
				t.Errorf("note body %q does not name ESC-1", body)
			}
		}
	}
	if notes != 1 {
		t.Errorf("%d MR notes queued, want 1", notes)
	}

	// The author hands in the artifact (identified through the policy's
	// Slack id), someone else approves.
	r.clock.Advance(time.Hour)
	if _, err := r.eng.Handle(ctx, command(t, "slack", "UANN", "/threatgate artifact threat-model https://wiki/tm", "ESC-1")); err != nil {
		t.Fatal(err)
	}
	_, err = r.eng.Handle(ctx, command(t, "slack", "UANN", "/approve", "ESC-1"))
	if p, ok := bot.IsProblem(err); !ok || !strings.Contains(p.Msg, "you wrote") {
		t.Fatalf("author approving: %v, want a Problem", err)
	}
	rep, err = r.eng.Handle(ctx, command(t, "slack", "UALICE", "/approve ESC-1 reviewed the token rotation", ""))
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(rep.Text, "Approval from alice") {
		t.Errorf("reply %q", rep.Text)
	}

	// Reopen the file: everything is there.
	r.db.Close()
	db, err := store.Open(r.dir, store.NoSync())
	if err != nil {
		t.Fatal(err)
	}
	r.db = db
	esc, err := db.FindEscalation(ctx, "ESC-1")
	if err != nil {
		t.Fatal(err)
	}
	if esc.State != bot.StateApproved || len(esc.Approvals) != 1 || esc.Approvals[0].Rationale != "reviewed the token rotation" {
		t.Errorf("after reopen: state %s approvals %+v", esc.State, esc.Approvals)
	}
	events, _ := db.Events(ctx, "ESC-1")
	if len(events) != int(esc.Version) {
		t.Errorf("%d events, projection version %d", len(events), esc.Version)
	}
}

func TestEngineRefusalWritesNothing(t *testing.T) {
	r := newRig(t)
	ctx := context.Background()
	if _, err := r.eng.Handle(ctx, mrInput(1, "aaa", r.clock.Now(), "auth/x.go")); err != nil {
		t.Fatal(err)
	}
	before, _ := r.db.Events(ctx, "ESC-1")
	_, err := r.eng.Handle(ctx, command(t, "slack", "UALICE", "/approve", "ESC-1"))
	if _, ok := bot.IsProblem(err); !ok {
		t.Fatalf("approve before artifacts: %v, want a Problem", err)
	}
	_, err = r.eng.Handle(ctx, command(t, "slack", "UNKNOWN", "/threatgate dissent no", "ESC-1"))
	if p, ok := bot.IsProblem(err); !ok || !strings.Contains(p.Msg, "not in the policy's people") {
		t.Fatalf("stranger: %v", err)
	}
	_, err = r.eng.Handle(ctx, command(t, "slack", "UALICE", "/approve ESC-99", ""))
	if p, ok := bot.IsProblem(err); !ok || !strings.Contains(p.Msg, "no escalation ESC-99") {
		t.Fatalf("unknown escalation: %v", err)
	}
	after, _ := r.db.Events(ctx, "ESC-1")
	if len(after) != len(before) {
		t.Errorf("refusals wrote %d events", len(after)-len(before))
	}
}

func TestEngineQuarterlyCap(t *testing.T) {
	r := newRig(t)
	ctx := context.Background()
	file := func(iid int) error {
		_, err := r.eng.Handle(ctx, command(t, "slack", "UANN", fmt.Sprintf("/escalate shop/api!%d odd crypto\nsummary: s\nassets: a\nexploit: e", iid), ""))
		return err
	}
	if err := file(1); err != nil {
		t.Fatal(err)
	}
	err := file(2)
	if p, ok := bot.IsProblem(err); !ok || !strings.Contains(p.Msg, "cap is 1") {
		t.Fatalf("second escalation: %v, want refused by the cap", err)
	}
	if _, err := r.eng.Handle(ctx, bot.Input{Kind: bot.InputCommand, Actor: bot.Identity{Person: "dave", Surface: "web"},
		Command: &bot.Command{Verb: bot.VerbOverrideCap, Person: "ann", Count: 1, Text: "incident"}}); err != nil {
		t.Fatal(err)
	}
	if err := file(2); err != nil {
		t.Fatalf("after override: %v", err)
	}
	if err := file(3); err == nil {
		t.Fatal("third escalation allowed; the override granted one")
	}
	// A new quarter starts afresh.
	r.clock.Set(time.Date(2027, 1, 1, 0, 0, 0, 0, time.UTC))
	if err := file(3); err != nil {
		t.Fatalf("new quarter: %v", err)
	}
	rep, err := r.eng.Handle(ctx, command(t, "slack", "UALICE", "/threatgate backlog", ""))
	if err != nil || !strings.Contains(rep.Text, "3 open escalation(s)") {
		t.Errorf("backlog: %q, %v", rep.Text, err)
	}
}

func TestEngineConcurrentInputs(t *testing.T) {
	r := newRig(t)
	ctx := context.Background()
	var wg sync.WaitGroup
	errs := make(chan error, 100)
	for i := range 40 {
		wg.Add(2)
		go func() {
			defer wg.Done()
			_, err := r.eng.Handle(ctx, mrInput(int64(i+1), "aaa", r.clock.Now(), "auth/x.go"))
			errs <- err
		}()
		go func() {
			defer wg.Done()
			// The same MR again, racing its own open.
			_, err := r.eng.Handle(ctx, mrInput(int64(i+1), "aaa", r.clock.Now(), "auth/x.go"))
			errs <- err
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			// Not even ErrConflict: inputs for one MR are serialised and
			// a conflict is decided again, never returned.
			t.Error(err)
		}
	}
	all, _ := r.db.List(ctx)
	if len(all) != 40 {
		t.Errorf("%d escalations, want 40 (one per MR)", len(all))
	}
}

func TestEngineIntakeInThreadCountsWhenFiled(t *testing.T) {
	r := newRig(t)
	ctx := context.Background()
	rep, err := r.eng.Handle(ctx, command(t, "slack", "UANN", "/escalate shop/api!40 weird token handling", ""))
	if err != nil || rep.Escalation != "ESC-1" || !strings.Contains(rep.Text, "summary:") {
		t.Fatalf("draft: %+v, %v", rep, err)
	}
	if q, _ := r.db.Quota(ctx, "ann", bot.Quarter(r.clock.Now())); q.Manual != 0 {
		t.Errorf("a draft counted against the cap: %+v", q)
	}
	reply := func(text string) (bot.Reply, error) {
		c, err := bot.ParseReply(text)
		if err != nil {
			t.Fatal(err)
		}
		return r.eng.Handle(ctx, bot.Input{Kind: bot.InputCommand, Actor: bot.Identity{Surface: "slack", ExternalID: "UANN"}, Command: &c, Escalation: "ESC-1"})
	}
	if rep, err := reply("summary: tokens logged in plain text"); err != nil || !strings.Contains(rep.Text, "assets:") {
		t.Fatalf("partial intake: %+v, %v", rep, err)
	}
	if rep, err := reply("assets: api\nexploit: anyone with log access replays sessions"); err != nil || !strings.Contains(rep.Text, "filed") {
		t.Fatalf("complete intake: %+v, %v", rep, err)
	}
	e, _ := r.db.FindEscalation(ctx, "ESC-1")
	if e.State != bot.StateInReview && e.State != bot.StateAwaitingArtifacts {
		t.Errorf("filed escalation is %s", e.State)
	}
	if q, _ := r.db.Quota(ctx, "ann", bot.Quarter(r.clock.Now())); q.Manual != 1 {
		t.Errorf("filing did not count: %+v", q)
	}
	// At the cap (1), a second draft can be opened only with room left.
	if _, err := r.eng.Handle(ctx, command(t, "slack", "UANN", "/escalate shop/api!41 again", "")); err == nil {
		t.Error("a draft past the cap was accepted")
	}
}

// TestEngineTickEndsDeferrals: Tick takes the time as an argument, reads
// only the deferrals that have ended (the store's index) and moves each
// back; a rerun changes nothing.
func TestEngineTickEndsDeferrals(t *testing.T) {
	r := newRig(t)
	pol, err := policies.Load("engine.yaml", []byte(strings.Replace(enginePolicy, "approvals: [{group: appsec, count: 1}]", "approvals: [{group: appsec, count: 1}]\n    deferrable: true", 1)))
	if err != nil {
		t.Fatal(err)
	}
	r.eng.SetPolicy(pol)
	ctx := context.Background()
	t0 := r.clock.Now()
	for i, iid := range []int64{12, 13} {
		if _, err := r.eng.Handle(ctx, mrInput(iid, "aaa", t0, "internal/auth/session.go")); err != nil {
			t.Fatal(err)
		}
		esc := fmt.Sprintf("ESC-%d", i+1)
		if _, err := r.eng.Handle(ctx, command(t, "slack", "UALICE", fmt.Sprintf("/threatgate defer %dh waiting for the vendor", 2*(i+1)), esc)); err != nil {
			t.Fatal(err)
		}
	}
	if n, err := r.eng.Tick(ctx, t0.Add(time.Hour)); err != nil || n != 0 {
		t.Fatalf("Tick before any deferral ended: %d, %v", n, err)
	}
	if n, err := r.eng.Tick(ctx, t0.Add(3*time.Hour)); err != nil || n != 1 {
		t.Fatalf("Tick after the first deferral ended: %d, %v", n, err)
	}
	e1, _ := r.db.FindEscalation(ctx, "ESC-1")
	e2, _ := r.db.FindEscalation(ctx, "ESC-2")
	if e1.State != bot.StateAwaitingArtifacts || e2.State != bot.StateDeferred {
		t.Errorf("after the tick: ESC-1 %s, ESC-2 %s; want ESC-1 back to awaiting_artifacts, ESC-2 still deferred", e1.State, e2.State)
	}
	if n, _ := r.eng.Tick(ctx, t0.Add(3*time.Hour)); n != 0 {
		t.Errorf("a rerun moved %d", n)
	}
	if ids, _ := r.db.DeferralsDue(ctx, t0.Add(24*time.Hour), 0); len(ids) != 1 || ids[0] != "ESC-2" {
		t.Errorf("DeferralsDue = %v, want only ESC-2", ids)
	}
}

// TestWrittenAtBindsTheHead: a chat command that cannot name the head its
// sender saw carries when it was written; written before the head last
// changed, or long ago, it does not decide about the new head.
func TestWrittenAtBindsTheHead(t *testing.T) {
	r := newRig(t)
	ctx := context.Background()
	if _, err := r.eng.Handle(ctx, mrInput(12, "aaa1111", r.clock.Now(), "internal/auth/session.go")); err != nil {
		t.Fatal(err)
	}
	if _, err := r.eng.Handle(ctx, command(t, "slack", "UANN", "/threatgate artifact ESC-1 threat-model https://wiki/tm", "")); err != nil {
		t.Fatal(err)
	}
	written := r.clock.Now().Add(5 * time.Minute)
	r.clock.Advance(10 * time.Minute)
	if _, err := r.eng.Handle(ctx, mrInput(12, "bbb2222", r.clock.Now(), "internal/auth/session.go")); err != nil {
		t.Fatal(err)
	}
	approve := command(t, "slack", "UALICE", "/approve ESC-1 fine", "")
	approve.WrittenAt = written
	_, err := r.eng.Handle(ctx, approve)
	if p, ok := bot.IsProblem(err); !ok || !strings.Contains(p.Msg, "moved to bbb2222") {
		t.Fatalf("approval written before the push: %v, want refused", err)
	}
	// Written long ago (a replayed or long-delayed message): refused.
	approve.WrittenAt = r.clock.Now().Add(-bot.MaxCommandAge - time.Minute)
	if _, err := r.eng.Handle(ctx, approve); err == nil {
		t.Fatalf("an approval written %s ago was accepted", bot.MaxCommandAge+time.Minute)
	}
	// Written after the push: it is about the new head.
	approve.WrittenAt = r.clock.Now()
	if _, err := r.eng.Handle(ctx, approve); err != nil {
		t.Fatalf("approval written after the push: %v", err)
	}
	if e, _ := r.db.FindEscalation(ctx, "ESC-1"); e.State != bot.StateApproved || e.HeadSince.IsZero() {
		t.Errorf("state %s, head since %v", e.State, e.HeadSince)
	}
}

// TestStrangersReadHelpOnly: someone not in the policy's people reads help,
// not an escalation's status nor the backlog.
func TestStrangersReadHelpOnly(t *testing.T) {
	r := newRig(t)
	ctx := context.Background()
	if _, err := r.eng.Handle(ctx, mrInput(12, "aaa1111", r.clock.Now(), "internal/auth/session.go")); err != nil {
		t.Fatal(err)
	}
	for _, line := range []string{"/threatgate status ESC-1", "/threatgate backlog"} {
		_, err := r.eng.Handle(ctx, command(t, "slack", "U0GUEST", line, ""))
		if p, ok := bot.IsProblem(err); !ok || !strings.Contains(p.Msg, "not in the policy's people") {
			t.Errorf("%s by a stranger: %v, want refused", line, err)
		}
	}
	if rep, err := r.eng.Handle(ctx, command(t, "slack", "U0GUEST", "/threatgate help", "")); err != nil || !strings.Contains(rep.Text, "/approve") {
		t.Errorf("help by a stranger: %q, %v", rep.Text, err)
	}
}

// TestBacklogIsBounded: /threatgate backlog lists the BacklogLimit most
// urgent escalations (read through the deadline index) and says how many
// more wait; it never reads the whole backlog.
func TestBacklogIsBounded(t *testing.T) {
	r := newRig(t)
	ctx := context.Background()
	n := bot.BacklogLimit + 7
	for i := range n {
		r.clock.Advance(time.Minute) // later deadlines for later MRs
		if _, err := r.eng.Handle(ctx, mrInput(int64(i+1), "aaa", r.clock.Now(), "internal/auth/session.go")); err != nil {
			t.Fatal(err)
		}
	}
	rep, err := r.eng.Handle(ctx, command(t, "slack", "UALICE", "/threatgate backlog", ""))
	if err != nil {
		t.Fatal(err)
	}
	lines := strings.Count(rep.Text, "\n- ESC-")
	if lines != bot.BacklogLimit || !strings.Contains(rep.Text, "... and 7 more waiting") {
		t.Errorf("backlog lists %d escalations (want %d) and says %q", lines, bot.BacklogLimit, rep.Text[max(0, len(rep.Text)-200):])
	}
	if !strings.Contains(rep.Text, "- ESC-1 ") || strings.Contains(rep.Text, fmt.Sprintf("- ESC-%d ", n)) {
		t.Error("the backlog did not list the most urgent (the oldest deadlines) first")
	}
}
