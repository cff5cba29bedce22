package bot

import (
	"fmt"
	"math/rand/v2"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/threatgate/threatgate/policies"
)

// FuzzDecide drives decide with random input sequences, under a policy that
// may change half-way (a tier removed, as when a team edits its policy
// while escalations are open): decide never panics, a refusal comes with no
// events, and replaying the events gives the projection built step by
// step.
func FuzzDecide(f *testing.F) {
	for _, seed := range []uint64{1, 2, 3, 42, 105, 7777} {
		f.Add(seed, uint8(0))
		f.Add(seed, uint8(1))
	}
	pol := testPolicy(f)
	smaller, err := policies.Load("smaller.yaml", []byte(smallerPolicyYAML))
	if err != nil {
		f.Fatal(err)
	}
	if smaller.Tier("T3") != nil {
		f.Fatal("the smaller policy still has T3")
	}
	f.Fuzz(func(t *testing.T, seed uint64, swap uint8) {
		rng := rand.New(rand.NewPCG(seed, uint64(swap)))
		p := pol
		var esc *Escalation
		var all []Event
		now := t0
		ins := randomInputs(t, rng, 30)
		for i, in := range ins {
			if swap%2 == 1 && i == len(ins)/2 {
				p = smaller
			}
			now = now.Add(time.Duration(1+rng.IntN(600)) * time.Minute)
			evs, proj, err := func() (evs []Event, proj *Escalation, err error) {
				defer func() {
					if r := recover(); r != nil {
						t.Fatalf("decide panicked at input %d (%s): %v", i, describe(in), r)
					}
				}()
				evs, _, proj, err = decideProjection(Given{Esc: esc}, p, in, now)
				return evs, proj, err
			}()
			if err != nil {
				if len(evs) != 0 {
					t.Fatalf("a refusal came with events: %v", evs)
				}
				continue
			}
			touched := false
			for _, ev := range evs {
				if ev.Kind == EventCapOverridden {
					continue
				}
				ev.Escalation = "ESC-1"
				esc = apply(esc, ev)
				all = append(all, ev)
				touched = true
			}
			if touched {
				// The projection decide returns (what the engine stores)
				// is what its events give.
				got := proj.Clone()
				if got.ID == "" {
					got.ID = "ESC-1"
				}
				if !reflect.DeepEqual(got, esc) {
					t.Fatalf("input %d (%s): decide's projection differs from its events':\n got %+v\nwant %+v", i, describe(in), got, esc)
				}
			}
		}
		if got := Replay(all); !reflect.DeepEqual(got, esc) {
			t.Fatalf("replay differs from the projection:\n got %+v\nwant %+v", got, esc)
		}
	})
}

// smallerPolicyYAML is testPolicyYAML without its T3 tier: a team edited
// its policy while escalations were open.
var smallerPolicyYAML = strings.Replace(testPolicyYAML, `  - id: T3
    name: critical
    when: {min_score: 100}
    artifacts: [threat-model, rollback-plan]
    approvals: [{group: appsec, count: 2}, {group: leads, count: 1, role: risk-acceptance}]
    checklist: [data-sensitivity]
    max_residual_risk: 9
`, "", 1)

func describe(in Input) string {
	switch in.Kind {
	case InputMR:
		return fmt.Sprintf("mr %s %s", in.MR.Action, in.MR.MR.SHA)
	case InputCommand:
		return fmt.Sprintf("%s: %s", in.Actor.Person, in.Command.String())
	}
	return string(in.Kind)
}

// randomInputs makes n random inputs for g/p!1: pushes, closes, reopens,
// merges, manual escalations (with and without intake) and commands of
// every verb by random people.
func randomInputs(t *testing.T, rng *rand.Rand, n int) []Input {
	people := []string{"ann", "alice", "bob", "carol", "dave", "erin", "mallory", "frank", ""}
	tiers := []string{"T1", "T2", "T3", "T9"}
	lines := []string{
		"/approve --check data-sensitivity=none ok", "/approve ok", "/threatgate reject no",
		"/threatgate artifact threat-model x", "/threatgate artifact rollback-plan y", "/threatgate risk %d r",
		"/threatgate withdraw w", "/threatgate retier %s because", "/threatgate defer 2h later", "/threatgate defer 2026-12-01 later",
		"/threatgate dissent d", "/threatgate action a", "/threatgate status", "/threatgate help",
		"/threatgate intake\nsummary: s\nassets: a\nexploit: e", "/threatgate override-cap erin 1 more",
		"/escalate g/p!1 --tier %s worried\nsummary: s\nassets: a\nexploit: e", "/escalate g/p!1 --urgent --tier %s worried",
	}
	var out []Input
	head := 0
	for range n {
		switch r := rng.IntN(10); {
		case r < 3:
			if rng.IntN(2) == 0 {
				head++
			}
			var opts []mrOpt
			opts = append(opts, sha(fmt.Sprintf("%040d", head)), at(len(out)))
			switch rng.IntN(4) {
			case 0:
				opts = append(opts, paths("docs/x.md"))
			case 1:
				opts = append(opts, paths(".gitlab-ci.yml"))
			case 2:
				opts = append(opts, paths("src/auth/login.go"))
			default:
				opts = append(opts, paths("src/auth/login.go"), secretLine())
			}
			act := []MRAction{MRUpdate, MROpen, MRClose, MRReopen, MRMerge, MRSeen}[rng.IntN(6)]
			opts = append(opts, action(act), committers(people[rng.IntN(len(people))]+"@example.com"))
			if rng.IntN(4) == 0 {
				opts = append(opts, labels("security"))
			}
			in := mrIn(opts...)
			in.MR.AnswerCheck = rng.IntN(5) == 0
			out = append(out, in)
		case r < 9:
			line := lines[rng.IntN(len(lines))]
			switch {
			case strings.Contains(line, "%d"):
				line = fmt.Sprintf(line, 1+rng.IntN(25))
			case strings.Contains(line, "%s"):
				line = fmt.Sprintf(line, tiers[rng.IntN(len(tiers))])
			}
			c, err := ParseCommand(line)
			if err != nil {
				t.Fatalf("parse %q: %v", line, err)
			}
			in := Input{Kind: InputCommand, Actor: Identity{Person: people[rng.IntN(len(people))], Surface: "test"}, Command: &c, Escalation: "ESC-1"}
			if rng.IntN(4) == 0 {
				in.Head = fmt.Sprintf("%040d", head-rng.IntN(2))
			}
			out = append(out, in)
		default:
			out = append(out, Input{Kind: InputTick, Actor: System})
		}
	}
	return out
}
