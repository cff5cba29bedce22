package bot

import (
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/threatgate/threatgate/policies"
)

// Quarter names the calendar quarter of t in UTC, such as "2026Q4"; caps
// on manual escalations count per quarter.
func Quarter(t time.Time) string {
	t = t.UTC()
	return fmt.Sprintf("%dQ%d", t.Year(), (int(t.Month())-1)/3+1)
}

// Body returns the effect's text with the escalation id filled in.
func (e Effect) Body() string {
	text := e.Text
	if e.Notice != nil {
		text = RenderText(e.Notice, e.Escalation)
	}
	if e.Escalation == "" {
		return text
	}
	return strings.ReplaceAll(text, IDPlaceholder, e.Escalation)
}

// statusText answers /threatgate status.
func (d *decision) statusText() string {
	e := d.esc
	t := d.tier()
	var b strings.Builder
	fmt.Fprintf(&b, "%s: %s!%d, tier %s (%s), %s", e.ID, e.Project, e.MRIID, e.Tier, e.TierName, e.State)
	if e.State == StateDeferred {
		fmt.Fprintf(&b, " until %s", e.DeferredUntil.Format("2006-01-02"))
	}
	if e.Bypassed {
		b.WriteString(" (merged without approval: bypassed)")
	}
	b.WriteString(".\n")
	if t != nil {
		if m := e.MissingArtifacts(t); len(m) > 0 {
			fmt.Fprintf(&b, "Missing artifacts: %s.\n", strings.Join(m, ", "))
		}
		filled := d.filled(t)
		var rows []string
		for _, a := range t.Approvals {
			rows = append(rows, fmt.Sprintf("%s %d/%d", a.Group, min(filled[a.Group], a.Count), a.Count))
		}
		fmt.Fprintf(&b, "Approvals at %s: %s.\n", shortSHA(e.HeadSHA), strings.Join(rows, ", "))
	}
	if w := Waiting(e, d.pol); len(w) > 0 {
		fmt.Fprintf(&b, "Waiting on: %s.\n", strings.Join(w, ", "))
	}
	if e.Risk != nil {
		fmt.Fprintf(&b, "Residual risk: %d (by %s).\n", e.Risk.Score, e.Risk.By)
	}
	if n := len(e.Dissents); n > 0 {
		fmt.Fprintf(&b, "Dissents: %d.\n", n)
	}
	if e.State.Active() && !e.DecisionDue.IsZero() {
		left := e.DecisionDue.Sub(d.now)
		if left >= 0 {
			fmt.Fprintf(&b, "Decision due %s (in %s).", e.DecisionDue.UTC().Format("2006-01-02 15:04 MST"), humanDuration(left))
		} else {
			fmt.Fprintf(&b, "Decision was due %s (%s overdue).", e.DecisionDue.UTC().Format("2006-01-02 15:04 MST"), humanDuration(left))
		}
	}
	return strings.TrimRight(b.String(), "\n")
}

// BacklogText renders the open escalations for /threatgate backlog: urgent
// ones first, then by decision deadline.
func BacklogText(open []*Escalation, now time.Time) string {
	if len(open) == 0 {
		return "The backlog is empty: no escalation is waiting."
	}
	list := slices.Clone(open)
	slices.SortStableFunc(list, func(a, b *Escalation) int {
		if a.Urgent != b.Urgent {
			if a.Urgent {
				return -1
			}
			return 1
		}
		return a.DecisionDue.Compare(b.DecisionDue)
	})
	var b strings.Builder
	fmt.Fprintf(&b, "%d open escalation(s):\n", len(list))
	for _, e := range list {
		due := "no deadline"
		if !e.DecisionDue.IsZero() {
			left := e.DecisionDue.Sub(now)
			if left < 0 {
				due = fmt.Sprintf("OVERDUE by %s", humanDuration(left))
			} else {
				due = fmt.Sprintf("due in %s", humanDuration(left))
			}
		}
		urgent := ""
		if e.Urgent {
			urgent = " URGENT"
		}
		fmt.Fprintf(&b, "- %s%s %s!%d %s %s, %s", e.ID, urgent, e.Project, e.MRIID, e.Tier, e.State, due)
		if len(e.Waiting) > 0 {
			fmt.Fprintf(&b, ", waiting on %s", strings.Join(e.Waiting, ", "))
		}
		b.WriteString("\n")
	}
	return strings.TrimRight(b.String(), "\n")
}

