package bot

import (
	"fmt"
	"slices"
	"time"

	"github.com/threatgate/threatgate/policies"
)

func (d *decision) mr() error {
	mi := d.in.MR
	if mi == nil || mi.MR == nil {
		return fmt.Errorf("decide: MR input without a merge request")
	}
	mr := mi.MR
	state := mrState(mi)
	if d.esc == nil {
		if state != "opened" {
			return nil // nothing to gate on a closed or merged MR nobody escalated
		}
		res := d.pol.Evaluate(mr)
		if res.Tier == nil {
			d.reply("%s!%d: no tier applies (score %d); no escalation", mr.Project(), mr.IID, res.Score)
			if mi.AnswerCheck && mr.SHA != "" {
				d.effect(Effect{Kind: EffectStatus, Project: mr.Project(), MRIID: mr.IID, SHA: mr.SHA, Status: StatusSuccess,
					Text: fmt.Sprintf("no security review needed (score %d)", res.Score)})
			}
			return nil
		}
		d.open(mr, mi.CommitAuthors, res, false, UrgentLabel(d.pol, mr.Labels) != "", "", nil, res.Tier)
		return nil
	}
	e := d.esc
	if e.State == StateMerged {
		return nil // the end: nothing moves a merged escalation
	}
	// Out-of-order deliveries: an event older than what we have seen
	// must not move the escalation backwards. An MR just read from the
	// API is the forge's answer now: a head or state it shows is applied
	// even when its updated_at is earlier (a change stamped by a forge
	// server whose clock is behind another's must not go ungated).
	if !mr.UpdatedAt.IsZero() && !e.MRUpdatedAt.IsZero() && mr.UpdatedAt.Before(e.MRUpdatedAt) {
		moved := mr.SHA != "" && mr.SHA != e.HeadSHA || mr.State != "" && mr.State != e.MRState
		if !mi.Fetched || !moved {
			return nil
		}
	}
	switch state {
	case "merged":
		d.update(mr, mi)
		// Judged on the head that was merged, classified afresh: an
		// approval of an older head, or of a lower tier than this head
		// classifies into, does not cover it. A withdrawal releases the
		// gate only for the head it was made on, and only while the
		// policy does not tier that head.
		res := d.pol.Evaluate(mr)
		released := d.esc.State == StateWithdrawn && d.esc.MRState != "closed" && d.withdrawalHolds(res)
		if !released {
			d.reclassify(res, true)
		}
		bypassed := !released && (d.esc.State != StateApproved || d.target() != StateApproved)
		from := d.esc.State
		merged := EventData{Bypassed: bypassed, MRState: "merged", MergedBy: mr.MergedBy.Username, MergedAt: mr.MergedAt}
		if bypassed {
			merged.Missing = d.missingAtMerge()
		}
		d.emit(EventMerged, merged)
		d.emit(EventStateChanged, EventData{From: from, To: StateMerged})
		if bypassed {
			n := &Notice{Kind: NoticeBypass, Project: e.Project, MRIID: e.MRIID, SHA: d.esc.HeadSHA, State: from, Tier: e.Tier}
			d.effect(Effect{Kind: EffectThreadPost, Security: true, Notice: n})
			d.effect(Effect{Kind: EffectMRNote, Notice: n})
		}
		return nil
	case "closed":
		if d.esc.State == StateWithdrawn {
			return nil
		}
		d.update(mr, mi)
		d.emit(EventWithdrawn, EventData{MRState: "closed", Text: "the merge request was closed"})
		d.emit(EventStateChanged, EventData{From: d.esc.State, To: StateWithdrawn})
		d.effect(Effect{Kind: EffectThreadPost, Notice: &Notice{Kind: NoticeClosed}})
		return nil
	}
	if d.esc.State == StateWithdrawn && d.esc.MRState == "closed" {
		d.emit(EventReopened, EventData{})
		d.effect(Effect{Kind: EffectThreadPost, Notice: &Notice{Kind: NoticeReopened}})
		// settle moves it back to where it belongs.
		d.emit(EventStateChanged, EventData{From: StateWithdrawn, To: d.target()})
	}
	withdrawnAt := d.esc.WithdrawnSHA
	d.update(mr, mi)
	res := d.pol.Evaluate(mr)
	if d.esc.State == StateWithdrawn {
		// Withdrawn by a person. The gate follows the current head: the
		// withdrawal holds only for the head it was made on, and never
		// for a head the policy tiers.
		if d.withdrawalHolds(res) {
			return nil
		}
		d.reclassify(res, true)
		t := d.tier()
		why := fmt.Sprintf("new commits at %s since it was withdrawn at %s (a withdrawal holds only for the head it was made on)", shortSHA(d.esc.HeadSHA), shortSHA(withdrawnAt))
		if res.Tier != nil {
			why = fmt.Sprintf("the merge request's head %s classifies as %s (score %d), and a withdrawal cannot release a change the policy tiers", shortSHA(d.esc.HeadSHA), res.Tier.ID, res.Score)
		}
		d.emit(EventStateChanged, EventData{From: StateWithdrawn, To: d.target(), Text: why})
		if t == nil {
			// Its tier is no longer in the policy: back in review all
			// the same, waiting for a re-tier.
			d.post(&Notice{Kind: NoticeResumed, Why: why, Tier: d.esc.Tier, SHA: d.esc.HeadSHA, Retiers: d.pol.Authority.Retier}, true, nil)
			return nil
		}
		n := &Notice{Kind: NoticeResumed, Why: why, Tier: t.ID, TierName: t.Name, SHA: d.esc.HeadSHA, Requirements: d.requirementsOf(t)}
		d.effect(Effect{Kind: EffectMRNote, Notice: n})
		d.effect(Effect{Kind: EffectMRLabels, Labels: []string{tierLabel(t.ID)}})
		d.effect(Effect{Kind: EffectThreadPost, Notice: n, Mention: d.approversOf(t)})
		return nil
	}
	if d.esc.State != StateIntake || res.Tier == nil {
		d.reclassify(res, false)
		return nil
	}
	// A draft manual escalation must not hold back the automatic gate: the
	// MR needs review on its own, so the review starts now, whatever the
	// draft's intake.
	d.reclassify(res, true)
	t := d.tier()
	fr, dd := d.deadlines(t, d.esc.Urgent)
	d.emit(EventFiled, EventData{FirstResponseDue: fr, DecisionDue: dd, Text: "the merge request itself classifies as " + res.Tier.ID})
	to := StateInReview
	if len(t.Artifacts) > 0 {
		to = StateAwaitingArtifacts
	}
	d.emit(EventStateChanged, EventData{From: StateIntake, To: to})
	d.effect(Effect{Kind: EffectMRNote, Notice: d.opening(NoticeOpened, t)})
	d.effect(Effect{Kind: EffectMRLabels, Labels: []string{tierLabel(t.ID)}})
	d.effect(Effect{Kind: EffectThreadPost, Notice: d.opening(NoticeSelfFiled, t), Mention: d.approversOf(t)})
	d.askArtifacts(t)
	return nil
}

