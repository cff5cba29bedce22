package gitlab

import (
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/threatgate/threatgate/adapters/gitlab/gitlabtest"
	"github.com/threatgate/threatgate/bot"
	"github.com/threatgate/threatgate/policies"
)

// cryptoPolicy is e2ePolicy with a signal that tiers changes to crypto
// code: the policy a security team rolls out after an incident.
var cryptoPolicy = strings.Replace(e2ePolicy, "signals:\n",
	"signals:\n  - {id: crypto, category: data-exposure, weight: 50, when: {paths: [\"**/crypto/**\"]}}\n", 1)

// TestReview15PolicyChangeLeavesRememberedUntieredMRUngated: an MR
// touching crypto code is opened while the policy does not tier crypto;
// its webhook classifies it into no tier and threatgate remembers its
// head and tier facts. The security team then ships a policy that tiers
// crypto changes, and threatgate restarts with it. The MR does not change
// again, so no webhook comes; every reconcile pass (full lists included)
// finds its head and tier facts unchanged (bot.NeedsClassifying) and
// never reads it: its current head classifies into T2 under the policy
// in force, and it stays without an escalation or a gate, free to merge
// unreviewed (and its merge is no bypass either: nothing escalated it).
func TestReview15PolicyChangeLeavesRememberedUntieredMRUngated(t *testing.T) {
	r := newRig(t, "status")
	r.openMRs(1)
	head := "a150000000000000000000000000000000000004"
	crypto := gitlabtest.Diff{OldPath: "internal/crypto/keys.go", NewPath: "internal/crypto/keys.go", Diff: "@@ -1 +1,2 @@\n x\n+y\n"}
	r.gl.AddMR(gitlabtest.MR{Project: "shop/api", IID: 4, Author: "ann", Title: "key rotation", SHA: head,
		HeadPipelineID: 504, Diffs: []gitlabtest.Diff{crypto}, UpdatedAt: r.clock.Now()})
	r.hook(4, "open", head, "")
	r.settle()
	if e := r.find("shop/api", 4); e != nil {
		t.Fatalf("test setup: !4 is untiered under the old policy, has %s", e.ID)
	}

	// The new policy, and a restart under it.
	p2, err := policies.Load("e2e.yaml", []byte(cryptoPolicy))
	if err != nil {
		t.Fatal(err)
	}
	mi, err := r.client.FetchMR(t.Context(), "shop/api", 4)
	if err != nil {
		t.Fatal(err)
	}
	if res := p2.Evaluate(mi.MR); res.Tier == nil || res.Tier.ID != "T2" {
		t.Fatalf("test setup: the new policy does not tier !4's head: %+v", res)
	}
	r.worker.Engine = bot.NewEngine(r.db, p2, r.clock, nil)
	r.worker.lastFull = nil // a new process: its first pass lists every open MR

	for range 3 {
		r.clock.Advance(10 * time.Minute)
		r.pass()
	}
	r.worker.lastFull = nil // and the hourly full list
	r.clock.Advance(10 * time.Minute)
	r.pass()
	r.wantGated("shop/api", 4, head)
}

// TestReview15ProjectOfAnEscalationMergedBetweenPassesIsNeverListed: a
// project is "seen" (gitlab_projects) only when an untiered MR's webhook
// names it, or when a reconcile pass finds one of its escalations
// watched. The webhook that opens an escalation does not mark its
// project. So when a project's tiered MR is escalated by its webhook and
// merged before the next reconcile pass (a short review, a long
// reconcile_every, or simply an escalation merged before the upgrade to
// schema 13, whose migration starts gitlab_projects empty), the project
// is never listed: the next MR there touching auth code whose webhook is
// lost stays without an escalation or a gate for every pass to come,
// although threatgate has seen an MR of that project.
func TestReview15ProjectOfAnEscalationMergedBetweenPassesIsNeverListed(t *testing.T) {
	r := newRig(t, "status")
	first := "a150000000000000000000000000000000000101"
	r.gl.AddMR(gitlabtest.MR{Project: "shop/web", IID: 1, Author: "ann", Title: "login", SHA: first,
		HeadPipelineID: 601, Diffs: []gitlabtest.Diff{authDiff}, UpdatedAt: r.clock.Now()})
	r.hookIn("shop/web", 1, "open", first)
	r.settle()
	if e := r.find("shop/web", 1); e == nil {
		t.Fatal("setup: shop/web!1 touching auth has no escalation")
	}
	r.clock.Advance(2 * time.Minute)
	r.gl.SetMerged("shop/web", 1, "bob")
	r.hookIn("shop/web", 1, "merge", first)
	r.settle()
	if e := r.find("shop/web", 1); e == nil || e.State != bot.StateMerged {
		t.Fatalf("setup: shop/web!1 not merged: %+v", e)
	}

	// The next MR in shop/web touches auth code; its webhook is lost.
	second := "a150000000000000000000000000000000000102"
	r.gl.AddMR(gitlabtest.MR{Project: "shop/web", IID: 2, Author: "ann", Title: "sessions", SHA: second,
		HeadPipelineID: 602, Diffs: []gitlabtest.Diff{authDiff}, UpdatedAt: r.clock.Now()})
	for range 3 {
		r.clock.Advance(10 * time.Minute)
		r.pass()
	}
	r.worker.lastFull = nil
	r.clock.Advance(10 * time.Minute)
	r.pass()
	r.wantGated("shop/web", 2, second)
}

// TestReview15ClassifyBudgetStarvedByMRsThatAlwaysFail: the budget of MRs
// without an escalation a pass may read is shared by every project, spent
// in project order (sorted paths) and, within a project, newest first;
// an MR whose read fails is neither remembered nor skipped, so it is read
// (and spends budget) again on every pass. A project sorted first with
// ClassifyPerPass MRs whose diffs GitLab cannot serve (500: a diff too
// large for Gitaly's timeout, a corrupted diff; an attacker needs only
// that many such MRs in a project threatgate lists) takes the whole
// budget every pass, for ever: an MR in any later project whose webhook
// was lost is never read, never escalated, never gated. (2 stands for the
// default 500.)
func TestReview15ClassifyBudgetStarvedByMRsThatAlwaysFail(t *testing.T) {
	r := newRig(t, "status")
	r.worker.ClassifyPerPass = 2
	r.worker.Projects = []string{"aaa/spam", "shop/web"}
	for iid := int64(1); iid <= 2; iid++ {
		r.gl.AddMR(gitlabtest.MR{Project: "aaa/spam", IID: iid, Author: "mallory", Title: "big",
			Diffs: []gitlabtest.Diff{{OldPath: "a.bin", NewPath: "a.bin"}}, UpdatedAt: r.clock.Now()})
		r.gl.FailPath(fmt.Sprintf("/aaa/spam/merge_requests/%d/diffs", iid), 1000, http.StatusInternalServerError)
	}
	head := "a150000000000000000000000000000000000201"
	r.gl.AddMR(gitlabtest.MR{Project: "shop/web", IID: 1, Author: "ann", Title: "sessions", SHA: head,
		HeadPipelineID: 701, Diffs: []gitlabtest.Diff{authDiff}, UpdatedAt: r.clock.Now()})
	for range 6 {
		r.clock.Advance(10 * time.Minute)
		r.pass()
		if r.find("shop/web", 1) != nil {
			break
		}
	}
	r.wantGated("shop/web", 1, head)
}
