package gitlab

import (
	"slices"
	"testing"
	"time"

	"github.com/threatgate/threatgate/bot"
)

// TestMergeRecordsWhoMerged: an unapproved merge that GitLab reports with
// its merge user and time is recorded with both (read back through the
// API, never from the hook), with what the gate still needed, and the
// gate's last status stays as threatgate set it.
func TestMergeRecordsWhoMerged(t *testing.T) {
	r := newRig(t, "status")
	r.addMR(9, sha1, "auth/a.go")
	r.hook(9, "open", sha1, "")
	r.settle()
	opened := r.escalation(9)
	if opened.Gate != bot.StatusPending || opened.GateSHA != sha1 {
		t.Fatalf("gate after opening: %q on %q", opened.Gate, opened.GateSHA)
	}
	r.clock.Advance(time.Minute)
	r.gl.SetMerged("shop/api", 9, "mallory")
	r.hook(9, "merge", sha1, "")
	r.settle()
	e := r.escalation(9)
	if e.State != bot.StateMerged || !e.Bypassed || e.MergedBy != "mallory" || !e.MergedAt.Equal(r.clock.Now().Truncate(time.Second)) {
		t.Fatalf("after the merge: %s bypassed=%v by %q at %s (now %s)", e.State, e.Bypassed, e.MergedBy, e.MergedAt, r.clock.Now())
	}
	if want := []string{"threat-model", "0/1 appsec"}; !slices.Equal(e.MergeMissing, want) {
		t.Errorf("missing at the merge: %q, want %q", e.MergeMissing, want)
	}
	if e.Gate != bot.StatusPending || !e.GateAt.Equal(opened.GateAt) {
		t.Errorf("gate after the merge: %q at %s, want pending as set at %s", e.Gate, e.GateAt, opened.GateAt)
	}
}
