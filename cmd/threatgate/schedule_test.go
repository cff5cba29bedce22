package main

import (
	"context"
	"log/slog"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/threatgate/threatgate/bot/bottest"
	"github.com/threatgate/threatgate/policies"
)

func TestLastSlots(t *testing.T) {
	mon10 := time.Date(2026, 12, 7, 10, 0, 0, 0, time.UTC) // a Monday
	last, prev, ok := lastSlots("0 9 * * MON-FRI", time.UTC, mon10)
	if !ok || !last.Equal(time.Date(2026, 12, 7, 9, 0, 0, 0, time.UTC)) || !prev.Equal(time.Date(2026, 12, 4, 9, 0, 0, 0, time.UTC)) {
		t.Errorf("weekday digest at Monday 10:00: last %v prev %v ok %v", last, prev, ok)
	}
	last, _, _ = lastSlots("0 9 * * MON-FRI", time.UTC, mon10.Add(-2*time.Hour))
	if !last.Equal(time.Date(2026, 12, 4, 9, 0, 0, 0, time.UTC)) {
		t.Errorf("weekday digest at Monday 08:00: last %v, want Friday 09:00", last)
	}
	// In the schedule's time zone: 09:00 in Tokyo is 00:00 UTC.
	tokyo, _ := time.LoadLocation("Asia/Tokyo")
	last, _, _ = lastSlots("0 9 * * *", tokyo, mon10)
	if !last.Equal(time.Date(2026, 12, 7, 0, 0, 0, 0, time.UTC)) {
		t.Errorf("09:00 Tokyo at Monday 10:00 UTC: last %v", last.UTC())
	}
	if _, _, ok := lastSlots("@every 1m", time.UTC, mon10); ok {
		t.Errorf("an @every spec has slots")
	}
	if _, _, ok := lastSlots("* * * * *", time.UTC, mon10); !ok {
		t.Errorf("a minutely spec has no slot")
	}
}

// TestScheduleCatchesUpAtStart: a digest and a report that fell due while
// threatgate was down run once at start, for their slot.
func TestScheduleCatchesUpAtStart(t *testing.T) {
	clock := bottest.NewClock(time.Date(2026, 12, 8, 15, 0, 0, 0, time.UTC)) // Tuesday
	var mu sync.Mutex
	var digests, reports []time.Time
	var since time.Time
	done := make(chan struct{}, 4)
	j := jobs{
		digest: func(_ context.Context, slot, prev, _ time.Time) error {
			mu.Lock()
			digests, since = append(digests, slot), prev
			mu.Unlock()
			done <- struct{}{}
			return nil
		},
		report: func(_ context.Context, slot, _ time.Time) error {
			mu.Lock()
			reports = append(reports, slot)
			mu.Unlock()
			done <- struct{}{}
			return nil
		},
	}
	sch := policies.Schedule{Sweep: "@every 1h", Digest: "0 9 * * MON-FRI", Weekly: "0 9 * * MON", Location: time.UTC}
	s := newSchedule(sch, j, clock, slog.New(slog.DiscardHandler))
	ctx, cancel := context.WithCancel(context.Background())
	finished := make(chan error)
	go func() { finished <- s.run(ctx) }()
	for range 2 {
		select {
		case <-done:
		case <-time.After(5 * time.Second):
			t.Fatal("the catch-up did not run")
		}
	}
	cancel()
	if err := <-finished; err != nil {
		t.Fatal(err)
	}
	mu.Lock()
	defer mu.Unlock()
	if len(digests) != 1 || !digests[0].Equal(time.Date(2026, 12, 8, 9, 0, 0, 0, time.UTC)) || !since.Equal(time.Date(2026, 12, 7, 9, 0, 0, 0, time.UTC)) {
		t.Errorf("digests %v since %v", digests, since)
	}
	if len(reports) != 1 || !reports[0].Equal(time.Date(2026, 12, 7, 9, 0, 0, 0, time.UTC)) {
		t.Errorf("reports %v", reports)
	}
}

// TestScheduleSurvivesAPanic: a job that panics is recovered, logged, and
// runs again at its next time.
func TestScheduleSurvivesAPanic(t *testing.T) {
	var calls atomic.Int32
	again := make(chan struct{}, 8)
	j := jobs{sweep: func(context.Context, time.Time) error {
		n := calls.Add(1)
		if n == 2 { // the first cron run (the first call is the start's catch-up)
			panic("boom")
		}
		if n >= 3 {
			again <- struct{}{}
		}
		return nil
	}}
	s := newSchedule(policies.Schedule{Sweep: "@every 1s", Location: time.UTC}, j, bottest.NewClock(time.Now()), slog.New(slog.DiscardHandler))
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go s.run(ctx)
	select {
	case <-again:
	case <-time.After(10 * time.Second):
		t.Fatalf("the sweep did not run again after a panic (%d calls)", calls.Load())
	}
}
