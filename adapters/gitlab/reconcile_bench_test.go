package gitlab

import (
	"context"
	"fmt"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/threatgate/threatgate/adapters/gitlab/gitlabtest"
	"github.com/threatgate/threatgate/bot"
	"github.com/threatgate/threatgate/bot/bottest"
	"github.com/threatgate/threatgate/policies"
	"github.com/threatgate/threatgate/store"
)

// bigReconcile is the reconcile benchmark's world: the fake GitLab with
// open MRs spread over projects, an escalation for each (opened through
// the real Engine into a real store, NoSync), and a worker over the real
// client. Each project's watermark is set, as in a threatgate that has
// run before.
type bigReconcile struct {
	gl        *gitlabtest.Server
	clock     *bottest.Clock
	db        *store.DB
	worker    *Worker
	mrs       []mrRef
	escalated int // how many of mrs have an escalation
	pushes    int
}

type mrRef struct {
	project string
	iid     int64
}

func newBigReconcile(b *testing.B, open, projects int) *bigReconcile {
	b.Helper()
	return newBigReconcileMixed(b, open, projects, 0)
}

// newBigReconcileMixed is newBigReconcile where every untieredEvery-th MR
// of each project (none when 0) changes only docs: it classifies into no tier and has no
// escalation, and the worker remembers it as the webhook path would have.
func newBigReconcileMixed(b *testing.B, open, projects, untieredEvery int) *bigReconcile {
	b.Helper()
	pol, err := policies.Load("e2e.yaml", []byte(e2ePolicy))
	if err != nil {
		b.Fatal(err)
	}
	clock := bottest.NewClock(time.Date(2026, 11, 2, 9, 0, 0, 0, time.UTC))
	gl := gitlabtest.New(b)
	gl.SetNow(clock.Now)
	db, err := store.Open(b.TempDir(), store.NoSync())
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { db.Close() })
	eng := bot.NewEngine(db, pol, clock, nil)
	client, err := New(Config{BaseURL: gl.URL, Token: bot.Secret(gl.Token), StatusName: statusName, Gate: GateStatus, Timeout: 10 * time.Second})
	if err != nil {
		b.Fatal(err)
	}
	client.now = clock.Now
	r := &bigReconcile{gl: gl, clock: clock, db: db,
		worker: &Worker{Inbox: db, Fetch: client, Engine: eng, Store: db, Clock: clock}}
	ctx := context.Background()
	auth := []gitlabtest.Diff{{OldPath: "auth/a.go", NewPath: "auth/a.go", Diff: "@@ -1 +1,2 @@\n x\n+y\n"}}
	docs := []gitlabtest.Diff{{OldPath: "docs/a.md", NewPath: "docs/a.md", Diff: "@@ -1 +1,2 @@\n x\n+y\n"}}
	for i := range open {
		project := fmt.Sprintf("grp/p%02d", i%projects)
		iid := int64(i/projects + 1)
		sha := fmt.Sprintf("%040x", i+1)
		untiered := untieredEvery > 0 && (i/projects)%untieredEvery == 0
		diffs := auth
		if untiered {
			diffs = docs
		}
		gl.AddMR(gitlabtest.MR{Project: project, IID: iid, Title: "change", Author: "ann", SHA: sha,
			HeadPipelineID: int64(1_000_000 + i), Diffs: diffs, UpdatedAt: clock.Now()})
		mr := &policies.MergeRequest{IID: iid, PathWithNamespace: project, Title: "change", State: "opened",
			SourceBranch: "feature", TargetBranch: "main", SHA: sha, UpdatedAt: clock.Now(),
			Author: policies.User{Username: "ann"}, Labels: policies.Labels{},
			Changes: []policies.Change{{OldPath: diffs[0].OldPath, NewPath: diffs[0].NewPath, Diff: diffs[0].Diff}}}
		mi := &bot.MRInput{Action: bot.MROpen, Fetched: true, MR: mr, CommitAuthors: []string{"ann@example.com"}, Status: &bot.ForgeStatus{SHA: sha}}
		rep, err := eng.Handle(ctx, bot.Input{Kind: bot.InputMR, Actor: bot.System, MR: mi})
		if err != nil {
			b.Fatal(err)
		}
		if untiered != (rep.Escalation == "") {
			b.Fatalf("%s!%d: escalation %q, untiered %v", project, iid, rep.Escalation, untiered)
		}
		if !untiered {
			r.escalated++
		}
		r.worker.classified(project, iid, mi, rep)
		r.mrs = append(r.mrs, mrRef{project, iid})
	}
	r.worker.keepClassified(ctx)
	clock.Advance(30 * time.Minute)
	for p := range projects {
		if err := db.SetWatermark(ctx, watermarkName(fmt.Sprintf("grp/p%02d", p)), clock.Now()); err != nil {
			b.Fatal(err)
		}
	}
	return r
}

// pass runs one reconcile pass and returns the requests it sent.
func (r *bigReconcile) pass(b *testing.B) map[string]int {
	r.gl.ResetRequests()
	n, err := r.worker.Reconcile(context.Background())
	if err != nil || n != r.escalated {
		b.Fatalf("Reconcile = %d, %v; want %d", n, err, r.escalated)
	}
	return r.gl.CallsByEndpoint()
}

