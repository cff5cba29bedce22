package bot

import (
	"fmt"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/threatgate/threatgate/policies"
)

// Given is what the engine loaded before a decision.
type Given struct {
	Esc   *Escalation // nil when there is no escalation yet
	Quota Quota       // the actor's quota this quarter; read for /escalate only
}

// IDPlaceholder stands for the escalation id in texts written before the
// store has assigned one; Effect.Body and the engine replace it.
const IDPlaceholder = "{esc}"

// maxDeferral bounds how far a deferral may reach.
const maxDeferral = 90 * 24 * time.Hour

// decide returns what happens when in arrives, given what is known. It is
// pure: time comes in as now, and nothing is read or written. A refusal is
// a *Problem and comes with no events; an input that changes nothing
// returns no events and perhaps a reply effect.
func decide(g Given, pol *policies.Policy, in Input, now time.Time) ([]Event, []Effect, error) {
	d := &decision{g: g, pol: pol, in: in, now: now, esc: g.Esc}
	var err error
	switch in.Kind {
	case InputMR:
		err = d.mr()
	case InputCommand:
		err = d.command()
	case InputTick:
		d.tick()
	default:
		return nil, nil, fmt.Errorf("decide: unknown input kind %q", in.Kind)
	}
	if err != nil {
		return nil, nil, err
	}
	d.settle()
	statusFirst(d.effects)
	return d.events, d.effects, nil
}

// statusFirst puts the commit status first among a decision's forge
// effects (the gate before its notes and labels), keeping every other
// effect where it is.
func statusFirst(effs []Effect) {
	var forge []Effect
	var at []int
	for i, e := range effs {
		if SinkClass(e.Kind) == SinkForge {
			forge, at = append(forge, e), append(at, i)
		}
	}
	rank := func(e Effect) int {
		if e.Kind == EffectStatus {
			return 0
		}
		return 1
	}
	slices.SortStableFunc(forge, func(a, b Effect) int { return rank(a) - rank(b) })
	for j, i := range at {
		effs[i] = forge[j]
	}
}

type decision struct {
	g   Given
	pol *policies.Policy
	in  Input
	now time.Time

	esc     *Escalation // the projection as the events so far leave it
	events  []Event
	effects []Effect
}

func (d *decision) actor() string {
	if d.in.Actor.Person != "" {
		return d.in.Actor.Person
	}
	return d.in.Actor.String()
}

func (d *decision) id() string {
	if d.esc != nil && d.esc.ID != "" {
		return d.esc.ID
	}
	return IDPlaceholder
}

// emit records an event and folds it into d.esc.
func (d *decision) emit(kind EventKind, data EventData) {
	ev := Event{Kind: kind, Actor: d.actor(), At: d.now, Data: data}
	if d.esc != nil {
		ev.Escalation = d.esc.ID
		ev.SHA = d.esc.HeadSHA
	}
	if kind == EventOpened || kind == EventMRUpdated {
		if d.in.MR != nil && d.in.MR.MR != nil && d.in.MR.MR.SHA != "" {
			ev.SHA = d.in.MR.MR.SHA
		}
	}
	if kind == EventCapOverridden {
		ev.Escalation, ev.SHA = "", ""
	} else {
		d.esc = apply(d.esc, ev)
	}
	d.events = append(d.events, ev)
}

func (d *decision) effect(e Effect) {
	if d.esc != nil {
		e.Escalation = d.esc.ID
		if e.Project == "" {
			e.Project, e.MRIID = d.esc.Project, d.esc.MRIID
		}
	}
	d.effects = append(d.effects, e)
}

func (d *decision) reply(format string, args ...any) {
	d.effects = append(d.effects, Effect{Kind: EffectReply, Text: fmt.Sprintf(format, args...)})
}

func (d *decision) tier() *policies.Tier {
	if d.esc == nil {
		return nil
	}
	return d.pol.Tier(d.esc.Tier)
}

