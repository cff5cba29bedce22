package bot

import (
	"fmt"
	"math/rand/v2"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/threatgate/threatgate/policies"
)

// TestGatePromiseProperty drives decide with random sequences of inputs
// (pushes with random classifications and commit authors, labels, closes
// and reopens, manual escalations, artifacts, risk scores, approvals and
// rejections by random people, withdrawals, re-tiers, deferrals, merges)
// and checks the gate's promise against an oracle written from the rules,
// not from decide: whenever the gate's status on the current head is
// success, that head's tier has its artifacts and valid approvals on that
// head (or a withdrawal made on that very head of an MR the policy does not
// tier releases it); and every merge of a head that lacks them is recorded
// as a bypass.
func TestGatePromiseProperty(t *testing.T) {
	pol := testPolicy(t)
	runs := 3000
	if testing.Short() {
		runs = 300
	}
	for seed := range runs {
		rng := rand.New(rand.NewPCG(uint64(seed), 42))
		if msg := gateRun(t, pol, rng); msg != "" {
			t.Fatalf("seed %d: %s", seed, msg)
		}
	}
}

// gateWorld is the oracle's own record of what happened, kept apart from
// the escalation's projection.
type gateWorld struct {
	head       string
	class      *policies.Tier    // the tier the policy puts the head in (nil: none)
	committers []string          // e-mails of the head's commit authors
	status     map[string]string // sha -> last status the gate set on it
	approvals  []gateDecision    // every approval event
	rejections []gateDecision    // every rejection event
	artifacts  map[string]bool   // kinds handed in
	risk       *gateRisk         // latest residual risk
	withdrawn  string            // head a person withdrew on; "" when not withdrawn by a person
	retierAt   map[string]bool   // heads an authorised person re-tiered on
	filer      string            // filer of a manual escalation
	log        []string          // what happened, for the failure message
	mrState    string            // opened, closed, merged
}

type gateDecision struct {
	by, sha string
	arbiter bool
	at      time.Time
}

type gateRisk struct {
	by    string
	score int
	at    time.Time
}

var (
	gatePeople = []string{"ann", "alice", "bob", "carol", "dave", "erin", "mallory", "frank"}
	gateEmails = map[string]string{"ann": "ann@example.com", "alice": "alice@example.com", "bob": "bob@example.com", "carol": "carol@example.com",
		"dave": "dave@example.com", "erin": "erin@example.com", "mallory": "mallory@example.com", "frank": "FRANK@example.com"}
	gateGroups = map[string][]string{"appsec": {"alice", "bob", "carol", "frank"}, "leads": {"dave"}, "champions": {"erin", "ann"}}
)

