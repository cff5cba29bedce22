package gitlab

import (
	"context"
	"net/http"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/threatgate/threatgate/adapters/gitlab/gitlabtest"
)

var docsDiff = gitlabtest.Diff{OldPath: "docs/a.md", NewPath: "docs/a.md", Diff: "@@ -1 +1,2 @@\n x\n+y\n"}

// TestFetchMRPartialSaysWhenTheDiffIsShort: the client reports a diff
// GitLab gave none of (still preparing it), left files out of
// (changes_count "N+") or left a file's text out of (too large), and does
// not keep an empty diff for the head, so the next fetch sees the diff
// once GitLab has it.
func TestFetchMRPartialSaysWhenTheDiffIsShort(t *testing.T) {
	r := newRig(t, "status")
	ctx := context.Background()
	r.gl.AddMR(gitlabtest.MR{Project: "shop/api", IID: 1, Author: "ann", Title: "whole", Diffs: []gitlabtest.Diff{docsDiff}})
	r.gl.AddMR(gitlabtest.MR{Project: "shop/api", IID: 2, Author: "ann", Title: "preparing"})
	r.gl.AddMR(gitlabtest.MR{Project: "shop/api", IID: 3, Author: "ann", Title: "overflow", Diffs: []gitlabtest.Diff{docsDiff}, Overflow: true})
	big := authDiff
	big.TooLarge = true
	r.gl.AddMR(gitlabtest.MR{Project: "shop/api", IID: 4, Author: "ann", Title: "too large", Diffs: []gitlabtest.Diff{big}})
	for iid, want := range map[int64]bool{1: false, 2: true, 3: true, 4: true} {
		_, partial, err := r.client.FetchMRPartial(ctx, "shop/api", iid)
		if err != nil {
			t.Fatal(err)
		}
		if partial != want {
			t.Errorf("!%d: partial = %v, want %v", iid, partial, want)
		}
	}
	r.gl.SetDiffs("shop/api", 2, false, authDiff) // GitLab is done preparing it
	mi, partial, err := r.client.FetchMRPartial(ctx, "shop/api", 2)
	if err != nil {
		t.Fatal(err)
	}
	if partial || len(mi.MR.Changes) != 1 || mi.MR.Changes[0].NewPath != authDiff.NewPath {
		t.Errorf("!2 once prepared: partial %v, changes %+v; want the diff, not the empty one cached", partial, mi.MR.Changes)
	}
}

// TestReconcileReadsAgainAnMRWhoseDiffWasPartial: a new MR's webhook is
// processed while GitLab still prepares its diff (no file yet); it
// classifies into no tier, and used to be remembered so, at its head and
// facts, and never read again: once the diff is there it touches auth
// code. It is not remembered, so the next pass reads it and gates it.
// An MR whose diff overflows is not remembered either: read again on
// the next pass, then less and less often.
func TestReconcileReadsAgainAnMRWhoseDiffWasPartial(t *testing.T) {
	r := newRig(t, "status")
	ctx := context.Background()
	head := "a150000000000000000000000000000000000401"
	r.gl.AddMR(gitlabtest.MR{Project: "shop/api", IID: 4, Author: "ann", Title: "sessions", SHA: head, HeadPipelineID: 801})
	r.gl.AddMR(gitlabtest.MR{Project: "shop/api", IID: 5, Author: "ann", Title: "vendor", Diffs: []gitlabtest.Diff{docsDiff}, Overflow: true})
	r.hook(4, "open", head, "")
	r.hook(5, "open", "", "")
	r.settle()
	if e := r.find("shop/api", 4); e != nil {
		t.Fatalf("setup: !4 without a diff yet has %s", e.ID)
	}
	if recs, err := r.db.FindUnescalated(ctx, "shop/api", nil); err != nil || len(recs) != 0 {
		t.Fatalf("MRs read with a partial diff were remembered as untiered: %+v, %v", recs, err)
	}

	r.gl.SetDiffs("shop/api", 4, false, authDiff)
	r.clock.Advance(5 * time.Minute)
	reqs := r.pass()
	r.wantGated("shop/api", 4, head)
	if reads(reqs, "shop/api", 5) == 0 {
		t.Error("the pass did not read !5, whose diff overflowed, again")
	}
	if recs, _ := r.db.FindUnescalated(ctx, "shop/api", nil); len(recs) != 0 {
		t.Errorf("remembered after the pass: %+v, want nothing", recs)
	}
}

// TestReconcileBacksOffAnMRWhoseReadFails: an MR without an escalation
// whose diff GitLab cannot serve is read on passes 1, 3, 6 and 11 of 11
// (skipped 1, 2, 4 passes), not on every pass; the project's watermark
// does not move past it meanwhile (so it stays listed), and a push
// (another head) has it read at once.
func TestReconcileBacksOffAnMRWhoseReadFails(t *testing.T) {
	r := newRig(t, "status")
	r.worker.Projects = []string{"shop/web"}
	r.gl.AddMR(gitlabtest.MR{Project: "shop/web", IID: 1, Author: "ann", Title: "big", Diffs: []gitlabtest.Diff{docsDiff}, UpdatedAt: r.clock.Now()})
	r.gl.FailPath("/shop/web/merge_requests/1/diffs", 1000, http.StatusInternalServerError)
	var got []int
	for pass := 1; pass <= 11; pass++ {
		r.clock.Advance(10 * time.Minute)
		if reads(r.pass(), "shop/web", 1) > 0 {
			got = append(got, pass)
		}
	}
	if want := []int{1, 3, 6, 11}; !slices.Equal(got, want) {
		t.Errorf("!1 read on passes %v, want %v", got, want)
	}
	if _, ok, err := r.db.Watermark(context.Background(), watermarkName("shop/web")); err != nil || ok {
		t.Errorf("shop/web has a watermark (%v, %v) although !1 was never handled", ok, err)
	}
	r.gl.ClearFaults()
	head := "a150000000000000000000000000000000000501"
	r.gl.PushCommit("shop/web", 1, head, authDiff)
	r.clock.Advance(10 * time.Minute)
	r.pass()
	r.wantGated("shop/web", 1, head)
}

