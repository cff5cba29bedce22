package store

import (
	"bytes"
	"encoding/json"
	"errors"
	"sync"
	"testing"
	"time"

	bolt "go.etcd.io/bbolt"

	"github.com/threatgate/threatgate/bot"
)

// mustVerifyFrom calls VerifyFrom and wants the chain verified up to
// event verified with checked events read after the checkpoint.
func mustVerifyFrom(tb testing.TB, db *DB, verified uint64, checked int) {
	tb.Helper()
	v, n, err := db.VerifyFrom(ctx)
	if err != nil || v != verified || n != checked {
		tb.Fatalf("VerifyFrom = %d, %d, %v; want %d, %d, nil", v, n, err, verified, checked)
	}
}

// checkpointOf reads the stored checkpoint.
func checkpointOf(tb testing.TB, db *DB) (uint64, string) {
	tb.Helper()
	var seq uint64
	var hash string
	err := db.bolt.View(func(tx *bolt.Tx) error {
		meta := tx.Bucket(bucketMeta)
		seq, hash = getU64(meta, metaVerifiedSeq), string(meta.Get([]byte(metaVerifiedHash)))
		return nil
	})
	if err != nil {
		tb.Fatal(err)
	}
	return seq, hash
}

// dissent commits one more event on ESC-1.
func dissent(t *testing.T, db *DB, text string) {
	t.Helper()
	esc, err := db.FindEscalation(ctx, "ESC-1")
	if err != nil {
		t.Fatal(err)
	}
	mustCommit(t, db, change(esc, bot.Event{Kind: bot.EventDissent, Actor: "bob", At: t0.Add(time.Hour), Data: bot.EventData{Text: text}}, nil))
}

func TestVerifyFromMovesTheCheckpoint(t *testing.T) {
	dir := t.TempDir()
	db := mustOpenDir(t, dir)
	mustVerifyFrom(t, db, 0, 0) // an empty log: nothing to check, nothing saved
	if seq, _ := checkpointOf(t, db); seq != 0 {
		t.Errorf("checkpoint = %d after an empty log, want none", seq)
	}
	chainOfFour(t, db)
	mustVerifyFrom(t, db, 4, 4) // no checkpoint yet: from the beginning
	mustVerifyFrom(t, db, 4, 0) // nothing new
	dissent(t, db, "still too risky")
	mustVerifyFrom(t, db, 5, 1)

	// The checkpoint is durable, and is event 5 with its hash.
	mustClose(t, db)
	db = mustOpenDir(t, dir)
	mustVerifyFrom(t, db, 5, 0)
	evs := allEvents(t, db)
	if seq, hash := checkpointOf(t, db); seq != 5 || hash != evs[4].Hash {
		t.Errorf("checkpoint = %d %s, want 5 %s", seq, hash, evs[4].Hash)
	}
	// The full walk is unchanged and does not need the checkpoint.
	if n, err := db.Verify(ctx); n != 5 || err != nil {
		t.Errorf("Verify = %d, %v; want 5, nil", n, err)
	}
}

