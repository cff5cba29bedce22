package bot

import (
	"time"

	"github.com/threatgate/threatgate/policies"
)

// EventKind names what happened.
type EventKind string

const (
	EventOpened        EventKind = "opened"          // an escalation starts (automatic or manual)
	EventMRUpdated     EventKind = "mr_updated"      // the MR changed: head SHA, title, labels, target branch
	EventReclassified  EventKind = "reclassified"    // new signals or score without a tier change
	EventTierRaised    EventKind = "tier_raised"     // the MR now classifies into a higher tier
	EventRetiered      EventKind = "retiered"        // an authorised person set the tier, with a rationale
	EventIntake        EventKind = "intake_answered" // intake fields of a manual escalation answered
	EventFiled         EventKind = "filed"           // a manual escalation has its intake: it counts, and is gated
	EventArtifactAdded EventKind = "artifact_added"  // evidence handed in
	EventApproved      EventKind = "approval_added"  // an approval, counted or not
	EventRejected      EventKind = "rejection_added"
	EventDissent       EventKind = "dissent_recorded"
	EventAction        EventKind = "action_added"
	EventRisk          EventKind = "risk_assessed"  // a residual-risk score (Data.Risk; Likelihood, Impact, Controls when given)
	EventRiskValidated EventKind = "risk_validated" // a second person validated the score Data.Risk
	EventDeferred      EventKind = "deferred"
	EventWithdrawn     EventKind = "withdrawn"
	EventReopened      EventKind = "reopened" // the MR was reopened; the escalation resumes
	EventMerged        EventKind = "merged"
	EventStateChanged  EventKind = "state_changed" // the lifecycle moved; From/To say where
	EventCapOverridden EventKind = "cap_overridden"
	EventStatusForged  EventKind = "status_forged" // the gate's status on the head was not what threatgate set

	// The clock (the sweep).
	EventNudged       EventKind = "nudged"        // people were reminded (Data.People, Data.Threshold, Data.Text: what for)
	EventHandedOff    EventKind = "handed_off"    // backups were asked (Data.Groups, Data.People, Data.Text: why)
	EventPaged        EventKind = "paged"         // on-call was paged: the decision deadline lapsed
	EventPageResolved EventKind = "page_resolved" // the page was resolved: the escalation was decided or withdrawn
	EventInformed     EventKind = "informed"      // the informed groups were sent a status update
	EventActionDone   EventKind = "action_done"   // action item Data.N (1-based) was closed
	EventAway         EventKind = "away"          // a person is away until Data.Until (no escalation)

	// Incidents (incident.go): no escalation of their own.
	EventIncident      EventKind = "incident_recorded" // a security defect traced to a merged MR (Data.Incident, Project, MRIID, Text)
	EventIncidentFixed EventKind = "incident_fixed"    // incident Data.Incident was remediated (Data.Since: when it was recorded)
)

// Event is one entry of the audit log. decide fills Kind, Escalation,
// Actor, At, SHA and Data; the store assigns Seq and the hash chain
// fields when it appends the event.
type Event struct {
	Seq        uint64    `json:"seq"`
	Escalation string    `json:"escalation,omitempty"` // "" for events about a person, such as cap overrides
	Kind       EventKind `json:"kind"`
	Actor      string    `json:"actor"` // a person id, or "system"
	At         time.Time `json:"at"`
	SHA        string    `json:"sha,omitempty"`
	Data       EventData `json:"data"`
	PrevHash   string    `json:"prev_hash,omitempty"`
	// Sealed is set on a stored event whose bulky payload the store keeps
	// beside the chain (retention.go); the store puts the payload back
	// when it reads the event.
	Sealed *Sealed `json:"sealed,omitempty"`
	Hash   string  `json:"hash,omitempty"`
	// Compacted is set by the store on an event it reads whose payload
	// retention removed; never stored.
	Compacted *Compaction `json:"-"`
}