// --- merge requests -------------------------------------------------------

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
		d.open(mr, mi.CommitAuthors, res, false, false, "", nil, res.Tier)
		return nil
	}
	e := d.esc
	if e.State == StateMerged {
		return nil // the end: nothing moves a merged escalation
	}
	// Out-of-order deliveries: an event older than what we have seen
	// must not move the escalation backwards.
	if !mr.UpdatedAt.IsZero() && !e.MRUpdatedAt.IsZero() && mr.UpdatedAt.Before(e.MRUpdatedAt) {
		return nil
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
		d.emit(EventMerged, EventData{Bypassed: bypassed, MRState: "merged"})
		d.emit(EventStateChanged, EventData{From: from, To: StateMerged})
		if bypassed {
			text := fmt.Sprintf("BYPASS: %s (%s!%d) was merged at %s while %s, without the security approval its tier %s requires for that commit.", d.id(), e.Project, e.MRIID, shortSHA(d.esc.HeadSHA), from, e.Tier)
			d.effect(Effect{Kind: EffectThreadPost, Security: true, Text: text})
			d.effect(Effect{Kind: EffectMRNote, Text: text})
		}
		return nil
	case "closed":
		if d.esc.State == StateWithdrawn {
			return nil
		}
		d.update(mr, mi)
		d.emit(EventWithdrawn, EventData{MRState: "closed", Text: "the merge request was closed"})
		d.emit(EventStateChanged, EventData{From: d.esc.State, To: StateWithdrawn})
		d.effect(Effect{Kind: EffectThreadPost, Text: fmt.Sprintf("%s withdrawn: the merge request was closed.", d.id())})
		return nil
	}
	if d.esc.State == StateWithdrawn && d.esc.MRState == "closed" {
		d.emit(EventReopened, EventData{})
		d.effect(Effect{Kind: EffectThreadPost, Text: fmt.Sprintf("%s resumed: the merge request was reopened.", d.id())})
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
			text := fmt.Sprintf("%s is back in review: %s. Its tier %s is no longer in the policy; someone in %s must re-tier it.", d.id(), why, d.esc.Tier, strings.Join(d.pol.Authority.Retier, ", "))
			d.effect(Effect{Kind: EffectMRNote, Text: text})
			d.effect(Effect{Kind: EffectThreadPost, Text: text})
			return nil
		}
		text := fmt.Sprintf("%s is back in review as %s: %s.\n%s", d.id(), t.ID, why, d.requirements(t))
		d.effect(Effect{Kind: EffectMRNote, Text: text})
		d.effect(Effect{Kind: EffectMRLabels, Labels: []string{tierLabel(t.ID)}})
		d.effect(Effect{Kind: EffectThreadPost, Text: text, Mention: d.approversOf(t)})
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
	summary := d.summary(t)
	d.effect(Effect{Kind: EffectMRNote, Text: summary})
	d.effect(Effect{Kind: EffectMRLabels, Labels: []string{tierLabel(t.ID)}})
	d.effect(Effect{Kind: EffectThreadPost, Text: "The merge request needs a security review on its own: " + summary, Mention: d.approversOf(t)})
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
	if changed {
		d.emit(EventMRUpdated, data)
	}
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
		d.emit(EventTierRaised, EventData{Tier: res.Tier.ID, TierName: res.Tier.Name, FromTier: from, Score: res.Score, Signals: res.Signals, FirstResponseDue: fr, DecisionDue: dd})
		d.endDeferralIfNotDeferrable(res.Tier)
		if quiet {
			return
		}
		text := fmt.Sprintf("%s: tier raised from %s to %s (score %d).\n%s", d.id(), from, res.Tier.ID, res.Score, d.requirements(res.Tier))
		d.effect(Effect{Kind: EffectMRNote, Text: text})
		d.effect(Effect{Kind: EffectMRLabels, Labels: []string{tierLabel(res.Tier.ID)}})
		d.effect(Effect{Kind: EffectThreadPost, Text: text, Mention: d.approversOf(res.Tier)})
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
		Tier: t.ID, TierName: t.Name, Score: res.Score, Signals: res.Signals,
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
			ask := fmt.Sprintf("Manual escalation %s of %s!%d (%s %s) by %s: %s\nBefore it counts as filed, %s, please answer each as a line \"field: answer\" in this thread:%s",
				d.id(), data.Project, data.MRIID, t.ID, t.Name, d.actor(), reason, d.actor(), intakePrompts(missing))
			d.effect(Effect{Kind: EffectThreadPost, Text: ask, Mention: []string{d.actor()}})
			d.reply("%s opened as a draft; answer its intake in the thread (or here, as lines \"field: answer\"):%s", IDPlaceholder, intakePrompts(missing))
			return
		}
		d.emit(EventOpened, data)
		d.emit(EventFiled, EventData{FirstResponseDue: data.FirstResponseDue, DecisionDue: data.DecisionDue})
	} else {
		d.emit(EventOpened, data)
	}
	summary := d.summary(t)
	d.effect(Effect{Kind: EffectMRNote, Text: summary})
	d.effect(Effect{Kind: EffectMRLabels, Labels: []string{tierLabel(t.ID)}})
	d.effect(Effect{Kind: EffectThreadPost, Text: summary, Mention: d.approversOf(t)})
	if manual {
		d.reply("Escalated %s!%d as %s (%s %s). Follow it in its thread.", data.Project, data.MRIID, IDPlaceholder, t.ID, t.Name)
	} else {
		d.reply("%s!%d escalated as %s (%s %s, score %d).", data.Project, data.MRIID, IDPlaceholder, t.ID, t.Name, res.Score)
	}
}

