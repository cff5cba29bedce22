package bot

// The digest and the weekly report as pure functions: BuildDigest and
// BuildWeeklyReport over hand-made projections and events, the rules they
// read the window with, and their text renderings against the goldens in
// testdata/digest (go test ./bot -update rewrites them). report_test.go
// drives them through the engine and a real store.

import (
	"encoding/json"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/threatgate/threatgate/policies"
)

const digestPolicyYAML = `
version: 1
signals:
  - {id: auth, category: access-control, weight: 50, when: {paths: ["**/auth/**"]}}
  - {id: pii, category: data-exposure, weight: 100, when: {paths: ["**/migrations/**"]}}
tiers:
  - id: T3
    name: critical
    when: {min_score: 100}
    artifacts: [threat-model]
    approvals: [{group: appsec, count: 2}]
    first_response: 4h
    decision: 48h
    deferrable: true
  - id: T2
    name: high
    when: {min_score: 50}
    approvals: [{group: appsec, count: 1}]
    first_response: 2h
    decision: 24h
groups:
  appsec: {members: [alice, bob]}
  leads: {members: [dave]}
people:
  - {gitlab: ann, email: ann@example.com}
  - {gitlab: alice, email: alice@example.com}
  - {gitlab: bob, email: bob@example.com}
  - {gitlab: dave, email: dave@example.com}
  - {gitlab: erin, email: erin@example.com}
caps: {manual_escalations_per_quarter: 3, override_group: leads}
authority: {retier: [leads], arbiter: [leads]}
`

func digestPolicy(t testing.TB) *policies.Policy {
	t.Helper()
	p, err := policies.Load("digest.yaml", []byte(digestPolicyYAML))
	if err != nil {
		t.Fatalf("digest policy: %v", err)
	}
	return p
}

// nov returns 2026-11-<d> at hh:mm UTC (Monday 2 November is in ISO week
// 45).
func nov(d, hh, mm int) time.Time { return time.Date(2026, 11, d, hh, mm, 0, 0, time.UTC) }

func mkEvent(id string, kind EventKind, actor string, at time.Time, d EventData) Event {
	return Event{Escalation: id, Kind: kind, Actor: actor, At: at, Data: d}
}

func mkChanged(id string, at time.Time, from, to State) Event {
	return mkEvent(id, EventStateChanged, "system", at, EventData{From: from, To: to})
}

func mkOpened(id, tier string, at, due time.Time, to State, signals ...string) Event {
	d := EventData{Project: "shop/api", MRIID: 50 + int64(id[len(id)-1]-'0'), Tier: tier, Author: "ann", To: to, DecisionDue: due}
	for _, s := range signals {
		d.Signals = append(d.Signals, policies.Fired{ID: s})
	}
	return mkEvent(id, EventOpened, "system", at, d)
}

