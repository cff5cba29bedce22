package bot

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"time"
)

// Outbox is what the dispatcher needs of the store.
type Outbox interface {
	PendingEffects(ctx context.Context, limit int) ([]OutboxRecord, error)
	EffectDone(ctx context.Context, id string) error
	EffectFailed(ctx context.Context, id string, next time.Time, errText string) error
}

// Dispatcher delivers the outbox: commit statuses, MR notes and labels to
// the forge, thread posts to chat, pages to the pager. Every delivery
// carries the effect's id as its idempotency key; failures are retried
// with backoff (or after the time a rate limit names), and an escalation's
// effects are delivered in the order they were decided: when one fails,
// the later ones of the same escalation wait for it.
type Dispatcher struct {
	outbox Outbox
	forge  Forge
	chat   Chat
	pager  Pager
	clock  Clock
	log    *slog.Logger
	wake   chan struct{}

	// OnResult, when set, is told of every delivery attempt (for metrics).
	OnResult func(kind EffectKind, err error)
	// Refresher reads an MR from the forge and feeds it to the engine, for
	// EffectRefresh (a manual escalation learns its MR's title, head and
	// authors, and gets its gate). Nil: those effects are dropped.
	Refresher Refresher
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
// token or the permission. It holds none of its escalation's other effects.
const permanentRetry = 6 * time.Hour

// permanentMark starts the LastError of an effect that failed for good.
const permanentMark = "permanent: "

// NewDispatcher builds a dispatcher. forge, chat and pager may be nil: the
// effects meant for them are then dropped with a log line, as an
// integration that is not configured cannot deliver them.
func NewDispatcher(o Outbox, forge Forge, chat Chat, pager Pager, clock Clock, log *slog.Logger) *Dispatcher {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	return &Dispatcher{outbox: o, forge: forge, chat: chat, pager: pager, clock: clock,
		log: log.With("component", "dispatcher"), wake: make(chan struct{}, 1)}
}

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
			d.log.Error("outbox pass failed", "err", err)
		}
		select {
		case <-ctx.Done():
			return nil
		case <-d.wake:
		case <-t.C:
		}
	}
}

// DeliverDue makes one pass over the outbox and returns how many effects
// it delivered.
func (d *Dispatcher) DeliverDue(ctx context.Context) (int, error) {
	recs, err := d.outbox.PendingEffects(ctx, 0)
	if err != nil {
		return 0, err
	}
	now := d.clock.Now()
	held := map[string]bool{} // escalations with an earlier effect still waiting
	delivered := 0
	for i, rec := range recs {
		if ctx.Err() != nil {
			return delivered, ctx.Err()
		}
		ef := rec.Effect
		group := ef.Escalation
		if group == "" {
			group = ef.ID // effects of no escalation are independent
		}
		if held[group] || (rec.NextAttempt.After(now) && strings.HasPrefix(rec.LastError, permanentMark)) {
			// A permanently failing effect holds nothing up: the rest of
			// its escalation still goes out.
			continue
		}
		if rec.NextAttempt.After(now) {
			held[group] = true
			continue
		}
		if (ef.Kind == EffectStatus || ef.Kind == EffectThreadSummary) && superseded(recs[i+1:], ef) {
			// A later status for the same head is queued: only the last
			// one matters, so this one is not sent at all.
			if err := d.outbox.EffectDone(ctx, ef.ID); err != nil {
				return delivered, err
			}
			continue
		}
		err := d.deliver(ctx, ef)
		if d.OnResult != nil {
			d.OnResult(ef.Kind, err)
		}
		if err == nil {
			if err := d.outbox.EffectDone(ctx, ef.ID); err != nil {
				return delivered, err
			}
			delivered++
			if ef.Kind == EffectStatus || ef.Kind == EffectThreadSummary {
				// An older one still waiting (a permanent failure being
				// retried later) must never land after this one.
				for _, old := range recs[:i] {
					if o := old.Effect; o.Kind == ef.Kind && o.Escalation != "" && o.Escalation == ef.Escalation && o.SHA == ef.SHA {
						if err := d.outbox.EffectDone(ctx, o.ID); err != nil && !errors.Is(err, ErrNotFound) {
							return delivered, err
						}
					}
				}
			}
			continue
		}
		next, permanent := d.retryAt(now, rec.Attempts+1, err)
		held[group] = !permanent
		log := d.log.With("effect_id", ef.ID, "kind", ef.Kind, "escalation_id", ef.Escalation, "attempt", rec.Attempts+1)
		if permanent {
			log.Error("delivery failed and will not succeed as things are; fix the cause, it is tried again later", "retry_in", permanentRetry, "err", err)
		} else {
			log.Warn("delivery failed, will retry", "retry_in", next.Sub(now), "err", err)
		}
		text := err.Error()
		if permanent {
			text = permanentMark + text
		}
		if err := d.outbox.EffectFailed(ctx, ef.ID, next, text); err != nil {
			return delivered, err
		}
	}
	return delivered, nil
}

