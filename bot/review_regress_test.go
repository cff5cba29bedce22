package bot

import (
	"strings"
	"testing"
	"time"

	"github.com/threatgate/threatgate/policies"
)

// Regression tests for holes found by an attacker's review of issue 8.

// run feeds ins through decide like the engine does and returns the
// projection and the last status effect per head.
func run(t *testing.T, pol *policies.Policy, ins ...Input) (*Escalation, map[string]string) {
	t.Helper()
	var esc *Escalation
	status := map[string]string{}
	for i, in := range ins {
		evs, efs, err := decide(Given{Esc: esc}, pol, in, t0.Add(time.Duration(i)*time.Minute))
		if err != nil {
			t.Fatalf("input %d: %v", i, err)
		}
		for _, ev := range evs {
			if ev.Escalation == "" {
				ev.Escalation = "ESC-1"
			}
			esc = apply(esc, ev)
		}
		for _, ef := range efs {
			if ef.Kind == EffectStatus {
				status[ef.SHA] = ef.Status
			}
		}
	}
	return esc, status
}

func author(u string) mrOpt { return func(m *MRInput) { m.MR.Author.Username = u } }

// TestTierRaiseMakesLowerTierApprovalsStale: an approval given for a lower
// tier (no checklist, another matrix) must not fill the higher tier's slots
// after the tier rises on the same head (a label). Default policy.
func TestTierRaiseMakesLowerTierApprovalsStale(t *testing.T) {
	pol, err := policies.Default()
	if err != nil {
		t.Fatal(err)
	}
	ci := func(opts ...mrOpt) Input {
		return mrIn(append([]mrOpt{author("bob"), paths(".gitlab-ci.yml"), committers("bob@example.com")}, opts...)...)
	}
	esc, status := run(t, pol,
		ci(action(MROpen)), // ci-pipeline, score 30: T1
		cmd(t, "bob", "/threatgate artifact test-evidence https://ci/1"),
		cmd(t, "carol", "/threatgate risk 4 internal only"),
		cmd(t, "carol", "/approve fine for T1"), // T1 has no checklist
		ci(at(5), labels("security")),           // same head, score 80: T2
		cmd(t, "bob", "/threatgate artifact threat-model https://x"),
		cmd(t, "bob", "/threatgate artifact impact-matrix https://y"),
	)
	if esc.Tier != "T2" {
		t.Fatalf("tier %s, want T2", esc.Tier)
	}
	if esc.State == StateApproved || status["aaa111"] == StatusSuccess {
		t.Errorf("T2 is %s with gate %q on aaa111, yet nobody approved it as T2 or answered T2's checklist %v; approvals: %+v",
			esc.State, status["aaa111"], pol.Tier("T2").Checklist, esc.Approvals)
	}
	// An authorised re-tier upwards does the same.
	pol2 := testPolicy(t)
	esc, _ = run(t, pol2, mrIn(action(MROpen), paths(".gitlab-ci.yml")), cmd(t, "erin", "/approve"), cmd(t, "dave", "/threatgate retier T2 it does touch auth after all"))
	if !esc.Approvals[0].Stale || esc.State == StateApproved {
		t.Errorf("after a re-tier up: approval stale %v, state %s", esc.Approvals[0].Stale, esc.State)
	}
}

// TestMRAuthorUsernameCase: GitLab keeps the case a username was registered
// with; the policy's lower-case name is still the author.
func TestMRAuthorUsernameCase(t *testing.T) {
	pol := testPolicy(t)
	var esc *Escalation
	for i, in := range []Input{
		mrIn(action(MROpen), author("Alice"), paths("src/auth/login.go"), committers("contractor@vendor.example")),
		cmd(t, "ann", "/threatgate artifact threat-model https://wiki/tm"),
	} {
		evs, _, err := decide(Given{Esc: esc}, pol, in, t0.Add(time.Duration(i)*time.Minute))
		if err != nil {
			t.Fatal(err)
		}
		for _, ev := range evs {
			ev.Escalation = "ESC-1"
			esc = apply(esc, ev)
		}
	}
	if _, _, err := decide(Given{Esc: esc}, pol, cmd(t, "alice", "/approve my own MR"), t0.Add(time.Hour)); err == nil {
		t.Errorf("the MR's author (GitLab: Alice, policy: alice) approved it")
	}
}

