package bot

import (
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/threatgate/threatgate/policies"
)

// The sweep: what the clock does to an escalation. The scheduler ticks the
// escalations whose NextTick has come (the store's tick index); each tick
// goes through decide like any input, so everything it does is an event.
//
//   - A deferral ends on its date, and the deadlines move by how long it
//     lasted.
//   - Reminders: the people an escalation waits on (its approvers in
//     review, its arbiters when disputed, whoever owes the artifacts while
//     they are missing) are reminded at 50% and 90% of the decision window,
//     once per threshold, and only inside their own working hours; the
//     owners of overdue action items are reminded once.
//   - Handoff: when the tier's handoff_after passes with nobody responding,
//     or someone it waits on is away, the backups of the approving groups
//     are asked, in order.
//   - Lapse: when the decision deadline passes on a tier with
//     page_on_lapse, on-call is paged once; the page is resolved when the
//     escalation is decided or withdrawn.
//   - Status updates: the informed groups get one every update_every.

// NudgeThresholds are the points of the decision window, in percent, at
// which the people an escalation waits on are reminded.
var NudgeThresholds = []int{50, 90}

// Reasons of a handoff (Handoff.Reason): nobody responded within the
// tier's handoff_after, or someone was away.
const (
	HandoffNoResponse = "no-response"
	handoffAwayPrefix = "away:"
)

// defaultHours are working hours when a person has none.
const defaultHours = "09:00-17:00"

// workingHours parses "09:00-17:00" into minutes after midnight; ok false
// for anything else.
func workingHours(s string) (start, end int, ok bool) {
	if s == "" {
		s = defaultHours
	}
	a, b, found := strings.Cut(s, "-")
	if !found {
		return 0, 0, false
	}
	parse := func(x string) (int, bool) {
		h, m, found := strings.Cut(strings.TrimSpace(x), ":")
		hh, err1 := strconv.Atoi(h)
		mm, err2 := strconv.Atoi(m)
		if !found || err1 != nil || err2 != nil || hh < 0 || hh > 24 || mm < 0 || mm > 59 || hh == 24 && mm != 0 {
			return 0, false
		}
		return hh*60 + mm, true
	}
	start, ok1 := parse(a)
	end, ok2 := parse(b)
	return start, end, ok1 && ok2 && start < end
}

// location is where a person works (UTC when the policy does not say).
func location(p *policies.Person) *time.Location {
	if p != nil && p.Location != nil {
		return p.Location
	}
	return time.UTC
}

// WorkingAt reports whether t is inside p's working hours: Monday to
// Friday, between the start and the end of people[].hours (09:00-17:00 by
// default), on the wall clock of people[].timezone (UTC by default), so
// daylight-saving changes move the hours with the clock. Someone the policy
// does not know (nil) is reminded at any time.
func WorkingAt(p *policies.Person, t time.Time) bool {
	if p == nil {
		return true
	}
	start, end, ok := workingHours(p.Hours)
	if !ok {
		return true
	}
	lt := t.In(location(p))
	if wd := lt.Weekday(); wd == time.Saturday || wd == time.Sunday {
		return false
	}
	m := lt.Hour()*60 + lt.Minute()
	return m >= start && m < end
}

// NextWorkStart returns the first moment at or after t that is inside p's
// working hours (t itself when it is).
func NextWorkStart(p *policies.Person, t time.Time) time.Time {
	if WorkingAt(p, t) {
		return t
	}
	start, _, _ := workingHours(p.Hours)
	loc := location(p)
	lt := t.In(loc)
	for i := 0; i < 8; i++ {
		day := time.Date(lt.Year(), lt.Month(), lt.Day()+i, start/60, start%60, 0, 0, loc)
		if !day.Before(t) && WorkingAt(p, day) {
			return day
		}
	}
	return t.Add(24 * time.Hour) // unreachable with valid hours
}

// windowStart is when an escalation's decision window began.
func windowStart(e *Escalation) time.Time {
	return e.CreatedAt
}

// thresholdAt is when threshold percent of e's decision window is reached;
// zero when e has no window.
func thresholdAt(e *Escalation, pct int) time.Time {
	start := windowStart(e)
	if e.DecisionDue.IsZero() || start.IsZero() || !e.DecisionDue.After(start) {
		return time.Time{}
	}
	return start.Add(e.DecisionDue.Sub(start) * time.Duration(pct) / 100)
}

// nudgeTargets returns what e's reminders are for and whom they go to now
// (WaitingOn, the rule every surface shows): "artifact" while artifacts
// are missing, "approval" in review and when disputed.
func nudgeTargets(e *Escalation, pol *policies.Policy) (what string, people []string) {
	switch e.State {
	case StateAwaitingArtifacts:
		return "artifact", WaitingOn(e, pol)
	case StateInReview, StateDisputed:
		return "approval", WaitingOn(e, pol)
	}
	return "", nil
}

