package bot

import (
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/threatgate/threatgate/policies"
)

const testPolicyYAML = `
version: 1
signals:
  - {id: auth, category: access-control, weight: 40, when: {paths: ["**/auth/**"]}}
  - {id: secret, category: data-exposure, weight: 100, when: {added_lines: ['(?i)password\s*=']}}
  - {id: ci, category: ci-cd, weight: 20, when: {paths: [".gitlab-ci.yml"]}}
tiers:
  - id: T3
    name: critical
    when: {min_score: 100}
    artifacts: [threat-model, rollback-plan]
    approvals: [{group: appsec, count: 2}, {group: leads, count: 1, role: risk-acceptance}]
    checklist: [data-sensitivity]
    max_residual_risk: 9
  - id: T2
    name: high
    when: {min_score: 40}
    artifacts: [threat-model]
    approvals: [{group: appsec, count: 1}]
    deferrable: true
  - id: T1
    name: elevated
    when: {min_score: 20}
    approvals: [{group: champions, count: 1}]
    reset_approvals_on_push: false
groups:
  appsec: {members: [alice, bob, carol, frank]}
  leads: {members: [dave]}
  champions: {members: [erin, ann]}
people:
  - {gitlab: ann, email: ann@example.com}
  - {gitlab: alice, email: alice@example.com}
  - {gitlab: bob, email: bob@example.com}
  - {gitlab: carol, email: carol@example.com}
  - {gitlab: dave, email: dave@example.com}
  - {gitlab: erin, email: erin@example.com}
  - {gitlab: mallory, email: mallory@example.com}
  - {gitlab: frank, email: Frank@example.com}
caps: {manual_escalations_per_quarter: 2, override_group: leads}
authority: {retier: [leads], arbiter: [leads]}
`

var t0 = time.Date(2026, 11, 2, 9, 0, 0, 0, time.UTC)

func testPolicy(t testing.TB) *policies.Policy {
	t.Helper()
	p, err := policies.Load("test.yaml", []byte(testPolicyYAML))
	if err != nil {
		t.Fatalf("test policy: %v", err)
	}
	return p
}

// mrChange builds an MR input for project g/p!1 by ann, touching paths; a
// path written "+text" is instead an added line in app.go.
type mrOpt func(*MRInput)

func sha(s string) mrOpt { return func(m *MRInput) { m.MR.SHA = s } }
func at(min int) mrOpt {
	return func(m *MRInput) { m.MR.UpdatedAt = t0.Add(time.Duration(min) * time.Minute) }
}
func action(a MRAction) mrOpt { return func(m *MRInput) { m.Action = a } }
func committers(c ...string) mrOpt {
	return func(m *MRInput) { m.CommitAuthors = c }
}
func paths(ps ...string) mrOpt {
	return func(m *MRInput) {
		for _, p := range ps {
			m.MR.Changes = append(m.MR.Changes, policies.Change{OldPath: p, NewPath: p, Diff: "@@ -1 +1 @@\n+x\n"})
		}
	}
}
func secretLine() mrOpt {
	return func(m *MRInput) {
		m.MR.Changes = append(m.MR.Changes, policies.Change{OldPath: "app.go", NewPath: "app.go", Diff: "@@ -1,1 +1,2 @@\n ctx\n+password = \"hunter2\"\n"})
	}
}
func seen(state, author string, ours bool) mrOpt {
	return func(m *MRInput) { m.Status = &ForgeStatus{SHA: m.MR.SHA, State: state, Author: author, Ours: ours} }
}
func labels(ls ...string) mrOpt { return func(m *MRInput) { m.MR.Labels = ls } }

func mrIn(opts ...mrOpt) Input {
	m := &MRInput{Action: MRUpdate, MR: &policies.MergeRequest{
		IID: 1, PathWithNamespace: "g/p", Title: "change", TargetBranch: "main",
		Author: policies.User{Username: "ann"}, SHA: "aaa111", UpdatedAt: t0, Labels: policies.Labels{},
	}}
	for _, o := range opts {
		o(m)
	}
	return Input{Kind: InputMR, Actor: System, MR: m}
}

func cmd(t testing.TB, person, line string) Input {
	t.Helper()
	c, err := ParseCommand(line)
	if err != nil {
		t.Fatalf("parse %q: %v", line, err)
	}
	return Input{Kind: InputCommand, Actor: Identity{Person: person, Surface: "test"}, Command: &c, Escalation: "ESC-1"}
}

// history runs inputs through decide from nothing and returns the events
// and the projection; every input must be accepted.
func history(t testing.TB, pol *policies.Policy, quota Quota, ins ...Input) ([]Event, *Escalation) {
	t.Helper()
	var all []Event
	var esc *Escalation
	for i, in := range ins {
		evs, _, err := decide(Given{Esc: esc, Quota: quota}, pol, in, t0.Add(time.Duration(i)*time.Minute))
		if err != nil {
			t.Fatalf("given input %d: %v", i, err)
		}
		for _, ev := range evs {
			if ev.Kind == EventCapOverridden {
				quota.Overrides += ev.Data.Count
			}
			if ev.Kind.Personal() {
				continue
			}
			if ev.Escalation == "" {
				ev.Escalation = "ESC-1"
			}
			all = append(all, ev)
			esc = apply(esc, ev)
		}
	}
	return all, esc
}