func gateRun(t *testing.T, pol *policies.Policy, rng *rand.Rand) string {
	w := &gateWorld{status: map[string]string{}, artifacts: map[string]bool{}, retierAt: map[string]bool{}, mrState: "opened"}
	var esc *Escalation
	now := t0
	shaN := 0
	newSHA := func() string { shaN++; return fmt.Sprintf("%040x", shaN) }
	w.head = newSHA()

	// An MR input with a random classification at head.
	mrInput := func(act MRAction, head string) (Input, *policies.Tier, []string) {
		var ps []string
		switch rng.IntN(4) {
		case 0:
			ps = []string{"docs/x.md"}
		case 1:
			ps = []string{".gitlab-ci.yml"}
		case 2:
			ps = []string{"src/auth/login.go"}
		}
		opts := []mrOpt{action(act), sha(head), func(m *MRInput) { m.MR.UpdatedAt = now }}
		if len(ps) > 0 {
			opts = append(opts, paths(ps...))
		} else {
			opts = append(opts, paths("src/auth/login.go"), secretLine())
		}
		var cs []string
		for _, p := range gatePeople {
			if rng.IntN(8) == 0 {
				cs = append(cs, gateEmails[p])
			}
		}
		opts = append(opts, committers(cs...))
		in := mrIn(opts...)
		return in, pol.Evaluate(in.MR.MR).Tier, cs
	}

	// Some runs start with a manual escalation, filed by a random person.
	if rng.IntN(3) == 0 {
		filer := gatePeople[rng.IntN(len(gatePeople))]
		tier := []string{"T1", "T2", "T3"}[rng.IntN(3)]
		c, err := ParseCommand("/escalate g/p!1 --tier " + tier + " worried\nsummary: s\nassets: a\nexploit: e")
		if err != nil {
			t.Fatal(err)
		}
		in := Input{Kind: InputCommand, Actor: Identity{Person: filer, Surface: "test"}, Command: &c}
		if evs, _, err := decide(Given{Esc: esc}, pol, in, now); err == nil {
			for _, ev := range evs {
				ev.Escalation = "ESC-1"
				esc = apply(esc, ev)
			}
			w.filer = filer
			w.log = append(w.log, "escalate by "+filer+" "+tier)
		}
		w.head = ""
	}

	for step := range 40 {
		now = now.Add(time.Duration(1+rng.IntN(90)) * time.Minute)
		var in Input
		var note string
		isMR, merge := false, false
		var nextClass *policies.Tier
		var nextCommitters []string
		nextHead := w.head
		who := gatePeople[rng.IntN(len(gatePeople))]
		command := func(line string) Input {
			c, err := ParseCommand(line)
			if err != nil {
				t.Fatalf("parse %q: %v", line, err)
			}
			return Input{Kind: InputCommand, Actor: Identity{Person: who, Surface: "test"}, Command: &c, Escalation: "ESC-1"}
		}
		switch r := rng.IntN(20); {
		case r < 5 || w.head == "": // a push (a new head), or the same head seen again
			if w.head == "" || rng.IntN(3) > 0 {
				nextHead = newSHA()
			}
			act := MRUpdate
			if w.mrState == "closed" {
				act = MRReopen
			}
			in, nextClass, nextCommitters = mrInput(act, nextHead)
			isMR, note = true, fmt.Sprintf("mr %s %s class %v committers %v", act, nextHead[36:], tierID(nextClass), nextCommitters)
		case r == 5:
			in, nextClass, nextCommitters = mrInput(MRClose, w.head)
			isMR, note = true, "close"
		case r == 6:
			if rng.IntN(2) == 0 {
				nextHead = newSHA()
			}
			in, nextClass, nextCommitters = mrInput(MRMerge, nextHead)
			isMR, merge, note = true, true, fmt.Sprintf("merge %s class %v committers %v", nextHead[36:], tierID(nextClass), nextCommitters)
		case r < 9:
			kind := []string{"threat-model", "rollback-plan"}[rng.IntN(2)]
			in, note = command("/threatgate artifact "+kind+" x"), who+" artifact "+kind
		case r < 13:
			in, note = command("/approve --check data-sensitivity=none ok"), who+" approve"
			if esc != nil && pol.Tier(esc.Tier) != nil && len(pol.Tier(esc.Tier).Checklist) == 0 {
				in, note = command("/approve ok"), who+" approve"
			}
		case r == 13:
			in, note = command("/threatgate reject no"), who+" reject"
		case r == 14:
			score := 1 + rng.IntN(25)
			in, note = command(fmt.Sprintf("/threatgate risk %d r", score)), fmt.Sprintf("%s risk %d", who, score)
		case r == 15:
			in, note = command("/threatgate withdraw w"), who+" withdraw"
		case r == 16:
			tier := []string{"T1", "T2", "T3"}[rng.IntN(3)]
			in, note = command("/threatgate retier "+tier+" because"), who+" retier "+tier
		case r == 17:
			in, note = command("/threatgate defer 2h later"), who+" defer"
		case r == 18:
			in = Input{Kind: InputTick, Actor: System}
			note = "tick"
		default:
			in, note = command("/threatgate dissent hmm"), who+" dissent"
		}
		if esc == nil && !isMR {
			continue
		}
		evs, efs, err := decide(Given{Esc: esc}, pol, in, now)
		if err != nil {
			if _, ok := IsProblem(err); !ok {
				return fmt.Sprintf("step %d %s: internal error %v", step, note, err)
			}
			w.log = append(w.log, note+" (refused)")
			continue
		}
		w.log = append(w.log, note)
		if isMR {
			w.head, w.class, w.committers = nextHead, nextClass, nextCommitters
		}
		for _, ev := range evs {
			if ev.Escalation == "" && ev.Kind != EventCapOverridden {
				ev.Escalation = "ESC-1"
			}
			switch ev.Kind {
			case EventApproved:
				w.approvals = append(w.approvals, gateDecision{ev.Actor, ev.SHA, ev.Data.Arbiter, ev.At})
			case EventRejected:
				w.rejections = append(w.rejections, gateDecision{ev.Actor, ev.SHA, ev.Data.Arbiter, ev.At})
			case EventArtifactAdded:
				w.artifacts[ev.Data.Artifact] = true
			case EventRisk:
				w.risk = &gateRisk{ev.Actor, ev.Data.Risk, ev.At}
			case EventWithdrawn:
				if ev.Data.MRState == "" {
					w.withdrawn = ev.SHA
				}
			case EventRetiered:
				w.retierAt[ev.SHA] = true
			case EventStateChanged:
				if ev.Data.From == StateWithdrawn {
					w.withdrawn = ""
				}
			case EventMerged:
				ok, why := w.promiseHolds(pol, esc, w.head)
				if !ok && !ev.Data.Bypassed {
					return fmt.Sprintf("step %d: merge of %s not recorded as a bypass although %s\n%s", step, w.head[36:], why, strings.Join(w.log, "\n"))
				}
			}
			esc = apply(esc, ev)
		}
		for _, ef := range efs {
			if ef.Kind == EffectStatus {
				w.status[ef.SHA] = ef.Status
			}
		}
		if merge {
			w.mrState = "merged"
			break
		}
		if isMR && in.MR.Action == MRClose {
			w.mrState = "closed"
		} else if isMR {
			w.mrState = "opened"
		}
		// A closed MR cannot be merged: its gate is checked again when it
		// is reopened.
		if esc != nil && w.head != "" && w.mrState != "closed" && w.status[w.head] == StatusSuccess {
			if ok, why := w.promiseHolds(pol, esc, w.head); !ok {
				return fmt.Sprintf("step %d: the gate is success on %s although %s (state %s, tier %s)\n%s", step, w.head[36:], why, esc.State, esc.Tier, strings.Join(w.log, "\n"))
			}
		}
	}
	return ""
}