// sweeping reports whether the clock acts on e: active, filed, not paused.
func sweeping(e *Escalation) bool {
	return e != nil && e.State.Active() && e.State != StateIntake && !Paused(e)
}

// NextTick returns when the sweep must next look at e: the earliest of the
// end of its deferral, its next reminder (at the start of the working day
// of the first person it would go to), its handoff, its lapse and its next
// status update; zero when the clock has nothing more to do with it. The
// store indexes it, so a sweep reads only what is due.
func NextTick(e *Escalation, pol *policies.Policy, now time.Time) time.Time {
	return nextTickOf(e, pol, now, false)
}

// NextTickAfter is NextTick leaving out what was due at or before now: the
// next tick of an escalation the sweep has just looked at, which did all
// it could (what is left due, such as a handoff to groups without
// backups, cannot be done by the clock alone).
func NextTickAfter(e *Escalation, pol *policies.Policy, now time.Time) time.Time {
	return nextTickOf(e, pol, now, true)
}

func nextTickOf(e *Escalation, pol *policies.Policy, now time.Time, after bool) time.Time {
	var next time.Time
	consider := func(t time.Time) {
		if t.IsZero() || after && !t.After(now) {
			return
		}
		if next.IsZero() || t.Before(next) {
			next = t
		}
	}
	if e == nil || pol == nil {
		return next
	}
	// Action items outlive the merge: their owners are reminded once
	// when one is overdue, whatever the escalation's state.
	for i, a := range e.Actions {
		owner, dl := ActionOwner(a), ActionDeadline(a)
		if a.Done || dl.IsZero() || owner == "" || slices.Contains(e.Nudged, NudgeKey(actionWhat(i), 0, owner)) {
			continue
		}
		consider(NextWorkStart(pol.Person("id", owner), maxTime(dl, now)))
	}
	if e.State == StateDeferred {
		consider(e.DeferredUntil)
		return next
	}
	if !sweeping(e) {
		return next
	}
	t := pol.Tier(e.Tier)
	if t == nil {
		return next
	}
	if t.PageOnLapse && !e.Paged {
		consider(e.DecisionDue)
	}
	if n := handoffCount(e, HandoffNoResponse); t.HandoffAfter > 0 && n < len(backupsOf(t, pol)) && !FirstResponded(e, pol) {
		consider(e.CreatedAt.Add(time.Duration(n+1) * t.HandoffAfter))
	}
	what, people := nudgeTargets(e, pol)
	if len(backupsOf(t, pol)) > 0 {
		for _, who := range people {
			// Away by the policy's away_until: the sweep hands off now.
			// (An absence recorded with /threatgate away sweeps the
			// escalations waiting on them when it is recorded.)
			if p := pol.Person("id", who); p != nil && p.AwayUntil.After(now) && !handedOff(e, handoffAwayPrefix+who) {
				consider(now)
			}
		}
	}
	for _, pct := range NudgeThresholds {
		at := thresholdAt(e, pct)
		if at.IsZero() {
			continue
		}
		for _, who := range people {
			if slices.Contains(e.Nudged, NudgeKey(what, pct, who)) {
				continue
			}
			consider(NextWorkStart(pol.Person("id", who), maxTime(at, now)))
		}
	}
	if t.UpdateEvery > 0 && len(t.Inform) > 0 {
		consider(maxTime(e.InformedAt, e.CreatedAt).Add(t.UpdateEvery))
	}
	return next
}

func maxTime(a, b time.Time) time.Time {
	if a.After(b) {
		return a
	}
	return b
}

func actionWhat(i int) string { return "action:" + strconv.Itoa(i+1) }

// handedOff reports whether e was handed off for reason.
func handedOff(e *Escalation, reason string) bool {
	return slices.ContainsFunc(e.HandedOff, func(h Handoff) bool { return h.Reason == reason })
}

// sweep does what the clock asks of the escalation at d.now.
func (d *decision) sweep() {
	e := d.esc
	if e == nil {
		return
	}
	d.actionNudges()
	if e.State == StateDeferred {
		if !d.now.Before(e.DeferredUntil) {
			d.endDeferral()
		}
		return
	}
	if !sweeping(e) {
		return
	}
	t := d.tier()
	if t == nil {
		return
	}
	d.lapse(t)
	d.handoffs(t)
	d.nudges()
	d.informed(t)
}