// brief renders an event as the tables expect it.
func brief(ev Event) string {
	s := string(ev.Kind) + " " + ev.Actor
	d := ev.Data
	switch ev.Kind {
	case EventOpened, EventTierRaised, EventRetiered:
		s += " " + d.Tier
	case EventStateChanged:
		s += fmt.Sprintf(" %s->%s", d.From, d.To)
	case EventApproved:
		s += " " + d.Group
		if d.Arbiter {
			s += " arbiter"
		}
	case EventMRUpdated:
		if d.StaleFrom != "" {
			s += " stale"
		}
	case EventMerged:
		if d.Bypassed {
			s += " bypassed"
		}
	case EventCapOverridden:
		s += fmt.Sprintf(" %s+%d", d.Person, d.Count)
	case EventArtifactAdded:
		s += " " + d.Artifact
	}
	return s
}

func TestDecide(t *testing.T) {
	pol := testPolicy(t)
	openT2 := mrIn(action(MROpen), paths("src/auth/login.go"))
	openT3 := mrIn(action(MROpen), paths("src/auth/login.go"), secretLine())
	openT1 := mrIn(action(MROpen), paths(".gitlab-ci.yml"))
	threat := cmd(t, "ann", "/threatgate artifact threat-model https://wiki/tm")
	inReviewT2 := []Input{openT2, threat}
	approvedT2 := append(slices.Clone(inReviewT2), cmd(t, "alice", "/approve looks fine"))
	risk4 := cmd(t, "carol", "/threatgate risk 4 internal only")
	// A manual T2 escalation of a docs-only MR (the policy tiers nothing),
	// withdrawn by a lead at head aaa111.
	withdrawnManual := []Input{cmd(t, "erin", "/escalate g/p!1 --tier T2 odd docs\nsummary: s\nassets: a\nexploit: e"),
		mrIn(at(1), paths("docs/x.md")), cmd(t, "dave", "/threatgate withdraw false alarm")}

	for _, tt := range []struct {
		name  string
		given []Input
		quota Quota
		when  Input
		then  []string
		err   string
	}{
		{name: "open on a tiered MR", when: openT2,
			then: []string{"opened system T2"}},
		{name: "docs-only MR opens nothing", when: mrIn(action(MROpen), paths("README.md")), then: nil},
		{name: "artifact added moves to review", given: []Input{openT2}, when: threat,
			then: []string{"artifact_added ann threat-model", "state_changed ann awaiting_artifacts->in_review"}},
		{name: "unknown artifact kind refused", given: []Input{openT2}, when: cmd(t, "ann", "/threatgate artifact napkin x"),
			err: `unknown artifact kind "napkin"`},
		{name: "approval counted and approves", given: inReviewT2, when: cmd(t, "alice", "/approve ok"),
			then: []string{"approval_added alice appsec", "state_changed alice in_review->approved"}},
		{name: "approval refused while artifacts missing", given: []Input{openT2}, when: cmd(t, "alice", "/approve"),
			err: "still needs threat-model"},
		{name: "approval from MR author refused", given: []Input{openT1}, when: cmd(t, "ann", "/approve"),
			err: "you wrote this merge request"},
		{name: "approval from a commit author refused",
			given: []Input{mrIn(action(MROpen), paths("src/auth/x.go"), committers("ann", "bob")), threat},
			when:  cmd(t, "bob", "/approve"), err: "you wrote this merge request or commits"},
		{name: "approval from a commit author known by e-mail refused",
			given: []Input{mrIn(action(MROpen), paths("src/auth/x.go"), committers("ann", "frank@example.com")), threat},
			when:  cmd(t, "frank", "/approve"), err: "you wrote this merge request or commits"},
		{name: "approval from outside the tier's groups refused", given: inReviewT2, when: cmd(t, "erin", "/approve"),
			err: "not in a group that approves T2"},
		{name: "approval from someone not in the policy refused", given: inReviewT2, when: cmd(t, "", "/approve"),
			err: "not in the policy's people"},
		{name: "second approval from the same person refused",
			given: []Input{openT3, cmd(t, "ann", "/threatgate artifact threat-model x"), cmd(t, "ann", "/threatgate artifact rollback-plan y"),
				risk4, cmd(t, "alice", "/approve --check data-sensitivity=none")},
			when: cmd(t, "alice", "/approve --check data-sensitivity=none"), err: "already approved"},
		{name: "checklist answers required", given: []Input{openT3, cmd(t, "ann", "/threatgate artifact threat-model x"), cmd(t, "ann", "/threatgate artifact rollback-plan y")},
			when: cmd(t, "alice", "/approve fine"), err: "--check data-sensitivity=<answer>"},
		{name: "T3 needs the whole matrix",
			given: []Input{openT3, cmd(t, "ann", "/threatgate artifact threat-model x"), cmd(t, "ann", "/threatgate artifact rollback-plan y"),
				risk4, cmd(t, "alice", "/approve --check data-sensitivity=none"), cmd(t, "bob", "/approve --check data-sensitivity=low")},
			when: cmd(t, "dave", "/approve --check data-sensitivity=low accepted"),
			then: []string{"approval_added dave leads", "state_changed dave in_review->approved"}},
		{name: "approval goes stale on new commits",
			given: approvedT2, when: mrIn(sha("bbb222"), at(5), paths("src/auth/login.go")),
			then: []string{"mr_updated system stale", "state_changed system approved->in_review"}},
		{name: "T1 keeps approvals across pushes",
			given: []Input{openT1, cmd(t, "erin", "/approve")}, when: mrIn(sha("bbb222"), at(5), paths(".gitlab-ci.yml")),
			then: []string{"mr_updated system"}},
		{name: "tier rises on update",
			given: inReviewT2, when: mrIn(sha("bbb222"), at(5), paths("src/auth/login.go"), secretLine()),
			then: []string{"mr_updated system stale", "tier_raised system T3", "state_changed system in_review->awaiting_artifacts"}},
		{name: "tier never falls on its own",
			given: inReviewT2, when: mrIn(sha("bbb222"), at(5), paths(".gitlab-ci.yml")),
			then: []string{"mr_updated system stale", "reclassified system"}},
		{name: "retier needs authority", given: inReviewT2, when: cmd(t, "alice", "/threatgate retier T1 not that risky"),
			err: "only members of leads may re-tier"},
		{name: "retier by authority with rationale", given: inReviewT2, when: cmd(t, "dave", "/threatgate retier T1 only touches tests"),
			then: []string{"retiered dave T1"}},
		{name: "reject", given: inReviewT2, when: cmd(t, "bob", "/threatgate reject leaks tokens"),
			then: []string{"rejection_added bob", "state_changed bob in_review->rejected"}},
		{name: "approve after reject is refused for non-arbiters", given: append(slices.Clone(inReviewT2), cmd(t, "bob", "/threatgate reject no")),
			when: cmd(t, "alice", "/approve"), err: "only an arbiter"},
		{name: "conflicting approve and reject disputes",
			given: []Input{openT3, cmd(t, "ann", "/threatgate artifact threat-model x"), cmd(t, "ann", "/threatgate artifact rollback-plan y"),
				risk4, cmd(t, "alice", "/approve --check data-sensitivity=none")},
			when: cmd(t, "bob", "/threatgate reject unsafe"),
			then: []string{"rejection_added bob", "state_changed bob in_review->disputed"}},
		{name: "arbiter settles a dispute",
			given: []Input{openT3, cmd(t, "ann", "/threatgate artifact threat-model x"), cmd(t, "ann", "/threatgate artifact rollback-plan y"),
				risk4, cmd(t, "alice", "/approve --check data-sensitivity=none"), cmd(t, "bob", "/threatgate reject unsafe")},
			when: cmd(t, "dave", "/approve --check data-sensitivity=low risk accepted"),
			then: []string{"approval_added dave leads arbiter", "state_changed dave disputed->in_review"}},
		{name: "and with the matrix filled after the arbiter, it is approved",
			given: []Input{openT3, cmd(t, "ann", "/threatgate artifact threat-model x"), cmd(t, "ann", "/threatgate artifact rollback-plan y"),
				risk4, cmd(t, "alice", "/approve --check data-sensitivity=none"), cmd(t, "bob", "/threatgate reject unsafe"),
				cmd(t, "dave", "/approve --check data-sensitivity=low risk accepted")},
			when: cmd(t, "carol", "/approve --check data-sensitivity=none fine once settled"),
			then: []string{"approval_added carol appsec", "state_changed carol in_review->approved"}},
		{name: "a rejection after the arbiter's decision disputes again",
			given: []Input{openT3, cmd(t, "ann", "/threatgate artifact threat-model x"), cmd(t, "ann", "/threatgate artifact rollback-plan y"),
				risk4, cmd(t, "alice", "/approve --check data-sensitivity=none"), cmd(t, "bob", "/threatgate reject unsafe"),
				cmd(t, "dave", "/approve --check data-sensitivity=low risk accepted")},
			when: cmd(t, "carol", "/threatgate reject found another hole"),
			then: []string{"rejection_added carol", "state_changed carol in_review->disputed"}},
		{name: "dissent note recorded", given: approvedT2, when: cmd(t, "carol", "/threatgate dissent I would have asked for a pentest"),
			then: []string{"dissent_recorded carol"}},
		{name: "withdraw on MR close", given: inReviewT2, when: mrIn(action(MRClose), at(5), paths("src/auth/login.go")),
			then: []string{"mr_updated system", "withdrawn system", "state_changed system in_review->withdrawn"}},
		{name: "resume on reopen",
			given: append(slices.Clone(inReviewT2), mrIn(action(MRClose), at(5), paths("src/auth/login.go"))),
			when:  mrIn(action(MRReopen), at(6), paths("src/auth/login.go")),
			then:  []string{"reopened system", "state_changed system withdrawn->in_review", "mr_updated system"}},
		{name: "merge without approval is a bypass", given: inReviewT2, when: mrIn(action(MRMerge), at(5), paths("src/auth/login.go")),
			then: []string{"mr_updated system", "merged system bypassed", "state_changed system in_review->merged"}},
		{name: "merge of a head newer than the approval is a bypass", given: approvedT2, when: mrIn(action(MRMerge), sha("bbb222"), at(5), paths("src/auth/login.go")),
			then: []string{"mr_updated system stale", "merged system bypassed", "state_changed system approved->merged"}},
		{name: "merge after an authorised withdrawal of an untiered MR, at its head, is no bypass", given: withdrawnManual,
			when: mrIn(action(MRMerge), at(5), paths("docs/x.md")),
			then: []string{"mr_updated system", "merged system", "state_changed system withdrawn->merged"}},
		{name: "a withdrawal does not cover a newer head: its merge is a bypass", given: withdrawnManual,
			when: mrIn(action(MRMerge), sha("bbb222"), at(5), paths("docs/x.md")),
			then: []string{"mr_updated system stale", "merged system bypassed", "state_changed system withdrawn->merged"}},
		{name: "a withdrawal never covers a head the policy tiers: its merge is a bypass", given: withdrawnManual,
			when: mrIn(action(MRMerge), sha("bbb222"), at(5), paths("docs/x.md"), secretLine()),
			then: []string{"mr_updated system stale", "tier_raised system T3", "merged system bypassed", "state_changed system withdrawn->merged"}},
		{name: "a withdrawal is refused while the head classifies on its own", given: inReviewT2, when: cmd(t, "dave", "/threatgate withdraw false positive"),
			err: "classifies as T2 on its own"},
		{name: "the MR author cannot withdraw, even as the filer",
			given: []Input{cmd(t, "ann", "/escalate g/p!1 --tier T2 my own docs\nsummary: s\nassets: a\nexploit: e"), mrIn(at(1), paths("docs/x.md"))},
			when:  cmd(t, "ann", "/threatgate withdraw never mind"), err: "you wrote this merge request"},
		{name: "a commit author cannot withdraw, even with authority",
			given: []Input{cmd(t, "erin", "/escalate g/p!1 --tier T2 odd\nsummary: s\nassets: a\nexploit: e"), mrIn(at(1), paths("docs/x.md"), committers("dave@example.com"))},
			when:  cmd(t, "dave", "/threatgate withdraw fine"), err: "you wrote this merge request"},
		{name: "a commit author cannot re-tier",
			given: []Input{mrIn(action(MROpen), paths("src/auth/login.go"), committers("DAVE@example.com")), threat},
			when:  cmd(t, "dave", "/threatgate retier T1 fine"), err: "cannot re-tier"},
		{name: "a commit author cannot arbitrate",
			given: []Input{mrIn(action(MROpen), paths("src/auth/login.go"), committers("dave@example.com")), threat, cmd(t, "alice", "/approve"), cmd(t, "bob", "/threatgate reject no")},
			when:  cmd(t, "dave", "/approve settled"), err: "you wrote this merge request"},
		{name: "the filer's approval does not count",
			given: []Input{cmd(t, "alice", "/escalate g/p!1 --tier T2 worried\nsummary: s\nassets: a\nexploit: e"), mrIn(at(1), paths("docs/x.md")), cmd(t, "alice", "/threatgate artifact threat-model x")},
			when:  cmd(t, "alice", "/approve all good"), err: "you filed ESC-1, so your approval does not count"},
		{name: "no approval before the MR's head is known",
			given: []Input{cmd(t, "erin", "/escalate g/q!7 --tier T2 worried\nsummary: s\nassets: a\nexploit: e"), cmd(t, "erin", "/threatgate artifact threat-model x")},
			when:  cmd(t, "alice", "/approve"), err: "has not been read from GitLab yet"},
		{name: "approval needs a recorded residual risk on a tier with a ceiling",
			given: []Input{openT3, cmd(t, "ann", "/threatgate artifact threat-model x"), cmd(t, "ann", "/threatgate artifact rollback-plan y")},
			when:  cmd(t, "bob", "/approve --check data-sensitivity=none"), err: "none is recorded for ESC-1 yet"},
		{name: "a risk above the ceiling needs a risk acceptance given after it",
			given: []Input{openT3, cmd(t, "ann", "/threatgate artifact threat-model x"), cmd(t, "ann", "/threatgate artifact rollback-plan y"), risk4,
				cmd(t, "alice", "/approve --check data-sensitivity=none"), cmd(t, "bob", "/approve --check data-sensitivity=none"), cmd(t, "dave", "/approve --check data-sensitivity=none")},
			when: cmd(t, "carol", "/threatgate risk 16 public endpoint after all"),
			then: []string{"risk_assessed carol", "state_changed carol approved->in_review"}},
		{name: "and the risk-acceptance role accepts it",
			given: []Input{openT3, cmd(t, "ann", "/threatgate artifact threat-model x"), cmd(t, "ann", "/threatgate artifact rollback-plan y"), risk4,
				cmd(t, "alice", "/approve --check data-sensitivity=none"), cmd(t, "bob", "/approve --check data-sensitivity=none"), cmd(t, "dave", "/approve --check data-sensitivity=none"),
				cmd(t, "carol", "/threatgate risk 16 public endpoint after all")},
			when: cmd(t, "dave", "/approve --check data-sensitivity=none risk accepted until the WAF rule lands"),
			then: []string{"approval_added dave leads", "state_changed dave in_review->approved"}},
		{name: "retargeting makes approvals stale", given: approvedT2, when: func() Input { i := mrIn(at(5), paths("src/auth/login.go")); i.MR.MR.TargetBranch = "release"; return i }(),
			then: []string{"mr_updated system stale", "state_changed system approved->in_review"}},
		{name: "merge after approval is no bypass", given: approvedT2, when: mrIn(action(MRMerge), at(5), paths("src/auth/login.go")),
			then: []string{"mr_updated system", "merged system", "state_changed system approved->merged"}},
		{name: "late duplicate of an old update changes nothing",
			given: []Input{openT2, mrIn(sha("bbb222"), at(10), paths("src/auth/login.go"))},
			when:  mrIn(sha("aaa111"), at(5), paths("src/auth/login.go")), then: nil},
		{name: "manual escalation without intake opens a draft", when: cmd(t, "erin", "/escalate g/q!7 looks dodgy"),
			then: []string{"opened erin T1"}},
		{name: "intake answered in part", given: []Input{cmd(t, "erin", "/escalate g/q!7 --tier T2 looks dodgy")},
			when: func() Input {
				c, _ := ParseReply("summary: token in logs")
				return Input{Kind: InputCommand, Actor: Identity{Person: "erin", Surface: "test"}, Command: &c, Escalation: "ESC-1"}
			}(),
			then: []string{"intake_answered erin"}},
		{name: "intake complete files the escalation (deadlines set: see TestFiledHasDeadlines)", given: []Input{cmd(t, "erin", "/escalate g/q!7 --tier T2 looks dodgy\nsummary: s")},
			when: func() Input {
				c, _ := ParseReply("assets: api\nexploit: read the logs")
				return Input{Kind: InputCommand, Actor: Identity{Person: "erin", Surface: "test"}, Command: &c, Escalation: "ESC-1"}
			}(),
			then: []string{"intake_answered erin", "filed erin", "state_changed erin intake->awaiting_artifacts"}},
		{name: "only the filer answers the intake", given: []Input{cmd(t, "erin", "/escalate g/q!7 --tier T2 looks dodgy")},
			when: cmd(t, "alice", "/threatgate intake\nsummary: x"), err: "only erin"},
		{name: "a draft does not hold back the automatic gate",
			given: []Input{cmd(t, "mallory", "/escalate g/p!1 --tier T1 nothing to see")},
			when:  mrIn(action(MROpen), paths("src/auth/login.go"), secretLine()),
			then:  []string{"mr_updated system", "tier_raised system T3", "filed system", "state_changed system intake->awaiting_artifacts"}},
		{name: "a draft cannot be approved", given: []Input{cmd(t, "erin", "/escalate g/q!7 --tier T1 looks dodgy")},
			when: cmd(t, "alice", "/approve"), err: "not filed yet"},
		{name: "manual escalation filed", when: cmd(t, "erin", "/escalate g/q!7 --tier T2 looks dodgy\nsummary: token in logs\nassets: api\nexploit: read logs"),
			then: []string{"opened erin T2", "filed erin"}},
		{name: "manual escalation refused past the quarterly cap", quota: Quota{Manual: 2},
			when: cmd(t, "erin", "/escalate g/q!7 dodgy\nsummary: s\nassets: a\nexploit: e"), err: "cap is 2"},
		{name: "override-cap needs the override group", when: cmd(t, "alice", "/threatgate override-cap erin one more"),
			err: "only members of leads"},
		{name: "override-cap by the override group", when: cmd(t, "dave", "/threatgate override-cap erin 2 incident week"),
			then: []string{"cap_overridden dave erin+2"}},
		{name: "manual escalation allowed after an override", quota: Quota{Manual: 2, Overrides: 1},
			when: cmd(t, "erin", "/escalate g/q!7 dodgy\nsummary: s\nassets: a\nexploit: e"), then: []string{"opened erin T1", "filed erin"}},
		{name: "escalating an escalated MR refused", given: []Input{openT2}, when: cmd(t, "erin", "/escalate g/p!1 again\nsummary: s\nassets: a\nexploit: e"),
			err: "already escalated as ESC-1"},
		{name: "defer a deferrable tier", given: inReviewT2, when: cmd(t, "alice", "/threatgate defer 3d waiting for vendor"),
			then: []string{"deferred alice", "state_changed alice in_review->deferred"}},
		{name: "defer refused on a non-deferrable tier", given: []Input{openT3}, when: cmd(t, "alice", "/threatgate defer 3d later"),
			err: "not deferrable"},
		{name: "residual risk above the tier's maximum: approvals count, risk acceptance still missing",
			given: []Input{openT3, cmd(t, "ann", "/threatgate artifact threat-model x"), cmd(t, "ann", "/threatgate artifact rollback-plan y"),
				cmd(t, "alice", "/threatgate risk 16 public endpoint"), cmd(t, "bob", "/approve --check data-sensitivity=none")},
			when: cmd(t, "carol", "/approve --check data-sensitivity=none"), then: []string{"approval_added carol appsec"}},
		{name: "a risk recorded by the MR author does not count",
			given: []Input{mrIn(action(MROpen), paths("src/auth/login.go"), secretLine(), committers("carol@example.com")), cmd(t, "ann", "/threatgate artifact threat-model x"), cmd(t, "ann", "/threatgate artifact rollback-plan y")},
			when:  cmd(t, "carol", "/threatgate risk 2 trivial"), err: "only approvers"},
		{name: "withdraw by command needs authority", given: inReviewT2, when: cmd(t, "alice", "/threatgate withdraw false positive"),
			err: "only leads"},
		{name: "a withdrawal holds on the head it was made on",
			given: withdrawnManual, when: mrIn(at(5), paths("docs/x.md")),
			then: []string{"mr_updated system"}},
		{name: "a withdrawal ends on a new head, even an untiered one",
			given: withdrawnManual, when: mrIn(sha("bbb222"), at(5), paths("docs/x.md")),
			then: []string{"mr_updated system stale", "state_changed system withdrawn->awaiting_artifacts"}},
		{name: "a withdrawal ends when the head classifies into a tier (labels too)",
			given: withdrawnManual, when: mrIn(at(5), paths("docs/x.md", "src/auth/login.go")),
			then: []string{"mr_updated system", "reclassified system", "state_changed system withdrawn->awaiting_artifacts"}},
		{name: "withdrawn by a person resumes at the higher tier a push brings",
			given: withdrawnManual,
			when:  mrIn(sha("bbb222"), at(5), paths("src/auth/login.go"), secretLine()),
			then:  []string{"mr_updated system stale", "tier_raised system T3", "state_changed system withdrawn->awaiting_artifacts"}},
		{name: "a re-tier holds on its head",
			given: append(slices.Clone(inReviewT2), cmd(t, "dave", "/threatgate retier T1 only touches tests")),
			when:  mrIn(at(5), paths("src/auth/login.go")),
			then:  []string{"mr_updated system"}},
		{name: "a new head that classifies higher than the re-tier raises it again",
			given: append(slices.Clone(inReviewT2), cmd(t, "dave", "/threatgate retier T1 only touches tests")),
			when:  mrIn(sha("bbb222"), at(5), paths("src/auth/login.go")),
			then:  []string{"mr_updated system", "tier_raised system T2"}},
		{name: "a manual escalation learns the MR author from the forge",
			given: []Input{cmd(t, "erin", "/escalate g/p!1 --tier T1 odd\nsummary: s\nassets: a\nexploit: e")},
			when:  mrIn(at(5), paths("docs/x.md")),
			then:  []string{"mr_updated system"}},
		{name: "and then the MR author cannot approve it",
			given: []Input{cmd(t, "erin", "/escalate g/p!1 --tier T1 odd\nsummary: s\nassets: a\nexploit: e"), mrIn(at(5), paths("docs/x.md"))},
			when:  cmd(t, "ann", "/approve"), err: "you wrote this merge request"},
		{name: "a forged success status is recorded", given: inReviewT2, when: mrIn(at(5), paths("src/auth/login.go"), seen("success", "mallory", false)),
			then: []string{"mr_updated system", "status_forged system"}},
		{name: "command on a merged escalation refused",
			given: append(slices.Clone(approvedT2), mrIn(action(MRMerge), at(5), paths("src/auth/login.go"))),
			when:  cmd(t, "bob", "/threatgate reject too late"), err: "ESC-1 is merged"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			_, esc := history(t, pol, tt.quota, tt.given...)
			got, _, err := decide(Given{Esc: esc, Quota: tt.quota}, pol, tt.when, t0.Add(time.Hour))
			if tt.err != "" {
				p, ok := IsProblem(err)
				if !ok || !strings.Contains(p.Error(), tt.err) {
					t.Fatalf("err = %v, want a Problem containing %q", err, tt.err)
				}
				if got != nil {
					t.Errorf("refusal came with events %v", got)
				}
				return
			}
			if err != nil {
				t.Fatalf("err = %v, want accepted", err)
			}
			var briefs []string
			for _, ev := range got {
				briefs = append(briefs, brief(ev))
			}
			if !slices.Equal(briefs, tt.then) {
				t.Errorf("events:\n got %q\nwant %q", briefs, tt.then)
			}
		})
	}
}

