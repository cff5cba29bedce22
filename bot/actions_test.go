package bot

import (
	"fmt"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"
)

func date(y int, m time.Month, d int) time.Time { return time.Date(y, m, d, 0, 0, 0, 0, time.UTC) }

func TestParseClockCommands(t *testing.T) {
	for _, tt := range []struct {
		in   string
		want Command
		out  string // String(); "" when it is in
	}{
		{"/threatgate action ESC-3 @Bob due:2026-12-01 rotate keys",
			Command{Verb: VerbAction, Escalation: "ESC-3", Owner: "Bob", Due: date(2026, 12, 1), Text: "rotate keys"}, ""},
		{"/threatgate action DUE:2026-12-01 @bob rotate keys",
			Command{Verb: VerbAction, Owner: "bob", Due: date(2026, 12, 1), Text: "rotate keys"}, "/threatgate action @bob due:2026-12-01 rotate keys"},
		{"/threatgate action <@U123|bob> rotate keys",
			Command{Verb: VerbAction, Owner: "U123", Text: "rotate keys"}, "/threatgate action @U123 rotate keys"},
		{"/threatgate action write the runbook",
			Command{Verb: VerbAction, Text: "write the runbook"}, ""},
		{`/threatgate action "@bob is wrong here"`,
			Command{Verb: VerbAction, Text: "@bob is wrong here"}, ""},
		{"/threatgate action @bob\ndue: friday, says carol",
			Command{Verb: VerbAction, Owner: "bob", Fields: map[string]string{"due": "friday, says carol"}, Text: ""}, "-"},
		{"/threatgate action @bob\n@carol knows how",
			Command{Verb: VerbAction, Owner: "bob", Text: "@carol knows how"}, `/threatgate action @bob "@carol knows how"`},
		{"/threatgate done ESC-2 3", Command{Verb: VerbDone, Escalation: "ESC-2", N: 3}, ""},
		{"/threatgate done 1", Command{Verb: VerbDone, N: 1}, ""},
		{"/threatgate away until 2026-12-24", Command{Verb: VerbAway, Until: date(2026, 12, 24)}, ""},
		{"/threatgate away OFF", Command{Verb: VerbAway}, "/threatgate away off"},
	} {
		c, err := ParseCommand(tt.in)
		if tt.out == "-" {
			if err == nil {
				t.Errorf("ParseCommand(%q) = %+v, want refused (no text)", tt.in, c)
			}
			continue
		}
		if err != nil {
			t.Errorf("ParseCommand(%q): %v", tt.in, err)
			continue
		}
		if !reflect.DeepEqual(c, tt.want) {
			t.Errorf("ParseCommand(%q)\n got %#v\nwant %#v", tt.in, c, tt.want)
		}
		want := tt.out
		if want == "" {
			want = tt.in
		}
		if got := c.String(); got != want {
			t.Errorf("String() of %q = %q, want %q", tt.in, got, want)
		}
		if again, err := ParseCommand(c.String()); err != nil || !reflect.DeepEqual(again, c) {
			t.Errorf("round trip of %q: %#v, %v", c.String(), again, err)
		}
	}
}

func TestParseClockCommandProblems(t *testing.T) {
	for _, tt := range []struct{ in, want string }{
		{"/threatgate action @bob", "action text required"},
		{"/threatgate action due:friday fix it", "want a due date as due:YYYY-MM-DD, such as due:2026-12-24, got \"due:friday\""},
		{"/threatgate action due:2026-02-30 fix it", "want a due date as due:YYYY-MM-DD"},
		{"/threatgate action @bob @carol fix it", `give one owner, got @bob and "@carol"`},
		{"/threatgate action due:2026-12-01 due:2026-12-02 fix it", "give one due date"},
		{"/threatgate action @ fix it", `want an owner such as @ann or a chat mention, got "@"`},
		{"/threatgate done", "want the number of an action item, such as 2, got nothing"},
		{"/threatgate done two", `want the number of an action item, such as 2 (as /threatgate status lists them), got "two"`},
		{"/threatgate done 0", `got "0"`},
		{"/threatgate done 2 it is fixed", "takes an escalation id and the number of an action item"},
		{"/threatgate away", "want until YYYY-MM-DD, or off, got nothing"},
		{"/threatgate away tomorrow", `want until YYYY-MM-DD, or off, got "tomorrow"`},
		{"/threatgate away until 24.12.2026", `want a real date from 2000 on as YYYY-MM-DD after until, got "24.12.2026"`},
		{"/threatgate away until", "want a date such as 2026-12-24 after until, got nothing"},
		{"/threatgate away until 2026-12-24 at the beach", "takes until YYYY-MM-DD or off, and nothing more"},
		{"/threatgate away ESC-1 off", "takes no escalation id"},
	} {
		_, err := ParseCommand(tt.in)
		p, ok := IsProblem(err)
		if !ok || !strings.Contains(p.Error(), tt.want) {
			t.Errorf("ParseCommand(%q) = %v, want a Problem containing %q", tt.in, err, tt.want)
		}
	}
}

