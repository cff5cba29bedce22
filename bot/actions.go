package bot

import (
	"fmt"
	"slices"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/threatgate/threatgate/policies"
)

// Action items: follow-ups recorded on an escalation, each with an owner
// and perhaps a due date, closed one by one. They outlive the merge (a
// follow-up is often what a merge was approved on), so both verbs run on
// ended escalations too.

// action records an action item: its text, its owner (the sender, or the
// person @owner names) and its due date, if any.
func (d *decision) action(c *Command) error {
	f := verbField(VerbAction)
	owner := d.in.Actor.Person
	if c.Owner != "" {
		p := findPerson(d.pol, c.Owner)
		if p == nil {
			return problemf(f, "no person %q in the policy to own the item; name them as @id, such as @%s", c.Owner, d.in.Actor.Person)
		}
		owner = p.ID
	}
	if !c.Due.IsZero() && c.Due.Before(day(d.now)) {
		return problemf(f, "due:%s is past; give today or a later day", c.Due.Format(time.DateOnly))
	}
	d.emit(EventAction, EventData{Text: c.Text, Owner: owner, Due: c.Due})
	msg := fmt.Sprintf("Action item %d recorded on %s for %s", len(d.esc.Actions), d.id(), owner)
	if !c.Due.IsZero() {
		msg += ", due " + c.Due.Format(time.DateOnly)
	}
	d.reply("%s; close it with /threatgate done %s %d.", msg, d.id(), len(d.esc.Actions))
	return nil
}

// done closes action item c.N. Its owner, the one who recorded it, an
// approver of the tier (or a backup standing in) and the re-tier authority
// may close it; an item closes once.
func (d *decision) done(c *Command) error {
	f, e, me := verbField(VerbDone), d.esc, d.in.Actor.Person
	switch n := len(e.Actions); {
	case n == 0:
		return problemf(f, "%s has no action items", e.ID)
	case c.N < 1 || c.N > n:
		return problemf(f, "%s has no action item %d; want 1 to %d (/threatgate status %s lists them)", e.ID, c.N, n, e.ID)
	}
	item := e.Actions[c.N-1]
	if item.Done {
		return problemf(f, "action item %d on %s was already closed by %s on %s", c.N, e.ID, item.DoneBy, item.DoneAt.UTC().Format(time.DateOnly))
	}
	if !d.mayClose(item, me) {
		who := []string{ActionOwner(item) + " (its owner)"}
		if item.By != ActionOwner(item) {
			who = append(who, item.By+" (who recorded it)")
		}
		if t := d.tier(); t != nil {
			who = append(who, "an approver of "+t.ID)
		}
		if len(d.pol.Authority.Retier) > 0 {
			who = append(who, strings.Join(d.pol.Authority.Retier, ", "))
		}
		return problemf(f, "only %s may close action item %d on %s", strings.Join(who, ", "), c.N, e.ID)
	}
	d.emit(EventActionDone, EventData{N: c.N})
	d.reply("Action item %d on %s closed.", c.N, d.id())
	return nil
}

// mayClose reports whether person may close item.
func (d *decision) mayClose(item Note, person string) bool {
	if person == "" {
		return false
	}
	if person == ActionOwner(item) || person == item.By {
		return true
	}
	// Someone who wrote the change closes no one else's follow-up on it,
	// whatever their groups.
	if d.esc != nil && wrote(d.pol.Person("id", person), d.esc.Authors()) {
		return false
	}
	if d.pol.InAny(person, d.pol.Authority.Retier) {
		return true
	}
	t := d.tier()
	return t != nil && len(d.eligibleRows(t, person)) > 0
}

// ActionOwner returns who owns an action item: its Owner, or, for an item
// recorded before items had owners, whoever recorded it.
func ActionOwner(n Note) string {
	if n.Owner != "" {
		return n.Owner
	}
	return n.By
}

// ActionDeadline returns when an action item becomes overdue: the end of
// its due day (UTC), zero when it has no due date.
func ActionDeadline(n Note) time.Time {
	if n.Due.IsZero() {
		return time.Time{}
	}
	return day(n.Due).Add(24 * time.Hour)
}

// ActionsOverdue returns the 1-based numbers of e's action items that are
// open and past due at now (their due day has ended), in order; nil when
// there are none. It looks at the items only, whatever e's state: a
// follow-up outlives the merge.
func ActionsOverdue(e *Escalation, now time.Time) []int {
	if e == nil {
		return nil
	}
	var out []int
	for i, n := range e.Actions {
		if dl := ActionDeadline(n); !n.Done && !dl.IsZero() && !now.Before(dl) {
			out = append(out, i+1)
		}
	}
	return out
}

// actionLines lists e's action items for /threatgate status, one line
// each, as of now.
func actionLines(e *Escalation, now time.Time) []string {
	overdue := ActionsOverdue(e, now)
	var out []string
	for i, n := range e.Actions {
		s := fmt.Sprintf("%d. %s (%s", i+1, oneLine(n.Text, 80), ActionOwner(n))
		if !n.Due.IsZero() {
			s += ", due " + n.Due.Format(time.DateOnly)
		}
		switch {
		case n.Done:
			s += "; done by " + n.DoneBy
		case slices.Contains(overdue, i+1):
			s += "; OVERDUE"
		}
		out = append(out, s+")")
	}
	return out
}

// findPerson finds a person by their id, or by their GitLab, Slack or
// Discord id (a chat mention gives the latter two).
func findPerson(pol *policies.Policy, who string) *policies.Person {
	for _, surface := range []string{"id", "gitlab", "slack", "discord"} {
		if p := pol.Person(surface, who); p != nil {
			return p
		}
	}
	return nil
}

// day returns UTC midnight starting t's day (in UTC).
func day(t time.Time) time.Time {
	y, m, dd := t.UTC().Date()
	return time.Date(y, m, dd, 0, 0, 0, 0, time.UTC)
}

// oneLine returns the first line of s, cut to at most n runes.
func oneLine(s string, n int) string {
	s, more, _ := strings.Cut(strings.TrimSpace(s), "\n")
	if utf8.RuneCountInString(s) > n {
		return string([]rune(s)[:n]) + "…"
	}
	if more != "" {
		return s + " …"
	}
	return s
}
