package bot

import (
	"reflect"
	"testing"
	"time"

	"github.com/threatgate/threatgate/policies"
)

func factsMR() *policies.MergeRequest {
	return &policies.MergeRequest{IID: 4, PathWithNamespace: "shop/api", Title: "docs", Description: "typo",
		TargetBranch: "main", SourceBranch: "fix", Labels: policies.Labels{"b", "a"}, SHA: "1111",
		Author: policies.User{Username: "ann"}, State: "opened"}
}

// TestTierFactsChangeWithWhatThePolicyReads: every field the policy
// reads besides the diff moves the digest; fields it does not read, and
// the order of labels, do not.
func TestTierFactsChangeWithWhatThePolicyReads(t *testing.T) {
	base := TierFacts(factsMR())
	for _, tt := range []struct {
		name   string
		change func(*policies.MergeRequest)
		moves  bool
	}{
		{"title", func(m *policies.MergeRequest) { m.Title = "[security] docs" }, true},
		{"description", func(m *policies.MergeRequest) { m.Description = "rotates the signing key" }, true},
		{"label added", func(m *policies.MergeRequest) { m.Labels = append(m.Labels, "security") }, true},
		{"label removed", func(m *policies.MergeRequest) { m.Labels = m.Labels[:1] }, true},
		{"target branch", func(m *policies.MergeRequest) { m.TargetBranch = "release" }, true},
		{"author", func(m *policies.MergeRequest) { m.Author.Username = "bob" }, true},
		{"labels reordered", func(m *policies.MergeRequest) { m.Labels = policies.Labels{"a", "b"} }, false},
		{"a title and description swapped", func(m *policies.MergeRequest) { m.Title, m.Description = "doc", "stypo" }, true},
		{"state", func(m *policies.MergeRequest) { m.State = "locked" }, false},
		{"source branch", func(m *policies.MergeRequest) { m.SourceBranch = "other" }, false},
		{"head (compared on its own)", func(m *policies.MergeRequest) { m.SHA = "2222" }, false},
		{"updated_at", func(m *policies.MergeRequest) { m.UpdatedAt = time.Now() }, false},
	} {
		t.Run(tt.name, func(t *testing.T) {
			m := factsMR()
			tt.change(m)
			if got := TierFacts(m) != base; got != tt.moves {
				t.Errorf("digest moved = %v, want %v", got, tt.moves)
			}
		})
	}
}

// TestTierFactsCoverEveryField: a field added to policies.MergeRequest
// must be placed here: digested by TierFacts, stood for by the head SHA,
// part of the key, or not read by the policy. Otherwise a policy that
// reads it could tier an MR reconcile never reads again.
func TestTierFactsCoverEveryField(t *testing.T) {
	placed := map[string]string{
		"Title": "facts", "Description": "facts", "TargetBranch": "facts", "Labels": "facts", "Author": "facts",
		"SHA": "head", "Changes": "head",
		"IID": "key", "ProjectID": "key", "PathWithNamespace": "key", "References": "key", "WebURL": "key",
		"ID": "not read", "State": "not read (Classifiable)", "SourceBranch": "not read", "UpdatedAt": "not read",
		"MergedBy": "not read", "MergedAt": "not read",
	}
	typ := reflect.TypeFor[policies.MergeRequest]()
	for i := range typ.NumField() {
		if f := typ.Field(i); placed[f.Name] == "" {
			t.Errorf("policies.MergeRequest.%s is not placed: does the policy read it? If so TierFacts must digest it", f.Name)
		}
	}
}

func TestNeedsClassifying(t *testing.T) {
	rec := Unescalated{Project: "shop/api", IID: 4, SHA: "1111", Facts: "f1", Policy: "p1"}
	old := rec
	old.Policy = "" // written before the policy was kept
	for _, tt := range []struct {
		name               string
		rec                Unescalated
		known              bool
		sha, facts, policy string
		want               bool
	}{
		{"never classified", rec, false, "1111", "f1", "p1", true},
		{"unchanged", rec, true, "1111", "f1", "p1", false},
		{"pushed", rec, true, "2222", "f1", "p1", true},
		{"relabelled", rec, true, "1111", "f2", "p1", true},
		{"head unknown", rec, true, "", "f1", "p1", true},
		{"another policy in force", rec, true, "1111", "f1", "p2", true},
		{"classified under no known policy", old, true, "1111", "f1", "p1", true},
		{"policy in force unknown", rec, true, "1111", "f1", "", true},
	} {
		if got := NeedsClassifying(tt.rec, tt.known, tt.sha, tt.facts, tt.policy); got != tt.want {
			t.Errorf("%s: NeedsClassifying = %v, want %v", tt.name, got, tt.want)
		}
	}
}

func TestClassifiable(t *testing.T) {
	for state, want := range map[string]bool{"opened": true, "locked": true, "": true, "closed": false, "merged": false} {
		if got := Classifiable(state); got != want {
			t.Errorf("Classifiable(%q) = %v, want %v", state, got, want)
		}
	}
}