// EventData is the payload of an event; each kind sets the fields it
// needs and leaves the rest zero.
type EventData struct {
	// MR facts (opened, mr_updated).
	Project       string    `json:"project,omitempty"`
	MRIID         int64     `json:"mr_iid,omitempty"`
	MRURL         string    `json:"mr_url,omitempty"`
	Title         string    `json:"title,omitempty"`
	Author        string    `json:"author,omitempty"`
	CommitAuthors []string  `json:"commit_authors,omitempty"`
	TargetBranch  string    `json:"target_branch,omitempty"`
	Labels        []string  `json:"labels,omitempty"`
	MRState       string    `json:"mr_state,omitempty"`
	MRUpdatedAt   time.Time `json:"mr_updated_at,omitzero"`

	// Classification (opened, reclassified, tier_raised, retiered).
	Tier     string           `json:"tier,omitempty"`
	TierName string           `json:"tier_name,omitempty"`
	FromTier string           `json:"from_tier,omitempty"`
	Score    int              `json:"score,omitempty"`
	Signals  []policies.Fired `json:"signals,omitempty"`
	// TierDef is Tier's definition in force when the event was made
	// (opened, tier_raised, retiered; and state_changed to approved or
	// rejected when the policy changed it since); nil in events recorded
	// before definitions were kept.
	TierDef *TierSnapshot `json:"tier_def,omitempty"`

	// Manual escalations (opened); Urgent also on mr_updated, when an
	// urgent label made it urgent (with the tightened deadlines).
	Manual bool              `json:"manual,omitempty"`
	Urgent bool              `json:"urgent,omitempty"`
	Intake map[string]string `json:"intake,omitempty"`

	// Deadlines (opened, tier_raised, retiered; mr_updated with Urgent).
	FirstResponseDue time.Time `json:"first_response_due,omitzero"`
	DecisionDue      time.Time `json:"decision_due,omitzero"`

	// Commands.
	Artifact   string            `json:"artifact,omitempty"`
	Ref        string            `json:"ref,omitempty"`
	Group      string            `json:"group,omitempty"`
	Role       string            `json:"role,omitempty"`
	Arbiter    bool              `json:"arbiter,omitempty"`
	Checks     map[string]string `json:"checks,omitempty"`
	Text       string            `json:"text,omitempty"`       // rationale, reason, note
	Risk       int               `json:"risk,omitempty"`       // risk_assessed: the score; risk_validated: the score validated
	Likelihood int               `json:"likelihood,omitempty"` // risk_assessed: 1-5, 0 when scored as one number
	Impact     int               `json:"impact,omitempty"`     // risk_assessed: 1-5, 0 when scored as one number
	Controls   string            `json:"controls,omitempty"`   // risk_assessed: the compensating controls
	Until      time.Time         `json:"until,omitzero"`
	Person     string            `json:"person,omitempty"` // cap_overridden: whose cap
	Count      int               `json:"count,omitempty"`  // cap_overridden: how many more
	Bypassed   bool              `json:"bypassed,omitempty"`
	MergedBy   string            `json:"merged_by,omitempty"` // merged: who merged, as the forge reports it
	MergedAt   time.Time         `json:"merged_at,omitzero"`  // merged: when, as the forge reports it
	Missing    []string          `json:"missing,omitempty"`   // merged with Bypassed: what the gate still needed
	// Gate is the commit status the decision set (pending, success,
	// failed), on the last event of that decision, with its description
	// GateText; the event's SHA is the head it was set on.
	Gate      string `json:"gate,omitempty"`
	GateText  string `json:"gate_text,omitempty"`
	From      State  `json:"from,omitempty"` // state_changed
	To        State  `json:"to,omitempty"`   // state_changed
	StaleFrom string `json:"stale_from,omitempty"`
	Raised    bool   `json:"raised,omitempty"` // retiered: to a higher tier (earlier decisions go stale)

	// The clock, action items, absences.
	People    []string  `json:"people,omitempty"`    // nudged, handed_off: who was asked
	Groups    []string  `json:"groups,omitempty"`    // handed_off: the backup groups asked
	Threshold int       `json:"threshold,omitempty"` // nudged: percent of the decision window (50, 90); 0 for an overdue action item
	Owner     string    `json:"owner,omitempty"`     // action_added: who owns it
	Due       time.Time `json:"due,omitzero"`        // action_added: when it is due
	N         int       `json:"n,omitempty"`         // action_done: which item (1-based)

	// Incidents (incident_recorded, incident_fixed); Project, MRIID,
	// MRURL name the MR, Text is the summary or note, Ref the MR that
	// fixes it (--fixed-by), Tier the escalation's tier when recorded.
	Incident     string    `json:"incident,omitempty"`      // "INC-7"
	EscalationID string    `json:"escalation_id,omitempty"` // incident_recorded: the MR's escalation, "" when it had none
	PolicyTier   string    `json:"policy_tier,omitempty"`   // incident_recorded: the tier today's policy gives the MR's recorded signals and score
	Leaked       bool      `json:"leaked,omitempty"`        // incident_recorded: not escalated, or escalated below PolicyTier
	NearMiss     bool      `json:"near_miss,omitempty"`     // incident_recorded: the MR's escalation had been approved
	Since        time.Time `json:"since,omitzero"`          // incident_fixed: when the incident was recorded

	// Retention (compacted): the records compacted.
	Records []CompactedRecord `json:"records,omitempty"`
}