// digestScene is the backlog at Thursday 2026-11-05 09:00, the previous
// digest a day before:
//
//	ESC-1 T2 in review, due 11-02: overdue for days
//	ESC-2 T3 awaiting artifacts, opened 11-04, due 11-06
//	ESC-3 T3 deferred until 11-20
//	ESC-4 T2 urgent, in review, opened this morning, due tonight; a title from outside
//	ESC-5 T3 disputed, due 11-04 20:00: missed since the last digest, still open
//	ESC-8 a manual draft in intake, filed by erin
//	ESC-6 T2 opened 10-20, approved 11-03 (its projection in others)
//	ESC-7 T2 opened 11-03, due 11-04 10:00, approved 11-04 15:00: missed, decided 5h late
//	ESC-9 T2 opened 11-03 10:00, approved 11-03 20:00, on time
func digestScene() (open []*Escalation, recent []Event, others []*Escalation, since, now time.Time) {
	esc := func(id, tier string, st State, created, due time.Time) *Escalation {
		return &Escalation{ID: id, Project: "shop/api", MRIID: 50 + int64(id[len(id)-1]-'0'), Title: "change " + id,
			MRURL: "https://gitlab.example.com/shop/api/-/merge_requests/" + id[4:], Author: "ann", Tier: tier, State: st, CreatedAt: created, DecisionDue: due}
	}
	e1 := esc("ESC-1", "T2", StateInReview, nov(1, 9, 0), nov(2, 9, 0))
	e2 := esc("ESC-2", "T3", StateAwaitingArtifacts, nov(4, 8, 0), nov(6, 8, 0))
	e3 := esc("ESC-3", "T3", StateDeferred, time.Date(2026, 10, 26, 9, 0, 0, 0, time.UTC), nov(10, 9, 0))
	e3.DeferredUntil = nov(20, 0, 0)
	e4 := esc("ESC-4", "T2", StateInReview, nov(5, 7, 0), nov(5, 19, 0))
	e4.Urgent, e4.Title = true, `<b>hotfix</b> & "quoted" @here`
	e5 := esc("ESC-5", "T3", StateDisputed, nov(3, 12, 0), nov(4, 20, 0))
	e8 := esc("ESC-8", "T2", StateIntake, nov(5, 8, 0), time.Time{})
	e8.Manual, e8.Filer = true, "erin"
	open = []*Escalation{e1, e2, e3, e4, e5, e8}

	e6 := esc("ESC-6", "T2", StateApproved, time.Date(2026, 10, 20, 9, 0, 0, 0, time.UTC), time.Date(2026, 10, 21, 9, 0, 0, 0, time.UTC))
	e6.DecidedAt = nov(3, 9, 0)
	others = []*Escalation{e6}

	recent = []Event{
		mkChanged("ESC-6", nov(3, 9, 0), StateInReview, StateApproved),
		mkOpened("ESC-7", "T2", nov(3, 9, 0), nov(4, 10, 0), StateInReview, "auth"),
		mkOpened("ESC-9", "T2", nov(3, 10, 0), nov(4, 10, 0), StateInReview, "auth"),
		mkOpened("ESC-5", "T3", nov(3, 12, 0), nov(4, 20, 0), StateInReview, "auth", "pii"),
		mkChanged("ESC-9", nov(3, 20, 0), StateInReview, StateApproved),
		mkOpened("ESC-2", "T3", nov(4, 8, 0), nov(6, 8, 0), StateAwaitingArtifacts, "pii"),
		mkChanged("ESC-5", nov(4, 10, 0), StateInReview, StateDisputed),
		mkChanged("ESC-7", nov(4, 15, 0), StateInReview, StateApproved),
		mkEvent("ESC-5", EventPaged, "system", nov(4, 20, 5), EventData{}),
		mkOpened("ESC-4", "T2", nov(5, 7, 0), nov(5, 19, 0), StateInReview, "auth"),
	}
	return open, recent, others, nov(4, 9, 0), nov(5, 9, 0)
}

func idsOf[T any](xs []T, id func(T) string) []string {
	out := make([]string, len(xs))
	for i, x := range xs {
		out[i] = id(x)
	}
	return out
}