// TestReconcileSharesTheClassifyBudgetBetweenProjects: a project sorted
// first with a backlog larger than the pass's budget takes its share,
// not the whole budget: a later project's MR whose webhook was lost is
// gated on the first pass, and the backlog is worked off over the next
// passes.
func TestReconcileSharesTheClassifyBudgetBetweenProjects(t *testing.T) {
	r := newRig(t, "status")
	r.worker.ClassifyPerPass = 2
	r.worker.Projects = []string{"aaa/big", "shop/web"}
	for iid := int64(1); iid <= 4; iid++ {
		r.gl.AddMR(gitlabtest.MR{Project: "aaa/big", IID: iid, Author: "bob", Title: "docs", Diffs: []gitlabtest.Diff{docsDiff}, UpdatedAt: r.clock.Now()})
	}
	head := "a150000000000000000000000000000000000601"
	r.gl.AddMR(gitlabtest.MR{Project: "shop/web", IID: 1, Author: "ann", Title: "sessions", SHA: head,
		HeadPipelineID: 901, Diffs: []gitlabtest.Diff{authDiff}, UpdatedAt: r.clock.Now()})
	r.clock.Advance(10 * time.Minute)
	r.pass()
	r.wantGated("shop/web", 1, head)
	for range 2 {
		r.clock.Advance(10 * time.Minute)
		r.pass()
	}
	if recs, err := r.db.FindUnescalated(context.Background(), "aaa/big", nil); err != nil || len(recs) != 4 {
		t.Errorf("aaa/big's untiered MRs remembered after 3 passes: %d (%v), want 4", len(recs), err)
	}
}

// TestWebhookProjectIsListedAfterItsEscalationMerged: the project of an
// MR a webhook escalated is kept as seen by the next reconcile pass (the
// webhook itself costs no write for it), so a restarted worker lists it
// once the escalation merged.
func TestWebhookProjectIsListedAfterItsEscalationMerged(t *testing.T) {
	r := newRig(t, "status")
	ctx := context.Background()
	first := "a150000000000000000000000000000000000701"
	r.gl.AddMR(gitlabtest.MR{Project: "shop/web", IID: 1, Author: "ann", Title: "login", SHA: first,
		HeadPipelineID: 1001, Diffs: []gitlabtest.Diff{authDiff}, UpdatedAt: r.clock.Now()})
	r.hookIn("shop/web", 1, "open", first)
	r.settle()
	r.clock.Advance(10 * time.Minute)
	r.pass()
	if seen, err := r.db.ProjectsSeen(ctx); err != nil || !slices.Contains(seen, "shop/web") {
		t.Fatalf("ProjectsSeen = %v, %v; want shop/web kept", seen, err)
	}
	r.gl.SetMerged("shop/web", 1, "bob")
	r.clock.Advance(10 * time.Minute)
	r.pass()

	// A new process: nothing in memory.
	w := &Worker{Inbox: r.db, Fetch: r.client, Engine: r.worker.Engine, Store: r.db, Clock: r.clock, Log: r.worker.Log}
	r.worker = w
	second := "a150000000000000000000000000000000000702"
	r.gl.AddMR(gitlabtest.MR{Project: "shop/web", IID: 2, Author: "ann", Title: "sessions", SHA: second,
		HeadPipelineID: 1002, Diffs: []gitlabtest.Diff{authDiff}, UpdatedAt: r.clock.Now()})
	r.clock.Advance(10 * time.Minute)
	r.pass()
	r.wantGated("shop/web", 2, second)
}

// TestReconcileForgetsAProjectGitLabDoesNotHave: a project kept as seen
// (a webhook may name anything) that GitLab answers 404 for, with no
// watched escalation and not in gitlab.projects, is forgotten after
// missingPasses passes in a row and not asked for again; a configured
// one is only logged, and stays listed.
func TestReconcileForgetsAProjectGitLabDoesNotHave(t *testing.T) {
	r := newRig(t, "status")
	ctx := context.Background()
	r.worker.Projects = []string{"gone/configured"}
	if err := r.db.KeepUnescalated(ctx, nil, nil, "gone/seen"); err != nil {
		t.Fatal(err)
	}
	asked := func(reqs []gitlabtest.Request, project string) bool {
		p := "/api/v4/projects/" + project + "/"
		return slices.ContainsFunc(reqs, func(q gitlabtest.Request) bool { return strings.HasPrefix(q.Path, p) })
	}
	for pass := 1; pass <= missingPasses+1; pass++ {
		r.clock.Advance(10 * time.Minute)
		reqs := r.pass()
		seen, err := r.db.ProjectsSeen(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if want := pass < missingPasses; slices.Contains(seen, "gone/seen") != want {
			t.Errorf("after pass %d: gone/seen kept %v, want %v", pass, !want, want)
		}
		if want := pass <= missingPasses; asked(reqs, "gone/seen") != want {
			t.Errorf("pass %d: gone/seen asked for %v, want %v", pass, !want, want)
		}
		if !asked(reqs, "gone/configured") {
			t.Errorf("pass %d: the configured project was not listed", pass)
		}
	}
	if logs := r.logs.String(); !strings.Contains(logs, "check gitlab.projects") || !strings.Contains(logs, "forgotten") {
		t.Errorf("logs say nothing of the missing projects:\n%s", logs)
	}
}
