package store

import (
	"encoding/json"
	"testing"
	"time"

	bolt "go.etcd.io/bbolt"

	"github.com/threatgate/threatgate/bot"
)

// TestMigrateTickIndex: a file from before the tick index (schema 4) gets
// every open escalation due for a first tick, with the projection and the
// index in agreement (so the next commit replaces the entry), and closed
// ones left out.
func TestMigrateTickIndex(t *testing.T) {
	dir := t.TempDir()
	db := mustOpenDir(t, dir, withMigrations(migrations[:4]))
	if err := db.bolt.Update(func(tx *bolt.Tx) error {
		for _, e := range []bot.Escalation{
			{ID: "ESC-1", Project: "g/p", MRIID: 1, State: bot.StateInReview, Version: 3},
			{ID: "ESC-2", Project: "g/p", MRIID: 2, State: bot.StateApproved, Version: 5},
		} {
			v, _ := json.Marshal(e)
			if err := tx.Bucket(bucketEscalations).Put([]byte(e.ID), v); err != nil {
				return err
			}
		}
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	mustClose(t, db)
	db = mustOpenDir(t, dir)
	ids, err := db.TicksDue(ctx, time.Unix(1, 0), 0)
	if err != nil || len(ids) != 1 || ids[0] != "ESC-1" {
		t.Fatalf("ticks due after migration: %v, %v; want ESC-1 only", ids, err)
	}
	e, err := db.FindEscalation(ctx, "ESC-1")
	if err != nil || !e.NextTick.Equal(tickEpoch) {
		t.Fatalf("ESC-1 after migration: %+v, %v", e, err)
	}
	// A commit with a new NextTick replaces the entry.
	e.NextTick = t0.Add(time.Hour)
	if _, err := db.Commit(ctx, &bot.Commit{Escalation: e, Expect: e.Version, At: t0}); err != nil {
		t.Fatal(err)
	}
	if ids, _ := db.TicksDue(ctx, t0, 0); len(ids) != 0 {
		t.Errorf("the epoch entry survived the commit: %v", ids)
	}
	if ids, _ := db.TicksDue(ctx, t0.Add(time.Hour), 0); len(ids) != 1 {
		t.Errorf("the new entry is missing: %v", ids)
	}
}
