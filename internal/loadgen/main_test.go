package main

import (
	"context"
	"maps"
	"path/filepath"
	"strings"
	"testing"

	"github.com/threatgate/threatgate/store"
)

// TestBuildSmallStore builds a small store through the engine and checks
// what it holds: the escalations asked for, the open ones, the history's
// end, a verified chain, and counters equal to those rebuilt.
func TestBuildSmallStore(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "data")
	var out strings.Builder
	if err := run(context.Background(), []string{"--escalations", "60", "--open", "10", "--workers", "3", "--days", "30", "--out", dir}, &out); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(out.String(), "built 60 escalations (10 open)") {
		t.Errorf("output %q", out.String())
	}
	db, err := store.Open(dir, store.NoSync())
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	agg, err := db.Aggregates(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	if agg.Total != 60 || agg.Open() != 10 || agg.Bypassed == 0 {
		t.Errorf("total %d, open %d, bypassed %d; want 60, 10, some", agg.Total, agg.Open(), agg.Bypassed)
	}
	if _, err := db.Verify(t.Context()); err != nil {
		t.Error(err)
	}
	kept, _ := db.Counters(t.Context())
	if err := db.RebuildAggregates(t.Context()); err != nil {
		t.Fatal(err)
	}
	if rebuilt, _ := db.Counters(t.Context()); !maps.Equal(kept, rebuilt) {
		t.Errorf("counters kept %v, rebuilt %v", kept, rebuilt)
	}
	if err := run(context.Background(), []string{"--escalations", "1", "--open", "0", "--out", dir}, &out); err == nil {
		t.Error("a second build into the same directory was not refused")
	}
}
