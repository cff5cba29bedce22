package bot

import (
	"fmt"
	"reflect"
	"slices"
	"strings"

	"github.com/threatgate/threatgate/policies"
)

func (d *decision) tick() { d.sweep() }

// target derives the state an escalation under review belongs in.
func (d *decision) target() State {
	e, t := d.esc, d.tier()
	var last *Decision
	lastApproves := false
	for i := range e.Approvals {
		if a := &e.Approvals[i]; a.Arbiter && d.counts(e, t, *a, true) && (last == nil || !a.At.Before(last.At)) {
			last, lastApproves = a, true
		}
	}
	for i := range e.Rejections {
		if r := &e.Rejections[i]; r.Arbiter && d.counts(e, t, *r, false) && (last == nil || !r.At.Before(last.At)) {
			last, lastApproves = r, false
		}
	}
	missing := len(e.MissingArtifacts(t)) > 0
	if last != nil && !lastApproves {
		return StateRejected
	}
	// An arbiter's approval settles the dispute: the rejections before it
	// are overruled. It does not stand in for the tier's artifacts, its
	// approvals matrix or an unaccepted risk.
	overruled := func(r Decision) bool { return last != nil && !r.At.After(last.At) }
	approvals := slices.ContainsFunc(e.Approvals, func(x Decision) bool { return d.counts(e, t, x, true) })
	rejections := slices.ContainsFunc(e.Rejections, func(x Decision) bool { return d.counts(e, t, x, false) && !overruled(x) })
	switch {
	case approvals && rejections:
		return StateDisputed
	case rejections:
		return StateRejected
	case missing:
		return StateAwaitingArtifacts
	}
	if t != nil && d.satisfied(t) && d.riskAccepted(e, t) {
		return StateApproved
	}
	return StateInReview
}

// counts reports whether decision x (an approval when approval is true)
// counts for e now: not stale, for the current head when the tier resets
// on push, not by an author of the MR or its commits and, for an
// approval, not by the filer of a manual escalation.
func (d *decision) counts(e *Escalation, t *policies.Tier, x Decision, approval bool) bool {
	if x.Stale || (e.HeadSHA != "" && x.SHA != e.HeadSHA && t != nil && t.ResetApprovalsOnPush) {
		return false // the condition Stale exports
	}
	if approval && isFiler(e, x.By) {
		return false
	}
	return !wrote(d.pol.Person("id", x.By), e.Authors())
}

// isFiler reports whether person filed e as a manual escalation: their
// approval of it never counts.
func isFiler(e *Escalation, person string) bool {
	return e != nil && e.Manual && e.Filer != "" && e.Filer == person
}

func approvalGroups(t *policies.Tier) []string {
	var out []string
	for _, a := range t.Approvals {
		if !slices.Contains(out, a.Group) {
			out = append(out, a.Group)
		}
	}
	return out
}

// RoleRiskAcceptance is the approvals-matrix role whose holders may accept
// a residual risk above a tier's max_residual_risk.
const RoleRiskAcceptance = "risk-acceptance"

// RiskAcceptanceGroups returns the groups that some tier's approvals
// matrix gives the risk-acceptance role, in policy order.
func RiskAcceptanceGroups(pol *policies.Policy) []string {
	var out []string
	for _, t := range pol.Tiers {
		for _, a := range t.Approvals {
			if a.Role == RoleRiskAcceptance && !slices.Contains(out, a.Group) {
				out = append(out, a.Group)
			}
		}
	}
	return out
}

// acceptsRisk reports whether person may accept a residual risk: they
// may act for a group with the risk-acceptance role.
func (d *decision) acceptsRisk(person string) bool {
	for _, g := range RiskAcceptanceGroups(d.pol) {
		if d.pol.MayStandIn(person, g) {
			return true
		}
	}
	return false
}

// RiskOf returns e's residual-risk assessment when it counts: recorded,
// not by an author of the MR or its commits, and, when the tier resets
// approvals on push, for the current head (a new push is assessed again,
// as it is approved again); nil otherwise. Artifacts, by contrast, carry
// over to new heads: they describe the change, and the approvers of the
// new head see them.
func RiskOf(e *Escalation, pol *policies.Policy) *Note {
	if e == nil || e.Risk == nil || wrote(pol.Person("id", e.Risk.By), e.Authors()) {
		return nil
	}
	if t := pol.Tier(e.Tier); t != nil && t.ResetApprovalsOnPush && e.HeadSHA != "" && e.Risk.SHA != e.HeadSHA {
		return nil
	}
	return e.Risk
}

// RiskValidated reports whether e's residual-risk assessment that counts
// (RiskOf) was validated by a second person who did not write the change.
// A new score starts unvalidated.
func RiskValidated(e *Escalation, pol *policies.Policy) bool {
	r := RiskOf(e, pol)
	return r != nil && r.ValidatedBy != "" && r.ValidatedBy != r.By && !wrote(pol.Person("id", r.ValidatedBy), e.Authors())
}