// --- commands -------------------------------------------------------------

func (d *decision) command() error {
	c := d.in.Command
	if c == nil {
		return fmt.Errorf("decide: command input without a command")
	}
	switch c.Verb {
	case VerbHelp:
		d.reply("%s", HelpText(Verb(c.Text)))
		return nil
	case VerbStatus:
		if d.esc == nil {
			return d.noEscalation(c)
		}
		d.reply("%s", d.statusText())
		return nil
	case VerbBacklog:
		return problemf("/threatgate backlog", "the backlog is answered by the engine, not here")
	}
	if err := d.known(c); err != nil {
		return err
	}
	switch c.Verb {
	case VerbEscalate:
		return d.escalate(c)
	case VerbOverrideCap:
		return d.overrideCap(c)
	}
	if d.esc == nil {
		return d.noEscalation(c)
	}
	if d.esc.State.Ended() && c.Verb != VerbDissent && c.Verb != VerbAction {
		return problemf(verbField(c.Verb), "%s is %s; only dissent and action items can still be recorded", d.esc.ID, d.esc.State)
	}
	if d.esc.State == StateIntake && c.Verb != VerbIntake && c.Verb != VerbWithdraw && c.Verb != VerbDissent && c.Verb != VerbAction {
		missing := d.missingIntake(d.esc.Intake)
		return problemf(verbField(c.Verb), "%s is not filed yet: %s must answer its intake first:%s", d.esc.ID, d.esc.Filer, intakePrompts(missing))
	}
	if d.esc.Tier != "" && d.tier() == nil && needsTier(c.Verb) {
		// The policy changed under an open escalation: its tier is gone.
		// Nothing is decided against a tier that does not exist; an
		// authorised person puts it in one that does.
		return problemf(verbField(c.Verb), "%s's tier %s is no longer in the policy; someone in %s must first re-tier it with /threatgate retier %s <%s> <rationale>",
			d.esc.ID, d.esc.Tier, strings.Join(d.pol.Authority.Retier, ", "), d.esc.ID, strings.Join(d.tierIDs(), "|"))
	}
	if HeadBound(c.Verb) && d.in.Head != "" && d.in.Head != d.esc.HeadSHA {
		return problemf(verbField(c.Verb), "the merge request moved from %s to %s since you wrote this; review the new commits and write the command again", shortSHA(d.in.Head), shortSHA(d.esc.HeadSHA))
	}
	switch c.Verb {
	case VerbApprove:
		return d.approve(c)
	case VerbReject:
		return d.reject(c)
	case VerbDissent:
		d.emit(EventDissent, EventData{Text: c.Text})
		d.effect(Effect{Kind: EffectThreadPost, Text: fmt.Sprintf("Dissent from %s on %s, recorded: %s", d.actor(), d.id(), c.Text)})
		d.reply("Dissent recorded on %s.", d.id())
		return nil
	case VerbAction:
		d.emit(EventAction, EventData{Text: c.Text})
		d.reply("Action item %d recorded on %s.", len(d.esc.Actions), d.id())
		return nil
	case VerbArtifact:
		return d.artifact(c)
	case VerbIntake:
		return d.intake(c)
	case VerbDefer:
		return d.deferral(c)
	case VerbRisk:
		return d.risk(c)
	case VerbRetier:
		return d.retier(c)
	case VerbWithdraw:
		return d.withdraw(c)
	}
	return problemf("/threatgate", "unknown verb %q; %s", c.Verb, HelpText(""))
}

