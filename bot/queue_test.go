package bot

import (
	"fmt"
	"reflect"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"
)

// queueFixtures are open escalations of every kind a queue must sort out,
// under testPolicy: T2 wants a threat-model and one appsec approval
// (alice, bob, carol, frank); T1 one champion (erin, ann).
func queueFixtures() []*Escalation {
	tm := []Artifact{{Kind: "threat-model", By: "ann", At: t0}}
	esc := func(id string, st State, tier string, due time.Duration, f func(*Escalation)) *Escalation {
		n, _ := strconv.Atoi(strings.TrimPrefix(id, "ESC-"))
		e := &Escalation{ID: id, Project: "g/p", MRIID: int64(100 + n), Title: "change " + id, Author: "ann",
			Tier: tier, TierName: "x", State: st, HeadSHA: "aaa111", Artifacts: tm, CreatedAt: t0}
		if due != 0 {
			e.DecisionDue = t0.Add(due)
		}
		if f != nil {
			f(e)
		}
		return e
	}
	return []*Escalation{
		esc("ESC-1", StateInReview, "T2", 48*time.Hour, nil),
		esc("ESC-2", StateAwaitingArtifacts, "T2", 24*time.Hour, func(e *Escalation) { e.Artifacts = nil }),
		esc("ESC-3", StateIntake, "T2", 0, func(e *Escalation) {
			e.Manual, e.Filer, e.Author, e.Artifacts = true, "erin", "mallory", nil
		}),
		esc("ESC-4", StateDeferred, "T2", -time.Hour, func(e *Escalation) {
			e.Artifacts, e.Resume, e.DeferredUntil = nil, StateAwaitingArtifacts, t0.Add(72*time.Hour)
		}),
		esc("ESC-5", StateApproved, "T2", 10*time.Hour, nil),
		esc("ESC-6", StateInReview, "T1", 40*time.Hour, nil),
		esc("ESC-7", StateInReview, "T2", 30*time.Hour, func(e *Escalation) { e.CommitAuthors = []string{"Carol@Example.com"} }),
		esc("ESC-8", StateInReview, "T2", 0, func(e *Escalation) { e.Manual, e.Filer = true, "bob" }),
		esc("ESC-9", StateMerged, "T2", 5*time.Hour, nil),
		esc("ESC-10", StateInReview, "T2", -time.Hour, func(e *Escalation) { e.Author = "dave" }),
		esc("ESC-11", StateWithdrawn, "T2", 5*time.Hour, func(e *Escalation) { e.Artifacts = nil }),
		esc("ESC-12", StateAwaitingArtifacts, "T9", 50*time.Hour, nil), // a tier gone from the policy
		esc("ESC-13", StateRejected, "T2", 5*time.Hour, func(e *Escalation) { e.Artifacts = nil }),
		esc("ESC-14", StateDisputed, "T2", 20*time.Hour, func(e *Escalation) { e.Author, e.Artifacts = "frank", nil }),
	}
}

func ids(l QueueList) []string {
	var out []string
	for _, it := range l.Items {
		out = append(out, it.ID)
	}
	return out
}

