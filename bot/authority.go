package bot

import (
	"strings"

	"github.com/threatgate/threatgate/policies"
)

func (d *decision) retier(c *Command) error {
	f, e := "/threatgate retier", d.esc
	if d.isAuthor() {
		return problemf(f, "you wrote this merge request or commits in it, so you cannot re-tier %s; ask %s", e.ID, strings.Join(d.pol.Authority.Retier, ", "))
	}
	if !d.pol.InAny(d.in.Actor.Person, d.pol.Authority.Retier) {
		who := "nobody: the policy's authority.retier names no group"
		if len(d.pol.Authority.Retier) > 0 {
			who = "members of " + strings.Join(d.pol.Authority.Retier, ", ")
		}
		return problemf(f, "only %s may re-tier an escalation", who)
	}
	t := d.pol.Tier(c.Tier)
	if t == nil {
		return problemf(f, "no tier %q; want one of %s", c.Tier, strings.Join(d.tierIDs(), ", "))
	}
	if t.ID == e.Tier {
		return problemf(f, "%s is already %s", e.ID, t.ID)
	}
	if strings.TrimSpace(c.Text) == "" {
		return problemf(f, "a re-tier needs a rationale")
	}
	data := EventData{Tier: t.ID, TierName: t.Name, TierDef: SnapshotTier(d.pol, t), FromTier: e.Tier, Text: c.Text}
	fr, dd := d.deadlines(t, e.Urgent)
	if policies.Higher(t, d.tier()) {
		data.Raised = true
		// Raising tightens deadlines, never loosens them.
		if !e.FirstResponseDue.IsZero() && e.FirstResponseDue.Before(fr) {
			fr = e.FirstResponseDue
		}
		if !e.DecisionDue.IsZero() && e.DecisionDue.Before(dd) {
			dd = e.DecisionDue
		}
	}
	data.FirstResponseDue, data.DecisionDue = fr, dd
	d.emit(EventRetiered, data)
	d.endDeferralIfNotDeferrable(t)
	n := &Notice{Kind: NoticeRetiered, Tier: t.ID, TierName: t.Name, FromTier: data.FromTier, By: d.actor(), Text: c.Text, Requirements: d.requirementsOf(t)}
	d.effect(Effect{Kind: EffectMRNote, Notice: n})
	d.effect(Effect{Kind: EffectMRLabels, Labels: []string{tierLabel(t.ID)}})
	d.effect(Effect{Kind: EffectThreadPost, Notice: n})
	d.reply("%s is now %s (%s).", d.id(), t.ID, t.Name)
	return nil
}

func (d *decision) withdraw(c *Command) error {
	f, e := "/threatgate withdraw", d.esc
	me := d.in.Actor.Person
	if d.isAuthor() {
		return problemf(f, "you wrote this merge request or commits in it, so you cannot withdraw %s; close the merge request if it is abandoned", e.ID)
	}
	if !d.pol.InAny(me, d.pol.Authority.Retier) && !(e.Manual && e.Filer == me) {
		return problemf(f, "only %s, or the engineer who filed a manual escalation, may withdraw it", strings.Join(d.pol.Authority.Retier, ", "))
	}
	if e.State == StateWithdrawn {
		return problemf(f, "%s is already withdrawn", e.ID)
	}
	if t := Classified(e, d.pol); t != nil {
		return problemf(f, "%s cannot be withdrawn: its merge request classifies as %s on its own at %s (score %d), and only its approvals can release such a change; approve it, or re-tier it with /threatgate retier %s <tier> <rationale>",
			e.ID, t.ID, shortSHA(e.HeadSHA), e.Score, e.ID)
	}
	d.emit(EventWithdrawn, EventData{Text: c.Text})
	d.emit(EventStateChanged, EventData{From: e.State, To: StateWithdrawn})
	d.effect(Effect{Kind: EffectThreadPost, Notice: &Notice{Kind: NoticeWithdrawn, By: me, Text: c.Text, SHA: e.HeadSHA}})
	if e.HeadSHA == "" {
		d.reply("%s withdrawn. It resumes as soon as its merge request has a head: a withdrawal holds only for the head it was made on.", d.id())
	} else {
		d.reply("%s withdrawn for %s only: new commits, or a change the policy tiers, put it back in review.", d.id(), shortSHA(e.HeadSHA))
	}
	return nil
}

// Classified returns the tier the policy puts e's current head in, from
// the signals and score last evaluated on it; nil when no tier applies.
// It is what a withdrawal can never release.
func Classified(e *Escalation, pol *policies.Policy) *policies.Tier {
	if e == nil || pol == nil || (e.Score == 0 && len(e.Signals) == 0) {
		return nil
	}
	return pol.Select(e.Score, e.Signals)
}

// endDeferralIfNotDeferrable ends a deferral when the escalation moved
// into tier t, which may not be deferred: a riskier change is not left
// waiting for the date.
func (d *decision) endDeferralIfNotDeferrable(t *policies.Tier) {
	if d.esc.State != StateDeferred || t == nil || t.Deferrable {
		return
	}
	data := d.resumeData()
	data.Text = "tier " + t.ID + " cannot be deferred"
	d.emit(EventStateChanged, data)
	d.effect(Effect{Kind: EffectThreadPost, Notice: &Notice{Kind: NoticeDeferralEnded, Tier: t.ID, Why: "tier " + t.ID + " cannot be deferred", State: d.esc.State}, Mention: Waiting(d.esc, d.pol)})
}

// withdrawalHolds reports whether a person's withdrawal of the escalation
// still releases the gate for the MR as just evaluated (res): only on the
// head it was made on, and only when the policy does not tier that head.
func (d *decision) withdrawalHolds(res policies.Result) bool {
	e := d.esc
	return res.Tier == nil && e.WithdrawnSHA != "" && e.WithdrawnSHA == e.HeadSHA
}
