package bot_test

import (
	"context"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/threatgate/threatgate/bot"
	"github.com/threatgate/threatgate/store"
)

// reviewAuditBarrierStore holds every FindIncident until two are under
// way (or a second has passed), as two commands arriving together do.
type reviewAuditBarrierStore struct {
	*store.DB
	mu      sync.Mutex
	arrived int
	both    chan struct{}
}

func (s *reviewAuditBarrierStore) FindIncident(ctx context.Context, id string) (*bot.IncidentRecord, error) {
	rec, err := s.DB.FindIncident(ctx, id)
	s.mu.Lock()
	s.arrived++
	if s.arrived == 2 {
		close(s.both)
	}
	s.mu.Unlock()
	select {
	case <-s.both:
	case <-time.After(time.Second):
	}
	return rec, err
}

// TestReviewAuditIncidentFixedTwiceConcurrently: "/threatgate
// incident-fixed INC-n" may be recorded once. The engine serialises
// inputs by the thread's escalation (lockIndex), and an incident has none
// of its own: two incident-fixed commands for the same incident sent from
// two threads (or one from the API/DM and one from a thread) take
// different locks, both read "not fixed yet" (FindIncident, a scan of the
// log that may take long) and both commit. The log then holds two
// remediations, and which one counts for time to remediation depends on
// the order.
func TestReviewAuditIncidentFixedTwiceConcurrently(t *testing.T) {
	r := newRig(t)
	ctx := context.Background()
	if _, err := r.eng.Handle(ctx, command(t, "slack", "UANN", "/threatgate incident shop/api!8 open redirect", "")); err != nil {
		t.Fatal(err)
	}
	r.clock.Advance(time.Hour)
	for _, threads := range [][2]string{{"", "ESC-1"}, {"ESC-2", "ESC-3"}, {"ESC-4", "ESC-5"}, {"ESC-6", "ESC-7"}} {
		s := &reviewAuditBarrierStore{DB: r.db, both: make(chan struct{})}
		eng := bot.NewEngine(s, r.pol, r.clock, nil)
		var wg sync.WaitGroup
		errs := make([]error, 2)
		for j, th := range threads {
			wg.Add(1)
			go func() {
				defer wg.Done()
				_, errs[j] = eng.Handle(ctx, command(t, "slack", "UALICE", fmt.Sprintf("/threatgate incident-fixed INC-1 fixed %d", j), th))
			}()
		}
		wg.Wait()
		n := 0
		for _, ev := range allEvents(t, r.db) {
			if ev.Kind == bot.EventIncidentFixed && ev.Data.Incident == "INC-1" {
				n++
			}
		}
		if n > 1 {
			t.Fatalf("INC-1 was recorded as remediated %d times (threads %q; errors %v)", n, threads, errs)
		}
	}
}

func allEvents(t *testing.T, db *store.DB) []bot.Event {
	t.Helper()
	var out []bot.Event
	if err := db.AllEvents(context.Background(), func(ev bot.Event) error { out = append(out, ev); return nil }); err != nil {
		t.Fatal(err)
	}
	return out
}
