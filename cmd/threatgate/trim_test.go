package main

import (
	"context"
	"io"
	"log/slog"
	"runtime"
	"testing"

	"github.com/threatgate/threatgate/store"
)

// TestTrimOnce: over the limit, serve's trim pass hands the store's
// mapped pages back; under it, it does nothing.
func TestTrimOnce(t *testing.T) {
	if runtime.GOOS != "linux" || residentFileBytes() < 0 {
		t.Skip("needs Linux's /proc/self/status") // serve never trims elsewhere
	}
	db, err := store.Open(t.TempDir(), store.NoSync())
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	commitEvents(t, db, 1500)
	quiet := slog.New(slog.NewTextHandler(io.Discard, nil))
	ctx := context.Background()
	if trimOnce(ctx, db, 1<<62, quiet) {
		t.Error("trimmed under the limit")
	}
	db.TrimMapped(ctx)
	base := residentFileBytes()
	if _, err := db.Verify(ctx); err != nil { // maps every event's page
		t.Fatal(err)
	}
	read := residentFileBytes()
	if read-base < 256<<10 {
		t.Fatalf("reading the log mapped only %d bytes; the test cannot tell a trim", read-base)
	}
	if !trimOnce(ctx, db, 0, quiet) {
		t.Fatal("did not trim over the limit")
	}
	if after := residentFileBytes(); after-base > (read-base)/4 {
		t.Errorf("RssFile %d bytes before reading, %d after, %d after the trim", base, read, after)
	}
	if n, err := db.Verify(ctx); err != nil || n != 1500 {
		t.Errorf("Verify after the trim = %d, %v", n, err)
	}
}