// mrState reads the MR's state from the action or the snapshot.
func mrState(mi *MRInput) string {
	switch mi.Action {
	case MRMerge:
		return "merged"
	case MRClose:
		return "closed"
	case MROpen, MRReopen, MRUpdate:
		return "opened"
	}
	switch mi.MR.State {
	case "merged", "closed":
		return mi.MR.State
	case "locked":
		return "opened"
	}
	return "opened"
}

// update records what changed in the MR's facts, making approvals stale on
// a new head when the tier says so.
func (d *decision) update(mr *policies.MergeRequest, mi *MRInput) {
	e := d.esc
	var data EventData
	changed := false
	if title := d.pol.MaskSecrets(mr.Title); title != "" && title != e.Title {
		data.Title, changed = title, true
	}
	if e.Author == "" && mr.Author.Username != "" {
		// A manual escalation learns who wrote the MR when the forge
		// first shows it.
		data.Author, changed = mr.Author.Username, true
	}
	if mr.WebURL != "" && mr.WebURL != e.MRURL {
		data.MRURL, changed = mr.WebURL, true
	}
	if mr.Labels != nil && !slices.Equal([]string(mr.Labels), e.Labels) {
		data.Labels, changed = slices.Clone([]string(mr.Labels)), true
		if data.Labels == nil {
			data.Labels = []string{}
		}
	}
	if mr.TargetBranch != "" && mr.TargetBranch != e.TargetBranch {
		data.TargetBranch, changed = mr.TargetBranch, true
		if e.TargetBranch != "" {
			// Retargeted: the diff under review is another one now.
			data.StaleFrom = "retarget from " + e.TargetBranch
		}
	}
	if mi.CommitAuthors != nil && !slices.Equal(mi.CommitAuthors, e.CommitAuthors) {
		data.CommitAuthors, changed = slices.Clone(mi.CommitAuthors), true
	}
	if mr.SHA != "" && mr.SHA != e.HeadSHA {
		changed = true
		if t := d.tier(); (t == nil || t.ResetApprovalsOnPush || (e.HeadSHA == "" && len(e.Approvals)+len(e.Rejections) > 0)) && data.StaleFrom == "" {
			// Decisions taken before any head was known never carry over.
			data.StaleFrom = e.HeadSHA
			if data.StaleFrom == "" {
				data.StaleFrom = "none"
			}
		}
	}
	if !mr.UpdatedAt.IsZero() && !mr.UpdatedAt.Equal(e.MRUpdatedAt) {
		data.MRUpdatedAt = mr.UpdatedAt
		changed = true
	}
	if d.urgentNow(mr, mi, &data) {
		changed = true
	}
	if changed {
		d.emit(EventMRUpdated, data)
	}
}

