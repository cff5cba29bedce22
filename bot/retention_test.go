package bot

import (
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/threatgate/threatgate/policies"
)

func TestCompactEvent(t *testing.T) {
	long := strings.Repeat("a threat model paragraph. ", 20)
	sigs := []policies.Fired{{ID: "auth", Weight: 5, Evidence: []string{"src/auth/x.go"}}}
	for _, tt := range []struct {
		name    string
		ev      Event
		changed bool
		ref     string
	}{
		{"evidence", Event{Kind: EventOpened, Data: EventData{Signals: sigs, Title: "t"}}, true, ""},
		{"long text artifact", Event{Kind: EventArtifactAdded, Data: EventData{Artifact: "threat-model", Ref: long}}, true, ""},
		{"long link artifact", Event{Kind: EventArtifactAdded, Data: EventData{Artifact: "dfd", Ref: "https://wiki.example.com/" + strings.Repeat("x", 400)}}, false, "https://wiki.example.com/" + strings.Repeat("x", 400)},
		{"short text artifact", Event{Kind: EventArtifactAdded, Data: EventData{Artifact: "rollback", Ref: "revert the MR"}}, false, "revert the MR"},
		{"link then text is text", Event{Kind: EventArtifactAdded, Data: EventData{Artifact: "dfd", Ref: "https://x.example.com/ " + long}}, true, ""},
		{"approval", Event{Kind: EventApproved, Data: EventData{Text: long}}, false, ""},
		{"a rationale is never compacted", Event{Kind: EventRetiered, Data: EventData{Text: long}}, false, ""},
	} {
		t.Run(tt.name, func(t *testing.T) {
			got, changed := CompactEvent(tt.ev)
			if changed != tt.changed {
				t.Fatalf("changed = %v, want %v", changed, tt.changed)
			}
			if got.Data.Ref != tt.ref {
				t.Errorf("ref = %q, want %q", got.Data.Ref, tt.ref)
			}
			if got.Data.Text != tt.ev.Data.Text || got.Data.Title != tt.ev.Data.Title {
				t.Error("compaction removed a rationale or a title")
			}
			for _, s := range got.Data.Signals {
				if s.Evidence != nil {
					t.Errorf("signal %s kept its evidence", s.ID)
				}
			}
		})
	}
	if sigs[0].Evidence == nil {
		t.Error("CompactEvent modified its input's signals")
	}
}

func TestRetentionDue(t *testing.T) {
	now := time.Date(2027, 1, 1, 0, 0, 0, 0, time.UTC)
	keep := 30 * 24 * time.Hour
	old := now.Add(-keep)
	for _, tt := range []struct {
		name string
		e    Escalation
		want bool
	}{
		{"merged long ago", Escalation{State: StateMerged, Version: 5, UpdatedAt: old}, true},
		{"merged recently", Escalation{State: StateMerged, Version: 5, UpdatedAt: old.Add(time.Second)}, false},
		{"compacted since", Escalation{State: StateMerged, Version: 5, CompactedVersion: 5, UpdatedAt: old}, false},
		{"events after compaction", Escalation{State: StateMerged, Version: 6, CompactedVersion: 5, UpdatedAt: old}, true},
		{"rejected, MR still open", Escalation{State: StateRejected, MRState: "opened", Version: 5, UpdatedAt: old}, false},
		{"rejected, MR closed", Escalation{State: StateRejected, MRState: "closed", Version: 5, UpdatedAt: old}, true},
		{"approved, MR open", Escalation{State: StateApproved, MRState: "opened", Version: 5, UpdatedAt: old}, false},
		{"in review, MR closed", Escalation{State: StateInReview, MRState: "closed", Version: 5, UpdatedAt: old}, false},
		{"deferred", Escalation{State: StateDeferred, MRState: "closed", Version: 5, UpdatedAt: old}, false},
	} {
		if got := tt.e.RetentionDue(now, keep); got != tt.want {
			t.Errorf("%s: RetentionDue = %v, want %v", tt.name, got, tt.want)
		}
	}
	e := Escalation{State: StateMerged, Version: 5, UpdatedAt: old}
	if e.RetentionDue(now, 0) {
		t.Error("retention 0 compacts")
	}
}

func TestSplitJoinBulk(t *testing.T) {
	long := strings.Repeat("a threat model paragraph. ", 20)
	for _, ev := range []Event{
		{Kind: EventOpened, Data: EventData{Signals: []policies.Fired{{ID: "a", Evidence: []string{"x.go"}}, {ID: "b"}, {ID: "c", Evidence: []string{"y.go", "z.go"}}}}},
		{Kind: EventArtifactAdded, Data: EventData{Artifact: "threat-model", Ref: long}},
		{Kind: EventApproved, Data: EventData{Text: long}},
	} {
		s, b := SplitBulk(ev)
		if got := JoinBulk(s, b); !reflect.DeepEqual(got, ev) {
			t.Errorf("JoinBulk(SplitBulk(%v)) = %+v", ev.Kind, got)
		}
		if ev.Kind == EventApproved && b != nil {
			t.Error("an approval has a bulky payload")
		}
	}
}