// needsTier reports whether verb v decides against the escalation's tier
// (its matrix, checklist, deadlines, risk ceiling).
func needsTier(v Verb) bool {
	switch v {
	case VerbApprove, VerbReject, VerbDefer, VerbRisk, VerbIntake:
		return true
	}
	return false
}

// VerbField names a verb's command as the user typed it, for Problems.
func VerbField(v Verb) string { return verbField(v) }

func verbField(v Verb) string {
	switch v {
	case VerbEscalate:
		return "/escalate"
	case VerbApprove:
		return "/approve"
	}
	return "/threatgate " + string(v)
}

func (d *decision) noEscalation(c *Command) error {
	if c.Escalation != "" {
		return problemf(verbField(c.Verb), "no escalation %s; try /threatgate backlog", c.Escalation)
	}
	return problemf(verbField(c.Verb), "which escalation? name it (for example %s ESC-12 ...) or use the command in the escalation's thread", verbField(c.Verb))
}

// known refuses commands from people the policy does not know.
func (d *decision) known(c *Command) error {
	p := d.in.Actor.Person
	if p == "" || d.pol.Person("id", p) == nil {
		return problemf(verbField(c.Verb), "you (%s) are not in the policy's people, so threatgate cannot tell which groups you belong to; ask the security team to add you", d.in.Actor)
	}
	return nil
}

func (d *decision) person() *policies.Person { return d.pol.Person("id", d.in.Actor.Person) }

// isAuthor reports whether the actor wrote the MR or one of its commits.
func (d *decision) isAuthor() bool { return wrote(d.person(), d.esc.Authors()) }

// wrote reports whether person pr is one of authors, which holds GitLab
// usernames and, for commits, e-mail addresses (matched against every
// address of the person, without regard to case).
func wrote(pr *policies.Person, authors []string) bool {
	if pr == nil {
		return false
	}
	for _, a := range authors {
		if a == "" {
			continue
		}
		a = strings.TrimSpace(a)
		// GitLab keeps the case a username was registered with; policies
		// are usually written in lower case.
		if (pr.GitLab != "" && strings.EqualFold(a, pr.GitLab)) || strings.EqualFold(a, pr.ID) {
			return true
		}
		if id, user, ok := noreply(a); ok && ((pr.GitLabID != 0 && id == pr.GitLabID) || (pr.GitLab != "" && strings.EqualFold(user, pr.GitLab))) {
			return true
		}
		for _, m := range pr.Emails {
			if strings.EqualFold(a, m) {
				return true
			}
		}
	}
	return false
}

// UnknownAuthors returns the authors and committers of e's commits (GitLab
// gives their e-mail addresses) that match nobody in the policy, so that an
// approver sees who else wrote the change. They do not stop anyone from
// approving: only a match can.
func UnknownAuthors(e *Escalation, pol *policies.Policy) []string {
	if e == nil || pol == nil {
		return nil
	}
	var out []string
	for _, a := range e.CommitAuthors {
		if !slices.ContainsFunc(pol.People, func(pr *policies.Person) bool { return wrote(pr, []string{a}) }) && !slices.Contains(out, a) {
			out = append(out, a)
		}
	}
	return out
}

