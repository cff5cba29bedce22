package bot

import (
	"cmp"
	"context"
	"fmt"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/threatgate/threatgate/policies"
)

// The retrospective: the periodic review of one calendar quarter (UTC):
// outcomes per tier, recurring missing artifacts, SLA breaches and the
// state they stalled in, near misses, and policy tuning suggestions, each
// naming its evidence. It is made from the quarter's window of the audit
// log only; nothing in it changes the policy.

// Thresholds of the retrospective's suggestions.
const (
	// RetroNoiseMinFired is how many escalations a signal must fire on in
	// the quarter, none of them rejected and none with a change asked,
	// to be a noise candidate.
	RetroNoiseMinFired = 5
	// RetroBreachMinCount and RetroBreachMinPercent: a tier whose
	// decision deadlines were breached at least this many times, and on
	// at least this share of its escalations decided or due, is
	// suggested for a deadline review.
	RetroBreachMinCount   = 3
	RetroBreachMinPercent = 50
	// RetroRecurringArtifact is how many escalations an artifact must be
	// missing on to be listed as recurring.
	RetroRecurringArtifact = 2
)

// Kinds of suggestion.
const (
	SuggestNoiseSignal          = "noise_signal"
	SuggestMissingSignal        = "missing_signal"
	SuggestTierDeadlineBreached = "tier_deadline_breached"
)

// Retro is one quarter's retrospective as data; RenderRetroText and the
// dashboard's /reports/retro render it.
type Retro struct {
	Year    int       `json:"year"`
	Quarter int       `json:"quarter"`
	From    time.Time `json:"from"`
	To      time.Time `json:"to"`
	// Partial: made before the quarter was over.
	Partial bool `json:"partial,omitempty"`

	Tiers       []TierOutcome     `json:"tiers"`
	Missing     []MissingArtifact `json:"missing_artifacts"`
	Breaches    []RetroBreach     `json:"sla_breaches"`
	Stalled     map[State]int     `json:"stalled"` // breaches per state the escalation was in at its deadline
	NearMisses  []NearMiss        `json:"near_misses"`
	Suggestions []Suggestion      `json:"suggestions"`
	// Caveats say what the window could not tell.
	Caveats []string `json:"caveats,omitempty"`
}

// Name is the quarter's name, "2026Q4".
func (r *Retro) Name() string { return QuarterName(r.Year, r.Quarter) }

// TierOutcome is what became of one tier's escalations in the quarter.
// An escalation counts in the tier it had when its outcome was recorded.
type TierOutcome struct {
	Tier      string `json:"tier"`
	Name      string `json:"name,omitempty"`
	Opened    int    `json:"opened"`
	Approved  int    `json:"approved"`
	Rejected  int    `json:"rejected"`
	Withdrawn int    `json:"withdrawn"`
	Bypassed  int    `json:"bypassed"` // merged without an approval
	Breached  int    `json:"breached"`
	Due       int    `json:"due"` // decided, or whose deadline passed undecided
}

// MissingArtifact is an artifact kind missing when escalations were
// decided or their decision deadline passed.
type MissingArtifact struct {
	Kind        string   `json:"kind"`
	Name        string   `json:"name,omitempty"`
	Escalations []string `json:"escalations"`
}

// RetroBreach is one decision deadline breached in the quarter.
type RetroBreach struct {
	Escalation string    `json:"escalation"`
	Tier       string    `json:"tier"`
	Due        time.Time `json:"due"`
	// Stalled is the state the escalation was in when Due passed.
	Stalled State `json:"stalled"`
	// DecidedAt is when it was decided after Due, zero when not in the
	// quarter.
	DecidedAt time.Time `json:"decided_at,omitzero"`
}

// NearMiss is an incident on an MR whose escalation had been approved.
type NearMiss struct {
	Incident   string `json:"incident"`
	MR         string `json:"mr"`
	Escalation string `json:"escalation"`
	Tier       string `json:"tier,omitempty"`
}

// Suggestion is a policy tuning suggestion and the data behind it.
type Suggestion struct {
	Kind     string   `json:"kind"`
	Subject  string   `json:"subject"`
	Evidence Evidence `json:"evidence"`
}

// Evidence is what a suggestion rests on.
type Evidence struct {
	Escalations []string       `json:"escalations,omitempty"`
	Incidents   []string       `json:"incidents,omitempty"`
	Counts      map[string]int `json:"counts,omitempty"`
	Note        string         `json:"note,omitempty"`
}

// QuarterName writes a quarter as "2026Q4".
func QuarterName(year, quarter int) string { return fmt.Sprintf("%04dQ%d", year, quarter) }

// QuarterStart is 00:00 UTC of the quarter's first day.
func QuarterStart(year, quarter int) time.Time {
	return time.Date(year, time.Month(3*(quarter-1)+1), 1, 0, 0, 0, 0, time.UTC)
}

