package bot

import (
	"fmt"
	"slices"
	"strings"

	"github.com/threatgate/threatgate/policies"
)

// eligibleRows returns the approvals-matrix rows the actor may approve for.
func (d *decision) eligibleRows(t *policies.Tier, person string) []policies.Approval {
	var out []policies.Approval
	for _, a := range t.Approvals {
		if d.pol.MayStandIn(person, a.Group) {
			out = append(out, a)
		}
	}
	return out
}

func (d *decision) isArbiter() bool { return d.pol.InAny(d.in.Actor.Person, d.pol.Authority.Arbiter) }

// mayArbitrate refuses an arbiter who is a party to the dispute: someone
// whose approval or rejection counts on this head cannot settle it.
func (d *decision) mayArbitrate(f string) error {
	e, t, me := d.esc, d.tier(), d.in.Actor.Person
	party := slices.ContainsFunc(e.Approvals, func(x Decision) bool { return x.By == me && d.counts(e, t, x, true) }) ||
		slices.ContainsFunc(e.Rejections, func(x Decision) bool { return x.By == me && d.counts(e, t, x, false) })
	if party {
		return problemf(f, "you already decided on %s at %s, so you cannot settle it as its arbiter; another arbiter (%s) must", e.ID, shortSHA(e.HeadSHA), strings.Join(d.pol.Authority.Arbiter, ", "))
	}
	return nil
}

