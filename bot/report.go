package bot

import (
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/threatgate/threatgate/policies"
)

// The weekly report: how the reviews of one ISO week (Monday to Monday,
// UTC) went: time to first response and to decision per tier, the SLA
// breach rate, the deferral rate, manual escalations per engineer against
// the cap, and the signals that fired most with what became of them. It
// is made from that week's events and the projections of the escalations
// they name, never from the whole log.

// Bounds of a weekly report's lists.
const (
	// ReportSignals bounds the signals a report lists, most fired first.
	ReportSignals = 10
	// ReportPeople bounds the engineers listed with their manual
	// escalations, most first.
	ReportPeople = 20
)

// WeeklyReport is one ISO week's report as data; each surface renders it
// (RenderReportText, Block Kit in Slack, the dashboard's
// /reports/weekly). Counts are of escalations, each once.
type WeeklyReport struct {
	Year int       `json:"year"`
	Week int       `json:"week"`
	From time.Time `json:"from"` // Monday 00:00 UTC
	To   time.Time `json:"to"`   // the next Monday 00:00 UTC
	// Partial: the report was made before the week was over; its
	// figures count what had happened by then.
	Partial bool `json:"partial,omitempty"`
	// Dashboard is the dashboard's URL, "" when none is configured (see
	// URL).
	Dashboard string `json:"dashboard,omitempty"`

	Opened   int `json:"opened"`
	Decided  int `json:"decided"` // approved or rejected in the week
	Approved int `json:"approved"`
	Rejected int `json:"rejected"`

	// Tiers are the times per tier, highest tier first: to the first
	// response (from opening to the first decision, dissent, action item
	// or risk assessment by someone other than the authors and the filer,
	// for the first responses made in the week) and to the decision (from
	// opening to the first approval or rejection in the week).
	Tiers []TierTimes `json:"tiers,omitempty"`

	// Breaches: of the escalations decided in the week or whose decision
	// deadline passed undecided in it, those decided after the deadline
	// or not by it (a deferred one's clock is paused: not a breach).
	Breaches Rate `json:"sla_breaches"`
	// Deferrals: of the escalations decided or deferred in the week,
	// those deferred.
	Deferrals Rate `json:"deferrals"`

	// Quarter is the quarter of the week's last day, Cap the policy's
	// caps.manual_escalations_per_quarter (0: no cap); Manual the
	// engineers who filed manual escalations in the week.
	Quarter string      `json:"quarter"`
	Cap     int         `json:"cap,omitempty"`
	Manual  []ManualUse `json:"manual,omitempty"`

	// Signals are the signals that fired most, with what became of the
	// escalations they fired on; at most ReportSignals.
	Signals []SignalUse `json:"signals,omitempty"`

	// Incidents are the week's incidents (IncidentFiguresOf): recorded,
	// leaked, near misses, and the time to remediation of those
	// remediated in the week.
	Incidents IncidentFigures `json:"incidents"`
}

// URL is where the dashboard shows the report, "" without a dashboard.
func (r *WeeklyReport) URL() string {
	if r == nil || r.Dashboard == "" {
		return ""
	}
	return strings.TrimRight(r.Dashboard, "/") + "/reports/weekly?week=" + WeekName(r.Year, r.Week)
}

// TierTimes are how long one tier's escalations took.
type TierTimes struct {
	Tier          string `json:"tier"`
	Name          string `json:"name,omitempty"`
	FirstResponse Spread `json:"first_response"`
	Decision      Spread `json:"decision"`
}

// Spread sums up durations: how many, the median and the 90th percentile
// (nearest rank: each is one of the durations). The zero Spread has none.
type Spread struct {
	N      int
	Median time.Duration
	P90    time.Duration
}

// spreadJSON is Spread in JSON: durations in whole seconds.
type spreadJSON struct {
	N         int   `json:"n"`
	MedianSec int64 `json:"median_seconds"`
	P90Sec    int64 `json:"p90_seconds"`
}