var quarterPattern = regexp.MustCompile(`^([0-9]{4})-?[Qq]([0-9])$`)

// ParseQuarter reads a quarter such as "2026Q4". A malformed one is a
// *Problem naming the field "quarter".
func ParseQuarter(s string) (year, quarter int, err error) {
	m := quarterPattern.FindStringSubmatch(strings.TrimSpace(s))
	if m == nil {
		return 0, 0, problemf("quarter", "want a quarter such as %q, got %q", "2026Q4", s)
	}
	year, _ = strconv.Atoi(m[1])
	quarter, _ = strconv.Atoi(m[2])
	if quarter < 1 || quarter > 4 {
		return 0, 0, problemf("quarter", "a year has quarters 1 to 4, not %d", quarter)
	}
	return year, quarter, nil
}

// RetroOf reads the quarter's window of the audit log (one
// EventsBetween, never the whole store) and builds its retrospective as
// of now. Errors are internal.
func RetroOf(ctx context.Context, s History, year, quarter int, now time.Time, pol *policies.Policy) (*Retro, error) {
	from := QuarterStart(year, quarter)
	events, err := s.EventsBetween(ctx, from, from.AddDate(0, 3, 0))
	if err != nil {
		return nil, fmt.Errorf("retro %s: %w", QuarterName(year, quarter), err)
	}
	return BuildRetro(events, year, quarter, now, pol), nil
}

