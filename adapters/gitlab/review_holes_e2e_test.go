package gitlab

import (
	"testing"
	"time"

	"github.com/threatgate/threatgate/adapters/gitlab/gitlabtest"
	"github.com/threatgate/threatgate/bot"
)

const casePolicy = `
version: 1
signals:
  - {id: auth, category: access-control, weight: 50, when: {paths: ["**/auth/**"]}}
  - {id: secret, category: data-exposure, weight: 100, when: {added_lines: ['(?i)password\s*=']}}
tiers:
  - id: T3
    name: critical
    when: {min_score: 100}
    artifacts: [threat-model]
    approvals: [{group: appsec, count: 2}]
  - id: T2
    name: high
    when: {min_score: 50}
    artifacts: [threat-model]
    approvals: [{group: appsec, count: 1}]
  - id: T1
    name: low
    when: {min_score: 10}
    approvals: [{group: champions, count: 1}]
groups:
  appsec: {members: [alice, bob]}
  champions: {members: [erin]}
  leads: {members: [dave]}
people:
  - {gitlab: ann, email: ann@example.com}
  - {gitlab: alice, email: alice@example.com}
  - {gitlab: bob, email: bob@example.com}
  - {gitlab: dave, email: dave@example.com}
  - {gitlab: erin, email: erin@example.com}
authority: {retier: [leads], arbiter: [leads]}
`

func newCaseRig(t *testing.T, users map[string]int64) *rig {
	t.Helper()
	return newRigWith(t, "status", casePolicy, users)
}

// TestRetierCommentIsForTheHeadItsAuthorSaw: a re-tier written in an MR
// comment must not land on a head pushed after it (it did: the author
// pushed a password literal right after the lead's "retier T1" about the
// old head, and one champion's approval turned the T3 head green).
func TestRetierCommentIsForTheHeadItsAuthorSaw(t *testing.T) {
	r := newCaseRig(t, map[string]int64{"ann": 200, "alice": 201, "bob": 202, "dave": 204, "erin": 205})
	r.addMR(12, sha1, "auth/a.go") // T2
	r.hook(12, "open", sha1, "")
	r.settle()
	r.clock.Advance(time.Minute)

	// dave reviews sha1 and writes his re-tier; ann pushes a second later,
	// before the worker reads dave's note.
	r.comment(12, "dave", "/threatgate retier T1 only renames a test helper")
	r.clock.Advance(time.Second)
	r.gl.PushCommit("shop/api", 12, sha2, gitlabtest.Diff{OldPath: "auth/a.go", NewPath: "auth/a.go", Diff: "@@ -1 +1,2 @@\n x\n+password = \"hunter2hunter2\"\n"})
	r.hook(12, "update", sha2, "")
	r.settle()
	r.clock.Advance(time.Minute)

	r.comment(12, "erin", "/threatgate approve")
	r.settle()

	e := r.escalation(12)
	t.Logf("escalation: tier %s state %s head %s retier_sha %s retier_from %s", e.Tier, e.State, short(e.HeadSHA), short(e.RetierSHA), e.RetierFrom)
	if st := r.lastStatus(sha2); st.State == "success" || e.State == bot.StateApproved {
		t.Errorf("head %s adds a password literal (T3) and is green (%s, tier %s) on one champion's approval; dave's re-tier was written about %s",
			short(sha2), st.Description, e.Tier, short(sha1))
	}
}

// TestMRAuthorInAnotherCaseCannotApprove: GitLab spells the username in
// another case than the policy; the comment is attributed without regard
// to case, and so is authorship.
func TestMRAuthorInAnotherCaseCannotApprove(t *testing.T) {
	r := newCaseRig(t, map[string]int64{"ann": 200, "Alice": 201, "bob": 202})
	r.gl.AddMR(gitlabtest.MR{Project: "shop/api", IID: 12, Title: "vendor patch", Author: "Alice", SHA: sha1,
		HeadPipelineID: 512, UpdatedAt: r.clock.Now(),
		Commits: []gitlabtest.Commit{{ID: sha1, AuthorEmail: "dev@vendor.example", CommitterEmail: "dev@vendor.example", Title: "patch"}},
		Diffs:   []gitlabtest.Diff{{OldPath: "auth/a.go", NewPath: "auth/a.go", Diff: "@@ -1 +1,2 @@\n x\n+y\n"}}})
	r.hook(12, "open", sha1, "")
	r.comment(12, "ann", "/threatgate artifact threat-model https://wiki/tm")
	r.settle()
	r.clock.Advance(time.Minute)
	r.comment(12, "Alice", "/threatgate approve")
	r.settle()
	e := r.escalation(12)
	if st := r.lastStatus(sha1); st.State == "success" || e.State == bot.StateApproved {
		t.Errorf("Alice, the MR's author, approved her own MR: %s, approvals %+v, gate %q", e.State, e.Approvals, st.State)
	}
}