func (d *decision) approve(c *Command) error {
	f, e, t := "/approve", d.esc, d.tier()
	if t == nil {
		return fmt.Errorf("approve %s: tier %q is not in the policy", e.ID, e.Tier)
	}
	me := d.in.Actor.Person
	if d.isAuthor() {
		return problemf(f, "you wrote this merge request or commits in it; someone else must approve %s", e.ID)
	}
	if e.HeadSHA == "" {
		return problemf(f, "%s's merge request has not been read from GitLab yet, so there is no commit to approve; approve once its head is shown (/threatgate status %s)", e.ID, e.ID)
	}
	if isFiler(e, me) {
		return problemf(f, "you filed %s, so your approval does not count towards its tier's approvals; someone else in %s must approve it (you can still record your view with /threatgate dissent or /threatgate risk)", e.ID, strings.Join(approvalGroups(t), ", "))
	}
	arbiter := false
	switch e.State {
	case StateDeferred:
		return problemf(f, "%s is deferred until %s; it cannot be approved before then", e.ID, e.DeferredUntil.Format("2006-01-02 15:04 MST"))
	case StateApproved:
		return problemf(f, "%s is already approved", e.ID)
	case StateAwaitingArtifacts:
		return problemf(f, "%s still needs %s; approve once they are in (/threatgate artifact %s <kind> <link>)", e.ID, strings.Join(e.MissingArtifacts(t), ", "), e.ID)
	case StateDisputed, StateRejected:
		if !d.isArbiter() {
			return problemf(f, "%s is %s; only an arbiter (%s) can settle it now", e.ID, e.State, strings.Join(d.pol.Authority.Arbiter, ", "))
		}
		if err := d.mayArbitrate(f); err != nil {
			return err
		}
		arbiter = true
	}
	rows := d.eligibleRows(t, me)
	if len(rows) == 0 && !arbiter {
		var groups []string
		for _, a := range t.Approvals {
			groups = append(groups, a.Group)
		}
		return problemf(f, "you are not in a group that approves %s tier (%s)", t.ID, strings.Join(groups, ", "))
	}
	for _, a := range e.Approvals {
		if a.By == me && !a.Stale && a.SHA == e.HeadSHA {
			if r := RiskOf(e, d.pol); r != nil && t.MaxResidualRisk > 0 && r.Score > t.MaxResidualRisk && a.At.Before(r.At) && d.acceptsRisk(me) {
				continue // the risk was assessed again since: accepting it is a new decision
			}
			return problemf(f, "you already approved %s at %s", e.ID, shortSHA(e.HeadSHA))
		}
	}
	var missing, unknown []string
	for _, item := range t.Checklist {
		if strings.TrimSpace(c.Checks[item]) == "" {
			missing = append(missing, "--check "+item+"=<answer>")
		}
	}
	for k := range c.Checks {
		if !slices.Contains(t.Checklist, k) {
			unknown = append(unknown, k)
		}
	}
	if len(unknown) > 0 {
		slices.Sort(unknown)
		want := "none"
		if len(t.Checklist) > 0 {
			want = strings.Join(t.Checklist, ", ")
		}
		return problemf("--check", "unknown checklist item %s; %s asks %s", strings.Join(unknown, ", "), t.ID, want)
	}
	if len(missing) > 0 {
		return problemf(f, "%s asks every approver to answer its checklist; add %s", t.ID, strings.Join(missing, " "))
	}
	if t.MaxResidualRisk > 0 && RiskOf(e, d.pol) == nil {
		return problemf(f, "%s accepts a residual risk of at most %d and none is recorded for %s yet; someone other than the merge request's author records it first with /threatgate risk %s likelihood=1..5 impact=1..5 controls=\"...\" <rationale>, then approve",
			t.ID, t.MaxResidualRisk, e.ID, e.ID)
	}
	acceptNote := ""
	if r := RiskOf(e, d.pol); t.MaxResidualRisk > 0 && r.Score > t.MaxResidualRisk {
		groups := RiskAcceptanceGroups(d.pol)
		switch {
		case len(groups) == 0:
			return problemf(f, "the residual risk of %s is %d, above the %d that %s accepts, and no group in the policy has the %s role to accept it; lower it with /threatgate risk after mitigation, or reject", e.ID, r.Score, t.MaxResidualRisk, t.ID, RoleRiskAcceptance)
		case d.acceptsRisk(me):
			acceptNote = fmt.Sprintf(" It accepts the residual risk of %d, above %s's %d.", r.Score, t.ID, t.MaxResidualRisk)
		default:
			acceptNote = fmt.Sprintf(" The residual risk is %d, above %s's %d: it also needs an approval from someone with the %s role (%s).", r.Score, t.ID, t.MaxResidualRisk, RoleRiskAcceptance, strings.Join(groups, ", "))
		}
	}
	if r := RiskOf(e, d.pol); t.MaxResidualRisk > 0 && NeedsRiskValidation(d.pol) && !RiskValidated(e, d.pol) {
		acceptNote += fmt.Sprintf(" %s is approved only once its residual risk %d is validated by someone in %s other than %s (/threatgate risk %s --validate).", e.ID, r.Score, strings.Join(d.pol.Authority.RiskValidators, ", "), r.By, e.ID)
	}
	row := policies.Approval{Role: "arbiter"}
	if len(rows) > 0 {
		row = rows[0]
		filled := d.filled(t)
		for _, r := range rows {
			if filled[r.Group] < r.Count {
				row = r
				break
			}
		}
	}
	d.emit(EventApproved, EventData{Group: row.Group, Role: row.Role, Text: c.Text, Checks: c.Checks, Arbiter: arbiter})
	d.reply("Approval from %s recorded on %s at %s.%s", me, d.id(), shortSHA(e.HeadSHA), acceptNote)
	return nil
}

func (d *decision) reject(c *Command) error {
	f, e, t := "/threatgate reject", d.esc, d.tier()
	if t == nil {
		return fmt.Errorf("reject %s: tier %q is not in the policy", e.ID, e.Tier)
	}
	me := d.in.Actor.Person
	if d.isAuthor() {
		return problemf(f, "you wrote this merge request or commits in it; record your view with /threatgate dissent instead")
	}
	arbiter := false
	switch e.State {
	case StateRejected:
		return problemf(f, "%s is already rejected", e.ID)
	case StateDeferred:
		return problemf(f, "%s is deferred until %s", e.ID, e.DeferredUntil.Format("2006-01-02 15:04 MST"))
	case StateDisputed:
		if !d.isArbiter() {
			return problemf(f, "%s is disputed; only an arbiter (%s) can settle it now", e.ID, strings.Join(d.pol.Authority.Arbiter, ", "))
		}
		if err := d.mayArbitrate(f); err != nil {
			return err
		}
		arbiter = true
	}
	if !arbiter && len(d.eligibleRows(t, me)) == 0 && !d.pol.InAny(me, t.Review) && !d.isArbiter() {
		return problemf(f, "you are not an approver or reviewer of %s tier; record your view with /threatgate dissent", t.ID)
	}
	group := ""
	if rows := d.eligibleRows(t, me); len(rows) > 0 {
		group = rows[0].Group
	}
	d.emit(EventRejected, EventData{Group: group, Text: c.Text, Arbiter: arbiter})
	d.reply("Rejection from %s recorded on %s.", me, d.id())
	return nil
}

