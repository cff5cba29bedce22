package bot

import (
	"context"
	"errors"
	"fmt"
	"hash/fnv"
	"log/slog"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/threatgate/threatgate/policies"
)

// Engine turns inputs into committed decisions: it loads the escalation,
// asks decide what happens, and hands events, projection and effects to
// the store in one call. It is safe for concurrent use; inputs for the
// same MR or escalation are serialised, others run in parallel.
type Engine struct {
	store  Store
	policy atomic.Pointer[policies.Policy]
	clock  Clock
	log    *slog.Logger
	locks  [64]sync.Mutex
	sinks  map[string][]string // sink class -> the sinks that deliver it

	// OnCommit, when set, is called after every commit that queued
	// effects (serve wakes the dispatcher with it).
	OnCommit func()

	// ticked is the policy the open escalations' NextTick were last
	// computed under (Tick recomputes them when it changed).
	ticked atomic.Pointer[policies.Policy]
	// build identifies the running binary (SetBuild); "" when unknown.
	build string
}

// SetSinks says which sinks deliver each class of effect (SinkForge,
// SinkChat, SinkPager): an effect is queued once per sink of its class,
// and not at all when its class has none. Without SetSinks every class is
// delivered by the sink named like it. Call it before the first Handle.
func (e *Engine) SetSinks(routes map[string][]string) { e.sinks = routes }

// route expands effects into one record per sink that delivers them.
func (e *Engine) route(effects []Effect) []Effect {
	if e.sinks == nil {
		return effects
	}
	var out []Effect
	for _, ef := range effects {
		for _, name := range e.sinks[SinkClass(ef.Kind)] {
			c := ef
			c.Sink = name
			out = append(out, c)
		}
	}
	return out
}

// NewEngine builds an engine over store with the policy pol.
func NewEngine(store Store, pol *policies.Policy, clock Clock, log *slog.Logger) *Engine {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	e := &Engine{store: store, clock: clock, log: log.With(LogComponent, "engine")}
	e.policy.Store(pol)
	return e
}

// Policy returns the policy in force.
func (e *Engine) Policy() *policies.Policy { return e.policy.Load() }

// SetPolicy replaces the policy for the inputs that follow.
func (e *Engine) SetPolicy(p *policies.Policy) { e.policy.Store(p) }

// Reply is what the sender of an input is told.
type Reply struct {
	Text       string
	Escalation string // the escalation the input concerned, "" for none
	Duplicate  bool   // the input's key was seen before; nothing changed
	Incident   string // the incident an incident command recorded, "" for none
}

const duplicateText = "Already done: this request was processed before."

// maxAttempts bounds retries after a concurrent change to the same
// escalation.
const maxAttempts = 5

// Handle decides on in and commits the result. A refusal is returned as a
// *Problem (nothing is written); any other error is internal. When Handle
// returns without error, the decision is durable.
func (e *Engine) Handle(ctx context.Context, in Input) (Reply, error) {
	rep, err := e.handleAt(ctx, in, time.Time{})
	if err == nil && !rep.Duplicate && in.Kind == InputCommand && in.Command != nil && in.Command.Verb == VerbAway && in.Actor.Person != "" {
		// Someone is away: the escalations waiting on them are swept now,
		// so their backups are asked without waiting for another tick.
		e.sweepWaitingOn(ctx, in.Actor.Person)
	}
	return rep, err
}

// sweepWaitingOn ticks the escalations that wait on person.
func (e *Engine) sweepWaitingOn(ctx context.Context, person string) {
	escs, err := e.store.FindWaitingOn(ctx, person)
	if err != nil {
		e.log.Error("could not read the escalations waiting on someone away", LogErr, err)
		return
	}
	now := e.clock.Now()
	for _, x := range escs {
		if _, err := e.tickOne(ctx, x.ID, now); err != nil {
			e.log.Error("tick failed", LogEscalationID, x.ID, LogErr, err)
		}
	}
}

