package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/robfig/cron/v3"

	"github.com/threatgate/threatgate/bot"
	"github.com/threatgate/threatgate/policies"
)

// The scheduler runs the policy's schedule (policies.Schedule): the sweep
// (Engine.Tick: reminders, handoffs, pages, status updates, deferrals that
// end), the daily digest (Engine.Digest) and the weekly report
// (Engine.Report). Every job only calls an Engine method with the time,
// so tests drive the same methods with a fake clock. A job that panics is
// recovered and logged; a job still running when it is due again is
// skipped, never overlapped (cron's chain: SkipIfStillRunning outside
// Recover, so a panic does not keep the job skipped forever).
//
// The digest and the report are keyed by their slot (digest:2026-12-07,
// report:2026-W49): one that fell due while threatgate was down runs once
// at start, and a slot never runs twice, whatever restarts happen.

// jobs are the functions the schedule calls; serve's are the engine's.
type jobs struct {
	sweep  func(ctx context.Context, now time.Time) error
	digest func(ctx context.Context, slot, since, now time.Time) error
	report func(ctx context.Context, slot, now time.Time) error
	// digestRan reports whether the digest of a slot ran; nil: the
	// previous slot is taken to have run.
	digestRan func(ctx context.Context, slot time.Time) (bool, error)
}

// schedule is the policy's schedule running under cron.
type schedule struct {
	sch   policies.Schedule
	jobs  jobs
	clock bot.Clock
	log   *slog.Logger
	cron  *cron.Cron
}

// newSchedule builds the cron of sch (its specs were checked when the
// policy loaded).
func newSchedule(sch policies.Schedule, j jobs, clock bot.Clock, log *slog.Logger) *schedule {
	loc := sch.Location
	if loc == nil {
		loc = time.UTC
	}
	l := cronLogger{log}
	s := &schedule{sch: sch, jobs: j, clock: clock, log: log,
		cron: cron.New(cron.WithLocation(loc), cron.WithChain(cron.SkipIfStillRunning(l), cron.Recover(l)))}
	return s
}

// run starts the jobs, catches up on a digest or report that fell due
// while threatgate was down, and runs until ctx ends; it then waits for
// running jobs to finish.
func (s *schedule) run(ctx context.Context) error {
	add := func(name, spec string, f func(now time.Time)) error {
		if spec == "" {
			return nil
		}
		if _, err := s.cron.AddFunc(spec, func() { f(s.clock.Now()) }); err != nil {
			return fmt.Errorf("schedule %s %q: %w", name, spec, err)
		}
		return nil
	}
	if err := add("sweep", s.sch.Sweep, func(now time.Time) { s.sweep(ctx, now) }); err != nil {
		return err
	}
	if err := add("digest", s.sch.Digest, func(now time.Time) { s.digest(ctx, now) }); err != nil {
		return err
	}
	if err := add("weekly", s.sch.Weekly, func(now time.Time) { s.report(ctx, now) }); err != nil {
		return err
	}
	// What fell due while threatgate was down: once (the slot keys make a
	// slot that already ran a no-op).
	now := s.clock.Now()
	s.sweep(ctx, now)
	s.digest(ctx, now)
	s.report(ctx, now)
	s.cron.Start()
	<-ctx.Done()
	<-s.cron.Stop().Done()
	return nil
}

// sweep ticks every escalation that is due, batch after batch.
func (s *schedule) sweep(ctx context.Context, now time.Time) {
	if s.jobs.sweep == nil {
		return
	}
	if err := s.jobs.sweep(ctx, now); err != nil && ctx.Err() == nil {
		s.log.Warn("sweep failed", bot.LogErr, err)
	}
}

// digest runs the digest of the last slot of the digest spec at or before
// now, unless it ran.
func (s *schedule) digest(ctx context.Context, now time.Time) {
	if s.jobs.digest == nil {
		return
	}
	slot, prev, ok := lastSlots(s.sch.Digest, s.location(), now)
	if !ok {
		return
	}
	since := s.lastDigest(ctx, slot, prev)
	if err := s.jobs.digest(ctx, slot, since, now); err != nil && ctx.Err() == nil {
		s.log.Warn("digest failed", "slot", slot, bot.LogErr, err)
	}
}

// report runs the weekly report of the last slot at or before now, unless
// it ran.
func (s *schedule) report(ctx context.Context, now time.Time) {
	if s.jobs.report == nil {
		return
	}
	slot, _, ok := lastSlots(s.sch.Weekly, s.location(), now)
	if !ok {
		return
	}
	if err := s.jobs.report(ctx, slot, now); err != nil && ctx.Err() == nil {
		s.log.Warn("weekly report failed", "slot", slot, bot.LogErr, err)
	}
}