func TestBuildDigest(t *testing.T) {
	pol := digestPolicy(t)
	open, recent, others, since, now := digestScene()
	d := BuildDigest(open, recent, others, since, now, pol)

	if got, want := idsOf(d.Open, func(it DigestItem) string { return it.ID }), []string{"ESC-4", "ESC-1", "ESC-5", "ESC-2", "ESC-8"}; !slices.Equal(got, want) {
		t.Errorf("Open = %v, want %v (urgent first, then by time left, none last)", got, want)
	}
	if d.OpenCount() != 5 || d.Urgent != 1 || d.Overdue != 2 {
		t.Errorf("OpenCount, Urgent, Overdue = %d, %d, %d; want 5, 1, 2", d.OpenCount(), d.Urgent, d.Overdue)
	}
	waiting := map[string][]string{}
	for _, it := range d.Open {
		waiting[it.ID] = it.WaitingOn
	}
	for id, want := range map[string][]string{"ESC-4": {"alice", "bob"}, "ESC-2": {"ann"}, "ESC-5": {"dave"}, "ESC-8": {"erin"}} {
		if !slices.Equal(waiting[id], want) {
			t.Errorf("%s WaitingOn = %v, want %v", id, waiting[id], want)
		}
	}
	if it := d.Open[1]; it.Waited != 4*24*time.Hour || it.Left != -3*24*time.Hour || !it.Overdue {
		t.Errorf("ESC-1: Waited %v, Left %v, Overdue %v; want 96h, -72h, true", it.Waited, it.Left, it.Overdue)
	}
	if got := idsOf(d.Deferred, func(it DigestItem) string { return it.ID }); !slices.Equal(got, []string{"ESC-3"}) || !d.Deferred[0].DeferredUntil.Equal(nov(20, 0, 0)) || d.Deferred[0].Overdue {
		t.Errorf("Deferred = %+v, want ESC-3 back 11-20, not overdue", d.Deferred)
	}

	wantBreaches := []DigestBreach{
		{ID: "ESC-7", Project: "shop/api", MRIID: 57, Tier: "T2", Due: nov(4, 10, 0), DecidedAt: nov(4, 15, 0)},
		{ID: "ESC-5", Project: "shop/api", MRIID: 55, Tier: "T3", Due: nov(4, 20, 0), Open: true},
	}
	if !reflect.DeepEqual(d.Breaches, wantBreaches) {
		t.Errorf("Breaches:\n got %+v\nwant %+v", d.Breaches, wantBreaches)
	}

	holders := func(bs []Bottleneck) []string {
		return idsOf(bs, func(b Bottleneck) string { return b.Who + ":" + strings.Join(b.Escalations, ",") })
	}
	if got, want := holders(d.People), []string{"alice:ESC-4,ESC-1", "bob:ESC-4,ESC-1", "ann:ESC-2", "dave:ESC-5", "erin:ESC-8"}; !slices.Equal(got, want) {
		t.Errorf("People = %v, want %v", got, want)
	}
	if got, want := holders(d.Groups), []string{"appsec:ESC-4,ESC-1", "leads:ESC-5"}; !slices.Equal(got, want) {
		t.Errorf("Groups = %v, want %v", got, want)
	}

	tp := d.Throughput
	if tp.Opened != 5 || tp.Decided != 3 {
		t.Errorf("Throughput: %d opened, %d decided; want 5, 3", tp.Opened, tp.Decided)
	}
	want := []TierTimes{{Tier: "T2", Name: "high", Decision: Spread{N: 3, Median: 30 * time.Hour, P90: 14 * 24 * time.Hour}}}
	if !reflect.DeepEqual(tp.Tiers, want) {
		t.Errorf("Throughput.Tiers = %+v, want %+v", tp.Tiers, want)
	}

	// Without the projections of others, ESC-6's decision counts but
	// its time is unknown.
	d = BuildDigest(open, recent, nil, since, now, pol)
	if tp := d.Throughput; tp.Decided != 3 || tp.Tiers[0].Decision.N != 2 {
		t.Errorf("without others: %d decided, %d timed; want 3, 2", tp.Decided, tp.Tiers[0].Decision.N)
	}
}

