package store

import (
	"sync"
	"testing"
	"time"
)

func TestInbox(t *testing.T) {
	dir := t.TempDir()
	db := mustOpenDir(t, dir)
	at := time.Date(2026, 11, 2, 9, 0, 0, 0, time.UTC)
	dup, err := db.Enqueue(ctx, "uuid-1", "gitlab:Merge Request Hook", []byte(`{"a":1}`), at)
	if err != nil || dup {
		t.Fatalf("Enqueue = %v, %v", dup, err)
	}
	if dup, _ := db.Enqueue(ctx, "uuid-1", "gitlab:Merge Request Hook", []byte(`{"a":1}`), at.Add(time.Minute)); !dup {
		t.Error("a redelivery was not recognised")
	}
	if _, err := db.Enqueue(ctx, "", "k", []byte("x"), at); err != nil {
		t.Fatal(err)
	}
	// Durable: reopen.
	mustClose(t, db)
	db = mustOpenDir(t, dir)
	items, err := db.InboxDue(ctx, at, 0)
	if err != nil || len(items) != 2 || string(items[0].Body) != `{"a":1}` || items[0].Key != "uuid-1" {
		t.Fatalf("InboxDue = %+v, %v", items, err)
	}
	if err := db.InboxFailed(ctx, items[0].ID, at.Add(time.Hour), "gitlab down"); err != nil {
		t.Fatal(err)
	}
	items, _ = db.InboxDue(ctx, at.Add(time.Minute), 0)
	if len(items) != 1 || items[0].Kind != "k" {
		t.Errorf("after a failure the item should wait: %+v", items)
	}
	items, _ = db.InboxDue(ctx, at.Add(time.Hour), 1)
	if len(items) != 1 || items[0].Attempts != 1 || items[0].LastError != "gitlab down" {
		t.Errorf("retry: %+v", items)
	}
	for _, it := range []uint64{1, 2, 2} {
		if err := db.InboxDone(ctx, it); err != nil {
			t.Fatal(err)
		}
	}
	if n, _ := db.InboxDepth(ctx); n != 0 {
		t.Errorf("depth %d after done", n)
	}
	// Keys expire.
	if dup, _ := db.Enqueue(ctx, "uuid-1", "k", nil, at.Add(inboxKeyTTL+time.Minute)); dup {
		t.Error("an expired delivery id still counts as a duplicate")
	}
	if n, _ := db.PruneInboxKeys(ctx, at.Add(2*inboxKeyTTL+time.Hour)); n != 1 {
		t.Errorf("pruned %d keys, want 1", n)
	}
}

func TestInboxConcurrentEnqueue(t *testing.T) {
	db := mustOpen(t)
	at := time.Date(2026, 11, 2, 9, 0, 0, 0, time.UTC)
	var wg sync.WaitGroup
	for i := range 200 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			key := "k" + string(rune('a'+i%100)) // each key twice
			if _, err := db.Enqueue(ctx, key+"-"+string(rune('0'+i/100%1)), "k", []byte("b"), at); err != nil {
				t.Error(err)
			}
		}()
	}
	wg.Wait()
	if n, _ := db.InboxDepth(ctx); n != 100 {
		t.Errorf("depth %d, want 100 (each delivery id once)", n)
	}
}
