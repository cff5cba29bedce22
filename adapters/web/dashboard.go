package web

import (
	"cmp"
	"context"
	"fmt"
	"html/template"
	"net/http"
	"slices"
	"time"

	"github.com/threatgate/threatgate/bot"
	"github.com/threatgate/threatgate/policies"
)

// chartWeeks is how many ISO weeks the throughput chart covers.
const chartWeeks = 12

// agingRows bounds the "closest to the deadline" list.
const agingRows = 10

// topHolders bounds the bottleneck lists.
const topHolders = 5

// setAsideRows bounds the "Set aside" list: the newest dead letters.
const setAsideRows = 20

// openStates orders the states of open escalations within a tier: the
// ones that need someone now first.
var openStates = []bot.State{bot.StateDisputed, bot.StateInReview, bot.StateAwaitingArtifacts, bot.StateIntake, bot.StateDeferred}

// dashboardView is what templates/dashboard.html shows.
type dashboardView struct {
	Total    int
	Console  bool // a console is mounted: the empty state points to it
	Counts   dashboardCounts
	Tiers    []tierGroup // open escalations by tier, highest first
	Aging    []escRow    // open, closest to or furthest past the deadline first
	Urgent   []escRow
	Deferred []escRow
	Approved []escRow // approved, not merged yet
	// The lists above are bounded (listRows, openRows): each says when
	// there are more than it shows, for a link to the All escalations page.
	UrgentMore, DeferredMore, ApprovedMore bool
	People                                 []holder
	Groups                                 []holder
	Weeks                                  []Week
	Chart                                  template.HTML
	States                                 []stateCount // every escalation by state
	SetAside                               setAside     // items the background loops set aside; shown when Count > 0
	// Incidents are the last incidentDays' incidents: leakage, near
	// misses, time to remediation (read from that window of the log).
	Incidents bot.IncidentFigures
}

// incidentDays is how far back the incidents tile looks.
const incidentDays = 30

// setAside is what the "Set aside" section shows: the number of dead
// letters and the newest of them (never their payloads).
type setAside struct {
	Count int
	Rows  []deadRow // newest first, at most setAsideRows
}

// deadRow is one dead letter on the dashboard.
type deadRow struct {
	ID         string
	At         time.Time
	Kind       string
	Ref        string
	Escalation string
	Reason     string
	Panic      bool
}

type dashboardCounts struct {
	Open              int
	Breaches          int // active and past the decision deadline
	PastFirstResponse int // active, past the first-response deadline, nobody has responded
	Urgent            int
	Deferred          int
	Approved          int // approved, not merged yet
	Bypassed          int // merged without approval
	Forged            int // gate statuses found set by someone else
}

type tierGroup struct {
	Tier   string
	Name   string
	Count  int
	States []stateGroup
}

type stateGroup struct {
	Tier  string
	State bot.State
	Count int      // every open escalation of the tier in the state (aggregates)
	Rows  []escRow // those among the most urgent read (openRows)
}

type stateCount struct {
	State bot.State
	Count int
}

// escRow is one escalation in a dashboard list.
type escRow struct {
	ID                string
	Project           string
	MRIID             int64
	MRURL             string
	Title             string
	Tier              string
	TierName          string
	State             bot.State
	Urgent, Manual    bool
	Age               time.Duration
	Due               time.Time
	Left              time.Duration // until Due; negative when overdue (Deadline.Left)
	Overdue           bool
	Deadline          bot.Deadline // where it stands; templates write Deadline.Phrase
	PastFirstResponse bool
	Waiting           []string
	DeferredUntil     time.Time
	// For the whole record: when it was opened, whether it is still open,
	// and how a closed one ended.
	Created  time.Time
	Active   bool
	Bypassed bool
	Forged   int
	Decided  time.Time
	MergedAt time.Time
	MergedBy string

	esc *bot.Escalation // the projection the row shows
}

// holder is a person or group and the open escalations waiting on them.
type holder struct {
	ID    string
	Count int
	IDs   []string
}

func (s *Server) dashboard(w http.ResponseWriter, r *http.Request) {
	v, err := s.readDashboard(r.Context(), s.policy(), s.now())
	if err != nil {
		s.fail(w, r, err)
		return
	}
	v.Console = s.Console != nil
	if v.SetAside, err = s.setAside(r.Context()); err != nil {
		s.fail(w, r, err)
		return
	}
	if v.Incidents, err = s.incidents(r.Context(), s.now()); err != nil {
		s.fail(w, r, err)
		return
	}
	s.Render(w, r, "dashboard", "Dashboard", v)
}

