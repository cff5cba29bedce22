package bot

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/threatgate/threatgate/policies"
)

// The daily digest: once a day, in every chat surface's main channel, the
// backlog as one message: what is open and on whom it waits, the
// deadlines missed since the last digest, the bottlenecks, what is
// deferred and until when, and the last week's throughput.

// History reads the audit log by time; store.DB implements it. The digest
// and the weekly report read through it, so that their cost follows the
// days they cover, not the length of the log.
type History interface {
	// EventsBetween returns the events whose At is in [from, to), in log
	// order.
	EventsBetween(ctx context.Context, from, to time.Time) ([]Event, error)
}

// ChainHead reads where the audit log ends; store.DB implements it. When
// the store is one, the digest carries the head: posted in chat, it is an
// anchor kept outside threatgate, which `threatgate audit verify
// --anchors` checks the log against later.
type ChainHead interface {
	// HeadOf returns the seq and hash of the last event of the log; 0 and
	// "" while it is empty.
	HeadOf(ctx context.Context) (seq uint64, hash string, err error)
}

// Bounds of a digest, so that it stays one message a person reads at a
// glance (and within every surface's limits): the lists keep their first
// items and count the rest.
const (
	// DigestWindow is how far back a digest's throughput looks, and the
	// furthest back it reports missed deadlines from.
	DigestWindow = 7 * 24 * time.Hour
	// DigestLimit bounds the open escalations a digest lists.
	DigestLimit = 20
	// DigestListLimit bounds its other lists: missed deadlines, deferred
	// escalations.
	DigestListLimit = 10
	// DigestHolders bounds each bottleneck list (people, groups).
	DigestHolders = 5
)

// DigestData is the daily digest as data: facts, no English. Each surface
// renders it (RenderDigestText for the console, Block Kit in Slack).
// Titles and URLs came from outside; every renderer neutralises them.
type DigestData struct {
	Now   time.Time `json:"now"`
	Since time.Time `json:"since"` // the previous digest: missed deadlines are counted from here
	// Dashboard is the dashboard's URL, "" when none is configured.
	Dashboard string `json:"dashboard,omitempty"`

	// Open are the escalations that wait on people (active, not
	// deferred): urgent ones first, then by time left before the decision
	// is due (none last), at most DigestLimit; OpenMore counts the rest.
	Open     []DigestItem `json:"open,omitempty"`
	OpenMore int          `json:"open_more,omitempty"`
	Urgent   int          `json:"urgent,omitempty"`  // of all open, shown or not
	Overdue  int          `json:"overdue,omitempty"` // of all open: past the decision deadline

	// Breaches are the decision deadlines that passed between Since and
	// Now while their escalation waited on people, earliest first.
	Breaches     []DigestBreach `json:"breaches,omitempty"`
	BreachesMore int            `json:"breaches_more,omitempty"`

	// People and Groups hold the most open escalations: the people an
	// escalation waits on (WaitingOn), and the groups whose approvals or
	// arbitration it waits for. Most first, at most DigestHolders each.
	People []Bottleneck `json:"people,omitempty"`
	Groups []Bottleneck `json:"groups,omitempty"`

	// Deferred are the deferred escalations whose deferral has not ended
	// (one past its end date is open again: its clock runs, DeadlineOf),
	// the soonest back first.
	Deferred     []DigestItem `json:"deferred,omitempty"`
	DeferredMore int          `json:"deferred_more,omitempty"`

	Throughput Throughput `json:"throughput"`

	// Caps are the people who filed manual escalations this quarter,
	// against the cap (caps.manual_escalations_per_quarter plus their
	// overrides), the closest to it first; none when there is no cap.
	Caps []ManualUse `json:"caps,omitempty"`
	Cap  int         `json:"cap,omitempty"`

	// HeadSeq and HeadHash are where the audit log ended when the digest
	// was made (ChainHead); 0 and "" when the store does not say. Every
	// renderer shows them whole, to be kept as an anchor.
	HeadSeq  uint64 `json:"head_seq,omitempty"`
	HeadHash string `json:"head_hash,omitempty"`
}