// endDeferral brings a deferred escalation back, its deadlines moved by
// the time it was deferred.
func (d *decision) endDeferral() {
	d.emit(EventStateChanged, d.resumeData())
	d.effect(Effect{Kind: EffectThreadPost, Notice: &Notice{Kind: NoticeDeferralEnded, State: d.esc.State}, Mention: Waiting(d.esc, d.pol)})
}

// lapse pages on-call once when the decision deadline has passed on a
// tier that asks for it.
func (d *decision) lapse(t *policies.Tier) {
	e := d.esc
	// Lapsed at the deadline's instant (NextTick names that instant).
	if !t.PageOnLapse || e.Paged || e.DecisionDue.IsZero() || d.now.Before(e.DecisionDue) {
		return
	}
	d.emit(EventPaged, EventData{Text: "decision deadline lapsed"})
	d.effect(Effect{Kind: EffectPage, Text: PageSummary(e, d.now)})
	d.effect(Effect{Kind: EffectThreadPost, Security: true, Notice: &Notice{Kind: NoticeLapsed, Project: e.Project, MRIID: e.MRIID, Tier: e.Tier, TierName: e.TierName, State: e.State, Due: e.DecisionDue},
		Mention: Waiting(e, d.pol)})
}

// PageSummary is the one line a page says about e.
func PageSummary(e *Escalation, now time.Time) string {
	return e.ID + " " + e.Project + "!" + strconv.FormatInt(e.MRIID, 10) + " (" + e.Tier + " " + e.TierName + ", " + strings.ReplaceAll(string(e.State), "_", " ") +
		"): security decision overdue by " + HumanDuration(now.Sub(e.DecisionDue))
}

// PageKey is the dedup key of the page about escalation esc: repeats are
// one incident.
func PageKey(esc string) string { return "threatgate/" + esc }

// resolvePage resolves the page of an escalation that no longer waits on
// anyone (settle calls it after every decision).
func (d *decision) resolvePage() {
	e := d.esc
	if e == nil || !e.Paged {
		return
	}
	why := "the escalation is " + strings.ReplaceAll(string(e.State), "_", " ")
	if e.State.Active() {
		// Still open: the page holds while its tier pages on lapse and
		// the decision is overdue; a re-tier, a new window or a deferral
		// ends it.
		if t := d.tier(); t != nil && t.PageOnLapse && sweeping(e) && !e.DecisionDue.IsZero() && !d.now.Before(e.DecisionDue) {
			return
		}
		why = "the decision is no longer overdue on a tier that pages"
	}
	d.emit(EventPageResolved, EventData{Text: why})
	d.effect(Effect{Kind: EffectResolve, Text: PageKey(e.ID)})
}

// handoffs asks the backups of the approving groups, in order, when nobody
// has responded: the first backup group after handoff_after, the next one
// after another handoff_after, and so on; and, when someone the
// escalation waits on is away, the first backup group of their groups that
// has someone present.
func (d *decision) handoffs(t *policies.Tier) {
	e := d.esc
	groups := backupsOf(t, d.pol)
	if len(groups) == 0 {
		return
	}
	if n := handoffCount(e, HandoffNoResponse); n < len(groups) && !FirstResponded(e, d.pol) && HandoffDue(e, d.pol, d.now) &&
		!d.now.Before(e.CreatedAt.Add(time.Duration(n+1)*t.HandoffAfter)) {
		d.handoff(groups[n:n+1], HandoffNoResponse, "")
	}
	_, waiting := nudgeTargets(e, d.pol)
	for _, who := range waiting {
		p := d.pol.Person("id", who)
		if !AwayAt(p, d.g.Away, d.now) || handedOff(e, handoffAwayPrefix+who) {
			continue
		}
		var theirs []string
		for _, a := range t.Approvals {
			if d.pol.InGroup(who, a.Group) {
				if g := d.pol.Groups[a.Group]; g != nil {
					theirs = append(theirs, g.Backups...)
				}
			}
		}
		if len(theirs) == 0 {
			theirs = groups
		}
		for _, g := range theirs {
			if d.present(g) {
				d.handoff([]string{g}, handoffAwayPrefix+who, who)
				break
			}
		}
	}
}

// present reports whether group g has a member who is not away.
func (d *decision) present(g string) bool {
	grp := d.pol.Groups[g]
	if grp == nil {
		return false
	}
	return slices.ContainsFunc(grp.Members, func(m string) bool { return !AwayAt(d.pol.Person("id", m), d.g.Away, d.now) })
}

// handoffCount counts e's handoffs for reason.
func handoffCount(e *Escalation, reason string) int {
	n := 0
	for _, h := range e.HandedOff {
		if h.Reason == reason {
			n++
		}
	}
	return n
}