// SetBuild names the running binary (its executable's digest, say):
// with it, and a store that keeps tick marks, a restart under the same
// policy and binary does not recompute every open escalation's next tick.
// Call it before the first Tick.
func (e *Engine) SetBuild(id string) { e.build = id }

// TickMarks is a store that remembers under which policy and binary the
// open escalations' next ticks were last computed (TickMark); store.DB is
// one.
type TickMarks interface {
	TickedUnder(ctx context.Context) (string, error)
	SetTickedUnder(ctx context.Context, mark string) error
	// ConfirmTickedUnder sets mark where PendingTickMark(mark) still
	// stands, and reports whether it did.
	ConfirmTickedUnder(ctx context.Context, mark string) (bool, error)
}

// PendingTickMark is what the store holds while a recompute under mark
// runs: a commit of a projection computed under anything else removes
// it (Commit.TickMark), so the recompute confirms mark only when no such
// commit came in meanwhile.
func PendingTickMark(mark string) string { return "pending " + mark }

// TickMark names what the open escalations' NextTick, WaitedOn and
// HeldByGroups are computed from besides the escalations: the policy (its
// bytes) and the rules (the binary). It is "" when either is unknown, and
// "" never matches: then they are always recomputed.
func TickMark(pol *policies.Policy, build string) string {
	if pol == nil || pol.Digest == "" || build == "" {
		return ""
	}
	return "policy " + pol.Digest + " build " + build
}

// retickUnlessMarked is retick, skipped when the store's tick mark says
// the open escalations were last recomputed under pol by this binary.
// Before a retick the mark becomes PendingTickMark, and after it the mark
// is confirmed only if still pending: a retick cut short (a crash, an
// error) is done again by the next start whatever its policy, and so is
// one during which a projection computed under another policy or binary
// was committed (the store removed the pending mark then).
func (e *Engine) retickUnlessMarked(ctx context.Context, pol *policies.Policy, now time.Time) error {
	tm, _ := e.store.(TickMarks)
	mark := TickMark(pol, e.build)
	if tm != nil && mark != "" {
		have, err := tm.TickedUnder(ctx)
		if err != nil {
			return fmt.Errorf("read the tick mark: %w", err)
		}
		if have == mark {
			return nil
		}
	}
	if tm != nil {
		pending := ""
		if mark != "" {
			pending = PendingTickMark(mark)
		}
		if err := tm.SetTickedUnder(ctx, pending); err != nil {
			return fmt.Errorf("clear the tick mark: %w", err)
		}
	}
	if err := e.retick(ctx, pol, now); err != nil {
		return err
	}
	if tm != nil && mark != "" {
		ok, err := tm.ConfirmTickedUnder(ctx, mark)
		if err != nil {
			return fmt.Errorf("set the tick mark: %w", err)
		}
		if !ok {
			e.log.Info("the open escalations' next ticks were recomputed while another policy or binary committed; the next start recomputes them again")
		}
	}
	return nil
}

// retick recomputes the NextTick, WaitedOn and HeldByGroups of every open
// escalation under pol (the policy changed: a tier may now page, hand off
// or send updates, other people may be waited on): one read
// of the open index per policy change, a commit only where it differs.
func (e *Engine) retick(ctx context.Context, pol *policies.Policy, now time.Time) error {
	open, err := e.store.FindOpen(ctx)
	if err != nil {
		return fmt.Errorf("recompute next ticks: %w", err)
	}
	for _, x := range open {
		next, waited := NextTick(x, pol, now), WaitingOn(x, pol)
		groups := HeldGroups(x, pol, waited)
		if next.Equal(x.NextTick) && slices.Equal(waited, x.WaitedOn) && slices.Equal(groups, x.HeldByGroups) {
			continue
		}
		mu := &e.locks[e.lockIndex(Input{Escalation: x.ID})]
		mu.Lock()
		p := x.Clone()
		p.NextTick, p.WaitedOn, p.HeldByGroups = next, waited, groups
		_, err := e.store.Commit(ctx, &Commit{Escalation: p, Expect: x.Version, At: now, TickMark: TickMark(pol, e.build)})
		mu.Unlock()
		if err != nil && !errors.Is(err, ErrConflict) {
			return fmt.Errorf("recompute the next tick of %s: %w", x.ID, err)
		}
	}
	return nil
}

