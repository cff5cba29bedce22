package bot

import (
	"fmt"
	"slices"
	"strings"

	"github.com/threatgate/threatgate/policies"
)

func (d *decision) escalate(c *Command) error {
	f := "/escalate"
	if d.esc != nil {
		return problemf(f, "%s!%d is already escalated as %s (%s, %s); to change its tier use /threatgate retier %s <tier> <rationale>",
			d.esc.Project, d.esc.MRIID, d.esc.ID, d.esc.Tier, d.esc.State, d.esc.ID)
	}
	if lim := d.pol.Caps.ManualPerQuarter; lim > 0 && d.g.Quota.Manual >= lim+d.g.Quota.Overrides {
		return problemf(f, "you have filed %d manual escalations in %s and the cap is %d; someone in %s can allow more with /threatgate override-cap %s <rationale>",
			d.g.Quota.Manual, Quarter(d.now), lim+d.g.Quota.Overrides, d.pol.Caps.OverrideGroup, d.in.Actor.Person)
	}
	t := d.pol.Tiers[len(d.pol.Tiers)-1]
	if c.Tier != "" {
		if t = d.pol.Tier(c.Tier); t == nil {
			return problemf("--tier", "no tier %q; want one of %s", c.Tier, strings.Join(d.tierIDs(), ", "))
		}
	}
	var unknown []string
	for k := range c.Fields {
		if !slices.ContainsFunc(d.pol.Intake, func(f policies.IntakeField) bool { return f.ID == k }) {
			unknown = append(unknown, k)
		}
	}
	if len(unknown) > 0 {
		slices.Sort(unknown)
		return problemf(f, "unknown intake field %s; want %s", strings.Join(unknown, ", "), strings.Join(d.intakeIDs(), ", "))
	}
	// The MR's link, title, head and authors come from the forge (the
	// refresh below), never from the URL the filer typed.
	mr := &policies.MergeRequest{IID: c.MR.IID, PathWithNamespace: c.MR.Project}
	d.open(mr, nil, policies.Result{Tier: t}, true, c.Urgent, c.Text, c.Fields, t)
	d.effect(Effect{Kind: EffectRefresh})
	return nil
}

// missingIntake lists the intake fields e still lacks, in policy order.
func (d *decision) missingIntake(have map[string]string) []policies.IntakeField {
	var out []policies.IntakeField
	for _, f := range d.pol.Intake {
		if strings.TrimSpace(have[f.ID]) == "" {
			out = append(out, f)
		}
	}
	return out
}

func intakePrompts(fs []policies.IntakeField) string {
	var b strings.Builder
	for _, f := range fs {
		fmt.Fprintf(&b, "\n%s: %s", f.ID, f.Prompt)
	}
	return b.String()
}

// intake records answers to a manual escalation's intake fields; when the
// last one is in, the escalation is filed: it counts against the filer's
// cap, and the review (and the gate) starts.
func (d *decision) intake(c *Command) error {
	f, e := "/threatgate intake", d.esc
	if e.State != StateIntake {
		return problemf(f, "%s is already filed; its intake cannot change now", e.ID)
	}
	if d.in.Actor.Person != e.Filer && !d.pol.InAny(d.in.Actor.Person, d.pol.Authority.Retier) {
		return problemf(f, "only %s, who filed %s, can answer its intake", e.Filer, e.ID)
	}
	var unknown []string
	for k := range c.Fields {
		if !slices.ContainsFunc(d.pol.Intake, func(f policies.IntakeField) bool { return f.ID == k }) {
			unknown = append(unknown, k)
		}
	}
	if len(unknown) > 0 {
		slices.Sort(unknown)
		return problemf(f, "unknown intake field %s; want %s", strings.Join(unknown, ", "), strings.Join(d.intakeIDs(), ", "))
	}
	d.emit(EventIntake, EventData{Intake: c.Fields})
	if missing := d.missingIntake(d.esc.Intake); len(missing) > 0 {
		d.reply("Noted. %s still needs:%s", d.id(), intakePrompts(missing))
		return nil
	}
	return d.file()
}

// file turns a complete manual escalation into a filed one.
func (d *decision) file() error {
	e := d.esc
	if lim := d.pol.Caps.ManualPerQuarter; lim > 0 && d.g.Quota.Manual >= lim+d.g.Quota.Overrides {
		return problemf("/escalate", "you have filed %d manual escalations in %s and the cap is %d; someone in %s can allow more with /threatgate override-cap %s <rationale>",
			d.g.Quota.Manual, Quarter(d.now), lim+d.g.Quota.Overrides, d.pol.Caps.OverrideGroup, e.Filer)
	}
	t := d.tier()
	to := StateInReview
	if t != nil && len(t.Artifacts) > 0 {
		to = StateAwaitingArtifacts
	}
	fr, dd := d.deadlines(t, e.Urgent)
	d.emit(EventFiled, EventData{FirstResponseDue: fr, DecisionDue: dd})
	d.emit(EventStateChanged, EventData{From: StateIntake, To: to})
	d.effect(Effect{Kind: EffectMRNote, Notice: d.opening(NoticeOpened, t)})
	d.effect(Effect{Kind: EffectMRLabels, Labels: []string{tierLabel(t.ID)}})
	d.effect(Effect{Kind: EffectThreadPost, Notice: d.opening(NoticeFiled, t), Mention: d.approversOf(t)})
	d.askArtifacts(t)
	d.reply("%s is filed (%s %s); the review has started.", d.id(), t.ID, t.Name)
	return nil
}

func (d *decision) tierIDs() []string {
	var out []string
	for _, t := range d.pol.Tiers {
		out = append(out, t.ID)
	}
	return out
}

func (d *decision) intakeIDs() []string {
	var out []string
	for _, f := range d.pol.Intake {
		out = append(out, f.ID)
	}
	return out
}

func (d *decision) overrideCap(c *Command) error {
	f := "/threatgate override-cap"
	g := d.pol.Caps.OverrideGroup
	if g == "" || !d.pol.InGroup(d.in.Actor.Person, g) {
		who := "nobody: the policy names no caps.override_group"
		if g != "" {
			who = "members of " + g
		}
		return problemf(f, "only %s may lift the cap on manual escalations", who)
	}
	target := d.pol.Person("id", c.Person)
	if target == nil {
		target = d.pol.Person("gitlab", c.Person)
	}
	if target == nil {
		return problemf(f, "no person %q in the policy", c.Person)
	}
	n := c.Count
	if n <= 0 {
		n = 1
	}
	d.emit(EventCapOverridden, EventData{Person: target.ID, Count: n, Text: c.Text})
	d.reply("%s may file %d more manual escalation(s) in %s.", target.ID, n, Quarter(d.now))
	return nil
}
