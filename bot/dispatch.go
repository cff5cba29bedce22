package bot

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"runtime/debug"
	"time"
)

// Outbox is what the dispatcher needs of the store.
type Outbox interface {
	// DueQueues returns the effects due at now: the first of each
	// delivery queue (sink, escalation), each followed by up to depth of
	// the effects behind it in its queue (OutboxRecord.Behind), and parked
	// ones whose retry is due. limit <= 0 means all.
	DueQueues(ctx context.Context, now time.Time, limit, depth int) ([]OutboxRecord, error)
	// SettleEffects records the outcomes of a round of deliveries in one
	// transaction, in order: a done effect is removed (the next of its
	// queue becomes due), a failed one rescheduled (with Park it leaves
	// its queue, which goes on without it, and is retried on its own),
	// and a thread an effect opened is recorded. Effects no longer
	// waiting are skipped. Nothing of it is written when it fails.
	SettleEffects(ctx context.Context, outcomes []Outcome) error
}

// Outcome is what became of one due effect in a round of deliveries.
type Outcome struct {
	ID string
	// Failed: the delivery failed; try again at Next (Err says why; Park
	// takes the effect out of its queue). Otherwise the effect is done:
	// delivered, superseded or set aside.
	Failed bool
	Next   time.Time
	Err    string
	Park   bool
	// Thread, when not zero, is the thread this effect opened for
	// Escalation on Sink: recorded with the outcome (Threads), so every
	// later post of the escalation lands in it.
	Thread     MessageRef
	Escalation string
	Sink       string
}

// Threads remembers where each escalation's thread is on each chat sink,
// so that every post lands in the same thread, across restarts. The
// dispatcher reads it; the thread a delivery opened is recorded with that
// delivery's outcome (Outbox.SettleEffects), in the same transaction.
type Threads interface {
	ThreadRef(ctx context.Context, esc, sink string) (MessageRef, error)
	SetThreadRef(ctx context.Context, esc, sink string, ref MessageRef) error
}

// Sink delivers effects to one surface: GitLab, a chat surface, the pager.
// e.ID is the idempotency key (a retried delivery must not act twice) and
// e.Thread where the escalation's thread is on this sink (zero when none
// yet). It returns where the message went (chat), the zero MessageRef
// otherwise. An error with a RetryAfter() time.Duration method asks for
// that wait; one with Permanent() bool returning true parks the effect
// (see DeliveryError).
type Sink interface {
	Deliver(ctx context.Context, e Effect) (MessageRef, error)
}

// DeliveryError is a failed delivery that says what to do about it.
type DeliveryError struct {
	Err error
	// Permanent: retrying soon will not help (401, 403, 404, 422); the
	// effect is retried every few hours and holds nothing up.
	Permanent bool
	// After: wait at least this long (a rate limit's Retry-After).
	After time.Duration
}

func (e *DeliveryError) Error() string {
	if e.Err == nil {
		return "delivery failed"
	}
	return e.Err.Error()
}
func (e *DeliveryError) Unwrap() error             { return e.Err }
func (e *DeliveryError) RetryAfter() time.Duration { return e.After }

// IsPermanent reports whether retrying soon will not help.
func (e *DeliveryError) IsPermanent() bool { return e.Permanent }

// Dispatcher delivers the outbox through sinks: commit statuses, MR notes
// and labels to the forge, thread posts to each chat surface, pages to the
// pager. The outbox keeps one queue per (sink, escalation): a queue is
// delivered in the order its effects were decided, and one sink's outage
// delays only that sink's queues. Every delivery carries the effect's id
// as its idempotency key; failures are retried with backoff (or after the
// time a rate limit names). A panic while delivering one effect is
// recovered: the effect is set aside as a dead letter and the pass goes on.
type Dispatcher struct {
	outbox Outbox
	sinks  map[string]Sink
	clock  Clock
	log    *slog.Logger
	wake   chan struct{}

	// OnResult, when set, is told of every delivery attempt (for metrics).
	OnResult func(kind EffectKind, err error)
	// Refresher reads an MR from the forge and feeds it to the engine, for
	// EffectRefresh (a manual escalation learns its MR's title, head and
	// authors, and gets its gate). Used by the forge sink that
	// NewDispatcher builds; nil: those effects are dropped.
	Refresher Refresher
	// Threads, when set, keeps each escalation's thread per chat sink.
	Threads Threads
	// DeadLetters, when set, keeps effects whose delivery panicked.
	DeadLetters DeadLetters
}

// Refresher reads the MR of an effect (Project, MRIID) as the forge shows
// it now and hands it to the engine as an MR input, as a webhook would.
// An MR the forge does not have is no error: its webhook will come.
type Refresher interface {
	Refresh(ctx context.Context, e Effect) error
}

