package main

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"net"
	"net/http"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/threatgate/threatgate/adapters/web"
	"github.com/threatgate/threatgate/bot"
	"github.com/threatgate/threatgate/bot/bottest"
	"github.com/threatgate/threatgate/policies"
	"github.com/threatgate/threatgate/store"
)

// demoT0 is when the demo tests take place.
var demoT0 = time.Date(2026, 3, 20, 10, 0, 0, 0, time.UTC)

// demoRig is the demo's server over a fresh store with the embedded
// policy: the simulated GitLab, serve's GitLab client, intake and worker.
// Nothing runs in the background: tests deliver and process themselves.
type demoRig struct {
	db     *store.DB
	srv    *server
	engine *bot.Engine
	sim    *simulator
}

func newDemoRig(t *testing.T, clock bot.Clock) *demoRig {
	t.Helper()
	pol, err := policies.Default()
	if err != nil {
		t.Fatal(err)
	}
	db, err := store.Open(t.TempDir(), store.NoSync())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if _, err := db.Verify(context.Background()); err != nil {
			t.Errorf("audit chain: %v", err)
		}
		db.Close()
	})
	sim, err := newSimulator(clock, firstDemoIID, pol)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(sim.Close)
	cfg := DefaultConfig()
	cfg.Listen = "127.0.0.1:0"
	s, err := newDemoServer(cfg, pol, db, clock, slog.New(slog.DiscardHandler), sim)
	if err != nil {
		t.Fatal(err)
	}
	return &demoRig{db: db, srv: s, engine: s.engine, sim: sim}
}

// deliver sends every due effect to GitLab and the console, round after
// round (a refresh commits, whose effects go out next), until none is left.
func (r *demoRig) deliver(t *testing.T) {
	t.Helper()
	for range 5 {
		n, err := r.srv.dispatcher.DeliverDue(context.Background())
		if err != nil {
			t.Fatal(err)
		}
		if n == 0 {
			return
		}
	}
}

// find returns the escalation id.
func (r *demoRig) find(t *testing.T, id string) *bot.Escalation {
	t.Helper()
	e, err := r.db.FindEscalation(context.Background(), id)
	if err != nil {
		t.Fatal(err)
	}
	return e
}

// panel returns the simulated GitLab's view of the MR of escalation id.
func (r *demoRig) panel(t *testing.T, id string) web.SimMR {
	t.Helper()
	for _, m := range r.sim.MergeRequests(context.Background()) {
		if m.Escalation == id {
			return m
		}
	}
	t.Fatalf("the simulated GitLab shows no MR of %s", id)
	return web.SimMR{}
}

// say runs a chat command as person in the thread of esc.
func (r *demoRig) say(t *testing.T, person, esc, text string) (bot.Reply, error) {
	t.Helper()
	c, err := bot.ParseCommand(text)
	if err != nil {
		t.Fatal(err)
	}
	return r.engine.Handle(context.Background(), bot.Input{Kind: bot.InputCommand, Actor: bot.Identity{Person: person, Surface: "web"}, Command: &c, Escalation: esc})
}

