package bot

import (
	"slices"

	"github.com/threatgate/threatgate/policies"
)

// Who an escalation waits on, one rule for every surface (status, backlog,
// the card, the digest, App Home, the dashboard, the API) and for the
// sweep's reminders. Waiting (matrix.go) is narrower: the approvers whose
// approval would still count, which the store indexes.

// WaitingOn names the people e waits on now. While e is active it always
// names someone; it is empty only once e is decided, withdrawn or merged.
//
//   - intake: the filer, who must answer it (the MR's author when there is
//     no filer);
//   - awaiting artifacts: those asked for them (AskedOf: the MR's author,
//     the filer); when neither is known, the tier's approvers, who need the
//     artifacts and can chase them;
//   - in review: the approvers whose approval would still count (Waiting:
//     also those who may accept a residual risk above the ceiling); when the
//     matrix is full but the risk score waits for validation, the risk
//     validators who neither scored it nor wrote the change;
//   - disputed: the arbiters who neither wrote the change nor took part in
//     the dispute. With no such arbiter (authority.arbiter empty, or every
//     arbiter a party) nobody can settle it by a decision: it can only be
//     re-tiered or withdrawn, so it waits on authority.retier;
//   - deferred: those it will wait on when the deferral ends (the state it
//     will come back to).
//
// Whoever a step names is never an author of the change, except the
// owners of an intake or of missing artifacts. When a step
// names nobody (its groups are empty or all wrote the change), the
// escalation waits on the backups of its approving groups, then on
// authority.retier, then on its approvers whoever they are, and, with a
// tier the policy no longer has, on authority.retier (a re-tier is what
// it needs). Only with none of them at all is the list empty.
func WaitingOn(e *Escalation, pol *policies.Policy) []string {
	if e == nil || pol == nil || !e.State.Active() {
		return nil
	}
	w := waitingFor(e, pol)
	if w.names(waitingFirst(e, pol, &w)...); len(w.out) > 0 {
		return w.out
	}
	// Fallbacks: nobody in the step's own list is left.
	w.owners = false
	t := pol.Tier(e.Tier)
	if t != nil {
		var backups []string
		for _, g := range approvalGroups(t) {
			if grp := pol.Groups[g]; grp != nil {
				backups = append(backups, grp.Backups...)
			}
		}
		w.names(members(pol, backups)...)
	}
	if len(w.out) == 0 {
		w.names(members(pol, pol.Authority.Retier)...)
	}
	if len(w.out) == 0 && t != nil {
		w.out = append(w.out, members(pol, approvalGroups(t))...) // whoever they are
	}
	return w.out
}

// waitingFirst is the step's own list for e's state (see WaitingOn); a
// deferred escalation is asked as the state it will come back to.
func waitingFirst(e *Escalation, pol *policies.Policy, w *waitList) []string {
	state := e.State
	if state == StateDeferred {
		state = (&decision{pol: pol, esc: e}).target()
		if !state.Active() || state == StateDeferred {
			state = StateInReview
		}
	}
	t := pol.Tier(e.Tier)
	switch state {
	case StateIntake:
		w.owners = true
		if e.Filer != "" {
			return []string{e.Filer}
		}
		return AskedOf(e, pol)
	case StateAwaitingArtifacts:
		if who := AskedOf(e, pol); len(who) > 0 {
			w.owners = true // the author owes them: not left out as an author
			return who
		}
		if t != nil {
			return members(pol, approvalGroups(t))
		}
	case StateInReview:
		in := *e
		in.State = StateInReview
		if who := Waiting(&in, pol); len(who) > 0 {
			return who
		}
		if r := RiskOf(e, pol); r != nil && NeedsRiskValidation(pol) && !RiskValidated(e, pol) {
			w.not(r.By)
			return members(pol, pol.Authority.RiskValidators)
		}
		if t != nil {
			return members(pol, approvalGroups(t))
		}
	case StateDisputed:
		if t != nil {
			d := &decision{pol: pol, esc: e}
			for i, x := range slices.Concat(e.Approvals, e.Rejections) {
				if d.counts(e, t, x, i < len(e.Approvals)) {
					w.not(x.By) // a party cannot settle it (mayArbitrate)
				}
			}
		}
		return members(pol, pol.Authority.Arbiter)
	}
	return nil
}

// waitList gathers people in order, once each, leaving out the authors of
// the change and anyone set aside with not.
type waitList struct {
	pol     *policies.Policy
	authors []string
	skip    []string
	out     []string
	owners  bool // the people named owe something: authors are not left out
}

func waitingFor(e *Escalation, pol *policies.Policy) waitList {
	return waitList{pol: pol, authors: e.Authors()}
}

func (w *waitList) not(person string) { w.skip = append(w.skip, person) }

func (w *waitList) names(people ...string) {
	for _, p := range people {
		if p == "" || slices.Contains(w.out, p) || slices.Contains(w.skip, p) {
			continue
		}
		if pr := w.pol.Person("id", p); !w.owners && pr != nil && wrote(pr, w.authors) {
			continue
		}
		w.out = append(w.out, p)
	}
}

// members lists the members of groups, in order, once each.
func members(pol *policies.Policy, groups []string) []string {
	var out []string
	for _, g := range groups {
		if grp := pol.Groups[g]; grp != nil {
			for _, m := range grp.Members {
				if !slices.Contains(out, m) {
					out = append(out, m)
				}
			}
		}
	}
	return out
}

// HoldingGroups names the groups e waits on, given waiting (WaitingOn):
// in review, the groups of its approvals matrix that someone it waits on
// may approve for; disputed, the arbiters' groups. The digest's and the
// dashboard's bottlenecks use it.
func HoldingGroups(e *Escalation, pol *policies.Policy, waiting []string) []string {
	if e == nil || pol == nil {
		return nil
	}
	var out []string
	switch e.State {
	case StateInReview:
		t := pol.Tier(e.Tier)
		if t == nil {
			return nil
		}
		for _, row := range t.Approvals {
			if !slices.Contains(out, row.Group) &&
				slices.ContainsFunc(waiting, func(p string) bool { return pol.MayStandIn(p, row.Group) }) {
				out = append(out, row.Group)
			}
		}
	case StateDisputed:
		for _, g := range pol.Authority.Arbiter {
			if !slices.Contains(out, g) {
				out = append(out, g)
			}
		}
	}
	return out
}