func TestQueueOf(t *testing.T) {
	pol := testPolicy(t)
	open := queueFixtures()
	for _, tt := range []struct {
		name                            string
		person                          string
		approve, artifacts, intake, own []string
	}{
		// ESC-10 is overdue, so first; ESC-8 has no deadline, so last.
		{"reviewer sees what waits on them", "alice", []string{"ESC-10", "ESC-7", "ESC-1", "ESC-8"}, nil, nil, nil},
		// Waiting leaves the author out: ann is a champion, yet ESC-6 (T1)
		// waits on erin only. The deferred ESC-4 comes last though its
		// deadline has passed: its clock is paused.
		{"author approves nothing of their own and owes the artifacts", "ann", nil, []string{"ESC-2", "ESC-4"},
			nil, []string{"ESC-2", "ESC-7", "ESC-6", "ESC-1", "ESC-12", "ESC-8", "ESC-4"}},
		{"a commit author is not waited on", "carol", []string{"ESC-10", "ESC-1", "ESC-8"}, nil, nil, nil},
		{"the filer of a manual escalation approves nothing of it and follows it", "bob",
			[]string{"ESC-10", "ESC-7", "ESC-1"}, nil, nil, []string{"ESC-8"}},
		{"the filer answers the intake", "erin", []string{"ESC-6"}, nil, []string{"ESC-3"}, []string{"ESC-3"}},
		{"the author of an MR in intake owes nothing yet", "mallory", nil, nil, nil, []string{"ESC-3"}},
		// ESC-14 is disputed: it waits on an arbiter, not on approvals, but
		// its author still owes the missing threat model.
		{"disputed: artifacts still owed, no approvals asked", "frank", []string{"ESC-10", "ESC-7", "ESC-1", "ESC-8"},
			[]string{"ESC-14"}, nil, []string{"ESC-14"}},
		{"someone the policy does not know has nothing", "zed", nil, nil, nil, nil},
		{"nobody has nothing", "", nil, nil, nil, nil},
	} {
		t.Run(tt.name, func(t *testing.T) {
			q := QueueOf(tt.person, open, pol, t0)
			if q.Person != tt.person {
				t.Errorf("Person = %q, want %q", q.Person, tt.person)
			}
			for _, l := range []struct {
				name string
				got  QueueList
				want []string
			}{{"Approve", q.Approve, tt.approve}, {"Artifacts", q.Artifacts, tt.artifacts}, {"Intake", q.Intake, tt.intake}, {"Own", q.Own, tt.own}} {
				if got := ids(l.got); !slices.Equal(got, l.want) {
					t.Errorf("%s = %q, want %q", l.name, got, l.want)
				}
				if l.got.More != 0 {
					t.Errorf("%s.More = %d, want 0", l.name, l.got.More)
				}
			}
		})
	}
}

// TestQueueNeverAsksAnAuthorToApprove: whoever wrote an escalation's MR
// or its commits, or filed it, never finds it in their Approve list.
func TestQueueNeverAsksAnAuthorToApprove(t *testing.T) {
	pol := testPolicy(t)
	open := queueFixtures()
	for _, pr := range pol.People {
		for _, it := range QueueOf(pr.ID, open, pol, t0).Approve.Items {
			e := open[slices.IndexFunc(open, func(e *Escalation) bool { return e.ID == it.ID })]
			if wrote(pr, e.Authors()) || isFiler(e, pr.ID) {
				t.Errorf("%s is asked to approve %s, which they wrote or filed", pr.ID, e.ID)
			}
		}
	}
}

func TestQueueItem(t *testing.T) {
	pol := testPolicy(t)
	open := queueFixtures()
	find := func(l QueueList, id string) QueueItem {
		t.Helper()
		i := slices.IndexFunc(l.Items, func(it QueueItem) bool { return it.ID == id })
		if i < 0 {
			t.Fatalf("%s not in %q", id, ids(l))
		}
		return l.Items[i]
	}
	over := find(QueueOf("alice", open, pol, t0).Approve, "ESC-10")
	if !over.Overdue || over.Paused || !over.DecisionDue.Equal(t0.Add(-time.Hour)) {
		t.Errorf("ESC-10: Overdue %v, Paused %v, DecisionDue %s; want overdue since %s", over.Overdue, over.Paused, over.DecisionDue, t0.Add(-time.Hour))
	}
	if want := []string{"alice", "bob", "carol", "frank"}; !slices.Equal(over.Waiting, want) {
		t.Errorf("ESC-10 Waiting = %q, want %q", over.Waiting, want)
	}
	q := QueueOf("ann", open, pol, t0)
	paused := find(q.Artifacts, "ESC-4")
	if paused.Overdue || !paused.Paused || !paused.DeferredUntil.Equal(t0.Add(72*time.Hour)) {
		t.Errorf("ESC-4: Overdue %v, Paused %v, DeferredUntil %s; want paused until %s, not overdue",
			paused.Overdue, paused.Paused, paused.DeferredUntil, t0.Add(72*time.Hour))
	}
	want := QueueItem{ID: "ESC-2", Project: "g/p", MRIID: 102, Title: "change ESC-2", Tier: "T2", TierName: "x",
		State: StateAwaitingArtifacts, DecisionDue: t0.Add(24 * time.Hour), Missing: []string{"threat-model"},
		Deadline: Deadline{Has: true, Due: t0.Add(24 * time.Hour), Left: 24 * time.Hour}, WaitingOn: []string{"ann"}}
	if got := find(q.Artifacts, "ESC-2"); !reflect.DeepEqual(got, want) {
		t.Errorf("ESC-2:\n got %+v\nwant %+v", got, want)
	}
	if unknown := find(q.Own, "ESC-12"); unknown.Missing != nil || unknown.Waiting != nil {
		t.Errorf("ESC-12 (tier gone): Missing %q, Waiting %q; want none", unknown.Missing, unknown.Waiting)
	}
	// Later, ESC-1 is overdue too.
	if it := find(QueueOf("alice", open, pol, t0.Add(49*time.Hour)).Approve, "ESC-1"); !it.Overdue {
		t.Error("ESC-1 is not overdue a day after its deadline")
	}
}

