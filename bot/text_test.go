package bot

import (
	"flag"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/threatgate/threatgate/policies"
)

var update = flag.Bool("update", false, "rewrite the golden files")

// allNotices has one sample of every notice kind, as decide builds them.
func allNotices() map[NoticeKind]*Notice {
	due := time.Date(2026, 11, 4, 9, 0, 0, 0, time.UTC)
	req := &Requirements{
		Artifacts: []Field{{ID: "threat-model", Text: "STRIDE threat model"}, {ID: "rollback-plan", Text: "Rollback plan"}},
		Approvals: []policies.Approval{{Group: "appsec", Count: 2, Role: "approver"}, {Group: "leads", Count: 1, Role: "risk-acceptance"}},
		Review:    []string{"sre"}, Inform: []string{"security-announce"}, Checklist: []string{"data-sensitivity"},
	}
	auto := &Summary{Signals: []policies.Fired{{ID: "auth", Category: "access-control", Weight: 40, Evidence: []string{"path src/auth/login.go matches \"**/auth/**\"", "a", "b", "c"}}},
		FirstResponseDue: due.Add(-44 * time.Hour), DecisionDue: due}
	manual := &Summary{Manual: true, Urgent: true, Filer: "erin", Reason: "token in logs @all", Intake: []Field{{ID: "summary", Text: "s"}},
		FirstResponseDue: due.Add(-44 * time.Hour), DecisionDue: due}
	decisions := []Decision{{By: "alice", Group: "appsec", Rationale: "fine"}, {By: "dave", Arbiter: true}, {By: "bob", Group: "appsec", Stale: true}}
	return map[NoticeKind]*Notice{
		NoticeOpened:        {Kind: NoticeOpened, Tier: "T3", TierName: "critical", Score: 140, Summary: auto, Requirements: req},
		NoticeFiled:         {Kind: NoticeFiled, Tier: "T2", TierName: "high", Summary: manual, Requirements: req},
		NoticeSelfFiled:     {Kind: NoticeSelfFiled, Tier: "T3", TierName: "critical", Score: 140, Summary: auto, Requirements: req},
		NoticeIntakeAsked:   {Kind: NoticeIntakeAsked, Project: "g/p", MRIID: 7, Tier: "T2", TierName: "high", By: "erin", Text: "looks dodgy", Fields: []Field{{ID: "summary", Text: "What is wrong?"}, {ID: "assets", Text: "What is at stake?"}}},
		NoticeTierRaised:    {Kind: NoticeTierRaised, Tier: "T3", TierName: "critical", FromTier: "T2", Score: 140, Requirements: req},
		NoticeRetiered:      {Kind: NoticeRetiered, Tier: "T1", TierName: "elevated", FromTier: "T2", By: "dave", Text: "only touches tests", Requirements: &Requirements{Approvals: []policies.Approval{{Group: "champions", Count: 1, Role: "approver"}}}},
		NoticeReady:         {Kind: NoticeReady},
		NoticeBackInReview:  {Kind: NoticeBackInReview, SHA: "bbb2222233334444"},
		NoticeApproved:      {Kind: NoticeApproved, Tier: "T3", TierName: "critical", Decisions: decisions},
		NoticeRejected:      {Kind: NoticeRejected, Decisions: []Decision{{By: "bob", Group: "appsec", Rationale: "leaks tokens"}}},
		NoticeDisputed:      {Kind: NoticeDisputed, Arbiters: []string{"leads"}},
		NoticeDissent:       {Kind: NoticeDissent, By: "carol", Text: "I would have asked for a pentest"},
		NoticeWithdrawn:     {Kind: NoticeWithdrawn, By: "dave", Text: "false alarm"},
		NoticeClosed:        {Kind: NoticeClosed},
		NoticeReopened:      {Kind: NoticeReopened},
		NoticeResumed:       {Kind: NoticeResumed, Tier: "T3", TierName: "critical", Why: "the merge request's head bbb22222 classifies as T3 (score 140)", Requirements: req},
		NoticeDeferralEnded: {Kind: NoticeDeferralEnded, State: StateInReview, Why: "tier T3 cannot be deferred"},
		NoticeBypass:        {Kind: NoticeBypass, Project: "g/p", MRIID: 1, SHA: "ccc3333344445555", State: StateInReview, Tier: "T2"},
		NoticeAnswer:        {Kind: NoticeAnswer, Text: "threatgate could not do that: /approve: you wrote this merge request"},
		NoticeForged:        {Kind: NoticeForged, Found: "success", FoundBy: "mallory", SHA: "aaa1111122223333", Reset: "pending"},
		NoticeNudge:         {Kind: NoticeNudge, Why: "approval", Threshold: 50, AskedOf: []string{"alice", "bob"}, Due: time.Date(2026, 11, 4, 9, 0, 0, 0, time.UTC)},
		NoticeHandoff:       {Kind: NoticeHandoff, Groups: []string{"appsec-backup"}, AskedOf: []string{"carol"}, By: "alice", Why: "away:alice"},
		NoticeLapsed:        {Kind: NoticeLapsed, Project: "g/p", MRIID: 1, Tier: "T3", TierName: "critical", State: StateInReview, Due: time.Date(2026, 11, 4, 9, 0, 0, 0, time.UTC)},
		NoticeArtifactsAsked: {Kind: NoticeArtifactsAsked, Tier: "T3", AskedOf: []string{"ann", "erin"},
			Fields: []Field{{ID: "threat-model", Text: "Threat model (STRIDE)"}, {ID: "rollback-plan", Text: "Rollback plan"}}},
	}
}