// push gives every 100th MR (1%) a new head, as pushes whose webhooks
// were lost.
func (r *bigReconcile) push() {
	r.pushes++
	for i := 0; i < len(r.mrs); i += 100 {
		m := r.mrs[(i+r.pushes)%len(r.mrs)]
		r.gl.PushCommit(m.project, m.iid, fmt.Sprintf("%08x%032x", r.pushes, i+1))
	}
}

func total(calls map[string]int) int {
	n := 0
	for _, c := range calls {
		n += c
	}
	return n
}

func describe(calls map[string]int) string {
	keys := make([]string, 0, len(calls))
	for k := range calls {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	var parts []string
	for _, k := range keys {
		parts = append(parts, fmt.Sprintf("%s=%d", strings.TrimPrefix(k, "GET "), calls[k]))
	}
	return strings.Join(parts, " ")
}

// BenchmarkReconcile10kOpen: one reconcile pass over 10,000 open MRs in
// 10 projects against the fake GitLab, with every project's watermark
// set: the first pass of a new process (it also lists every open MR),
// then passes with nothing changed and with 1% of the MRs pushed.
// requests/pass is what GitLab would be asked.
//
//	go test -run XXX -bench Reconcile10kOpen -benchtime 5x ./adapters/gitlab/
func BenchmarkReconcile10kOpen(b *testing.B) {
	benchReconcile(b, 0)
}

// BenchmarkReconcile10kOpenHalfUntiered is BenchmarkReconcile10kOpen
// where half the open MRs classify into no tier and have no escalation,
// remembered as the webhook path left them: a pass with nothing changed
// reads none of them, and one with 1% pushed reads the pushed ones
// (untiered or not). upgrade_first_pass is the first pass of a new
// process over the same MRs with nothing remembered (as after upgrading
// to a threatgate that catches up MRs without an escalation): it lists
// every open MR and reads DefaultClassifyPerPass of the 5,000 untiered.
//
//	go test -run XXX -bench Reconcile10kOpenHalfUntiered -benchtime 5x ./adapters/gitlab/
func BenchmarkReconcile10kOpenHalfUntiered(b *testing.B) {
	benchReconcile(b, 2)
}

func benchReconcile(b *testing.B, untieredEvery int) {
	const open, projects = 10_000, 10
	start := time.Now()
	r := newBigReconcileMixed(b, open, projects, untieredEvery)
	b.Logf("built %d open MRs (%d escalations) in %d projects through the engine in %s", open, r.escalated, projects, time.Since(start).Round(time.Millisecond))

	// Each sub-benchmark reports the requests of a pass, averaged over
	// its passes, and logs those of its last pass by endpoint.
	run := func(name string, before func()) {
		b.Run(name, func(b *testing.B) {
			var calls map[string]int
			sum := 0
			for i := 0; i < b.N; i++ {
				b.StopTimer()
				r.clock.Advance(10 * time.Minute)
				before()
				b.StartTimer()
				calls = r.pass(b)
				sum += total(calls)
			}
			b.ReportMetric(float64(sum)/float64(b.N), "requests/pass")
			b.Logf("requests: %s", describe(calls))
		})
	}
	// A new process: incremental lists plus the list of every open MR.
	run("first_pass_after_start", func() { r.worker.lastFull = nil })
	// The periodic full list is left out below (it is the pass above).
	r.worker.FullEvery = 1000 * time.Hour
	run("nothing_changed", func() {})
	run("1pct_changed", r.push)
	if untieredEvery == 0 {
		return
	}
	run("upgrade_first_pass", func() {
		r.worker.lastFull = nil
		ctx := context.Background()
		for p := range projects {
			project := fmt.Sprintf("grp/p%02d", p)
			recs, err := r.db.FindUnescalated(ctx, project, nil)
			if err != nil {
				b.Fatal(err)
			}
			var drop []bot.Unescalated
			for _, u := range recs {
				drop = append(drop, u)
			}
			if err := r.db.KeepUnescalated(ctx, nil, drop); err != nil {
				b.Fatal(err)
			}
		}
	})
}

// perMRFetcher hides everything of a client but FetchMR: a worker over it
// reconciles as before issue 14, reading every MR each pass (and the
// client's diff cache keeps its old 500 heads, since nothing sizes it).
type perMRFetcher struct{ Fetcher }

// BenchmarkReconcile10kOpenPerMR is the pass before issue 14 over the
// same world: every MR read, its status too, and diffs and commits again
// whenever the 500-head cache has lost them.
//
//	go test -run XXX -bench Reconcile10kOpenPerMR -benchtime 1x ./adapters/gitlab/
func BenchmarkReconcile10kOpenPerMR(b *testing.B) {
	r := newBigReconcile(b, 10_000, 10)
	r.worker.Fetch = perMRFetcher{r.worker.Fetch}
	var calls map[string]int
	for i := 0; i < b.N; i++ {
		r.clock.Advance(10 * time.Minute)
		calls = r.pass(b)
	}
	b.ReportMetric(float64(total(calls)), "requests/pass")
	b.Logf("requests: %s", describe(calls))
}
