package bot

import (
	"time"

	"github.com/threatgate/threatgate/policies"
)

// Deadline rules, one place for every surface (status, backlog, the card,
// the dashboard, the API) and for the scheduler to come. A deferral pauses
// the clock: a deferred escalation is never overdue, lapsed or handed off.

// Paused reports whether e's deadlines are paused: it is deferred.
func Paused(e *Escalation) bool { return e != nil && e.State == StateDeferred }

// TimeLeft returns how long e has until its decision is due (negative when
// overdue) and whether it has a decision deadline at all.
func TimeLeft(e *Escalation, now time.Time) (time.Duration, bool) {
	if e == nil || e.DecisionDue.IsZero() {
		return 0, false
	}
	return e.DecisionDue.Sub(now), true
}

// Overdue reports whether e waits on people past its decision deadline:
// active, not paused, and due before now.
func Overdue(e *Escalation, now time.Time) bool {
	left, ok := TimeLeft(e, now)
	return ok && left < 0 && e.State.Active() && !Paused(e)
}

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