// UrgentLabel returns the first of labels that the policy's urgent_labels
// names (compared exactly), "" when there is none. An MR carrying one is
// urgent, as /escalate --urgent makes it.
func UrgentLabel(pol *policies.Policy, labels []string) string {
	if pol == nil {
		return ""
	}
	for _, l := range labels {
		if slices.Contains(pol.UrgentLabels, l) {
			return l
		}
	}
	return ""
}

// urgentNow marks an escalation that is not urgent yet as urgent in data
// when its open MR now carries an urgent label (one added since, or one
// the policy has named since), and tightens its deadlines to the tier's
// urgent window from now: never later than they already are. A label
// removed later loosens nothing. A draft without deadlines only becomes
// urgent; filing gives it the urgent window. It reports whether it changed
// data.
func (d *decision) urgentNow(mr *policies.MergeRequest, mi *MRInput, data *EventData) bool {
	e := d.esc
	labels := []string(mr.Labels)
	if mr.Labels == nil {
		labels = e.Labels
	}
	if e.Urgent || mrState(mi) != "opened" || UrgentLabel(d.pol, labels) == "" {
		return false
	}
	data.Urgent = true
	if t := d.tier(); t != nil && e.State.Active() {
		fr, dd := d.deadlines(t, true)
		if !e.FirstResponseDue.IsZero() && fr.Before(e.FirstResponseDue) {
			data.FirstResponseDue = fr
		}
		if !e.DecisionDue.IsZero() && dd.Before(e.DecisionDue) {
			data.DecisionDue = dd
		}
	}
	return true
}

// reclassify raises the tier when the MR now classifies higher. A tier
// never falls on its own: only /threatgate retier lowers it.
// With quiet, only the events are recorded; the caller announces.
func (d *decision) reclassify(res policies.Result, quiet bool) {
	cur := d.tier()
	if d.esc.RetierSHA != "" && d.esc.RetierSHA == d.esc.HeadSHA && !policies.Higher(res.Tier, d.pol.Tier(d.esc.RetierFrom)) {
		// An authorised person re-tiered this very head, knowing what it
		// classified into: that holds until the head moves or the change
		// classifies higher still.
		cur = d.pol.Tier(d.esc.RetierFrom)
		if policies.Higher(d.tier(), cur) {
			cur = d.tier()
		}
	}
	if res.Tier != nil && policies.Higher(res.Tier, cur) {
		from := d.esc.Tier
		fr, dd := d.deadlines(res.Tier, d.esc.Urgent)
		if !d.esc.FirstResponseDue.IsZero() && d.esc.FirstResponseDue.Before(fr) {
			fr = d.esc.FirstResponseDue
		}
		if !d.esc.DecisionDue.IsZero() && d.esc.DecisionDue.Before(dd) {
			dd = d.esc.DecisionDue
		}
		d.emit(EventTierRaised, EventData{Tier: res.Tier.ID, TierName: res.Tier.Name, TierDef: SnapshotTier(d.pol, res.Tier), FromTier: from, Score: res.Score, Signals: res.Signals, FirstResponseDue: fr, DecisionDue: dd})
		d.endDeferralIfNotDeferrable(res.Tier)
		if quiet {
			return
		}
		n := &Notice{Kind: NoticeTierRaised, Tier: res.Tier.ID, TierName: res.Tier.Name, FromTier: from, Score: res.Score, Requirements: d.requirementsOf(res.Tier)}
		d.effect(Effect{Kind: EffectMRNote, Notice: n})
		d.effect(Effect{Kind: EffectMRLabels, Labels: []string{tierLabel(res.Tier.ID)}})
		d.effect(Effect{Kind: EffectThreadPost, Notice: n, Mention: d.approversOf(res.Tier)})
		d.askArtifacts(res.Tier)
		return
	}
	if res.Score != d.esc.Score || !sameSignals(res.Signals, d.esc.Signals) {
		d.emit(EventReclassified, EventData{Score: res.Score, Signals: res.Signals})
	}
}

func sameSignals(a, b []policies.Fired) bool {
	return slices.EqualFunc(a, b, func(x, y policies.Fired) bool {
		return x.ID == y.ID && slices.Equal(x.Evidence, y.Evidence)
	})
}