// Backoff bounds.
const (
	minBackoff = time.Second
	maxBackoff = 5 * time.Minute
)

// permanentRetry is how long an effect that failed for a reason retrying
// will not fix (a 401, 403, 404 or 422) waits: long enough not to hammer
// GitLab, short enough that it goes out once an operator has fixed the
// token or the permission. It holds none of its queue's other effects.
const permanentRetry = 6 * time.Hour

// permanentMark starts the LastError of an effect that failed for good.
const permanentMark = "permanent: "

// runDepth is how many effects behind a queue's head one round delivers
// (when everything ahead of them went out), so that one decision's
// effects go out, and are recorded, in one round.
const runDepth = 15

// maxRounds bounds the rounds of one DeliverDue: each round delivers the
// heads of the queues, which makes the next effect of each queue due.
const maxRounds = 64

// NewDispatcher builds a dispatcher over the classic three integrations:
// forge (sink "forge", with d.Refresher for refresh effects), chat ("chat")
// and pager ("pager"); any may be nil, and effects for a sink that is not
// there are dropped with a log line. AddSink adds others (each chat
// surface).
func NewDispatcher(o Outbox, forge Forge, chat Chat, pager Pager, clock Clock, log *slog.Logger) *Dispatcher {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	d := &Dispatcher{outbox: o, sinks: map[string]Sink{}, clock: clock,
		log: log.With(LogComponent, "dispatcher"), wake: make(chan struct{}, 1)}
	if forge != nil {
		d.sinks[SinkForge] = &forgeSink{forge: forge, d: d}
	}
	if chat != nil {
		d.sinks[SinkChat] = chatSink{chat}
	}
	if pager != nil {
		d.sinks[SinkPager] = pagerSink{pager}
	}
	return d
}

// AddSink delivers the effects queued for name through s. Call it before
// Run.
func (d *Dispatcher) AddSink(name string, s Sink) { d.sinks[name] = s }

// Wake asks the dispatcher to look at the outbox now (after a commit).
func (d *Dispatcher) Wake() {
	select {
	case d.wake <- struct{}{}:
	default:
	}
}

// Run delivers until ctx is done, looking at the outbox when woken and at
// least every poll interval.
func (d *Dispatcher) Run(ctx context.Context, poll time.Duration) error {
	t := time.NewTicker(poll)
	defer t.Stop()
	for {
		if _, err := d.DeliverDue(ctx); err != nil && ctx.Err() == nil {
			d.log.Error("outbox pass failed", LogErr, err)
		}
		select {
		case <-ctx.Done():
			return nil
		case <-d.wake:
		case <-t.C:
		}
	}
}

// DeliverDue delivers what is due, queue by queue, until nothing more is
// due (each delivery makes the next effect of its queue due), and returns
// how many effects it delivered. It reads only due records.
//
// A round delivers the heads of the queues due at once and, behind each
// head that went out, the effects that follow it in its queue (up to
// runDepth), in order, stopping at the first that does not go out. Its
// outcomes are recorded together, in one transaction, before the next
// round reads what became due: one fsync per round, not one per effect. Until then the round's
// effects are still waiting; a crash before the transaction makes them
// go out again, with the same ids (their idempotency keys), and nothing
// recorded is lost.
func (d *Dispatcher) DeliverDue(ctx context.Context) (int, error) {
	delivered := 0
	tried := map[string]bool{} // effects attempted in this call: one try each
	for n := range maxRounds {
		if n == maxRounds-1 {
			// More may be due than one call delivers: come back at once
			// rather than at the next poll.
			defer d.Wake()
		}
		now := d.clock.Now()
		recs, err := d.outbox.DueQueues(ctx, now, 500, runDepth)
		if err != nil {
			return delivered, err
		}
		r := &round{threads: map[string]MessageRef{}, ok: map[string]bool{}}
		var derr error
		for _, rec := range recs {
			if derr = ctx.Err(); derr != nil {
				break
			}
			if tried[rec.Effect.ID] {
				continue
			}
			if rec.Behind != "" && !r.ok[rec.Behind] {
				// What is ahead of it in its queue did not go out: it
				// waits (for the next round, or the retry).
				continue
			}
			tried[rec.Effect.ID] = true
			ok, err := d.one(ctx, r, rec, now)
			if err != nil {
				derr = err
				break
			}
			if ok {
				delivered++
			}
		}
		// What was delivered is recorded even when the pass stops here.
		if err := d.outbox.SettleEffects(context.WithoutCancel(ctx), r.outcomes); err != nil {
			return delivered, err
		}
		if derr != nil {
			return delivered, derr
		}
		if len(r.outcomes) == 0 {
			break
		}
	}
	return delivered, nil
}

