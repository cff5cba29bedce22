package gitlab

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/threatgate/threatgate/adapters/gitlab/gitlabtest"
	"github.com/threatgate/threatgate/bot"
)

// labelPolicy is e2ePolicy with a label that tiers an MR on its own.
var labelPolicy = strings.Replace(e2ePolicy, "signals:\n",
	"signals:\n  - {id: declared, category: declared, weight: 100, when: {labels: [\"security\"]}}\n", 1)

var authDiff = gitlabtest.Diff{OldPath: "internal/auth/token.go", NewPath: "internal/auth/token.go", Diff: "@@ -1 +1,2 @@\n x\n+y\n"}

// pass runs one reconcile pass and returns the requests it sent GitLab,
// then delivers what it decided (those requests are not returned).
func (r *rig) pass() []gitlabtest.Request {
	r.t.Helper()
	r.gl.ResetRequests()
	if _, err := r.worker.Reconcile(context.Background()); err != nil {
		r.t.Fatal(err)
	}
	reqs := r.gl.Requests()
	r.settle()
	return reqs
}

// reads counts the requests about MR iid of project among reqs (the MR,
// its diffs, commits, notes...).
func reads(reqs []gitlabtest.Request, project string, iid int64) int {
	p := fmt.Sprintf("/api/v4/projects/%s/merge_requests/%d", project, iid)
	n := 0
	for _, q := range reqs {
		if q.Path == p || strings.HasPrefix(q.Path, p+"/") {
			n++
		}
	}
	return n
}

// hookIn posts a Merge Request Hook for MR iid of project.
func (r *rig) hookIn(project string, iid int64, action, sha string) {
	r.t.Helper()
	r.seq++
	body := bytes.ReplaceAll(mrHookJSON(iid, action, sha, r.clock.Now()), []byte(`"shop/api"`), []byte(`"`+project+`"`))
	req, _ := http.NewRequest(http.MethodPost, r.srv.URL+"/webhooks/gitlab", bytes.NewReader(body))
	req.Header.Set("X-Gitlab-Event", EventMergeRequest)
	req.Header.Set("X-Gitlab-Token", string(testSecret))
	req.Header.Set("X-Gitlab-Event-UUID", fmt.Sprintf("uuid-in-%d", r.seq))
	resp, err := http.DefaultClient.Do(req)
	if err != nil || resp.StatusCode != 200 {
		r.t.Fatalf("hook: %v %v", resp, err)
	}
	resp.Body.Close()
}

func (r *rig) find(project string, iid int64) *bot.Escalation {
	r.t.Helper()
	e, err := r.db.FindByMR(context.Background(), project, iid)
	if errors.Is(err, bot.ErrNotFound) {
		return nil
	}
	if err != nil {
		r.t.Fatal(err)
	}
	return e
}

// gate returns the newest gate status on sha in project.
func (r *rig) gate(project, sha string) gitlabtest.Status {
	var last gitlabtest.Status
	for _, s := range r.gl.Statuses(project, sha) {
		if s.Name == statusName && (last.CreatedAt.IsZero() || !s.CreatedAt.Before(last.CreatedAt)) {
			last = s
		}
	}
	return last
}

// wantGated fails unless MR iid of project has an escalation whose head is
// sha, and the gate on sha is pending (never success).
func (r *rig) wantGated(project string, iid int64, sha string) *bot.Escalation {
	r.t.Helper()
	e := r.find(project, iid)
	if e == nil {
		r.t.Fatalf("%s!%d has no escalation: its missed webhook was not caught up", project, iid)
	}
	if e.HeadSHA != sha {
		r.t.Errorf("%s!%d escalation at head %s, want %s", project, iid, short(e.HeadSHA), short(sha))
	}
	if st := r.gate(project, sha); st.State != "pending" {
		r.t.Errorf("gate on %s!%d's head: %+v, want pending", project, iid, st)
	}
	for _, s := range r.gl.Statuses(project, sha) {
		if s.Name == statusName && s.State == "success" {
			r.t.Errorf("a success gate was set on %s!%d's unreviewed head: %+v", project, iid, s)
		}
	}
	return e
}

