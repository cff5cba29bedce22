package bot

import (
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/threatgate/threatgate/policies"
)

// Given is what the engine loaded before a decision.
type Given struct {
	Esc   *Escalation // nil when there is no escalation yet
	Quota Quota       // the actor's quota this quarter; read for /escalate only
	// Away lists the people recorded as away at now (person -> until),
	// read for the sweep's ticks only; the policy's away_until adds to it.
	Away map[string]time.Time
	// OpenCount is how many escalations are open (State.Active, this one
	// included), read for /threatgate defer only: the backlog's peak
	// decides whether a deferral is allowed.
	OpenCount int
	// IncidentID is the id the store allocated for a new incident, read
	// for /threatgate incident only (IDs.NextIncident).
	IncidentID string
	// Incident is the incident named by /threatgate incident-fixed, nil
	// when there is none; read for that verb only.
	Incident *IncidentRecord
}

// IDPlaceholder stands for the escalation id in texts written before the
// store has assigned one; Effect.Body and the engine replace it.
const IDPlaceholder = "{esc}"

// maxDeferral bounds how far a deferral may reach, whatever the policy's
// backlog.max_deferral says.
const maxDeferral = policies.DeferralLimit

// decide returns what happens when in arrives, given what is known. It is
// pure: time comes in as now, and nothing is read or written. A refusal is
// a *Problem and comes with no events; an input that changes nothing
// returns no events and perhaps a reply effect.
func decide(g Given, pol *policies.Policy, in Input, now time.Time) ([]Event, []Effect, error) {
	events, effects, _, err := decideProjection(g, pol, in, now)
	return events, effects, err
}

// decideProjection is decide that also returns the projection its events
// leave (g.Esc when they touch no escalation), so that the engine does not
// apply them a second time.
func decideProjection(g Given, pol *policies.Policy, in Input, now time.Time) ([]Event, []Effect, *Escalation, error) {
	d := &decision{g: g, pol: pol, in: in, now: now, esc: g.Esc}
	var err error
	switch in.Kind {
	case InputMR:
		err = d.mr()
	case InputCommand:
		err = d.command()
	case InputTick:
		d.tick()
	default:
		return nil, nil, nil, fmt.Errorf("decide: unknown input kind %q", in.Kind)
	}
	if err != nil {
		return nil, nil, nil, err
	}
	d.settle()
	statusFirst(d.effects)
	return d.events, d.effects, d.esc, nil
}

// statusFirst puts the commit status first among a decision's forge
// effects (the gate before its notes and labels), keeping every other
// effect where it is.
func statusFirst(effs []Effect) {
	var forge []Effect
	var at []int
	for i, e := range effs {
		if SinkClass(e.Kind) == SinkForge {
			forge, at = append(forge, e), append(at, i)
		}
	}
	rank := func(e Effect) int {
		if e.Kind == EffectStatus {
			return 0
		}
		return 1
	}
	slices.SortStableFunc(forge, func(a, b Effect) int { return rank(a) - rank(b) })
	for j, i := range at {
		effs[i] = forge[j]
	}
}

type decision struct {
	g   Given
	pol *policies.Policy
	in  Input
	now time.Time

	esc     *Escalation // the projection as the events so far leave it
	events  []Event
	effects []Effect
}

func (d *decision) actor() string {
	if d.in.Actor.Person != "" {
		return d.in.Actor.Person
	}
	return d.in.Actor.String()
}

func (d *decision) id() string {
	if d.esc != nil && d.esc.ID != "" {
		return d.esc.ID
	}
	return IDPlaceholder
}

// emit records an event and folds it into d.esc.
func (d *decision) emit(kind EventKind, data EventData) {
	ev := Event{Kind: kind, Actor: d.actor(), At: d.now, Data: data}
	if d.esc != nil {
		ev.Escalation = d.esc.ID
		ev.SHA = d.esc.HeadSHA
	}
	if kind == EventOpened || kind == EventMRUpdated {
		if d.in.MR != nil && d.in.MR.MR != nil && d.in.MR.MR.SHA != "" {
			ev.SHA = d.in.MR.MR.SHA
		}
	}
	if kind.Personal() {
		// About a person, not this escalation (when the command came
		// from its thread): no id, and nothing folded into it.
		ev.Escalation, ev.SHA = "", ""
	} else {
		d.esc = apply(d.esc, ev)
	}
	d.events = append(d.events, ev)
}