// OpenCount is how many escalations wait on people, listed or not.
func (d *DigestData) OpenCount() int { return len(d.Open) + d.OpenMore }

// DeferredCount is how many escalations are deferred, listed or not.
func (d *DigestData) DeferredCount() int { return len(d.Deferred) + d.DeferredMore }

// BreachCount is how many deadlines were missed since the last digest.
func (d *DigestData) BreachCount() int { return len(d.Breaches) + d.BreachesMore }

// DigestItem is one escalation in a digest.
type DigestItem struct {
	ID       string `json:"id"`
	Project  string `json:"project"`
	MRIID    int64  `json:"mr_iid"`
	Title    string `json:"title,omitempty"`  // from outside
	MRURL    string `json:"mr_url,omitempty"` // as GitLab gave it
	Tier     string `json:"tier"`
	TierName string `json:"tier_name,omitempty"`
	State    State  `json:"state"`
	Urgent   bool   `json:"urgent,omitempty"`

	Opened time.Time     `json:"opened"`
	Waited time.Duration `json:"waited"` // since it was opened
	// Deadline is where it stands against its decision deadline
	// (DeadlineOf); every renderer writes Deadline.Phrase. DecisionDue,
	// Left and Overdue repeat its Due, Left and Overdue: the time left is
	// negative once overdue, and stands still while a deferral pauses it.
	Deadline    Deadline      `json:"deadline"`
	DecisionDue time.Time     `json:"decision_due,omitzero"`
	Left        time.Duration `json:"left,omitempty"`
	Overdue     bool          `json:"overdue,omitempty"`
	// WaitingOn names whom it waits on (WaitingOn); DeferredUntil is when
	// a deferred one comes back.
	WaitingOn     []string  `json:"waiting_on,omitempty"`
	DeferredUntil time.Time `json:"deferred_until,omitzero"`
}

// DigestBreach is a decision deadline that passed while its escalation
// waited on people.
type DigestBreach struct {
	ID      string    `json:"id"`
	Project string    `json:"project,omitempty"` // "" when the digest did not read it
	MRIID   int64     `json:"mr_iid,omitempty"`
	Tier    string    `json:"tier,omitempty"`
	Due     time.Time `json:"due"` // the deadline that passed
	// DecidedAt is when it was decided after all; zero while it is not.
	DecidedAt time.Time `json:"decided_at,omitzero"`
	// Open: it still waits on people.
	Open bool `json:"open,omitempty"`
}

// Bottleneck is a person or a group and the open escalations waiting on
// them.
type Bottleneck struct {
	Who         string   `json:"who"`
	Escalations []string `json:"escalations"` // in digest order
}

// Throughput is what happened in a window: escalations opened and
// decided, and how long the decisions took per tier.
type Throughput struct {
	From    time.Time `json:"from"`
	To      time.Time `json:"to"`
	Opened  int       `json:"opened"`
	Decided int       `json:"decided"` // escalations approved or rejected (each once)
	// Tiers are the times to decision (from opening to the first approval
	// or rejection in the window) per tier, highest tier first.
	Tiers []TierTimes `json:"tiers,omitempty"`
}

// DigestKey is the idempotency key of the digest of now's day, in now's
// time zone (the schedule's, for a slot): one digest a day, however often
// it is asked for, across daylight-saving changes.
func DigestKey(now time.Time) string { return "digest:" + now.Format("2006-01-02") }