// NeedsRiskValidation reports whether pol asks for residual-risk scores to
// be validated: it names authority.risk_validators.
func NeedsRiskValidation(pol *policies.Policy) bool { return len(pol.Authority.RiskValidators) > 0 }

// riskAccepted reports whether e's residual risk lets tier t approve it:
// a tier with max_residual_risk needs a recorded score, validated when the
// policy names authority.risk_validators, and, above the ceiling, an
// approval that counts from someone with the risk-acceptance role, given
// after that score was recorded.
func (d *decision) riskAccepted(e *Escalation, t *policies.Tier) bool {
	if t.MaxResidualRisk == 0 {
		return true
	}
	r := RiskOf(e, d.pol)
	if r == nil {
		return false
	}
	if NeedsRiskValidation(d.pol) && !RiskValidated(e, d.pol) {
		return false
	}
	if r.Score <= t.MaxResidualRisk {
		return true
	}
	return slices.ContainsFunc(e.Approvals, func(a Decision) bool {
		return !a.At.Before(r.At) && d.counts(e, t, a, true) && d.acceptsRisk(a.By)
	})
}

// settle moves the lifecycle where the events leave it and adds the
// effects a transition or a new head needs.
func (d *decision) settle() {
	if d.esc == nil || (len(d.events) == 0 && d.seenStatus() == nil && !d.answerCheck()) {
		return
	}
	e := d.esc
	if !e.State.Ended() && e.State != StateDeferred && e.State != StateIntake {
		if to := d.target(); to != e.State {
			from := e.State
			data := EventData{From: from, To: to}
			if to == StateApproved || to == StateRejected {
				// Decided under the tier's definition in force now: when
				// the policy changed it since the escalation entered its
				// tier, the decision records the one it was made under.
				if snap := SnapshotTier(d.pol, d.tier()); snap != nil && !reflect.DeepEqual(snap, e.TierDef) {
					data.TierDef = snap
				}
			}
			d.emit(EventStateChanged, data)
			d.transitioned(from, to)
		}
	}
	d.resolvePage()
	d.statusEffect()
	// The card shows "due in ..." which moves with time: compare the cards
	// as of now, so only a real change edits the thread.
	if now := d.card(d.esc); len(d.events) > 0 && !reflect.DeepEqual(now, d.card(d.g.Esc)) {
		d.effect(Effect{Kind: EffectThreadSummary, Card: now, Mention: Waiting(d.esc, d.pol)})
		if d.g.Esc == nil {
			// A new thread: its summary is the parent message, so it goes
			// out before the first post in it.
			sum := d.effects[len(d.effects)-1]
			if i := slices.IndexFunc(d.effects, func(e Effect) bool { return e.Kind == EffectThreadPost }); i >= 0 {
				copy(d.effects[i+1:], d.effects[i:len(d.effects)-1])
				d.effects[i] = sum
			}
		}
	}
}

func (d *decision) transitioned(from, to State) {
	e := d.esc
	switch to {
	case StateApproved:
		d.post(&Notice{Kind: NoticeApproved, Tier: e.Tier, TierName: e.TierName, SHA: e.HeadSHA, Decisions: d.thatCount(e.Approvals, true)}, true, nil)
	case StateRejected:
		d.post(&Notice{Kind: NoticeRejected, Tier: e.Tier, SHA: e.HeadSHA, Decisions: d.thatCount(e.Rejections, false)}, true, nil)
	case StateDisputed:
		d.post(&Notice{Kind: NoticeDisputed, Arbiters: d.pol.Authority.Arbiter}, false, nil)
	case StateInReview:
		if from == StateAwaitingArtifacts {
			d.post(&Notice{Kind: NoticeReady}, false, d.waiting())
		} else if from == StateApproved || from == StateRejected {
			d.post(&Notice{Kind: NoticeBackInReview, SHA: e.HeadSHA}, false, d.waiting())
		}
	}
}

// statusEffect sets the gate's commit status when its state, description
// or head SHA differ from what they were before this input.
func (d *decision) statusEffect() {
	now, desc := d.gate(d.esc)
	if now == "" || d.esc.HeadSHA == "" {
		return
	}
	if d.answerCheck() {
		d.setGate(now, desc)
		return
	}
	if st := d.seenStatus(); st != nil && !sameStatus(st.State, now) {
		// The forge shows something else than the gate's state on the
		// head: lost, stale, or set by someone else. Put the truth back.
		// A missing status or one of ours that is out of date is simply set
		// again; one set by someone else is recorded as forged.
		if st.State != "" && !st.Ours {
			d.emit(EventStatusForged, EventData{Person: st.Author, Text: fmt.Sprintf("status %q on %s was set by %s, not threatgate; reset to %q", st.State, shortSHA(st.SHA), st.Author, now)})
			d.effect(Effect{Kind: EffectThreadPost, Security: true, Notice: &Notice{Kind: NoticeForged, Found: st.State, FoundBy: st.Author, SHA: st.SHA, Reset: now}})
		}
		d.setGate(now, desc)
		return
	}
	if d.g.Esc != nil {
		before, bdesc := d.gate(d.g.Esc)
		if before == now && bdesc == desc && d.g.Esc.HeadSHA == d.esc.HeadSHA {
			return
		}
	}
	d.setGate(now, desc)
}