func (d *decision) artifact(c *Command) error {
	f := "/threatgate artifact"
	if _, ok := d.pol.Artifact(c.Artifact); !ok {
		var kinds []string
		for _, a := range d.pol.Artifacts {
			kinds = append(kinds, a.ID)
		}
		return problemf(f, "unknown artifact kind %q; want one of %s", c.Artifact, strings.Join(kinds, ", "))
	}
	if IsUntouchedTemplate(c.Artifact, c.Ref) {
		return problemf(f, "the %s template was sent as offered; fill it in, or give a link to the document", c.Artifact)
	}
	d.emit(EventArtifactAdded, EventData{Artifact: c.Artifact, Ref: c.Ref})
	if missing := d.esc.MissingArtifacts(d.tier()); len(missing) > 0 {
		d.reply("%s added to %s; still needed: %s.", c.Artifact, d.id(), strings.Join(missing, ", "))
	} else {
		d.reply("%s added to %s; every required artifact is in.", c.Artifact, d.id())
	}
	return nil
}

func (d *decision) mayGovern(t *policies.Tier) bool {
	me := d.in.Actor.Person
	return d.pol.InAny(me, d.pol.Authority.Retier) || len(d.eligibleRows(t, me)) > 0
}

func (d *decision) deferral(c *Command) error {
	f, e, t := "/threatgate defer", d.esc, d.tier()
	if t == nil || !t.Deferrable {
		return problemf(f, "%s tier %s is not deferrable", e.ID, e.Tier)
	}
	if !d.mayGovern(t) || d.isAuthor() {
		return problemf(f, "only approvers of %s or %s may defer it", t.ID, strings.Join(d.pol.Authority.Retier, ", "))
	}
	if !e.State.Active() || e.State == StateDeferred {
		return problemf(f, "%s is %s; only an escalation under review can be deferred", e.ID, e.State)
	}
	until := c.Until
	if c.For > 0 {
		until = d.now.Add(c.For)
	}
	if !until.After(d.now) {
		return problemf(f, "%s is not in the future", until.Format("2006-01-02"))
	}
	if until.Sub(d.now) > maxDeferral {
		return problemf(f, "%s is more than 90 days away; defer for less and review again", until.Format("2006-01-02"))
	}
	if m := d.pol.Backlog.MaxDeferral; m > 0 && until.Sub(d.now) > m {
		return problemf(f, "%s is more than the %s the policy allows (backlog.max_deferral); defer until %s at the latest", until.Format("2006-01-02"), policies.FormatDuration(m), d.now.Add(m).UTC().Format("2006-01-02 15:04 MST"))
	}
	if th := d.pol.Backlog.PeakOpenThreshold; th > 0 && d.g.OpenCount < th && !d.pol.InGroup(d.in.Actor.Person, d.pol.Caps.OverrideGroup) {
		who := "nobody may defer below it: the policy names no caps.override_group"
		if g := d.pol.Caps.OverrideGroup; g != "" {
			who = "below it only members of " + g + " may defer"
		}
		return problemf(f, "deferrals are for peaks of load: %d escalations are open, and the policy allows deferring from %d on (backlog.peak_open_threshold); %s. Review %s now", d.g.OpenCount, th, who, e.ID)
	}
	d.emit(EventDeferred, EventData{Until: until, Text: c.Text})
	d.emit(EventStateChanged, EventData{From: e.State, To: StateDeferred})
	d.reply("%s deferred until %s.", d.id(), until.Format("2006-01-02 15:04 MST"))
	return nil
}