func TestBuildDigestBounds(t *testing.T) {
	pol := digestPolicy(t)
	now := nov(5, 9, 0)
	var open []*Escalation
	for i := range DigestLimit + 7 {
		open = append(open, &Escalation{ID: "ESC-" + string(rune('A'+i)), Tier: "T2", State: StateInReview, Author: "ann", CreatedAt: nov(1, 0, 0), DecisionDue: now.Add(time.Duration(i) * time.Hour)})
	}
	for i := range DigestListLimit + 2 {
		open = append(open, &Escalation{ID: "ESC-d" + string(rune('A'+i)), Tier: "T3", State: StateDeferred, DeferredUntil: nov(20, i, 0)})
	}
	d := BuildDigest(open, nil, nil, time.Time{}, now, pol)
	if len(d.Open) != DigestLimit || d.OpenMore != 7 || d.OpenCount() != DigestLimit+7 {
		t.Errorf("Open: %d listed, %d more; want %d, 7", len(d.Open), d.OpenMore, DigestLimit)
	}
	if len(d.Deferred) != DigestListLimit || d.DeferredMore != 2 {
		t.Errorf("Deferred: %d listed, %d more; want %d, 2", len(d.Deferred), d.DeferredMore, DigestListLimit)
	}
	if !d.Since.Equal(now.Add(-DigestWindow)) {
		t.Errorf("Since = %v for a zero since, want %v", d.Since, now.Add(-DigestWindow))
	}
	o, recent, others, since, at := digestScene()
	if d := BuildDigest(o, recent, others, since, at, nil); d.OpenCount() != 5 || d.People != nil {
		t.Errorf("without a policy: %d open, people %v; want 5, none", d.OpenCount(), d.People)
	}
	if d := BuildDigest(nil, nil, nil, now.Add(time.Hour), now, pol); !d.Since.Equal(now) {
		t.Errorf("Since = %v for a since after now, want now", d.Since)
	}
}

// TestDigestLapses: when a deadline counts as missed.
func TestDigestLapses(t *testing.T) {
	lo, hi := nov(4, 9, 0), nov(5, 9, 0)
	for _, tt := range []struct {
		name   string
		esc    *Escalation
		events []Event
		want   []time.Time
	}{
		{"open past its deadline", &Escalation{State: StateInReview, DecisionDue: nov(4, 12, 0)}, nil, []time.Time{nov(4, 12, 0)}},
		{"passed before the window", &Escalation{State: StateInReview, DecisionDue: nov(3, 12, 0)}, nil, nil},
		{"not yet due", &Escalation{State: StateInReview, DecisionDue: nov(5, 12, 0)}, nil, nil},
		{"deferred: paused", &Escalation{State: StateDeferred, DecisionDue: nov(4, 12, 0)}, nil, nil},
		{"decided in time", &Escalation{State: StateApproved, DecisionDue: nov(4, 12, 0)},
			[]Event{mkChanged("x", nov(4, 11, 0), StateInReview, StateApproved)}, nil},
		{"decided at the deadline", &Escalation{State: StateApproved, DecisionDue: nov(4, 12, 0)},
			[]Event{mkChanged("x", nov(4, 12, 0), StateInReview, StateApproved)}, nil},
		{"decided late", &Escalation{State: StateApproved, DecisionDue: nov(4, 12, 0)},
			[]Event{mkChanged("x", nov(4, 13, 0), StateInReview, StateApproved)}, []time.Time{nov(4, 12, 0)}},
		{"withdrawn before", &Escalation{State: StateWithdrawn, DecisionDue: nov(4, 12, 0)},
			[]Event{mkChanged("x", nov(4, 10, 0), StateInReview, StateWithdrawn)}, nil},
		{"deferred before the deadline", nil,
			[]Event{mkOpened("x", "T2", nov(4, 9, 30), nov(4, 12, 0), StateInReview), mkChanged("x", nov(4, 10, 0), StateInReview, StateDeferred)}, nil},
		{"tier raised: the new deadline had passed", &Escalation{State: StateInReview},
			[]Event{mkOpened("x", "T2", nov(3, 9, 0), nov(5, 20, 0), StateInReview), mkEvent("x", EventTierRaised, "system", nov(4, 15, 0), EventData{Tier: "T3", FromTier: "T2", DecisionDue: nov(4, 14, 0)})},
			[]time.Time{nov(4, 14, 0)}},
		{"deadline moved before it passed", &Escalation{State: StateInReview, DecisionDue: nov(6, 0, 0)},
			[]Event{mkOpened("x", "T2", nov(4, 9, 30), nov(4, 12, 0), StateInReview), mkEvent("x", EventRetiered, "dave", nov(4, 11, 0), EventData{Tier: "T3", DecisionDue: nov(6, 0, 0)})}, nil},
		{"in intake", &Escalation{State: StateIntake, DecisionDue: nov(4, 12, 0)}, nil, nil},
	} {
		t.Run(tt.name, func(t *testing.T) {
			if tt.esc != nil {
				tt.esc.ID = "x"
			}
			got := trailsOf(tt.events, map[string]*Escalation{"x": tt.esc})["x"].lapses(lo, hi)
			if !slices.EqualFunc(got, tt.want, time.Time.Equal) {
				t.Errorf("lapses = %v, want %v", got, tt.want)
			}
		})
	}
}