// BuildRetro makes the retrospective of quarter (year, quarter) as of now
// from the quarter's events (those outside it are ignored). It is pure.
// Escalations opened before the quarter are seen through their events in
// it only.
func BuildRetro(events []Event, year, quarter int, now time.Time, pol *policies.Policy) *Retro {
	from := QuarterStart(year, quarter)
	to := from.AddDate(0, 3, 0)
	r := &Retro{Year: year, Quarter: quarter, From: from, To: to, Partial: now.Before(to), Stalled: map[State]int{},
		Tiers: []TierOutcome{}, Missing: []MissingArtifact{}, Breaches: []RetroBreach{}, NearMisses: []NearMiss{}, Suggestions: []Suggestion{}}
	end := earlier(to.Add(-time.Nanosecond), now)
	var in []Event
	for _, ev := range events {
		if !ev.At.Before(from) && ev.At.Before(to) {
			in = append(in, ev)
		}
	}
	trails := trailsOf(in, nil)
	tiers := map[string]*TierOutcome{}
	tierOf := func(id string) *TierOutcome {
		t := tiers[id]
		if t == nil {
			t = &TierOutcome{Tier: id, Name: tierName(pol, id)}
			tiers[id] = t
		}
		return t
	}
	missing := map[string][]string{}
	missingNames := map[string]string{}
	preOpened := false

	type signalStat struct {
		fired, rejected, changed []string
	}
	signals := map[string]*signalStat{}

	for _, id := range sortedIDs(trails) {
		t := trails[id]
		if t.openedEvent() == nil {
			preOpened = true
		} else {
			tierOf(t.tierAt(t.openedEvent().At)).Opened++
		}
		var decidedAt time.Time
		var outcome State
		rejectedOnce, changed := false, false
		have := map[string]bool{}
		var def *TierSnapshot
		var missingAt []string
		recordMissing := func() {
			if def == nil || missingAt != nil {
				return
			}
			missingAt = []string{}
			for _, a := range def.Artifacts {
				if !have[a.ID] {
					missingAt = append(missingAt, a.ID)
					missingNames[a.ID] = a.Name
				}
			}
		}
		for _, ev := range t.events {
			if ev.Data.TierDef != nil {
				// Entering a tier, or a decision made under a definition
				// the policy changed since.
				def = ev.Data.TierDef
			}
			switch ev.Kind {
			case EventArtifactAdded:
				have[ev.Data.Artifact] = true
			case EventRejected:
				rejectedOnce = true
			case EventAction:
				changed = true
			case EventMerged:
				if ev.Data.Bypassed {
					tierOf(t.tierAt(ev.At)).Bypassed++
				}
			case EventStateChanged:
				switch ev.Data.To {
				case StateApproved, StateRejected:
					if decidedAt.IsZero() {
						decidedAt = ev.At
						recordMissing()
					}
					outcome = ev.Data.To
				case StateWithdrawn:
					tierOf(t.tierAt(ev.At)).Withdrawn++
				}
			}
		}
		if !decidedAt.IsZero() {
			to := tierOf(t.tierAt(decidedAt))
			to.Due++
			if outcome == StateApproved {
				to.Approved++
			} else {
				to.Rejected++
			}
			if due := t.dueAt(decidedAt); !due.IsZero() && decidedAt.After(due) {
				to.Breached++
				r.Breaches = append(r.Breaches, RetroBreach{Escalation: id, Tier: to.Tier, Due: due, Stalled: t.stateAt(due), DecidedAt: decidedAt})
			}
		} else if lapses := t.lapses(from.Add(-time.Nanosecond), end); len(lapses) > 0 {
			due := lapses[0]
			to := tierOf(t.tierAt(due))
			to.Due++
			to.Breached++
			r.Breaches = append(r.Breaches, RetroBreach{Escalation: id, Tier: to.Tier, Due: due, Stalled: t.stateAt(due)})
			// What was missing when the deadline passed.
			have = map[string]bool{}
			for _, ev := range t.events {
				if ev.Kind == EventArtifactAdded && !ev.At.After(due) {
					have[ev.Data.Artifact] = true
				}
			}
			recordMissing()
		}
		for _, k := range missingAt {
			missing[k] = append(missing[k], id)
		}
		// Signals: what became of the escalations each fired on.
		changed = changed || (outcome == StateApproved && rejectedOnce)
		for _, f := range t.firedInWindow() {
			s := signals[f.ID]
			if s == nil {
				s = &signalStat{}
				signals[f.ID] = s
			}
			s.fired = append(s.fired, id)
			if outcome == StateRejected {
				s.rejected = append(s.rejected, id)
			}
			if changed {
				s.changed = append(s.changed, id)
			}
		}
	}
	for _, tier := range tierOrder(pol, tiers) {
		r.Tiers = append(r.Tiers, *tiers[tier])
	}
	for k, ids := range missing {
		if len(ids) >= RetroRecurringArtifact {
			r.Missing = append(r.Missing, MissingArtifact{Kind: k, Name: missingNames[k], Escalations: ids})
		}
	}
	slices.SortFunc(r.Missing, func(a, b MissingArtifact) int {
		return cmp.Or(cmp.Compare(len(b.Escalations), len(a.Escalations)), strings.Compare(a.Kind, b.Kind))
	})
	slices.SortFunc(r.Breaches, func(a, b RetroBreach) int {
		return cmp.Or(a.Due.Compare(b.Due), compareEscalationIDs(a.Escalation, b.Escalation))
	})
	for _, b := range r.Breaches {
		r.Stalled[b.Stalled]++
	}

	// Incidents: near misses, and MRs no signal caught.
	missed := map[string]*Suggestion{}
	var missedOrder []string
	for _, ev := range in {
		if ev.Kind != EventIncident {
			continue
		}
		d := ev.Data
		mr := MRRef{Project: d.Project, IID: d.MRIID}.String()
		if d.NearMiss {
			r.NearMisses = append(r.NearMisses, NearMiss{Incident: d.Incident, MR: mr, Escalation: d.EscalationID, Tier: d.Tier})
		}
		if d.EscalationID == "" {
			s := missed[mr]
			if s == nil {
				s = &Suggestion{Kind: SuggestMissingSignal, Subject: mr, Evidence: Evidence{
					Note: "no signal fired on this MR, so it was never escalated; incidents do not record the MR's paths: read its diff to find what a signal should match"}}
				missed[mr] = s
				missedOrder = append(missedOrder, mr)
			}
			s.Evidence.Incidents = append(s.Evidence.Incidents, d.Incident)
		}
	}

	// Suggestions.
	var noise []string
	for id, s := range signals {
		if len(s.fired) >= RetroNoiseMinFired && len(s.rejected) == 0 && len(s.changed) == 0 {
			noise = append(noise, id)
		}
	}
	slices.Sort(noise)
	for _, id := range noise {
		s := signals[id]
		r.Suggestions = append(r.Suggestions, Suggestion{Kind: SuggestNoiseSignal, Subject: id, Evidence: Evidence{
			Escalations: s.fired,
			Counts:      map[string]int{"fired": len(s.fired), "rejected": 0, "changes_asked": 0},
			Note:        fmt.Sprintf("fired on %d escalations, none rejected and none with a change asked: consider narrowing it or lowering its weight", len(s.fired)),
		}})
	}
	for _, mr := range missedOrder {
		r.Suggestions = append(r.Suggestions, *missed[mr])
	}
	for _, t := range r.Tiers {
		if t.Breached >= RetroBreachMinCount && t.Breached*100 >= RetroBreachMinPercent*t.Due {
			var ids []string
			for _, b := range r.Breaches {
				if b.Tier == t.Tier {
					ids = append(ids, b.Escalation)
				}
			}
			r.Suggestions = append(r.Suggestions, Suggestion{Kind: SuggestTierDeadlineBreached, Subject: t.Tier, Evidence: Evidence{
				Escalations: ids,
				Counts:      map[string]int{"breached": t.Breached, "due": t.Due},
				Note:        fmt.Sprintf("%d of %d decision deadlines breached: consider a longer deadline or more reviewers", t.Breached, t.Due),
			}})
		}
	}
	if preOpened {
		r.Caveats = append(r.Caveats, "some escalations were opened before the quarter: only their events in the quarter are counted")
	}
	return r
}