// TestArbiterCannotSettleHisOwnRejection: one security lead alone must not
// approve a T3 change that needs two appsec approvals and a lead's by
// rejecting it and then settling his own rejection. Default policy.
func TestArbiterCannotSettleHisOwnRejection(t *testing.T) {
	pol, err := policies.Default()
	if err != nil {
		t.Fatal(err)
	}
	open := mrIn(action(MROpen), author("bob"), committers("bob@example.com"), labels("security", "security::critical"), paths("src/auth/login.go"))
	ins := []Input{open}
	for _, a := range pol.Tier("T3").Artifacts {
		ins = append(ins, cmd(t, "bob", "/threatgate artifact "+a+" https://x/"+a))
	}
	checks := "--check data-sensitivity=low --check access-implications=none --check regulatory=none --check cross-system-dependencies=none"
	ins = append(ins, cmd(t, "dave", "/threatgate risk 4 fine"), cmd(t, "dave", "/threatgate reject not yet"))
	esc, _ := run(t, pol, ins...)
	_, _, err = decide(Given{Esc: esc}, pol, cmd(t, "dave", "/approve "+checks+" now it is"), t0.Add(time.Hour))
	if p, ok := IsProblem(err); !ok || p.Msg == "" {
		t.Fatalf("dave settling his own rejection: err = %v, want a refusal", err)
	}
	// Another arbiter (erin) overrules the rejection, but the matrix still
	// needs its approvals: not green on one person.
	esc, status := run(t, pol, append(ins, cmd(t, "erin", "/approve "+checks+" overruled"))...)
	if esc.State == StateApproved || status["aaa111"] == StatusSuccess {
		t.Errorf("T3 is %s, gate %q, on one arbiter's approval: %+v", esc.State, status["aaa111"], esc.Approvals)
	}
}

// TestCommandsAreForTheHeadTheirSenderSaw: a re-tier (or any command that
// decides on the head) written about one head must not land on a newer
// one pushed before it was processed.
func TestCommandsAreForTheHeadTheirSenderSaw(t *testing.T) {
	pol := testPolicy(t)
	esc, _ := run(t, pol, mrIn(action(MROpen), paths("src/auth/login.go")), cmd(t, "ann", "/threatgate artifact threat-model x"),
		mrIn(sha("bbb222"), at(5), paths("src/auth/login.go"), secretLine()))
	for _, line := range []string{"/threatgate retier T1 only renames a helper", "/approve", "/threatgate withdraw x", "/threatgate risk 2 low", "/threatgate defer 2d later", "/threatgate reject no"} {
		in := cmd(t, "dave", line)
		in.Head = "aaa111"
		_, _, err := decide(Given{Esc: esc}, pol, in, t0.Add(time.Hour))
		if p, ok := IsProblem(err); !ok || !strings.Contains(p.Msg, "moved from aaa111 to bbb222") {
			t.Errorf("%s written about aaa111, head bbb222: err = %v", line, err)
		}
	}
	in := cmd(t, "dave", "/threatgate retier T1 only renames a helper")
	in.Head = "bbb222"
	if _, _, err := decide(Given{Esc: esc}, pol, in, t0.Add(time.Hour)); err != nil {
		t.Errorf("retier about the current head: %v", err)
	}
}

// TestNoreplyCommitAddresses: a commit under GitLab's private address
// (web IDE, hidden e-mail) is its user's, by id or by username.
func TestNoreplyCommitAddresses(t *testing.T) {
	pol, err := policies.Load("p.yaml", []byte(strings.Replace(testPolicyYAML, "{gitlab: alice, email: alice@example.com}", "{gitlab: alice, gitlab_id: 4211, email: alice@example.com}", 1)))
	if err != nil {
		t.Fatal(err)
	}
	for _, addr := range []string{"4211-alice.renamed@users.noreply.gitlab.example.com", "99-Alice@users.noreply.gitlab.com", "alice@users.noreply.gitlab.example.com"} {
		esc, _ := run(t, pol, mrIn(action(MROpen), paths("src/auth/login.go"), committers(addr)), cmd(t, "ann", "/threatgate artifact threat-model x"))
		if _, _, err := decide(Given{Esc: esc}, pol, cmd(t, "alice", "/approve"), t0.Add(time.Hour)); err == nil {
			t.Errorf("alice approved a commit by %s", addr)
		}
		if u := UnknownAuthors(esc, pol); len(u) != 0 {
			t.Errorf("UnknownAuthors(%s) = %v", addr, u)
		}
	}
	esc, _ := run(t, pol, mrIn(action(MROpen), paths("src/auth/login.go"), committers("77-mallory2@users.noreply.gitlab.com")), cmd(t, "ann", "/threatgate artifact threat-model x"))
	if _, _, err := decide(Given{Esc: esc}, pol, cmd(t, "alice", "/approve"), t0.Add(time.Hour)); err != nil {
		t.Errorf("someone else's noreply address stopped alice: %v", err)
	}
}