// handleAt is Handle deciding at now (the clock's time when zero).
func (e *Engine) handleAt(ctx context.Context, in Input, now time.Time) (Reply, error) {
	pol := e.Policy()
	if err := e.identify(pol, &in); err != nil {
		return Reply{}, err
	}
	if in.Kind == InputCommand && in.Command != nil && in.Command.Verb == VerbBacklog {
		if in.Actor.Person == "" || pol.Person("id", in.Actor.Person) == nil {
			return Reply{}, problemf(verbField(VerbBacklog), "you (%s) are not in the policy's people, so threatgate shows you no escalations; ask the security team to add you", in.Actor)
		}
		return e.backlog(ctx, pol)
	}
	mu := &e.locks[e.lockIndex(in)]
	mu.Lock()
	defer mu.Unlock()
	for attempt := 1; ; attempt++ {
		reply, err := e.once(ctx, pol, in, now)
		if errors.Is(err, ErrConflict) && attempt < maxAttempts {
			e.log.Debug("conflict, deciding again", LogAttempt, attempt)
			continue
		}
		return reply, err
	}
}

// identify fills in the actor's person id from the policy when the adapter
// gave only the surface id.
func (e *Engine) identify(pol *policies.Policy, in *Input) error {
	switch in.Kind {
	case InputMR:
		if in.MR == nil || in.MR.MR == nil {
			return fmt.Errorf("handle: MR input without a merge request")
		}
		if in.Actor.Surface == "" {
			in.Actor = System
		}
	case InputCommand:
		if in.Command == nil {
			return fmt.Errorf("handle: command input without a command")
		}
		// GitLab comments are attributed by the worker, by numeric user id
		// read from the API; a username alone never names a person.
		if in.Actor.Person == "" && in.Actor.ExternalID != "" && in.Actor.Surface != "gitlab" {
			if p := pol.Person(in.Actor.Surface, in.Actor.ExternalID); p != nil {
				in.Actor.Person = p.ID
			}
		}
	case InputTick:
		if in.Actor.Surface == "" {
			in.Actor = System
		}
	default:
		return fmt.Errorf("handle: unknown input kind %q", in.Kind)
	}
	return nil
}

func (e *Engine) lockIndex(in Input) int {
	h := fnv.New32a()
	switch {
	case in.MR != nil && in.MR.MR != nil:
		fmt.Fprintf(h, "%s!%d", in.MR.MR.Project(), in.MR.MR.IID)
	case in.Command != nil && in.Command.Verb == VerbEscalate:
		fmt.Fprintf(h, "%s!%d", in.Command.MR.Project, in.Command.MR.IID)
	case in.Command != nil && (in.Command.Verb == VerbIncident || in.Command.Verb == VerbIncidentFixed):
		// Incidents belong to no escalation: one stripe for all, so two
		// commands about one incident never race.
		h.Write([]byte("incidents"))
	case in.Command != nil && in.Command.Escalation != "":
		h.Write([]byte(in.Command.Escalation))
	default:
		h.Write([]byte(in.Escalation))
	}
	return int(h.Sum32() % uint32(len(e.locks)))
}