// TestQueueLimit: a list keeps QueueLimit items in order and counts the
// rest; ids sort by number.
func TestQueueLimit(t *testing.T) {
	pol := testPolicy(t)
	var open []*Escalation
	for i := range QueueLimit + 12 {
		open = append(open, &Escalation{ID: fmt.Sprintf("ESC-%d", QueueLimit+12-i), Project: "g/p", MRIID: int64(i + 1),
			Author: "ann", Tier: "T1", State: StateInReview, DecisionDue: t0})
	}
	before := slices.Clone(open)
	q := QueueOf("erin", open, pol, t0)
	if q.Approve.More != 12 || len(q.Approve.Items) != QueueLimit || q.Approve.Len() != QueueLimit+12 {
		t.Fatalf("Approve: %d items, More %d, Len %d; want %d, 12, %d", len(q.Approve.Items), q.Approve.More, q.Approve.Len(), QueueLimit, QueueLimit+12)
	}
	if got := ids(q.Approve)[:11]; !slices.Equal(got, strings.Split("ESC-1 ESC-2 ESC-3 ESC-4 ESC-5 ESC-6 ESC-7 ESC-8 ESC-9 ESC-10 ESC-11", " ")) {
		t.Errorf("first ids %q, want by number", got)
	}
	if !slices.Equal(open, before) {
		t.Error("QueueOf reordered its input")
	}
	if q := QueueOf("ann", open, pol, t0); q.Own.More != 12 || q.Approve.Len() != 0 {
		t.Errorf("ann: Own.More %d, Approve.Len %d; want 12, 0", q.Own.More, q.Approve.Len())
	}
}

// TestAskedOfIsTheCards: AskedOf names whom the card asks for artifacts.
func TestAskedOfIsTheCards(t *testing.T) {
	pol := testPolicy(t)
	for _, tt := range []struct {
		author, filer string
		want          []string
	}{
		{"ann", "", []string{"ann"}},
		{"ann", "erin", []string{"ann", "erin"}},
		{"ann", "ann", []string{"ann"}},
		{"stranger", "", []string{"stranger"}}, // not in the policy: the username as it is
		{"", "erin", []string{"erin"}},
		{"", "", nil},
	} {
		e := &Escalation{Author: tt.author, Filer: tt.filer, Manual: tt.filer != ""}
		got := AskedOf(e, pol)
		if !slices.Equal(got, tt.want) {
			t.Errorf("AskedOf(author %q, filer %q) = %q, want %q", tt.author, tt.filer, got, tt.want)
		}
		d := &decision{pol: pol, esc: e}
		if card := d.askedOf(e); card != strings.Join(got, ", ") {
			t.Errorf("author %q, filer %q: the card asks %q, AskedOf %q", tt.author, tt.filer, card, got)
		}
	}
	if got := AskedOf(&Escalation{Author: "ann"}, nil); !slices.Equal(got, []string{"ann"}) {
		t.Errorf("AskedOf without a policy = %q, want the username", got)
	}
	if AskedOf(nil, pol) != nil {
		t.Error("AskedOf(nil) is not nil")
	}
}