// card is the escalation's summary, the parent message of its thread,
// kept current in place: where it stands, what is missing and from whom,
// who is waited on, and when it is due.
func (d *decision) card(e *Escalation) string {
	if e == nil {
		return ""
	}
	t := d.pol.Tier(e.Tier)
	var b strings.Builder
	mr := fmt.Sprintf("%s!%d", e.Project, e.MRIID)
	if e.Title != "" {
		mr += fmt.Sprintf(" %q", e.Title)
	}
	fmt.Fprintf(&b, "%s · %s · %s %s · %s", d.id(), mr, e.Tier, e.TierName, strings.ReplaceAll(string(e.State), "_", " "))
	if e.Urgent {
		b.WriteString(" · URGENT")
	}
	if e.Bypassed {
		b.WriteString(" · BYPASSED")
	}
	if e.State == StateIntake {
		fmt.Fprintf(&b, "\nWaiting for %s to answer the intake:%s", e.Filer, intakePrompts(d.missingIntake(e.Intake)))
		return b.String()
	}
	if t != nil && len(t.Artifacts) > 0 {
		var parts []string
		for _, k := range t.Artifacts {
			if i := slices.IndexFunc(e.Artifacts, func(a Artifact) bool { return a.Kind == k }); i >= 0 {
				parts = append(parts, fmt.Sprintf("%s ✓ (%s)", k, e.Artifacts[i].By))
			} else {
				parts = append(parts, k+" missing")
			}
		}
		line := "Artifacts: " + strings.Join(parts, ", ")
		if len(e.MissingArtifacts(t)) > 0 {
			if who := d.askedOf(e); who != "" {
				line += " (asked of " + who + ")"
			}
		}
		b.WriteString("\n" + line)
	}
	if t != nil {
		filled := d.assign(e, t)
		var rows []string
		for _, a := range t.Approvals {
			rows = append(rows, fmt.Sprintf("%s %d/%d", a.Group, min(filled[a.Group], a.Count), a.Count))
		}
		fmt.Fprintf(&b, "\nApprovals at %s: %s", shortSHA(e.HeadSHA), strings.Join(rows, ", "))
		if t.MaxResidualRisk > 0 {
			switch r := RiskOf(e, d.pol); {
			case r == nil:
				fmt.Fprintf(&b, "\nResidual risk: not recorded (at most %d; /threatgate risk %s <1-25>)", t.MaxResidualRisk, d.id())
			case r.Score > t.MaxResidualRisk && !d.riskAccepted(e, t):
				fmt.Fprintf(&b, "\nResidual risk: %d, above %d: needs a %s approval", r.Score, t.MaxResidualRisk, RoleRiskAcceptance)
			default:
				fmt.Fprintf(&b, "\nResidual risk: %d (at most %d)", r.Score, t.MaxResidualRisk)
			}
		}
	}
	if u := UnknownAuthors(e, d.pol); len(u) > 0 {
		fmt.Fprintf(&b, "\nCommit authors not in the policy: %s", strings.Join(u, ", "))
	}
	if w := Waiting(e, d.pol); len(w) > 0 {
		fmt.Fprintf(&b, "\nWaiting on: %s", strings.Join(w, ", "))
	}
	if e.State == StateDeferred {
		fmt.Fprintf(&b, "\nDeferred until %s", e.DeferredUntil.UTC().Format("2006-01-02 15:04 MST"))
	}
	if e.State.Active() && !e.DecisionDue.IsZero() {
		// Absolute times only: the card is edited when the escalation
		// changes, not as the clock moves, so "in 3h" would go stale.
		fmt.Fprintf(&b, "\nDecision due %s", e.DecisionDue.UTC().Format("2006-01-02 15:04 MST"))
	}
	return b.String()
}

// askedOf names who is asked for missing artifacts: the MR author (as a
// person of the policy when known) and the filer of a manual escalation.
func (d *decision) askedOf(e *Escalation) string {
	var who []string
	if p := d.pol.Person("gitlab", e.Author); p != nil {
		who = append(who, p.ID)
	} else if e.Author != "" {
		who = append(who, e.Author)
	}
	if e.Filer != "" && !slices.Contains(who, e.Filer) {
		who = append(who, e.Filer)
	}
	return strings.Join(who, ", ")
}

// humanDuration writes d the way people read deadlines: "3d 4h", "5h 12m",
// "12m"; never more than two units.
func humanDuration(d time.Duration) string {
	if d < 0 {
		d = -d
	}
	d = d.Round(time.Minute)
	days, d := d/(24*time.Hour), d%(24*time.Hour)
	hours, mins := d/time.Hour, (d%time.Hour)/time.Minute
	switch {
	case days > 0 && hours > 0:
		return fmt.Sprintf("%dd %dh", days, hours)
	case days > 0:
		return fmt.Sprintf("%dd", days)
	case hours > 0 && mins > 0:
		return fmt.Sprintf("%dh %dm", hours, mins)
	case hours > 0:
		return fmt.Sprintf("%dh", hours)
	}
	return fmt.Sprintf("%dm", mins)
}

// Card renders an escalation's thread summary as of now, the same text the
// thread_summary effect carries; a chat surface that lost its thread (the
// console after a restart) shows it instead.
func Card(e *Escalation, pol *policies.Policy, now time.Time) string {
	d := &decision{pol: pol, now: now, esc: e}
	return d.card(e)
}
