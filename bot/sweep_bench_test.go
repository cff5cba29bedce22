package bot_test

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/threatgate/threatgate/bot"
	"github.com/threatgate/threatgate/internal/testrig"
)

// countingStore counts the escalations a sweep reads.
type countingStore struct {
	bot.Store
	reads int
}

func (c *countingStore) FindEscalation(ctx context.Context, id string) (*bot.Escalation, error) {
	c.reads++
	return c.Store.FindEscalation(ctx, id)
}

// fillSweepStore commits n escalations, open of them in review (opened a
// second apart, so their handoffs, 4h on, come a second apart), the rest
// approved (closed); each with the NextTick the engine would give it.
func fillSweepStore(tb testing.TB, r *testrig.Rig, n, open int) {
	tb.Helper()
	ctx := context.Background()
	now := testrig.T0
	for i := range n {
		e := &bot.Escalation{Project: "shop/api", MRIID: int64(i + 1), Tier: "T2", State: bot.StateApproved, CreatedAt: now, DecisionDue: now.Add(48 * time.Hour)}
		if i < open {
			e.State = bot.StateInReview
			e.CreatedAt = now.Add(time.Duration(i) * time.Second)
			e.DecisionDue = e.CreatedAt.Add(48 * time.Hour)
			e.Artifacts = []bot.Artifact{{Kind: "threat-model", By: "ann"}}
			e.NextTick = bot.NextTick(e, r.Policy, now)
		}
		ev := bot.Event{Kind: bot.EventOpened, Actor: "system", At: now, SHA: fmt.Sprintf("%040x", i), Data: bot.EventData{Project: "shop/api", MRIID: int64(i + 1), Tier: "T2", To: e.State}}
		if _, err := r.DB.Commit(ctx, &bot.Commit{Escalation: e, Events: []bot.Event{ev}, At: now}); err != nil {
			tb.Fatal(err)
		}
	}
}

// TestSweepReadsNoClosedEscalation: a sweep with nothing due reads no
// escalation at all, closed or open.
func TestSweepReadsNoClosedEscalation(t *testing.T) {
	r := testrig.NewRig(t, sweepPolicy)
	fillSweepStore(t, r, 2000, 200)
	cs := &countingStore{Store: r.DB}
	eng := bot.NewEngine(cs, r.Policy, r.Clock, nil)
	n, err := eng.Tick(context.Background(), testrig.T0.Add(time.Hour))
	if err != nil || n != 0 || cs.reads != 0 {
		t.Errorf("a sweep with nothing due: ticked %d, read %d escalations, err %v", n, cs.reads, err)
	}
	// At the handoffs the first 101 open ones are due; the closed ones
	// are never read.
	n, err = eng.Tick(context.Background(), testrig.T0.Add(4*time.Hour+100*time.Second))
	if err != nil || n != 101 || cs.reads != 101 {
		t.Errorf("a sweep with 101 due: ticked %d, read %d, err %v", n, cs.reads, err)
	}
}

// BenchmarkSweepNothingDue: Engine.Tick on a store of 100,000 escalations,
// 10,000 of them open, when nothing is due (issue 11: under 50 ms).
//
//	go test ./bot -run XXX -bench SweepNothingDue -benchtime 200x
func BenchmarkSweepNothingDue(b *testing.B) {
	r := testrig.NewRig(b, sweepPolicy)
	fillSweepStore(b, r, 100_000, 10_000)
	cs := &countingStore{Store: r.DB}
	eng := bot.NewEngine(cs, r.Policy, r.Clock, nil)
	ctx := context.Background()
	at := testrig.T0.Add(time.Hour)
	// The first sweep after a start recomputes the open escalations'
	// next ticks under the policy (one pass over the open index).
	start := time.Now()
	if _, err := eng.Tick(ctx, at); err != nil {
		b.Fatal(err)
	}
	first := time.Since(start)
	b.ResetTimer()
	for b.Loop() {
		if n, err := eng.Tick(ctx, at); err != nil || n != 0 {
			b.Fatal(n, err)
		}
	}
	b.StopTimer()
	b.ReportMetric(float64(first.Microseconds())/1000, "ms-first-sweep")
	if cs.reads != 0 {
		b.Fatalf("read %d escalations", cs.reads)
	}
}