func TestDemoSamplesClassify(t *testing.T) {
	r := newDemoRig(t, bottest.NewClock(demoT0))
	ctx := context.Background()
	// The tiers the embedded default policy gives each sample; "" is no
	// escalation.
	want := map[string]string{
		"auth-session":           "T2",
		"dependency-bump":        "T1",
		"pii-migration":          "T2",
		"docs-only":              "",
		"sso-insecure-tls":       "T3",
		"terraform-open-ingress": "T2",
		"ci-deploy-job":          "T1",
	}
	samples := r.sim.Samples()
	if len(samples) != len(want) {
		t.Fatalf("Samples() = %d samples, want %d", len(samples), len(want))
	}
	iids := map[int64]bool{}
	for _, smp := range samples {
		tier, ok := want[smp.ID]
		if !ok {
			t.Errorf("unexpected sample %q", smp.ID)
			continue
		}
		if smp.Title == "" || smp.Description == "" {
			t.Errorf("%s: Title %q, Description %q; want both", smp.ID, smp.Title, smp.Description)
		}
		// The tier the console shows is the policy's classification.
		if smp.Tier != tier {
			t.Errorf("%s: Tier = %q, want %q", smp.ID, smp.Tier, tier)
		}
		esc, reply, err := r.sim.OpenSample(ctx, smp.ID)
		if err != nil {
			t.Fatalf("OpenSample(%s): %v", smp.ID, err)
		}
		if tier == "" {
			if esc != "" || !strings.Contains(reply, "no escalation") {
				t.Errorf("OpenSample(%s) = %q, %q; want no escalation", smp.ID, esc, reply)
			}
			continue
		}
		if esc == "" || !strings.Contains(reply, esc) {
			t.Fatalf("OpenSample(%s) = %q, %q; want an escalation named in the reply", smp.ID, esc, reply)
		}
		e, err := r.db.FindEscalation(ctx, esc)
		if err != nil {
			t.Fatal(err)
		}
		if e.Tier != tier {
			t.Errorf("%s: Tier = %q, want %q (signals %v)", smp.ID, e.Tier, tier, e.Signals)
		}
		if e.Title != smp.Title || e.Project == "" || !strings.HasPrefix(e.Project, "acme/") || len(e.HeadSHA) != 40 || !e.MRUpdatedAt.Equal(demoT0) {
			t.Errorf("%s: Title %q, Project %q, HeadSHA %q, MRUpdatedAt %v", smp.ID, e.Title, e.Project, e.HeadSHA, e.MRUpdatedAt)
		}
		// Authors are people of the policy, so they meet its rules.
		if pol, _ := policies.Default(); pol.Person("gitlab", e.Author) == nil {
			t.Errorf("%s: Author %q is nobody in the policy", smp.ID, e.Author)
		}
		if false {
			t.Errorf("%s: Title %q, Project %q, HeadSHA %q, MRUpdatedAt %v", smp.ID, e.Title, e.Project, e.HeadSHA, e.MRUpdatedAt)
		}
		if !strings.HasSuffix(e.MRURL, "/-/merge_requests/"+strconv.FormatInt(e.MRIID, 10)) {
			t.Errorf("%s: MRURL %q does not end in its MR number %d", smp.ID, e.MRURL, e.MRIID)
		}
		if iids[e.MRIID] {
			t.Errorf("%s: MR number %d handed out twice", smp.ID, e.MRIID)
		}
		iids[e.MRIID] = true
		if len(e.CommitAuthors) != 1 || e.Author == "" {
			t.Errorf("%s: Author %q, CommitAuthors %v", smp.ID, e.Author, e.CommitAuthors)
		}
	}

	_, _, err := r.sim.OpenSample(ctx, "no-such-sample")
	p, ok := bot.IsProblem(err)
	if !ok || !strings.Contains(p.Error(), `"no-such-sample"`) || !strings.Contains(p.Error(), "docs-only") {
		t.Errorf("OpenSample(unknown) = %v; want a Problem naming it and the samples there are", err)
	}
}

func TestDemoOpenSampleTwice(t *testing.T) {
	r := newDemoRig(t, bottest.NewClock(demoT0))
	ctx := context.Background()
	a, _, err := r.sim.OpenSample(ctx, "auth-session")
	if err != nil {
		t.Fatal(err)
	}
	b, _, err := r.sim.OpenSample(ctx, "auth-session")
	if err != nil {
		t.Fatal(err)
	}
	if a == "" || b == "" || a == b {
		t.Fatalf("two openings gave %q and %q; want two escalations", a, b)
	}
	ea, _ := r.db.FindEscalation(ctx, a)
	eb, _ := r.db.FindEscalation(ctx, b)
	if ea.MRIID == eb.MRIID || ea.HeadSHA == eb.HeadSHA {
		t.Errorf("MR numbers %d, %d and heads %s, %s; want fresh ones", ea.MRIID, eb.MRIID, ea.HeadSHA, eb.HeadSHA)
	}
}