func TestDecideGateEffects(t *testing.T) {
	pol := testPolicy(t)
	kinds := func(efs []Effect) []string {
		var out []string
		for _, e := range efs {
			s := string(e.Kind)
			if e.Kind == EffectStatus {
				s += " " + e.Status + "@" + e.SHA
			}
			out = append(out, s)
		}
		return out
	}
	open := mrIn(action(MROpen), paths("src/auth/login.go"))
	for _, tt := range []struct {
		name  string
		given []Input
		when  Input
		then  []string
	}{
		{"open sets pending, notes once, labels, opens the thread", nil, open,
			[]string{"status pending@aaa111", "mr_note", "thread_summary", "thread_post", "thread_post", "reply", "mr_labels"}},
		{"approval sets success, the status first of GitLab's effects", []Input{open, cmd(t, "ann", "/threatgate artifact threat-model x")}, cmd(t, "alice", "/approve"),
			[]string{"reply", "status success@aaa111", "thread_post", "mr_note", "thread_summary"}},
		{"new commits after approval: pending on the new head",
			[]Input{open, cmd(t, "ann", "/threatgate artifact threat-model x"), cmd(t, "alice", "/approve")},
			mrIn(sha("bbb222"), at(5), paths("src/auth/login.go")),
			[]string{"thread_post", "status pending@bbb222", "thread_summary"}},
		{"reject sets failed", []Input{open, cmd(t, "ann", "/threatgate artifact threat-model x")}, cmd(t, "bob", "/threatgate reject no"),
			[]string{"reply", "status failed@aaa111", "thread_post", "mr_note", "thread_summary"}},
		{"a redelivered open changes nothing", []Input{open}, open, nil},
		{"a draft manual escalation does not hold back the gate", []Input{cmd(t, "mallory", "/escalate g/p!1 --tier T1 nothing to see")}, open,
			[]string{"status pending@aaa111", "mr_note", "thread_post", "thread_post", "mr_labels", "thread_summary"}},
		{"our pending status seen: nothing to do", []Input{open}, mrIn(at(1), paths("src/auth/login.go"), seen("pending", "threatgate-bot", true)),
			[]string{"mr_labels"}[:0]},
		{"a missing status is set again", []Input{open}, mrIn(at(1), paths("src/auth/login.go"), seen("", "", false)),
			[]string{"status pending@aaa111"}},
		{"an external status check on an MR without a tier is passed", nil, func() Input { i := mrIn(action(MROpen), paths("README.md")); i.MR.AnswerCheck = true; return i }(),
			[]string{"reply", "status success@aaa111"}},
		{"an external status check is answered even when nothing changed", []Input{open}, func() Input { i := mrIn(paths("src/auth/login.go")); i.MR.AnswerCheck = true; return i }(),
			[]string{"status pending@aaa111"}},
		{"a forged success is overwritten and reported", []Input{open}, mrIn(at(1), paths("src/auth/login.go"), seen("success", "mallory", false)),
			[]string{"thread_post", "status pending@aaa111"}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			_, esc := history(t, pol, Quota{}, tt.given...)
			_, efs, err := decide(Given{Esc: esc}, pol, tt.when, t0.Add(time.Hour))
			if err != nil {
				t.Fatal(err)
			}
			if got := kinds(efs); !slices.Equal(got, tt.then) && (len(got) != 0 || len(tt.then) != 0) {
				t.Errorf("effects:\n got %q\nwant %q", got, tt.then)
			}
		})
	}
}

