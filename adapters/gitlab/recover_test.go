package gitlab

import (
	"context"
	"errors"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/threatgate/threatgate/bot"
	"github.com/threatgate/threatgate/policies"
)

// poison is a Handler that panics (a real runtime panic, a write to a nil
// map) for the MR with iid poisoned and hands every other input on.
type poison struct {
	Handler
	iid int64
}

func (p poison) Handle(ctx context.Context, in bot.Input) (bot.Reply, error) {
	if in.MR != nil && in.MR.MR != nil && in.MR.MR.IID == p.iid {
		var m map[string]int
		m[in.MR.MR.PathWithNamespace]++
	}
	return p.Handler.Handle(ctx, in)
}

// Policy is the wrapped engine's, for MR-comment commands.
func (p poison) Policy() *policies.Policy {
	if e, ok := p.Handler.(interface{ Policy() *policies.Policy }); ok {
		return e.Policy()
	}
	return nil
}

// failingDeadLetters cannot record anything.
type failingDeadLetters struct{}

func (failingDeadLetters) SetAside(context.Context, bot.DeadLetter) error {
	return errors.New("disk full")
}

func deadLetters(t *testing.T, r *rig) []bot.DeadLetter {
	t.Helper()
	dls, err := r.db.DeadLetters(context.Background(), 0)
	if err != nil {
		t.Fatal(err)
	}
	return dls
}