// handoff records that groups were asked, and asks their members in the
// thread.
func (d *decision) handoff(groups []string, reason, away string) {
	var people []string
	for _, g := range groups {
		if grp := d.pol.Groups[g]; grp != nil {
			for _, m := range grp.Members {
				if !slices.Contains(people, m) && !AwayAt(d.pol.Person("id", m), d.g.Away, d.now) {
					people = append(people, m)
				}
			}
		}
	}
	d.emit(EventHandedOff, EventData{Groups: groups, People: people, Text: reason})
	d.effect(Effect{Kind: EffectThreadPost, Notice: &Notice{Kind: NoticeHandoff, Tier: d.esc.Tier, Groups: groups, By: away, Why: reason, AskedOf: people}, Mention: people})
}

// nudges reminds, inside their working hours, the people the escalation
// waits on at each threshold of its decision window, and the owners of
// overdue action items.
func (d *decision) nudges() {
	e := d.esc
	what, people := nudgeTargets(e, d.pol)
	var reminded []string
	top := 0
	for _, pct := range NudgeThresholds {
		at := thresholdAt(e, pct)
		if at.IsZero() || d.now.Before(at) {
			continue
		}
		var due []string
		for _, who := range people {
			if !slices.Contains(d.esc.Nudged, NudgeKey(what, pct, who)) && WorkingAt(d.pol.Person("id", who), d.now) {
				due = append(due, who)
			}
		}
		if len(due) == 0 {
			continue
		}
		d.emit(EventNudged, EventData{Text: what, Threshold: pct, People: due})
		for _, who := range due {
			if !slices.Contains(reminded, who) {
				reminded = append(reminded, who)
			}
		}
		top = pct
	}
	if len(reminded) > 0 {
		d.effect(Effect{Kind: EffectThreadPost, Notice: &Notice{Kind: NoticeNudge, Threshold: top, Why: what, Tier: e.Tier, State: e.State, AskedOf: reminded, Due: e.DecisionDue}, Mention: reminded})
	}
}

// actionNudges reminds the owners of overdue action items, once each, in
// their working hours.
func (d *decision) actionNudges() {
	for _, n := range ActionsOverdue(d.esc, d.now) {
		a := d.esc.Actions[n-1]
		key, owner := actionWhat(n-1), ActionOwner(a)
		if owner == "" || slices.Contains(d.esc.Nudged, NudgeKey(key, 0, owner)) || !WorkingAt(d.pol.Person("id", owner), d.now) {
			continue
		}
		d.emit(EventNudged, EventData{Text: key, People: []string{owner}})
		d.effect(Effect{Kind: EffectThreadPost, Notice: &Notice{Kind: NoticeNudge, Why: key, Text: a.Text, AskedOf: []string{owner}, Due: ActionDeadline(a)}, Mention: []string{owner}})
	}
}

// informed sends the informed groups a status update every update_every:
// the summary, edited in place where each group reads it.
func (d *decision) informed(t *policies.Tier) {
	e := d.esc
	if t.UpdateEvery <= 0 || len(t.Inform) == 0 || d.now.Before(maxTime(e.InformedAt, e.CreatedAt).Add(t.UpdateEvery)) {
		return
	}
	d.emit(EventInformed, EventData{Groups: t.Inform})
	d.effect(Effect{Kind: EffectThreadSummary, Card: d.card(d.esc)})
}

// backupsOf lists the backup groups of t's approving groups, in order.
func backupsOf(t *policies.Tier, pol *policies.Policy) []string {
	var groups []string
	for _, a := range t.Approvals {
		if g := pol.Groups[a.Group]; g != nil {
			for _, b := range g.Backups {
				if !slices.Contains(groups, b) {
					groups = append(groups, b)
				}
			}
		}
	}
	return groups
}

// resumeData is the state change that ends a deferral now, however it
// ends (its date, a tier that cannot be deferred): back to where the
// escalation belongs, its deadlines moved by how long the deferral lasted
// (pauseOf: from its start to now or its end date, whichever is earlier).
func (d *decision) resumeData() EventData {
	e := d.esc
	data := EventData{From: StateDeferred, To: d.target()}
	// The pause ends at the deferral's end date even when the sweep comes
	// later: the deadlines are those DeadlineOf showed meanwhile.
	if paused, _ := pauseOf(e, d.now); paused > 0 && !e.DecisionDue.IsZero() {
		data.DecisionDue = e.DecisionDue.Add(paused)
		data.FirstResponseDue = e.FirstResponseDue
		if !e.FirstResponseDue.IsZero() {
			data.FirstResponseDue = e.FirstResponseDue.Add(paused)
		}
	}
	return data
}
