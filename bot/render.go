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
	switch {
	case e.Notice != nil:
		text = RenderText(e.Notice, e.Escalation)
	case e.Card != nil:
		text = RenderCardText(e.Card, e.Escalation)
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
	if w := WaitingOn(e, d.pol); len(w) > 0 {
		fmt.Fprintf(&b, "Waiting on: %s.\n", strings.Join(w, ", "))
	}
	if r := e.Risk; r != nil {
		line := fmt.Sprintf("Residual risk: %d (by %s", r.Score, r.By)
		if r.Likelihood != 0 {
			line += fmt.Sprintf("; likelihood %d x impact %d", r.Likelihood, r.Impact)
		}
		if r.Controls != "" {
			line += "; controls: " + r.Controls
		}
		switch {
		case r.ValidatedBy != "":
			line += "; validated by " + r.ValidatedBy
		case NeedsRiskValidation(d.pol):
			line += "; not validated yet"
		}
		fmt.Fprintf(&b, "%s).\n", line)
	}
	if n := len(e.Dissents); n > 0 {
		fmt.Fprintf(&b, "Dissents: %d.\n", n)
	}
	if lines := actionLines(e, d.now); len(lines) > 0 {
		fmt.Fprintf(&b, "Action items (/threatgate done %s <n> closes one):\n  %s\n", e.ID, strings.Join(lines, "\n  "))
	}
	if dl := DeadlineOf(e, d.pol, d.now); dl.Has {
		fmt.Fprintf(&b, "Decision due %s (%s).", utcMinute(dl.Due), dl.Phrase())
	}
	return strings.TrimRight(b.String(), "\n")
}

// BacklogText renders the open escalations for /threatgate backlog: urgent
// ones first, then by decision deadline (DeadlineOf), each with where its
// deadline stands and whom it waits on (WaitingOn).
func BacklogText(open []*Escalation, pol *policies.Policy, now time.Time) string {
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
		return DeadlineOf(a, pol, now).Due.Compare(DeadlineOf(b, pol, now).Due)
	})
	var b strings.Builder
	fmt.Fprintf(&b, "%d open escalation(s):\n", len(list))
	for _, e := range list {
		due := DeadlineOf(e, pol, now).Phrase()
		if Paused(e) && !e.DeferredUntil.IsZero() {
			due += " (deferred until " + e.DeferredUntil.UTC().Format("2006-01-02") + ")"
		}
		urgent := ""
		if e.Urgent {
			urgent = " URGENT"
		}
		fmt.Fprintf(&b, "- %s%s %s!%d %s %s, %s", e.ID, urgent, e.Project, e.MRIID, e.Tier, e.State, due)
		if w := WaitingOn(e, pol); len(w) > 0 {
			fmt.Fprintf(&b, ", waiting on %s", strings.Join(w, ", "))
		}
		b.WriteString("\n")
	}
	return strings.TrimRight(b.String(), "\n")
}

// CardData is an escalation's summary, the parent message of its thread,
// as data: where it stands, what is missing and from whom, who is waited
// on, and when it is due. Each surface renders it (RenderCardText).
type CardData struct {
	Project  string `json:"project"`
	MRIID    int64  `json:"mr_iid"`
	Title    string `json:"title,omitempty"`  // from outside
	MRURL    string `json:"mr_url,omitempty"` // as GitLab gave it
	Author   string `json:"author,omitempty"` // the MR's author (GitLab username)
	Tier     string `json:"tier"`
	TierName string `json:"tier_name,omitempty"`
	State    State  `json:"state"`
	Urgent   bool   `json:"urgent,omitempty"`
	Bypassed bool   `json:"bypassed,omitempty"`

	Filer         string  `json:"filer,omitempty"`          // intake: who must answer
	IntakeMissing []Field `json:"intake_missing,omitempty"` // intake: the fields and their prompts

	Artifacts []CardArtifact `json:"artifacts,omitempty"`
	AskedOf   string         `json:"asked_of,omitempty"` // who owes the missing artifacts

	HeadSHA   string    `json:"head_sha,omitempty"`
	Approvals []CardRow `json:"approvals,omitempty"` // nil when the tier is unknown

	RiskCeiling  int  `json:"risk_ceiling,omitempty"` // 0: no ceiling
	RiskRecorded bool `json:"risk_recorded,omitempty"`
	Risk         int  `json:"risk,omitempty"`
	RiskAccepted bool `json:"risk_accepted,omitempty"`
	// RiskToValidate: the policy names authority.risk_validators and the
	// recorded score is not validated yet.
	RiskToValidate bool `json:"risk_to_validate,omitempty"`

	// Actions are the open action items (ActionsDone counts the closed).
	Actions     []CardAction `json:"actions,omitempty"`
	ActionsDone int          `json:"actions_done,omitempty"`

	UnknownAuthors []string  `json:"unknown_authors,omitempty"`
	Waiting        []string  `json:"waiting,omitempty"` // WaitingOn
	DeferredUntil  time.Time `json:"deferred_until,omitzero"`
	DecisionDue    time.Time `json:"decision_due,omitzero"` // DeadlineOf's Due, set while active

	// Signals are why the MR is in its tier, with their evidence (masked
	// as stored); Inform the groups the tier informs (each surface tells
	// them where it can, e.g. a group's Slack channel).
	Signals []policies.Fired `json:"signals,omitempty"`
	Inform  []string         `json:"inform,omitempty"`
}

