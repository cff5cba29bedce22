package bot_test

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/threatgate/threatgate/bot"
	"github.com/threatgate/threatgate/bot/bottest"
	"github.com/threatgate/threatgate/store"
)

// crashSink records every delivery attempt, in order, and after the
// crashAfter-th one (0: never) closes the store: the process "dies" right
// after a delivery, before anything more is written. It answers a chat
// post of an effect id it has seen with the message it posted then, as
// Slack's sink does (it looks the effect id up before posting again), and
// opens one thread per escalation.
type crashSink struct {
	mu         sync.Mutex
	db         *store.DB
	crashAfter int
	calls      int
	log        []bot.Effect
	posted     map[string]bot.MessageRef // effect id -> message
	opened     map[string]bot.MessageRef // escalation -> thread it opened
}

func (s *crashSink) Deliver(_ context.Context, e bot.Effect) (bot.MessageRef, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.calls++
	s.log = append(s.log, e)
	if s.crashAfter > 0 && s.calls == s.crashAfter {
		s.db.Close()
	}
	if bot.SinkClass(e.Kind) != bot.SinkChat {
		return bot.MessageRef{}, nil
	}
	if ref, ok := s.posted[e.ID]; ok {
		return ref, nil
	}
	ref := e.Thread
	if ref == (bot.MessageRef{}) {
		ref = bot.MessageRef{Channel: "C", TS: fmt.Sprintf("%s-%d", e.Escalation, len(s.opened))}
		s.opened[e.Escalation+"/"+fmt.Sprint(len(s.opened))] = ref
	}
	s.posted[e.ID] = ref
	return ref, nil
}