// noreply reads GitLab's private commit e-mail addresses: "<id>-<username>@
// users.noreply.<host>" and the older "<username>@users.noreply.<host>"
// (id 0). A commit made in the web IDE by someone who hides their e-mail
// carries one.
func noreply(addr string) (id int64, username string, ok bool) {
	local, domain, found := strings.Cut(addr, "@")
	if !found || !strings.HasPrefix(strings.ToLower(domain), "users.noreply.") || local == "" {
		return 0, "", false
	}
	if n, user, dash := strings.Cut(local, "-"); dash && user != "" {
		if v, err := strconv.ParseInt(n, 10, 64); err == nil && v > 0 {
			return v, user, true
		}
	}
	return 0, local, true
}

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
	summary := d.summary(t)
	d.effect(Effect{Kind: EffectMRNote, Text: summary})
	d.effect(Effect{Kind: EffectMRLabels, Labels: []string{tierLabel(t.ID)}})
	d.effect(Effect{Kind: EffectThreadPost, Text: "Filed. " + summary, Mention: d.approversOf(t)})
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
		return problemf(f, "%s accepts a residual risk of at most %d and none is recorded for %s yet; someone other than the merge request's author records it first with /threatgate risk %s <1-25> <rationale>, then approve",
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
	d.emit(EventDeferred, EventData{Until: until, Text: c.Text})
	d.emit(EventStateChanged, EventData{From: e.State, To: StateDeferred})
	d.reply("%s deferred until %s.", d.id(), until.Format("2006-01-02 15:04 MST"))
	return nil
}

func (d *decision) risk(c *Command) error {
	f, e, t := "/threatgate risk", d.esc, d.tier()
	if t == nil || !d.mayGovern(t) || d.isAuthor() {
		return problemf(f, "only approvers of %s or %s may assess residual risk", e.Tier, strings.Join(d.pol.Authority.Retier, ", "))
	}
	if c.Risk < 1 || c.Risk > 25 {
		return problemf(f, "want a residual risk from 1 to 25 (likelihood 1-5 x impact 1-5), got %d", c.Risk)
	}
	d.emit(EventRisk, EventData{Risk: c.Risk, Text: c.Text})
	msg := fmt.Sprintf("Residual risk of %s set to %d.", d.id(), c.Risk)
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
	data := EventData{Tier: t.ID, TierName: t.Name, FromTier: e.Tier, Text: c.Text}
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
	text := fmt.Sprintf("%s re-tiered from %s to %s by %s: %s\n%s", d.id(), data.FromTier, t.ID, d.actor(), c.Text, d.requirements(t))
	d.effect(Effect{Kind: EffectMRNote, Text: text})
	d.effect(Effect{Kind: EffectMRLabels, Labels: []string{tierLabel(t.ID)}})
	d.effect(Effect{Kind: EffectThreadPost, Text: text})
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
	d.effect(Effect{Kind: EffectThreadPost, Text: fmt.Sprintf("%s withdrawn by %s: %s", d.id(), me, c.Text)})
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
	d.emit(EventStateChanged, EventData{From: StateDeferred, To: d.target(), Text: "tier " + t.ID + " cannot be deferred"})
	d.effect(Effect{Kind: EffectThreadPost, Text: fmt.Sprintf("%s: the deferral has ended, as tier %s cannot be deferred; back to %s.", d.id(), t.ID, d.esc.State), Mention: Waiting(d.esc, d.pol)})
}

// withdrawalHolds reports whether a person's withdrawal of the escalation
// still releases the gate for the MR as just evaluated (res): only on the
// head it was made on, and only when the policy does not tier that head.
func (d *decision) withdrawalHolds(res policies.Result) bool {
	e := d.esc
	return res.Tier == nil && e.WithdrawnSHA != "" && e.WithdrawnSHA == e.HeadSHA
}

// --- time -----------------------------------------------------------------

func (d *decision) tick() {
	if d.esc != nil && d.esc.State == StateDeferred && !d.now.Before(d.esc.DeferredUntil) {
		d.emit(EventStateChanged, EventData{From: StateDeferred, To: d.target()})
		d.effect(Effect{Kind: EffectThreadPost, Text: fmt.Sprintf("%s: the deferral has ended; back to %s.", d.id(), d.esc.State), Mention: d.esc.Waiting})
	}
}

// --- settling -------------------------------------------------------------

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
		return false
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