// BuildDigest makes the digest at now. open are the store's open
// escalations (FindOpen), recent the events of the DigestWindow before
// now, and others the projections of other escalations recent names (those
// it shows decided), for when they were opened; others may be nil, then
// times to decision are measured only for escalations opened within
// recent. since is the previous digest: the deadlines missed after it are
// listed (at most DigestWindow back). Everything is a pure function of the
// arguments.
func BuildDigest(open []*Escalation, recent []Event, others []*Escalation, since, now time.Time, pol *policies.Policy) *DigestData {
	if since.IsZero() || since.Before(now.Add(-DigestWindow)) {
		since = now.Add(-DigestWindow)
	}
	since = earlier(since, now)
	d := &DigestData{Now: now, Since: since}
	known := map[string]*Escalation{}
	for _, e := range others {
		if e != nil {
			known[e.ID] = e
		}
	}
	var items, deferred []DigestItem
	for _, e := range open {
		if e == nil || !e.State.Active() {
			continue
		}
		known[e.ID] = e
		it := digestItem(e, pol, now)
		if _, paused := pauseOf(e, now); paused {
			deferred = append(deferred, it)
			continue
		}
		items = append(items, it)
		if e.Urgent {
			d.Urgent++
		}
		if it.Overdue {
			d.Overdue++
		}
	}
	slices.SortStableFunc(items, compareDigestItems)
	slices.SortStableFunc(deferred, func(a, b DigestItem) int {
		return cmp.Or(a.DeferredUntil.Compare(b.DeferredUntil), compareEscalationIDs(a.ID, b.ID))
	})
	d.Open, d.OpenMore = bound(items, DigestLimit)
	d.Deferred, d.DeferredMore = bound(deferred, DigestListLimit)

	// Bottlenecks, over every open escalation (listed or not), in digest
	// order.
	people, groups := map[string][]string{}, map[string][]string{}
	for _, it := range items {
		for _, p := range it.WaitingOn {
			people[p] = append(people[p], it.ID)
		}
		for _, g := range HoldingGroups(known[it.ID], pol, it.WaitingOn) {
			groups[g] = append(groups[g], it.ID)
		}
	}
	d.People, d.Groups = topHolders(people), topHolders(groups)

	trails := trailsOf(recent, known)
	var breaches []DigestBreach
	for _, id := range sortedIDs(trails) {
		t := trails[id]
		for _, due := range t.lapses(since, now) {
			b := DigestBreach{ID: id, Due: due, Tier: t.tierAt(due), DecidedAt: t.decidedAfter(due)}
			if t.esc != nil {
				b.Project, b.MRIID = t.esc.Project, t.esc.MRIID
				b.Open = t.esc.State.Active()
			} else if op := t.openedEvent(); op != nil {
				b.Project, b.MRIID = op.Data.Project, op.Data.MRIID
			}
			breaches = append(breaches, b)
		}
	}
	slices.SortStableFunc(breaches, func(a, b DigestBreach) int {
		return cmp.Or(a.Due.Compare(b.Due), compareEscalationIDs(a.ID, b.ID))
	})
	d.Breaches, d.BreachesMore = bound(breaches, DigestListLimit)

	d.Throughput = throughputOf(recent, trails, now.Add(-DigestWindow), now, pol)
	return d
}

// digestItem is e as a digest shows it at now.
func digestItem(e *Escalation, pol *policies.Policy, now time.Time) DigestItem {
	dl := DeadlineOf(e, pol, now)
	it := DigestItem{ID: e.ID, Project: e.Project, MRIID: e.MRIID, Title: e.Title, MRURL: e.MRURL, Tier: e.Tier, TierName: e.TierName,
		State: e.State, Urgent: e.Urgent, Opened: e.CreatedAt, Deadline: dl, DecisionDue: dl.Due, Left: dl.Left, Overdue: dl.Overdue,
		WaitingOn: WaitingOn(e, pol)}
	if !e.CreatedAt.IsZero() {
		it.Waited = now.Sub(e.CreatedAt)
	}
	if Paused(e) {
		it.DeferredUntil = e.DeferredUntil
	}
	return it
}

