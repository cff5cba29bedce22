package bot

import (
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/threatgate/threatgate/policies"
)

// ListQuery selects escalations for the whole record (GET
// /api/escalations, the "All escalations" page): every filter set must
// hold. Results come newest first (CreatedAt, then id), a page at a time.
type ListQuery struct {
	// State is a State, or one of the pseudo-states StateBypassed (merged
	// without approval), "open" (State.Active) and "closed" (not active).
	State string
	Tier  string
	// Project matches the project path, case-insensitively.
	Project string
	// Person matches anyone named on the escalation (PeopleOf),
	// case-insensitively.
	Person string
	// Open, when set, keeps the escalations whose State.Active() is *Open.
	Open *bool
	// Flag is one of FlagUrgent, FlagManual, FlagForged, FlagOverdue,
	// FlagLate.
	Flag string
	// Since and Until bound CreatedAt: Since <= CreatedAt < Until; a zero
	// bound is open.
	Since, Until time.Time
	// Now is the time FlagOverdue and FlagLate are judged at, Policy the
	// policy FlagLate is (who counts as a first response).
	Now    time.Time
	Policy *policies.Policy

	// Limit is the page size (the store bounds it); Cursor continues the
	// page a previous answer's Next named, "" for the first page.
	Limit  int
	Cursor string
}

// ListPage is one page of a ListQuery: Next continues it, "" when the
// index holds nothing further in range. A page may hold fewer than Limit
// items (even none) with a Next: the store stopped after its bound of
// reads (see store.DB.ListPage); follow Next until it is "".
type ListPage struct {
	Items []*Escalation
	Next  string
}

// Pseudo-states and flags a ListQuery filters on.
const (
	StateBypassed = "bypassed" // merged without the current head's approval
	StateOpen     = "open"     // State.Active
	StateClosed   = "closed"   // not State.Active

	FlagUrgent  = "urgent"  // an urgent label made it urgent
	FlagManual  = "manual"  // filed with /escalate
	FlagForged  = "forged"  // a gate status was found set by someone else
	FlagOverdue = "overdue" // open and past its decision deadline at Now (Overdue)
	FlagLate    = "late"    // open, past its first-response deadline with no response at Now (PastFirstResponse)
)

// TimeFlag reports whether flag is judged at ListQuery.Now (overdue,
// late) rather than stored with the escalation.
func TimeFlag(flag string) bool { return flag == FlagOverdue || flag == FlagLate }

// ListStates are the values ListQuery.State takes, in the order a form
// offers them.
var ListStates = []string{
	StateOpen, string(StateIntake), string(StateAwaitingArtifacts), string(StateInReview), string(StateDisputed), string(StateDeferred),
	StateClosed, string(StateApproved), string(StateRejected), string(StateWithdrawn), string(StateMerged), StateBypassed,
}

// ListFlags are the values ListQuery.Flag takes.
var ListFlags = []string{FlagUrgent, FlagManual, FlagForged, FlagOverdue, FlagLate}

// Key is the query's filters in one canonical string (without Limit,
// Cursor and Now): two queries with the same Key select the same
// escalations. A cursor is bound to it.
func (q ListQuery) Key() string {
	var b strings.Builder
	add := func(k, v string) {
		b.WriteString(k)
		b.WriteByte('=')
		b.WriteString(strconv.Quote(v))
		b.WriteByte(';')
	}
	add("state", q.State)
	add("tier", q.Tier)
	add("project", strings.ToLower(q.Project))
	add("person", strings.ToLower(q.Person))
	if q.Open != nil {
		add("open", strconv.FormatBool(*q.Open))
	}
	add("flag", q.Flag)
	if !q.Since.IsZero() {
		add("since", q.Since.UTC().Format(time.RFC3339Nano))
	}
	if !q.Until.IsZero() {
		add("until", q.Until.UTC().Format(time.RFC3339Nano))
	}
	return b.String()
}

// Match reports whether e passes every filter of q.
func (q ListQuery) Match(e *Escalation) bool {
	if e == nil {
		return false
	}
	if q.State != "" && !slices.Contains(StatesOf(e), q.State) {
		return false
	}
	if q.Tier != "" && e.Tier != q.Tier {
		return false
	}
	if q.Project != "" && !strings.EqualFold(e.Project, q.Project) {
		return false
	}
	if q.Person != "" && !slices.Contains(PeopleOf(e), strings.ToLower(q.Person)) {
		return false
	}
	if q.Open != nil && e.State.Active() != *q.Open {
		return false
	}
	if q.Flag != "" {
		switch q.Flag {
		case FlagOverdue:
			if !e.State.Active() || !Overdue(e, q.Now) {
				return false
			}
		case FlagLate:
			if !PastFirstResponse(e, q.Policy, q.Now) {
				return false
			}
		default:
			if !slices.Contains(FlagsOf(e), q.Flag) {
				return false
			}
		}
	}
	if !q.Since.IsZero() && e.CreatedAt.Before(q.Since) {
		return false
	}
	if !q.Until.IsZero() && !e.CreatedAt.Before(q.Until) {
		return false
	}
	return true
}

// StatesOf returns the values of ListQuery.State that e matches: its
// State, "open" or "closed", and "bypassed" for a merge without approval.
func StatesOf(e *Escalation) []string {
	out := []string{string(e.State), StateClosed}
	if e.State.Active() {
		out[1] = StateOpen
	}
	if e.Bypassed {
		out = append(out, StateBypassed)
	}
	return out
}

// FlagsOf returns the stored flags of e (FlagOverdue and FlagLate depend
// on the time and are not among them).
func FlagsOf(e *Escalation) []string {
	var out []string
	if e.Urgent {
		out = append(out, FlagUrgent)
	}
	if e.Manual {
		out = append(out, FlagManual)
	}
	if e.Forged > 0 {
		out = append(out, FlagForged)
	}
	return out
}

// PeopleOf returns everyone named on e, in lower case, sorted, each once:
// the MR's author and its commit authors (as the forge names them), the
// filer of a manual escalation, whoever handed in an artifact, approved,
// rejected, dissented, scored or validated the residual risk, added or
// owns or closed an action item, withdrew it or merged it, and the people
// it waits on now. "system" is nobody.
func PeopleOf(e *Escalation) []string {
	var out []string
	add := func(p string) {
		if p = strings.ToLower(strings.TrimSpace(p)); p != "" && p != "system" {
			out = append(out, p)
		}
	}
	add(e.Author)
	for _, p := range e.CommitAuthors {
		add(p)
	}
	add(e.Filer)
	for _, a := range e.Artifacts {
		add(a.By)
	}
	for _, ds := range [][]Decision{e.Approvals, e.Rejections} {
		for _, d := range ds {
			add(d.By)
		}
	}
	for _, ns := range [][]Note{e.Dissents, e.Actions} {
		for _, n := range ns {
			add(n.By)
			add(n.Owner)
			add(n.DoneBy)
		}
	}
	if e.Risk != nil {
		add(e.Risk.By)
		add(e.Risk.ValidatedBy)
	}
	add(e.WithdrawnBy)
	add(e.MergedBy)
	for _, p := range e.Waiting {
		add(p)
	}
	for _, p := range e.WaitedOn {
		add(p)
	}
	slices.Sort(out)
	return slices.Compact(out)
}

// Page sizes of a ListQuery: DefaultListLimit when none is asked for, at
// most MaxListLimit.
const (
	DefaultListLimit = 100
	MaxListLimit     = 1000
)
