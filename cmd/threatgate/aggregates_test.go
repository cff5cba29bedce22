package main

import (
	"context"
	"encoding/binary"
	"path/filepath"
	"strings"
	"testing"
	"time"

	bolt "go.etcd.io/bbolt"

	"github.com/threatgate/threatgate/bot"
	"github.com/threatgate/threatgate/store"
)

func TestAggregatesRebuildCommand(t *testing.T) {
	dir := t.TempDir()
	db, err := store.Open(dir, store.NoSync())
	if err != nil {
		t.Fatal(err)
	}
	at := time.Date(2026, 12, 1, 9, 0, 0, 0, time.UTC)
	for i := range 3 {
		e := &bot.Escalation{Project: "shop/api", MRIID: int64(i + 1), Tier: "T2", State: bot.StateInReview, CreatedAt: at, UpdatedAt: at}
		if _, err := db.Commit(context.Background(), &bot.Commit{Escalation: e, At: at,
			Events: []bot.Event{{Kind: bot.EventOpened, Actor: "system", At: at}}}); err != nil {
			t.Fatal(err)
		}
	}
	db.Close()

	code, stdout, stderr := runCLI(t, "", "aggregates", "rebuild", "--data", dir)
	if code != exitOK || !strings.Contains(stdout, "all equal to those kept") {
		t.Fatalf("rebuild: exit %d, stdout %q, stderr %q", code, stdout, stderr)
	}

	// A counter gone wrong (say, a file restored from a bad copy).
	bdb, err := bolt.Open(filepath.Join(dir, store.FileName), 0o600, nil)
	if err != nil {
		t.Fatal(err)
	}
	if err := bdb.Update(func(tx *bolt.Tx) error {
		return tx.Bucket([]byte("aggregates")).Put([]byte("total"), binary.BigEndian.AppendUint64(nil, 7))
	}); err != nil {
		t.Fatal(err)
	}
	bdb.Close()

	code, stdout, stderr = runCLI(t, "", "aggregates", "rebuild", "--data", dir)
	if code != exitOK || !strings.Contains(stdout, "1 differed and are now corrected") || !strings.Contains(stdout, "total: kept 7, rebuilt 3") {
		t.Fatalf("rebuild after damage: exit %d, stdout %q, stderr %q", code, stdout, stderr)
	}
	if code, _, _ := runCLI(t, "", "aggregates"); code != exitUsage {
		t.Errorf("aggregates without a subcommand: exit %d, want %d", code, exitUsage)
	}
}