// CardArtifact is one artifact the tier requires: in (by whom) or missing.
type CardArtifact struct {
	Kind string `json:"kind"`
	By   string `json:"by,omitempty"` // "" while missing
}

// CardAction is an open action item: its number (1-based, as /threatgate
// done takes it), text (from outside), owner and due day (zero for none).
type CardAction struct {
	N     int       `json:"n"`
	Text  string    `json:"text"`
	Owner string    `json:"owner"`
	Due   time.Time `json:"due,omitzero"`
}

// CardRow is one row of the approvals matrix: how many slots are filled.
type CardRow struct {
	Group  string `json:"group"`
	Filled int    `json:"filled"`
	Count  int    `json:"count"`
}

// card builds the summary card of e.
func (d *decision) card(e *Escalation) *CardData {
	if e == nil {
		return nil
	}
	t := d.pol.Tier(e.Tier)
	c := &CardData{Project: e.Project, MRIID: e.MRIID, Title: e.Title, MRURL: e.MRURL, Author: e.Author, Tier: e.Tier, TierName: e.TierName, State: e.State,
		Urgent: e.Urgent, Bypassed: e.Bypassed, HeadSHA: e.HeadSHA, Signals: e.Signals}
	if t != nil {
		c.Inform = t.Inform
	}
	if e.State == StateIntake {
		c.Filer = e.Filer
		for _, f := range d.missingIntake(e.Intake) {
			c.IntakeMissing = append(c.IntakeMissing, Field{ID: f.ID, Text: f.Prompt})
		}
		return c
	}
	if t != nil {
		for _, k := range t.Artifacts {
			a := CardArtifact{Kind: k}
			if i := slices.IndexFunc(e.Artifacts, func(x Artifact) bool { return x.Kind == k }); i >= 0 {
				a.By = e.Artifacts[i].By
			}
			c.Artifacts = append(c.Artifacts, a)
		}
		if len(e.MissingArtifacts(t)) > 0 {
			c.AskedOf = d.askedOf(e)
		}
		filled := d.assign(e, t)
		c.Approvals = []CardRow{}
		for _, a := range t.Approvals {
			c.Approvals = append(c.Approvals, CardRow{Group: a.Group, Filled: min(filled[a.Group], a.Count), Count: a.Count})
		}
		if t.MaxResidualRisk > 0 {
			c.RiskCeiling = t.MaxResidualRisk
			if r := RiskOf(e, d.pol); r != nil {
				c.RiskRecorded, c.Risk, c.RiskAccepted = true, r.Score, d.riskAccepted(e, t)
				c.RiskToValidate = NeedsRiskValidation(d.pol) && !RiskValidated(e, d.pol)
			}
		}
	}
	for i, a := range e.Actions {
		if a.Done {
			c.ActionsDone++
			continue
		}
		c.Actions = append(c.Actions, CardAction{N: i + 1, Text: a.Text, Owner: ActionOwner(a), Due: a.Due})
	}
	c.UnknownAuthors = UnknownAuthors(e, d.pol)
	c.Waiting = WaitingOn(e, d.pol)
	if e.State == StateDeferred {
		c.DeferredUntil = e.DeferredUntil
	}
	c.DecisionDue = DeadlineOf(e, d.pol, d.now).Due // moved by a deferral's pause
	return c
}