// MarshalJSON writes the durations in seconds.
func (s Spread) MarshalJSON() ([]byte, error) {
	return json.Marshal(spreadJSON{N: s.N, MedianSec: int64(s.Median / time.Second), P90Sec: int64(s.P90 / time.Second)})
}

// UnmarshalJSON reads what MarshalJSON writes.
func (s *Spread) UnmarshalJSON(b []byte) error {
	var j spreadJSON
	if err := json.Unmarshal(b, &j); err != nil {
		return err
	}
	*s = Spread{N: j.N, Median: time.Duration(j.MedianSec) * time.Second, P90: time.Duration(j.P90Sec) * time.Second}
	return nil
}

// spreadOf sums up ds (which it sorts).
func spreadOf(ds []time.Duration) Spread {
	if len(ds) == 0 {
		return Spread{}
	}
	slices.Sort(ds)
	rank := func(p float64) time.Duration { return ds[max(0, int(math.Ceil(p*float64(len(ds))))-1)] }
	return Spread{N: len(ds), Median: rank(0.5), P90: rank(0.9)}
}

// Rate is Count out of Of.
type Rate struct {
	Count int `json:"count"`
	Of    int `json:"of"`
}

// Percent is the rate in whole percent, rounded; 0 when Of is 0.
func (r Rate) Percent() int {
	if r.Of == 0 {
		return 0
	}
	return int(math.Round(float64(r.Count) * 100 / float64(r.Of)))
}

// ManualUse is one engineer's manual escalations.
type ManualUse struct {
	Person  string `json:"person"`
	Week    int    `json:"week"`    // filed in the week
	Quarter int    `json:"quarter"` // filed in the report's quarter, as the store counts them when the report is made
	// Allowed is the cap plus the overrides granted to the person in the
	// quarter; 0 when there is no cap.
	Allowed int `json:"allowed,omitempty"`
}

// SignalUse is one signal and what became of the escalations it fired on.
type SignalUse struct {
	ID       string `json:"id"`
	Category string `json:"category,omitempty"`
	Fired    int    `json:"fired"`    // escalations opened in the week it fired on
	Decided  int    `json:"decided"`  // escalations decided in the week it fired on
	Rejected int    `json:"rejected"` // of Decided, rejected
	// Changed counts, of Decided, those where a reviewer asked for a
	// change: an action item, or a rejection before the approval.
	Changed int `json:"changed"`
}

// ReportKey is the idempotency key of the report of ISO week (year, week).
func ReportKey(year, week int) string { return "report:" + WeekName(year, week) }

// WeekName writes an ISO week as "2026-W49".
func WeekName(year, week int) string { return fmt.Sprintf("%04d-W%02d", year, week) }

// WeekStart returns Monday 00:00 UTC of ISO week (year, week).
func WeekStart(year, week int) time.Time {
	jan4 := time.Date(year, 1, 4, 0, 0, 0, 0, time.UTC) // always in week 1
	monday := jan4.AddDate(0, 0, -((int(jan4.Weekday()) + 6) % 7))
	return monday.AddDate(0, 0, 7*(week-1))
}

// LastFullWeek returns the ISO week before the one now is in, in now's
// time zone (the schedule's, for a slot): the last week that has ended.
func LastFullWeek(now time.Time) (year, week int) { return now.AddDate(0, 0, -7).ISOWeek() }

// weeksIn returns how many ISO weeks year has (52 or 53).
func weeksIn(year int) int {
	_, w := time.Date(year, 12, 28, 0, 0, 0, 0, time.UTC).ISOWeek()
	return w
}

var weekPattern = regexp.MustCompile(`^([0-9]{4})-[Ww]([0-9]{1,2})$`)

