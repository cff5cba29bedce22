package store

import (
	"testing"
	"time"

	"github.com/threatgate/threatgate/bot"
)

func TestQuarter(t *testing.T) {
	for _, tt := range []struct {
		t    time.Time
		want string
	}{
		{time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC), "2026Q1"},
		{time.Date(2026, 3, 31, 23, 59, 0, 0, time.UTC), "2026Q1"},
		{time.Date(2026, 4, 1, 0, 0, 0, 0, time.UTC), "2026Q2"},
		{time.Date(2026, 9, 30, 12, 0, 0, 0, time.UTC), "2026Q3"},
		{time.Date(2026, 12, 31, 23, 59, 59, 0, time.UTC), "2026Q4"},
		// 01:00 on April 1st in UTC+2 is still March 31st in UTC.
		{time.Date(2026, 4, 1, 1, 0, 0, 0, time.FixedZone("CEST", 2*3600)), "2026Q1"},
	} {
		if got := Quarter(tt.t); got != tt.want {
			t.Errorf("Quarter(%s) = %q, want %q", tt.t, got, tt.want)
		}
	}
}

func TestQuotaCountsAcrossQuarters(t *testing.T) {
	db := mustOpen(t)
	lastOfQ1 := time.Date(2026, 3, 31, 23, 59, 0, 0, time.UTC)
	firstOfQ2 := lastOfQ1.Add(24 * time.Hour)
	manual := func(iid int64, actor string, at time.Time) {
		t.Helper()
		c := openCommit("acme/api", iid, at, at.Add(time.Hour))
		c.Events[0].Actor, c.Events[0].Data.Manual = actor, true
		c.Events = append(c.Events, bot.Event{Kind: bot.EventFiled, Actor: actor, At: at})
		mustCommit(t, db, c)
	}
	manual(1, "ann", lastOfQ1)
	manual(2, "ann", firstOfQ2)
	manual(3, "ann", firstOfQ2)
	manual(4, "bob", firstOfQ2)
	mustCommit(t, db, openCommit("acme/api", 5, firstOfQ2, firstOfQ2)) // automatic: not counted
	override := func(person string, n int, at time.Time) {
		t.Helper()
		mustCommit(t, db, &bot.Commit{
			Events: []bot.Event{{Kind: bot.EventCapOverridden, Actor: "lead", At: at, Data: bot.EventData{Person: person, Count: n, Text: "release week"}}},
			At:     at,
		})
	}
	override("ann", 2, firstOfQ2)
	override("ann", 1, firstOfQ2)
	override("ann", 5, lastOfQ1)

	for _, tt := range []struct {
		person, quarter string
		want            bot.Quota
	}{
		{"ann", "2026Q1", bot.Quota{Manual: 1, Overrides: 5}},
		{"ann", "2026Q2", bot.Quota{Manual: 2, Overrides: 3}},
		{"bob", "2026Q2", bot.Quota{Manual: 1}},
		{"bob", "2026Q1", bot.Quota{}},
		{"system", "2026Q2", bot.Quota{}},
	} {
		got, err := db.Quota(ctx, tt.person, tt.quarter)
		if err != nil {
			t.Fatalf("Quota: %v", err)
		}
		if got != tt.want {
			t.Errorf("Quota(%s, %s) = %+v, want %+v", tt.person, tt.quarter, got, tt.want)
		}
	}
}