func tierLabel(id string) string { return "security-tier::" + id }

func (d *decision) deadlines(t *policies.Tier, urgent bool) (firstResponse, decisionDue time.Time) {
	dec := t.Decision
	if urgent && t.UrgentDecision > 0 {
		dec = t.UrgentDecision
	}
	fr := t.FirstResponse
	if fr > dec {
		fr = dec
	}
	return d.now.Add(fr), d.now.Add(dec)
}

// open starts an escalation.
func (d *decision) open(mr *policies.MergeRequest, commitAuthors []string, res policies.Result, manual, urgent bool, reason string, intake map[string]string, t *policies.Tier) {
	fr, dd := d.deadlines(t, urgent)
	data := EventData{
		Project: mr.Project(), MRIID: mr.IID, MRURL: mr.WebURL, Title: d.pol.MaskSecrets(mr.Title), Author: mr.Author.Username,
		CommitAuthors: slices.Clone(commitAuthors), TargetBranch: mr.TargetBranch, Labels: slices.Clone([]string(mr.Labels)),
		MRState: "opened", MRUpdatedAt: mr.UpdatedAt,
		Tier: t.ID, TierName: t.Name, TierDef: SnapshotTier(d.pol, t), Score: res.Score, Signals: res.Signals,
		Manual: manual, Urgent: urgent, Intake: intake, Text: reason,
		FirstResponseDue: fr, DecisionDue: dd,
	}
	data.To = StateInReview
	if len(t.Artifacts) > 0 {
		data.To = StateAwaitingArtifacts
	}
	if manual {
		if missing := d.missingIntake(intake); len(missing) > 0 {
			// Not filed until the intake is in: asked for in the thread,
			// no gate, nothing counted yet.
			data.To = StateIntake
			data.FirstResponseDue, data.DecisionDue = time.Time{}, time.Time{}
			d.emit(EventOpened, data)
			var fields []Field
			for _, f := range missing {
				fields = append(fields, Field{ID: f.ID, Text: f.Prompt})
			}
			d.effect(Effect{Kind: EffectThreadPost, Notice: &Notice{Kind: NoticeIntakeAsked, Project: data.Project, MRIID: data.MRIID, Tier: t.ID, TierName: t.Name, By: d.actor(), Text: reason, Fields: fields}, Mention: []string{d.actor()}})
			d.reply("%s opened as a draft; answer its intake in the thread (or here, as lines \"field: answer\"):%s", IDPlaceholder, intakePrompts(missing))
			return
		}
		d.emit(EventOpened, data)
		d.emit(EventFiled, EventData{FirstResponseDue: data.FirstResponseDue, DecisionDue: data.DecisionDue})
	} else {
		d.emit(EventOpened, data)
	}
	d.effect(Effect{Kind: EffectMRNote, Notice: d.opening(NoticeOpened, t)})
	d.effect(Effect{Kind: EffectMRLabels, Labels: []string{tierLabel(t.ID)}})
	d.effect(Effect{Kind: EffectThreadPost, Notice: d.opening(NoticeOpened, t), Mention: d.approversOf(t)})
	d.askArtifacts(t)
	if manual {
		d.reply("Escalated %s!%d as %s (%s %s). Follow it in its thread.", data.Project, data.MRIID, IDPlaceholder, t.ID, t.Name)
	} else {
		d.reply("%s!%d escalated as %s (%s %s, score %d).", data.Project, data.MRIID, IDPlaceholder, t.ID, t.Name, res.Score)
	}
}

// missingAtMerge says what the gate still needed on the head being merged
// without approval, as the policy in force judged it then: what is
// missing for the tier, or why the state held the gate (disputed,
// deferred, in intake).
func (d *decision) missingAtMerge() []string {
	e := d.esc
	var out []string
	switch e.State {
	case StateDisputed:
		out = append(out, "an arbiter's decision (disputed)")
	case StateDeferred:
		out = append(out, "a review (deferred until "+e.DeferredUntil.Format("2006-01-02")+")")
	case StateIntake:
		out = append(out, "the intake answers (not filed yet)")
	case StateRejected:
		out = append(out, "approval (rejected)")
	case StateWithdrawn:
		out = append(out, "a review (withdrawn on another head)")
	}
	if t := d.tier(); t != nil {
		out = append(out, d.needs(e, t)...)
	} else if e.Tier != "" {
		out = append(out, "a re-tier (tier "+e.Tier+" is no longer in the policy)")
	}
	if len(out) == 0 {
		out = append(out, "approval of the merged head "+shortSHA(e.HeadSHA))
	}
	return out
}