// TestDemoSimulatorForge: what threatgate does in GitLab lands in the
// simulated GitLab through serve's client, and the panel shows it; every
// change was also sent as a webhook, which the worker handles.
func TestDemoSimulatorForge(t *testing.T) {
	clock := bottest.NewClock(demoT0)
	r := newDemoRig(t, clock)
	ctx := context.Background()
	esc, _, err := r.sim.OpenSample(ctx, "pii-migration")
	if err != nil {
		t.Fatal(err)
	}
	r.deliver(t)
	e := r.find(t, esc)
	mr := r.panel(t, esc)
	if mr.Gate != "pending" || mr.GateSHA != e.HeadSHA || mr.Head != e.HeadSHA || !strings.Contains(mr.GateText, "threat-model") {
		t.Errorf("gate %q %q on %s, head %s; want pending, needing the artifacts, on %s", mr.Gate, mr.GateText, mr.GateSHA, mr.Head, e.HeadSHA)
	}
	if got := r.sim.gl.Labels(e.Project, e.MRIID); !slices.Contains(got, "security-tier::T2") {
		t.Errorf("Labels = %v, want security-tier::T2 among them", got)
	}
	if notes := r.sim.gl.Notes(e.Project, e.MRIID); len(notes) != 1 || !strings.Contains(notes[0], esc) {
		t.Errorf("Notes = %q; want the summary of %s", notes, esc)
	}
	// The webhook went through the intake into the inbox: the worker
	// handles it, and it moves nothing (the MR was read back already).
	n, err := r.srv.worker.ProcessDue(ctx)
	if err != nil || n != 1 {
		t.Errorf("worker processed %d webhooks, err %v; want the 1 the opening sent", n, err)
	}
	if again := r.find(t, esc); again.State != e.State || again.HeadSHA != e.HeadSHA || again.Tier != e.Tier {
		t.Errorf("after the webhook %s is %s %s on %s; was %s %s on %s", esc, again.State, again.Tier, again.HeadSHA, e.State, e.Tier, e.HeadSHA)
	}
}

// TestDemoPushMakesApprovalsStale: an approved MR gets a push in the
// simulated GitLab; the gate goes pending on the new head, the approval no
// longer counts.
func TestDemoPushMakesApprovalsStale(t *testing.T) {
	clock := bottest.NewClock(demoT0)
	r := newDemoRig(t, clock)
	ctx := context.Background()
	esc, _, err := r.sim.OpenSample(ctx, "auth-session")
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct{ who, text string }{
		{"frank", "/threatgate artifact threat-model https://wiki.example.com/tm/1"},
		{"frank", "/threatgate artifact impact-matrix https://wiki.example.com/im/1"},
		{"frank", "/threatgate artifact test-evidence https://ci.example.com/1"},
		{"bob", "/threatgate risk 4 likelihood 2, impact 2"},
		{"alice", "/approve" + seedChecks("none", "none", "none", "none") + " fine"},
	} {
		if _, err := r.say(t, c.who, esc, c.text); err != nil {
			t.Fatalf("%s: %s: %v", c.who, c.text, err)
		}
	}
	r.deliver(t)
	before := r.find(t, esc)
	if mr := r.panel(t, esc); before.State != bot.StateApproved || mr.Gate != "success" || mr.GateSHA != before.HeadSHA {
		t.Fatalf("before the push: %s, gate %q on %s; want approved, success on %s", before.State, mr.Gate, mr.GateSHA, before.HeadSHA)
	}

	ref := r.panel(t, esc).Ref
	got, reply, err := r.sim.Act(ctx, ref, actPush)
	if err != nil || got != esc {
		t.Fatalf("push: %q, %v; want %s", got, err, esc)
	}
	after := r.find(t, esc)
	if after.HeadSHA == before.HeadSHA || after.State == bot.StateApproved || !strings.Contains(reply, "Pushed commit") || !strings.Contains(reply, bot.ShortSHA(after.HeadSHA)) {
		t.Errorf("after the push: head %s (was %s), %s; reply %q; want a new head, no longer approved", after.HeadSHA, before.HeadSHA, after.State, reply)
	}
	// Before the gate is set on the new head, the panel says so.
	if mr := r.panel(t, esc); mr.Head != after.HeadSHA || mr.GateSHA != before.HeadSHA {
		t.Errorf("panel before delivery: head %s, gate on %s; want the new head and the old gate on %s", mr.Head, mr.GateSHA, before.HeadSHA)
	}
	r.deliver(t)
	if mr := r.panel(t, esc); mr.Gate != "pending" || mr.GateSHA != after.HeadSHA {
		t.Errorf("gate after the push: %q on %s; want pending on the new head %s", mr.Gate, mr.GateSHA, after.HeadSHA)
	}
	counted := 0
	for _, a := range after.Approvals {
		if a.SHA == after.HeadSHA {
			counted++
		}
	}
	if counted != 0 {
		t.Errorf("%d approvals on the new head; want none (alice approved the old one)", counted)
	}
}

