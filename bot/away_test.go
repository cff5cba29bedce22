package bot

import (
	"strings"
	"testing"
	"time"

	"github.com/threatgate/threatgate/policies"
)

func TestDecideAway(t *testing.T) {
	pol := testPolicy(t)
	_, esc := history(t, pol, Quota{}, mrIn(action(MROpen), paths("src/auth/login.go")))
	now := t0.Add(time.Hour)
	for _, tt := range []struct {
		name  string
		esc   *Escalation // the thread's escalation, when written in one
		line  string
		until time.Time // of the away event
		reply string
		err   string
	}{
		{name: "away until a day", line: "/threatgate away until 2026-11-09", until: date(2026, 11, 9),
			reply: "You are away until 2026-11-09: your groups' backups are asked meanwhile."},
		{name: "in an escalation's thread it is still about the person", esc: esc, line: "/threatgate away until 2026-11-09", until: date(2026, 11, 9)},
		{name: "back", line: "/threatgate away off", reply: "Welcome back"},
		{name: "a day that has begun is refused", line: "/threatgate away until 2026-11-02", err: "2026-11-02 is not in the future; give the day you are back, such as 2026-11-09"},
		{name: "more than a year is refused", line: "/threatgate away until 2027-11-04", err: "more than a year away"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			in := cmd(t, "alice", tt.line)
			evs, effs, proj, err := decideProjection(Given{Esc: tt.esc}, pol, in, now)
			if tt.err != "" {
				if p, ok := IsProblem(err); !ok || !strings.Contains(p.Error(), tt.err) {
					t.Fatalf("err = %v, want a Problem containing %q", err, tt.err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			want := Event{Kind: EventAway, Actor: "alice", At: now, Data: EventData{Person: "alice", Until: tt.until}}
			if len(evs) != 1 || evs[0].Kind != want.Kind || evs[0].Actor != want.Actor || evs[0].Escalation != "" || evs[0].SHA != "" ||
				!evs[0].Data.Until.Equal(want.Data.Until) || evs[0].Data.Person != "alice" {
				t.Fatalf("events = %+v, want one %+v", evs, want)
			}
			if proj != tt.esc {
				t.Errorf("the escalation changed: %+v", proj)
			}
			if len(effs) != 1 || effs[0].Kind != EffectReply || !strings.Contains(effs[0].Text, tt.reply) {
				t.Errorf("effects = %+v, want one reply containing %q", effs, tt.reply)
			}
		})
	}

	// Back, but the policy still says away: the reply says so.
	pol2, err := policies.Load("p.yaml", []byte(strings.Replace(testPolicyYAML, "{gitlab: alice, email: alice@example.com}", "{gitlab: alice, email: alice@example.com, away_until: 2026-11-20}", 1)))
	if err != nil {
		t.Fatal(err)
	}
	_, effs, err := decide(Given{}, pol2, cmd(t, "alice", "/threatgate away off"), now)
	if err != nil || len(effs) != 1 || !strings.Contains(effs[0].Text, "the policy lists you away until 2026-11-20") {
		t.Errorf("away off while the policy says away: %+v, %v", effs, err)
	}
	// Someone outside the policy is not recorded.
	if _, _, err := decide(Given{}, pol, cmd(t, "", "/threatgate away off"), now); err == nil {
		t.Error("away from someone outside the policy was accepted")
	}
}

func TestAwayAt(t *testing.T) {
	now := date(2026, 11, 10).Add(9 * time.Hour)
	ann := &policies.Person{ID: "ann"}
	byPolicy := &policies.Person{ID: "bob", AwayUntil: date(2026, 11, 12)}
	pastPolicy := &policies.Person{ID: "carol", AwayUntil: date(2026, 11, 10)}
	recorded := map[string]time.Time{"ann": date(2026, 11, 11), "carol": date(2026, 11, 9), "dave": date(2026, 11, 20)}
	for _, tt := range []struct {
		name string
		p    *policies.Person
		away map[string]time.Time
		want bool
	}{
		{"recorded with /threatgate away", ann, recorded, true},
		{"nothing recorded", ann, nil, false},
		{"the policy's away_until", byPolicy, nil, true},
		{"the policy's day has come", pastPolicy, nil, false},
		{"both over", pastPolicy, recorded, false},
		{"nobody", nil, recorded, false},
	} {
		if got := AwayAt(tt.p, tt.away, now); got != tt.want {
			t.Errorf("%s: AwayAt = %v, want %v", tt.name, got, tt.want)
		}
	}
	if !AwayAt(ann, recorded, date(2026, 11, 11).Add(-time.Nanosecond)) || AwayAt(ann, recorded, date(2026, 11, 11)) {
		t.Error("AwayAt: away until the day begins, back from then")
	}
}