func TestReplayMatchesDecide(t *testing.T) {
	pol := testPolicy(t)
	evs, esc := history(t, pol, Quota{},
		mrIn(action(MROpen), paths("src/auth/login.go")),
		cmd(t, "ann", "/threatgate artifact threat-model https://wiki/tm"),
		cmd(t, "alice", "/approve fine"),
		mrIn(sha("bbb222"), at(5), paths("src/auth/login.go")))
	got := Replay(evs)
	if got.State != StateInReview || got.HeadSHA != "bbb222" || !got.Approvals[0].Stale {
		t.Errorf("replayed state %s head %s approvals %+v", got.State, got.HeadSHA, got.Approvals)
	}
	if got.Version != uint64(len(evs)) || esc.Version != got.Version {
		t.Errorf("Version = %d, want %d", got.Version, len(evs))
	}
	if w := Waiting(got, pol); !slices.Equal(w, []string{"alice", "bob", "carol", "frank"}) {
		t.Errorf("Waiting = %v, want alice bob carol (the stale approval no longer counts)", w)
	}
}

func TestHumanDuration(t *testing.T) {
	for d, want := range map[time.Duration]string{
		72 * time.Hour: "3d", 76*time.Hour + 20*time.Minute: "3d 4h", 5*time.Hour + 12*time.Minute: "5h 12m",
		2 * time.Hour: "2h", 12 * time.Minute: "12m", -90 * time.Minute: "1h 30m", 20 * time.Second: "<1m",
	} {
		if got := humanDuration(d); got != want {
			t.Errorf("humanDuration(%s) = %q, want %q", d, got, want)
		}
	}
}