// briefItem renders an action event as the tables expect it.
func briefItem(ev Event) string {
	s := string(ev.Kind) + " " + ev.Actor
	switch ev.Kind {
	case EventAction:
		s += " owner=" + ev.Data.Owner
		if !ev.Data.Due.IsZero() {
			s += " due=" + ev.Data.Due.Format(time.DateOnly)
		}
	case EventActionDone:
		s += fmt.Sprintf(" n=%d", ev.Data.N)
	}
	return s
}

func TestDecideActionItems(t *testing.T) {
	pol := testPolicy(t)
	openT2 := mrIn(action(MROpen), paths("src/auth/login.go"))
	rotate := cmd(t, "ann", "/threatgate action @bob due:2026-11-20 rotate the key")
	closedByBob := cmd(t, "bob", "/threatgate done 1")
	merged := []Input{openT2, cmd(t, "ann", "/threatgate artifact threat-model x"), cmd(t, "alice", "/approve"), mrIn(action(MRMerge), at(5), paths("src/auth/login.go"))}

	for _, tt := range []struct {
		name  string
		given []Input
		when  Input
		then  []string
		err   string
	}{
		{name: "the owner is the sender by default", given: []Input{openT2}, when: cmd(t, "erin", "/threatgate action write the runbook"),
			then: []string{"action_added erin owner=erin"}},
		{name: "an owner and a due date", given: []Input{openT2}, when: rotate,
			then: []string{"action_added ann owner=bob due=2026-11-20"}},
		{name: "the owner named by GitLab username", given: []Input{openT2}, when: cmd(t, "ann", "/threatgate action @dave ask legal"),
			then: []string{"action_added ann owner=dave"}},
		{name: "due today is allowed", given: []Input{openT2}, when: cmd(t, "ann", "/threatgate action due:2026-11-02 today"),
			then: []string{"action_added ann owner=ann due=2026-11-02"}},
		{name: "an owner outside the policy is refused", given: []Input{openT2}, when: cmd(t, "ann", "/threatgate action @zed fix"),
			err: `no person "zed" in the policy to own the item`},
		{name: "a past due date is refused", given: []Input{openT2}, when: cmd(t, "ann", "/threatgate action due:2026-11-01 fix"),
			err: "due:2026-11-01 is past"},
		{name: "someone outside the policy cannot record one", given: []Input{openT2}, when: cmd(t, "", "/threatgate action fix"),
			err: "not in the policy's people"},
		{name: "after the merge, a follow-up", given: merged, when: cmd(t, "alice", "/threatgate action @ann add the test"),
			then: []string{"action_added alice owner=ann"}},

		{name: "the owner closes it", given: []Input{openT2, rotate}, when: closedByBob,
			then: []string{"action_done bob n=1"}},
		{name: "who recorded it closes it", given: []Input{openT2, rotate}, when: cmd(t, "ann", "/threatgate done 1"),
			then: []string{"action_done ann n=1"}},
		{name: "an approver of the tier closes it", given: []Input{openT2, rotate}, when: cmd(t, "alice", "/threatgate done ESC-1 1"),
			then: []string{"action_done alice n=1"}},
		{name: "the re-tier authority closes it", given: []Input{openT2, rotate}, when: cmd(t, "dave", "/threatgate done 1"),
			then: []string{"action_done dave n=1"}},
		{name: "anyone else is refused", given: []Input{openT2, rotate}, when: cmd(t, "erin", "/threatgate done 1"),
			err: "only bob (its owner), ann (who recorded it), an approver of T2, leads may close action item 1 on ESC-1"},
		{name: "no such item", given: []Input{openT2, rotate}, when: cmd(t, "bob", "/threatgate done 2"),
			err: "ESC-1 has no action item 2; want 1 to 1"},
		{name: "no items at all", given: []Input{openT2}, when: cmd(t, "bob", "/threatgate done 1"),
			err: "ESC-1 has no action items"},
		{name: "closed twice", given: []Input{openT2, rotate, closedByBob}, when: cmd(t, "alice", "/threatgate done 1"),
			err: "action item 1 on ESC-1 was already closed by bob on 2026-11-02"},
		{name: "closed after the merge", given: append(slices.Clone(merged), rotate), when: closedByBob,
			then: []string{"action_done bob n=1"}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			_, esc := history(t, pol, Quota{}, tt.given...)
			got, _, err := decide(Given{Esc: esc}, pol, tt.when, t0.Add(time.Hour))
			if tt.err != "" {
				p, ok := IsProblem(err)
				if !ok || !strings.Contains(p.Error(), tt.err) {
					t.Fatalf("err = %v, want a Problem containing %q", err, tt.err)
				}
				if got != nil {
					t.Errorf("refusal came with events %v", got)
				}
				return
			}
			if err != nil {
				t.Fatalf("err = %v, want accepted", err)
			}
			var briefs []string
			for _, ev := range got {
				if ev.Kind == EventAction || ev.Kind == EventActionDone {
					briefs = append(briefs, briefItem(ev))
				}
			}
			if !slices.Equal(briefs, tt.then) {
				t.Errorf("events:\n got %q\nwant %q", briefs, tt.then)
			}
		})
	}
}