// compareDigestItems orders urgent ones first, then by decision deadline
// (earliest, so the most overdue, first; none last), then by id.
func compareDigestItems(a, b DigestItem) int {
	if a.Urgent != b.Urgent {
		if a.Urgent {
			return -1
		}
		return 1
	}
	if az, bz := a.DecisionDue.IsZero(), b.DecisionDue.IsZero(); az != bz {
		if az {
			return 1
		}
		return -1
	}
	return cmp.Or(a.DecisionDue.Compare(b.DecisionDue), compareEscalationIDs(a.ID, b.ID))
}

// topHolders returns the holders with the most escalations, at most
// DigestHolders; ties by name.
func topHolders(m map[string][]string) []Bottleneck {
	out := make([]Bottleneck, 0, len(m))
	for who, ids := range m {
		out = append(out, Bottleneck{Who: who, Escalations: ids})
	}
	slices.SortFunc(out, func(a, b Bottleneck) int {
		return cmp.Or(cmp.Compare(len(b.Escalations), len(a.Escalations)), strings.Compare(a.Who, b.Who))
	})
	out, _ = bound(out, DigestHolders)
	if len(out) == 0 {
		return nil
	}
	return out
}

// bound keeps the first n of xs and counts the rest.
func bound[T any](xs []T, n int) ([]T, int) {
	if len(xs) <= n {
		return xs, 0
	}
	return xs[:n:n], len(xs) - n
}

// throughputOf counts what recent shows from from to to, both included:
// escalations opened, escalations decided (approved or rejected, each
// once) and, per tier, the time from opening to the first of those
// decisions.
func throughputOf(recent []Event, trails map[string]*trail, from, to time.Time, pol *policies.Policy) Throughput {
	tp := Throughput{From: from, To: to}
	decided := map[string]time.Time{}
	for _, ev := range recent {
		if ev.At.Before(from) || ev.At.After(to) {
			continue
		}
		switch {
		case ev.Kind == EventOpened:
			tp.Opened++
		case isDecision(ev):
			if _, ok := decided[ev.Escalation]; !ok {
				decided[ev.Escalation] = ev.At
			}
		}
	}
	tp.Decided = len(decided)
	times := map[string][]time.Duration{}
	for id, at := range decided {
		t := trails[id]
		if t == nil {
			continue
		}
		if op := t.opened(); !op.IsZero() && !at.Before(op) {
			tier := t.tierAt(at)
			times[tier] = append(times[tier], at.Sub(op))
		}
	}
	for _, tier := range tierOrder(pol, times) {
		tp.Tiers = append(tp.Tiers, TierTimes{Tier: tier, Name: tierName(pol, tier), Decision: spreadOf(times[tier])})
	}
	return tp
}

// isDecision reports whether ev decided an escalation: a state change into
// approved or rejected.
func isDecision(ev Event) bool {
	return ev.Kind == EventStateChanged && (ev.Data.To == StateApproved || ev.Data.To == StateRejected)
}

// Digest posts the daily digest at now in every chat surface's main
// channel: it reads the open escalations (the store's open index) and the
// events of the DigestWindow before now (Store must be a History), builds
// the digest (BuildDigest; since is when the previous one was made) and
// commits it as one EffectDigest through the outbox, once per day:
// DigestKey(now) makes a second digest on the same day (in now's zone) a
// no-op. When the store is a ChainHead, the digest carries the head of the
// audit log (HeadSeq, HeadHash), read after everything else it shows.
// dashboardURL is linked from it ("" for none). It may run concurrently
// with inputs (the digest is as the store was when it was read) and may be
// retried: errors are internal, and nothing is queued when it fails.
func (e *Engine) Digest(ctx context.Context, now, since time.Time, dashboardURL string) error {
	h, ok := e.store.(History)
	if !ok {
		return errors.New("digest: the store cannot read the audit log by time")
	}
	pol := e.Policy()
	open, err := e.store.FindOpen(ctx)
	if err != nil {
		return fmt.Errorf("digest: %w", err)
	}
	recent, err := h.EventsBetween(ctx, now.Add(-DigestWindow), now.Add(time.Nanosecond))
	if err != nil {
		return fmt.Errorf("digest: %w", err)
	}
	others, err := e.decidedElsewhere(ctx, open, recent)
	if err != nil {
		return fmt.Errorf("digest: %w", err)
	}
	d := BuildDigest(open, recent, others, since, now, pol)
	d.Dashboard = dashboardURL
	if d.Cap, d.Caps, err = e.capUse(ctx, pol, now); err != nil {
		return fmt.Errorf("digest: %w", err)
	}
	// Read last, so the anchor covers every event the digest shows.
	if ch, ok := e.store.(ChainHead); ok {
		if d.HeadSeq, d.HeadHash, err = ch.HeadOf(ctx); err != nil {
			return fmt.Errorf("digest: %w", err)
		}
	}
	return e.commitDigest(ctx, Effect{Kind: EffectDigest, Digest: d}, DigestKey(now), now)
}