// TestReconcileGatesAnMRWhoseOpenWebhookWasLost is the attacker's case:
// an MR touching auth code is opened in a project threatgate watches, and
// its webhook never arrives (GitLab gave up, threatgate was down). It
// has no escalation, so reconcile used to look past it and it merged
// unreviewed. One pass gives it an escalation and a pending gate on its
// head.
func TestReconcileGatesAnMRWhoseOpenWebhookWasLost(t *testing.T) {
	r := newRig(t, "status")
	r.openMRs(1) // the project has a watermark and an escalation
	head := "a000000000000000000000000000000000000002"
	r.gl.AddMR(gitlabtest.MR{Project: "shop/api", IID: 2, Author: "ann", Title: "rotate tokens", SHA: head,
		HeadPipelineID: 502, Diffs: []gitlabtest.Diff{authDiff}, UpdatedAt: r.clock.Now()})
	r.clock.Advance(time.Minute)
	r.pass()
	e := r.wantGated("shop/api", 2, head)
	if e.Tier != "T2" {
		t.Errorf("!2 tier %q, want T2", e.Tier)
	}
	if labels := r.gl.Labels("shop/api", 2); len(labels) != 1 || labels[0] != "security-tier::T2" {
		t.Errorf("!2 labels %v, want the tier's", labels)
	}
	// Now it is an escalation like any other: a quiet pass reads nothing.
	r.clock.Advance(10 * time.Minute)
	r.pass()
	r.clock.Advance(10 * time.Minute)
	if reqs := r.pass(); reads(reqs, "shop/api", 2) != 0 {
		t.Errorf("a quiet pass read !2 again: %d requests", reads(reqs, "shop/api", 2))
	}
}

// TestReconcileReadsAnUntieredMROnceAndCatchesWhatTiersIt: MRs that
// classify into no tier are read once (by the webhook, or by reconcile
// when the webhook was lost) and never again while their head and tier
// facts stay, however many passes and full lists go by. A push that
// touches auth code, and a label that tiers an MR, both with their
// webhooks lost, are caught by the next pass.
func TestReconcileReadsAnUntieredMROnceAndCatchesWhatTiersIt(t *testing.T) {
	r := newRigWith(t, "status", labelPolicy, e2eUsers)
	r.openMRs(1)
	docs := gitlabtest.Diff{OldPath: "docs/readme.md", NewPath: "docs/readme.md", Diff: "@@ -1 +1,2 @@\n x\n+y\n"}
	sha3, sha4, sha5 := "b000000000000000000000000000000000000003", "b000000000000000000000000000000000000004", "b000000000000000000000000000000000000005"
	for iid, sha := range map[int64]string{3: sha3, 4: sha4, 5: sha5} {
		r.gl.AddMR(gitlabtest.MR{Project: "shop/api", IID: iid, Author: "ann", Title: "docs", SHA: sha,
			HeadPipelineID: 500 + iid, Diffs: []gitlabtest.Diff{docs}, UpdatedAt: r.clock.Now()})
	}
	// !3 and !5 arrive by webhook; !4's webhook is lost.
	r.hook(3, "open", sha3, "")
	r.hook(5, "open", sha5, "")
	r.settle()
	ctx := context.Background()
	if recs, err := r.db.FindUnescalated(ctx, "shop/api", []int64{3, 5}); err != nil || recs[3].SHA != sha3 || recs[5].SHA != sha5 {
		t.Fatalf("the webhook path did not remember !3 and !5 as classified into no tier: %+v, %v", recs, err)
	}

	r.clock.Advance(time.Minute)
	reqs := r.pass()
	if n := reads(reqs, "shop/api", 4); n == 0 {
		t.Errorf("the pass did not read !4, whose webhook was lost")
	}
	for _, iid := range []int64{3, 5} {
		if n := reads(reqs, "shop/api", iid); n != 0 {
			t.Errorf("the pass read !%d (%d requests), which the webhook had classified at this head", iid, n)
		}
	}
	for _, iid := range []int64{3, 4, 5} {
		if e := r.find("shop/api", iid); e != nil {
			t.Fatalf("!%d untiered has escalation %s", iid, e.ID)
		}
	}
	// Passes within the overlap (the MRs listed again) and a full list
	// (a restart): nothing read again.
	for i := range 3 {
		if i == 2 {
			r.worker.lastFull = nil
		}
		r.clock.Advance(5 * time.Minute)
		reqs := r.pass()
		for _, iid := range []int64{3, 4, 5} {
			if n := reads(reqs, "shop/api", iid); n != 0 {
				t.Errorf("pass %d read !%d again (%d requests) although it did not change", i+1, iid, n)
			}
		}
	}

	// A push to !3 touching auth code, and the label security on !5; both
	// webhooks lost.
	push := "c000000000000000000000000000000000000003"
	r.gl.PushCommit("shop/api", 3, push, authDiff)
	r.gl.SetLabels("shop/api", 5, "security")
	r.clock.Advance(time.Minute)
	reqs = r.pass()
	if n := reads(reqs, "shop/api", 4); n != 0 {
		t.Errorf("the pass read !4 again (%d requests)", n)
	}
	r.wantGated("shop/api", 3, push)
	if e := r.wantGated("shop/api", 5, sha5); e.Tier != "T2" {
		t.Errorf("!5 tier %q, want T2 from its label", e.Tier)
	}
	// Escalated now: no longer remembered as untiered.
	r.worker.lastFull = nil
	r.clock.Advance(10 * time.Minute)
	r.pass()
	if recs, _ := r.db.FindUnescalated(ctx, "shop/api", nil); len(recs) != 1 || recs[4].SHA != sha4 {
		t.Errorf("remembered after the full pass: %+v, want !4 alone", recs)
	}
}