// TestVerifyFromFindsTamperingAfterCheckpoint: events 5 and 6 are
// appended after the checkpoint (event 4) and changed outside the store;
// every call finds it, and the checkpoint stays at 4.
func TestVerifyFromFindsTamperingAfterCheckpoint(t *testing.T) {
	for _, tt := range []struct {
		name    string
		fn      func(tx *bolt.Tx) error
		seq     uint64
		reason  string
		checked int
	}{
		{"content changed", func(tx *bolt.Tx) error {
			b := tx.Bucket(bucketEvents)
			v := b.Get(u64(5))
			return b.Put(u64(5), bytes.Replace(v, []byte(`"actor":"bob"`), []byte(`"actor":"eve"`), 1))
		}, 5, "hash does not match its content", 0},
		{"content changed and rehashed", func(tx *bolt.Tx) error {
			return reseal(tx, 5, func(ev *bot.Event) { ev.Data.Text = "fine by me" })
		}, 6, "prev_hash does not match event 5", 1},
		{"first event after the checkpoint rehashed from another start", func(tx *bolt.Tx) error {
			return reseal(tx, 5, func(ev *bot.Event) { ev.PrevHash = genesisHash })
		}, 5, "prev_hash does not match event 4", 0},
		{"event deleted", func(tx *bolt.Tx) error {
			return tx.Bucket(bucketEvents).Delete(u64(5))
		}, 6, "follows event 4; event 5 is missing", 0},
		{"last event deleted", func(tx *bolt.Tx) error {
			return tx.Bucket(bucketEvents).Delete(u64(6))
		}, 6, "missing: the log ends at event 5 but the chain head is event 6", 1},
		{"last events deleted and the head moved back", func(tx *bolt.Tx) error {
			b := tx.Bucket(bucketEvents)
			if err := b.Delete(u64(6)); err != nil {
				return err
			}
			var ev bot.Event
			if err := json.Unmarshal(b.Get(u64(5)), &ev); err != nil {
				return err
			}
			meta := tx.Bucket(bucketMeta)
			if err := putU64(meta, metaHeadSeq, 5); err != nil {
				return err
			}
			return meta.Put([]byte(metaHeadHash), []byte(ev.PrevHash)) // event 4's
		}, 5, "hash does not match the chain head", 1},
		{"event added past the head", func(tx *bolt.Tx) error {
			return tx.Bucket(bucketEvents).Put(u64(7), tx.Bucket(bucketEvents).Get(u64(6)))
		}, 7, "record says seq 6", 2},
		{"hash member removed", func(tx *bolt.Tx) error {
			b := tx.Bucket(bucketEvents)
			v := b.Get(u64(6))
			i := bytes.LastIndex(v, []byte(`,"hash"`))
			return b.Put(u64(6), append(bytes.Clone(v[:i]), '}'))
		}, 6, "record does not end with its hash", 1},
	} {
		t.Run(tt.name, func(t *testing.T) {
			dir := t.TempDir()
			db := mustOpenDir(t, dir)
			chainOfFour(t, db)
			mustVerifyFrom(t, db, 4, 4)
			dissent(t, db, "five")
			dissent(t, db, "six")
			db = tamper(t, dir, db, tt.fn)
			for call := 1; call <= 2; call++ { // found again: a broken event never becomes the checkpoint
				v, n, err := db.VerifyFrom(ctx)
				var ce *ChainError
				if !errors.As(err, &ce) {
					t.Fatalf("call %d: VerifyFrom err = %v, want a *ChainError", call, err)
				}
				if ce.Seq != tt.seq || ce.Reason != tt.reason {
					t.Errorf("call %d: ChainError = %d %q, want %d %q", call, ce.Seq, ce.Reason, tt.seq, tt.reason)
				}
				if v != 4 || n != tt.checked {
					t.Errorf("call %d: VerifyFrom = %d, %d; want 4 (the checkpoint), %d", call, v, n, tt.checked)
				}
			}
			if seq, _ := checkpointOf(t, db); seq != 4 {
				t.Errorf("checkpoint = %d, want 4", seq)
			}
		})
	}
}

// TestVerifyFromChecksTheCheckpointEvent: the checkpoint's own event is
// re-read on every call.
func TestVerifyFromChecksTheCheckpointEvent(t *testing.T) {
	for _, tt := range []struct {
		name   string
		fn     func(tx *bolt.Tx) error
		reason string
	}{
		{"content changed", func(tx *bolt.Tx) error {
			b := tx.Bucket(bucketEvents)
			return b.Put(u64(4), bytes.Replace(b.Get(u64(4)), []byte(`"acme/api"`), []byte(`"acme/web"`), 1))
		}, "hash does not match its content"},
		{"content changed and rehashed", func(tx *bolt.Tx) error {
			return reseal(tx, 4, func(ev *bot.Event) { ev.Actor = "eve" })
		}, "hash is not the one verified at the checkpoint"},
		{"deleted", func(tx *bolt.Tx) error {
			return tx.Bucket(bucketEvents).Delete(u64(4))
		}, "missing: it is the verified checkpoint"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			dir := t.TempDir()
			db := mustOpenDir(t, dir)
			chainOfFour(t, db)
			mustVerifyFrom(t, db, 4, 4)
			db = tamper(t, dir, db, tt.fn)
			_, _, err := db.VerifyFrom(ctx)
			var ce *ChainError
			if !errors.As(err, &ce) || ce.Seq != 4 || ce.Reason != tt.reason {
				t.Errorf("VerifyFrom err = %v, want event 4: %s", err, tt.reason)
			}
		})
	}
}