func (e *Engine) once(ctx context.Context, pol *policies.Policy, in Input, now time.Time) (Reply, error) {
	if now.IsZero() {
		now = e.clock.Now()
	}
	if in.Key != "" {
		seen, err := e.store.SeenKey(ctx, in.Key, now)
		if err != nil {
			return Reply{}, err
		}
		if seen {
			return Reply{Duplicate: true, Text: duplicateText}, nil
		}
	}
	g, err := e.load(ctx, in)
	if err != nil {
		return Reply{}, err
	}
	events, effects, proj, err := decideProjection(g, pol, in, now)
	if err != nil {
		return Reply{}, err
	}
	var replies []string
	var queued []Effect
	for _, ef := range effects {
		if ef.Kind == EffectReply {
			replies = append(replies, ef.Text)
		} else {
			queued = append(queued, ef)
		}
	}
	reply := Reply{}
	if g.Esc != nil {
		reply.Escalation = g.Esc.ID
	}
	if len(events) == 0 && len(queued) == 0 {
		reply.Text = strings.Join(replies, "\n")
		if in.Kind == InputTick && g.Esc != nil {
			// Nothing to do yet (a reminder waits for someone's working
			// day): only when to look again changes.
			if next := NextTickAfter(g.Esc, pol, now); !next.Equal(g.Esc.NextTick) {
				p := g.Esc.Clone()
				p.NextTick = next
				if _, err := e.store.Commit(ctx, &Commit{Escalation: p, Expect: g.Esc.Version, At: now, TickMark: TickMark(pol, e.build)}); err != nil {
					return Reply{}, err
				}
			}
		}
		return reply, nil
	}
	queued = e.route(queued)
	c := &Commit{Events: events, Effects: queued, Key: in.Key, At: now, Inbox: in.Inbox, TickMark: TickMark(pol, e.build)}
	touched := slices.ContainsFunc(events, func(ev Event) bool { return !ev.Kind.Personal() })
	if touched {
		proj.Waiting = Waiting(proj, pol)
		proj.WaitedOn = WaitingOn(proj, pol)
		proj.HeldByGroups = HeldGroups(proj, pol, proj.WaitedOn)
		proj.NextTick = NextTick(proj, pol, now)
		if in.Kind == InputTick {
			proj.NextTick = NextTickAfter(proj, pol, now)
		}
		c.Escalation = proj
		if g.Esc != nil {
			c.Expect = g.Esc.Version
		}
	}
	saved, err := e.store.Commit(ctx, c)
	switch {
	case errors.Is(err, ErrDuplicate):
		reply.Duplicate = true
		reply.Text = duplicateText
		return reply, nil
	case err != nil:
		return Reply{}, err
	}
	id := reply.Escalation
	if saved != nil {
		id = saved.ID
		reply.Escalation = id
	}
	reply.Text = strings.ReplaceAll(strings.Join(replies, "\n"), IDPlaceholder, id)
	for _, ev := range events {
		if ev.Kind == EventIncident {
			reply.Incident = ev.Data.Incident
		}
	}
	e.log.Info("committed", LogEscalationID, id, LogEvents, len(events), LogEffects, len(queued))
	if e.OnCommit != nil && len(queued) > 0 {
		e.OnCommit()
	}
	return reply, nil
}

