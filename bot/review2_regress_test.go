package bot

import (
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/threatgate/threatgate/policies"
)

func targetBranch(b string) mrOpt { return func(m *MRInput) { m.MR.TargetBranch = b } }
func diff(path, body string) mrOpt {
	return func(m *MRInput) {
		m.MR.Changes = append(m.MR.Changes, policies.Change{OldPath: path, NewPath: path, Diff: body})
	}
}

// Regression tests for holes found by the second attacker's review.

// TestRetierDoesNotSurviveARetarget: a re-tier holds for the diff it was
// made on; retargeting keeps the head SHA but changes the diff, so the
// re-tier must not cap the tier any more (it did: a different T3 diff went
// green on one T1 approval).
func TestRetierDoesNotSurviveARetarget(t *testing.T) {
	pol := testPolicy(t)
	fixture := diff("testdata/fixture_test.go", "@@ -1 +1,2 @@\n x\n+password = \"fixture\"\n")
	esc, status := run(t, pol,
		mrIn(action(MROpen), targetBranch("feature-base"), fixture), // T3 (secret, a test fixture)
		cmd(t, "dave", "/threatgate retier T1 the password is a test fixture"),
		cmd(t, "erin", "/approve"),
		// ann retargets the MR to main: same head aaa111, but the diff
		// against main now carries what feature-base held.
		mrIn(at(3), targetBranch("main"), fixture,
			diff("config/prod.go", "@@ -1 +1,2 @@\n x\n+password = \"Pr0d-Db-Passw0rd\"\n"),
			diff("auth/backdoor.go", "@@ -0,0 +1 @@\n+func allow() bool { return true }\n")),
	)
	if _, _, err := decide(Given{Esc: esc}, pol, cmd(t, "erin", "/approve again after the retarget"), t0.Add(time.Hour)); err == nil {
		t.Errorf("a T1 approval was taken on the retargeted T3 diff")
	}
	res := pol.Evaluate(mrIn(targetBranch("main"), fixture,
		diff("config/prod.go", "@@ -1 +1,2 @@\n x\n+password = \"Pr0d-Db-Passw0rd\"\n"),
		diff("auth/backdoor.go", "@@ -0,0 +1 @@\n+func allow() bool { return true }\n")).MR.MR)
	t.Logf("head %s target %s classifies %s (score %d); escalation tier %s state %s gate %q; retier_sha %s from %s",
		esc.HeadSHA, esc.TargetBranch, res.Tier.ID, res.Score, esc.Tier, esc.State, status[esc.HeadSHA], esc.RetierSHA, esc.RetierFrom)
	if esc.State == StateApproved || status["aaa111"] == StatusSuccess {
		t.Errorf("the retargeted diff (prod password, auth backdoor) classifies %s and is green on one T1 champion approval; the re-tier was about the diff against feature-base", res.Tier.ID)
	}
}

// TestSecretInTitleIsNeverStored: a title holding what a redacting pattern
// calls a secret is masked before any event or effect carries it (it was
// stored and shown verbatim). Default policy.
func TestSecretInTitleIsNeverStored(t *testing.T) {
	pol, err := policies.Default()
	if err != nil {
		t.Fatal(err)
	}
	const tok = "glpat-R2secretR2secretR2secret"
	in := mrIn(action(MROpen), paths("src/auth/login.go"), labels("security"))
	in.MR.MR.Title = "security fix: revoke " + tok
	evs, efs, err := decide(Given{}, pol, in, t0)
	if err != nil {
		t.Fatal(err)
	}
	raw, _ := json.Marshal(evs)
	var shownEvidence string
	for _, ev := range evs {
		for _, s := range ev.Data.Signals {
			if s.ID == "security-title" {
				shownEvidence = strings.Join(s.Evidence, " | ")
			}
		}
	}
	t.Logf("security-title evidence: %s", shownEvidence)
	if strings.Contains(string(raw), tok) {
		t.Errorf("the audit events store the token the evidence masks (title %q)", evs[0].Data.Title)
	}
	for _, ef := range efs {
		if strings.Contains(ef.Text, tok) {
			t.Errorf("effect %s shows the token: %.120q", ef.Kind, ef.Text)
		}
	}
}

