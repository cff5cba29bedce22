package store

import (
	"bytes"
	"encoding/json"
	"errors"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	bolt "go.etcd.io/bbolt"

	"github.com/threatgate/threatgate/bot"
)

// chainOfFour commits four events: ESC-1 opened and dissented on, a cap
// override about no escalation, ESC-2 opened.
func chainOfFour(t *testing.T, db *DB) {
	t.Helper()
	esc := mustCommit(t, db, openCommit("acme/api", 1, t0, t0.Add(time.Hour)))
	mustCommit(t, db, change(esc, bot.Event{Kind: bot.EventDissent, Actor: "bob", At: t0.Add(time.Minute), Data: bot.EventData{Text: "too risky"}}, nil))
	mustCommit(t, db, &bot.Commit{
		Events: []bot.Event{{Kind: bot.EventCapOverridden, Actor: "lead", At: t0, Data: bot.EventData{Person: "ann", Count: 2}}},
		At:     t0,
	})
	mustCommit(t, db, openCommit("acme/api", 2, t0, t0))
}

func TestEventsAreChained(t *testing.T) {
	db := mustOpen(t)
	chainOfFour(t, db)
	evs := allEvents(t, db)
	if len(evs) != 4 {
		t.Fatalf("got %d events, want 4", len(evs))
	}
	prev := strings.Repeat("0", 64)
	for i, ev := range evs {
		if ev.Seq != uint64(i+1) {
			t.Errorf("event %d: Seq = %d", i+1, ev.Seq)
		}
		if ev.PrevHash != prev {
			t.Errorf("event %d: PrevHash = %q, want %q", i+1, ev.PrevHash, prev)
		}
		// Recompute as an auditor would: the event's JSON without its hash.
		noHash := ev
		noHash.Hash = ""
		canon, err := json.Marshal(noHash)
		if err != nil {
			t.Fatal(err)
		}
		if want := chainHash(prev, canon); ev.Hash != want {
			t.Errorf("event %d: Hash = %q, want %q", i+1, ev.Hash, want)
		}
		prev = ev.Hash
	}
	if evs[2].Escalation != "" {
		t.Errorf("cap override: Escalation = %q, want none", evs[2].Escalation)
	}
	esc1, err := db.Events(ctx, "ESC-1")
	if err != nil {
		t.Fatal(err)
	}
	if got := []uint64{esc1[0].Seq, esc1[1].Seq}; len(esc1) != 2 || !slices.Equal(got, []uint64{1, 2}) {
		t.Errorf("Events(ESC-1) seqs = %v, want [1 2]", got)
	}
	if n, err := db.Verify(ctx); err != nil || n != 4 {
		t.Errorf("Verify = %d, %v, want 4, nil", n, err)
	}
}

func TestStoredRecordIsTheEventJSON(t *testing.T) {
	db := mustOpen(t)
	chainOfFour(t, db)
	err := db.bolt.View(func(tx *bolt.Tx) error {
		return tx.Bucket(bucketEvents).ForEach(func(k, v []byte) error {
			v, err := unpack(v)
			if err != nil {
				return err
			}
			var ev bot.Event
			if err := json.Unmarshal(v, &ev); err != nil {
				return err
			}
			again, err := json.Marshal(ev)
			if err != nil {
				return err
			}
			if !bytes.Equal(again, v) {
				t.Errorf("record %x:\n got %s\nwant %s", k, v, again)
			}
			return nil
		})
	})
	if err != nil {
		t.Fatal(err)
	}
}

// tamper closes db and changes its file directly, then opens it again
// without the cleanup check, for Verify to find what was done.
func tamper(t *testing.T, dir string, db *DB, fn func(tx *bolt.Tx) error) *DB {
	t.Helper()
	mustClose(t, db)
	b, err := bolt.Open(filepath.Join(dir, FileName), 0o600, &bolt.Options{Timeout: time.Second})
	if err != nil {
		t.Fatal(err)
	}
	// Packed values are stored as plain JSON first (a form every reader
	// accepts, as an attacker may write), so fn edits the JSON; tests of
	// packed values themselves are in codec_test.go.
	if err := b.Update(func(tx *bolt.Tx) error {
		if err := unpackAll(tx); err != nil {
			return err
		}
		return fn(tx)
	}); err != nil {
		t.Fatal(err)
	}
	if err := b.Close(); err != nil {
		t.Fatal(err)
	}
	db, err = Open(dir, NoSync())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	return db
}

