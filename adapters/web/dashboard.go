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
	People   []holder
	Groups   []holder
	Weeks    []Week
	Chart    template.HTML
	States   []stateCount // every escalation by state
	SetAside setAside     // items the background loops set aside; shown when Count > 0
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
	State bot.State
	Rows  []escRow
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
}

// holder is a person or group and the open escalations waiting on them.
type holder struct {
	ID    string
	Count int
	IDs   []string
}

func (s *Server) dashboard(w http.ResponseWriter, r *http.Request) {
	all, err := s.Store.List(r.Context())
	if err != nil {
		s.fail(w, r, fmt.Errorf("list escalations: %w", err))
		return
	}
	v := buildDashboard(all, s.policy(), s.now())
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

// incidents sums up the incidents of the incidentDays before now, from
// that window of the audit log only.
func (s *Server) incidents(ctx context.Context, now time.Time) (bot.IncidentFigures, error) {
	from, to := now.AddDate(0, 0, -incidentDays), now.Add(time.Nanosecond)
	events, err := s.Store.EventsBetween(ctx, from, to)
	if err != nil {
		return bot.IncidentFigures{}, fmt.Errorf("read the incidents: %w", err)
	}
	return bot.IncidentFiguresOf(events, from, to), nil
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

// buildDashboard computes the dashboard from every escalation; it is a
// pure function of its arguments.
func buildDashboard(all []*bot.Escalation, pol *policies.Policy, now time.Time) *dashboardView {
	v := &dashboardView{Total: len(all)}
	byTier := map[string]*tierGroup{}
	states := map[bot.State]int{}
	people := map[string]*holder{}
	groups := map[string]*holder{}
	for _, e := range all {
		states[e.State]++
		if e.Bypassed {
			v.Counts.Bypassed++
		}
		v.Counts.Forged += e.Forged
		row := newRow(e, pol, now)
		if e.State == bot.StateApproved {
			v.Counts.Approved++
			v.Approved = append(v.Approved, row)
		}
		if !e.State.Active() {
			continue
		}
		v.Counts.Open++
		if row.Overdue {
			v.Counts.Breaches++
		}
		if row.PastFirstResponse {
			v.Counts.PastFirstResponse++
		}
		if e.Urgent {
			v.Counts.Urgent++
			v.Urgent = append(v.Urgent, row)
		}
		if e.State == bot.StateDeferred {
			v.Counts.Deferred++
			v.Deferred = append(v.Deferred, row)
		}
		v.Aging = append(v.Aging, row)
		g := byTier[e.Tier]
		if g == nil {
			g = &tierGroup{Tier: e.Tier, Name: e.TierName}
			byTier[e.Tier] = g
		}
		g.Count++
		i := slices.IndexFunc(g.States, func(sg stateGroup) bool { return sg.State == e.State })
		if i < 0 {
			g.States = append(g.States, stateGroup{State: e.State})
			i = len(g.States) - 1
		}
		g.States[i].Rows = append(g.States[i].Rows, row)

		if bot.Paused(e) {
			continue // a deferral holds nobody up
		}
		for _, p := range row.Waiting {
			hold(people, p, e.ID)
		}
		for _, gid := range bot.HoldingGroups(e, pol, row.Waiting) {
			hold(groups, gid, e.ID)
		}
	}

	for _, g := range byTier {
		slices.SortStableFunc(g.States, func(a, b stateGroup) int { return cmp.Compare(stateRank(a.State), stateRank(b.State)) })
		for i := range g.States {
			slices.SortStableFunc(g.States[i].Rows, byDeadline)
		}
		v.Tiers = append(v.Tiers, *g)
	}
	slices.SortStableFunc(v.Tiers, func(a, b tierGroup) int {
		if c := cmp.Compare(tierRank(pol, a.Tier), tierRank(pol, b.Tier)); c != 0 {
			return c
		}
		return cmp.Compare(a.Tier, b.Tier)
	})
	for _, l := range [][]escRow{v.Aging, v.Urgent, v.Deferred, v.Approved} {
		slices.SortStableFunc(l, byDeadline)
	}
	slices.SortStableFunc(v.Deferred, func(a, b escRow) int { return a.DeferredUntil.Compare(b.DeferredUntil) })
	if len(v.Aging) > agingRows {
		v.Aging = v.Aging[:agingRows]
	}
	v.People, v.Groups = top(people), top(groups)
	for _, st := range []bot.State{bot.StateIntake, bot.StateAwaitingArtifacts, bot.StateInReview, bot.StateDisputed, bot.StateDeferred,
		bot.StateApproved, bot.StateRejected, bot.StateMerged, bot.StateWithdrawn} {
		if n := states[st]; n > 0 {
			v.States = append(v.States, stateCount{st, n})
		}
	}
	v.Weeks = throughput(all, now, chartWeeks)
	v.Chart = ThroughputChart(v.Weeks)
	return v
}

func newRow(e *bot.Escalation, pol *policies.Policy, now time.Time) escRow {
	r := escRow{
		ID: e.ID, Project: e.Project, MRIID: e.MRIID, MRURL: e.MRURL, Title: e.Title, Tier: e.Tier, TierName: e.TierName,
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

func hold(m map[string]*holder, id, esc string) {
	h := m[id]
	if h == nil {
		h = &holder{ID: id}
		m[id] = h
	}
	if !slices.Contains(h.IDs, esc) {
		h.Count++
		h.IDs = append(h.IDs, esc)
	}
}

// top returns the holders with the most escalations, at most topHolders.
func top(m map[string]*holder) []holder {
	out := make([]holder, 0, len(m))
	for _, h := range m {
		out = append(out, *h)
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
	return out
}

// weekStart returns Monday 00:00 UTC of t's ISO week.
func weekStart(t time.Time) time.Time {
	t = t.UTC()
	day := time.Date(t.Year(), t.Month(), t.Day(), 0, 0, 0, 0, time.UTC)
	return day.AddDate(0, 0, -((int(day.Weekday()) + 6) % 7))
}

// throughput counts, for the n ISO weeks ending with now's, the
// escalations opened (CreatedAt) and decided (DecidedAt) in each.
func throughput(all []*bot.Escalation, now time.Time, n int) []Week {
	first := weekStart(now).AddDate(0, 0, -7*(n-1))
	weeks := make([]Week, n)
	for i := range weeks {
		start := first.AddDate(0, 0, 7*i)
		weeks[i] = Week{Start: start, Label: weekLabel(start)}
	}
	index := func(t time.Time) int {
		if t.IsZero() || t.Before(first) {
			return -1
		}
		i := int(weekStart(t).Sub(first) / (7 * 24 * time.Hour))
		if i >= n {
			return -1
		}
		return i
	}
	for _, e := range all {
		if i := index(e.CreatedAt); i >= 0 {
			weeks[i].Opened++
		}
		if i := index(e.DecidedAt); i >= 0 {
			weeks[i].Decided++
		}
	}
	return weeks
}