// superseded reports whether rest holds a later effect that makes ef
// pointless: a status for the same escalation and head, or a newer
// summary of the same escalation.
func superseded(rest []OutboxRecord, ef Effect) bool {
	if ef.Escalation == "" {
		return false
	}
	for _, r := range rest {
		if r.Effect.Kind == ef.Kind && r.Effect.Escalation == ef.Escalation && r.Effect.SHA == ef.SHA {
			return true
		}
	}
	return false
}

// retryAt says when to try again after the n-th failed attempt.
func (d *Dispatcher) retryAt(now time.Time, n int, err error) (time.Time, bool) {
	var perm interface{ Permanent() bool }
	if errors.As(err, &perm) && perm.Permanent() {
		return now.Add(permanentRetry), true
	}
	var ra interface{ RetryAfter() time.Duration }
	if errors.As(err, &ra) && ra.RetryAfter() > 0 {
		return now.Add(ra.RetryAfter()), false
	}
	wait := minBackoff << min(n-1, 16)
	if wait > maxBackoff || wait <= 0 {
		wait = maxBackoff
	}
	return now.Add(wait), false
}

// errNotConfigured marks effects for an integration that is off.
var errNotConfigured = errors.New("not configured")

func (d *Dispatcher) deliver(ctx context.Context, ef Effect) error {
	var err error
	switch ef.Kind {
	case EffectStatus, EffectMRNote, EffectMRLabels:
		if d.forge == nil {
			err = errNotConfigured
			break
		}
		switch ef.Kind {
		case EffectStatus:
			err = d.forge.SetStatus(ctx, ef)
		case EffectMRNote:
			err = d.forge.PostNote(ctx, ef)
		default:
			err = d.forge.AddLabels(ctx, ef)
		}
	case EffectThreadPost, EffectThreadSummary:
		if d.chat == nil {
			err = errNotConfigured
			break
		}
		_, err = d.chat.Post(ctx, Message{Key: ef.ID, Escalation: ef.Escalation, Text: ef.Body(), Mention: ef.Mention, Security: ef.Security, Summary: ef.Kind == EffectThreadSummary})
	case EffectRefresh:
		if d.Refresher == nil {
			err = errNotConfigured
			break
		}
		err = d.Refresher.Refresh(ctx, ef)
	case EffectPage:
		if d.pager == nil {
			err = errNotConfigured
			break
		}
		err = d.pager.Trigger(ctx, ef.ID, ef.Body())
	default:
		d.log.Error("unknown effect kind, dropped", "effect_id", ef.ID, "kind", ef.Kind)
		return nil
	}
	if errors.Is(err, errNotConfigured) {
		d.log.Debug("no integration for effect, dropped", "effect_id", ef.ID, "kind", ef.Kind)
		return nil
	}
	if err != nil {
		return fmt.Errorf("deliver %s %s: %w", ef.Kind, ef.ID, err)
	}
	return nil
}