func inboxDepth(t *testing.T, r *rig) int {
	t.Helper()
	n, err := r.db.InboxDepth(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	return n
}

// TestPanickingInboxItemIsSetAside: an item whose processing panics is
// recorded as a dead letter (with its body, to replay once fixed) and
// removed from the inbox; the item after it is processed in the same
// pass; the poison does not come back.
func TestPanickingInboxItemIsSetAside(t *testing.T) {
	ctx := context.Background()
	r := newRig(t, "status")
	r.worker.Engine = poison{Handler: r.worker.Engine, iid: 12}
	r.worker.DeadLetters = r.db
	var results []error
	r.worker.OnProcessed = func(kind string, _ time.Duration, err error) { results = append(results, err) }
	r.addMR(12, sha1, "internal/auth/session.go")
	r.addMR(13, sha2, "internal/auth/token.go")
	r.hook(12, "open", sha1, "uuid-poison") // first in the inbox
	r.hook(13, "open", sha2, "uuid-next")
	items, err := r.db.InboxDue(ctx, r.clock.Now(), 0)
	if err != nil || len(items) != 2 {
		t.Fatalf("inbox before the pass = %d items, %v; want 2", len(items), err)
	}
	poisoned := items[0]

	n, err := r.worker.ProcessDue(ctx)
	if err != nil {
		t.Fatalf("ProcessDue: %v", err)
	}
	if n != 2 {
		t.Errorf("ProcessDue finished %d items, want 2 (the poison set aside, the next one processed)", n)
	}
	if len(results) != 2 || results[0] == nil || !strings.Contains(results[0].Error(), "panic") || results[1] != nil {
		t.Errorf("OnProcessed results = %v, want a panic error then success", results)
	}

	// The next item was processed.
	if e := r.escalation(13); e.State != bot.StateAwaitingArtifacts {
		t.Errorf("!13 after the pass: %s, want awaiting_artifacts", e.State)
	}
	if _, err := r.db.FindByMR(ctx, "shop/api", 12); !errors.Is(err, bot.ErrNotFound) {
		t.Errorf("!12 (the poison): FindByMR err = %v, want not found", err)
	}

	// The poison is set aside, with what it takes to replay it.
	dls := deadLetters(t, r)
	if len(dls) != 1 {
		t.Fatalf("dead letters = %+v, want 1", dls)
	}
	dl := dls[0]
	if dl.ID != "DL-1" || dl.Kind != "inbox" || dl.Ref != "1" || dl.Ref != strconv.FormatUint(poisoned.ID, 10) || !dl.Panic || !dl.At.Equal(r.clock.Now()) {
		t.Errorf("dead letter = %+v, want DL-1, kind inbox, ref %d, panic, at %s", dl, poisoned.ID, r.clock.Now())
	}
	if !strings.Contains(dl.Reason, "assignment to entry in nil map") || strings.Contains(dl.Reason, "\n") {
		t.Errorf("Reason = %q, want the panic value on one line", dl.Reason)
	}
	if string(dl.Payload) != string(poisoned.Body) {
		t.Errorf("Payload = %s, want the item's body %s", dl.Payload, poisoned.Body)
	}

	// Logged at Error with the item's id, kind and the panic, never the body.
	logs := r.logs.String()
	if !strings.Contains(logs, "level=ERROR") || !strings.Contains(logs, "inbox_id=1") || !strings.Contains(logs, "assignment to entry in nil map") ||
		!strings.Contains(logs, `kind="Merge Request Hook"`) {
		t.Errorf("log lacks the error line with inbox_id, kind and the panic:\n%s", logs)
	}
	if strings.Contains(logs, "path_with_namespace") || strings.Contains(logs, "object_attributes") {
		t.Errorf("the log shows the webhook body:\n%s", logs)
	}

	// Not replayed: the inbox is empty, later passes find nothing, and the
	// dead letter stays the only one.
	if d := inboxDepth(t, r); d != 0 {
		t.Errorf("inbox depth = %d after the pass, want 0", d)
	}
	r.clock.Advance(time.Hour)
	if n, err := r.worker.ProcessDue(ctx); n != 0 || err != nil {
		t.Errorf("second pass = %d, %v; want nothing to do", n, err)
	}
	if dls := deadLetters(t, r); len(dls) != 1 {
		t.Errorf("dead letters after another pass = %d, want 1", len(dls))
	}
}

// TestPanickingItemKeptWhenNotSetAside: when the dead letter cannot be
// recorded (the store fails, or there is no dead-letter store), the item
// stays in the inbox with a backoff; it is set aside on a later pass once
// that works. Nothing acknowledged is lost.
func TestPanickingItemKeptWhenNotSetAside(t *testing.T) {
	ctx := context.Background()
	for _, tc := range []struct {
		name string
		dl   bot.DeadLetters
		log  string
	}{
		{"store fails", failingDeadLetters{}, "disk full"},
		{"no dead-letter store", nil, "no dead-letter store"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := newRig(t, "status")
			r.worker.Engine = poison{Handler: r.worker.Engine, iid: 12}
			r.worker.DeadLetters = tc.dl
			r.addMR(12, sha1, "internal/auth/session.go")
			r.addMR(13, sha2, "internal/auth/token.go")
			r.hook(12, "open", sha1, "")
			r.hook(13, "open", sha2, "")

			if n, err := r.worker.ProcessDue(ctx); n != 1 || err != nil {
				t.Fatalf("ProcessDue = %d, %v; want 1 (the next item), no error", n, err)
			}
			r.escalation(13) // processed
			if !strings.Contains(r.logs.String(), tc.log) {
				t.Errorf("log does not say why the item is kept (%q):\n%s", tc.log, r.logs)
			}
			kept, err := r.db.InboxDue(ctx, r.clock.Now().Add(time.Second), 0)
			if err != nil {
				t.Fatal(err)
			}
			if len(kept) != 1 || kept[0].ID != 1 || kept[0].Attempts != 1 || !strings.Contains(kept[0].LastError, "assignment to entry in nil map") {
				t.Fatalf("inbox = %+v, want item 1 kept after 1 attempt with the panic as last error", kept)
			}
			if due, _ := r.db.InboxDue(ctx, r.clock.Now(), 0); len(due) != 0 {
				t.Errorf("the kept item is due again at once: %+v; want a backoff", due)
			}
			if n, _ := r.db.DeadLetterCount(ctx); n != 0 {
				t.Errorf("%d dead letters, want none", n)
			}

			// Once dead letters can be recorded, the next attempt sets it aside.
			r.worker.DeadLetters = r.db
			r.clock.Advance(time.Second)
			if n, err := r.worker.ProcessDue(ctx); n != 1 || err != nil {
				t.Fatalf("retry = %d, %v; want the item set aside", n, err)
			}
			if dls := deadLetters(t, r); len(dls) != 1 || dls[0].Ref != "1" {
				t.Errorf("dead letters = %+v, want inbox item 1", dls)
			}
			if d := inboxDepth(t, r); d != 0 {
				t.Errorf("inbox depth = %d, want 0", d)
			}
		})
	}
}