// RenderCardText writes a card as text, for GitLab and the console; id is
// the escalation's id (IDPlaceholder before it has one). Times are
// absolute only: the card is edited when the escalation changes, not as
// the clock moves, so "in 3h" would go stale.
func RenderCardText(c *CardData, id string) string {
	if c == nil {
		return ""
	}
	if id == "" {
		id = IDPlaceholder
	}
	var b strings.Builder
	mr := fmt.Sprintf("%s!%d", c.Project, c.MRIID)
	if c.Title != "" {
		mr += fmt.Sprintf(" %q", c.Title)
	}
	fmt.Fprintf(&b, "%s · %s · %s %s · %s", id, mr, c.Tier, c.TierName, strings.ReplaceAll(string(c.State), "_", " "))
	if c.Urgent {
		b.WriteString(" · URGENT")
	}
	if c.Bypassed {
		b.WriteString(" · BYPASSED")
	}
	if c.State == StateIntake {
		fmt.Fprintf(&b, "\nWaiting for %s to answer the intake:%s", c.Filer, fieldLines(c.IntakeMissing))
		return b.String()
	}
	if len(c.Artifacts) > 0 {
		var parts []string
		missing := false
		for _, a := range c.Artifacts {
			if a.By != "" {
				parts = append(parts, fmt.Sprintf("%s ✓ (%s)", a.Kind, a.By))
			} else {
				parts, missing = append(parts, a.Kind+" missing"), true
			}
		}
		line := "Artifacts: " + strings.Join(parts, ", ")
		if missing && c.AskedOf != "" {
			line += " (asked of " + c.AskedOf + ")"
		}
		b.WriteString("\n" + line)
	}
	if c.Approvals != nil {
		var rows []string
		for _, r := range c.Approvals {
			rows = append(rows, fmt.Sprintf("%s %d/%d", r.Group, r.Filled, r.Count))
		}
		fmt.Fprintf(&b, "\nApprovals at %s: %s", shortSHA(c.HeadSHA), strings.Join(rows, ", "))
		if c.RiskCeiling > 0 {
			switch {
			case !c.RiskRecorded:
				fmt.Fprintf(&b, "\nResidual risk: not recorded (at most %d; /threatgate risk %s <1-25>)", c.RiskCeiling, id)
			case c.RiskToValidate:
				fmt.Fprintf(&b, "\nResidual risk: %d, not validated yet (/threatgate risk %s --validate)", c.Risk, id)
			case c.Risk > c.RiskCeiling && !c.RiskAccepted:
				fmt.Fprintf(&b, "\nResidual risk: %d, above %d: needs a %s approval", c.Risk, c.RiskCeiling, RoleRiskAcceptance)
			default:
				fmt.Fprintf(&b, "\nResidual risk: %d (at most %d)", c.Risk, c.RiskCeiling)
			}
		}
	}
	if len(c.UnknownAuthors) > 0 {
		fmt.Fprintf(&b, "\nCommit authors not in the policy: %s", strings.Join(c.UnknownAuthors, ", "))
	}
	if len(c.Actions) > 0 || c.ActionsDone > 0 {
		fmt.Fprintf(&b, "\nAction items: %d open, %d done", len(c.Actions), c.ActionsDone)
		for _, a := range c.Actions {
			due := ""
			if !a.Due.IsZero() {
				due = ", due " + a.Due.Format(time.DateOnly)
			}
			fmt.Fprintf(&b, "\n  %d. %s (%s%s)", a.N, oneLine(a.Text, 80), a.Owner, due)
		}
	}
	if len(c.Waiting) > 0 {
		fmt.Fprintf(&b, "\nWaiting on: %s", strings.Join(c.Waiting, ", "))
	}
	if !c.DeferredUntil.IsZero() {
		fmt.Fprintf(&b, "\nDeferred until %s", c.DeferredUntil.UTC().Format("2006-01-02 15:04 MST"))
	}
	if !c.DecisionDue.IsZero() {
		fmt.Fprintf(&b, "\nDecision due %s", c.DecisionDue.UTC().Format("2006-01-02 15:04 MST"))
	}
	return b.String()
}

// askedOf names who is asked for missing artifacts: the MR author (as a
// person of the policy when known) and the filer of a manual escalation.
func (d *decision) askedOf(e *Escalation) string { return strings.Join(AskedOf(e, d.pol), ", ") }

// HumanDuration writes d the way people read deadlines: "3d 4h", "5h 12m",
// "12m", "<1m"; never more than two units. A negative d is written by its
// size. Every surface writes durations with it.
func HumanDuration(d time.Duration) string {
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
	case mins > 0:
		return fmt.Sprintf("%dm", mins)
	}
	return "<1m"
}

func humanDuration(d time.Duration) string { return HumanDuration(d) }

// CardOf is an escalation's summary card as of now, as the thread_summary
// effect carries it; each surface renders it (RenderCardText, Slack's
// Block Kit).
func CardOf(e *Escalation, pol *policies.Policy, now time.Time) *CardData {
	return (&decision{pol: pol, now: now, esc: e}).card(e)
}

// Card renders an escalation's thread summary as of now, the same text the
// thread_summary effect carries; a chat surface that lost its thread (the
// console after a restart) shows it instead.
func Card(e *Escalation, pol *policies.Policy, now time.Time) string {
	d := &decision{pol: pol, now: now, esc: e}
	id := ""
	if e != nil {
		id = e.ID
	}
	return RenderCardText(d.card(e), id)
}
