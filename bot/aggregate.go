package bot

import (
	"strings"
	"time"

	"github.com/threatgate/threatgate/policies"
)

// The figures the dashboard and /metrics show about the whole record are
// counters that the store keeps at commit time: every projection
// contributes to some counters (Contributions), and a commit takes the
// old projection's contributions away and adds the new one's, in the same
// transaction, so reading them costs a read, not a scan. The rules of
// what counts where are here; the store only adds and subtracts.
//
// What depends on the clock (overdue now, past the first response now)
// is no counter: the store answers it from its deadline indexes.

// Counter keys: a kind, then its values separated by NUL.
const (
	aggTotal     = "total"
	aggTierState = "ts" // tier, state
	aggBypassed  = "bypassed"
	aggForged    = "forged"
	aggUrgent    = "urgent"  // open and urgent
	aggOpened    = "opened"  // ISO week (its Monday, 2006-01-02)
	aggDecided   = "decided" // ISO week
	aggPerson    = "person"  // open escalations held up by the person
	aggGroup     = "group"   // open escalations held up by the group
)

// Contribution is what one projection adds to one counter.
type Contribution struct {
	Key string
	N   int64
}

// Contributions returns the counters e counts in and by how much: one for
// the total, one for its tier and state, bypassed and urgent (open) ones,
// its forged statuses (how many), the ISO week it was opened in and the
// one it was decided in, and, while it HoldsUp, everyone it waits on
// (WaitedOn) and every group it holds up (HeldByGroups). nil for nil.
func Contributions(e *Escalation) []Contribution {
	if e == nil {
		return nil
	}
	out := []Contribution{{aggTotal, 1}, {aggKey(aggTierState, e.Tier, string(e.State)), 1}}
	if e.Bypassed {
		out = append(out, Contribution{aggBypassed, 1})
	}
	if e.Forged != 0 {
		out = append(out, Contribution{aggForged, int64(e.Forged)})
	}
	if e.Urgent && e.State.Active() {
		out = append(out, Contribution{aggUrgent, 1})
	}
	if !e.CreatedAt.IsZero() {
		out = append(out, Contribution{aggKey(aggOpened, weekKey(e.CreatedAt)), 1})
	}
	if !e.DecidedAt.IsZero() {
		out = append(out, Contribution{aggKey(aggDecided, weekKey(e.DecidedAt)), 1})
	}
	if HoldsUp(e) {
		for _, p := range e.WaitedOn {
			out = append(out, Contribution{aggKey(aggPerson, p), 1})
		}
	}
	for _, g := range e.HeldByGroups {
		out = append(out, Contribution{aggKey(aggGroup, g), 1})
	}
	return out
}

func aggKey(kind string, values ...string) string {
	return kind + "\x00" + strings.Join(values, "\x00")
}

func weekKey(t time.Time) string { return WeekOf(t).Format(time.DateOnly) }

// WeekOf returns Monday 00:00 UTC of t's ISO week: the week the
// throughput figures count t in.
func WeekOf(t time.Time) time.Time {
	t = t.UTC()
	day := time.Date(t.Year(), t.Month(), t.Day(), 0, 0, 0, 0, time.UTC)
	return day.AddDate(0, 0, -((int(day.Weekday()) + 6) % 7))
}

// HoldsUp reports whether e holds anybody up now: it is open and not
// deferred (a deferral holds nobody up). The dashboard's bottlenecks
// count the people it waits on (WaitedOn) and the groups (HeldByGroups)
// of those that do.
func HoldsUp(e *Escalation) bool { return e != nil && e.State.Active() && !Paused(e) }

// HeldGroups returns the groups e holds up now, given whom it waits on
// (WaitingOn): HoldingGroups while it HoldsUp, none otherwise.
func HeldGroups(e *Escalation, pol *policies.Policy, waiting []string) []string {
	if !HoldsUp(e) {
		return nil
	}
	return HoldingGroups(e, pol, waiting)
}

// TierState is a tier and a state.
type TierState struct {
	Tier  string
	State State
}

// Aggregates are the counters as read: the whole record's figures that
// do not depend on the clock.
type Aggregates struct {
	Total    int
	Counts   map[TierState]int // every escalation by tier and state
	Bypassed int
	Forged   int
	Urgent   int               // open and urgent
	Opened   map[time.Time]int // by ISO week (WeekOf)
	Decided  map[time.Time]int // by ISO week
	People   map[string]int    // open escalations each person holds up
	Groups   map[string]int    // open escalations each group holds up
}

// AggregatesOf reads counters (key -> value, as Contributions named them)
// into Aggregates; keys it does not know are left out.
func AggregatesOf(counters map[string]int64) Aggregates {
	a := Aggregates{Counts: map[TierState]int{}, Opened: map[time.Time]int{}, Decided: map[time.Time]int{},
		People: map[string]int{}, Groups: map[string]int{}}
	for k, n := range counters {
		kind, rest, _ := strings.Cut(k, "\x00")
		v := int(n)
		switch kind {
		case aggTotal:
			a.Total = v
		case aggBypassed:
			a.Bypassed = v
		case aggForged:
			a.Forged = v
		case aggUrgent:
			a.Urgent = v
		case aggTierState:
			tier, state, _ := strings.Cut(rest, "\x00")
			a.Counts[TierState{tier, State(state)}] = v
		case aggOpened, aggDecided:
			w, err := time.Parse(time.DateOnly, rest)
			if err != nil {
				continue
			}
			if kind == aggOpened {
				a.Opened[w] = v
			} else {
				a.Decided[w] = v
			}
		case aggPerson:
			a.People[rest] = v
		case aggGroup:
			a.Groups[rest] = v
		}
	}
	return a
}

// Open returns how many escalations are open (State.Active), and InState
// how many are in st.
func (a Aggregates) Open() int {
	n := 0
	for k, v := range a.Counts {
		if k.State.Active() {
			n += v
		}
	}
	return n
}

// InState returns how many escalations are in st, whatever their tier.
func (a Aggregates) InState(st State) int {
	n := 0
	for k, v := range a.Counts {
		if k.State == st {
			n += v
		}
	}
	return n
}

// FirstResponseWatch returns what PastFirstResponse needs to know of e
// besides its deadline, for the store's first-response index: nil when
// it cannot apply (closed, deferred, no first-response deadline); an
// empty Escalation when nobody has acted on e at all (nobody can have
// responded); otherwise a copy of e with only what FirstResponded reads
// (tier, filer, authors and who acted). PastFirstResponse of the watch is
// PastFirstResponse of e, whatever the policy and the time.
func FirstResponseWatch(e *Escalation) *Escalation {
	if e == nil || !e.State.Active() || Paused(e) || e.FirstResponseDue.IsZero() {
		return nil
	}
	w := &Escalation{ID: e.ID, State: e.State, FirstResponseDue: e.FirstResponseDue}
	if len(e.Approvals)+len(e.Rejections)+len(e.Dissents)+len(e.Actions) == 0 && e.Risk == nil {
		return w
	}
	w.Tier, w.Filer, w.Author = e.Tier, e.Filer, e.Author
	w.CommitAuthors = e.CommitAuthors
	w.Approvals, w.Rejections, w.Dissents, w.Actions, w.Risk = e.Approvals, e.Rejections, e.Dissents, e.Actions, e.Risk
	return w
}