// TestTrailTierAndState: the window's events say what the tier and state
// were at a moment; the projection fills in where they say nothing.
func TestTrailTierAndState(t *testing.T) {
	tr := trailsOf([]Event{
		mkEvent("x", EventTierRaised, "system", nov(4, 12, 0), EventData{Tier: "T3", FromTier: "T2"}),
		mkChanged("x", nov(4, 14, 0), StateInReview, StateApproved),
	}, map[string]*Escalation{"x": {ID: "x", Tier: "T3", State: StateApproved}})["x"]
	for _, tt := range []struct {
		at    time.Time
		tier  string
		state State
	}{
		{nov(4, 11, 0), "T2", StateInReview},
		{nov(4, 12, 0), "T3", StateInReview},
		{nov(4, 15, 0), "T3", StateApproved},
	} {
		if got := tr.tierAt(tt.at); got != tt.tier {
			t.Errorf("tierAt(%v) = %q, want %q", tt.at, got, tt.tier)
		}
		if got := tr.stateAt(tt.at); got != tt.state {
			t.Errorf("stateAt(%v) = %q, want %q", tt.at, got, tt.state)
		}
	}
}

// reportScene is ISO week 2026-W45 (Monday 11-02 to Monday 11-09):
//
//	ESC-1 T3 [auth pii] opened Mon 09:00, alice approves 11:00, approved Tue 09:00 (due Wed): on time
//	ESC-2 T2 [auth] opened Mon 10:00, due Tue 10:00, bob rejects Tue 16:00: late
//	ESC-3 T2 opened the week before, alice dissents Wed 09:00 (7 days in), deferred Wed 10:00
//	ESC-4 T2 manual by erin, filed Thu 10:00, due Fri 10:00, nothing since: missed, open
//	ESC-5 T2 [auth] manual by erin, filed Fri 09:00, bob asks for an action, alice approves Fri 12:00
func reportScene() ([]Event, map[string]*Escalation, map[string]Quota) {
	events := []Event{
		mkOpened("ESC-1", "T3", nov(2, 9, 0), nov(4, 9, 0), StateInReview, "auth", "pii"),
		mkEvent("ESC-1", EventApproved, "alice", nov(2, 11, 0), EventData{Group: "appsec"}),
		mkOpened("ESC-2", "T2", nov(2, 10, 0), nov(3, 10, 0), StateInReview, "auth"),
		mkChanged("ESC-1", nov(3, 9, 0), StateInReview, StateApproved),
		mkEvent("ESC-2", EventRejected, "bob", nov(3, 16, 0), EventData{Group: "appsec"}),
		mkChanged("ESC-2", nov(3, 16, 0), StateInReview, StateRejected),
		mkEvent("ESC-3", EventDissent, "alice", nov(4, 9, 0), EventData{Text: "needs a pentest"}),
		mkChanged("ESC-3", nov(4, 10, 0), StateInReview, StateDeferred),
		mkEvent("ESC-4", EventOpened, "erin", nov(5, 9, 0), EventData{Project: "shop/api", Tier: "T2", Manual: true, To: StateIntake}),
		mkEvent("ESC-4", EventFiled, "erin", nov(5, 10, 0), EventData{DecisionDue: nov(6, 10, 0)}),
		mkChanged("ESC-4", nov(5, 10, 0), StateIntake, StateInReview),
		mkEvent("ESC-5", EventOpened, "erin", nov(6, 9, 0), EventData{Project: "shop/api", Tier: "T2", Manual: true, To: StateIntake, Signals: []policies.Fired{{ID: "auth", Category: "access-control"}}}),
		mkEvent("ESC-5", EventFiled, "erin", nov(6, 9, 0), EventData{DecisionDue: nov(7, 9, 0)}),
		mkChanged("ESC-5", nov(6, 9, 0), StateIntake, StateInReview),
		mkEvent("ESC-5", EventAction, "bob", nov(6, 11, 0), EventData{Text: "rotate the key"}),
		mkEvent("ESC-5", EventApproved, "alice", nov(6, 12, 0), EventData{Group: "appsec"}),
		mkChanged("ESC-5", nov(6, 12, 0), StateInReview, StateApproved),
		// The next week: ignored.
		mkOpened("ESC-6", "T2", nov(9, 9, 0), nov(10, 9, 0), StateInReview, "auth"),
	}
	escs := map[string]*Escalation{
		"ESC-1": {ID: "ESC-1", Tier: "T3", Author: "ann", State: StateApproved, CreatedAt: nov(2, 9, 0), DecisionDue: nov(4, 9, 0), DecidedAt: nov(3, 9, 0),
			Signals: []policies.Fired{{ID: "auth"}, {ID: "pii"}}, Approvals: []Decision{{By: "alice", At: nov(2, 11, 0)}}},
		"ESC-2": {ID: "ESC-2", Tier: "T2", Author: "ann", State: StateRejected, CreatedAt: nov(2, 10, 0), DecisionDue: nov(3, 10, 0), DecidedAt: nov(3, 16, 0),
			Signals: []policies.Fired{{ID: "auth"}}, Rejections: []Decision{{By: "bob", At: nov(3, 16, 0)}}},
		"ESC-3": {ID: "ESC-3", Tier: "T2", Author: "ann", State: StateDeferred, CreatedAt: time.Date(2026, 10, 28, 9, 0, 0, 0, time.UTC), DecisionDue: time.Date(2026, 10, 29, 9, 0, 0, 0, time.UTC),
			Dissents: []Note{{By: "alice", At: nov(4, 9, 0)}}},
		"ESC-4": {ID: "ESC-4", Tier: "T2", Author: "ann", Manual: true, Filer: "erin", State: StateInReview, CreatedAt: nov(5, 9, 0), DecisionDue: nov(6, 10, 0)},
		"ESC-5": {ID: "ESC-5", Tier: "T2", Author: "ann", Manual: true, Filer: "erin", State: StateApproved, CreatedAt: nov(6, 9, 0), DecisionDue: nov(7, 9, 0), DecidedAt: nov(6, 12, 0),
			Signals: []policies.Fired{{ID: "auth"}}, Actions: []Note{{By: "bob", At: nov(6, 11, 0)}}, Approvals: []Decision{{By: "alice", At: nov(6, 12, 0)}}},
	}
	return events, escs, map[string]Quota{"erin": {Manual: 3, Overrides: 1}}
}

