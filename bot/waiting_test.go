package bot

import (
	"slices"
	"strings"
	"testing"

	"github.com/threatgate/threatgate/policies"
)

// TestWaitingOn: while an escalation is active it waits on somebody, and
// on whom depends on its state; nobody only once it is decided, withdrawn
// or merged.
func TestWaitingOn(t *testing.T) {
	pol := digestPolicy(t) // appsec alice, bob; leads dave (arbiter, re-tier)
	noArbiter := loadWaitingPolicy(t, "authority: {retier: [leads]}")
	nobody := loadWaitingPolicy(t, "")
	risk := loadWaitingPolicy(t, "authority: {retier: [leads], arbiter: [leads], risk_validators: [validators]}")
	appr := func(by string) Decision { return Decision{By: by, SHA: "h1", At: t0} }
	for _, tt := range []struct {
		name string
		pol  *policies.Policy
		esc  *Escalation
		want []string
	}{
		{"intake: the filer", pol, &Escalation{State: StateIntake, Manual: true, Filer: "erin", Author: "ann"}, []string{"erin"}},
		{"intake without a filer: the author", pol, &Escalation{State: StateIntake, Author: "ann"}, []string{"ann"}},
		{"artifacts: author and filer", pol, &Escalation{State: StateAwaitingArtifacts, Tier: "T3", Author: "ann", Manual: true, Filer: "erin"}, []string{"ann", "erin"}},
		{"artifacts: an author not in the policy, by username", pol, &Escalation{State: StateAwaitingArtifacts, Tier: "T3", Author: "zed"}, []string{"zed"}},
		{"artifacts with no owner: the approvers", pol, &Escalation{State: StateAwaitingArtifacts, Tier: "T3"}, []string{"alice", "bob"}},
		{"artifacts with no owner: approvers who wrote commits left out", pol, &Escalation{State: StateAwaitingArtifacts, Tier: "T3", CommitAuthors: []string{"alice@example.com"}}, []string{"bob"}},
		{"review: approvers who did not write it", pol, &Escalation{State: StateInReview, Tier: "T2", Author: "alice", HeadSHA: "h1"}, []string{"bob"}},
		{"review: those who have approved are not waited on", pol, &Escalation{State: StateInReview, Tier: "T3", Author: "ann", HeadSHA: "h1", Approvals: []Decision{appr("alice")}}, []string{"bob"}},
		{"review, every approver wrote it: the re-tier authority", pol, &Escalation{State: StateInReview, Tier: "T2", Author: "alice", CommitAuthors: []string{"bob@example.com"}}, []string{"dave"}},
		{"review, risk to validate: the validators but its scorer", risk, &Escalation{State: StateInReview, Tier: "T2", Author: "ann", HeadSHA: "h1",
			Approvals: []Decision{appr("alice")}, Risk: &Note{By: "vera", Score: 4, SHA: "h1"}}, []string{"vic"}},
		{"disputed: the arbiters", pol, &Escalation{State: StateDisputed, Tier: "T2", Author: "ann"}, []string{"dave"}},
		{"disputed, the arbiter a party: the re-tier authority, else the approvers", pol, &Escalation{State: StateDisputed, Tier: "T2", Author: "ann", HeadSHA: "h1",
			Approvals: []Decision{appr("alice")}, Rejections: []Decision{appr("dave")}}, []string{"alice", "bob"}},
		{"disputed, the arbiter wrote it: the approvers", pol, &Escalation{State: StateDisputed, Tier: "T2", Author: "dave"}, []string{"alice", "bob"}},
		{"disputed, no arbiter configured: the re-tier authority", noArbiter, &Escalation{State: StateDisputed, Tier: "T2", Author: "ann"}, []string{"dave"}},
		{"disputed, no arbiter nor re-tier authority: the approvers", nobody, &Escalation{State: StateDisputed, Tier: "T2", Author: "ann"}, []string{"alice", "bob"}},
		{"deferred, artifacts missing: their owner", pol, &Escalation{State: StateDeferred, Resume: StateAwaitingArtifacts, Tier: "T3", Author: "ann"}, []string{"ann"}},
		{"deferred in review: the approvers", pol, &Escalation{State: StateDeferred, Resume: StateInReview, Tier: "T2", Author: "ann"}, []string{"alice", "bob"}},
		{"a tier the policy no longer has: the re-tier authority", pol, &Escalation{State: StateInReview, Tier: "T9", Author: "ann"}, []string{"dave"}},
		{"approved: nobody", pol, &Escalation{State: StateApproved, Tier: "T2", Author: "ann"}, nil},
		{"rejected: nobody", pol, &Escalation{State: StateRejected, Tier: "T2", Author: "ann"}, nil},
		{"merged: nobody", pol, &Escalation{State: StateMerged, Tier: "T2", Author: "ann"}, nil},
		{"withdrawn: nobody", pol, &Escalation{State: StateWithdrawn, Tier: "T2", Author: "ann"}, nil},
	} {
		t.Run(tt.name, func(t *testing.T) {
			if got := WaitingOn(tt.esc, tt.pol); !slices.Equal(got, tt.want) {
				t.Errorf("WaitingOn(%s) = %v, want %v", tt.esc.State, got, tt.want)
			}
		})
	}
}

// loadWaitingPolicy is the digest policy with its authority line replaced
// by authority ("" for none), a validators group, and a residual-risk
// ceiling on T2.
func loadWaitingPolicy(t *testing.T, authority string) *policies.Policy {
	t.Helper()
	y := strings.Replace(digestPolicyYAML, "authority: {retier: [leads], arbiter: [leads]}", authority, 1)
	y = strings.Replace(y, "  leads: {members: [dave]}", "  leads: {members: [dave]}\n  validators: {members: [vera, vic]}", 1)
	y = strings.Replace(y, "  - {gitlab: erin, email: erin@example.com}", "  - {gitlab: erin, email: erin@example.com}\n  - {gitlab: vera, email: vera@example.com}\n  - {gitlab: vic, email: vic@example.com}", 1)
	y = strings.Replace(y, "    decision: 24h\n", "    decision: 24h\n    max_residual_risk: 9\n", 1)
	p, err := policies.Load("waiting.yaml", []byte(y))
	if err != nil {
		t.Fatalf("policy: %v", err)
	}
	return p
}