// TestDeliveryBatchesSurviveACrashAtEveryPoint: the dispatcher records a
// round's outcomes in one transaction. The store is closed (a crash) right
// after each delivery in turn, reopened from the file, and the dispatcher
// runs again. Whatever the crash point: every effect is delivered (nothing
// committed is lost); an effect whose outcome was recorded before the
// crash is never delivered again; one delivered again carries the same id
// (its idempotency key), at most once more; each queue is delivered in
// order; and every chat post of an escalation lands in one thread.
func TestDeliveryBatchesSurviveACrashAtEveryPoint(t *testing.T) {
	ctx := context.Background()
	t0 := time.Date(2026, 11, 2, 9, 0, 0, 0, time.UTC)
	// The store every run starts from: 4 escalations' effects, each a
	// forge queue (status, note, labels) and a chat queue (summary, two
	// posts), committed in two decisions per escalation.
	src := t.TempDir()
	db, err := store.Open(src)
	if err != nil {
		t.Fatal(err)
	}
	var want []string
	for i := 1; i <= 4; i++ {
		esc := fmt.Sprintf("ESC-%d", i)
		for j := range 2 {
			effs := []bot.Effect{
				{Kind: bot.EffectStatus, Escalation: esc, Project: "shop/api", MRIID: int64(i), SHA: fmt.Sprintf("%040d", i*10+j), Status: "pending"},
				{Kind: bot.EffectThreadSummary, Escalation: esc, Text: "card"},
				{Kind: bot.EffectThreadPost, Escalation: esc, Text: fmt.Sprint("post ", j)},
			}
			if j == 0 {
				effs = append(effs, bot.Effect{Kind: bot.EffectMRNote, Escalation: esc, Project: "shop/api", MRIID: int64(i), Text: "note"})
			}
			if _, err := db.Commit(ctx, &bot.Commit{Effects: effs, At: t0}); err != nil {
				t.Fatal(err)
			}
		}
	}
	pending, err := db.PendingEffects(ctx, 0)
	if err != nil {
		t.Fatal(err)
	}
	for _, rec := range pending {
		want = append(want, rec.Effect.ID)
	}
	db.Close()
	file, err := os.ReadFile(filepath.Join(src, store.FileName))
	if err != nil {
		t.Fatal(err)
	}

	// run delivers from the store in dir until nothing is due, through s.
	run := func(dir string, s *crashSink) (settled map[string]bool, err error) {
		db, err := store.Open(dir)
		if err != nil {
			t.Fatal(err)
		}
		s.db = db
		clock := bottest.NewClock(t0)
		d := bot.NewDispatcher(db, nil, nil, nil, clock, nil)
		d.AddSink(bot.SinkForge, s)
		d.AddSink(bot.SinkChat, s)
		d.Threads = db
		for range 10 {
			n, err := d.DeliverDue(ctx)
			if err != nil {
				return nil, err
			}
			if n == 0 {
				break
			}
		}
		db.Close()
		return nil, nil
	}

	// Without a crash: every effect once.
	base := &crashSink{posted: map[string]bot.MessageRef{}, opened: map[string]bot.MessageRef{}}
	dir := t.TempDir()
	os.WriteFile(filepath.Join(dir, store.FileName), file, 0o600)
	if _, err := run(dir, base); err != nil {
		t.Fatal(err)
	}
	if len(base.log) != len(want) {
		t.Fatalf("without a crash %d deliveries, want %d", len(base.log), len(want))
	}

	for k := 1; k <= len(want); k++ {
		t.Run(fmt.Sprintf("crash after delivery %d", k), func(t *testing.T) {
			dir := t.TempDir()
			if err := os.WriteFile(filepath.Join(dir, store.FileName), file, 0o600); err != nil {
				t.Fatal(err)
			}
			s := &crashSink{crashAfter: k, posted: map[string]bot.MessageRef{}, opened: map[string]bot.MessageRef{}}
			if _, err := run(dir, s); err == nil {
				t.Fatalf("the dispatcher went on after the store closed")
			}
			before := slices.Clone(s.log)
			// What the file says is still waiting after the crash.
			db, err := store.Open(dir, store.ReadOnly())
			if err != nil {
				t.Fatal(err)
			}
			left, err := db.PendingEffects(ctx, 0)
			db.Close()
			if err != nil {
				t.Fatal(err)
			}
			waiting := map[string]bool{}
			for _, rec := range left {
				waiting[rec.Effect.ID] = true
			}
			s.crashAfter = 0
			if _, err := run(dir, s); err != nil {
				t.Fatal(err)
			}
			after := s.log[len(before):]
			count := map[string]int{}
			for _, e := range s.log {
				count[e.ID]++
			}
			for _, id := range want {
				if count[id] == 0 {
					t.Errorf("effect %s was never delivered", id)
				}
				if count[id] > 2 {
					t.Errorf("effect %s delivered %d times", id, count[id])
				}
			}
			for _, e := range after {
				if !waiting[e.ID] {
					t.Errorf("effect %s delivered again after the crash, though its delivery was recorded", e.ID)
				}
			}
			for _, e := range before {
				if count[e.ID] == 2 && !waiting[e.ID] {
					t.Errorf("effect %s delivered twice", e.ID)
				}
			}
			// Queue order: within a (sink class, escalation) queue, the
			// deliveries of each run go in id order.
			for _, part := range [][]bot.Effect{before, after} {
				last := map[string]string{}
				for _, e := range part {
					q := bot.SinkClass(e.Kind) + "/" + e.Escalation
					if e.ID < last[q] {
						t.Errorf("queue %s: %s delivered after %s", q, e.ID, last[q])
					}
					last[q] = e.ID
				}
			}
			// One thread per escalation: every chat post after the first
			// went into the thread the first opened.
			threads := map[string]map[bot.MessageRef]bool{}
			for _, e := range s.log {
				if bot.SinkClass(e.Kind) != bot.SinkChat {
					continue
				}
				if threads[e.Escalation] == nil {
					threads[e.Escalation] = map[bot.MessageRef]bool{}
				}
				threads[e.Escalation][s.posted[e.ID]] = true
			}
			for esc, refs := range threads {
				if len(refs) != 1 {
					t.Errorf("%s posted in %d threads, want 1: %v", esc, len(refs), refs)
				}
			}
		})
	}
}