// TestDemoMergeWithoutApprovalIsBypass: merging in the simulated GitLab an
// MR threatgate has not approved is recorded as a bypass.
func TestDemoMergeWithoutApprovalIsBypass(t *testing.T) {
	r := newDemoRig(t, bottest.NewClock(demoT0))
	ctx := context.Background()
	esc, _, err := r.sim.OpenSample(ctx, "terraform-open-ingress")
	if err != nil {
		t.Fatal(err)
	}
	ref := r.panel(t, esc).Ref
	_, reply, err := r.sim.Act(ctx, ref, actMerge)
	if err != nil {
		t.Fatal(err)
	}
	e := r.find(t, esc)
	if e.State != bot.StateMerged || !e.Bypassed || !strings.Contains(reply, "bypass") {
		t.Errorf("after merging: %s, bypassed %v, reply %q; want merged, a bypass, said", e.State, e.Bypassed, reply)
	}
	r.deliver(t)
	if mr := r.panel(t, esc); mr.State != "merged" || !mr.Bypassed {
		t.Errorf("panel: %s, bypassed %v; want merged, bypassed", mr.State, mr.Bypassed)
	}
	// A merged MR takes nothing more.
	for _, a := range []string{actMerge, actPush, actClose, actReopen} {
		if _, _, err := r.sim.Act(ctx, ref, a); !isProblemErr(err) {
			t.Errorf("%s on a merged MR: %v; want a Problem", a, err)
		}
	}
}

func isProblemErr(err error) bool { _, ok := bot.IsProblem(err); return ok }

// TestDemoCloseReopen closes and reopens an MR; refuses what cannot be.
func TestDemoCloseReopen(t *testing.T) {
	r := newDemoRig(t, bottest.NewClock(demoT0))
	ctx := context.Background()
	esc, _, err := r.sim.OpenSample(ctx, "pii-migration")
	if err != nil {
		t.Fatal(err)
	}
	ref := r.panel(t, esc).Ref
	if _, _, err := r.sim.Act(ctx, ref, actReopen); !isProblemErr(err) {
		t.Errorf("reopening an open MR: %v; want a Problem", err)
	}
	if _, _, err := r.sim.Act(ctx, ref, actClose); err != nil {
		t.Fatal(err)
	}
	if e := r.find(t, esc); e.State != bot.StateWithdrawn || r.panel(t, esc).State != "closed" {
		t.Errorf("after closing: %s, GitLab %s; want withdrawn, closed", e.State, r.panel(t, esc).State)
	}
	if _, _, err := r.sim.Act(ctx, ref, actMerge); !isProblemErr(err) {
		t.Errorf("merging a closed MR: %v; want a Problem", err)
	}
	if _, _, err := r.sim.Act(ctx, ref, actReopen); err != nil {
		t.Fatal(err)
	}
	if e := r.find(t, esc); e.State != bot.StateAwaitingArtifacts || r.panel(t, esc).State != "opened" {
		t.Errorf("after reopening: %s, GitLab %s; want awaiting artifacts, opened", e.State, r.panel(t, esc).State)
	}
	if _, _, err := r.sim.Act(ctx, ref, "rebase"); !isProblemErr(err) || !strings.Contains(err.Error(), "push, merge, close or reopen") {
		t.Errorf("an unknown action: %v; want a Problem naming the actions", err)
	}
	for _, bad := range []string{"acme/nope!1", "nonsense", ""} {
		if _, _, err := r.sim.Act(ctx, bad, actPush); !errors.Is(err, web.ErrUnknownMR) {
			t.Errorf("Act(%q): %v; want ErrUnknownMR", bad, err)
		}
	}
}

