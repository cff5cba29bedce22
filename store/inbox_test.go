package store

import (
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	bolt "go.etcd.io/bbolt"

	"github.com/threatgate/threatgate/bot"
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

// inboxIndex checks that inbox_due has exactly one entry per inbox item,
// under the item's next attempt, and returns the entries' ids in index
// order.
func inboxIndex(tb testing.TB, db *DB) []uint64 {
	tb.Helper()
	var ids []uint64
	err := db.bolt.View(func(tx *bolt.Tx) error {
		want := map[string]bool{}
		err := tx.Bucket(bucketInbox).ForEach(func(k, v []byte) error {
			it, err := decodeInbox(binary.BigEndian.Uint64(k), v)
			if err != nil {
				return err
			}
			want[string(inboxDueKey(it.NextAttempt, it.ID))] = true
			return nil
		})
		if err != nil {
			return err
		}
		return tx.Bucket(bucketInboxDue).ForEach(func(k, _ []byte) error {
			if !want[string(k)] {
				tb.Errorf("inbox_due entry %x names no item due then", k)
			}
			delete(want, string(k))
			ids = append(ids, binary.BigEndian.Uint64(k[8:]))
			return nil
		})
	})
	if err != nil {
		tb.Fatal(err)
	}
	return ids
}

func itemIDs(items []InboxItem) []uint64 {
	out := []uint64{}
	for _, it := range items {
		out = append(out, it.ID)
	}
	return out
}

// TestInboxDueReadsOnlyDueItems: an item waiting for a far attempt is
// neither returned nor decoded (its record is made undecodable, and the
// pass still succeeds); the index follows Enqueue, InboxFailed and
// InboxDone, even for a record too broken to decode.
func TestInboxDueReadsOnlyDueItems(t *testing.T) {
	db := mustOpen(t)
	at := time.Date(2026, 11, 2, 9, 0, 0, 0, time.UTC)
	for i := range 3 {
		if _, err := db.Enqueue(ctx, fmt.Sprintf("uuid-%d", i), "k", []byte("body"), at); err != nil {
			t.Fatal(err)
		}
	}
	if err := db.InboxFailed(ctx, 2, at.Add(24*time.Hour), "gitlab down"); err != nil {
		t.Fatal(err)
	}
	if got := inboxIndex(t, db); !slices.Equal(got, []uint64{1, 3, 2}) {
		t.Errorf("index = %v, want [1 3 2] (item 2 due a day later)", got)
	}
	err := db.bolt.Update(func(tx *bolt.Tx) error {
		return tx.Bucket(bucketInbox).Put(u64(2), []byte("not json"))
	})
	if err != nil {
		t.Fatal(err)
	}
	items, err := db.InboxDue(ctx, at.Add(time.Hour), 0)
	if err != nil {
		t.Fatalf("InboxDue read the item that is not due: %v", err)
	}
	if got := itemIDs(items); !slices.Equal(got, []uint64{1, 3}) {
		t.Errorf("due = %v, want [1 3]", got)
	}
	// Once due, it is read (and here found broken).
	if _, err := db.InboxDue(ctx, at.Add(24*time.Hour), 0); err == nil || !strings.Contains(err.Error(), "inbox item 2") {
		t.Errorf("InboxDue when item 2 is due: err = %v, want it to name item 2", err)
	}
	// A broken item can still be finished, and its entry goes with it.
	if err := db.InboxFailed(ctx, 2, at, "x"); err == nil {
		t.Error("InboxFailed of a broken item succeeded")
	}
	for _, id := range []uint64{2, 1} {
		if err := db.InboxDone(ctx, id); err != nil {
			t.Fatalf("InboxDone(%d): %v", id, err)
		}
	}
	if got := inboxIndex(t, db); !slices.Equal(got, []uint64{3}) {
		t.Errorf("index after done = %v, want [3]", got)
	}
	if err := db.InboxFailed(ctx, 1, at, "x"); !errors.Is(err, bot.ErrNotFound) {
		t.Errorf("InboxFailed of a finished item: err = %v, want bot.ErrNotFound", err)
	}
}

// TestInboxDueOrder: the items due, in the order they arrived whatever
// their next attempt; at most limit, the oldest; an item due exactly now
// is due.
func TestInboxDueOrder(t *testing.T) {
	db := mustOpen(t)
	at := time.Date(2026, 11, 2, 9, 0, 0, 0, time.UTC)
	for i := range 6 {
		if _, err := db.Enqueue(ctx, "", "k", []byte{byte(i)}, at.Add(time.Duration(i%2)*time.Minute)); err != nil {
			t.Fatal(err)
		}
	}
	// Items 1, 3, 5 are due at `at`, 2, 4, 6 a minute later; 1 fails and
	// waits until two minutes later, last in the index.
	if err := db.InboxFailed(ctx, 1, at.Add(2*time.Minute), "x"); err != nil {
		t.Fatal(err)
	}
	for _, tt := range []struct {
		now   time.Time
		limit int
		want  []uint64
	}{
		{at.Add(-time.Nanosecond), 0, []uint64{}},
		{at, 0, []uint64{3, 5}},
		{at.Add(time.Minute), 0, []uint64{2, 3, 4, 5, 6}},
		{at.Add(time.Minute), 2, []uint64{2, 3}},
		{at.Add(time.Hour), 0, []uint64{1, 2, 3, 4, 5, 6}},
		{at.Add(time.Hour), 4, []uint64{1, 2, 3, 4}},
	} {
		items, err := db.InboxDue(ctx, tt.now, tt.limit)
		if err != nil {
			t.Fatal(err)
		}
		if got := itemIDs(items); !slices.Equal(got, tt.want) {
			t.Errorf("InboxDue(%s, %d) = %v, want %v", tt.now.Sub(at), tt.limit, got, tt.want)
		}
	}
}

// TestInboxMigrationIndexesWaitingItems writes items the way a file of
// schema 2 holds them (no inbox_due), then opens it: migration 3 indexes
// them, so they are neither lost nor all read on every pass.
func TestInboxMigrationIndexesWaitingItems(t *testing.T) {
	dir := t.TempDir()
	mustClose(t, mustOpenDir(t, dir))
	at := time.Date(2026, 11, 2, 9, 0, 0, 0, time.UTC)
	old := []InboxItem{
		{ID: 1, Key: "uuid-1", Kind: "k", Body: []byte("a"), At: at, NextAttempt: at.Add(time.Hour), Attempts: 3, LastError: "gitlab down"},
		{ID: 2, Key: "uuid-2", Kind: "k", Body: []byte("b"), At: at, NextAttempt: at},
		{ID: 3, Kind: "k", Body: []byte("c"), At: at.Add(time.Second), NextAttempt: at.Add(time.Second)},
		{ID: 4, Kind: "k", Body: []byte("d"), At: at.Add(time.Second), NextAttempt: at.Add(365 * 24 * time.Hour)},
	}
	b, err := bolt.Open(filepath.Join(dir, FileName), 0o600, &bolt.Options{Timeout: time.Second})
	if err != nil {
		t.Fatal(err)
	}
	err = b.Update(func(tx *bolt.Tx) error {
		// Back to schema 2: without the buckets of 3 and 4.
		if err := putU64(tx.Bucket(bucketMeta), metaSchemaVersion, 2); err != nil {
			return err
		}
		for _, name := range [][]byte{bucketInboxDue, bucketDeadLetters} {
			if err := tx.DeleteBucket(name); err != nil {
				return err
			}
		}
		in := tx.Bucket(bucketInbox)
		for _, it := range old {
			rec, err := json.Marshal(it)
			if err != nil {
				return err
			}
			if err := in.Put(u64(it.ID), rec); err != nil {
				return err
			}
		}
		return in.SetSequence(uint64(len(old)))
	})
	if err != nil {
		t.Fatal(err)
	}
	if err := b.Close(); err != nil {
		t.Fatal(err)
	}

	db := mustOpenDir(t, dir)
	if got := inboxIndex(t, db); !slices.Equal(got, []uint64{2, 3, 1, 4}) {
		t.Errorf("index after migration = %v, want [2 3 1 4]", got)
	}
	items, err := db.InboxDue(ctx, at.Add(time.Hour), 0)
	if err != nil {
		t.Fatal(err)
	}
	if got := itemIDs(items); !slices.Equal(got, []uint64{1, 2, 3}) {
		t.Errorf("due after migration = %v, want [1 2 3]", got)
	}
	if !reflect.DeepEqual(items[0], old[0]) {
		t.Errorf("item 1 after migration:\n got %+v\nwant %+v", items[2], old[0])
	}
	// New items follow the old ones.
	if _, err := db.Enqueue(ctx, "uuid-5", "k", nil, at); err != nil {
		t.Fatal(err)
	}
	if got := inboxIndex(t, db); !slices.Equal(got, []uint64{2, 5, 3, 1, 4}) {
		t.Errorf("index after a new item = %v, want [2 5 3 1 4]", got)
	}
}