// ParseWeek reads an ISO week such as "2026-W49". A malformed or
// impossible week is a *Problem naming the field "week".
func ParseWeek(s string) (year, week int, err error) {
	m := weekPattern.FindStringSubmatch(strings.TrimSpace(s))
	if m == nil {
		return 0, 0, problemf("week", "want an ISO week such as %q, got %q", "2026-W49", s)
	}
	year, _ = strconv.Atoi(m[1])
	week, _ = strconv.Atoi(m[2])
	if n := weeksIn(year); week < 1 || week > n {
		return 0, 0, problemf("week", "%d has weeks 1 to %d, not %d", year, n, week)
	}
	return year, week, nil
}

// ReportStore is what a weekly report reads: one week of the audit log,
// the escalations it names, the open ones and the quotas. store.DB is one.
type ReportStore interface {
	History
	FindEscalation(ctx context.Context, id string) (*Escalation, error)
	FindOpen(ctx context.Context) ([]*Escalation, error)
	Quota(ctx context.Context, person, quarter string) (Quota, error)
}

// WeeklyReportOf reads what the report of ISO week (year, week) needs and
// builds it as of now (BuildWeeklyReport): the week's events, the projection of each
// escalation they name (one read each), the open escalations (the open
// index) for the deadlines that passed in the week with nothing
// happening, and the quota of each engineer who filed in the week. Its
// cost follows the week, not the log.
func WeeklyReportOf(ctx context.Context, s ReportStore, year, week int, now time.Time, pol *policies.Policy) (*WeeklyReport, error) {
	from := WeekStart(year, week)
	to := from.AddDate(0, 0, 7)
	name := WeekName(year, week)
	events, err := s.EventsBetween(ctx, from, to)
	if err != nil {
		return nil, fmt.Errorf("report %s: %w", name, err)
	}
	escs := map[string]*Escalation{}
	quotas := map[string]Quota{}
	quarter := Quarter(to.Add(-time.Nanosecond))
	for _, ev := range events {
		if id := ev.Escalation; id != "" && escs[id] == nil {
			e, err := s.FindEscalation(ctx, id)
			switch {
			case errors.Is(err, ErrNotFound):
			case err != nil:
				return nil, fmt.Errorf("report %s: %w", name, err)
			default:
				escs[id] = e
			}
		}
		if ev.Kind == EventFiled && ev.Actor != System.Person && ev.Actor != "" {
			if _, ok := quotas[ev.Actor]; !ok {
				if quotas[ev.Actor], err = s.Quota(ctx, ev.Actor, quarter); err != nil {
					return nil, fmt.Errorf("report %s: %w", name, err)
				}
			}
		}
	}
	open, err := s.FindOpen(ctx)
	if err != nil {
		return nil, fmt.Errorf("report %s: %w", name, err)
	}
	for _, e := range open {
		if escs[e.ID] == nil && !e.DecisionDue.Before(from) && e.DecisionDue.Before(to) {
			escs[e.ID] = e
		}
	}
	return BuildWeeklyReport(events, escs, quotas, year, week, now, pol), nil
}

// Report posts the report of the last full ISO week before now in every
// chat surface's main channel, as an EffectDigest through the outbox,
// once: ReportKey makes a second report of the same week a no-op.
// dashboardURL is linked from it ("" for none). Store must be a
// ReportStore (store.DB is). Errors are internal; nothing is queued when
// it fails, so it may be retried.
func (e *Engine) Report(ctx context.Context, now time.Time, dashboardURL string) error {
	rs, ok := e.store.(ReportStore)
	if !ok {
		return errors.New("report: the store cannot read the audit log by time")
	}
	year, week := LastFullWeek(now)
	r, err := WeeklyReportOf(ctx, rs, year, week, now, e.Policy())
	if err != nil {
		return err
	}
	r.Dashboard = dashboardURL
	return e.commitDigest(ctx, Effect{Kind: EffectDigest, Report: r}, ReportKey(year, week), now)
}