// TestReconcileForgetsClosedUntieredMRs: what is remembered of an
// untiered MR goes when it is closed or merged (the changed list shows
// it), so the memory holds about one key per open MR.
func TestReconcileForgetsClosedUntieredMRs(t *testing.T) {
	r := newRig(t, "status")
	r.openMRs(1)
	for iid := int64(6); iid <= 8; iid++ {
		r.gl.AddMR(gitlabtest.MR{Project: "shop/api", IID: iid, Author: "ann", Diffs: []gitlabtest.Diff{{OldPath: "a.md", NewPath: "a.md"}}, UpdatedAt: r.clock.Now()})
	}
	r.clock.Advance(time.Minute)
	r.pass()
	ctx := context.Background()
	if recs, _ := r.db.FindUnescalated(ctx, "shop/api", nil); len(recs) != 3 {
		t.Fatalf("remembered %d MRs, want 3", len(recs))
	}
	r.gl.SetState("shop/api", 6, "closed")
	r.gl.SetMerged("shop/api", 7, "ann")
	r.clock.Advance(time.Minute)
	reqs := r.pass()
	if n := reads(reqs, "shop/api", 6) + reads(reqs, "shop/api", 7); n != 0 {
		t.Errorf("closing and merging untiered MRs cost %d requests about them, want none (the list says it)", n)
	}
	if recs, _ := r.db.FindUnescalated(ctx, "shop/api", nil); len(recs) != 1 || recs[8].IID != 8 {
		t.Errorf("remembered %+v, want !8 alone", recs)
	}
}

// TestReconcileListsProjectsWithoutEscalations: a project whose first
// tiered MR's webhook was lost has no escalation. It is reconciled when
// the configuration names it (Projects), or once threatgate has seen an
// MR of it (an untiered MR's webhook, or an escalation since merged).
func TestReconcileListsProjectsWithoutEscalations(t *testing.T) {
	r := newRig(t, "status")
	web := "d000000000000000000000000000000000000001"
	r.gl.AddMR(gitlabtest.MR{Project: "shop/web", IID: 1, Author: "ann", SHA: web, HeadPipelineID: 901,
		Diffs: []gitlabtest.Diff{authDiff}, UpdatedAt: r.clock.Now()})
	// Named nowhere, never seen: nothing can list it (docs/GITLAB.md).
	r.pass()
	if e := r.find("shop/web", 1); e != nil {
		t.Fatalf("test setup: shop/web!1 has %s without the project being named", e.ID)
	}
	r.worker.Projects = []string{"shop/web"}
	r.clock.Advance(time.Minute)
	r.pass()
	r.wantGated("shop/web", 1, web)

	// Seen through a webhook of an untiered MR only: shop/ops.
	r.worker.Projects = nil
	r.gl.AddMR(gitlabtest.MR{Project: "shop/ops", IID: 1, Author: "ann", Diffs: []gitlabtest.Diff{{OldPath: "a.md", NewPath: "a.md"}}, UpdatedAt: r.clock.Now()})
	ops := "d000000000000000000000000000000000000002"
	r.gl.AddMR(gitlabtest.MR{Project: "shop/ops", IID: 2, Author: "ann", SHA: ops, HeadPipelineID: 902,
		Diffs: []gitlabtest.Diff{authDiff}, UpdatedAt: r.clock.Now()})
	m, _ := r.gl.MR("shop/ops", 1)
	r.hookIn("shop/ops", 1, "open", m.SHA) // !2's webhook is lost
	r.settle()
	if e := r.find("shop/ops", 1); e != nil {
		t.Fatalf("shop/ops!1 is untiered, has %s", e.ID)
	}
	r.clock.Advance(time.Minute)
	reqs := r.pass()
	r.wantGated("shop/ops", 2, ops)
	if n := reads(reqs, "shop/ops", 1); n != 0 {
		t.Errorf("shop/ops!1, classified by its webhook, was read again (%d requests)", n)
	}
	// shop/web stays listed without its configuration: its escalation
	// made it seen.
	seen, err := r.db.ProjectsSeen(context.Background())
	if err != nil || strings.Join(seen, ",") != "shop/ops,shop/web" {
		t.Errorf("projects seen %v (%v), want shop/ops and shop/web", seen, err)
	}
}