// round is what one round of deliveries did: the outcomes to record, and
// the threads opened in it (escalation + 0x00 + sink), which later
// deliveries of the round use before they are recorded.
type round struct {
	outcomes []Outcome
	threads  map[string]MessageRef
	ok       map[string]bool // effects done in this round: what waits behind them may go
}

func (r *round) done(id string) {
	r.outcomes = append(r.outcomes, Outcome{ID: id})
	r.ok[id] = true
}

func (r *round) failed(id string, next time.Time, text string, park bool) {
	r.outcomes = append(r.outcomes, Outcome{ID: id, Failed: true, Next: next, Err: text, Park: park})
}

// one handles one due record: drops it when superseded, delivers it, and
// adds the outcome to r. ok reports a delivery; err is the store's.
func (d *Dispatcher) one(ctx context.Context, r *round, rec OutboxRecord, now time.Time) (ok bool, err error) {
	ef := rec.Effect
	if rec.Superseded && !d.opensThread(ctx, r, ef) {
		// A newer effect of the same kind is queued: only the last
		// one matters, so this one is not sent at all.
		r.done(ef.ID)
		return false, nil
	}
	opened, derr, panicked := d.deliver(ctx, r, ef)
	if panicked != "" {
		d.log.Error("delivery panicked; effect set aside", LogEffectID, ef.ID, LogKind, ef.Kind, LogEscalationID, ef.Escalation, LogPanic, panicked)
		if d.DeadLetters == nil {
			// Nowhere to set it aside: park it, so it holds nothing up.
			r.failed(ef.ID, now.Add(permanentRetry), permanentMark+"panic: "+panicked, true)
			return false, nil
		}
		payload, _ := json.Marshal(ef)
		if err := d.DeadLetters.SetAside(ctx, DeadLetter{Kind: "effect", Ref: ef.ID, Escalation: ef.Escalation, Reason: panicked, Panic: true, At: now, Payload: payload}); err != nil {
			return false, fmt.Errorf("set aside effect %s: %w", ef.ID, err)
		}
		r.done(ef.ID)
		return false, nil
	}
	if d.OnResult != nil {
		d.OnResult(ef.Kind, derr)
	}
	if derr == nil {
		o := Outcome{ID: ef.ID}
		if opened != (MessageRef{}) {
			o.Thread, o.Escalation, o.Sink = opened, ef.Escalation, sinkOf(ef)
		}
		r.outcomes = append(r.outcomes, o)
		r.ok[ef.ID] = true
		return true, nil
	}
	next, permanent := d.retryAt(now, rec.Attempts+1, derr)
	log := d.log.With(LogEffectID, ef.ID, LogKind, ef.Kind, LogSink, ef.Sink, LogEscalationID, ef.Escalation, LogAttempt, rec.Attempts+1)
	if permanent {
		log.Error("delivery failed and will not succeed as things are; fix the cause, it is tried again later", LogRetryIn, permanentRetry, LogErr, derr)
	} else {
		log.Warn("delivery failed, will retry", LogRetryIn, next.Sub(now), LogErr, derr)
	}
	text := derr.Error()
	if permanent {
		text = permanentMark + text
	}
	r.failed(ef.ID, next, text, permanent)
	return false, nil
}

// sinkOf names the sink that delivers ef.
func sinkOf(ef Effect) string {
	if ef.Sink != "" {
		return ef.Sink
	}
	return SinkClass(ef.Kind)
}

// threadOf returns where ef's escalation's thread is on sink: opened
// earlier in this round, or recorded.
func (d *Dispatcher) threadOf(ctx context.Context, r *round, esc, sink string) (MessageRef, error) {
	if ref, ok := r.threads[esc+"\x00"+sink]; ok {
		return ref, nil
	}
	return d.Threads.ThreadRef(ctx, esc, sink)
}

// opensThread reports whether ef is a summary that opens its escalation's
// thread on its sink (none recorded yet): it goes out even when a newer
// summary is queued, so that a thread's parent message is its summary.
func (d *Dispatcher) opensThread(ctx context.Context, r *round, ef Effect) bool {
	if ef.Kind != EffectThreadSummary || ef.Escalation == "" {
		return false
	}
	if d.Threads == nil {
		return true
	}
	ref, err := d.threadOf(ctx, r, ef.Escalation, ef.Sink)
	return err != nil || ref == (MessageRef{})
}