// BuildWeeklyReport makes the report of ISO week (year, week) as of now
// (a deadline later than now has not passed yet) from its events (those
// outside the week are ignored), the projections of the
// escalations they name and of the open ones due in the week (as they are
// now: escalations tells when each was opened and its first response;
// the week's events say what happened in the week), and the quota in the
// report's quarter of each engineer who filed in the week. It is a pure
// function of its arguments.
func BuildWeeklyReport(events []Event, escalations map[string]*Escalation, quotas map[string]Quota, year, week int, now time.Time, pol *policies.Policy) *WeeklyReport {
	from := WeekStart(year, week)
	to := from.AddDate(0, 0, 7)
	r := &WeeklyReport{Year: year, Week: week, From: from, To: to, Partial: now.Before(to), Quarter: Quarter(to.Add(-time.Nanosecond))}
	// Deadlines are looked at in [from, end]: to the week's end, or now.
	end := earlier(to.Add(-time.Nanosecond), now)
	if pol != nil {
		r.Cap = pol.Caps.ManualPerQuarter
	}
	var in []Event
	for _, ev := range events {
		if !ev.At.Before(from) && ev.At.Before(to) {
			in = append(in, ev)
		}
	}
	trails := trailsOf(in, escalations)

	opened := map[string]bool{}
	decided := map[string]time.Time{} // the first decision in the week
	outcome := map[string]State{}     // the last one
	deferred := map[string]bool{}
	responded := map[string]bool{}
	actions, rejections := map[string]bool{}, map[string]bool{}
	filed := map[string]int{}
	for _, ev := range in {
		id := ev.Escalation
		switch {
		case ev.Kind == EventOpened:
			r.Opened++
			opened[id] = true
		case isDecision(ev):
			if _, ok := decided[id]; !ok {
				decided[id] = ev.At
			}
			outcome[id] = ev.Data.To
		case ev.Kind == EventStateChanged && ev.Data.To == StateDeferred:
			deferred[id] = true
		case ev.Kind == EventFiled && ev.Actor != System.Person && ev.Actor != "":
			filed[ev.Actor]++
		}
		switch ev.Kind {
		case EventApproved, EventRejected, EventDissent, EventAction, EventRisk, EventRiskValidated:
			if ev.Actor != System.Person {
				responded[id] = true
			}
		}
		actions[id] = actions[id] || ev.Kind == EventAction
		rejections[id] = rejections[id] || ev.Kind == EventRejected
	}
	r.Decided = len(decided)
	for _, st := range outcome {
		if st == StateApproved {
			r.Approved++
		} else {
			r.Rejected++
		}
	}

	// Times per tier.
	first, decision := map[string][]time.Duration{}, map[string][]time.Duration{}
	for id := range responded {
		t := trails[id]
		if t == nil || t.esc == nil {
			continue
		}
		fr := firstResponseAt(t.esc, pol)
		if op := t.opened(); !fr.Before(from) && fr.Before(to) && !op.IsZero() && !fr.Before(op) {
			tier := t.tierAt(fr)
			first[tier] = append(first[tier], fr.Sub(op))
		}
	}
	breached := map[string]bool{}
	for id, at := range decided {
		t := trails[id]
		if t == nil {
			continue
		}
		if op := t.opened(); !op.IsZero() && !at.Before(op) {
			tier := t.tierAt(at)
			decision[tier] = append(decision[tier], at.Sub(op))
		}
		if due := t.dueAt(at); !due.IsZero() && at.After(due) {
			breached[id] = true
		}
	}
	lapsed := 0
	for id, t := range trails {
		if _, ok := decided[id]; ok {
			continue
		}
		if len(t.lapses(from.Add(-time.Nanosecond), end)) > 0 {
			breached[id] = true
			lapsed++
		}
	}
	r.Breaches = Rate{Count: len(breached), Of: len(decided) + lapsed}
	outcomes := len(deferred)
	for id := range decided {
		if !deferred[id] {
			outcomes++
		}
	}
	r.Deferrals = Rate{Count: len(deferred), Of: outcomes}
	tiers := map[string]bool{}
	for tier := range first {
		tiers[tier] = true
	}
	for tier := range decision {
		tiers[tier] = true
	}
	for _, tier := range tierOrder(pol, tiers) {
		r.Tiers = append(r.Tiers, TierTimes{Tier: tier, Name: tierName(pol, tier), FirstResponse: spreadOf(first[tier]), Decision: spreadOf(decision[tier])})
	}

	// Manual escalations per engineer.
	for person, n := range filed {
		q := quotas[person]
		u := ManualUse{Person: person, Week: n, Quarter: max(q.Manual, n)}
		if r.Cap > 0 {
			u.Allowed = r.Cap + q.Overrides
		}
		r.Manual = append(r.Manual, u)
	}
	slices.SortFunc(r.Manual, func(a, b ManualUse) int {
		return cmp.Or(cmp.Compare(b.Week, a.Week), cmp.Compare(b.Quarter, a.Quarter), strings.Compare(a.Person, b.Person))
	})
	r.Manual, _ = bound(r.Manual, ReportPeople)

	// Signals: how often each fired on the week's new escalations, and
	// what became of the decided ones it had fired on.
	uses := map[string]*SignalUse{}
	use := func(f policies.Fired) *SignalUse {
		u := uses[f.ID]
		if u == nil {
			u = &SignalUse{ID: f.ID, Category: f.Category}
			if pol != nil {
				if s := pol.Signal(f.ID); s != nil {
					u.Category = s.Category
				}
			}
			uses[f.ID] = u
		}
		return u
	}
	for id := range opened {
		for _, f := range trails[id].firedInWindow() {
			use(f).Fired++
		}
	}
	for id := range decided {
		t := trails[id]
		signals := t.firedInWindow()
		changed := actions[id] || (outcome[id] == StateApproved && rejections[id])
		if t.esc != nil {
			signals = t.esc.Signals
			changed = changed || len(t.esc.Actions) > 0 || (outcome[id] == StateApproved && len(t.esc.Rejections) > 0)
		}
		for _, f := range uniqueFired(signals) {
			u := use(f)
			u.Decided++
			if outcome[id] == StateRejected {
				u.Rejected++
			}
			if changed {
				u.Changed++
			}
		}
	}
	for _, u := range uses {
		r.Signals = append(r.Signals, *u)
	}
	slices.SortFunc(r.Signals, func(a, b SignalUse) int {
		return cmp.Or(cmp.Compare(b.Fired, a.Fired), cmp.Compare(b.Decided, a.Decided), strings.Compare(a.ID, b.ID))
	})
	r.Signals, _ = bound(r.Signals, ReportSignals)
	r.Incidents = IncidentFiguresOf(events, from, to)
	return r
}

