package bot

import (
	"reflect"
	"strings"
	"testing"
	"time"
)

func TestParseIncident(t *testing.T) {
	for _, tt := range []struct {
		line string
		want Command
		err  string
	}{
		{line: "/threatgate incident g/p!12 tokens are logged",
			want: Command{Verb: VerbIncident, MR: MRRef{Project: "g/p", IID: 12}, Text: "tokens are logged"}},
		{line: "/threatgate incident --fixed-by g/p!13 https://gl.example.com/g/p/-/merge_requests/12 leak",
			want: Command{Verb: VerbIncident, MR: MRRef{Project: "g/p", IID: 12, URL: "https://gl.example.com/g/p/-/merge_requests/12"}, FixedBy: MRRef{Project: "g/p", IID: 13}, Text: "leak"}},
		{line: "/threatgate incident-fixed inc-07 rotated", want: Command{Verb: VerbIncidentFixed, Incident: "INC-7", Text: "rotated"}},
		{line: "/threatgate incident g/p!12", err: "summary required"},
		{line: "/threatgate incident leak", err: "want a merge request"},
		{line: "/threatgate incident g/p!12 --fixed-by nope x", err: "--fixed-by"},
		{line: "/threatgate incident ESC-3 g/p!1 x", err: "merge request"},
		{line: "/threatgate incident-fixed ESC-3", err: "takes no escalation id"},
		{line: "/threatgate incident-fixed INC-x", err: "want an incident id such as INC-3"},
		{line: "/threatgate incident-fixed", err: "want an incident id"},
	} {
		t.Run(tt.line, func(t *testing.T) {
			c, err := ParseCommand(tt.line)
			if tt.err != "" {
				if p, ok := IsProblem(err); !ok || !strings.Contains(p.Error(), tt.err) {
					t.Fatalf("err = %v, want a Problem containing %q", err, tt.err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(c, tt.want) {
				t.Fatalf("ParseCommand = %#v, want %#v", c, tt.want)
			}
			again, err := ParseCommand(c.String())
			if err != nil || !reflect.DeepEqual(again, c) {
				t.Fatalf("round trip through %q: %#v, %v", c.String(), again, err)
			}
		})
	}
}

func TestDecideIncident(t *testing.T) {
	pol := testPolicy(t)
	now := t0.Add(30 * 24 * time.Hour)
	esc := func(tier string, score int, st State) *Escalation {
		return &Escalation{ID: "ESC-4", Project: "g/p", MRIID: 1, Tier: tier, Score: score, State: st, MRURL: "https://gl/g/p/-/merge_requests/1", DecidedAt: t0}
	}
	for _, tt := range []struct {
		name  string
		esc   *Escalation
		actor string
		want  EventData
		reply string
		err   string
	}{
		{name: "no escalation leaks", actor: "ann",
			want:  EventData{Incident: "INC-1", Project: "g/p", MRIID: 1, Text: "keys logged", Leaked: true},
			reply: "Incident INC-1 recorded on g/p!1 (no escalation: it leaked past review)"},
		{name: "escalated below today's tier leaks", actor: "ann", esc: esc("T1", 100, StateMerged),
			want:  EventData{Incident: "INC-1", Project: "g/p", MRIID: 1, MRURL: "https://gl/g/p/-/merge_requests/1", Text: "keys logged", EscalationID: "ESC-4", Tier: "T1", PolicyTier: "T3", Leaked: true, NearMiss: true},
			reply: "below T3"},
		{name: "approved at the right tier is a near miss", actor: "alice", esc: esc("T3", 100, StateApproved),
			want:  EventData{Incident: "INC-1", Project: "g/p", MRIID: 1, MRURL: "https://gl/g/p/-/merge_requests/1", Text: "keys logged", EscalationID: "ESC-4", Tier: "T3", PolicyTier: "T3", NearMiss: true},
			reply: "near miss"},
		{name: "retiered above the policy is no leak", actor: "alice", esc: esc("T3", 20, StateRejected),
			want:  EventData{Incident: "INC-1", Project: "g/p", MRIID: 1, MRURL: "https://gl/g/p/-/merge_requests/1", Text: "keys logged", EscalationID: "ESC-4", Tier: "T3", PolicyTier: "T1"},
			reply: "escalation ESC-4 in T3"},
		{name: "someone not in the policy is refused", actor: "zed", err: "not in the policy's people"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			in := cmd(t, tt.actor, "/threatgate incident g/p!1 keys logged")
			evs, effs, proj, err := decideProjection(Given{Esc: tt.esc, IncidentID: "INC-1"}, pol, in, now)
			if tt.err != "" {
				if p, ok := IsProblem(err); !ok || !strings.Contains(p.Error(), tt.err) {
					t.Fatalf("err = %v, want a Problem containing %q", err, tt.err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			want := []Event{{Kind: EventIncident, Actor: tt.actor, At: now, Data: tt.want}}
			if !reflect.DeepEqual(evs, want) {
				t.Fatalf("events:\n got %+v\nwant %+v", evs, want)
			}
			if proj != nil {
				t.Errorf("the escalation was touched: %+v", proj)
			}
			if len(effs) != 1 || effs[0].Kind != EffectReply || !strings.Contains(effs[0].Text, tt.reply) {
				t.Errorf("effects = %+v, want one reply containing %q", effs, tt.reply)
			}
		})
	}
}

func TestDecideIncidentFixed(t *testing.T) {
	pol := testPolicy(t)
	recorded := Event{Seq: 9, Kind: EventIncident, Actor: "ann", At: t0, Data: EventData{Incident: "INC-2", Project: "g/p", MRIID: 1}}
	now := t0.Add(50 * time.Hour)
	in := cmd(t, "bob", "/threatgate incident-fixed INC-2 rotated")
	evs, effs, err := decide(Given{Incident: &IncidentRecord{Recorded: recorded}}, pol, in, now)
	if err != nil {
		t.Fatal(err)
	}
	want := []Event{{Kind: EventIncidentFixed, Actor: "bob", At: now, Data: EventData{Incident: "INC-2", Project: "g/p", MRIID: 1, Since: t0, Text: "rotated"}}}
	if !reflect.DeepEqual(evs, want) {
		t.Fatalf("events:\n got %+v\nwant %+v", evs, want)
	}
	if len(effs) != 1 || !strings.Contains(effs[0].Text, "INC-2 is remediated, 2d 2h after") {
		t.Errorf("effects = %+v", effs)
	}
	fixed := want[0]
	for _, tt := range []struct {
		name string
		g    Given
		err  string
	}{
		{"unknown incident", Given{}, "no incident INC-2"},
		{"fixed twice", Given{Incident: &IncidentRecord{Recorded: recorded, Fixed: &fixed}}, "already"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			if _, _, err := decide(tt.g, pol, in, now); !isProblemWith(err, tt.err) {
				t.Fatalf("err = %v, want a Problem containing %q", err, tt.err)
			}
		})
	}
	if _, _, err := decide(Given{}, pol, cmd(t, "zed", "/threatgate incident-fixed INC-2"), now); !isProblemWith(err, "not in the policy") {
		t.Fatalf("zed: err = %v", err)
	}
}

func isProblemWith(err error, want string) bool {
	p, ok := IsProblem(err)
	return ok && strings.Contains(p.Error(), want)
}

func TestIncidentFiguresOf(t *testing.T) {
	from, to := t0, t0.Add(7*24*time.Hour)
	inc := func(at time.Duration, leaked, near bool) Event {
		return Event{Kind: EventIncident, At: t0.Add(at), Data: EventData{Leaked: leaked, NearMiss: near}}
	}
	fix := func(id string, at, since time.Duration) Event {
		return Event{Kind: EventIncidentFixed, At: t0.Add(at), Data: EventData{Incident: id, Since: t0.Add(since)}}
	}
	events := []Event{
		inc(-time.Hour, true, false), // before the window
		inc(time.Hour, true, false),
		inc(2*time.Hour, false, true),
		inc(3*time.Hour, false, false),
		inc(4*time.Hour, true, true),
		fix("INC-1", 5*time.Hour, -48*time.Hour), // recorded before the window, fixed in it
		fix("INC-2", 10*time.Hour, 2*time.Hour),
		fix("INC-2", 11*time.Hour, 2*time.Hour), // only the first counts
		fix("INC-3", 30*time.Hour, 3*time.Hour),
	}
	got := IncidentFiguresOf(events, from, to)
	want := IncidentFigures{Recorded: 4, Leakage: Rate{Count: 2, Of: 4}, NearMisses: 2,
		Remediation: Spread{N: 3, Median: 27 * time.Hour, P90: 53 * time.Hour}}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("IncidentFiguresOf = %+v, want %+v", got, want)
	}
}

// TestWeeklyReportIncidents: the report's Incidents section on a seeded
// week (testdata/digest/report_incidents.txt): four incidents, two leaked
// (one on an MR never escalated, one escalated below the policy's tier),
// one near miss, two remediated in the week (one recorded the week before).
func TestWeeklyReportIncidents(t *testing.T) {
	pol := testPolicy(t)
	events, escs, quotas := reportScene()
	inc := func(at time.Time, id string, leaked, near bool) Event {
		return Event{Kind: EventIncident, Actor: "ann", At: at, Data: EventData{Incident: id, Project: "shop/api", MRIID: 1, Leaked: leaked, NearMiss: near}}
	}
	fix := func(at time.Time, id string, since time.Time) Event {
		return Event{Kind: EventIncidentFixed, Actor: "bob", At: at, Data: EventData{Incident: id, Since: since}}
	}
	events = append(events,
		inc(nov(2, 12, 0), "INC-2", true, false),
		inc(nov(3, 12, 0), "INC-3", false, true),
		inc(nov(4, 12, 0), "INC-4", true, false),
		inc(nov(5, 12, 0), "INC-5", false, false),
		fix(nov(4, 12, 0), "INC-1", time.Date(2026, 10, 30, 12, 0, 0, 0, time.UTC)),
		fix(nov(6, 18, 0), "INC-3", nov(3, 12, 0)),
		inc(nov(9, 12, 0), "INC-6", true, false), // the next week
	)
	r := BuildWeeklyReport(events, escs, quotas, 2026, 45, nov(9, 9, 0), pol)
	want := IncidentFigures{Recorded: 4, Leakage: Rate{Count: 2, Of: 4}, NearMisses: 1,
		Remediation: Spread{N: 2, Median: 78 * time.Hour, P90: 120 * time.Hour}}
	if !reflect.DeepEqual(r.Incidents, want) {
		t.Fatalf("Incidents = %+v, want %+v", r.Incidents, want)
	}
	be, bescs, bq := reportScene()
	base := BuildWeeklyReport(be, bescs, bq, 2026, 45, nov(9, 9, 0), pol)
	base.Incidents = r.Incidents
	if !reflect.DeepEqual(r, base) {
		t.Errorf("incidents changed the other figures:\n got %+v\nwant %+v", r, base)
	}
	golden(t, "testdata/digest/report_incidents.txt", RenderReportText(r)+"\n")
}
