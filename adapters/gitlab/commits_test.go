package gitlab

import (
	"context"
	"fmt"
	"sync/atomic"
	"testing"

	"github.com/threatgate/threatgate/bot"
)

// countingStore counts the decisions committed through it.
type countingStore struct {
	bot.Store
	commits atomic.Int64
}

func (s *countingStore) Commit(ctx context.Context, c *bot.Commit) (*bot.Escalation, error) {
	e, err := s.Store.Commit(ctx, c)
	if err == nil {
		s.commits.Add(1)
	}
	return e, err
}

// TestWritesPerWebhookAndDelivery counts the bbolt write transactions (one
// fsync each) that processing webhooks and delivering their effects cost
// beyond the decisions' own commits. 20 MRs are opened (each decision
// commits an escalation and its effects), the effects delivered, then 20
// updates are processed twice (the second time they change nothing).
//
// Before batching (29a1c7d) every processed webhook cost one write on top
// of its decision's commit (InboxDone), and every delivered effect one
// (EffectDone).
func TestWritesPerWebhookAndDelivery(t *testing.T) {
	ctx := context.Background()
	r := newRig(t, "status")
	cs := &countingStore{Store: r.db}
	r.worker.Engine = bot.NewEngine(cs, r.worker.Engine.(*bot.Engine).Policy(), r.clock, nil)
	const n = 20
	sha := func(i int64) string { return fmt.Sprintf("%040d", 100+i) }
	hooks := func(action string) {
		for i := range int64(n) {
			if code := r.hook(100+i, action, sha(i), ""); code != 200 {
				t.Fatalf("hook: %d", code)
			}
		}
	}
	// process runs one worker pass and returns the writes beyond the
	// decisions' commits.
	process := func(what string) int {
		before, commits := r.db.WriteTxs(), cs.commits.Load()
		done, err := r.worker.ProcessDue(ctx)
		if err != nil || done != n {
			t.Fatalf("ProcessDue = %d, %v; want %d", done, err, n)
		}
		if depth := inboxDepth(t, r); depth != 0 {
			t.Fatalf("inbox depth after the pass = %d, want 0", depth)
		}
		writes, decisions := int(r.db.WriteTxs()-before), int(cs.commits.Load()-commits)
		t.Logf("%s: %d webhooks processed, %d writes, %d of them decisions: %.2f extra writes per webhook", what, n, writes, decisions, float64(writes-decisions)/n)
		return writes - decisions
	}
	for i := range int64(n) {
		r.addMR(100+i, sha(i), "internal/auth/session.go")
	}
	hooks("open")
	if extra := process("opened"); extra != 0 {
		t.Errorf("opening %d MRs wrote %d times beyond their decisions, want 0", n, extra)
	}

	before := r.db.WriteTxs()
	delivered, err := r.disp.DeliverDue(ctx)
	if err != nil {
		t.Fatal(err)
	}
	writes := int(r.db.WriteTxs() - before)
	if pending, _ := r.db.PendingEffects(ctx, 0); len(pending) != 0 {
		t.Fatalf("%d effects still waiting after delivery", len(pending))
	}
	t.Logf("delivering %d effects of %d escalations: %d writes, %.2f per delivery", delivered, n, writes, float64(writes)/float64(delivered))
	if delivered < 2*n || writes > delivered/n {
		t.Errorf("delivering %d effects of %d escalations wrote %d times, want one per round (at most %d)", delivered, n, writes, delivered/n)
	}

	hooks("update") // GitLab moved updated_at when the gate was set
	if extra := process("updated"); extra != 0 {
		t.Errorf("updating %d MRs wrote %d times beyond their decisions, want 0", n, extra)
	}
	hooks("update")
	if extra := process("nothing changed"); extra > 1 {
		t.Errorf("processing %d webhooks that change nothing wrote %d times, want 1", n, extra)
	}
}