func TestFiledHasDeadlines(t *testing.T) {
	pol := testPolicy(t)
	c, _ := ParseReply("summary: s\nassets: a\nexploit: e")
	_, esc := history(t, pol, Quota{}, cmd(t, "erin", "/escalate g/q!7 --tier T2 looks dodgy"),
		Input{Kind: InputCommand, Actor: Identity{Person: "erin", Surface: "test"}, Command: &c, Escalation: "ESC-1"})
	if esc.State != StateAwaitingArtifacts || esc.DecisionDue.IsZero() || esc.FirstResponseDue.IsZero() {
		t.Errorf("filed through the thread: state %s, first response due %s, decision due %s", esc.State, esc.FirstResponseDue, esc.DecisionDue)
	}
}

// TestCardShowsRiskAndUnknownAuthors: approvers see on the card whether the
// residual risk is recorded and accepted, and who wrote commits that
// nobody in the policy is (their approval could not be told apart).
func TestCardShowsRiskAndUnknownAuthors(t *testing.T) {
	pol := testPolicy(t)
	_, esc := history(t, pol, Quota{},
		mrIn(action(MROpen), paths("src/auth/login.go"), secretLine(), committers("ann@example.com", "stranger@elsewhere.example", "Bob@Example.com")))
	card := Card(esc, pol, t0)
	for _, want := range []string{"Residual risk: not recorded (at most 9", "Commit authors not in the policy: stranger@elsewhere.example"} {
		if !strings.Contains(card, want) {
			t.Errorf("card lacks %q:\n%s", want, card)
		}
	}
	if strings.Contains(card, "ann@example.com") || strings.Contains(strings.ToLower(card), "bob@example.com") {
		t.Errorf("card lists known people as unknown:\n%s", card)
	}
	if u := UnknownAuthors(esc, pol); !slices.Equal(u, []string{"stranger@elsewhere.example"}) {
		t.Errorf("UnknownAuthors = %v", u)
	}
	// bob wrote a commit (his address in another case): he cannot approve.
	_, esc = history(t, pol, Quota{}, mrIn(action(MROpen), paths("src/auth/login.go"), committers("BOB@example.COM")), cmd(t, "ann", "/threatgate artifact threat-model x"))
	if _, _, err := decide(Given{Esc: esc}, pol, cmd(t, "bob", "/approve"), t0); err == nil || !strings.Contains(err.Error(), "you wrote") {
		t.Errorf("bob approving his own commit: err = %v", err)
	}
}