func TestActionsOverdue(t *testing.T) {
	e := &Escalation{Actions: []Note{
		{Text: "no due date", Owner: "ann"},
		{Text: "open, due the 20th", Owner: "bob", Due: date(2026, 11, 20)},
		{Text: "done, due the 20th", Owner: "bob", Due: date(2026, 11, 20), Done: true},
		{Text: "open, due the 25th", Owner: "carol", Due: date(2026, 11, 25)},
	}}
	for _, tt := range []struct {
		now  time.Time
		want []int
	}{
		{date(2026, 11, 20).Add(23 * time.Hour), nil}, // the due day has not ended
		{date(2026, 11, 21), []int{2}},
		{date(2026, 11, 26).Add(time.Minute), []int{2, 4}},
	} {
		if got := ActionsOverdue(e, tt.now); !slices.Equal(got, tt.want) {
			t.Errorf("ActionsOverdue at %s = %v, want %v", tt.now.Format(time.RFC3339), got, tt.want)
		}
	}
	if got := ActionsOverdue(nil, t0); got != nil {
		t.Errorf("ActionsOverdue(nil) = %v", got)
	}
	if got, want := ActionDeadline(e.Actions[1]), date(2026, 11, 21); !got.Equal(want) {
		t.Errorf("ActionDeadline = %v, want %v", got, want)
	}
	if got := ActionDeadline(e.Actions[0]); !got.IsZero() {
		t.Errorf("ActionDeadline without a due date = %v, want zero", got)
	}
	if got := ActionOwner(Note{By: "erin"}); got != "erin" {
		t.Errorf("ActionOwner of an item without owner = %q, want who recorded it", got)
	}
}

// TestActionItemsShown: /threatgate status lists the items, overdue and
// done ones marked; the card lists the open ones.
func TestActionItemsShown(t *testing.T) {
	pol := testPolicy(t)
	_, esc := history(t, pol, Quota{}, mrIn(action(MROpen), paths("src/auth/login.go")),
		cmd(t, "ann", "/threatgate action @bob due:2026-11-03 rotate the key"),
		cmd(t, "erin", "/threatgate action write the runbook\nwith the on-call steps"),
		cmd(t, "ann", "/threatgate action @carol check the logs"),
		cmd(t, "carol", "/threatgate done 3"))
	now := date(2026, 11, 5)
	_, effs, err := decide(Given{Esc: esc}, pol, cmd(t, "alice", "/threatgate status"), now)
	if err != nil {
		t.Fatal(err)
	}
	status := effs[0].Text
	for _, want := range []string{
		"Action items (/threatgate done ESC-1 <n> closes one):\n" +
			"  1. rotate the key (bob, due 2026-11-03; OVERDUE)\n" +
			"  2. write the runbook … (erin)\n" +
			"  3. check the logs (carol; done by carol)",
	} {
		if !strings.Contains(status, want) {
			t.Errorf("status lacks %q:\n%s", want, status)
		}
	}
	card := Card(esc, pol, now)
	want := "Action items: 2 open, 1 done\n  1. rotate the key (bob, due 2026-11-03)\n  2. write the runbook … (erin)"
	if !strings.Contains(card, want) {
		t.Errorf("card lacks %q:\n%s", want, card)
	}
}

// TestActionEditsTheCard: recording and closing an item edits the thread's
// summary, which lists the open items.
func TestActionEditsTheCard(t *testing.T) {
	pol := testPolicy(t)
	_, esc := history(t, pol, Quota{}, mrIn(action(MROpen), paths("src/auth/login.go")))
	for _, step := range []struct {
		line       string
		open, done int
	}{
		{"/threatgate action @bob rotate the key", 1, 0},
		{"/threatgate done 1", 0, 1},
	} {
		evs, effs, err := decide(Given{Esc: esc}, pol, cmd(t, "ann", step.line), t0.Add(time.Hour))
		if err != nil {
			t.Fatal(err)
		}
		i := slices.IndexFunc(effs, func(e Effect) bool { return e.Kind == EffectThreadSummary })
		if i < 0 {
			t.Fatalf("%s: no thread summary among %v", step.line, effs)
		}
		if c := effs[i].Card; len(c.Actions) != step.open || c.ActionsDone != step.done {
			t.Errorf("%s: card lists %d open and %d done, want %d and %d", step.line, len(c.Actions), c.ActionsDone, step.open, step.done)
		}
		for _, ev := range evs {
			esc = apply(esc, ev)
		}
	}
}