// lastDigest returns when the digest before slot ran: the latest earlier
// slot whose digest ran, looking back 8 days (breaches are counted from
// it, so a digest after downtime lists those missed meanwhile); prev when
// it cannot tell; 8 days back when none ran.
func (s *schedule) lastDigest(ctx context.Context, slot, prev time.Time) time.Time {
	if s.jobs.digestRan == nil {
		return prev
	}
	earlier := slotsBefore(s.sch.Digest, s.location(), slot, 8*24*time.Hour)
	for i := len(earlier) - 1; i >= 0; i-- {
		ran, err := s.jobs.digestRan(ctx, earlier[i])
		if err != nil {
			s.log.Warn("could not tell when the last digest ran", bot.LogErr, err)
			return prev
		}
		if ran {
			return earlier[i]
		}
	}
	return slot.Add(-8 * 24 * time.Hour)
}

// slotsBefore lists the times spec fires in the span before slot, oldest
// first.
func slotsBefore(spec string, loc *time.Location, slot time.Time, span time.Duration) []time.Time {
	sched, err := cron.ParseStandard(spec)
	if err != nil {
		return nil
	}
	var out []time.Time
	t := slot.In(loc).Add(-span)
	for i := 0; i < 20000; i++ {
		n := sched.Next(t)
		if n.IsZero() || !n.Before(slot) {
			break
		}
		out = append(out, n)
		t = n
	}
	return out
}

func (s *schedule) location() *time.Location {
	if s.sch.Location != nil {
		return s.sch.Location
	}
	return time.UTC
}

// lastSlots returns the last time spec fired at or before now (in loc) and
// the one before it; false when there is none within 8 days, or spec is
// an @every (which has no slots: it fires relative to the start).
func lastSlots(spec string, loc *time.Location, now time.Time) (last, prev time.Time, ok bool) {
	if spec == "" {
		return last, prev, false
	}
	sched, err := cron.ParseStandard(spec)
	if err != nil {
		return last, prev, false
	}
	if _, every := sched.(cron.ConstantDelaySchedule); every {
		return last, prev, false
	}
	t := now.In(loc).Add(-8 * 24 * time.Hour)
	for i := 0; i < 20000; i++ {
		n := sched.Next(t)
		if n.IsZero() || n.After(now) {
			break
		}
		prev, last, ok = last, n, true
		t = n
	}
	if ok && prev.IsZero() {
		prev = last.Add(-24 * time.Hour)
	}
	return last, prev, ok
}

// cronLogger writes cron's messages to slog: skipped runs and recovered
// panics as warnings, the rest at debug.
type cronLogger struct{ log *slog.Logger }

func (l cronLogger) Info(msg string, kv ...any) {
	if msg == "skip" {
		l.log.Warn("a scheduled job is still running; this run is skipped", kv...)
		return
	}
	l.log.Debug("cron: "+msg, kv...)
}

func (l cronLogger) Error(err error, msg string, kv ...any) {
	l.log.Error("cron: "+msg, append(kv, bot.LogErr, err)...)
}

// sweepAll ticks until nothing more is due at now (each Tick handles a
// batch).
func sweepAll(eng *bot.Engine) func(ctx context.Context, now time.Time) error {
	return func(ctx context.Context, now time.Time) error {
		for range 100 {
			n, err := eng.Tick(ctx, now)
			if err != nil || n < bot.TickBatch {
				return err
			}
		}
		return nil
	}
}

// engineJobs are the schedule's jobs on eng: the sweep (and, when keep is
// set (retention.closed_days), the compaction of escalations closed longer
// than keep), and the digest and report of a slot, linking to dashboard.
// The slot is the time a digest is for: its key (digest:<day>,
// report:<week>, in the schedule's zone) makes a catch-up or a rerun of a
// slot that ran a no-op.
func engineJobs(eng *bot.Engine, dashboard string, keep time.Duration) jobs {
	sweep := sweepAll(eng)
	if keep > 0 {
		sweep = func(ctx context.Context, now time.Time) error {
			err := sweepAll(eng)(ctx, now)
			if _, cerr := eng.Compact(ctx, now, keep); cerr != nil {
				err = errors.Join(err, cerr)
			}
			return err
		}
	}
	return jobs{
		sweep: sweep,
		digest: func(ctx context.Context, slot, since, _ time.Time) error {
			return eng.Digest(ctx, slot, since, dashboard)
		},
		report: func(ctx context.Context, slot, _ time.Time) error {
			return eng.Report(ctx, slot, dashboard)
		},
		digestRan: eng.DigestRan,
	}
}
