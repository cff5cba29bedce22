package store

import (
	"context"
	"path/filepath"
	"testing"
	"time"
)

func TestWatermarkSurvivesReopen(t *testing.T) {
	ctx := context.Background()
	dir := filepath.Join(t.TempDir(), "data")
	db, err := Open(dir)
	if err != nil {
		t.Fatal(err)
	}
	if _, ok, err := db.Watermark(ctx, "gitlab/shop/api"); ok || err != nil {
		t.Fatalf("Watermark before any = %v, %v; want none", ok, err)
	}
	at := time.Date(2026, 12, 7, 9, 30, 0, 123456789, time.UTC)
	if err := db.SetWatermark(ctx, "gitlab/shop/api", at); err != nil {
		t.Fatal(err)
	}
	db.Close()
	db, err = Open(dir)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	got, ok, err := db.Watermark(ctx, "gitlab/shop/api")
	if !ok || err != nil || !got.Equal(at) {
		t.Errorf("Watermark after reopen = %s, %v, %v; want %s", got, ok, err, at)
	}
	if _, ok, _ := db.Watermark(ctx, "gitlab/shop/web"); ok {
		t.Error("another name has a watermark")
	}
}