// TestDemoAuthorCannotApprove: sample authors are people of the policy,
// so an appsec author approving her own MR is refused.
func TestDemoAuthorCannotApprove(t *testing.T) {
	r := newDemoRig(t, bottest.NewClock(demoT0))
	ctx := context.Background()
	esc, _, err := r.sim.OpenSample(ctx, "auth-session")
	if err != nil {
		t.Fatal(err)
	}
	author := r.find(t, esc).Author
	pol, _ := policies.Default()
	if !pol.InGroup(author, "appsec") {
		t.Fatalf("auth-session's author %q is not in appsec; the refusal would prove nothing", author)
	}
	_, err = r.say(t, author, esc, "/approve"+seedChecks("none", "none", "none", "none")+" mine")
	if p, ok := bot.IsProblem(err); !ok || !strings.Contains(p.Error(), "you wrote this merge request") {
		t.Errorf("%s approving her own MR: %v; want a refusal saying she wrote it", author, err)
	}
}

func TestDemoSeed(t *testing.T) {
	clock := &demoClock{}
	clock.Set(demoT0)
	r := newDemoRig(t, clock)
	ctx := context.Background()
	n, err := seedDemo(ctx, r.db, r.engine, r.sim, clock)
	if err != nil {
		t.Fatal(err)
	}
	if n != 7 {
		t.Errorf("seedDemo made %d escalations, want 7", n)
	}
	if got := clock.Now(); !got.Equal(demoT0) {
		t.Errorf("clock after seeding = %v, want it back at %v", got, demoT0)
	}
	all, err := r.db.List(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if len(all) != 7 {
		t.Fatalf("%d escalations in the store, want 7", len(all))
	}
	by := map[string]*bot.Escalation{} // by title; the manual one has none
	weeks := map[int]bool{}
	for _, e := range all {
		by[e.Title] = e
		if e.CreatedAt.After(demoT0) || e.CreatedAt.Before(demoT0.Add(-28*demoDay)) {
			t.Errorf("%s created at %v; want within the four weeks before %v", e.ID, e.CreatedAt, demoT0)
		}
		weeks[int(demoT0.Sub(e.CreatedAt)/(7*demoDay))] = true
	}
	if len(weeks) < 4 {
		t.Errorf("escalations created in %d different weeks, want 4 or more for the throughput chart", len(weeks))
	}
	title := func(sample string) string {
		for _, s := range r.sim.Samples() {
			if s.ID == sample {
				return s.Title
			}
		}
		t.Fatalf("no sample %s", sample)
		return ""
	}
	get := func(sample string) *bot.Escalation {
		e := by[title(sample)]
		if e == nil {
			t.Fatalf("no seeded escalation of sample %s", sample)
		}
		return e
	}
	approvers := func(ds []bot.Decision) []string {
		var out []string
		for _, d := range ds {
			out = append(out, d.By)
		}
		return out
	}

	// Approved: every artifact, bob's approval answering all four checklist items.
	e := get("auth-session")
	if e.State != bot.StateApproved || e.Tier != "T2" || len(e.Artifacts) != 3 || !slices.Equal(approvers(e.Approvals), []string{"bob"}) ||
		len(e.Approvals[0].Checks) != 4 || e.Risk == nil || e.Risk.Score != 4 || len(e.Actions) != 1 || e.DecidedAt.IsZero() {
		t.Errorf("auth-session: %s %s, %d artifacts, approvals %v, risk %v, %d actions, decided %v; want approved T2 by bob with 4 checks, risk 4, 1 action",
			e.State, e.Tier, len(e.Artifacts), approvers(e.Approvals), e.Risk, len(e.Actions), e.DecidedAt)
	}
	// Merged before approval: a bypass.
	if e := get("ci-deploy-job"); e.State != bot.StateMerged || !e.Bypassed {
		t.Errorf("ci-deploy-job: %s, bypassed %v; want merged, bypassed", e.State, e.Bypassed)
	}
	// Disputed: alice approved, frank rejected.
	if e := get("terraform-open-ingress"); e.State != bot.StateDisputed || !slices.Equal(approvers(e.Approvals), []string{"alice"}) || !slices.Equal(approvers(e.Rejections), []string{"frank"}) {
		t.Errorf("terraform-open-ingress: %s, approvals %v, rejections %v; want disputed, alice, frank", e.State, approvers(e.Approvals), approvers(e.Rejections))
	}
	// Deferred (T1 is the deferrable tier) until after today.
	if e := get("dependency-bump"); e.State != bot.StateDeferred || e.Tier != "T1" || !e.DeferredUntil.After(demoT0) {
		t.Errorf("dependency-bump: %s %s until %v; want deferred T1 until after %v", e.State, e.Tier, e.DeferredUntil, demoT0)
	}
	// In review: one of T3's two appsec approvals, past its deadline.
	if e := get("sso-insecure-tls"); e.State != bot.StateInReview || e.Tier != "T3" || !slices.Equal(approvers(e.Approvals), []string{"alice"}) ||
		len(e.Waiting) == 0 || !e.DecisionDue.Before(demoT0) {
		t.Errorf("sso-insecure-tls: %s %s, approvals %v, waiting %v, due %v; want in review T3, alice, waiting on others, overdue", e.State, e.Tier, approvers(e.Approvals), e.Waiting, e.DecisionDue)
	}
	// Awaiting artifacts: two of three missing.
	pol, _ := policies.Default()
	if e := get("pii-migration"); e.State != bot.StateAwaitingArtifacts || !slices.Equal(e.MissingArtifacts(pol.Tier(e.Tier)), []string{"impact-matrix", "test-evidence"}) {
		t.Errorf("pii-migration: %s, missing %v; want awaiting impact-matrix, test-evidence", e.State, e.MissingArtifacts(pol.Tier(e.Tier)))
	}
	// The urgent manual escalation with its intake.
	var manual *bot.Escalation
	for _, e := range all {
		if e.Manual {
			manual = e
		}
	}
	if manual == nil || !manual.Urgent || manual.Filer != "frank" || manual.Tier != "T2" || manual.State != bot.StateAwaitingArtifacts ||
		manual.Intake["summary"] == "" || manual.Intake["assets"] == "" || manual.Intake["exploit"] == "" {
		t.Errorf("manual escalation: %+v; want urgent T2 by frank with summary, assets and exploit", manual)
	}

	// A second run leaves the store alone.
	n, err = seedDemo(ctx, r.db, r.engine, r.sim, clock)
	if err != nil || n != 0 {
		t.Errorf("second seedDemo = %d, %v; want 0, nil", n, err)
	}
	if again, _ := r.db.List(ctx); len(again) != 7 {
		t.Errorf("%d escalations after a second seeding, want 7", len(again))
	}
}

// TestDemoCommand runs `threatgate demo` on a free port end to end.
func TestDemoCommand(t *testing.T) {
	dir := t.TempDir()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	pr, pw := io.Pipe()
	first := make(chan string, 1)
	go func() {
		sc := bufio.NewScanner(pr)
		if sc.Scan() {
			first <- sc.Text()
		}
		io.Copy(io.Discard, pr)
	}()
	stderr := &syncBuffer{}
	done := make(chan int, 1)
	go func() {
		code := demoCommand(ctx, []string{"--listen", "127.0.0.1:0", "--data", dir}, pw, stderr)
		pw.Close()
		done <- code
	}()

	var line string
	select {
	case line = <-first:
	case code := <-done:
		t.Fatalf("demo exited %d before serving:\n%s", code, stderr)
	case <-time.After(30 * time.Second):
		t.Fatalf("demo printed nothing within 30s:\n%s", stderr)
	}
	base := regexp.MustCompile(`http://127\.0\.0\.1:[1-9][0-9]*`).FindString(line)
	if !strings.HasPrefix(line, "threatgate demo: open ") || base == "" {
		t.Fatalf("first line %q; want \"threatgate demo: open http://127.0.0.1:PORT/ ...\"", line)
	}

	call := func(method, path string, hdr map[string]string, out any) int {
		t.Helper()
		req, _ := http.NewRequest(method, base+path, nil)
		for k, v := range hdr {
			req.Header.Set(k, v)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		if out != nil && resp.StatusCode == http.StatusOK {
			if err := json.NewDecoder(resp.Body).Decode(out); err != nil {
				t.Fatalf("%s %s: %v", method, path, err)
			}
		}
		return resp.StatusCode
	}
	var escs struct{ Items []map[string]any }
	if code := call("GET", "/api/escalations", nil, &escs); code != 200 || len(escs.Items) != 7 {
		t.Errorf("GET /api/escalations: %d, %d escalations; want 200 and the 7 seeded", code, len(escs.Items))
	}
	var samples []map[string]string
	if code := call("GET", "/api/demo/samples", nil, &samples); code != 200 || len(samples) != len(demoSamples) || samples[0]["id"] == "" || samples[0]["title"] == "" {
		t.Errorf("GET /api/demo/samples: %d, %v", code, samples)
	}
	var opened map[string]string
	if code := call("POST", "/api/demo/samples/auth-session", nil, &opened); code != 200 || opened["escalation"] != "ESC-8" || !strings.Contains(opened["reply"], "ESC-8") {
		t.Errorf("POST /api/demo/samples/auth-session: %d, %v; want ESC-8", code, opened)
	}
	if code := call("POST", "/api/demo/samples/docs-only", nil, &opened); code != 200 || opened["escalation"] != "" {
		t.Errorf("POST /api/demo/samples/docs-only: %d, %v; want no escalation", code, opened)
	}
	if code := call("POST", "/api/demo/samples/nope", nil, nil); code != http.StatusNotFound {
		t.Errorf("POST /api/demo/samples/nope: %d, want 404", code)
	}
	if code := call("POST", "/api/demo/samples/auth-session", map[string]string{"Sec-Fetch-Site": "cross-site"}, nil); code != http.StatusForbidden {
		t.Errorf("cross-site POST: %d, want 403", code)
	}
	var mrs []map[string]any
	if code := call("GET", "/api/demo/gitlab", nil, &mrs); code != 200 || len(mrs) < 9 || mrs[0]["ref"] == nil {
		t.Errorf("GET /api/demo/gitlab: %d, %d MRs; want the 7 seeded, the manual one's and the opened ones", code, len(mrs))
	}
	if code := call("GET", "/healthz", nil, nil); code != 200 {
		t.Errorf("/healthz: %d", code)
	}

	cancel()
	select {
	case code := <-done:
		if code != exitOK {
			t.Errorf("demo exited %d, want 0:\n%s", code, stderr)
		}
	case <-time.After(30 * time.Second):
		t.Fatal("demo did not stop within 30s of its context ending")
	}

	// The data directory keeps everything; a second start seeds nothing.
	db, err := store.Open(dir, store.NoSync())
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	if all, _ := db.List(context.Background()); len(all) != 8 {
		t.Errorf("%d escalations in the data directory, want 7 seeded + 1 opened", len(all))
	}
}

func TestDemoPortInUse(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	stderr := &syncBuffer{}
	code := demoCommand(context.Background(), []string{"--listen", ln.Addr().String(), "--data", t.TempDir()}, io.Discard, stderr)
	out := stderr.String()
	if code != exitFinding || strings.Count(out, "\n") != 1 || !strings.Contains(out, ln.Addr().String()+" is already in use") || !strings.Contains(out, "--listen 127.0.0.1:") {
		t.Errorf("demo on a busy port: exit %d, stderr %q; want 1 and one line naming the address and --listen", code, out)
	}
}

func TestDemoBadFlags(t *testing.T) {
	stderr := &syncBuffer{}
	if code := demoCommand(context.Background(), []string{"--listen", "nonsense", "--data", t.TempDir()}, io.Discard, stderr); code != exitFinding || !strings.Contains(stderr.String(), "--listen: want host:port") {
		t.Errorf("demo --listen nonsense: exit %d, stderr %q", code, stderr)
	}
	stderr = &syncBuffer{}
	if code := demoCommand(context.Background(), []string{"extra"}, io.Discard, stderr); code != exitUsage {
		t.Errorf("demo extra: exit %d, want %d", code, exitUsage)
	}
}

// demoCommand runs `threatgate demo args...`.
func demoCommand(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	return run(ctx, append([]string{"demo"}, args...), nil, stdout, stderr)
}

// TestDemoManualEscalationLearnsItsMR: a manual escalation of an MR the
// policy does not tier asks the (simulated) GitLab for the MR, and so gets
// its title, link, head, authors and a pending gate, like an automatic one.
func TestDemoManualEscalationLearnsItsMR(t *testing.T) {
	r := newDemoRig(t, bottest.NewClock(demoT0))
	ctx := context.Background()
	if esc, _, err := r.sim.OpenSample(ctx, "docs-only"); err != nil || esc != "" {
		t.Fatalf("docs-only: escalation %q, err %v; want none", esc, err)
	}
	mrs := r.sim.MergeRequests(ctx)
	if len(mrs) != 1 {
		t.Fatalf("MergeRequests() = %d, want 1", len(mrs))
	}
	project, iid := mrs[0].Project, mrs[0].IID
	line := "/escalate https://evil.example/" + project + "/-/merge_requests/" + strconv.FormatInt(iid, 10) + " --tier T2 the docs describe an internal endpoint\nsummary: s\nassets: a\nexploit: e"
	rep, err := r.say(t, "dave", "", line)
	if err != nil {
		t.Fatal(err)
	}
	r.deliver(t)
	e := r.find(t, rep.Escalation)
	if e.Title == "" || e.HeadSHA == "" || e.Author == "" || strings.Contains(e.MRURL, "evil.example") || e.MRURL == "" {
		t.Errorf("manual escalation: title %q, head %q, author %q, url %q; want the MR's own, not the typed URL", e.Title, e.HeadSHA, e.Author, e.MRURL)
	}
	if mr := r.panel(t, e.ID); mr.Gate != "pending" || mr.GateSHA != e.HeadSHA || !strings.Contains(mr.GateText, e.ID) {
		t.Errorf("gate %q %q on %s; want pending on %s naming %s", mr.Gate, mr.GateText, mr.GateSHA, e.HeadSHA, e.ID)
	}
}

// TestDemoRestore: a demo started again on its data directory puts the
// MRs back into the simulated GitLab as they were.
func TestDemoRestore(t *testing.T) {
	clock := &demoClock{}
	clock.Set(demoT0)
	r := newDemoRig(t, clock)
	ctx := context.Background()
	if _, err := seedDemo(ctx, r.db, r.engine, r.sim, clock); err != nil {
		t.Fatal(err)
	}
	r.deliver(t) // the manual escalation learns its MR
	pol, _ := policies.Default()
	sim2, err := newSimulator(clock, firstDemoIID+100, pol)
	if err != nil {
		t.Fatal(err)
	}
	defer sim2.Close()
	sim2.store = r.db
	all, _ := r.db.List(ctx)
	sim2.restore(all)
	was, now := r.sim.MergeRequests(ctx), sim2.MergeRequests(ctx)
	if len(now) != len(was) {
		t.Fatalf("%d MRs restored, want %d", len(now), len(was))
	}
	for _, m := range was {
		i := slices.IndexFunc(now, func(x web.SimMR) bool { return x.Ref == m.Ref })
		if i < 0 || now[i].Head != m.Head || now[i].State != m.State || now[i].Title != m.Title || now[i].Escalation != m.Escalation {
			t.Errorf("%s restored as %+v; was %+v", m.Ref, now, m)
		}
	}
}