// load reads what decide needs for in.
func (e *Engine) load(ctx context.Context, in Input) (Given, error) {
	var g Given
	var err error
	switch {
	case in.Kind == InputMR:
		mr := in.MR.MR
		g.Esc, err = e.store.FindByMR(ctx, mr.Project(), mr.IID)
	case in.Kind == InputCommand && in.Command.Verb == VerbEscalate:
		c := in.Command
		g.Esc, err = e.store.FindByMR(ctx, c.MR.Project, c.MR.IID)
		if err == nil || errors.Is(err, ErrNotFound) {
			var qerr error
			g.Quota, qerr = e.store.Quota(ctx, in.Actor.Person, Quarter(e.clock.Now()))
			if qerr != nil {
				return g, fmt.Errorf("load quota of %s: %w", in.Actor.Person, qerr)
			}
		}
	case in.Kind == InputCommand && (in.Command.Verb == VerbIncident || in.Command.Verb == VerbIncidentFixed):
		return e.loadIncident(ctx, in)
	case in.Kind == InputCommand && (in.Command.Verb == VerbOverrideCap || in.Command.Verb == VerbAway):
		return g, nil // about a person, not the thread's escalation
	case in.Kind == InputTick:
		if g.Away, err = e.store.Away(ctx, e.clock.Now()); err != nil {
			return g, fmt.Errorf("load who is away: %w", err)
		}
		if g.Esc, err = e.store.FindEscalation(ctx, in.Escalation); err != nil && !errors.Is(err, ErrNotFound) {
			return g, fmt.Errorf("load escalation: %w", err)
		}
		return g, nil
	default:
		id := in.Escalation
		if in.Command != nil && in.Command.Escalation != "" {
			id = in.Command.Escalation
		}
		if id == "" {
			return g, nil
		}
		g.Esc, err = e.store.FindEscalation(ctx, id)
		if err == nil && in.Command != nil && in.Command.Verb == VerbDefer {
			if g.OpenCount, err = e.store.CountOpen(ctx); err != nil {
				return g, fmt.Errorf("count open escalations: %w", err)
			}
		}
		if err == nil && in.Command != nil && in.Command.Verb == VerbIntake && g.Esc.Filer != "" {
			// Filing counts against the filer's cap.
			if g.Quota, err = e.store.Quota(ctx, g.Esc.Filer, Quarter(e.clock.Now())); err != nil {
				return g, fmt.Errorf("load quota of %s: %w", g.Esc.Filer, err)
			}
		}
	}
	if errors.Is(err, ErrNotFound) {
		return g, nil
	}
	if err != nil {
		return g, fmt.Errorf("load escalation: %w", err)
	}
	return g, nil
}

// loadIncident reads what the incident verbs need: for incident the MR's
// escalation and a new id (only for a person of the policy, so that a
// refusal wastes none); for incident-fixed the incident.
func (e *Engine) loadIncident(ctx context.Context, in Input) (Given, error) {
	var g Given
	is, ok := e.store.(IncidentStore)
	if !ok {
		return g, errors.New("incident: the store cannot record incidents")
	}
	c := in.Command
	if in.Actor.Person == "" || e.Policy().Person("id", in.Actor.Person) == nil {
		return g, nil // decide refuses it
	}
	if c.Verb == VerbIncidentFixed {
		inc, err := is.FindIncident(ctx, c.Incident)
		if err != nil && !errors.Is(err, ErrNotFound) {
			return g, fmt.Errorf("load incident %s: %w", c.Incident, err)
		}
		g.Incident = inc
		return g, nil
	}
	esc, err := e.store.FindByMR(ctx, c.MR.Project, c.MR.IID)
	if err != nil && !errors.Is(err, ErrNotFound) {
		return g, fmt.Errorf("load escalation: %w", err)
	}
	g.Esc = esc
	if g.IncidentID, err = is.NextIncident(ctx); err != nil {
		return g, fmt.Errorf("allocate an incident id: %w", err)
	}
	return g, nil
}

// TickBatch bounds how many escalations one Tick handles; the next sweep
// takes the rest.
const TickBatch = 500

// Tick sweeps the escalations whose time has come at now (their NextTick,
// through the store's tick index, and deferrals that have ended): each is
// fed through decide as a time input (sweep.go says what the clock does).
// It reads only those, so a sweep that finds nothing reads nothing else.
// It returns how many it looked at. A rerun at the same now changes
// nothing.
// Errors for one escalation are logged and skipped; the last one is
// returned.
func (e *Engine) Tick(ctx context.Context, now time.Time) (int, error) {
	if pol := e.Policy(); e.ticked.Load() != pol {
		// First tick, or a new policy: what the clock has to do with the
		// open escalations may have changed, unless the store says they
		// were computed under this very policy and binary.
		if err := e.retickUnlessMarked(ctx, pol, now); err != nil {
			return 0, err
		}
		e.ticked.Store(pol)
	}
	ids, err := e.store.TicksDue(ctx, now, TickBatch)
	if err != nil {
		return 0, fmt.Errorf("tick: %w", err)
	}
	deferred, err := e.store.DeferralsDue(ctx, now, TickBatch)
	if err != nil {
		return 0, fmt.Errorf("tick: %w", err)
	}
	for _, id := range deferred {
		if !slices.Contains(ids, id) {
			ids = append(ids, id)
		}
	}
	moved := 0
	var last error
	for _, id := range ids {
		rep, err := e.tickOne(ctx, id, now)
		if err != nil {
			e.log.Error("tick failed", LogEscalationID, id, LogErr, err)
			last = err
			continue
		}
		if !rep.Duplicate {
			moved++
		}
	}
	return moved, last
}