// capUse reads, for each person of the policy, their manual escalations
// this quarter against the cap: one read per person (the policy's size,
// not the store's). Nothing when the policy sets no cap.
func (e *Engine) capUse(ctx context.Context, pol *policies.Policy, now time.Time) (int, []ManualUse, error) {
	limit := pol.Caps.ManualPerQuarter
	if limit <= 0 {
		return 0, nil, nil
	}
	var out []ManualUse
	for _, p := range pol.People {
		q, err := e.store.Quota(ctx, p.ID, Quarter(now))
		if err != nil {
			return 0, nil, err
		}
		if q.Manual > 0 {
			out = append(out, ManualUse{Person: p.ID, Quarter: q.Manual, Allowed: limit + q.Overrides})
		}
	}
	slices.SortStableFunc(out, func(a, b ManualUse) int {
		// The closest to the cap first: the fewest left.
		return (a.Allowed - a.Quarter) - (b.Allowed - b.Quarter)
	})
	if len(out) > DigestHolders {
		out = out[:DigestHolders]
	}
	return limit, out, nil
}

// capText writes the manual escalations against the cap.
func capText(d *DigestData) string {
	if len(d.Caps) == 0 {
		return ""
	}
	var parts []string
	for _, u := range d.Caps {
		parts = append(parts, fmt.Sprintf("%s %d of %d", u.Person, u.Quarter, u.Allowed))
	}
	return fmt.Sprintf("Manual escalations this quarter (cap %d, plus overrides): %s", d.Cap, strings.Join(parts, ", "))
}

// decidedElsewhere reads the projections of the escalations recent shows
// decided that are neither open nor opened within recent: when they were
// opened is in their projection only. It reads one per such escalation.
func (e *Engine) decidedElsewhere(ctx context.Context, open []*Escalation, recent []Event) ([]*Escalation, error) {
	have := map[string]bool{}
	for _, x := range open {
		have[x.ID] = true
	}
	for _, ev := range recent {
		if ev.Kind == EventOpened {
			have[ev.Escalation] = true
		}
	}
	var out []*Escalation
	for _, ev := range recent {
		if !isDecision(ev) || have[ev.Escalation] || ev.Escalation == "" {
			continue
		}
		have[ev.Escalation] = true
		x, err := e.store.FindEscalation(ctx, ev.Escalation)
		if errors.Is(err, ErrNotFound) {
			continue
		}
		if err != nil {
			return nil, err
		}
		out = append(out, x)
	}
	return out, nil
}

// commitDigest queues ef (a digest or a report) for every chat sink under
// key; a key committed before is success.
// SlotTTL is how long the slot of a digest or report is remembered: longer
// than the scheduler ever looks back for a slot it missed (8 days), so a
// slot runs once whatever restarts happen.
const SlotTTL = 35 * 24 * time.Hour

