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

	// Deferred, and the deferral not over: paused, never late.
	d := *e
	d.State, d.DeferredAt, d.DeferredUntil = StateDeferred, due.Add(-2*time.Hour), late.Add(time.Hour)
	if Overdue(&d, late) || Lapsed(&d, pol, late) || HandoffDue(&d, pol, late) || !Paused(&d) {
		t.Error("a deferred escalation is late")
	}
	status := (&decision{pol: pol, now: late, esc: &d}).statusText()
	backlog := BacklogText([]*Escalation{&d}, pol, late)
	if strings.Contains(status, "overdue") || !strings.Contains(status, "(paused, 2h left)") {
		t.Errorf("status of a deferred escalation: %q", status)
	}
	if strings.Contains(backlog, "overdue") || !strings.Contains(backlog, "paused, 2h left (deferred until") {
		t.Errorf("backlog of a deferred escalation: %q", backlog)
	}
	if b := BacklogText([]*Escalation{e}, pol, late); !strings.Contains(b, "overdue by 5d") {
		t.Errorf("backlog of an overdue escalation: %q", b)
	}
	// Deferred past the deferral's end (the sweep has not brought it back
	// yet): the clock runs again, so it is overdue, by the same amount on
	// status and backlog (TestDeadlineEverySurface covers the others).
	d.DeferredAt, d.DeferredUntil = time.Time{}, due.Add(-time.Hour)
	status = (&decision{pol: pol, now: late, esc: &d}).statusText()
	backlog = BacklogText([]*Escalation{&d}, pol, late)
	if !Overdue(&d, late) || !strings.Contains(status, "(overdue by 5d)") || !strings.Contains(backlog, "overdue by 5d") {
		t.Errorf("deferred past its end: overdue %v, status %q, backlog %q", Overdue(&d, late), status, backlog)
	}
}

// TestDeadlineOf: the time left, signed, for each state of the clock, and
// the one phrase for it; a deferral pauses the clock from its start to
// its end date, and the deadline the sweep sets when it ends it is the
// one DeadlineOf showed.
func TestDeadlineOf(t *testing.T) {
	due := t0.Add(48 * time.Hour)
	active := func(st State) *Escalation {
		return &Escalation{ID: "ESC-1", Tier: "T2", State: st, CreatedAt: t0, DecisionDue: due}
	}
	deferred := func(at, until time.Time) *Escalation {
		e := active(StateDeferred)
		e.Resume, e.DeferredAt, e.DeferredUntil = StateInReview, at, until
		return e
	}
	day := 24 * time.Hour
	for _, tt := range []struct {
		name    string
		e       *Escalation
		now     time.Time
		has     bool
		due     time.Time
		left    time.Duration
		overdue bool
		paused  bool
		phrase  string
	}{
		{"in time", active(StateInReview), t0.Add(20 * time.Hour), true, due, 28 * time.Hour, false, false, "1d 4h left"},
		{"at the deadline", active(StateInReview), due, true, due, 0, false, false, "<1m left"},
		{"overdue", active(StateAwaitingArtifacts), due.Add(5 * day), true, due, -5 * day, true, false, "overdue by 5d"},
		{"decided", active(StateApproved), due.Add(5 * day), false, time.Time{}, 0, false, false, "no deadline"},
		{"no deadline", &Escalation{State: StateInReview}, due, false, time.Time{}, 0, false, false, "no deadline"},
		// Deferred a day in for 3 days: 1d left stands still; due 3 days later.
		{"deferred", deferred(t0.Add(day), t0.Add(4*day)), t0.Add(3 * day), true, due.Add(3 * day), day, false, true, "paused, 1d left"},
		{"deferred long after its deadline", deferred(t0.Add(day), t0.Add(9*day)), t0.Add(8 * day), true, due.Add(8 * day), day, false, true, "paused, 1d left"},
		// Deferred after the deadline: the time left is negative, paused.
		{"deferred when overdue", deferred(due.Add(day), due.Add(3*day)), due.Add(2 * day), true, due.Add(2 * day), -day, false, true, "paused, overdue by 1d"},
		// Past the deferral's end: the clock runs from its end date.
		{"past the deferral's end", deferred(t0.Add(day), t0.Add(4*day)), t0.Add(10 * day), true, due.Add(3 * day), -5 * day, true, false, "overdue by 5d"},
		{"past the end, in time", deferred(t0.Add(day), t0.Add(4*day)), t0.Add(4*day + 12*time.Hour), true, due.Add(3 * day), 12 * time.Hour, false, false, "12h left"},
		// Deferred before its start was recorded: nothing moves.
		{"deferred, no start", deferred(time.Time{}, due.Add(10*day)), due.Add(5 * day), true, due, -5 * day, false, true, "paused, overdue by 5d"},
		{"past the end, no start", deferred(time.Time{}, due.Add(time.Hour)), due.Add(5 * day), true, due, -5 * day, true, false, "overdue by 5d"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			d := DeadlineOf(tt.e, nil, tt.now)
			if d.Has != tt.has || !d.Due.Equal(tt.due) || d.Left != tt.left || d.Overdue != tt.overdue || d.Paused != tt.paused || d.Phrase() != tt.phrase {
				t.Errorf("DeadlineOf = %+v %q, want has %v due %v left %v overdue %v paused %v %q", d, d.Phrase(), tt.has, tt.due, tt.left, tt.overdue, tt.paused, tt.phrase)
			}
			if left, ok := TimeLeft(tt.e, tt.now); left != d.Left || ok != d.Has || Overdue(tt.e, tt.now) != d.Overdue {
				t.Errorf("TimeLeft %v %v, Overdue %v disagree with DeadlineOf", left, ok, Overdue(tt.e, tt.now))
			}
		})
	}

	// The sweep ends a deferral late (it was down): the deadline it sets
	// is the one shown meanwhile, not moved by the sweep's lateness.
	pol := testPolicy(t)
	e := deferred(t0.Add(day), t0.Add(4*day))
	e.Artifacts = []Artifact{{Kind: "threat-model", By: "ann"}}
	late := t0.Add(10 * day)
	data := (&decision{pol: pol, now: late, esc: e}).resumeData()
	if want := DeadlineOf(e, pol, late).Due; !data.DecisionDue.Equal(want) {
		t.Errorf("resumed late: decision due %v, want %v (as shown while it waited)", data.DecisionDue, want)
	}
	// Ended early (a tier that cannot be deferred): paused until now.
	early := t0.Add(2 * day)
	if data := (&decision{pol: pol, now: early, esc: e}).resumeData(); !data.DecisionDue.Equal(due.Add(day)) {
		t.Errorf("resumed early: decision due %v, want %v", data.DecisionDue, due.Add(day))
	}
}
