package bot

import (
	"context"
	"strings"
	"time"

	"github.com/threatgate/threatgate/policies"
)

// Incidents are security defects traced to a merged MR, recorded with
// /threatgate incident (or POST /api/incidents) and closed with
// /threatgate incident-fixed. They belong to no escalation: their events
// are Personal, and carry the MR and, when it had one, its escalation's id
// and tier when the incident was recorded. Their ids, INC-n, come from a
// counter in the store (like escalation ids); a refused or failed commit
// may skip a number.

// IncidentRecord is an incident as the store finds it: the event that
// recorded it and, once remediated, the first event that said so.
type IncidentRecord struct {
	Recorded Event
	Fixed    *Event // nil while open
}

// IncidentStore allocates incident ids and finds incidents; store.DB is
// one. The engine needs it for the incident verbs only.
type IncidentStore interface {
	// NextIncident allocates the next id, "INC-n". Ids are never reused;
	// one allocated for a decision that is then not committed is skipped.
	NextIncident(ctx context.Context) (string, error)
	// FindIncident returns the incident id, or ErrNotFound.
	FindIncident(ctx context.Context, id string) (*IncidentRecord, error)
}

// IncidentPlaceholder stands for the incident id in what decide returns
// when the engine has not allocated one (tests of decide).
const IncidentPlaceholder = "{inc}"

// incident records a security defect traced to the merge request c.MR,
// with what its escalation said at the time: whether it leaked (not
// escalated, or escalated below the tier today's policy gives the MR's
// recorded signals and score) and whether it was a near miss (its
// escalation was approved). Any person of the policy may record one.
func (d *decision) incident(c *Command) error {
	// The MR's escalation is read, never decided about: nothing settles it.
	e := d.esc
	d.esc = nil
	id := d.g.IncidentID
	if id == "" {
		id = IncidentPlaceholder
	}
	data := EventData{Incident: id, Project: c.MR.Project, MRIID: c.MR.IID, MRURL: c.MR.URL, Text: c.Text, Ref: c.FixedBy.String()}
	if e != nil && e.Project == c.MR.Project && e.MRIID == c.MR.IID && e.State.Active() && e.MRState != "merged" {
		// Still under review, never merged: its code cannot have caused
		// a defect yet.
		return problemf(verbField(c.Verb), "%s!%d is still under review (%s, %s) and was never merged: an incident is a defect traced to merged code", c.MR.Project, c.MR.IID, e.ID, strings.ReplaceAll(string(e.State), "_", " "))
	}
	if e != nil && e.Project == c.MR.Project && e.MRIID == c.MR.IID {
		data.EscalationID, data.Tier = e.ID, e.Tier
		if data.MRURL == "" {
			data.MRURL = e.MRURL
		}
		today := d.pol.Select(e.Score, e.Signals)
		if today != nil {
			data.PolicyTier = today.ID
		}
		data.Leaked = policies.Higher(today, d.pol.Tier(e.Tier)) && today.ID != e.Tier
		data.NearMiss = Approved(e)
	} else {
		data.Leaked = true
	}
	d.emit(EventIncident, data)
	what := "no escalation: it leaked past review"
	switch {
	case data.EscalationID == "":
	case data.Leaked:
		what = "escalation " + data.EscalationID + " in " + data.Tier + ", below " + data.PolicyTier + " that the policy gives it today: it leaked"
	case data.NearMiss:
		what = "escalation " + data.EscalationID + " was approved: a near miss"
	default:
		what = "escalation " + data.EscalationID + " in " + data.Tier
	}
	d.reply("Incident %s recorded on %s (%s). When it is remediated: /threatgate incident-fixed %s", id, MRRef{Project: c.MR.Project, IID: c.MR.IID}.String(), what, id)
	return nil
}

// incidentFixed records that incident c.Incident was remediated; the
// first such record counts, a second is refused.
func (d *decision) incidentFixed(c *Command) error {
	f := verbField(VerbIncidentFixed)
	inc := d.g.Incident
	switch {
	case inc == nil:
		return problemf(f, "no incident %s; the reply to /threatgate incident names its id", c.Incident)
	case inc.Fixed != nil:
		return problemf(f, "%s was recorded as remediated by %s at %s already", c.Incident, inc.Fixed.Actor, inc.Fixed.At.UTC().Format(time.DateTime+" MST"))
	}
	r := inc.Recorded.Data
	d.emit(EventIncidentFixed, EventData{Incident: c.Incident, Project: r.Project, MRIID: r.MRIID, Since: inc.Recorded.At, Text: c.Text})
	d.reply("%s is remediated, %s after it was recorded.", c.Incident, HumanDuration(d.now.Sub(inc.Recorded.At)))
	return nil
}

// Approved reports whether e's escalation was approved: it is, or it was
// approved and then merged (a merge that bypassed the gate is not).
func Approved(e *Escalation) bool {
	switch e.State {
	case StateApproved:
		return true
	case StateMerged:
		return !e.Bypassed && !e.DecidedAt.IsZero() && len(e.Rejections) == 0
	}
	return false
}

// IncidentFigures sum up incidents over a window of the audit log.
type IncidentFigures struct {
	// Recorded counts the incidents recorded in the window.
	Recorded int `json:"recorded"`
	// Leakage: of those, the ones whose MR was not escalated or was
	// escalated below the tier the policy gave it when the incident was
	// recorded.
	Leakage Rate `json:"leakage"`
	// NearMisses: of those, the ones whose MR's escalation was approved.
	NearMisses int `json:"near_misses"`
	// Remediation: from recording to remediation, of the incidents
	// remediated in the window (wherever they were recorded).
	Remediation Spread `json:"remediation"`
}

// Any reports whether there is anything to show.
func (f IncidentFigures) Any() bool { return f.Recorded > 0 || f.Remediation.N > 0 }

// IncidentFiguresOf sums up the incident events among events whose At is
// in [from, to). It is pure.
func IncidentFiguresOf(events []Event, from, to time.Time) IncidentFigures {
	var f IncidentFigures
	var fixes []time.Duration
	fixed := map[string]bool{}
	for _, ev := range events {
		if ev.At.Before(from) || !ev.At.Before(to) {
			continue
		}
		switch ev.Kind {
		case EventIncident:
			f.Recorded++
			if ev.Data.Leaked {
				f.Leakage.Count++
			}
			if ev.Data.NearMiss {
				f.NearMisses++
			}
		case EventIncidentFixed:
			if !fixed[ev.Data.Incident] && !ev.Data.Since.IsZero() {
				fixed[ev.Data.Incident] = true
				fixes = append(fixes, ev.At.Sub(ev.Data.Since))
			}
		}
	}
	f.Leakage.Of = f.Recorded
	f.Remediation = spreadOf(fixes)
	return f
}
