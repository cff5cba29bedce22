package bot

import (
	"time"

	"github.com/threatgate/threatgate/policies"
)

// Deadline rules, one place for every surface (status, backlog, the card,
// the digest, App Home, the dashboard, the API) and for the scheduler. A
// deferral pauses the clock from when it began until its end date: while
// it lasts, the time left stands still and the escalation is never
// overdue, lapsed or handed off. Once its end date has passed the clock
// runs again, whether or not the sweep has brought the escalation back
// yet, and the deadlines are those the sweep will set: moved by how long
// the deferral lasted (pauseOf).

// Paused reports whether e is deferred: the sweep neither reminds, hands
// off nor pages for it until the deferral ends. Whether its deadline
// clock stands still now is DeadlineOf's Paused.
func Paused(e *Escalation) bool { return e != nil && e.State == StateDeferred }

// Deadline is where an escalation stands against its decision deadline at
// a moment: every surface shows it through Phrase (or its fields) and
// nothing else, so none can drop the sign or disagree on the amount.
type Deadline struct {
	// Has: the escalation is active and has a decision deadline. When it
	// is false the other fields are zero and Phrase is "no deadline".
	Has bool `json:"has"`
	// Due is when the decision is due, moved by the deferral's pause: for
	// an escalation deferred now, as it will be if it comes back at its
	// deferral's end.
	Due time.Time `json:"due,omitzero"`
	// Left is the time left until Due, signed: negative once the deadline
	// has passed. While Paused it stands still (the time left when the
	// deferral began), so it is not Due minus now.
	Left time.Duration `json:"left"`
	// Overdue: Left is negative and the clock runs (not Paused).
	Overdue bool `json:"overdue"`
	// Paused: the escalation is deferred and its deferral has not ended;
	// Until is when it ends.
	Paused bool      `json:"paused"`
	Until  time.Time `json:"until,omitzero"`
}

// Phrase is the one short way every surface says where a deadline
// stands: "3d 4h left", "overdue by 5d", "paused, 3d left" (or "paused,
// overdue by 1d" for one deferred after its deadline), "no deadline".
func (d Deadline) Phrase() string {
	if !d.Has {
		return "no deadline"
	}
	s := HumanDuration(d.Left) + " left"
	if d.Left < 0 {
		s = "overdue by " + HumanDuration(d.Left)
	}
	if d.Paused {
		return "paused, " + s
	}
	return s
}

// DeadlineOf returns where e stands against its decision deadline at now
// (see Deadline). pol is not consulted for the decision deadline; it is
// taken so that every surface calls the rules with the same arguments.
func DeadlineOf(e *Escalation, pol *policies.Policy, now time.Time) Deadline {
	_ = pol
	if e == nil || e.DecisionDue.IsZero() || !e.State.Active() {
		return Deadline{}
	}
	shift, paused := pauseOf(e, now)
	d := Deadline{Has: true, Due: e.DecisionDue.Add(shift), Paused: paused}
	d.Left = d.Due.Sub(now)
	if paused {
		d.Until = e.DeferredUntil
		d.Left = e.DecisionDue.Sub(e.DeferredAt)
		if e.DeferredAt.IsZero() {
			d.Left = e.DecisionDue.Sub(now) // when the pause began is not recorded
		}
		if !e.DeferredUntil.IsZero() && !e.DeferredAt.IsZero() {
			d.Due = e.DecisionDue.Add(e.DeferredUntil.Sub(e.DeferredAt))
		}
	}
	d.Overdue = !paused && d.Left < 0
	return d
}

// pauseOf returns how far e's deferral moves its deadlines as of now, and
// whether the clock stands still now: the deferral began at DeferredAt
// and pauses the clock until now or its end date, whichever comes first.
// Without a recorded start (escalations deferred before DeferredAt was
// kept) nothing moves. Not deferred: nothing moves, nothing is paused.
func pauseOf(e *Escalation, now time.Time) (time.Duration, bool) {
	if e == nil || e.State != StateDeferred {
		return 0, false
	}
	end := now
	paused := true
	if !e.DeferredUntil.IsZero() && !now.Before(e.DeferredUntil) {
		end, paused = e.DeferredUntil, false
	}
	if e.DeferredAt.IsZero() || !end.After(e.DeferredAt) {
		return 0, paused
	}
	return end.Sub(e.DeferredAt), paused
}