// apply folds one event into the projection and returns the new one; esc
// is not modified. apply never fails: decide only emits events that apply.
func apply(esc *Escalation, ev Event) *Escalation {
	e := esc.Clone()
	if e == nil {
		e = &Escalation{}
	}
	d := ev.Data
	e.Version++
	e.UpdatedAt = ev.At
	switch ev.Kind {
	case EventOpened:
		e.ID = ev.Escalation
		e.Project, e.MRIID, e.MRURL = d.Project, d.MRIID, d.MRURL
		e.Title, e.Author, e.CommitAuthors = d.Title, d.Author, d.CommitAuthors
		e.TargetBranch, e.Labels, e.MRState, e.MRUpdatedAt = d.TargetBranch, d.Labels, d.MRState, d.MRUpdatedAt
		e.HeadSHA = ev.SHA
		if ev.SHA != "" {
			e.HeadSince = ev.At
		}
		e.Tier, e.TierName, e.Score, e.Signals = d.Tier, d.TierName, d.Score, d.Signals
		e.TierDef = d.TierDef
		e.Manual, e.Urgent, e.Intake = d.Manual, d.Urgent, d.Intake
		if d.Manual {
			e.Filer = ev.Actor
			e.Reason = d.Text
		}
		e.CreatedAt = ev.At
		e.FirstResponseDue, e.DecisionDue = d.FirstResponseDue, d.DecisionDue
		e.State = d.To
	case EventMRUpdated:
		if d.Title != "" {
			e.Title = d.Title
		}
		if d.Author != "" {
			e.Author = d.Author
		}
		if d.MRURL != "" {
			e.MRURL = d.MRURL
		}
		if d.Labels != nil {
			e.Labels = d.Labels
		}
		if d.TargetBranch != "" {
			e.TargetBranch = d.TargetBranch
		}
		if d.CommitAuthors != nil {
			e.CommitAuthors = d.CommitAuthors
		}
		if d.MRState != "" {
			e.MRState = d.MRState
		}
		if !d.MRUpdatedAt.IsZero() {
			e.MRUpdatedAt = d.MRUpdatedAt
		}
		if d.StaleFrom != "" {
			// New commits (when the tier resets approvals on push) or a
			// new target branch: what was decided before stops counting
			// but stays on record, and a re-tier of the old diff no
			// longer holds.
			e.RetierSHA, e.RetierFrom = "", ""
			for i := range e.Approvals {
				e.Approvals[i].Stale = true
			}
			for i := range e.Rejections {
				e.Rejections[i].Stale = true
			}
		}
		if ev.SHA != "" && ev.SHA != e.HeadSHA {
			e.HeadSHA, e.HeadSince = ev.SHA, ev.At
		}
		if d.Urgent {
			// An urgent label: its deadlines only ever tighten.
			e.Urgent = true
			if !d.FirstResponseDue.IsZero() {
				e.FirstResponseDue = d.FirstResponseDue
			}
			if !d.DecisionDue.IsZero() {
				e.DecisionDue = d.DecisionDue
			}
		}
	case EventReclassified:
		e.Score, e.Signals = d.Score, d.Signals
	case EventTierRaised, EventRetiered:
		if ev.Kind == EventTierRaised || d.Raised {
			// Decisions given for a lower tier were not about this one
			// (its matrix, its checklist): they stay on record, stale.
			for i := range e.Approvals {
				e.Approvals[i].Stale = true
			}
			for i := range e.Rejections {
				e.Rejections[i].Stale = true
			}
		}
		// The new tier's definition; nil (not recorded) from an event
		// made before definitions were kept, never the old tier's.
		e.Tier, e.TierName, e.TierDef = d.Tier, d.TierName, d.TierDef
		if ev.Kind == EventTierRaised {
			e.Score, e.Signals = d.Score, d.Signals
		} else {
			e.RetierSHA, e.RetierFrom = ev.SHA, d.FromTier
		}
		if !d.FirstResponseDue.IsZero() {
			e.FirstResponseDue = d.FirstResponseDue
		}
		if !d.DecisionDue.IsZero() {
			e.DecisionDue = d.DecisionDue
		}
	case EventFiled:
		e.FirstResponseDue, e.DecisionDue = d.FirstResponseDue, d.DecisionDue
	case EventIntake:
		if e.Intake == nil {
			e.Intake = map[string]string{}
		}
		for k, v := range d.Intake {
			e.Intake[k] = v
		}
	case EventArtifactAdded:
		a := Artifact{Kind: d.Artifact, Ref: d.Ref, By: ev.Actor, SHA: ev.SHA, At: ev.At}
		if ev.Compacted != nil && d.Ref == "" {
			a.Removed = ev.Compacted.At // retention removed its text
		}
		replaced := false
		for i := range e.Artifacts {
			if e.Artifacts[i].Kind == a.Kind {
				e.Artifacts[i], replaced = a, true
			}
		}
		if !replaced {
			e.Artifacts = append(e.Artifacts, a)
		}
	case EventApproved:
		e.Approvals = append(e.Approvals, Decision{By: ev.Actor, Group: d.Group, Role: d.Role, SHA: ev.SHA, Rationale: d.Text, Checks: d.Checks, Arbiter: d.Arbiter, At: ev.At})
	case EventRejected:
		e.Rejections = append(e.Rejections, Decision{By: ev.Actor, Group: d.Group, SHA: ev.SHA, Rationale: d.Text, Arbiter: d.Arbiter, At: ev.At})
	case EventDissent:
		e.Dissents = append(e.Dissents, Note{By: ev.Actor, Text: d.Text, SHA: ev.SHA, At: ev.At})
	case EventAction:
		e.Actions = append(e.Actions, Note{By: ev.Actor, Text: d.Text, SHA: ev.SHA, At: ev.At, Owner: d.Owner, Due: d.Due})
	case EventActionDone:
		if i := d.N - 1; i >= 0 && i < len(e.Actions) {
			e.Actions[i].Done, e.Actions[i].DoneAt, e.Actions[i].DoneBy = true, ev.At, ev.Actor
		}
	case EventNudged:
		for _, p := range d.People {
			e.Nudged = append(e.Nudged, NudgeKey(d.Text, d.Threshold, p))
		}
	case EventHandedOff:
		e.HandedOff = append(e.HandedOff, Handoff{Groups: d.Groups, People: d.People, Reason: d.Text, At: ev.At})
	case EventPaged:
		e.Paged = true
	case EventPageResolved:
		e.Paged = false
	case EventInformed:
		e.InformedAt = ev.At
	case EventRisk:
		// A new score replaces the last one, and with it its validation.
		e.Risk = &Note{By: ev.Actor, Text: d.Text, Score: d.Risk, SHA: ev.SHA, At: ev.At,
			Likelihood: d.Likelihood, Impact: d.Impact, Controls: d.Controls}
	case EventRiskValidated:
		if e.Risk != nil && e.Risk.Score == d.Risk {
			e.Risk.ValidatedBy, e.Risk.ValidatedAt, e.Risk.ValidatedNote = ev.Actor, ev.At, d.Text
		}
	case EventDeferred:
		e.DeferredUntil, e.DeferredAt = d.Until, ev.At
	case EventMerged:
		e.Bypassed = d.Bypassed
		e.MRState = "merged"
		e.MergedBy, e.MergedAt, e.MergeMissing = d.MergedBy, d.MergedAt, d.Missing
		if e.MergedAt.IsZero() {
			e.MergedAt = ev.At
		}
	case EventWithdrawn:
		if d.MRState != "" {
			e.MRState = d.MRState
		} else {
			// Withdrawn by a person: for this head only.
			e.WithdrawnSHA, e.WithdrawnBy = ev.SHA, ev.Actor
		}
	case EventStatusForged:
		e.Forged++
	case EventCompacted:
		// Not activity: the retention clock and "last updated" stay.
		e.UpdatedAt = esc.UpdatedAt
		compactProjection(e, ev.At)
		e.CompactedVersion = e.Version
	case EventReopened:
		e.MRState = "opened"
	case EventStateChanged:
		switch d.To {
		case StateDeferred, StateWithdrawn:
			if !e.State.Ended() && e.State != StateDeferred {
				e.Resume = e.State
			}
		default:
			e.Resume = ""
			if e.State == StateDeferred {
				e.DeferredUntil = time.Time{}
			}
			if e.State == StateWithdrawn {
				e.WithdrawnSHA, e.WithdrawnBy = "", ""
			}
		}
		if e.State == StateDeferred && !d.DecisionDue.IsZero() {
			// The deferral paused the clock: the deadlines move by
			// how long it lasted.
			e.FirstResponseDue, e.DecisionDue = d.FirstResponseDue, d.DecisionDue
		}
		e.State = d.To
		if d.To == StateApproved || d.To == StateRejected {
			e.DecidedAt = ev.At
			if d.TierDef != nil {
				// The definition the decision was made under (the
				// policy changed since the tier was entered).
				e.TierDef = d.TierDef
			}
		}
	}
	applyGate(e, ev)
	return e
}

// applyGate records the gate status an event carries (EventData.Gate).
func applyGate(e *Escalation, ev Event) {
	if ev.Data.Gate != "" {
		e.Gate, e.GateText, e.GateSHA, e.GateAt = ev.Data.Gate, ev.Data.GateText, ev.SHA, ev.At
	}
}

// ApplyCompaction returns esc with the EventCompacted event ev applied
// (the store's Compact makes the projection with it).
func ApplyCompaction(esc *Escalation, ev Event) *Escalation { return apply(esc, ev) }

// Replay folds events in order into a projection, nil for no events.
func Replay(events []Event) *Escalation {
	var e *Escalation
	for _, ev := range events {
		e = apply(e, ev)
	}
	return e
}