// TestDeadlinesExact: the deadlines events carry, to the minute: a tier's
// windows from the opening, the urgent window, tightening (never
// loosening) on a tier raise and a re-tier up.
func TestDeadlinesExact(t *testing.T) {
	pol := testPolicy(t)
	t1, t2, t3 := pol.Tier("T1"), pol.Tier("T2"), pol.Tier("T3")
	step := func(esc *Escalation, in Input, at time.Time) (*Escalation, []Event) {
		t.Helper()
		evs, _, err := decide(Given{Esc: esc}, pol, in, at)
		if err != nil {
			t.Fatal(err)
		}
		for _, ev := range evs {
			ev.Escalation = "ESC-1"
			esc = apply(esc, ev)
		}
		return esc, evs
	}
	find := func(evs []Event, k EventKind) EventData {
		t.Helper()
		for _, ev := range evs {
			if ev.Kind == k {
				return ev.Data
			}
		}
		t.Fatalf("no %s event in %v", k, evs)
		return EventData{}
	}
	want := func(what string, got, want time.Time) {
		t.Helper()
		if !got.Equal(want) {
			t.Errorf("%s = %s, want %s", what, got.Format(time.RFC3339), want.Format(time.RFC3339))
		}
	}

	// Opened as T1 at t0.
	esc, evs := step(nil, mrIn(action(MROpen), paths(".gitlab-ci.yml")), t0)
	d := find(evs, EventOpened)
	want("T1 first response", d.FirstResponseDue, t0.Add(min(t1.FirstResponse, t1.Decision)))
	want("T1 decision", d.DecisionDue, t0.Add(t1.Decision))

	// Raised to T3 an hour later: each deadline is the earlier of the old
	// one and T3's from now.
	when := t0.Add(time.Hour)
	esc, evs = step(esc, mrIn(sha("bbb222"), at(60), paths(".gitlab-ci.yml", "src/auth/login.go"), secretLine()), when)
	d = find(evs, EventTierRaised)
	want("raised first response", d.FirstResponseDue, minTime(t0.Add(min(t1.FirstResponse, t1.Decision)), when.Add(min(t3.FirstResponse, t3.Decision))))
	want("raised decision", d.DecisionDue, minTime(t0.Add(t1.Decision), when.Add(t3.Decision)))
	if d.Tier != "T3" || d.FromTier != "T1" || d.Score != 160 {
		t.Errorf("tier_raised payload = %+v", d)
	}

	// A manual urgent escalation: the urgent window.
	_, evs = step(nil, cmd(t, "erin", "/escalate g/q!7 --urgent --tier T2 leaking\nsummary: s\nassets: a\nexploit: e"), t0)
	urgent := t2.Decision
	if t2.UrgentDecision > 0 {
		urgent = t2.UrgentDecision
	}
	want("urgent decision", find(evs, EventFiled).DecisionDue, t0.Add(urgent))
	if o := find(evs, EventOpened); !o.Manual || !o.Urgent || o.Text != "leaking" || o.Intake["summary"] != "s" {
		t.Errorf("opened payload = %+v", o)
	}

	// A re-tier up by a lead tightens; a re-tier down sets the lower tier's
	// windows from now.
	esc, _ = step(nil, mrIn(action(MROpen), paths("src/auth/login.go")), t0) // T2
	when = t0.Add(30 * time.Minute)
	esc, evs = step(esc, cmd(t, "dave", "/threatgate retier T3 it handles tokens"), when)
	d = find(evs, EventRetiered)
	want("re-tier up decision", d.DecisionDue, minTime(t0.Add(t2.Decision), when.Add(t3.Decision)))
	if d.FromTier != "T2" || d.Tier != "T3" || d.Text != "it handles tokens" || !d.Raised {
		t.Errorf("retiered payload = %+v", d)
	}
	when = t0.Add(time.Hour)
	_, evs = step(esc, cmd(t, "dave", "/threatgate retier T1 only config after all"), when)
	want("re-tier down decision", find(evs, EventRetiered).DecisionDue, when.Add(t1.Decision))
}

func minTime(a, b time.Time) time.Time {
	if a.Before(b) {
		return a
	}
	return b
}
