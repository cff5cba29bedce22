package bot_test

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/threatgate/threatgate/bot"
)

// TestReviewCompactionOfAClosedMRThatMergesLater: an approved escalation
// whose MR is closed is "closed for retention" (withdrawn, MR closed), but
// a closed MR can be reopened and merged. After the retention period the
// sweep removes the threat model's text; the MR is then reopened, the
// escalation goes back to approved on the same head (the artifact still
// counts: MissingArtifacts matches kinds only), and the MR merges through
// a green gate, not a bypass. The merge rests on a threat model whose
// text was deleted before the merge happened: the bundle of a merged,
// non-bypassed MR holds no threat model. Either compaction must not touch
// an escalation whose MR can still merge (MR closed but not merged), or a
// reopened escalation must treat removed artifacts as missing.
func TestReviewCompactionOfAClosedMRThatMergesLater(t *testing.T) {
	r := newRig(t)
	ctx := context.Background()
	const keep = 30 * 24 * time.Hour
	path := "internal/auth/session.go"
	mr := func(a bot.MRAction) bot.Input {
		in := mrInput(12, "aaa", r.clock.Now(), path)
		in.MR.Action = a
		return in
	}
	if _, err := r.eng.Handle(ctx, mr(bot.MROpen)); err != nil {
		t.Fatal(err)
	}
	tm := "STRIDE for the session rework: " + strings.Repeat("token fixation is mitigated by rotation on login. ", 10)
	if _, err := r.eng.Handle(ctx, command(t, "slack", "UANN", "/threatgate artifact threat-model "+tm, "ESC-1")); err != nil {
		t.Fatal(err)
	}
	if _, err := r.eng.Handle(ctx, command(t, "slack", "UALICE", "/approve ESC-1 reviewed the threat model", "")); err != nil {
		t.Fatal(err)
	}
	r.clock.Advance(time.Hour)
	if _, err := r.eng.Handle(ctx, mr(bot.MRClose)); err != nil {
		t.Fatal(err)
	}
	esc, _ := r.db.FindEscalation(ctx, "ESC-1")
	if !esc.Retainable() {
		t.Fatalf("closed MR's escalation not retainable: %s / %s", esc.State, esc.MRState)
	}
	r.clock.Advance(keep + time.Hour)
	if n, err := r.eng.Compact(ctx, r.clock.Now(), keep); err != nil || n == 0 {
		t.Fatalf("Compact = %d, %v", n, err)
	}
	r.clock.Advance(time.Hour)
	if _, err := r.eng.Handle(ctx, mr(bot.MRReopen)); err != nil {
		t.Fatal(err)
	}
	r.clock.Advance(time.Hour)
	if _, err := r.eng.Handle(ctx, mr(bot.MRMerge)); err != nil {
		t.Fatal(err)
	}
	esc, _ = r.db.FindEscalation(ctx, "ESC-1")
	if esc.State != bot.StateMerged {
		t.Fatalf("state %s, want merged", esc.State)
	}
	if esc.Bypassed {
		return // the removed artifact did not count: as it should
	}
	for _, a := range esc.Artifacts {
		if a.Kind == "threat-model" && a.Ref == "" {
			t.Errorf("ESC-1 merged through the gate (not a bypass) on the strength of a threat model whose text retention removed at %s, before the MR was reopened and merged", a.Removed.Format(time.RFC3339))
		}
	}
}