func TestBuildWeeklyReport(t *testing.T) {
	pol := digestPolicy(t)
	events, escs, quotas := reportScene()
	r := BuildWeeklyReport(events, escs, quotas, 2026, 45, nov(9, 9, 0), pol)
	want := &WeeklyReport{
		Year: 2026, Week: 45, From: nov(2, 0, 0), To: nov(9, 0, 0),
		Opened: 4, Decided: 3, Approved: 2, Rejected: 1,
		Tiers: []TierTimes{
			{Tier: "T3", Name: "critical", FirstResponse: Spread{1, 2 * time.Hour, 2 * time.Hour}, Decision: Spread{1, 24 * time.Hour, 24 * time.Hour}},
			{Tier: "T2", Name: "high", FirstResponse: Spread{3, 30 * time.Hour, 7 * 24 * time.Hour}, Decision: Spread{2, 3 * time.Hour, 30 * time.Hour}},
		},
		Breaches:  Rate{Count: 2, Of: 4},
		Deferrals: Rate{Count: 1, Of: 4},
		Quarter:   "2026Q4", Cap: 3,
		Manual: []ManualUse{{Person: "erin", Week: 2, Quarter: 3, Allowed: 4}},
		Signals: []SignalUse{
			{ID: "auth", Category: "access-control", Fired: 3, Decided: 3, Rejected: 1, Changed: 1},
			{ID: "pii", Category: "data-exposure", Fired: 1, Decided: 1},
		},
	}
	if !reflect.DeepEqual(r, want) {
		gotJSON, _ := json.MarshalIndent(r, "", "  ")
		wantJSON, _ := json.MarshalIndent(want, "", "  ")
		t.Errorf("report:\n got %s\nwant %s", gotJSON, wantJSON)
	}

	// Before the week is over, a deadline yet to come is no breach.
	if mid := BuildWeeklyReport(events, escs, quotas, 2026, 45, nov(5, 12, 0), pol); !mid.Partial || mid.Breaches != (Rate{Count: 1, Of: 3}) {
		t.Errorf("as of Thursday noon: Partial %v, Breaches %+v; want true, 1 of 3 (ESC-4 is due on Friday)", mid.Partial, mid.Breaches)
	}

	empty := BuildWeeklyReport(nil, nil, nil, 2026, 45, nov(9, 9, 0), pol)
	if empty.Opened != 0 || empty.Breaches != (Rate{}) || empty.Tiers != nil || empty.Cap != 3 {
		t.Errorf("empty week: %+v", empty)
	}
	if BuildWeeklyReport(events, escs, quotas, 2026, 45, nov(9, 9, 0), nil) == nil {
		t.Error("no report without a policy")
	}
}

