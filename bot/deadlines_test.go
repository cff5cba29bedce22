package bot

import (
	"strings"
	"testing"
	"time"
)

// TestDeadlineRules: overdue, paused, first response, lapse and handoff,
// and the texts of status and backlog, from one set of rules: a deferred
// escalation past its decision date is paused, never "overdue".
func TestDeadlineRules(t *testing.T) {
	pol := testPolicy(t)
	due := t0.Add(48 * time.Hour)
	e := &Escalation{ID: "ESC-1", Project: "g/p", MRIID: 1, Tier: "T2", State: StateInReview, Author: "ann", Filer: "erin", Manual: true,
		CreatedAt: t0, FirstResponseDue: t0.Add(4 * time.Hour), DecisionDue: due}
	late := due.Add(5 * 24 * time.Hour)
	if !Overdue(e, late) || Overdue(e, due.Add(-time.Minute)) || Paused(e) {
		t.Errorf("in review: overdue %v/%v, paused %v", Overdue(e, late), Overdue(e, due.Add(-time.Minute)), Paused(e))
	}
	if !PastFirstResponse(e, pol, t0.Add(5*time.Hour)) || !Lapsed(e, pol, t0.Add(5*time.Hour)) {
		t.Error("no response after the first-response deadline is not a lapse")
	}
	// The author's and the filer's own words are no response.
	e.Dissents = []Note{{By: "ann"}, {By: "erin"}}
	if FirstResponded(e, pol) {
		t.Error("the author's or filer's dissent counted as a first response")
	}
	e.Dissents = append(e.Dissents, Note{By: "bob"})
	if !FirstResponded(e, pol) || PastFirstResponse(e, pol, t0.Add(5*time.Hour)) {
		t.Error("bob's dissent is a first response")
	}

	h := pol.Tier("T2").HandoffAfter
	fresh := &Escalation{ID: "ESC-2", Tier: "T2", State: StateAwaitingArtifacts, CreatedAt: t0}
	if h <= 0 || HandoffDue(fresh, pol, t0.Add(h-time.Minute)) || !HandoffDue(fresh, pol, t0.Add(h)) {
		t.Errorf("handoff after %s: before %v, at %v", h, HandoffDue(fresh, pol, t0.Add(h-time.Minute)), HandoffDue(fresh, pol, t0.Add(h)))
	}
	if HandoffDue(e, pol, t0.Add(h)) {
		t.Error("an escalation someone responded to is handed off")
	}

	d := *e
	d.State, d.DeferredUntil = StateDeferred, due.Add(-time.Hour)
	if Overdue(&d, late) || Lapsed(&d, pol, late) || HandoffDue(&d, pol, late) || !Paused(&d) {
		t.Error("a deferred escalation is late")
	}
	status := (&decision{pol: pol, now: late, esc: &d}).statusText()
	backlog := BacklogText([]*Escalation{&d}, late)
	if strings.Contains(status, "overdue") || !strings.Contains(status, "paused while deferred") {
		t.Errorf("status of a deferred escalation: %q", status)
	}
	if strings.Contains(backlog, "OVERDUE") || !strings.Contains(backlog, "paused until") {
		t.Errorf("backlog of a deferred escalation: %q", backlog)
	}
	if b := BacklogText([]*Escalation{e}, late); !strings.Contains(b, "OVERDUE by 5d") {
		t.Errorf("backlog of an overdue escalation: %q", b)
	}
}
