package store

import (
	"testing"
	"time"
)

func TestSeenKey(t *testing.T) {
	db := mustOpen(t, KeyTTL(time.Hour))
	at := time.Date(2026, 11, 2, 9, 0, 0, 0, time.UTC)
	c := openCommit("g/p", 1, at, at.Add(48*time.Hour))
	c.Key = "uuid-1"
	mustCommit(t, db, c)
	for _, tt := range []struct {
		key  string
		now  time.Time
		want bool
	}{
		{"uuid-1", at.Add(time.Minute), true},
		{"uuid-2", at.Add(time.Minute), false},
		{"uuid-1", at.Add(time.Hour), false}, // expired
	} {
		got, err := db.SeenKey(ctx, tt.key, tt.now)
		if err != nil || got != tt.want {
			t.Errorf("SeenKey(%q, +%s) = %v, %v; want %v", tt.key, tt.now.Sub(at), got, err, tt.want)
		}
	}
}