// riskAccepted reports whether e's residual risk lets tier t approve it:
// a tier with max_residual_risk needs a recorded score and, above the
// ceiling, an approval that counts from someone with the risk-acceptance
// role, given after that score was recorded.
func (d *decision) riskAccepted(e *Escalation, t *policies.Tier) bool {
	if t.MaxResidualRisk == 0 {
		return true
	}
	r := RiskOf(e, d.pol)
	if r == nil {
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
			d.emit(EventStateChanged, EventData{From: from, To: to})
			d.transitioned(from, to)
		}
	}
	d.statusEffect()
	// The card shows "due in ..." which moves with time: compare the cards
	// as of now, so only a real change edits the thread.
	if now := d.card(d.esc); len(d.events) > 0 && now != d.card(d.g.Esc) {
		d.effect(Effect{Kind: EffectThreadSummary, Text: now, Mention: Waiting(d.esc, d.pol)})
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
		text := fmt.Sprintf("%s approved (%s %s).\n%s", d.id(), e.Tier, e.TierName, d.decisionsText(e.Approvals))
		d.effect(Effect{Kind: EffectMRNote, Text: text})
		d.effect(Effect{Kind: EffectThreadPost, Text: text})
	case StateRejected:
		text := fmt.Sprintf("%s rejected.\n%s", d.id(), d.decisionsText(e.Rejections))
		d.effect(Effect{Kind: EffectMRNote, Text: text})
		d.effect(Effect{Kind: EffectThreadPost, Text: text})
	case StateDisputed:
		d.effect(Effect{Kind: EffectThreadPost, Text: fmt.Sprintf("%s is disputed: it has both approvals and rejections. An arbiter (%s) decides with /approve or /threatgate reject.", d.id(), strings.Join(d.pol.Authority.Arbiter, ", "))})
	case StateInReview:
		if from == StateAwaitingArtifacts {
			d.effect(Effect{Kind: EffectThreadPost, Text: fmt.Sprintf("%s has every required artifact and is ready for review.", d.id()), Mention: d.waiting()})
		} else if from == StateApproved || from == StateRejected {
			d.effect(Effect{Kind: EffectThreadPost, Text: fmt.Sprintf("%s is back in review: new commits at %s made earlier decisions stale.", d.id(), shortSHA(e.HeadSHA)), Mention: d.waiting()})
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
		d.effect(Effect{Kind: EffectStatus, SHA: d.esc.HeadSHA, Status: now, Text: desc})
		return
	}
	if st := d.seenStatus(); st != nil && !sameStatus(st.State, now) {
		// The forge shows something else than the gate's state on the
		// head: lost, stale, or set by someone else. Put the truth back.
		// A missing status or one of ours that is out of date is simply set
		// again; one set by someone else is recorded as forged.
		if st.State != "" && !st.Ours {
			d.emit(EventStatusForged, EventData{Person: st.Author, Text: fmt.Sprintf("status %q on %s was set by %s, not threatgate; reset to %q", st.State, shortSHA(st.SHA), st.Author, now)})
			d.effect(Effect{Kind: EffectThreadPost, Security: true, Text: fmt.Sprintf("FORGED STATUS: %s found the gate's status %q on %s set by %s; it is reset to %q.", d.id(), st.State, shortSHA(st.SHA), st.Author, now)})
		}
		d.effect(Effect{Kind: EffectStatus, SHA: d.esc.HeadSHA, Status: now, Text: desc})
		return
	}
	if d.g.Esc != nil {
		before, bdesc := d.gate(d.g.Esc)
		if before == now && bdesc == desc && d.g.Esc.HeadSHA == d.esc.HeadSHA {
			return
		}
	}
	d.effect(Effect{Kind: EffectStatus, SHA: d.esc.HeadSHA, Status: now, Text: desc})
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
			} else if !d.riskAccepted(e, t) {
				need = append(need, fmt.Sprintf("%s (risk %d > %d)", RoleRiskAcceptance, r.Score, t.MaxResidualRisk))
			}
		}
	}
	desc := fmt.Sprintf("%s %s: needs %s", e.ID, e.Tier, strings.Join(need, "; "))
	if len(need) == 0 {
		desc = fmt.Sprintf("%s %s: in review", e.ID, e.Tier)
	}
	if r := []rune(desc); len(r) > 140 {
		desc = string(r[:137]) + "..."
	}
	return StatusPending, desc
}

// --- approvals matrix -----------------------------------------------------

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

func shortSHA(s string) string {
	if len(s) > 8 {
		return s[:8]
	}
	if s == "" {
		return "(no commit yet)"
	}
	return s
}