func (e *Engine) commitDigest(ctx context.Context, ef Effect, key string, now time.Time) error {
	_, err := e.store.Commit(ctx, &Commit{Effects: e.route([]Effect{ef}), Key: key, KeyTTL: SlotTTL, At: now})
	if errors.Is(err, ErrDuplicate) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("queue %s: %w", key, err)
	}
	e.log.Info("digest queued", LogKind, ef.Kind)
	if e.OnCommit != nil {
		e.OnCommit()
	}
	return nil
}

// RenderDigestText writes a digest as plain text, the idiom of the
// console (and of GitLab notes): a headline, then the open escalations,
// the missed deadlines, the bottlenecks, the deferred ones and the week's
// throughput, each section only when it has something to say. Durations
// are relative to d.Now ("due in 5h"): a digest is a snapshot, never
// edited. Titles are written as they are; the surface neutralises them.
func RenderDigestText(d *DigestData) string {
	if d == nil {
		return ""
	}
	var b strings.Builder
	fmt.Fprintf(&b, "Security review digest, %s\n", utcMinute(d.Now))
	b.WriteString(digestHeadline(d))
	b.WriteString("\n")
	if len(d.Open) > 0 {
		b.WriteString("\nOpen, urgent first, then by time left:\n")
		for _, it := range d.Open {
			fmt.Fprintf(&b, "- %s\n", digestLine(it))
		}
		if d.OpenMore > 0 {
			fmt.Fprintf(&b, "- and %d more\n", d.OpenMore)
		}
	}
	if len(d.Breaches) > 0 {
		fmt.Fprintf(&b, "\nDeadlines missed since %s:\n", utcMinute(d.Since))
		for _, x := range d.Breaches {
			fmt.Fprintf(&b, "- %s\n", breachLine(x))
		}
		if d.BreachesMore > 0 {
			fmt.Fprintf(&b, "- and %d more\n", d.BreachesMore)
		}
	}
	if len(d.People) > 0 || len(d.Groups) > 0 {
		b.WriteString("\nBottlenecks, holding the most:\n")
		if len(d.People) > 0 {
			fmt.Fprintf(&b, "- people: %s\n", holdersText(d.People))
		}
		if len(d.Groups) > 0 {
			fmt.Fprintf(&b, "- groups: %s\n", holdersText(d.Groups))
		}
	}
	if len(d.Deferred) > 0 {
		b.WriteString("\nDeferred:\n")
		for _, it := range d.Deferred {
			fmt.Fprintf(&b, "- %s %s · %s · back %s · %s\n", it.ID, mrText(it.Project, it.MRIID, it.Title), it.Tier, it.DeferredUntil.UTC().Format("2006-01-02"), dueText(it))
		}
		if d.DeferredMore > 0 {
			fmt.Fprintf(&b, "- and %d more\n", d.DeferredMore)
		}
	}
	fmt.Fprintf(&b, "\n%s\n", throughputText(d.Throughput))
	if c := capText(d); c != "" {
		fmt.Fprintf(&b, "%s\n", c)
	}
	if d.HeadHash != "" {
		fmt.Fprintf(&b, "\nAudit chain head: seq %d, hash %s (keep this as an anchor)\n", d.HeadSeq, d.HeadHash)
	}
	if d.Dashboard != "" {
		fmt.Fprintf(&b, "\nDashboard: %s\n", d.Dashboard)
	}
	return strings.TrimRight(b.String(), "\n")
}

// digestHeadline is the digest in one line.
func digestHeadline(d *DigestData) string {
	if d.OpenCount() == 0 && d.DeferredCount() == 0 {
		return "The backlog is empty: no escalation is waiting."
	}
	line := fmt.Sprintf("%d open", d.OpenCount())
	var of []string
	if d.Urgent > 0 {
		of = append(of, fmt.Sprintf("%d urgent", d.Urgent))
	}
	if d.Overdue > 0 {
		of = append(of, fmt.Sprintf("%d overdue", d.Overdue))
	}
	if len(of) > 0 {
		line += " (" + strings.Join(of, ", ") + ")"
	}
	if n := d.DeferredCount(); n > 0 {
		line += fmt.Sprintf(", %d deferred", n)
	}
	return line + fmt.Sprintf("; %s since the last digest.", plural(d.BreachCount(), "deadline missed", "deadlines missed"))
}

