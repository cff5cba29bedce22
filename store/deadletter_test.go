package store

import (
	"context"
	"fmt"
	"path/filepath"
	"reflect"
	"strings"
	"sync"
	"testing"
	"time"

	bolt "go.etcd.io/bbolt"

	"github.com/threatgate/threatgate/bot"
)

func TestDeadLetters(t *testing.T) {
	dir := t.TempDir()
	db := mustOpenDir(t, dir)
	if n, err := db.DeadLetterCount(ctx); err != nil || n != 0 {
		t.Fatalf("DeadLetterCount of a new file = %d, %v; want 0", n, err)
	}
	if got, err := db.DeadLetters(ctx, 20); err != nil || len(got) != 0 {
		t.Fatalf("DeadLetters of a new file = %+v, %v; want none", got, err)
	}

	in := []bot.DeadLetter{
		{Kind: "inbox", Ref: "7", Reason: "runtime error: invalid memory address or nil pointer dereference", Panic: true, At: t0, Payload: []byte(`{"object_kind":"merge_request"}`)},
		{Kind: "reconcile", Ref: "ESC-3", Escalation: "ESC-3", Reason: "assignment to entry in nil map", Panic: true, At: t0.Add(time.Minute)},
		{ID: "given", Kind: "effect", Ref: "ESC-3/00000000000000000004/000", Escalation: "ESC-3", Reason: "boom", At: t0.Add(2 * time.Minute)},
	}
	for _, dl := range in {
		if err := db.SetAside(ctx, dl); err != nil {
			t.Fatalf("SetAside(%s %s): %v", dl.Kind, dl.Ref, err)
		}
	}

	// Durable: reopen.
	mustClose(t, db)
	db = mustOpenDir(t, dir)

	want := []bot.DeadLetter{in[2], in[1], in[0]} // newest first
	want[1].ID, want[2].ID = "DL-2", "DL-1"
	all, err := db.DeadLetters(ctx, 0)
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(all, want) {
		t.Errorf("DeadLetters(0):\n got %+v\nwant %+v", all, want)
	}
	two, err := db.DeadLetters(ctx, 2)
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(two, want[:2]) {
		t.Errorf("DeadLetters(2):\n got %+v\nwant the newest two %+v", two, want[:2])
	}
	if n, err := db.DeadLetterCount(ctx); err != nil || n != 3 {
		t.Errorf("DeadLetterCount = %d, %v; want 3", n, err)
	}

	// Numbering goes on after the reopen: ids are never reused.
	if err := db.SetAside(ctx, bot.DeadLetter{Kind: "inbox", Ref: "9", Reason: "x", At: t0.Add(3 * time.Minute)}); err != nil {
		t.Fatal(err)
	}
	if got, _ := db.DeadLetters(ctx, 1); len(got) != 1 || got[0].ID != "DL-4" || got[0].Ref != "9" {
		t.Errorf("the next dead letter = %+v, want DL-4 for inbox item 9", got)
	}
}

func TestSetAsideRefusals(t *testing.T) {
	db := mustOpen(t)
	if err := db.SetAside(ctx, bot.DeadLetter{Kind: "inbox", Ref: "1", Reason: "x"}); err == nil || !strings.Contains(err.Error(), "no time given") {
		t.Errorf("SetAside without a time: err = %v, want it to say no time was given", err)
	}
	cancelled, cancel := context.WithCancel(ctx)
	cancel()
	if err := db.SetAside(cancelled, bot.DeadLetter{Kind: "inbox", Ref: "1", Reason: "x", At: t0}); err == nil || !strings.Contains(err.Error(), "set aside inbox 1") {
		t.Errorf("SetAside with an ended context: err = %v, want an error naming the item", err)
	}
	if _, err := db.DeadLetters(cancelled, 1); err == nil {
		t.Error("DeadLetters with an ended context: no error")
	}
	if _, err := db.DeadLetterCount(cancelled); err == nil {
		t.Error("DeadLetterCount with an ended context: no error")
	}
	if n, _ := db.DeadLetterCount(ctx); n != 0 {
		t.Errorf("refused SetAside calls wrote %d records", n)
	}
}

func TestSetAsideConcurrent(t *testing.T) {
	db := mustOpen(t)
	var wg sync.WaitGroup
	for i := range 50 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if err := db.SetAside(ctx, bot.DeadLetter{Kind: "inbox", Ref: fmt.Sprint(i), Reason: "x", At: t0}); err != nil {
				t.Error(err)
			}
		}()
	}
	wg.Wait()
	all, err := db.DeadLetters(ctx, 0)
	if err != nil {
		t.Fatal(err)
	}
	ids, refs := map[string]bool{}, map[string]bool{}
	for _, dl := range all {
		ids[dl.ID], refs[dl.Ref] = true, true
	}
	if len(all) != 50 || len(ids) != 50 || len(refs) != 50 {
		t.Errorf("%d records, %d distinct ids, %d distinct refs; want 50 of each", len(all), len(ids), len(refs))
	}
	if n, _ := db.DeadLetterCount(ctx); n != 50 {
		t.Errorf("DeadLetterCount = %d, want 50", n)
	}
}

// TestMigrate4DeadLetters opens a file written at schema version 3 (before
// dead letters): Open adds the bucket and SetAside works on it.
func TestMigrate4DeadLetters(t *testing.T) {
	dir := t.TempDir()
	b, err := bolt.Open(filepath.Join(dir, FileName), 0o600, &bolt.Options{Timeout: time.Second})
	if err != nil {
		t.Fatal(err)
	}
	err = b.Update(func(tx *bolt.Tx) error {
		for _, m := range migrations[:3] {
			if err := m(tx); err != nil {
				return err
			}
		}
		return putU64(tx.Bucket(bucketMeta), metaSchemaVersion, 3)
	})
	if err != nil {
		t.Fatal(err)
	}
	if err := b.Close(); err != nil {
		t.Fatal(err)
	}

	db := mustOpenDir(t, dir)
	if err := db.bolt.View(func(tx *bolt.Tx) error {
		if v := schemaVersion(tx); v < 4 {
			t.Errorf("schema version = %d, want at least 4", v)
		}
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	if err := db.SetAside(ctx, bot.DeadLetter{Kind: "inbox", Ref: "1", Reason: "x", At: t0}); err != nil {
		t.Fatalf("SetAside after the migration: %v", err)
	}
	if n, err := db.DeadLetterCount(ctx); err != nil || n != 1 {
		t.Errorf("DeadLetterCount = %d, %v; want 1", n, err)
	}
}