// retryAt says when to try again after the n-th failed attempt, and
// whether the failure is permanent.
func (d *Dispatcher) retryAt(now time.Time, n int, err error) (time.Time, bool) {
	var de *DeliveryError
	if errors.As(err, &de) && de.Permanent {
		return now.Add(permanentRetry), true
	}
	var perm interface{ Permanent() bool }
	if errors.As(err, &perm) && perm.Permanent() {
		return now.Add(permanentRetry), true
	}
	var ra interface{ RetryAfter() time.Duration }
	if errors.As(err, &ra) && ra.RetryAfter() > 0 {
		return now.Add(ra.RetryAfter()), false
	}
	return now.Add(Backoff(n, minBackoff, maxBackoff)), false
}

// deliver hands ef to its sink and returns the thread it opened (a chat
// sink's first post of an escalation; zero otherwise), which later posts
// of the round use at once and SettleEffects records. A panic in the sink
// is recovered and returned as panicked (its value and stack, one line
// each).
func (d *Dispatcher) deliver(ctx context.Context, r *round, ef Effect) (opened MessageRef, err error, panicked string) {
	defer func() {
		if v := recover(); v != nil {
			opened, panicked = MessageRef{}, PanicReason(v)
			d.log.Error("panic stack", LogEffectID, ef.ID, LogStack, string(debug.Stack()))
		}
	}()
	name := sinkOf(ef)
	s := d.sinks[name]
	if s == nil {
		d.log.Debug("no sink for effect, dropped", LogEffectID, ef.ID, LogKind, ef.Kind, LogSink, name)
		return MessageRef{}, nil, ""
	}
	if ef.Escalation != "" && d.Threads != nil && SinkClass(ef.Kind) == SinkChat {
		if ef.Thread, err = d.threadOf(ctx, r, ef.Escalation, name); err != nil {
			return MessageRef{}, fmt.Errorf("deliver %s %s: %w", ef.Kind, ef.ID, err), ""
		}
	}
	ref, err := s.Deliver(ctx, ef)
	if err != nil {
		return MessageRef{}, fmt.Errorf("deliver %s %s to %s: %w", ef.Kind, ef.ID, name, err), ""
	}
	if ef.Escalation != "" && d.Threads != nil && ref != (MessageRef{}) && ef.Thread == (MessageRef{}) {
		r.threads[ef.Escalation+"\x00"+name] = ref
		return ref, nil, ""
	}
	return MessageRef{}, nil, ""
}

// forgeSink delivers forge effects through a Forge (and refreshes through
// the dispatcher's Refresher).
type forgeSink struct {
	forge Forge
	d     *Dispatcher
}

func (s *forgeSink) Deliver(ctx context.Context, e Effect) (MessageRef, error) {
	switch e.Kind {
	case EffectStatus:
		return MessageRef{}, s.forge.SetStatus(ctx, e)
	case EffectMRNote:
		return MessageRef{}, s.forge.PostNote(ctx, e)
	case EffectMRLabels:
		return MessageRef{}, s.forge.AddLabels(ctx, e)
	case EffectRefresh:
		if s.d.Refresher == nil {
			return MessageRef{}, nil
		}
		return MessageRef{}, s.d.Refresher.Refresh(ctx, e)
	}
	return MessageRef{}, &DeliveryError{Err: fmt.Errorf("the forge does not take %s effects", e.Kind), Permanent: true}
}

// chatSink delivers thread posts and summaries through a Chat.
type chatSink struct{ chat Chat }

func (s chatSink) Deliver(ctx context.Context, e Effect) (MessageRef, error) {
	if e.Kind == EffectDigest {
		// The main channel, outside any thread.
		text := RenderDigestText(e.Digest)
		if e.Report != nil {
			text = RenderReportText(e.Report)
		}
		return s.chat.Post(ctx, Message{Key: e.ID, Text: text})
	}
	return s.chat.Post(ctx, Message{Key: e.ID, Escalation: e.Escalation, Thread: e.Thread, Text: e.Body(), Mention: e.Mention,
		Security: e.Security, Summary: e.Kind == EffectThreadSummary})
}

// pagerSink raises and resolves pages through a Pager.
type pagerSink struct{ pager Pager }

func (s pagerSink) Deliver(ctx context.Context, e Effect) (MessageRef, error) {
	switch e.Kind {
	case EffectPage:
		return MessageRef{}, s.pager.Trigger(ctx, PageKey(e.Escalation), e.Body())
	case EffectResolve:
		return MessageRef{}, s.pager.Resolve(ctx, PageKey(e.Escalation))
	}
	return MessageRef{}, &DeliveryError{Err: fmt.Errorf("the pager does not take %s effects", e.Kind), Permanent: true}
}