// TimeLeft returns how long e has until its decision is due (negative when
// overdue; standing still while paused) and whether it has a decision
// deadline at all: DeadlineOf's Left and Has.
func TimeLeft(e *Escalation, now time.Time) (time.Duration, bool) {
	d := DeadlineOf(e, nil, now)
	return d.Left, d.Has
}

// Overdue reports whether e waits on people past its decision deadline:
// active, its clock running, and due before now (DeadlineOf's Overdue).
func Overdue(e *Escalation, now time.Time) bool { return DeadlineOf(e, nil, now).Overdue }

// FirstResponded reports whether a reviewer has acted on e: a decision, a
// dissent, an action item or a residual-risk assessment by someone with a
// part in its tier (its approving groups and their backups, its reviewing
// groups, the arbiters and those who may re-tier) who neither wrote the
// change nor filed it. A bystander's note is not a response: it does not
// hold off a handoff.
func FirstResponded(e *Escalation, pol *policies.Policy) bool {
	if e == nil {
		return false
	}
	authors := e.Authors()
	reviewer := reviewerOf(e, pol)
	other := func(by string) bool {
		var pr *policies.Person
		if pol != nil {
			pr = pol.Person("id", by)
		}
		return by != "" && by != e.Filer && !wrote(pr, authors) && reviewer(by)
	}
	for _, ds := range [][]Decision{e.Approvals, e.Rejections} {
		for _, x := range ds {
			if other(x.By) {
				return true
			}
		}
	}
	for _, ns := range [][]Note{e.Dissents, e.Actions} {
		for _, n := range ns {
			if other(n.By) {
				return true
			}
		}
	}
	return e.Risk != nil && other(e.Risk.By)
}

// PastFirstResponse reports whether e's first-response deadline passed
// with nobody responding: active, not paused.
func PastFirstResponse(e *Escalation, pol *policies.Policy, now time.Time) bool {
	return e != nil && e.State.Active() && !Paused(e) && !e.FirstResponseDue.IsZero() &&
		!now.Before(e.FirstResponseDue) && !FirstResponded(e, pol)
}

// Lapsed reports whether a deadline of e has lapsed: its first response or
// its decision.
func Lapsed(e *Escalation, pol *policies.Policy, now time.Time) bool {
	return Overdue(e, now) || PastFirstResponse(e, pol, now)
}

// HandoffDue reports whether e should go to the backups of its approving
// groups: its tier's handoff_after has passed since it opened with nobody
// responding (active, not paused).
func HandoffDue(e *Escalation, pol *policies.Policy, now time.Time) bool {
	if e == nil || !e.State.Active() || Paused(e) || e.State == StateIntake {
		return false
	}
	if pol == nil {
		return false
	}
	t := pol.Tier(e.Tier)
	if t == nil || t.HandoffAfter <= 0 {
		return false
	}
	return !now.Before(e.CreatedAt.Add(t.HandoffAfter)) && !FirstResponded(e, pol)
}

// reviewerOf returns whether a person has a part in e's tier: a member of
// its approving groups or their backups, of its reviewing groups, an
// arbiter, or someone who may re-tier. Without a policy, or a tier it
// knows, anyone does.
func reviewerOf(e *Escalation, pol *policies.Policy) func(person string) bool {
	if pol == nil {
		return func(string) bool { return true }
	}
	t := pol.Tier(e.Tier)
	if t == nil {
		return func(string) bool { return true }
	}
	var groups []string
	for _, a := range t.Approvals {
		groups = append(groups, a.Group)
		if g := pol.Groups[a.Group]; g != nil {
			groups = append(groups, g.Backups...)
		}
	}
	groups = append(groups, t.Review...)
	groups = append(groups, pol.Authority.Arbiter...)
	groups = append(groups, pol.Authority.Retier...)
	return func(person string) bool { return pol.InAny(person, groups) }
}