func TestSpreadAndRate(t *testing.T) {
	h := time.Hour
	for _, tt := range []struct {
		in   []time.Duration
		want Spread
	}{
		{nil, Spread{}},
		{[]time.Duration{5 * h}, Spread{1, 5 * h, 5 * h}},
		{[]time.Duration{3 * h, 1 * h}, Spread{2, 1 * h, 3 * h}},
		{[]time.Duration{10 * h, 1 * h, 2 * h, 3 * h, 4 * h, 5 * h, 6 * h, 7 * h, 8 * h, 9 * h}, Spread{10, 5 * h, 9 * h}},
	} {
		if got := spreadOf(slices.Clone(tt.in)); got != tt.want {
			t.Errorf("spreadOf(%v) = %+v, want %+v", tt.in, got, tt.want)
		}
	}
	s := Spread{N: 3, Median: 90 * time.Minute, P90: 49 * h}
	b, err := json.Marshal(s)
	if err != nil || string(b) != `{"n":3,"median_seconds":5400,"p90_seconds":176400}` {
		t.Errorf("Spread JSON = %s, %v", b, err)
	}
	var back Spread
	if err := json.Unmarshal(b, &back); err != nil || back != s {
		t.Errorf("Spread from JSON = %+v, %v; want %+v", back, err, s)
	}
	if p := (Rate{Count: 1, Of: 3}).Percent(); p != 33 {
		t.Errorf("1 of 3 = %d%%, want 33", p)
	}
	if p := (Rate{}).Percent(); p != 0 {
		t.Errorf("0 of 0 = %d%%, want 0", p)
	}
}