func (d *decision) effect(e Effect) {
	if d.esc != nil {
		e.Escalation = d.esc.ID
		if e.Project == "" {
			e.Project, e.MRIID = d.esc.Project, d.esc.MRIID
		}
	}
	d.effects = append(d.effects, e)
}

func (d *decision) reply(format string, args ...any) {
	d.effects = append(d.effects, Effect{Kind: EffectReply, Text: fmt.Sprintf(format, args...)})
}

func (d *decision) tier() *policies.Tier {
	if d.esc == nil {
		return nil
	}
	return d.pol.Tier(d.esc.Tier)
}

func (d *decision) command() error {
	c := d.in.Command
	if c == nil {
		return fmt.Errorf("decide: command input without a command")
	}
	sp := spec(c.Verb)
	switch {
	case sp == nil:
		return problemf("/threatgate", "unknown verb %q; %s", c.Verb, HelpText(""))
	case c.Verb == VerbHelp:
		d.reply("%s", HelpText(Verb(c.Text)))
		return nil
	case !sp.anyone:
		if err := d.known(c); err != nil {
			return err
		}
	}
	if !sp.escalation {
		return sp.decide(d, c)
	}
	f := verbField(c.Verb)
	switch e := d.esc; {
	case e == nil:
		return d.noEscalation(c)
	case e.State.Ended() && !sp.afterEnd:
		return problemf(f, "%s is %s; only dissent and action items can still be recorded", e.ID, e.State)
	case e.State == StateIntake && !sp.inIntake:
		return problemf(f, "%s is not filed yet: %s must answer its intake first:%s", e.ID, e.Filer, intakePrompts(d.missingIntake(e.Intake)))
	case sp.tier && e.Tier != "" && d.tier() == nil:
		// The policy changed under an open escalation: its tier is gone.
		// Nothing is decided against a tier that does not exist; an
		// authorised person puts it in one that does.
		return problemf(f, "%s's tier %s is no longer in the policy; someone in %s must first re-tier it with /threatgate retier %s <%s> <rationale>",
			e.ID, e.Tier, strings.Join(d.pol.Authority.Retier, ", "), e.ID, strings.Join(d.tierIDs(), "|"))
	case sp.head && d.in.Head != "" && d.in.Head != e.HeadSHA:
		return problemf(f, "the merge request moved from %s to %s since you wrote this; review the new commits and write the command again", shortSHA(d.in.Head), shortSHA(e.HeadSHA))
	case sp.head && d.in.Head == "" && !d.in.WrittenAt.IsZero() && e.HeadSince.After(d.in.WrittenAt):
		return problemf(f, "the merge request moved to %s at %s, after you wrote this; review the new commits and write the command again", shortSHA(e.HeadSHA), e.HeadSince.UTC().Format("15:04:05 MST"))
	}
	if !d.in.WrittenAt.IsZero() {
		if err := CommandFresh(c.Verb, d.in.WrittenAt, d.now, d.now); err != nil {
			return err
		}
	}
	return sp.decide(d, c)
}

// VerbField names a verb's command as the user typed it, for Problems.
func VerbField(v Verb) string { return verbField(v) }

func verbField(v Verb) string {
	switch v {
	case VerbEscalate:
		return "/escalate"
	case VerbApprove:
		return "/approve"
	}
	return "/threatgate " + string(v)
}

func (d *decision) noEscalation(c *Command) error {
	if c.Escalation != "" {
		return problemf(verbField(c.Verb), "no escalation %s; try /threatgate backlog", c.Escalation)
	}
	return problemf(verbField(c.Verb), "which escalation? name it (for example %s ESC-12 ...) or use the command in the escalation's thread", verbField(c.Verb))
}

// known refuses commands from people the policy does not know.
func (d *decision) known(c *Command) error {
	p := d.in.Actor.Person
	if p == "" || d.pol.Person("id", p) == nil {
		return problemf(verbField(c.Verb), "you (%s) are not in the policy's people, so threatgate cannot tell which groups you belong to; ask the security team to add you", d.in.Actor)
	}
	return nil
}

func (d *decision) person() *policies.Person { return d.pol.Person("id", d.in.Actor.Person) }

// isAuthor reports whether the actor wrote the MR or one of its commits.
func (d *decision) isAuthor() bool { return wrote(d.person(), d.esc.Authors()) }

func shortSHA(s string) string {
	if s == "" {
		return "(no commit yet)"
	}
	return ShortSHA(s)
}
