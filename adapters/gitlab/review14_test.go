package gitlab

import (
	"testing"
	"time"

	"github.com/threatgate/threatgate/adapters/gitlab/gitlabtest"
	"github.com/threatgate/threatgate/bot"
)

// TestReview14SkewBehindLastUpdateHidesNewHeadForever: docs/GITLAB.md §5
// promises that a change stamped by a GitLab node whose clock disagrees
// is found by the list of open MRs within reconcile_full_every. The list
// does find it (the head differs), but decide's out-of-order rule
// (bot/mr.go: mr.UpdatedAt before e.MRUpdatedAt -> nothing) throws the
// fetched MR away whenever the skewed stamp is older than the MR's
// previous update (here a label change stamped by a node 20 minutes
// ahead). The MR read afresh from the API is never "out of order": the
// webhook and reconcile only say "look". Result: a new head on an
// approved MR is never gated, even with its webhook delivered, and the
// merge that follows is never recorded as a bypass.
func TestReview14SkewBehindLastUpdateHidesNewHeadForever(t *testing.T) {
	r := newRig(t, "status")
	r.worker.FullEvery = time.Hour
	r.readyForReview(12)
	r.comment(12, "alice", "/threatgate approve")
	r.settle()
	if e := r.escalation(12); e.State != bot.StateApproved {
		t.Fatalf("!12 is %s, want approved", e.State)
	}
	// A node 20 minutes ahead stamps a label change; its webhook arrives.
	ahead := r.clock.Now().Add(20 * time.Minute)
	r.gl.SetNow(func() time.Time { return ahead })
	r.gl.SetLabels("shop/api", 12, "docs")
	r.gl.SetNow(r.clock.Now)
	r.hook(12, "update", sha1, "")
	r.settle()
	r.clock.Advance(time.Minute)

	// A correct node stamps the push (webhook delivered, too).
	r.gl.PushCommit("shop/api", 12, sha2, gitlabtest.Diff{OldPath: "auth/a.go", NewPath: "auth/a.go", Diff: "@@ -1 +1 @@\n-a\n+b\n"})
	r.hook(12, "update", sha2, "")
	r.settle()
	for range 8 { // over an hour of passes, two full lists
		r.clock.Advance(10 * time.Minute)
		r.reconciled()
	}
	e := r.escalation(12)
	if e.HeadSHA != sha2 || e.State == bot.StateApproved {
		t.Errorf("an hour on, !12 is %s at head %s; want the new head seen and its approval stale", e.State, short(e.HeadSHA))
	}
	if st := r.lastStatus(sha2); st.State != "pending" {
		t.Errorf("gate on the new head: %+v, want pending", st)
	}
	// And the merge of that ungated head:
	r.gl.SetMerged("shop/api", 12, "ann")
	r.hook(12, "merge", sha2, "")
	r.settle()
	for range 7 {
		r.clock.Advance(10 * time.Minute)
		r.reconciled()
	}
	if e := r.escalation(12); e.State != bot.StateMerged || !e.Bypassed {
		t.Errorf("after the merge, !12 is %s, bypassed %v; want merged and recorded as a bypass", e.State, e.Bypassed)
	}
}