func TestWeeks(t *testing.T) {
	for _, tt := range []struct {
		in         string
		year, week int
		err        string
	}{
		{"2026-W49", 2026, 49, ""},
		{"2026-w01", 2026, 1, ""},
		{" 2026-W53 ", 2026, 53, ""},
		{"2025-W53", 0, 0, "2025 has weeks 1 to 52, not 53"},
		{"2026-W00", 0, 0, "not 0"},
		{"2026-49", 0, 0, `want an ISO week such as "2026-W49", got "2026-49"`},
		{"", 0, 0, "want an ISO week"},
		{"2026-W100", 0, 0, "want an ISO week"},
	} {
		y, w, err := ParseWeek(tt.in)
		if tt.err != "" {
			if p, ok := IsProblem(err); !ok || p.Field != "week" || !strings.Contains(p.Msg, tt.err) {
				t.Errorf("ParseWeek(%q) = %v, want a Problem on week with %q", tt.in, err, tt.err)
			}
			continue
		}
		if err != nil || y != tt.year || w != tt.week {
			t.Errorf("ParseWeek(%q) = %d, %d, %v; want %d, %d", tt.in, y, w, err, tt.year, tt.week)
		}
	}
	for _, tt := range []struct {
		year, week int
		want       time.Time
	}{
		{2026, 1, time.Date(2025, 12, 29, 0, 0, 0, 0, time.UTC)},
		{2026, 45, nov(2, 0, 0)},
		{2020, 53, time.Date(2020, 12, 28, 0, 0, 0, 0, time.UTC)},
	} {
		got := WeekStart(tt.year, tt.week)
		if !got.Equal(tt.want) {
			t.Errorf("WeekStart(%d, %d) = %v, want %v", tt.year, tt.week, got, tt.want)
		}
		if y, w := got.ISOWeek(); y != tt.year || w != tt.week {
			t.Errorf("WeekStart(%d, %d) is in %d-W%d", tt.year, tt.week, y, w)
		}
	}
	for _, tt := range []struct {
		now        time.Time
		year, week int
	}{
		{nov(5, 9, 0), 2026, 44},
		{nov(9, 0, 0), 2026, 45},
		{time.Date(2026, 1, 5, 0, 0, 0, 0, time.UTC), 2026, 1},
		{time.Date(2026, 1, 4, 23, 0, 0, 0, time.UTC), 2025, 52},
	} {
		if y, w := LastFullWeek(tt.now); y != tt.year || w != tt.week {
			t.Errorf("LastFullWeek(%v) = %d-W%d, want %d-W%d", tt.now, y, w, tt.year, tt.week)
		}
	}
	if got := ReportKey(2026, 5); got != "report:2026-W05" {
		t.Errorf("ReportKey = %q", got)
	}
	if got := DigestKey(time.Date(2026, 11, 5, 23, 30, 0, 0, time.FixedZone("x", -5*3600))); got != "digest:2026-11-05" {
		t.Errorf("DigestKey = %q, want the day in the slot's own zone", got)
	}
}

// TestRenderDigestTextGolden: the digest and the weekly report as text,
// against testdata/digest.
func TestRenderDigestTextGolden(t *testing.T) {
	pol := digestPolicy(t)
	open, recent, others, since, now := digestScene()
	full := BuildDigest(open, recent, others, since, now, pol)
	full.Dashboard = "https://threatgate.example.com/"
	full.HeadSeq, full.HeadHash = 46, "df1273c2e50311a019c8ffbe1aa54aeff1c8174bd50cd5d85df08f976afb6164"
	full.Cap, full.Caps = 4, []ManualUse{{Person: "erin", Quarter: 3, Allowed: 4}}
	events, escs, quotas := reportScene()
	report := BuildWeeklyReport(events, escs, quotas, 2026, 45, nov(9, 9, 0), pol)
	report.Dashboard = "https://threatgate.example.com/"
	for name, got := range map[string]string{
		"digest":       RenderDigestText(full),
		"digest_empty": RenderDigestText(BuildDigest(nil, nil, nil, since, now, pol)),
		"report":       RenderReportText(report),
		"report_empty": RenderReportText(BuildWeeklyReport(nil, nil, nil, 2026, 45, nov(9, 9, 0), pol)),
	} {
		golden(t, filepath.Join("testdata", "digest", name+".txt"), got+"\n")
	}
	if RenderDigestText(nil) != "" || RenderReportText(nil) != "" {
		t.Error("a nil digest or report renders as something")
	}
}