func TestVerifyFindsTampering(t *testing.T) {
	for _, tt := range []struct {
		name    string
		fn      func(tx *bolt.Tx) error
		seq     uint64
		reason  string
		checked int
	}{
		{"content changed", func(tx *bolt.Tx) error {
			b := tx.Bucket(bucketEvents)
			v := b.Get(u64(2))
			return b.Put(u64(2), bytes.Replace(v, []byte(`"actor":"bob"`), []byte(`"actor":"eve"`), 1))
		}, 2, "hash does not match its content", 1},
		{"content changed and rehashed", func(tx *bolt.Tx) error {
			b := tx.Bucket(bucketEvents)
			var ev bot.Event
			if err := json.Unmarshal(b.Get(u64(2)), &ev); err != nil {
				return err
			}
			ev.Data.Text = "fine by me"
			rec, err := seal(&ev)
			if err != nil {
				return err
			}
			return b.Put(u64(2), rec)
		}, 3, "prev_hash does not match event 2", 2},
		{"event deleted", func(tx *bolt.Tx) error {
			return tx.Bucket(bucketEvents).Delete(u64(3))
		}, 4, "follows event 2; event 3 is missing", 2},
		{"last event deleted", func(tx *bolt.Tx) error {
			return tx.Bucket(bucketEvents).Delete(u64(4))
		}, 4, "missing: the log ends at event 3 but the chain head is event 4", 3},
		{"hash member removed", func(tx *bolt.Tx) error {
			b := tx.Bucket(bucketEvents)
			v := b.Get(u64(1))
			i := bytes.LastIndex(v, []byte(`,"hash"`))
			return b.Put(u64(1), append(bytes.Clone(v[:i]), '}'))
		}, 1, "record does not end with its hash", 0},
	} {
		t.Run(tt.name, func(t *testing.T) {
			dir := t.TempDir()
			db := mustOpenDir(t, dir)
			chainOfFour(t, db)
			db = tamper(t, dir, db, tt.fn)
			n, err := db.Verify(ctx)
			var ce *ChainError
			if !errors.As(err, &ce) {
				t.Fatalf("Verify err = %v, want a *ChainError", err)
			}
			if ce.Seq != tt.seq || ce.Reason != tt.reason {
				t.Errorf("ChainError = %d %q, want %d %q", ce.Seq, ce.Reason, tt.seq, tt.reason)
			}
			if n != tt.checked {
				t.Errorf("checked = %d, want %d", n, tt.checked)
			}
		})
	}
}

func TestChainErrorText(t *testing.T) {
	err := &ChainError{Seq: 17, Reason: "hash does not match its content"}
	if got, want := err.Error(), "event 17: hash does not match its content"; got != want {
		t.Errorf("Error() = %q, want %q", got, want)
	}
}

// unpackAll stores every packed event record and projection as its JSON.
func unpackAll(tx *bolt.Tx) error {
	for _, name := range [][]byte{bucketEvents, bucketEscalations} {
		b := tx.Bucket(name)
		type kv struct{ k, v []byte }
		var todo []kv
		err := b.ForEach(func(k, v []byte) error {
			if len(v) > 0 && v[0] != '{' {
				js, err := unpack(v)
				if err != nil {
					return err
				}
				todo = append(todo, kv{bytes.Clone(k), js})
			}
			return nil
		})
		if err != nil {
			return err
		}
		for _, p := range todo {
			if err := b.Put(p.k, p.v); err != nil {
				return err
			}
		}
	}
	return nil
}