// firstResponseAt is when FirstResponded first became true of e: the
// earliest decision, dissent, action item or risk assessment (the latest
// one is all the projection keeps) by someone other than the authors of
// the change and the filer. Zero when there is none.
func firstResponseAt(e *Escalation, pol *policies.Policy) time.Time {
	var first time.Time
	try := func(at time.Time, set func(*Escalation)) {
		if !first.IsZero() && !at.Before(first) {
			return
		}
		// FirstResponded decides who counts; it is asked about this one
		// response alone.
		one := &Escalation{Author: e.Author, CommitAuthors: e.CommitAuthors, Filer: e.Filer, Manual: e.Manual}
		set(one)
		if FirstResponded(one, pol) {
			first = at
		}
	}
	for _, x := range e.Approvals {
		try(x.At, func(o *Escalation) { o.Approvals = []Decision{x} })
	}
	for _, x := range e.Rejections {
		try(x.At, func(o *Escalation) { o.Rejections = []Decision{x} })
	}
	for _, n := range e.Dissents {
		try(n.At, func(o *Escalation) { o.Dissents = []Note{n} })
	}
	for _, n := range e.Actions {
		try(n.At, func(o *Escalation) { o.Actions = []Note{n} })
	}
	if e.Risk != nil {
		r := *e.Risk
		try(r.At, func(o *Escalation) { o.Risk = &r })
	}
	return first
}