// TestDeferralEndsOnARaiseToAnUndeferrableTier: a T2 deferral must not keep
// a T3 head out of review until the date.
func TestDeferralEndsOnARaiseToAnUndeferrableTier(t *testing.T) {
	pol := testPolicy(t)
	esc, _ := run(t, pol,
		mrIn(action(MROpen), paths("src/auth/login.go")), // T2, deferrable
		cmd(t, "alice", "/threatgate defer 80d next quarter"),
		mrIn(at(2), sha("bbb222"), paths("src/auth/login.go"), secretLine()), // T3
	)
	t.Logf("tier %s state %s until %s", esc.Tier, esc.State, esc.DeferredUntil.Format("2006-01-02"))
	if esc.Tier == "T3" && esc.State == StateDeferred {
		t.Errorf("T3 (deferrable: false) stays deferred until %s; approvals are refused until then", esc.DeferredUntil.Format("2006-01-02"))
	}
}

// TestRetierDownThenUpDoesNotRestoreApprovals: approvals given while lowered
// stay stale when the tier goes back up.
func TestRetierDownThenUpDoesNotRestoreApprovals(t *testing.T) {
	pol := testPolicy(t)
	esc, st := run(t, pol,
		mrIn(action(MROpen), paths("src/auth/login.go")), // T2
		cmd(t, "ann", "/threatgate artifact threat-model https://x"),
		cmd(t, "dave", "/threatgate retier T1 tiny"),
		cmd(t, "erin", "/approve"),
		cmd(t, "dave", "/threatgate retier T2 no, it is not tiny"),
	)
	t.Logf("tier %s state %s gate %q approvals %+v", esc.Tier, esc.State, st["aaa111"], esc.Approvals)
	if esc.State == StateApproved {
		t.Errorf("restored")
	}
}

// TestResidualRiskIsAssessedPerHead: on a tier that resets approvals on
// push, a risk assessed for aaa111 does not count for bbb222 (artifacts do
// carry over: they describe the change).
func TestResidualRiskIsAssessedPerHead(t *testing.T) {
	pol := testPolicy(t)
	chk := "--check data-sensitivity=none "
	esc, st := run(t, pol,
		mrIn(action(MROpen), paths("src/auth/login.go"), secretLine()), // T3 on aaa111
		cmd(t, "ann", "/threatgate artifact threat-model https://wiki/tm-for-aaa111"),
		cmd(t, "ann", "/threatgate artifact rollback-plan https://wiki/rb"),
		cmd(t, "carol", "/threatgate risk 3 a test fixture only"),
		mrIn(at(4), sha("bbb222"), paths("src/auth/login.go", "src/auth/bypass.go"), secretLine()), // new head, still T3
	)
	if _, _, err := decide(Given{Esc: esc}, pol, cmd(t, "alice", "/approve "+chk+"ok"), t0.Add(time.Hour)); err == nil || !strings.Contains(err.Error(), "none is recorded") {
		t.Errorf("approval on bbb222 with the risk assessed on aaa111: err = %v", err)
	}
	esc, st = run(t, pol,
		mrIn(action(MROpen), paths("src/auth/login.go"), secretLine()),
		cmd(t, "ann", "/threatgate artifact threat-model https://wiki/tm-for-aaa111"),
		cmd(t, "ann", "/threatgate artifact rollback-plan https://wiki/rb"),
		cmd(t, "carol", "/threatgate risk 3 a test fixture only"),
		mrIn(at(4), sha("bbb222"), paths("src/auth/login.go", "src/auth/bypass.go"), secretLine()),
		cmd(t, "carol", "/threatgate risk 4 the bypass is test-only too"),
		cmd(t, "alice", "/approve "+chk+"ok"),
		cmd(t, "bob", "/approve "+chk+"ok"),
		cmd(t, "dave", "/approve "+chk+"ok"),
	)
	if esc.State != StateApproved {
		t.Errorf("assessed again on bbb222 and approved: state %s", esc.State)
	}
	t.Logf("head %s state %s gate %q; risk %d recorded on %s; artifacts on %s", esc.HeadSHA, esc.State, st["bbb222"], esc.Risk.Score, esc.Risk.SHA, esc.Artifacts[0].SHA)
	if esc.State == StateApproved && esc.Risk.SHA != esc.HeadSHA {
		t.Errorf("green on bbb222 with a residual risk assessed on %s and artifacts handed in on %s", esc.Risk.SHA, esc.Artifacts[0].SHA)
	}
}