// dashboardData is what the dashboard reads from the store: the counters
// kept at commit time, the figures that depend on the clock (from the
// deadline indexes), and bounded pages of escalations.
type dashboardData struct {
	Agg               bot.Aggregates
	Overdue, Late     int               // bot.Overdue, bot.PastFirstResponse at now
	Open, Deferred    []*bot.Escalation // MostUrgent: the first openRows of each
	Urgent, Approved  []*bot.Escalation // a page each of the open urgent and the approved ones
	UrgentMore, Later bool              // more urgent, approved ones than read
}

// openRows bounds the open escalations the dashboard reads (the aging
// list shows the first agingRows of them, each tier and state the first
// tierRows of its own); listRows the urgent and approved ones. The counts come from the
// aggregates; the All escalations page has every one.
const (
	openRows = 50
	listRows = 20
	tierRows = 5 // rows under each tier and state
)

// readDashboard reads what the dashboard shows: a read of the counters,
// walks of the deadline indexes up to now, and at most 2 x openRows + 2 x
// listRows projections, whatever the store holds.
func (s *Server) readDashboard(ctx context.Context, pol *policies.Policy, now time.Time) (*dashboardView, error) {
	var d dashboardData
	var err error
	if d.Agg, err = s.Store.Aggregates(ctx); err != nil {
		return nil, fmt.Errorf("read aggregates: %w", err)
	}
	if d.Overdue, err = s.Store.CountOverdue(ctx, now); err != nil {
		return nil, err
	}
	if d.Late, err = s.Store.CountPastFirstResponse(ctx, now, func(e *bot.Escalation) bool { return bot.FirstResponded(e, pol) }); err != nil {
		return nil, err
	}
	if d.Open, d.Deferred, err = s.Store.MostUrgent(ctx, openRows); err != nil {
		return nil, err
	}
	yes := true
	page, err := s.Store.ListPage(ctx, bot.ListQuery{Open: &yes, Flag: bot.FlagUrgent, Limit: listRows, Now: now})
	if err != nil {
		return nil, fmt.Errorf("list urgent escalations: %w", err)
	}
	d.Urgent, d.UrgentMore = page.Items, page.Next != ""
	if page, err = s.Store.ListPage(ctx, bot.ListQuery{State: string(bot.StateApproved), Limit: listRows, Now: now}); err != nil {
		return nil, fmt.Errorf("list approved escalations: %w", err)
	}
	d.Approved, d.Later = page.Items, page.Next != ""
	return buildDashboard(d, pol, now), nil
}

// incidents sums up the incidents of the incidentDays before now, from
// that window of the audit log only.
func (s *Server) incidents(ctx context.Context, now time.Time) (bot.IncidentFigures, error) {
	from, to := now.AddDate(0, 0, -incidentDays), now.Add(time.Nanosecond)
	read := s.Store.EventsBetween
	if st, ok := s.Store.(incidentReader); ok {
		read = st.IncidentEventsBetween // only the incidents' own events
	}
	events, err := read(ctx, from, to)
	if err != nil {
		return bot.IncidentFigures{}, fmt.Errorf("read the incidents: %w", err)
	}
	return bot.IncidentFiguresOf(events, from, to), nil
}

// incidentReader reads only the incident events of a window (store.DB
// does, through its incident index).
type incidentReader interface {
	IncidentEventsBetween(ctx context.Context, from, to time.Time) ([]bot.Event, error)
}

// setAside reads the count of dead letters and, when there are any, the
// newest setAsideRows of them.
func (s *Server) setAside(ctx context.Context) (setAside, error) {
	n, err := s.Store.DeadLetterCount(ctx)
	if err != nil || n == 0 {
		return setAside{}, err
	}
	dls, err := s.Store.DeadLetters(ctx, setAsideRows)
	if err != nil {
		return setAside{}, fmt.Errorf("read dead letters: %w", err)
	}
	v := setAside{Count: max(n, len(dls))}
	for _, d := range dls {
		v.Rows = append(v.Rows, deadRow{ID: d.ID, At: d.At, Kind: d.Kind, Ref: d.Ref, Escalation: d.Escalation, Reason: d.Reason, Panic: d.Panic})
	}
	return v, nil
}