func (d *decision) risk(c *Command) error {
	if c.Validate {
		return d.validateRisk(c)
	}
	f, e, t := "/threatgate risk", d.esc, d.tier()
	if t == nil || !d.mayGovern(t) || d.isAuthor() {
		return problemf(f, "only approvers of %s or %s may assess residual risk", e.Tier, strings.Join(d.pol.Authority.Retier, ", "))
	}
	if c.Risk < 1 || c.Risk > 25 {
		return problemf(f, "want a residual risk from 1 to 25 (likelihood 1-5 x impact 1-5), got %d", c.Risk)
	}
	if c.Likelihood != 0 || c.Impact != 0 {
		if c.Likelihood < 1 || c.Likelihood > 5 || c.Impact < 1 || c.Impact > 5 || c.Likelihood*c.Impact != c.Risk {
			return problemf(f, "want likelihood=1..5 and impact=1..5 whose product is the score, got likelihood %d, impact %d, score %d", c.Likelihood, c.Impact, c.Risk)
		}
	}
	d.emit(EventRisk, EventData{Risk: c.Risk, Likelihood: c.Likelihood, Impact: c.Impact, Controls: c.Controls, Text: c.Text})
	msg := fmt.Sprintf("Residual risk of %s set to %d.", d.id(), c.Risk)
	if c.Likelihood != 0 {
		msg = fmt.Sprintf("Residual risk of %s set to %d (likelihood %d x impact %d).", d.id(), c.Risk, c.Likelihood, c.Impact)
	}
	if vs := d.pol.Authority.RiskValidators; len(vs) > 0 {
		msg += fmt.Sprintf(" Someone else in %s validates it: /threatgate risk %s --validate.", strings.Join(vs, ", "), d.id())
	}
	if t.MaxResidualRisk > 0 && c.Risk > t.MaxResidualRisk {
		if groups := RiskAcceptanceGroups(d.pol); len(groups) > 0 {
			msg += fmt.Sprintf(" That is above the %d %s accepts: besides its approvals it needs one from someone with the %s role (%s), given after this assessment.", t.MaxResidualRisk, t.ID, RoleRiskAcceptance, strings.Join(groups, ", "))
		} else {
			msg += fmt.Sprintf(" That is above the %d %s accepts, and no group has the %s role: it cannot be approved until the risk is lowered.", t.MaxResidualRisk, t.ID, RoleRiskAcceptance)
		}
	}
	d.reply("%s", msg)
	return nil
}

// validateRisk answers /threatgate risk --validate: a member of
// authority.risk_validators, neither the scorer nor an author of the
// change, confirms the score that counts now. A new score later needs a
// new validation.
func (d *decision) validateRisk(c *Command) error {
	f, e, me := "/threatgate risk --validate", d.esc, d.in.Actor.Person
	vs := d.pol.Authority.RiskValidators
	if len(vs) == 0 {
		return problemf(f, "the policy names no authority.risk_validators, so residual-risk scores are not validated; record a score with /threatgate risk %s likelihood=1..5 impact=1..5", e.ID)
	}
	if d.isAuthor() {
		return problemf(f, "you wrote this merge request or commits in it, so you cannot validate its residual risk; ask someone else in %s", strings.Join(vs, ", "))
	}
	if !d.pol.InAny(me, vs) {
		return problemf(f, "only members of %s (authority.risk_validators) may validate a residual-risk score", strings.Join(vs, ", "))
	}
	r := RiskOf(e, d.pol)
	if r == nil {
		return problemf(f, "no residual risk counts for %s at %s yet; record one first with /threatgate risk %s likelihood=1..5 impact=1..5 controls=\"...\"", e.ID, shortSHA(e.HeadSHA), e.ID)
	}
	if r.By == me {
		return problemf(f, "you recorded the score %d yourself; someone else in %s must validate it", r.Score, strings.Join(vs, ", "))
	}
	if RiskValidated(e, d.pol) {
		return problemf(f, "the score %d of %s is already validated by %s", r.Score, e.ID, r.ValidatedBy)
	}
	if !d.in.WrittenAt.IsZero() && d.in.WrittenAt.Before(r.At) {
		// Written before the current score was recorded: it was about
		// another score.
		return problemf(f, "the score was changed to %d by %s at %s, after you wrote this; check the new score and validate it again", r.Score, r.By, r.At.UTC().Format("15:04:05 MST"))
	}
	d.emit(EventRiskValidated, EventData{Risk: r.Score, Text: c.Text})
	d.reply("Residual risk %d of %s (scored by %s) validated by %s.", r.Score, d.id(), r.By, me)
	return nil
}