// TestPanickingReconcileIsSetAside: a panic while reconciling one
// escalation is logged and set aside; the others are reconciled; the next
// pass tries the poison again but records it only once.
func TestPanickingReconcileIsSetAside(t *testing.T) {
	ctx := context.Background()
	r := newRig(t, "status")
	r.addMR(12, sha1, "internal/auth/session.go")
	r.addMR(13, sha2, "internal/auth/token.go")
	r.hook(12, "open", sha1, "")
	r.hook(13, "open", sha2, "")
	r.settle()
	poisoned, next := r.escalation(12), r.escalation(13)

	// !13 is closed without a webhook: reconcile must catch it up.
	r.worker.Engine = poison{Handler: r.worker.Engine, iid: 12}
	r.worker.DeadLetters = r.db
	r.clock.Advance(time.Minute)
	r.gl.SetState("shop/api", 13, "closed")

	for pass := 1; pass <= 2; pass++ {
		n, err := r.worker.Reconcile(ctx)
		if err != nil || n != 1 {
			t.Fatalf("pass %d: Reconcile = %d, %v; want 1 (the poison skipped), no error", pass, n, err)
		}
		dls := deadLetters(t, r)
		if len(dls) != 1 {
			t.Fatalf("pass %d: dead letters = %+v, want one (recorded once per process)", pass, dls)
		}
		dl := dls[0]
		if dl.Kind != "reconcile" || dl.Ref != poisoned.ID || dl.Escalation != poisoned.ID || !dl.Panic || !strings.Contains(dl.Reason, "nil map") {
			t.Errorf("dead letter = %+v, want kind reconcile for %s with the panic", dl, poisoned.ID)
		}
	}
	if e := r.escalation(13); e.State != bot.StateWithdrawn {
		t.Errorf("%s after reconcile: %s, want withdrawn (its MR was closed; was %s)", next.ID, e.State, next.State)
	}
	if logs := r.logs.String(); !strings.Contains(logs, "escalation_id="+poisoned.ID) || !strings.Contains(logs, "reconcile panicked") {
		t.Errorf("log lacks the panic with the escalation id:\n%s", logs)
	}
}

// TestPanickingItemNamesItsEscalation: the dead letter of a webhook (or a
// comment) about an MR under review names its escalation, for the
// dashboard.
func TestPanickingItemNamesItsEscalation(t *testing.T) {
	ctx := context.Background()
	r := newRig(t, "status")
	r.addMR(12, sha1, "internal/auth/session.go")
	r.hook(12, "open", sha1, "")
	r.settle()
	esc := r.escalation(12)

	r.worker.Engine = poison{Handler: r.worker.Engine, iid: 12}
	r.worker.DeadLetters = r.db
	r.clock.Advance(time.Minute)
	r.hook(12, "update", sha1, "")
	r.comment(12, "alice", "/threatgate approve")
	if n, err := r.worker.ProcessDue(ctx); n != 2 || err != nil {
		t.Fatalf("ProcessDue = %d, %v; want both items set aside", n, err)
	}
	dls := deadLetters(t, r)
	if len(dls) != 2 {
		t.Fatalf("dead letters = %+v, want 2\n%s", dls, r.logs)
	}
	for _, dl := range dls {
		if dl.Kind != "inbox" || dl.Escalation != esc.ID {
			t.Errorf("dead letter %s (inbox item %s) names escalation %q, want %s", dl.ID, dl.Ref, dl.Escalation, esc.ID)
		}
	}
}