// TestVerifyFromOnAnOldFile: a file written before checkpoints existed
// (none in meta) is checked from the first event, so tampering done
// before the first call is found.
func TestVerifyFromOnAnOldFile(t *testing.T) {
	dir := t.TempDir()
	db := mustOpenDir(t, dir)
	chainOfFour(t, db)
	db = tamper(t, dir, db, func(tx *bolt.Tx) error {
		return reseal(tx, 1, func(ev *bot.Event) { ev.Data.Author = "eve" })
	})
	v, n, err := db.VerifyFrom(ctx)
	var ce *ChainError
	if !errors.As(err, &ce) || ce.Seq != 2 || ce.Reason != "prev_hash does not match event 1" {
		t.Errorf("VerifyFrom err = %v, want event 2: prev_hash does not match event 1", err)
	}
	if v != 0 || n != 1 {
		t.Errorf("VerifyFrom = %d, %d; want 0, 1", v, n)
	}
	if seq, _ := checkpointOf(t, db); seq != 0 {
		t.Errorf("checkpoint = %d, want none", seq)
	}
}

// TestVerifyFromCannotSeeBeforeTheCheckpoint documents the limit: an
// event before the checkpoint's, rewritten with its hash recomputed, is
// found by the full walk only.
func TestVerifyFromCannotSeeBeforeTheCheckpoint(t *testing.T) {
	dir := t.TempDir()
	db := mustOpenDir(t, dir)
	chainOfFour(t, db)
	mustVerifyFrom(t, db, 4, 4)
	db = tamper(t, dir, db, func(tx *bolt.Tx) error {
		return reseal(tx, 2, func(ev *bot.Event) { ev.Data.Text = "fine by me" })
	})
	mustVerifyFrom(t, db, 4, 0)
	var ce *ChainError
	if _, err := db.Verify(ctx); !errors.As(err, &ce) || ce.Seq != 3 {
		t.Errorf("Verify err = %v, want event 3's link broken", err)
	}
}

// TestVerifyFromConcurrent runs checks while events are committed: each
// returns a verified chain, and the checkpoint only moves forward.
func TestVerifyFromConcurrent(t *testing.T) {
	db := mustOpen(t)
	chainOfFour(t, db)
	var wg sync.WaitGroup
	done := make(chan struct{})
	for range 4 {
		wg.Go(func() {
			var last uint64
			for {
				v, _, err := db.VerifyFrom(ctx)
				if err != nil {
					t.Error(err)
					return
				}
				if v < last {
					t.Errorf("verified %d after %d", v, last)
				}
				last = v
				select {
				case <-done:
					return
				default:
				}
			}
		})
	}
	for i := range 50 {
		dissent(t, db, string(rune('a'+i%26)))
	}
	close(done)
	wg.Wait()
	v, _, err := db.VerifyFrom(ctx)
	if err != nil || v != 54 {
		t.Errorf("VerifyFrom = %d, %v; want 54, nil", v, err)
	}
	if seq, _ := checkpointOf(t, db); seq != 54 {
		t.Errorf("checkpoint = %d, want 54", seq)
	}
}

// reseal rewrites event seq with edit applied and its hash recomputed, as
// someone who knows the format would.
func reseal(tx *bolt.Tx, seq uint64, edit func(*bot.Event)) error {
	b := tx.Bucket(bucketEvents)
	var ev bot.Event
	if err := json.Unmarshal(b.Get(u64(seq)), &ev); err != nil {
		return err
	}
	edit(&ev)
	rec, err := seal(&ev)
	if err != nil {
		return err
	}
	return b.Put(u64(seq), rec)
}
