package web_test

import (
	"testing"
	"time"

	"github.com/threatgate/threatgate/adapters/web"
	"github.com/threatgate/threatgate/bot"
	"github.com/threatgate/threatgate/policies"
)

// TestAPIApprovalsUseTheEngineRules: the API says whether each approval is
// stale and whether it counts by bot's own rules (it used to re-implement
// "stale", and did not know that an author's or a filer's approval never
// counts).
func TestAPIApprovalsUseTheEngineRules(t *testing.T) {
	pol, err := policies.Load("dash.yaml", []byte(dashPolicy))
	if err != nil {
		t.Fatal(err)
	}
	at := time.Date(2026, 11, 2, 9, 0, 0, 0, time.UTC)
	e := &bot.Escalation{ID: "ESC-1", Tier: "T2", HeadSHA: "bbb", Author: "ann", CommitAuthors: []string{"Bob@Example.com"},
		Manual: true, Filer: "dave",
		Approvals: []bot.Decision{
			{By: "alice", SHA: "bbb", At: at}, // counts
			{By: "alice", SHA: "aaa", At: at}, // an older head: stale
			{By: "bob", SHA: "bbb", At: at},   // wrote a commit: does not count, not stale
			{By: "dave", SHA: "bbb", At: at},  // filed it: does not count
			{By: "alice", SHA: "bbb", Stale: true, At: at},
		}}
	j := web.Convert(e, pol, at)
	want := []struct{ stale, counts bool }{{false, true}, {true, false}, {false, false}, {false, false}, {true, false}}
	for i, a := range j.Approvals {
		if a.Stale != want[i].stale || a.Counts != want[i].counts {
			t.Errorf("approval %d by %s at %s: stale %v counts %v, want %v %v", i, a.By, a.SHA, a.Stale, a.Counts, want[i].stale, want[i].counts)
		}
	}
}