// uniqueFired drops repeated signals, keeping the first.
func uniqueFired(fs []policies.Fired) []policies.Fired {
	var out []policies.Fired
	for _, f := range fs {
		if f.ID != "" && !slices.ContainsFunc(out, func(x policies.Fired) bool { return x.ID == f.ID }) {
			out = append(out, f)
		}
	}
	return out
}

// tierOrder lists the tiers of m as the policy orders them (highest
// first), then those it does not have, by name.
func tierOrder[V any](pol *policies.Policy, m map[string]V) []string {
	var out []string
	for tier := range m {
		out = append(out, tier)
	}
	rank := func(id string) int {
		if pol != nil {
			if t := pol.Tier(id); t != nil {
				return t.Rank()
			}
		}
		return math.MaxInt
	}
	slices.SortFunc(out, func(a, b string) int { return cmp.Or(cmp.Compare(rank(a), rank(b)), strings.Compare(a, b)) })
	return out
}

// tierName is the policy's name of tier id, "" when it has none.
func tierName(pol *policies.Policy, id string) string {
	if pol != nil {
		if t := pol.Tier(id); t != nil {
			return t.Name
		}
	}
	return ""
}

// trail is what a window of the audit log says about one escalation: its
// events in the window, in log order, and its projection as it is now
// (nil when the caller has none). Its methods answer for a moment in the
// window from the events around it, and from the projection where the
// window says nothing.
type trail struct {
	esc    *Escalation
	events []Event
}

// trailsOf groups events by escalation, with the projections of known; an
// escalation of known without events in the window has a trail too.
func trailsOf(events []Event, known map[string]*Escalation) map[string]*trail {
	out := map[string]*trail{}
	get := func(id string) *trail {
		t := out[id]
		if t == nil {
			t = &trail{esc: known[id]}
			out[id] = t
		}
		return t
	}
	for _, ev := range events {
		if ev.Escalation != "" {
			t := get(ev.Escalation)
			t.events = append(t.events, ev)
		}
	}
	for id, e := range known {
		if e != nil {
			get(id)
		}
	}
	return out
}

// sortedIDs lists the escalations of trails in id order.
func sortedIDs(trails map[string]*trail) []string {
	ids := make([]string, 0, len(trails))
	for id := range trails {
		ids = append(ids, id)
	}
	slices.SortFunc(ids, compareEscalationIDs)
	return ids
}

// openedEvent is the escalation's opening, nil when it is not in the
// window.
func (t *trail) openedEvent() *Event {
	for i := range t.events {
		if t.events[i].Kind == EventOpened {
			return &t.events[i]
		}
	}
	return nil
}

// opened is when the escalation was opened; zero when neither the window
// nor a projection says.
func (t *trail) opened() time.Time {
	if op := t.openedEvent(); op != nil {
		return op.At
	}
	if t.esc != nil {
		return t.esc.CreatedAt
	}
	return time.Time{}
}

// firedInWindow is the signals the window's classifications fired
// (opening, tier raised, reclassified), each once.
func (t *trail) firedInWindow() []policies.Fired {
	if t == nil {
		return nil
	}
	var out []policies.Fired
	for _, ev := range t.events {
		switch ev.Kind {
		case EventOpened, EventTierRaised, EventReclassified:
			out = append(out, ev.Data.Signals...)
		}
	}
	return uniqueFired(out)
}

// tierAt is the escalation's tier at at: set by the last opening, tier
// raise or re-tier at or before at; before the first of them in the
// window, the tier it came from; else the projection's.
func (t *trail) tierAt(at time.Time) string {
	var before *Event
	for i := range t.events {
		ev := &t.events[i]
		if ev.Kind != EventOpened && ev.Kind != EventTierRaised && ev.Kind != EventRetiered {
			continue
		}
		if !ev.At.After(at) {
			before = ev
			continue
		}
		if before == nil && ev.Data.FromTier != "" {
			return ev.Data.FromTier
		}
		break
	}
	switch {
	case before != nil:
		return before.Data.Tier
	case t.esc != nil:
		return t.esc.Tier
	}
	return ""
}