// buildDashboard computes the dashboard from what readDashboard read; it
// is a pure function of its arguments.
func buildDashboard(d dashboardData, pol *policies.Policy, now time.Time) *dashboardView {
	a := d.Agg
	v := &dashboardView{Total: a.Total}
	v.Counts = dashboardCounts{
		Open: a.Open(), Breaches: d.Overdue, PastFirstResponse: d.Late, Urgent: a.Urgent,
		Deferred: a.InState(bot.StateDeferred), Approved: a.InState(bot.StateApproved),
		Bypassed: a.Bypassed, Forged: a.Forged,
	}

	// The most urgent open escalations: the aging list's first rows, and
	// the rows under each tier and state.
	var rows []escRow
	for _, e := range slices.Concat(d.Open, d.Deferred) {
		rows = append(rows, newRow(e, pol, now))
	}
	slices.SortStableFunc(rows, byDeadline)
	if len(rows) > openRows {
		rows = rows[:openRows]
	}
	v.Aging = rows[:min(len(rows), agingRows)]

	byTier := map[string]*tierGroup{}
	for k, n := range a.Counts {
		if !k.State.Active() || n == 0 {
			continue
		}
		g := byTier[k.Tier]
		if g == nil {
			g = &tierGroup{Tier: k.Tier}
			byTier[k.Tier] = g
		}
		g.Count += n
		g.States = append(g.States, stateGroup{Tier: k.Tier, State: k.State, Count: n})
	}
	for _, row := range rows {
		g := byTier[row.Tier]
		if g == nil {
			continue
		}
		if g.Name == "" {
			g.Name = row.TierName
		}
		if i := slices.IndexFunc(g.States, func(sg stateGroup) bool { return sg.State == row.State }); i >= 0 && len(g.States[i].Rows) < tierRows {
			g.States[i].Rows = append(g.States[i].Rows, row)
		}
	}
	for _, g := range byTier {
		if g.Name == "" && pol != nil {
			if t := pol.Tier(g.Tier); t != nil {
				g.Name = t.Name
			}
		}
		slices.SortStableFunc(g.States, func(a, b stateGroup) int {
			return cmp.Or(cmp.Compare(stateRank(a.State), stateRank(b.State)), cmp.Compare(a.State, b.State))
		})
		v.Tiers = append(v.Tiers, *g)
	}
	slices.SortStableFunc(v.Tiers, func(a, b tierGroup) int {
		if c := cmp.Compare(tierRank(pol, a.Tier), tierRank(pol, b.Tier)); c != 0 {
			return c
		}
		return cmp.Compare(a.Tier, b.Tier)
	})

	for _, e := range d.Urgent {
		v.Urgent = append(v.Urgent, newRow(e, pol, now))
	}
	for _, e := range d.Deferred {
		v.Deferred = append(v.Deferred, newRow(e, pol, now))
	}
	for _, e := range d.Approved {
		v.Approved = append(v.Approved, newRow(e, pol, now))
	}
	for _, l := range [][]escRow{v.Urgent, v.Deferred, v.Approved} {
		slices.SortStableFunc(l, byDeadline)
	}
	slices.SortStableFunc(v.Deferred, func(a, b escRow) int { return a.DeferredUntil.Compare(b.DeferredUntil) })
	v.UrgentMore = d.UrgentMore || len(v.Urgent) < a.Urgent
	v.DeferredMore = len(v.Deferred) < v.Counts.Deferred
	v.ApprovedMore = d.Later || len(v.Approved) < v.Counts.Approved

	// Bottlenecks: the counters say how many each holds up; the ids shown
	// are those among the rows read.
	people, groups := map[string][]string{}, map[string][]string{}
	for _, row := range rows {
		e := row.esc
		if bot.HoldsUp(e) {
			for _, p := range e.WaitedOn {
				people[p] = append(people[p], e.ID)
			}
		}
		for _, g := range e.HeldByGroups {
			groups[g] = append(groups[g], e.ID)
		}
	}
	v.People, v.Groups = top(a.People, people), top(a.Groups, groups)

	for _, st := range []bot.State{bot.StateIntake, bot.StateAwaitingArtifacts, bot.StateInReview, bot.StateDisputed, bot.StateDeferred,
		bot.StateApproved, bot.StateRejected, bot.StateMerged, bot.StateWithdrawn} {
		if n := a.InState(st); n > 0 {
			v.States = append(v.States, stateCount{st, n})
		}
	}
	v.Weeks = throughput(a, now, chartWeeks)
	v.Chart = ThroughputChart(v.Weeks)
	return v
}