// TestReconcileDryRunWritesNothing: in a dry run (read-only client, the
// DryRun forge) a lost open is classified and recorded as it would be
// gated, and GitLab receives nothing but reads.
func TestReconcileDryRunWritesNothing(t *testing.T) {
	r := newRig(t, "status")
	client, err := New(Config{BaseURL: r.gl.URL, Token: bot.Secret(r.gl.Token), StatusName: statusName, Gate: GateStatus, Timeout: 5 * time.Second, ReadOnly: true})
	if err != nil {
		t.Fatal(err)
	}
	client.now = r.clock.Now
	dry := &DryRun{Clock: r.clock}
	r.worker.Fetch, r.worker.Answer = client, false
	r.worker.Projects = []string{"shop/api"}
	r.disp = bot.NewDispatcher(r.db, dry, nil, nil, r.clock, nil)
	head := "e000000000000000000000000000000000000009"
	r.gl.AddMR(gitlabtest.MR{Project: "shop/api", IID: 9, Author: "ann", SHA: head, HeadPipelineID: 509,
		Diffs: []gitlabtest.Diff{authDiff}, UpdatedAt: r.clock.Now()})
	r.gl.ResetRequests()
	if _, err := r.worker.Reconcile(context.Background()); err != nil {
		t.Fatal(err)
	}
	r.settle()
	for _, q := range r.gl.Requests() {
		if q.Method != http.MethodGet {
			t.Errorf("a dry run sent %s %s", q.Method, q.Path)
		}
	}
	e := r.find("shop/api", 9)
	if e == nil {
		t.Fatal("!9 has no escalation in the dry run")
	}
	if a, ok := dry.LatestStatus(e.ID); !ok || a.Status != "pending" || a.SHA != head {
		t.Errorf("the dry run would have set %+v (%v), want pending on the head", a, ok)
	}
	if len(r.gl.Statuses("shop/api", head)) != 0 {
		t.Errorf("statuses on GitLab: %+v", r.gl.Statuses("shop/api", head))
	}
}

// TestReconcileClassifiesABoundedNumberPerPass: many MRs without an
// escalation (the first pass after an upgrade, a long webhook outage)
// are read at most ClassifyPerPass a pass, the rest on the next passes,
// and the one that tiers is gated once its turn comes; after that a pass
// reads none of them.
func TestReconcileClassifiesABoundedNumberPerPass(t *testing.T) {
	r := newRig(t, "status")
	r.worker.ClassifyPerPass = 2
	r.worker.Projects = []string{"shop/api"}
	tiered := "f000000000000000000000000000000000000010"
	// The tiered one is the oldest: read last.
	r.gl.AddMR(gitlabtest.MR{Project: "shop/api", IID: 10, Author: "ann", SHA: tiered, HeadPipelineID: 510,
		Diffs: []gitlabtest.Diff{authDiff}, UpdatedAt: r.clock.Now()})
	for iid := int64(11); iid <= 15; iid++ {
		r.clock.Advance(time.Second)
		r.gl.AddMR(gitlabtest.MR{Project: "shop/api", IID: iid, Author: "ann", Diffs: []gitlabtest.Diff{{OldPath: "a.md", NewPath: "a.md"}}, UpdatedAt: r.clock.Now()})
	}
	for i := 1; ; i++ {
		if i > 3 {
			t.Fatalf("after %d passes of 2, !10 has no escalation", i-1)
		}
		r.clock.Advance(10 * time.Minute)
		reqs := r.pass()
		read := 0
		for iid := int64(10); iid <= 15; iid++ {
			if reads(reqs, "shop/api", iid) > 0 {
				read++
			}
		}
		if read > 2 {
			t.Errorf("pass %d read %d MRs, want at most ClassifyPerPass (2)", i, read)
		}
		if r.find("shop/api", 10) != nil {
			break
		}
	}
	r.wantGated("shop/api", 10, tiered)
	// Setting the gate's label moved !10's updated_at: its escalation
	// reads it once more, as any new escalation does.
	r.clock.Advance(10 * time.Minute)
	r.pass()
	r.clock.Advance(10 * time.Minute)
	reqs := r.pass()
	for iid := int64(10); iid <= 15; iid++ {
		if n := reads(reqs, "shop/api", iid); n != 0 {
			t.Errorf("a pass after the backlog read !%d (%d requests)", iid, n)
		}
	}
}
