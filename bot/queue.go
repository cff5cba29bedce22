package bot

import (
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/threatgate/threatgate/policies"
)

// QueueLimit bounds each list of a Queue; QueueList.More counts the items
// left out, so that a view stays within its surface's limits (a Slack App
// Home tab holds at most 100 blocks).
const QueueLimit = 50

// Queue is one person's share of the open escalations, for a personal view
// such as Slack's App Home tab: what waits on them, and their own merge
// requests under review. An escalation may be in several lists (an author
// owes its artifacts and also follows it as their own). Every list is in
// deadline order (see QueueOf).
type Queue struct {
	Person string // the person of the policy it is for

	// Approve: escalations in review whose approval from Person would
	// still count (Waiting lists them).
	Approve QueueList
	// Artifacts: active escalations missing artifacts their tier requires,
	// asked of Person (AskedOf: the MR's author or the filer).
	Artifacts QueueList
	// Intake: manual escalations Person filed that wait for them to answer
	// the intake before they count as filed.
	Intake QueueList
	// Own: active escalations of the merge requests Person wrote, or that
	// Person filed (AskedOf names them), whatever they wait on.
	Own QueueList
}

// QueueList is one list of a Queue: at most QueueLimit items, and how many
// more there were.
type QueueList struct {
	Items []QueueItem
	More  int
}

// Len is how many escalations the list holds, shown or not.
func (l QueueList) Len() int { return len(l.Items) + l.More }

// QueueItem is an escalation as a queue shows it: what it is, where it
// stands and when it is due.
type QueueItem struct {
	ID       string
	Project  string
	MRIID    int64
	Title    string // from outside
	MRURL    string // as GitLab gave it
	Tier     string
	TierName string
	State    State
	Urgent   bool

	// Deadline is where it stands against its decision deadline at the
	// queue's now (DeadlineOf); DecisionDue and Overdue repeat its Due and
	// Overdue. Paused: it is deferred (Paused), until DeferredUntil.
	Deadline      Deadline
	DecisionDue   time.Time // zero when the escalation has no decision deadline
	Overdue       bool
	Paused        bool
	DeferredUntil time.Time // set while Paused

	Missing   []string // the artifacts its tier requires that are not in
	Waiting   []string // whose approval it still waits on (Waiting)
	WaitingOn []string // whom it waits on, whatever for (WaitingOn)
}

// QueueOf returns person's queue among open (the store's open
// escalations): those waiting on their approval, their artifacts or their
// intake answers, and their own. Escalations that are not active (decided,
// withdrawn, merged) are left out, whatever open holds. now decides which
// are overdue. Each list is sorted by decision deadline, earliest first;
// escalations without one come next and deferred ones (their clock is
// paused) last; ties by id. Each list holds at most QueueLimit items.
// An empty person or a nil policy has an empty queue.
func QueueOf(person string, open []*Escalation, pol *policies.Policy, now time.Time) Queue {
	q := Queue{Person: person}
	if person == "" || pol == nil {
		return q
	}
	var approve, artifacts, intake, own []QueueItem
	for _, e := range open {
		if e == nil || !e.State.Active() {
			continue
		}
		it := queueItem(e, pol, now)
		asked := slices.Contains(AskedOf(e, pol), person)
		if slices.Contains(it.Waiting, person) {
			approve = append(approve, it)
		}
		if e.State != StateIntake && len(it.Missing) > 0 && asked {
			artifacts = append(artifacts, it)
		}
		if e.State == StateIntake && e.Filer == person {
			intake = append(intake, it)
		}
		if asked {
			own = append(own, it)
		}
	}
	q.Approve = queueList(approve)
	q.Artifacts = queueList(artifacts)
	q.Intake = queueList(intake)
	q.Own = queueList(own)
	return q
}

// AskedOf names the people asked for e's missing artifacts, the MR's
// author first: the author as a person of pol when pol maps their GitLab
// username (else the username as it is), then the filer of a manual
// escalation. The card's "asked of" line and the queues use it.
func AskedOf(e *Escalation, pol *policies.Policy) []string {
	if e == nil {
		return nil
	}
	var who []string
	var p *policies.Person
	if pol != nil {
		p = pol.Person("gitlab", e.Author)
	}
	if p != nil {
		who = append(who, p.ID)
	} else if e.Author != "" {
		who = append(who, e.Author)
	}
	if e.Filer != "" && !slices.Contains(who, e.Filer) {
		who = append(who, e.Filer)
	}
	return who
}

// queueItem is e as a queue shows it at now.
func queueItem(e *Escalation, pol *policies.Policy, now time.Time) QueueItem {
	it := QueueItem{ID: e.ID, Project: e.Project, MRIID: e.MRIID, Title: e.Title, MRURL: e.MRURL,
		Tier: e.Tier, TierName: e.TierName, State: e.State, Urgent: e.Urgent,
		Paused: Paused(e), Missing: e.MissingArtifacts(pol.Tier(e.Tier)), Waiting: Waiting(e, pol), WaitingOn: WaitingOn(e, pol)}
	it.Deadline = DeadlineOf(e, pol, now)
	it.DecisionDue, it.Overdue = it.Deadline.Due, it.Deadline.Overdue
	if it.Paused {
		it.DeferredUntil = e.DeferredUntil
	}
	return it
}

// queueList sorts items into queue order and keeps the first QueueLimit.
func queueList(items []QueueItem) QueueList {
	slices.SortStableFunc(items, compareQueueItems)
	if len(items) <= QueueLimit {
		return QueueList{Items: items}
	}
	return QueueList{Items: items[:QueueLimit:QueueLimit], More: len(items) - QueueLimit}
}

// compareQueueItems orders by decision deadline, earliest first, then
// those without one, then the paused ones (by deadline too); ties by id.
func compareQueueItems(a, b QueueItem) int {
	rank := func(it QueueItem) int {
		switch {
		case it.Paused:
			return 2
		case it.DecisionDue.IsZero():
			return 1
		}
		return 0
	}
	if ra, rb := rank(a), rank(b); ra != rb {
		return ra - rb
	}
	if c := a.DecisionDue.Compare(b.DecisionDue); c != 0 {
		return c
	}
	return compareEscalationIDs(a.ID, b.ID)
}

// compareEscalationIDs orders ids by their number (ESC-9 before ESC-10),
// and any id that has none after those, as strings.
func compareEscalationIDs(a, b string) int {
	na, errA := strconv.ParseUint(strings.TrimPrefix(a, "ESC-"), 10, 64)
	nb, errB := strconv.ParseUint(strings.TrimPrefix(b, "ESC-"), 10, 64)
	switch {
	case errA == nil && errB == nil && na != nb:
		if na < nb {
			return -1
		}
		return 1
	case errA == nil && errB != nil:
		return -1
	case errA != nil && errB == nil:
		return 1
	}
	return strings.Compare(a, b)
}