// Answer is the answer to a command sent where there is no synchronous
// reply (an MR comment): a note on the MR, mentioning its author.
type Answer struct {
	Project string
	MRIID   int64
	Mention string // the GitLab username to mention, "" for none
	Key     string // once per key: a second Answer with it changes nothing
	Text    string
}

// Answer queues a as an MR note through the outbox, like every other
// effect: retried while GitLab is down, posted once. Adapters do not write
// to the store themselves.
func (e *Engine) Answer(ctx context.Context, a Answer) error {
	if a.Text == "" {
		return nil
	}
	ef := Effect{Kind: EffectMRNote, Project: a.Project, MRIID: a.MRIID, Notice: &Notice{Kind: NoticeAnswer, Text: a.Text}}
	if a.Mention != "" {
		ef.Mention = []string{a.Mention}
	}
	if _, err := e.store.Commit(ctx, &Commit{Effects: e.route([]Effect{ef}), Key: a.Key, At: e.clock.Now()}); err != nil && !errors.Is(err, ErrDuplicate) {
		return fmt.Errorf("queue the answer %s: %w", a.Key, err)
	}
	if e.OnCommit != nil {
		e.OnCommit()
	}
	return nil
}

// tickOne feeds one escalation's tick through the engine; a panic is
// recovered and returned as an error, so one poison escalation does not
// stop the loop (or the server).
func (e *Engine) tickOne(ctx context.Context, id string, now time.Time) (rep Reply, err error) {
	defer func() {
		if r := recover(); r != nil {
			err = fmt.Errorf("tick of %s panicked: %s", id, PanicReason(r))
		}
	}()
	return e.handleAt(ctx, Input{Kind: InputTick, Actor: System, Escalation: id}, now)
}

// BacklogLimit is how many escalations /threatgate backlog lists: the
// most urgent; the answer says how many more there are.
const BacklogLimit = 50

// urgentReader is what a store offers to read the most urgent open
// escalations without reading them all (store.DB has it).
type urgentReader interface {
	MostUrgent(ctx context.Context, limit int) (open, deferred []*Escalation, err error)
}

// backlog answers /threatgate backlog: the BacklogLimit most urgent open
// escalations (read through the store's deadline index when it can),
// and how many more.
func (e *Engine) backlog(ctx context.Context, pol *policies.Policy) (Reply, error) {
	now := e.clock.Now()
	u, ok := e.store.(urgentReader)
	if !ok {
		open, err := e.store.FindOpen(ctx)
		if err != nil {
			return Reply{}, fmt.Errorf("backlog: %w", err)
		}
		return Reply{Text: BacklogText(open, pol, now)}, nil
	}
	open, deferred, err := u.MostUrgent(ctx, BacklogLimit)
	if err != nil {
		return Reply{}, fmt.Errorf("backlog: %w", err)
	}
	waiting, err := e.store.CountOpen(ctx)
	if err != nil {
		return Reply{}, fmt.Errorf("backlog: %w", err)
	}
	list := append(open, deferred...)
	text := BacklogText(list, pol, now)
	if more := waiting - len(open); more > 0 {
		text = strings.TrimRight(text, "\n") + fmt.Sprintf("\n... and %d more waiting; the dashboard's All escalations page lists them all (open=true).\n", more)
	}
	return Reply{Text: text}, nil
}
