package bot

import (
	"slices"

	"github.com/threatgate/threatgate/policies"
)

// countable returns the approvals that count for e now: not stale, for the
// head (when the tier resets on push), and not by an author.
func (d *decision) countable(e *Escalation, t *policies.Tier) []Decision {
	var out []Decision
	for _, a := range e.Approvals {
		if !d.counts(e, t, a, true) {
			continue
		}
		if !slices.ContainsFunc(out, func(b Decision) bool { return b.By == a.By }) {
			out = append(out, a)
		}
	}
	return out
}

// assign matches approvers to the matrix's slots (one slot per person) so
// that as many slots as possible are filled, and returns how many slots of
// each group are filled.
func (d *decision) assign(e *Escalation, t *policies.Tier) map[string]int {
	var slots []string // group of each slot
	for _, a := range t.Approvals {
		for range a.Count {
			slots = append(slots, a.Group)
		}
	}
	people := d.countable(e, t)
	owner := make([]int, len(slots)) // slot -> person index+1
	var try func(p int, seen []bool) bool
	try = func(p int, seen []bool) bool {
		for s, g := range slots {
			if seen[s] || !d.pol.MayStandIn(people[p].By, g) {
				continue
			}
			seen[s] = true
			if owner[s] == 0 || try(owner[s]-1, seen) {
				owner[s] = p + 1
				return true
			}
		}
		return false
	}
	for p := range people {
		try(p, make([]bool, len(slots)))
	}
	filled := map[string]int{}
	for s, o := range owner {
		if o != 0 {
			filled[slots[s]]++
		}
	}
	return filled
}

func (d *decision) filledFor(e *Escalation, t *policies.Tier) map[string]int { return d.assign(e, t) }

func (d *decision) filled(t *policies.Tier) map[string]int { return d.assign(d.esc, t) }

func (d *decision) satisfied(t *policies.Tier) bool {
	filled := d.filled(t)
	for _, a := range t.Approvals {
		if filled[a.Group] < a.Count {
			return false
		}
	}
	return true
}

// waiting lists the people whose approval would still count: members of
// the groups with open slots who have not approved and did not write the
// MR.
func (d *decision) waiting() []string {
	return Waiting(d.esc, d.pol)
}

// Waiting lists the people an escalation waits on for approvals, in
// policy order. It is empty unless the escalation is in review (while
// artifacts are missing it waits on their authors, not on approvers).
func Waiting(e *Escalation, pol *policies.Policy) []string {
	if e == nil || e.State != StateInReview {
		return nil // while artifacts are missing, approvers cannot act yet
	}
	t := pol.Tier(e.Tier)
	if t == nil {
		return nil
	}
	d := &decision{pol: pol, esc: e}
	filled := d.assign(e, t)
	done := d.countable(e, t)
	authors := e.Authors()
	var out []string
	if d.satisfied(t) && RiskOf(e, pol) != nil && !d.riskAccepted(e, t) {
		// Every slot is filled; the risk above the ceiling waits on
		// someone who may accept it.
		for _, g := range RiskAcceptanceGroups(pol) {
			if grp := pol.Groups[g]; grp != nil {
				for _, m := range grp.Members {
					if pr := pol.Person("id", m); pr != nil && !wrote(pr, authors) && !isFiler(e, m) && !slices.Contains(out, m) {
						out = append(out, m)
					}
				}
			}
		}
		return out
	}
	for _, a := range t.Approvals {
		if filled[a.Group] >= a.Count {
			continue
		}
		g := pol.Groups[a.Group]
		if g == nil {
			continue
		}
		for _, m := range g.Members {
			pr := pol.Person("id", m)
			if pr == nil || wrote(pr, authors) || isFiler(e, m) || slices.Contains(out, m) ||
				slices.ContainsFunc(done, func(x Decision) bool { return x.By == m }) {
				continue
			}
			out = append(out, m)
		}
	}
	return out
}

func (d *decision) approversOf(t *policies.Tier) []string {
	var out []string
	for _, a := range t.Approvals {
		if g := d.pol.Groups[a.Group]; g != nil {
			for _, m := range g.Members {
				if !slices.Contains(out, m) {
					out = append(out, m)
				}
			}
		}
	}
	return out
}

// Counts reports whether decision x of e (an approval when approval is
// true) counts now: not stale, for the current head when the tier resets
// approvals on push, not by an author of the MR or its commits and, for an
// approval, not by the filer of a manual escalation. It is the rule decide
// applies; every surface that shows decisions uses it.
func Counts(e *Escalation, pol *policies.Policy, x Decision, approval bool) bool {
	if e == nil || pol == nil {
		return false
	}
	d := &decision{pol: pol, esc: e}
	return d.counts(e, pol.Tier(e.Tier), x, approval)
}

// Stale reports whether decision x of e no longer counts because of new
// commits, a retarget or a tier raise (not because of who gave it).
func Stale(e *Escalation, pol *policies.Policy, x Decision) bool {
	if x.Stale {
		return true
	}
	var t *policies.Tier
	if pol != nil {
		t = pol.Tier(e.Tier)
	}
	return e.HeadSHA != "" && x.SHA != e.HeadSHA && t != nil && t.ResetApprovalsOnPush
}
