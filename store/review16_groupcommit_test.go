package store

import (
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"
)

// TestReview16PanicInRetryAnswersRolledBackForDurableItems: when a round
// fails and its items are tried again one at a time, each retry commits
// on its own; should a later retry panic, the deferred handler in
// leadInboxRound answers every item of the round errCommitPanicked ("the
// inbox commit panicked and was rolled back"), also those whose retry
// already committed. Their callers answer 503, the sender redelivers, and
// an item without a delivery id (a status check: webhook.go enqueues it
// with key "") is then recorded twice.
//
// Round: [l (leader), "" (keyless), boom]; boom fails in the round (an
// error), then panics when tried alone, after l and the keyless item
// committed alone.
func TestReview16PanicInRetryAnswersRolledBackForDurableItems(t *testing.T) {
	dir := t.TempDir()
	db := mustOpenDir(t, dir)
	var mu sync.Mutex
	boomTries := 0
	db.inbox.hook = func(key string) error {
		if key != "boom" {
			return nil
		}
		mu.Lock()
		boomTries++
		n := boomTries
		mu.Unlock()
		if n == 1 {
			return errors.New("bad item")
		}
		panic("corrupt page")
	}
	release := holdWriter(t, db)
	first := enqueueAsync(ctx, db, "first", t0)
	waitInbox(t, db, "the first round", func(c *inboxCommits) bool { return c.leading && len(c.queue) == 0 })
	l := enqueueAsync(ctx, db, "l", t0) // leads the next round
	inboxQueued(t, db, 1)
	keyless := make(chan error, 1)
	go func() {
		_, err := db.Enqueue(ctx, "", "status_check", []byte("body of status check"), t0)
		keyless <- err
	}()
	inboxQueued(t, db, 2)
	boom := enqueueAsync(ctx, db, "boom", t0)
	inboxQueued(t, db, 3)
	release()
	if a := waitFor(t, first, "first's answer"); a.err != nil {
		t.Fatalf("first: %v", a.err)
	}
	// l leads the round: the commit runs in its call, so the panic is its
	// answer (net/http recovers it; l has a key, so a resend is a
	// duplicate).
	waitFor(t, l, "l's answer")
	if a := waitFor(t, boom, "boom's answer"); a.err == nil {
		t.Error("boom, whose retry panicked, was answered recorded")
	}
	// The keyless item's own retry committed before boom's panicked: its
	// caller must be told it is recorded (told otherwise, the sender
	// resends and a keyless item is recorded twice).
	if kerr := waitFor(t, keyless, "the keyless item's answer"); kerr != nil {
		t.Errorf("the keyless item, durable, was answered %v", kerr)
	}
	mustClose(t, db)
	db = mustOpenDir(t, dir)
	items, err := db.InboxDue(ctx, t0.Add(time.Hour), 0)
	if err != nil {
		t.Fatal(err)
	}
	n := 0
	var all []string
	for _, it := range items {
		all = append(all, fmt.Sprintf("%d:%q", it.ID, it.Key))
		if string(it.Body) == "body of status check" {
			n++
		}
	}
	if n != 1 {
		t.Errorf("the keyless item is recorded %d times, want once (items %v)", n, all)
	}
}
