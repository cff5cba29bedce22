package bot_test

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/threatgate/threatgate/bot"
	"github.com/threatgate/threatgate/bot/bottest"
	"github.com/threatgate/threatgate/store"
)

// BenchmarkDispatchPassNothingDue: a dispatcher pass when n effects wait in
// the outbox and none is due (their sink is down, retried later). Issue 9
// measured 276 ms at 10,000 before the due-time reads: a pass must cost
// what is due, not what waits.
func BenchmarkDispatchPassNothingDue(b *testing.B) {
	for _, n := range []int{1_000, 10_000} {
		b.Run(fmt.Sprintf("waiting=%d", n), func(b *testing.B) {
			db, err := store.Open(b.TempDir(), store.NoSync())
			if err != nil {
				b.Fatal(err)
			}
			defer db.Close()
			ctx := context.Background()
			t0 := time.Date(2026, 11, 2, 9, 0, 0, 0, time.UTC)
			// n effects in n/5 escalations' queues, five per queue.
			for i := 0; i < n; i += 5 {
				var effs []bot.Effect
				for j := range 5 {
					effs = append(effs, bot.Effect{Kind: bot.EffectThreadPost, Escalation: fmt.Sprintf("ESC-%d", i/5+1), Text: fmt.Sprint(j)})
				}
				if _, err := db.Commit(ctx, &bot.Commit{Effects: effs, At: t0}); err != nil {
					b.Fatal(err)
				}
			}
			// Chat is down: every queue's head fails once and waits for its backoff
			// (the fake clock does not move).
			chat := &bottest.Chat{Err: fmt.Errorf("503")}
			clock := bottest.NewClock(t0)
			d := bot.NewDispatcher(db, nil, chat, nil, clock, nil)
			if _, err := d.DeliverDue(ctx); err != nil {
				b.Fatal(err)
			}
			if pending, _ := db.PendingEffects(ctx, 0); len(pending) != n {
				b.Fatalf("%d effects waiting, want %d", len(pending), n)
			}
			b.ResetTimer()
			for range b.N {
				if got, err := d.DeliverDue(ctx); err != nil || got != 0 {
					b.Fatalf("DeliverDue = %d, %v", got, err)
				}
			}
		})
	}
}
