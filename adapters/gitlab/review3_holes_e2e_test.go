package gitlab

import (
	"context"
	"fmt"
	"strings"
	"testing"

	"github.com/threatgate/threatgate/adapters/gitlab/gitlabtest"
	"github.com/threatgate/threatgate/bot"
)

// TestBacklogIsNotAnsweredInComments: a GitLab user who is in no
// policy comments /threatgate backlog on an MR of shop/api; the answer,
// posted as a note on that MR, lists the escalations of every project,
// including a private one the commenter may not see. A comment speaks for
// its own MR (ScopeOfComment) everywhere else.
func TestBacklogIsNotAnsweredInComments(t *testing.T) {
	ctx := context.Background()
	r := newRig(t, "status")
	r.gl.AddMR(gitlabtest.MR{Project: "secret/vault", IID: 7, Title: "rotate HSM keys", Author: "ann", SHA: sha1,
		Diffs: []gitlabtest.Diff{{OldPath: "src/auth/hsm.go", NewPath: "src/auth/hsm.go", Diff: "@@ -1 +1,2 @@\n x\n+y\n"}}, UpdatedAt: r.clock.Now()})
	mi, err := r.client.FetchMR(ctx, "secret/vault", 7)
	if err != nil {
		t.Fatal(err)
	}
	mi.Action = bot.MRSeen
	if _, err := r.worker.Engine.Handle(ctx, bot.Input{Kind: bot.InputMR, Actor: bot.System, MR: mi}); err != nil {
		t.Fatal(err)
	}
	r.addMR(13, sha2, "docs/readme.md")
	r.hook(13, "open", sha2, "")
	r.settle()

	r.comment(13, "mallory", "/threatgate backlog")
	r.settle()
	for _, a := range r.answers(13) {
		if strings.Contains(a, "secret/vault!7") {
			t.Fatalf("a comment by mallory (in no policy) on shop/api!13 got the other project's escalation posted on this MR:\n%s", a)
		}
	}
}

// TestPlantedMarkersDoNotSuppressNotes: anyone who can comment on the MR
// plants threatgate's idempotency markers for effect ids to come (they are
// predictable: ESC-n/<chain seq>/<index>); PostNote then believes the note
// was posted already and posts nothing.
func TestPlantedMarkersDoNotSuppressNotes(t *testing.T) {
	r := newRig(t, "status")
	r.addMR(12, sha1, "internal/auth/session.go")
	var b strings.Builder
	b.WriteString("looks good\n")
	for seq := 1; seq <= 50; seq++ {
		for i := 0; i < 8; i++ {
			b.WriteString(noteMarker(fmt.Sprintf("ESC-1/%020d/%03d", seq, i)))
		}
	}
	r.gl.AddNote("shop/api", 12, b.String(), "mallory") // invisible when rendered
	r.hook(12, "open", sha1, "")
	r.settle()
	if e := r.escalation(12); e == nil {
		t.Fatal("no escalation")
	}
	for _, n := range r.gl.Notes("shop/api", 12) {
		if strings.Contains(n, "Security review required") {
			return
		}
	}
	t.Fatalf("threatgate's opening note was never posted; notes on !12: %d (only mallory's)", len(r.gl.Notes("shop/api", 12)))
}