func newRow(e *bot.Escalation, pol *policies.Policy, now time.Time) escRow {
	r := escRow{
		esc: e,
		ID:  e.ID, Project: e.Project, MRIID: e.MRIID, MRURL: e.MRURL, Title: e.Title, Tier: e.Tier, TierName: e.TierName,
		State: e.State, Urgent: e.Urgent, Manual: e.Manual, Age: now.Sub(e.CreatedAt), Due: e.DecisionDue,
		Waiting: bot.WaitingOn(e, pol), DeferredUntil: e.DeferredUntil,
		Created: e.CreatedAt, Active: e.State.Active(), Bypassed: e.Bypassed, Forged: e.Forged,
		Decided: e.DecidedAt, MergedAt: e.MergedAt, MergedBy: e.MergedBy,
	}
	// The deadline and waiting rules are bot's, as for every other surface.
	r.Deadline = bot.DeadlineOf(e, pol, now)
	if r.Deadline.Has {
		r.Due = r.Deadline.Due
	}
	r.Left, r.Overdue = r.Deadline.Left, r.Deadline.Overdue
	r.PastFirstResponse = bot.PastFirstResponse(e, pol, now)
	return r
}

// byDeadline orders rows by the time left, overdue first; rows without a
// deadline come last, oldest first.
func byDeadline(a, b escRow) int {
	switch {
	case a.Due.IsZero() && !b.Due.IsZero():
		return 1
	case !a.Due.IsZero() && b.Due.IsZero():
		return -1
	}
	if c := a.Due.Compare(b.Due); c != 0 {
		return c
	}
	if c := cmp.Compare(b.Age, a.Age); c != 0 {
		return c
	}
	return cmp.Compare(a.ID, b.ID)
}

func stateRank(s bot.State) int {
	if i := slices.Index(openStates, s); i >= 0 {
		return i
	}
	return len(openStates)
}

// tierRank orders tiers as the policy does (highest first); tiers the
// policy no longer has come last.
func tierRank(pol *policies.Policy, id string) int {
	if pol != nil {
		if t := pol.Tier(id); t != nil {
			return t.Rank()
		}
	}
	return 1 << 20
}

// top returns the holders that hold up the most escalations (counts),
// at most topHolders, each with the ids of those among ids.
func top(counts map[string]int, ids map[string][]string) []holder {
	out := make([]holder, 0, len(counts))
	for id, n := range counts {
		if n > 0 {
			out = append(out, holder{ID: id, Count: n})
		}
	}
	slices.SortFunc(out, func(a, b holder) int {
		if c := cmp.Compare(b.Count, a.Count); c != 0 {
			return c
		}
		return cmp.Compare(a.ID, b.ID)
	})
	if len(out) > topHolders {
		out = out[:topHolders]
	}
	for i := range out {
		out[i].IDs = ids[out[i].ID]
		if len(out[i].IDs) > holderIDs {
			out[i].IDs = out[i].IDs[:holderIDs]
		}
	}
	return out
}

// holderIDs bounds the escalations named next to a holder.
const holderIDs = 10

// weekStart returns Monday 00:00 UTC of t's ISO week (bot.WeekOf).
func weekStart(t time.Time) time.Time { return bot.WeekOf(t) }

// throughput returns, for the n ISO weeks ending with now's, the
// escalations opened (CreatedAt) and decided (DecidedAt) in each, from
// the counters (bot.WeekOf).
func throughput(a bot.Aggregates, now time.Time, n int) []Week {
	first := weekStart(now).AddDate(0, 0, -7*(n-1))
	weeks := make([]Week, n)
	for i := range weeks {
		start := first.AddDate(0, 0, 7*i)
		weeks[i] = Week{Start: start, Label: weekLabel(start), Opened: a.Opened[start], Decided: a.Decided[start]}
	}
	return weeks
}
