package main

import (
	"bufio"
	"context"
	"encoding/json"
	"io"
	"net"
	"net/http"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/threatgate/threatgate/bot"
	"github.com/threatgate/threatgate/bot/bottest"
	"github.com/threatgate/threatgate/policies"
	"github.com/threatgate/threatgate/store"
)

// demoT0 is when the demo tests take place.
var demoT0 = time.Date(2026, 3, 20, 10, 0, 0, 0, time.UTC)

// demoRig is an engine over a fresh store with the embedded policy, and a
// simulator wired to it.
type demoRig struct {
	db     *store.DB
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
	sim, err := newSimulator(clock, firstDemoIID)
	if err != nil {
		t.Fatal(err)
	}
	r := &demoRig{db: db, engine: bot.NewEngine(db, pol, clock, nil), sim: sim}
	sim.handler = r.engine
	return r
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
		// The description tells the user what to expect; it must be true.
		if tier == "" && !strings.Contains(smp.Description, "no escalation") {
			t.Errorf("%s: Description %q does not say it does not escalate", smp.ID, smp.Description)
		} else if tier != "" && !strings.Contains(smp.Description, "as "+tier) {
			t.Errorf("%s: Description %q does not name its tier %s", smp.ID, smp.Description, tier)
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
		if !strings.HasSuffix(e.MRURL, "/-/merge_requests/"+strconv.FormatInt(e.MRIID, 10)) {
			t.Errorf("%s: MRURL %q does not end in its MR number %d", smp.ID, e.MRURL, e.MRIID)
		}
		if iids[e.MRIID] {
			t.Errorf("%s: MR number %d handed out twice", smp.ID, e.MRIID)
		}
		iids[e.MRIID] = true
		if len(e.CommitAuthors) != 1 || e.CommitAuthors[0] != e.Author || e.Author == "" {
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

// TestDemoSimulatorForge delivers an escalation's effects to the
// simulator and reads back what GitLab would show.
func TestDemoSimulatorForge(t *testing.T) {
	clock := bottest.NewClock(demoT0)
	r := newDemoRig(t, clock)
	ctx := context.Background()
	esc, _, err := r.sim.OpenSample(ctx, "pii-migration")
	if err != nil {
		t.Fatal(err)
	}
	d := bot.NewDispatcher(r.db, r.sim, nil, nil, clock, nil)
	if _, err := d.DeliverDue(ctx); err != nil {
		t.Fatal(err)
	}
	e, _ := r.db.FindEscalation(ctx, esc)
	mr, ok := r.sim.MR(e.Project, e.MRIID)
	if !ok {
		t.Fatalf("the simulator has no record of %s!%d", e.Project, e.MRIID)
	}
	if mr.Status != bot.StatusPending || mr.SHA != e.HeadSHA || !strings.Contains(mr.StatusText, "needs threat-model") {
		t.Errorf("status %q %q on %s; want pending, needing the artifacts, on %s", mr.Status, mr.StatusText, mr.SHA, e.HeadSHA)
	}
	if !slices.Equal(mr.Labels, []string{"security-tier::T2"}) {
		t.Errorf("Labels = %v, want [security-tier::T2]", mr.Labels)
	}
	if len(mr.Notes) != 1 || !strings.Contains(mr.Notes[0], esc) {
		t.Errorf("Notes = %q; want the summary of %s", mr.Notes, esc)
	}
	acts := r.sim.Actions()
	if len(acts) != 3 {
		t.Fatalf("Actions() = %d, want 3 (note, labels, status): %+v", len(acts), acts)
	}

	// A retried delivery does not act twice.
	again := bot.Effect{ID: "fx-1", Kind: bot.EffectMRNote, Escalation: esc, Project: e.Project, MRIID: e.MRIID, Text: "hello"}
	r.sim.PostNote(ctx, again)
	r.sim.PostNote(ctx, again)
	if mr, _ := r.sim.MR(e.Project, e.MRIID); len(mr.Notes) != 2 {
		t.Errorf("Notes after the same note twice = %q, want it once", mr.Notes)
	}

	// A push makes a new head: the simulator shows the status again on it.
	if _, err := r.sim.push(ctx, r.engine, esc, clock.Now().Add(time.Minute)); err != nil {
		t.Fatal(err)
	}
	if _, err := d.DeliverDue(ctx); err != nil {
		t.Fatal(err)
	}
	e2, _ := r.db.FindEscalation(ctx, esc)
	if mr, _ := r.sim.MR(e.Project, e.MRIID); e2.HeadSHA == e.HeadSHA || mr.SHA != e2.HeadSHA || !strings.Contains(mr.StatusText, esc) {
		t.Errorf("after a push: head %s (was %s), status %q on %s", e2.HeadSHA, e.HeadSHA, mr.StatusText, mr.SHA)
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
	if code := call("GET", "/api/demo/gitlab", nil, &[]map[string]any{}); code != 200 {
		t.Errorf("GET /api/demo/gitlab: %d", code)
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
	clock := bottest.NewClock(demoT0)
	r := newDemoRig(t, clock)
	ctx := context.Background()
	if esc, _, err := r.sim.OpenSample(ctx, "docs-only"); err != nil || esc != "" {
		t.Fatalf("docs-only: escalation %q, err %v; want none", esc, err)
	}
	var project string
	var iid int64
	for _, o := range r.sim.byMR {
		project, iid = o.mr.PathWithNamespace, o.mr.IID
	}
	line := "/escalate https://evil.example/" + project + "/-/merge_requests/" + strconv.FormatInt(iid, 10) + " --tier T2 the docs describe an internal endpoint\nsummary: s\nassets: a\nexploit: e"
	c, err := bot.ParseCommand(line)
	if err != nil {
		t.Fatal(err)
	}
	rep, err := r.engine.Handle(ctx, bot.Input{Kind: bot.InputCommand, Actor: bot.Identity{Person: "erin", Surface: "web"}, Command: &c})
	if err != nil {
		t.Fatal(err)
	}
	d := bot.NewDispatcher(r.db, r.sim, nil, nil, clock, nil)
	d.Refresher = r.sim
	for range 3 { // the refresh commits the MR's facts, whose effects go out next
		if _, err := d.DeliverDue(ctx); err != nil {
			t.Fatal(err)
		}
	}
	e, err := r.db.FindEscalation(ctx, rep.Escalation)
	if err != nil {
		t.Fatal(err)
	}
	if e.Title == "" || e.HeadSHA == "" || e.Author == "" || strings.Contains(e.MRURL, "evil.example") || e.MRURL == "" {
		t.Errorf("manual escalation: title %q, head %q, author %q, url %q; want the MR's own, not the typed URL", e.Title, e.HeadSHA, e.Author, e.MRURL)
	}
	mr, _ := r.sim.MR(project, iid)
	if mr.Status != bot.StatusPending || mr.SHA != e.HeadSHA || !strings.Contains(mr.StatusText, e.ID) {
		t.Errorf("gate %q %q on %s; want pending on %s naming %s", mr.Status, mr.StatusText, mr.SHA, e.HeadSHA, e.ID)
	}
}