// dueAt is the decision deadline in force at at: the last one an event at
// or before at set; zero (unknown) when the window changes it only later;
// else the projection's.
func (t *trail) dueAt(at time.Time) time.Time {
	var due time.Time
	later := false
	for _, ev := range t.events {
		if ev.Data.DecisionDue.IsZero() {
			continue
		}
		if ev.At.After(at) {
			later = true
			break
		}
		due = ev.Data.DecisionDue
	}
	switch {
	case !due.IsZero():
		return due
	case later || t.esc == nil:
		return time.Time{}
	}
	return t.esc.DecisionDue
}

// stateAt is the escalation's state at at: set by the last state change
// (or opening) at or before at; before the first of them in the window,
// the state it changed from; else the projection's. "" when it did not
// exist yet or nothing says.
func (t *trail) stateAt(at time.Time) State {
	var last *Event
	for i := range t.events {
		ev := &t.events[i]
		if ev.Kind != EventStateChanged && ev.Kind != EventOpened {
			continue
		}
		if !ev.At.After(at) {
			last = ev
			continue
		}
		if last == nil {
			if ev.Kind == EventOpened {
				return ""
			}
			return ev.Data.From
		}
		break
	}
	switch {
	case last != nil:
		return last.Data.To
	case t.esc != nil:
		return t.esc.State
	}
	return ""
}

// lapses returns the decision deadlines of the escalation that passed in
// (lo, hi] while it waited on people (filed, active, not deferred), each
// once, earliest first. A deadline set when it had passed already (a tier
// raise late in the window) lapses when it was set. The candidates are
// the deadlines the window's events set, or the projection's when they
// set none.
func (t *trail) lapses(lo, hi time.Time) []time.Time {
	type candidate struct{ due, at time.Time }
	var cands []candidate
	for _, ev := range t.events {
		if d := ev.Data.DecisionDue; !d.IsZero() {
			at := d
			if ev.At.After(d) {
				at = ev.At
			}
			cands = append(cands, candidate{d, at})
		}
	}
	if len(cands) == 0 && t.esc != nil && !t.esc.DecisionDue.IsZero() {
		cands = append(cands, candidate{t.esc.DecisionDue, t.esc.DecisionDue})
	}
	var out []time.Time
	for _, c := range cands {
		if !c.at.After(lo) || c.at.After(hi) || !t.dueAt(c.at).Equal(c.due) {
			continue
		}
		st := t.stateAt(c.at)
		if !st.Active() || st == StateDeferred || st == StateIntake {
			continue
		}
		if !slices.ContainsFunc(out, c.due.Equal) {
			out = append(out, c.due)
		}
	}
	slices.SortFunc(out, time.Time.Compare)
	return out
}

// decidedAfter is when the escalation was first decided after due: in the
// window, else by the projection; zero when it was not.
func (t *trail) decidedAfter(due time.Time) time.Time {
	for _, ev := range t.events {
		if isDecision(ev) && ev.At.After(due) {
			return ev.At
		}
	}
	if t.esc != nil && t.esc.DecidedAt.After(due) {
		return t.esc.DecidedAt
	}
	return time.Time{}
}