// digestLine is one open escalation on one line.
func digestLine(it DigestItem) string {
	var b strings.Builder
	b.WriteString(it.ID)
	if it.Urgent {
		b.WriteString(" URGENT")
	}
	fmt.Fprintf(&b, " %s · %s %s · %s", mrText(it.Project, it.MRIID, it.Title), it.Tier, strings.ReplaceAll(string(it.State), "_", " "), dueText(it))
	if it.Waited > 0 {
		fmt.Fprintf(&b, " · waited %s", HumanDuration(it.Waited))
	}
	if len(it.WaitingOn) > 0 {
		fmt.Fprintf(&b, " · waiting on %s", strings.Join(it.WaitingOn, ", "))
	}
	return b.String()
}

// dueText says where an item stands against its decision deadline: the
// phrase every surface writes (Deadline.Phrase).
func dueText(it DigestItem) string { return it.Deadline.Phrase() }

// breachLine is one missed deadline on one line.
func breachLine(x DigestBreach) string {
	var b strings.Builder
	b.WriteString(x.ID)
	if x.Project != "" {
		fmt.Fprintf(&b, " %s!%d", x.Project, x.MRIID)
	}
	if x.Tier != "" {
		fmt.Fprintf(&b, " %s", x.Tier)
	}
	fmt.Fprintf(&b, ": decision was due %s", utcMinute(x.Due))
	switch {
	case !x.DecidedAt.IsZero():
		fmt.Fprintf(&b, "; decided %s later", HumanDuration(x.DecidedAt.Sub(x.Due)))
	case x.Open:
		b.WriteString("; still open")
	}
	return b.String()
}

// holdersText writes bottlenecks as "alice 3 (ESC-1, ESC-2, ESC-6)".
func holdersText(hs []Bottleneck) string {
	parts := make([]string, len(hs))
	for i, h := range hs {
		parts[i] = fmt.Sprintf("%s %d (%s)", h.Who, len(h.Escalations), strings.Join(h.Escalations, ", "))
	}
	return strings.Join(parts, "; ")
}

// throughputText writes the week's throughput in one or two sentences.
func throughputText(tp Throughput) string {
	line := fmt.Sprintf("Last 7 days: %d opened, %d decided.", tp.Opened, tp.Decided)
	var parts []string
	for _, t := range tp.Tiers {
		if t.Decision.N == 0 {
			continue
		}
		parts = append(parts, fmt.Sprintf("%s %s (%d)", t.Tier, HumanDuration(t.Decision.Median), t.Decision.N))
	}
	if len(parts) > 0 {
		line += " Median time to decision: " + strings.Join(parts, ", ") + "."
	}
	return line
}

// mrText writes project!iid and the quoted title, if any.
func mrText(project string, iid int64, title string) string {
	s := fmt.Sprintf("%s!%d", project, iid)
	if title != "" {
		s += fmt.Sprintf(" %q", title)
	}
	return s
}

func utcMinute(t time.Time) string { return t.UTC().Format("2006-01-02 15:04 MST") }

// plural writes n and the word for it: "1 deadline missed", "2 deadlines
// missed".
func plural(n int, one, many string) string {
	if n == 1 {
		return "1 " + one
	}
	return fmt.Sprintf("%d %s", n, many)
}

func earlier(a, b time.Time) time.Time {
	if a.Before(b) {
		return a
	}
	return b
}

// DigestRan reports whether the digest of slot was queued (its key is
// remembered for SlotTTL): the scheduler counts breaches from the last
// digest that ran, not from the slot before, so downtime loses none.
func (e *Engine) DigestRan(ctx context.Context, slot time.Time) (bool, error) {
	return e.store.SeenKey(ctx, DigestKey(slot), e.clock.Now())
}