// RenderRetroText writes a retrospective as plain text.
func RenderRetroText(r *Retro) string {
	if r == nil {
		return ""
	}
	var b strings.Builder
	fmt.Fprintf(&b, "Quarterly security review retrospective, %s (%s to %s, UTC)\n", r.Name(),
		r.From.UTC().Format("2006-01-02"), r.To.UTC().AddDate(0, 0, -1).Format("2006-01-02"))
	if r.Partial {
		b.WriteString("The quarter is not over yet: these are the figures so far.\n")
	}
	b.WriteString("\nOutcomes per tier:\n")
	if len(r.Tiers) == 0 {
		b.WriteString("- none\n")
	}
	for _, t := range r.Tiers {
		name := t.Tier
		if t.Name != "" {
			name += " " + t.Name
		}
		fmt.Fprintf(&b, "- %s: %d opened, %d approved, %d rejected, %d withdrawn, %d bypassed; %d of %d deadlines breached\n",
			name, t.Opened, t.Approved, t.Rejected, t.Withdrawn, t.Bypassed, t.Breached, t.Due)
	}
	fmt.Fprintf(&b, "\nRecurring missing artifacts (missing on %d or more escalations when decided or due):\n", RetroRecurringArtifact)
	if len(r.Missing) == 0 {
		b.WriteString("- none\n")
	}
	for _, m := range r.Missing {
		fmt.Fprintf(&b, "- %s: %d (%s)\n", cmp.Or(m.Name, m.Kind), len(m.Escalations), strings.Join(m.Escalations, ", "))
	}
	b.WriteString("\nSLA breaches:\n")
	if len(r.Breaches) == 0 {
		b.WriteString("- none\n")
	}
	for _, x := range r.Breaches {
		fmt.Fprintf(&b, "- %s (%s): due %s, stalled in %s", x.Escalation, x.Tier, x.Due.UTC().Format("2006-01-02 15:04"), x.Stalled)
		if !x.DecidedAt.IsZero() {
			fmt.Fprintf(&b, ", decided %s late", HumanDuration(x.DecidedAt.Sub(x.Due)))
		} else {
			b.WriteString(", not decided in the quarter")
		}
		b.WriteString("\n")
	}
	if len(r.Stalled) > 0 {
		var states []string
		for st := range r.Stalled {
			states = append(states, string(st))
		}
		slices.Sort(states)
		var parts []string
		for _, st := range states {
			parts = append(parts, fmt.Sprintf("%s %d", st, r.Stalled[State(st)]))
		}
		fmt.Fprintf(&b, "Where they stalled: %s\n", strings.Join(parts, ", "))
	}
	b.WriteString("\nNear misses (approved escalations whose MR later had an incident):\n")
	if len(r.NearMisses) == 0 {
		b.WriteString("- none\n")
	}
	for _, n := range r.NearMisses {
		fmt.Fprintf(&b, "- %s on %s: %s (%s)\n", n.Incident, n.MR, n.Escalation, n.Tier)
	}
	b.WriteString("\nPolicy tuning suggestions (nothing changes the policy by itself):\n")
	if len(r.Suggestions) == 0 {
		b.WriteString("- none\n")
	}
	for _, s := range r.Suggestions {
		fmt.Fprintf(&b, "- %s %s: %s\n", s.Kind, s.Subject, s.Evidence.Note)
		fmt.Fprintf(&b, "  evidence: %s\n", s.Evidence.Text())
	}
	for _, c := range r.Caveats {
		fmt.Fprintf(&b, "\nNote: %s\n", c)
	}
	return strings.TrimRight(b.String(), "\n")
}

// Text writes the evidence in one line: escalations, incidents, counts.
func (e Evidence) Text() string {
	var parts []string
	if len(e.Escalations) > 0 {
		parts = append(parts, "escalations "+strings.Join(e.Escalations, ", "))
	}
	if len(e.Incidents) > 0 {
		parts = append(parts, "incidents "+strings.Join(e.Incidents, ", "))
	}
	if len(e.Counts) > 0 {
		var keys []string
		for k := range e.Counts {
			keys = append(keys, k)
		}
		slices.Sort(keys)
		var cs []string
		for _, k := range keys {
			cs = append(cs, fmt.Sprintf("%s=%d", k, e.Counts[k]))
		}
		parts = append(parts, strings.Join(cs, " "))
	}
	return strings.Join(parts, "; ")
}
