package bot

import (
	"strings"
	"testing"
	"time"
)

func TestCommandFreshAndSeenHead(t *testing.T) {
	now := t0
	for _, tt := range []struct {
		v                Verb
		created, arrived time.Time
		err              string
	}{
		{VerbApprove, time.Time{}, now, "no time"},
		{VerbApprove, now.Add(2 * time.Minute), now, "from the future"},
		{VerbApprove, now.Add(30 * time.Second), now, ""},
		{VerbRetier, now.Add(-20 * time.Minute), now, "more than 15m0s"},
		{VerbDissent, now.Add(-20 * time.Minute), now, ""}, // not head-bound
	} {
		err := CommandFresh(tt.v, tt.created, tt.arrived, now)
		if (err == nil) != (tt.err == "") || err != nil && !strings.Contains(err.Error(), tt.err) {
			t.Errorf("%s created %s: err = %v, want %q", tt.v, tt.created.Sub(now), err, tt.err)
		}
	}
	vs := []HeadVersion{{1, "aaa", t0}, {2, "bbb", t0.Add(time.Minute)}, {3, "ccc", t0.Add(time.Minute)}, {4, "ddd", t0.Add(time.Hour)}}
	if h, ok := SeenHead(vs, t0.Add(2*time.Minute)); !ok || h != "ccc" {
		t.Errorf("SeenHead = %q %v, want ccc (the newest before, ties to the higher id)", h, ok)
	}
	if _, ok := SeenHead(vs, t0.Add(-time.Second)); ok {
		t.Error("SeenHead found a head before any version")
	}
	c, _ := ParseCommand("/escalate other/proj!5 x")
	if err := ScopeOfComment(&c, "shop/api", 9, ""); err == nil {
		t.Error("a comment escalated another MR")
	}
	c, _ = ParseCommand("/escalate Shop/API!9 x")
	if err := ScopeOfComment(&c, "shop/api", 9, ""); err != nil {
		t.Errorf("own MR in another case: %v", err)
	}
	c, _ = ParseCommand("/approve ESC-2")
	if err := ScopeOfComment(&c, "shop/api", 9, "ESC-1"); err == nil {
		t.Error("a comment approved another MR's escalation")
	}
}

// TestVerbTableAccessors: what surfaces read of the verb table agrees with
// what decide enforces.
func TestVerbTableAccessors(t *testing.T) {
	vs := Verbs()
	if len(vs) != len(verbs) || vs[0].Verb != VerbEscalate {
		t.Fatalf("Verbs() = %d entries", len(vs))
	}
	for _, tt := range []struct {
		v  Verb
		st State
		ok bool
	}{
		{VerbApprove, StateInReview, true}, {VerbApprove, StateMerged, false}, {VerbApprove, StateIntake, false},
		{VerbDissent, StateMerged, true}, {VerbWithdraw, StateIntake, true}, {VerbEscalate, StateMerged, true}, {"nope", StateInReview, false},
	} {
		if got := AllowedIn(tt.v, tt.st); got != tt.ok {
			t.Errorf("AllowedIn(%s, %s) = %v, want %v", tt.v, tt.st, got, tt.ok)
		}
	}
	for _, v := range vs {
		if v.HeadBound != HeadBound(v.Verb) {
			t.Errorf("%s: HeadBound disagrees", v.Verb)
		}
	}
}