// TestRenderTextGolden: every notice kind rendered as text (GitLab notes,
// the console) is its golden file in testdata/notices; go test -update
// rewrites them.
func TestRenderTextGolden(t *testing.T) {
	for kind, n := range allNotices() {
		got := RenderText(n, "ESC-7") + "\n"
		path := filepath.Join("testdata", "notices", string(kind)+".txt")
		if *update {
			if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
				t.Fatal(err)
			}
			if err := os.WriteFile(path, []byte(got), 0o644); err != nil {
				t.Fatal(err)
			}
			continue
		}
		want, err := os.ReadFile(path)
		if err != nil {
			t.Fatalf("%s: %v (run go test -update)", kind, err)
		}
		if got != string(want) {
			t.Errorf("%s:\n got %q\nwant %q", kind, got, want)
		}
	}
}

// TestEveryNoticeKindHasAGolden: a notice kind added without a sample (and
// so without a golden file) fails here.
func TestEveryNoticeKindHasAGolden(t *testing.T) {
	kinds := []NoticeKind{NoticeOpened, NoticeFiled, NoticeSelfFiled, NoticeIntakeAsked, NoticeTierRaised, NoticeRetiered, NoticeReady,
		NoticeBackInReview, NoticeApproved, NoticeRejected, NoticeDisputed, NoticeDissent, NoticeWithdrawn, NoticeClosed, NoticeReopened,
		NoticeResumed, NoticeDeferralEnded, NoticeBypass, NoticeForged, NoticeAnswer, NoticeArtifactsAsked, NoticeNudge, NoticeHandoff, NoticeLapsed}
	all := allNotices()
	for _, k := range kinds {
		if all[k] == nil {
			t.Errorf("no sample of notice %s", k)
		}
	}
	if len(all) != len(kinds) {
		t.Errorf("%d samples for %d kinds", len(all), len(kinds))
	}
}

// TestRenderCardTextGolden: the summary card as text, a full one and a
// draft's.
func TestRenderCardTextGolden(t *testing.T) {
	due := time.Date(2026, 11, 4, 9, 0, 0, 0, time.UTC)
	for name, c := range map[string]*CardData{
		"card": {Project: "g/p", MRIID: 1, Title: "Rotate sessions", Tier: "T3", TierName: "critical", State: StateInReview, Urgent: true,
			Artifacts: []CardArtifact{{Kind: "threat-model", By: "ann"}, {Kind: "rollback-plan"}}, AskedOf: "ann, erin",
			HeadSHA: "aaa1111122223333", Approvals: []CardRow{{Group: "appsec", Filled: 1, Count: 2}, {Group: "leads", Count: 1}},
			RiskCeiling: 9, RiskRecorded: true, Risk: 16, UnknownAuthors: []string{"stranger@elsewhere.example"},
			Waiting: []string{"bob", "carol"}, DecisionDue: due},
		"card_intake": {Project: "g/q", MRIID: 7, Tier: "T2", TierName: "high", State: StateIntake, Filer: "erin",
			IntakeMissing: []Field{{ID: "assets", Text: "What is at stake?"}}},
	} {
		got := RenderCardText(c, "ESC-7") + "\n"
		path := filepath.Join("testdata", "notices", name+".txt")
		if *update {
			if err := os.WriteFile(path, []byte(got), 0o644); err != nil {
				t.Fatal(err)
			}
			continue
		}
		want, err := os.ReadFile(path)
		if err != nil {
			t.Fatalf("%s: %v (run go test -update)", name, err)
		}
		if got != string(want) {
			t.Errorf("%s:\n got %q\nwant %q", name, got, want)
		}
	}
}