// setGate sets the gate's commit status and records it on the decision's
// last event (EventData.Gate), which carries the head, so that the
// projection says what the gate was last set to, and when. A decision
// without events (the status set again as it was) records nothing new.
func (d *decision) setGate(status, desc string) {
	d.effect(Effect{Kind: EffectStatus, SHA: d.esc.HeadSHA, Status: status, Text: desc})
	if n := len(d.events); n > 0 && d.events[n-1].SHA == d.esc.HeadSHA {
		ev := &d.events[n-1]
		ev.Data.Gate, ev.Data.GateText = status, desc
		// The event is already folded into d.esc: fold the gate too, as
		// apply does.
		applyGate(d.esc, *ev)
	}
}

func (d *decision) answerCheck() bool {
	return d.in.Kind == InputMR && d.in.MR != nil && d.in.MR.AnswerCheck
}

// seenStatus returns the gate's status the forge reported for the current
// head, nil when the input did not carry one.
func (d *decision) seenStatus() *ForgeStatus {
	if d.in.Kind != InputMR || d.in.MR == nil || d.in.MR.Status == nil || d.in.MR.Status.SHA != d.esc.HeadSHA {
		return nil
	}
	return d.in.MR.Status
}

// sameStatus reports whether the forge's state shows the gate's state.
func sameStatus(seen, want string) bool {
	switch want {
	case StatusPending:
		return seen == "pending" || seen == "running" || seen == "created"
	case StatusFailed:
		return seen == "failed" || seen == "canceled"
	}
	return seen == want
}

// gate returns the commit status an escalation asks for and its
// description; "" when the gate has nothing to say (merged, closed).
func (d *decision) gate(e *Escalation) (status, description string) {
	t := d.pol.Tier(e.Tier)
	if e.ID == "" {
		// New: the store assigns the id; Effect.Body fills it in.
		c := *e
		c.ID = IDPlaceholder
		e = &c
	}
	switch e.State {
	case StateApproved:
		return StatusSuccess, fmt.Sprintf("%s approved (%s)", e.ID, e.Tier)
	case StateRejected:
		return StatusFailed, fmt.Sprintf("%s rejected (%s)", e.ID, e.Tier)
	case StateWithdrawn:
		if e.MRState == "closed" || e.WithdrawnSHA == "" || e.WithdrawnSHA != e.HeadSHA {
			// Closed, or a withdrawal that does not cover this head (the
			// next MR input puts it back in review): nothing to release.
			return "", ""
		}
		return StatusSuccess, fmt.Sprintf("%s withdrawn at %s", e.ID, shortSHA(e.WithdrawnSHA))
	case StateMerged, StateIntake:
		return "", ""
	case StateDisputed:
		return StatusPending, fmt.Sprintf("%s disputed: waiting for an arbiter", e.ID)
	case StateDeferred:
		return StatusPending, fmt.Sprintf("%s deferred until %s", e.ID, e.DeferredUntil.Format("2006-01-02"))
	}
	need := d.needs(e, t)
	desc := fmt.Sprintf("%s %s: needs %s", e.ID, e.Tier, strings.Join(need, "; "))
	if len(need) == 0 {
		desc = fmt.Sprintf("%s %s: in review", e.ID, e.Tier)
	}
	if r := []rune(desc); len(r) > 140 {
		desc = string(r[:137]) + "..."
	}
	return StatusPending, desc
}

// needs lists what e still needs for a green gate under tier t: missing
// artifacts, approvals per group ("0/2 appsec"), the residual risk.
func (d *decision) needs(e *Escalation, t *policies.Tier) []string {
	var need []string
	if m := e.MissingArtifacts(t); len(m) > 0 {
		need = append(need, strings.Join(m, ", "))
	}
	if t != nil {
		filled := d.filledFor(e, t)
		for _, a := range t.Approvals {
			if filled[a.Group] < a.Count {
				need = append(need, fmt.Sprintf("%d/%d %s", filled[a.Group], a.Count, a.Group))
			}
		}
		if t.MaxResidualRisk > 0 {
			if r := RiskOf(e, d.pol); r == nil {
				need = append(need, "a residual risk score")
			} else if NeedsRiskValidation(d.pol) && !RiskValidated(e, d.pol) {
				need = append(need, fmt.Sprintf("risk %d validated", r.Score))
			} else if !d.riskAccepted(e, t) {
				need = append(need, fmt.Sprintf("%s (risk %d > %d)", RoleRiskAcceptance, r.Score, t.MaxResidualRisk))
			}
		}
	}
	return need
}

// thatCount returns the decisions of ds that count now.
func (d *decision) thatCount(ds []Decision, approvals bool) []Decision {
	var out []Decision
	t := d.tier()
	for _, x := range ds {
		if d.counts(d.esc, t, x, approvals) {
			out = append(out, x)
		}
	}
	return out
}