func tierID(t *policies.Tier) string {
	if t == nil {
		return "none"
	}
	return t.ID
}

// promiseHolds is the oracle: may the gate be green on head, given what
// happened? It reads the projection only for its tier (raised or re-tiered
// by the rules under test, and checked here against the classification).
func (w *gateWorld) promiseHolds(pol *policies.Policy, esc *Escalation, head string) (bool, string) {
	if esc.State == StateWithdrawn && w.withdrawn != "" {
		if w.withdrawn == head && w.class == nil {
			return true, ""
		}
		return false, fmt.Sprintf("it was withdrawn on %s, and the head %s classifies as %s", short(w.withdrawn), short(head), tierID(w.class))
	}
	t := pol.Tier(esc.Tier)
	if t == nil {
		return false, "no tier"
	}
	if policies.Higher(w.class, t) && !w.retierAt[head] {
		return false, fmt.Sprintf("the head classifies as %s, above the escalation's %s", w.class.ID, t.ID)
	}
	for _, k := range t.Artifacts {
		if !w.artifacts[k] {
			return false, "artifact " + k + " is missing"
		}
	}
	authors := append([]string{"ann"}, w.committers...)
	wroteIt := func(p string) bool {
		return slices.Contains(authors, p) || slices.ContainsFunc(authors, func(a string) bool { return strings.EqualFold(a, gateEmails[p]) })
	}
	valid := func(d gateDecision) bool {
		if wroteIt(d.by) || d.by == w.filer {
			return false
		}
		return d.sha == head || !t.ResetApprovalsOnPush
	}
	// The risk ceiling.
	if t.MaxResidualRisk > 0 {
		if w.risk == nil || wroteIt(w.risk.by) {
			return false, "no residual risk recorded by someone other than an author"
		}
		if w.risk.score > t.MaxResidualRisk && !slices.ContainsFunc(w.approvals, func(d gateDecision) bool {
			return valid(d) && slices.Contains(gateGroups["leads"], d.by) && !d.at.Before(w.risk.at)
		}) {
			return false, fmt.Sprintf("the risk %d is above %d and nobody with the risk-acceptance role accepted it", w.risk.score, t.MaxResidualRisk)
		}
	}
	// An arbiter's approval settles a dispute, never the matrix below.
	// The approvals matrix: distinct valid approvers per row (the test
	// policy's rows take disjoint groups, so counting per row is exact).
	for _, row := range t.Approvals {
		var who []string
		for _, d := range w.approvals {
			if valid(d) && slices.Contains(gateGroups[row.Group], d.by) && !slices.Contains(who, d.by) {
				who = append(who, d.by)
			}
		}
		if len(who) < row.Count {
			return false, fmt.Sprintf("%s has %d of %d valid approvals from %s", t.ID, len(who), row.Count, row.Group)
		}
	}
	return true, ""
}

func short(s string) string {
	if len(s) > 4 {
		return s[len(s)-4:]
	}
	return s
}
