package gitlab

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"testing"
	"time"

	"github.com/threatgate/threatgate/adapters/gitlab/gitlabtest"
	"github.com/threatgate/threatgate/bot"
	"github.com/threatgate/threatgate/bot/bottest"
	"github.com/threatgate/threatgate/policies"
	"github.com/threatgate/threatgate/store"
)

// crashingHandler hands inputs to the engine and closes the store (the
// process "dies") at the crashAt-th one (0: never): before it is decided
// (before), or after its decision was committed, before whatever would
// come after it.
type crashingHandler struct {
	Handler
	db      *store.DB
	crashAt int
	before  bool
	calls   int
	handled map[uint64]bool // inbox items decided (Input.Inbox)
}

func (h *crashingHandler) Handle(ctx context.Context, in bot.Input) (bot.Reply, error) {
	h.calls++
	crash := h.crashAt > 0 && h.calls == h.crashAt
	if crash && h.before {
		h.db.Close()
	}
	rep, err := h.Handler.Handle(ctx, in)
	if err == nil {
		h.handled[in.Inbox] = true
	}
	if crash && !h.before {
		h.db.Close()
	}
	return rep, err
}

// TestInboxAcksSurviveACrashAtEveryPoint: a webhook's inbox item leaves
// the inbox in its decision's transaction, or, when its processing
// commits nothing, in a batch after it. The store is closed (a crash)
// right before and right after each input is handled in turn, reopened
// from the file, and the worker runs again. Whatever the crash point: no item is lost (every
// MR gets its escalation, the inbox ends empty), and none is decided
// twice (the audit log is the same as without a crash).
// Every item is decided on at least once: a webhook is a trigger and a
// later one for the same MR would hide the loss of an earlier one in the
// audit log.
func TestInboxAcksSurviveACrashAtEveryPoint(t *testing.T) {
	ctx := context.Background()
	pol, err := policies.Load("e2e.yaml", []byte(e2ePolicy))
	if err != nil {
		t.Fatal(err)
	}
	t0 := time.Date(2026, 11, 2, 9, 0, 0, 0, time.UTC)
	gl := gitlabtest.New(t)
	gl.SetNow(func() time.Time { return t0 })
	for name, id := range e2eUsers {
		gl.SetUser(name, id)
	}
	client, err := New(Config{BaseURL: gl.URL, Token: bot.Secret(gl.Token), StatusName: statusName, Gate: "status", Timeout: 5 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	client.now = func() time.Time { return t0 }
	const mrs = 4
	for i := int64(1); i <= mrs; i++ {
		gl.AddMR(gitlabtest.MR{Project: "shop/api", IID: i, Title: "change", Author: "ann", SHA: fmt.Sprintf("%040d", i),
			HeadPipelineID: 500 + i, Diffs: []gitlabtest.Diff{{OldPath: "internal/auth/x.go", NewPath: "internal/auth/x.go", Diff: "@@ -1 +1,2 @@\n x\n+y\n"}}, UpdatedAt: t0})
	}
	// The inbox every run starts from: each MR opened, then updated
	// twice (which decides nothing new: GitLab shows the same MR), and a
	// redelivery of an open under another delivery id.
	src := t.TempDir()
	db, err := store.Open(src)
	if err != nil {
		t.Fatal(err)
	}
	n := 0
	put := func(iid int64, action string) {
		n++
		body := mrHookJSON(iid, action, fmt.Sprintf("%040d", iid), t0)
		if _, err := db.Enqueue(ctx, fmt.Sprintf("gitlab:uuid-%d", n), EventMergeRequest, body, t0); err != nil {
			t.Fatal(err)
		}
	}
	for i := int64(1); i <= mrs; i++ {
		put(i, "open")
	}
	for i := int64(1); i <= mrs; i++ {
		put(i, "update")
		put(i, "update")
	}
	put(1, "open")
	db.Close()
	file, err := os.ReadFile(filepath.Join(src, store.FileName))
	if err != nil {
		t.Fatal(err)
	}

	// run processes the inbox of the store in dir until it is empty or
	// the store is closed under it; it returns the handler's calls.
	handled := map[uint64]bool{}
	run := func(dir string, crashAt int, before bool) (calls int, crashed bool) {
		db, err := store.Open(dir)
		if err != nil {
			t.Fatal(err)
		}
		defer db.Close()
		clock := bottest.NewClock(t0)
		h := &crashingHandler{Handler: bot.NewEngine(db, pol, clock, nil), db: db, crashAt: crashAt, before: before, handled: handled}
		w := &Worker{Inbox: db, Fetch: client, Engine: h, Store: db, Clock: clock}
		for range 5 {
			if _, err := w.ProcessDue(ctx); err != nil {
				return h.calls, true
			}
		}
		return h.calls, false
	}
	// audit reads what the store in dir holds: the events of each
	// escalation (kinds) and the inbox depth.
	audit := func(dir string) (map[string][]string, int) {
		db, err := store.Open(dir, store.ReadOnly())
		if err != nil {
			t.Fatal(err)
		}
		defer db.Close()
		if _, err := db.Verify(ctx); err != nil {
			t.Fatalf("audit chain: %v", err)
		}
		out := map[string][]string{}
		for i := int64(1); i <= mrs; i++ {
			e, err := db.FindByMR(ctx, "shop/api", i)
			if err != nil {
				out[fmt.Sprint(i)] = nil
				continue
			}
			evs, err := db.Events(ctx, e.ID)
			if err != nil {
				t.Fatal(err)
			}
			for _, ev := range evs {
				out[fmt.Sprint(i)] = append(out[fmt.Sprint(i)], string(ev.Kind))
			}
		}
		depth, err := db.InboxDepth(ctx)
		if err != nil {
			t.Fatal(err)
		}
		return out, depth
	}

	dir := t.TempDir()
	os.WriteFile(filepath.Join(dir, store.FileName), file, 0o600)
	total, crashed := run(dir, 0, false)
	if crashed {
		t.Fatal("the run without a crash failed")
	}
	want, depth := audit(dir)
	if depth != 0 || len(want) != mrs {
		t.Fatalf("without a crash: inbox depth %d, escalations %v", depth, want)
	}
	for k := 1; k <= 2*total; k++ {
		at, before := (k+1)/2, k%2 == 1
		name := fmt.Sprintf("crash after input %d", at)
		if before {
			name = fmt.Sprintf("crash before input %d", at)
		}
		t.Run(name, func(t *testing.T) {
			dir := t.TempDir()
			if err := os.WriteFile(filepath.Join(dir, store.FileName), file, 0o600); err != nil {
				t.Fatal(err)
			}
			clear(handled)
			if _, crashed := run(dir, at, before); !crashed {
				t.Fatalf("the worker went on after the store closed")
			}
			if _, crashed := run(dir, 0, false); crashed {
				t.Fatalf("the run after the crash failed")
			}
			for id := uint64(1); id <= uint64(n); id++ {
				if !handled[id] {
					t.Errorf("inbox item %d was never decided on", id)
				}
			}
			got, depth := audit(dir)
			if depth != 0 {
				t.Errorf("inbox depth %d after the run that followed the crash, want 0", depth)
			}
			for iid, kinds := range want {
				if !slices.Equal(got[iid], kinds) {
					t.Errorf("MR %s: events %v, want %v (as without a crash)", iid, got[iid], kinds)
				}
			}
		})
	}
}