// RenderReportText writes a weekly report as plain text, for the console
// (and GitLab notes): the week's counts, the times per tier, the SLA and
// deferral rates, manual escalations against the cap, the signals that
// fired most, and where the dashboard shows it.
func RenderReportText(r *WeeklyReport) string {
	if r == nil {
		return ""
	}
	var b strings.Builder
	fmt.Fprintf(&b, "Weekly security review report, %s (%s to %s, UTC)\n", WeekName(r.Year, r.Week),
		r.From.UTC().Format("2006-01-02"), r.To.UTC().AddDate(0, 0, -1).Format("2006-01-02"))
	if r.Partial {
		b.WriteString("The week is not over yet: these are the figures so far.\n")
	}
	fmt.Fprintf(&b, "%d opened, %d decided (%d approved, %d rejected).\n", r.Opened, r.Decided, r.Approved, r.Rejected)
	if len(r.Tiers) > 0 {
		b.WriteString("\nTime to first response and to decision per tier (median / 90th percentile, over how many):\n")
		for _, t := range r.Tiers {
			name := t.Tier
			if t.Name != "" {
				name += " " + t.Name
			}
			fmt.Fprintf(&b, "- %s: first response %s; decision %s\n", name, spreadText(t.FirstResponse), spreadText(t.Decision))
		}
	}
	b.WriteString("\n")
	if r.Breaches.Of == 0 {
		b.WriteString("SLA breaches: none; no escalation was decided or due.\n")
	} else {
		fmt.Fprintf(&b, "SLA breaches: %d of %d (%d%%) decided after their deadline or not by it.\n", r.Breaches.Count, r.Breaches.Of, r.Breaches.Percent())
	}
	if r.Deferrals.Of == 0 {
		b.WriteString("Deferrals: none; no escalation was decided or deferred.\n")
	} else {
		fmt.Fprintf(&b, "Deferrals: %d of %d (%d%%) of the escalations decided or deferred were deferred.\n", r.Deferrals.Count, r.Deferrals.Of, r.Deferrals.Percent())
	}
	capText := "no cap"
	if r.Cap > 0 {
		capText = fmt.Sprintf("cap %d a quarter", r.Cap)
	}
	fmt.Fprintf(&b, "\nManual escalations (%s, %s):\n", r.Quarter, capText)
	if len(r.Manual) == 0 {
		b.WriteString("- none filed this week\n")
	}
	for _, m := range r.Manual {
		fmt.Fprintf(&b, "- %s: %d this week, %d this quarter", m.Person, m.Week, m.Quarter)
		if m.Allowed > 0 {
			fmt.Fprintf(&b, " of %d", m.Allowed)
			if m.Quarter >= m.Allowed {
				b.WriteString(" (at the cap)")
			}
		}
		b.WriteString("\n")
	}
	if len(r.Signals) > 0 {
		b.WriteString("\nSignals that fired most:\n")
		for _, s := range r.Signals {
			fmt.Fprintf(&b, "- %s", s.ID)
			if s.Category != "" {
				fmt.Fprintf(&b, " (%s)", s.Category)
			}
			fmt.Fprintf(&b, ": fired on %d opened; of %d decided, %d rejected, %d with changes asked\n", s.Fired, s.Decided, s.Rejected, s.Changed)
		}
	}
	if f := r.Incidents; f.Any() {
		b.WriteString("\nIncidents:\n")
		fmt.Fprintf(&b, "- %d recorded; defect leakage %d of %d (%d%%): not escalated, or escalated below the policy's tier\n", f.Recorded, f.Leakage.Count, f.Leakage.Of, f.Leakage.Percent())
		fmt.Fprintf(&b, "- near misses: %d (approved escalations whose MR later had an incident)\n", f.NearMisses)
		fmt.Fprintf(&b, "- time to remediation (median / 90th percentile, over how many): %s\n", spreadText(f.Remediation))
	}
	if u := r.URL(); u != "" {
		fmt.Fprintf(&b, "\nOn the dashboard: %s\n", u)
	}
	return strings.TrimRight(b.String(), "\n")
}

// spreadText writes a Spread as "5h / 1d 2h (3)", or "none".
func spreadText(s Spread) string {
	if s.N == 0 {
		return "none"
	}
	return fmt.Sprintf("%s / %s (%d)", HumanDuration(s.Median), HumanDuration(s.P90), s.N)
}
