package bot

import (
	"slices"
	"testing"
	"time"

	"github.com/threatgate/threatgate/policies"
)

// TestPeopleOf: everyone named on an escalation, in lower case, once.
func TestPeopleOf(t *testing.T) {
	e := &Escalation{
		Author: "Ann", CommitAuthors: []string{"ann", "carl@example.com"}, Filer: "erin",
		Artifacts: []Artifact{{By: "fred"}}, Approvals: []Decision{{By: "alice"}}, Rejections: []Decision{{By: "bob"}},
		Dissents: []Note{{By: "carol"}}, Actions: []Note{{By: "dave", Owner: "gina", DoneBy: "hal"}},
		Risk: &Note{By: "ivan", ValidatedBy: "judy"}, WithdrawnBy: "ken", MergedBy: "Mallory", Waiting: []string{"nina", "system"},
	}
	want := []string{"alice", "ann", "bob", "carl@example.com", "carol", "dave", "erin", "fred", "gina", "hal", "ivan", "judy", "ken", "mallory", "nina"}
	if got := PeopleOf(e); !slices.Equal(got, want) {
		t.Errorf("PeopleOf = %v\nwant %v", got, want)
	}
}

// TestListQueryMatch: states and pseudo-states, flags, the time range
// (since inclusive, until exclusive), case-insensitive project and person.
func TestListQueryMatch(t *testing.T) {
	at := time.Date(2026, 12, 1, 9, 0, 0, 0, time.UTC)
	merged := &Escalation{State: StateMerged, Bypassed: true, Tier: "T2", Project: "Shop/API", Author: "ann", CreatedAt: at}
	open := &Escalation{State: StateInReview, Tier: "T3", Project: "shop/web", Urgent: true, Forged: 1, CreatedAt: at.Add(time.Hour), DecisionDue: at.Add(2 * time.Hour)}
	yes, no := true, false
	for _, tt := range []struct {
		q    ListQuery
		want []*Escalation
	}{
		{ListQuery{State: StateBypassed}, []*Escalation{merged}},
		{ListQuery{State: StateClosed}, []*Escalation{merged}},
		{ListQuery{State: StateOpen}, []*Escalation{open}},
		{ListQuery{State: string(StateInReview), Tier: "T3"}, []*Escalation{open}},
		{ListQuery{Open: &yes}, []*Escalation{open}},
		{ListQuery{Open: &no, Project: "shop/api", Person: "ANN"}, []*Escalation{merged}},
		{ListQuery{Flag: FlagUrgent}, []*Escalation{open}},
		{ListQuery{Flag: FlagForged}, []*Escalation{open}},
		{ListQuery{Flag: FlagOverdue, Now: at.Add(90 * time.Minute)}, nil},
		{ListQuery{Flag: FlagOverdue, Now: at.Add(3 * time.Hour)}, []*Escalation{open}},
		{ListQuery{Since: at.Add(time.Hour)}, []*Escalation{open}},
		{ListQuery{Until: at.Add(time.Hour)}, []*Escalation{merged}},
		{ListQuery{Since: at, Until: at.Add(time.Hour + 1)}, []*Escalation{merged, open}},
	} {
		var got []*Escalation
		for _, e := range []*Escalation{merged, open} {
			if tt.q.Match(e) {
				got = append(got, e)
			}
		}
		if !slices.Equal(got, tt.want) {
			t.Errorf("%s: %d matches, want %d", tt.q.Key(), len(got), len(tt.want))
		}
	}
	// The key ignores case where matching does, and the page position.
	a := ListQuery{Project: "Shop/API", Person: "Ann", Limit: 5, Cursor: "x"}
	if b := (ListQuery{Project: "shop/api", Person: "ann"}); a.Key() != b.Key() {
		t.Errorf("keys differ: %s, %s", a.Key(), b.Key())
	}
	if a.Key() == (ListQuery{Project: "shop/api"}).Key() {
		t.Error("a person filter does not change the key")
	}
}

// TestMergeRecorded: a merge records who merged and when (as the forge
// says), and for a bypass what the gate still needed; the decision that
// set the gate records it on its last event, and the projection folds
// both from the events alone.
func TestMergeRecorded(t *testing.T) {
	pol := testPolicy(t)
	open := mrIn(action(MROpen), paths("src/auth/login.go"))
	merge := mrIn(action(MRMerge), paths("src/auth/login.go"), func(m *MRInput) {
		m.MR.State = "merged"
		m.MR.MergedBy = policies.User{Username: "mallory"}
		m.MR.MergedAt = t0.Add(30 * time.Second)
	})
	events, esc := history(t, pol, Quota{}, open, merge)
	if esc.MergedBy != "mallory" || !esc.MergedAt.Equal(t0.Add(30*time.Second)) || !esc.Bypassed {
		t.Fatalf("merge: by %q at %s, bypassed %v", esc.MergedBy, esc.MergedAt, esc.Bypassed)
	}
	if want := []string{"threat-model", "0/1 appsec"}; !slices.Equal(esc.MergeMissing, want) {
		t.Errorf("missing at the merge: %q, want %q", esc.MergeMissing, want)
	}
	// The gate as the opening set it: pending on the head, from its event.
	if esc.Gate != StatusPending || esc.GateSHA != "aaa111" || !esc.GateAt.Equal(t0) || esc.GateText == "" {
		t.Errorf("gate: %q %q on %q at %s", esc.Gate, esc.GateText, esc.GateSHA, esc.GateAt)
	}
	var carriers int
	for _, ev := range events {
		if ev.Data.Gate != "" {
			carriers++
		}
	}
	if carriers != 1 {
		t.Errorf("%d events carry a gate status, want 1 (the opening decision's last)", carriers)
	}
	if got := Replay(events); got.Gate != esc.Gate || got.GateAt != esc.GateAt || !slices.Equal(got.MergeMissing, esc.MergeMissing) {
		t.Errorf("Replay differs: %+v", got)
	}
}
