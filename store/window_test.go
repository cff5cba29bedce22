package store

import (
	"context"
	"errors"
	"fmt"
	"math/bits"
	"slices"
	"testing"
	"time"

	bolt "go.etcd.io/bbolt"

	"github.com/threatgate/threatgate/bot"
)

// appendEvents commits one event at each of ats, batch at a time (one
// commit per batch, no projection), about escalations ESC-1..ESC-9 in
// turn.
func appendEvents(tb testing.TB, db *DB, ats []time.Time, batch int) {
	tb.Helper()
	for len(ats) > 0 {
		n := min(batch, len(ats))
		c := &bot.Commit{At: ats[n-1]}
		for i, at := range ats[:n] {
			c.Events = append(c.Events, bot.Event{Escalation: fmt.Sprintf("ESC-%d", i%9+1), Kind: bot.EventNudged, Actor: "system", At: at})
		}
		mustCommit(tb, db, c)
		ats = ats[n:]
	}
}

// hourly returns n times an hour apart from t0.
func hourly(n int) []time.Time {
	out := make([]time.Time, n)
	for i := range out {
		out[i] = t0.Add(time.Duration(i) * time.Hour)
	}
	return out
}

// windowOf reads [from, to) in one transaction and counts the events it
// decodes.
func windowOf(t *testing.T, db *DB, from, to time.Time) ([]bot.Event, int) {
	t.Helper()
	var got []bot.Event
	decoded := 0
	err := db.bolt.View(func(tx *bolt.Tx) error {
		var err error
		got, err = eventsBetween(ctx, tx, from, to, &decoded)
		return err
	})
	if err != nil {
		t.Fatalf("eventsBetween: %v", err)
	}
	return got, decoded
}

func ats(evs []bot.Event) []time.Time {
	out := make([]time.Time, len(evs))
	for i, ev := range evs {
		out[i] = ev.At.UTC()
	}
	return out
}

// TestEventsBetweenEdges: [from, to) holds exactly the events at from and
// after, before to, in log order with their chain fields; windows before,
// after and between events are empty, and a zero from starts at the
// first event.
func TestEventsBetweenEdges(t *testing.T) {
	db := mustOpen(t)
	if got, err := db.EventsBetween(ctx, t0, t0.Add(time.Hour)); err != nil || got != nil {
		t.Fatalf("empty log: %v, %v; want nothing", got, err)
	}
	all := hourly(48)
	appendEvents(t, db, all, 7)
	h := func(n int) time.Time { return t0.Add(time.Duration(n) * time.Hour) }
	for _, tt := range []struct {
		name     string
		from, to time.Time
		want     []time.Time
	}{
		{"exact edges", h(10), h(13), all[10:13]},
		{"inside edges", h(10).Add(-time.Minute), h(12).Add(time.Minute), all[10:13]},
		{"one event", h(5), h(5).Add(time.Nanosecond), all[5:6]},
		{"to is excluded", h(5), h(5), nil},
		{"between events", h(5).Add(time.Minute), h(6).Add(-time.Minute), nil},
		{"before the log", h(-10), h(0), nil},
		{"after the log", h(48), h(100), nil},
		{"the first", h(-10), h(0).Add(time.Nanosecond), all[:1]},
		{"the last", h(47), h(1000), all[47:]},
		{"zero from", time.Time{}, h(3), all[:3]},
		{"everything", time.Time{}, h(1000), all},
		{"reversed", h(13), h(10), nil},
	} {
		t.Run(tt.name, func(t *testing.T) {
			got, err := db.EventsBetween(ctx, tt.from, tt.to)
			if err != nil {
				t.Fatal(err)
			}
			if !slices.EqualFunc(ats(got), tt.want, time.Time.Equal) {
				t.Errorf("At = %v, want %v", ats(got), tt.want)
			}
			for i, ev := range got {
				if ev.Hash == "" || ev.PrevHash == "" || ev.Seq == 0 || (i > 0 && ev.Seq != got[i-1].Seq+1) {
					t.Errorf("event %d: Seq %d, Hash %q, PrevHash %q: want the stored record, in log order", i, ev.Seq, ev.Hash, ev.PrevHash)
				}
			}
		})
	}
}

// TestEventsBetweenReadsTheWindow: the events decoded follow the window,
// not the log: the ones in it and next to its ends, and a binary search's
// worth of probes.
func TestEventsBetweenReadsTheWindow(t *testing.T) {
	db := mustOpen(t)
	const n = 5000
	appendEvents(t, db, hourly(n), 500)
	probes := bits.Len(uint(n)) + 1
	for _, w := range []struct{ start, size int }{{0, 10}, {2500, 10}, {4990, 10}, {1000, 168}, {n - 1, 1}, {3000, 0}} {
		from := t0.Add(time.Duration(w.start) * time.Hour)
		to := from.Add(time.Duration(w.size) * time.Hour)
		if w.size == 0 { // between two events
			from, to = from.Add(time.Minute), from.Add(59*time.Minute)
		}
		got, decoded := windowOf(t, db, from, to)
		if len(got) != w.size {
			t.Errorf("window %d+%d: %d events, want %d", w.start, w.size, len(got), w.size)
		}
		// The window, what lies within windowSkew of its ends (an event
		// at most, an hour apart), the first event past it, the probes.
		if max := w.size + 2 + 1 + probes; decoded > max {
			t.Errorf("window %d+%d of %d events: decoded %d, want at most %d", w.start, w.size, n, decoded, max)
		}
	}
}

// TestEventsBetweenToleratesDisorder: At may repeat, and may go back a
// little (inputs racing to the commit): an event is found by its own At
// wherever it sits in the log.
func TestEventsBetweenToleratesDisorder(t *testing.T) {
	db := mustOpen(t)
	base := hourly(20)
	// Many events at one instant, across commits.
	same := slices.Repeat([]time.Time{t0.Add(20 * time.Hour)}, 12)
	// Then out of order by up to two minutes, across commits.
	late := []time.Time{t0.Add(21 * time.Hour), t0.Add(21*time.Hour - 2*time.Minute), t0.Add(21*time.Hour + time.Minute), t0.Add(21*time.Hour - time.Minute)}
	appendEvents(t, db, base, 3)
	appendEvents(t, db, same, 5)
	appendEvents(t, db, late, 1)

	got, err := db.EventsBetween(ctx, t0.Add(20*time.Hour), t0.Add(20*time.Hour+time.Nanosecond))
	if err != nil || len(got) != len(same) {
		t.Errorf("the instant with %d events: got %d, %v", len(same), len(got), err)
	}
	got, err = db.EventsBetween(ctx, t0.Add(21*time.Hour-90*time.Second), t0.Add(21*time.Hour))
	if err != nil {
		t.Fatal(err)
	}
	want := []time.Time{t0.Add(21*time.Hour - time.Minute)}
	if !slices.EqualFunc(ats(got), want, time.Time.Equal) {
		t.Errorf("out of order: At = %v, want %v", ats(got), want)
	}
	got, err = db.EventsBetween(ctx, t0.Add(21*time.Hour-3*time.Minute), t0.Add(22*time.Hour))
	if err != nil || len(got) != len(late) {
		t.Fatalf("all the late ones: got %d (%v), want %d", len(got), err, len(late))
	}
	if !got[0].At.After(got[1].At) {
		t.Errorf("want log order, not time order: %v", ats(got))
	}
}

// TestEventsBetweenSurvivesReopen: the window is read from the file.
func TestEventsBetweenSurvivesReopen(t *testing.T) {
	dir := t.TempDir()
	db := mustOpenDir(t, dir)
	appendEvents(t, db, hourly(30), 4)
	mustClose(t, db)
	db = mustOpenDir(t, dir)
	got, err := db.EventsBetween(ctx, t0.Add(10*time.Hour), t0.Add(20*time.Hour))
	if err != nil || len(got) != 10 {
		t.Errorf("after reopening: %d events, %v; want 10", len(got), err)
	}
}

// TestEventsBetweenCancelled: a cancelled context reads nothing.
func TestEventsBetweenCancelled(t *testing.T) {
	db := mustOpen(t)
	appendEvents(t, db, hourly(3), 3)
	c, cancel := context.WithCancel(ctx)
	cancel()
	if _, err := db.EventsBetween(c, t0, t0.Add(time.Hour)); !errors.Is(err, context.Canceled) {
		t.Errorf("err = %v, want context.Canceled", err)
	}
}

// BenchmarkEventsBetween reads a day and a week out of a year of 100,000
// events (one every 5 minutes and a quarter), as the digest and the weekly
// report do.
func BenchmarkEventsBetween(b *testing.B) {
	db := mustOpen(b)
	const n = 100_000
	step := 365 * 24 * time.Hour / n
	times := make([]time.Time, n)
	for i := range times {
		times[i] = t0.Add(time.Duration(i) * step)
	}
	appendEvents(b, db, times, 2000)
	mid := t0.Add(200 * 24 * time.Hour)
	for _, w := range []struct {
		name string
		size time.Duration
	}{{"day", 24 * time.Hour}, {"week", 7 * 24 * time.Hour}} {
		b.Run(w.name, func(b *testing.B) {
			var got []bot.Event
			for b.Loop() {
				var err error
				if got, err = db.EventsBetween(ctx, mid, mid.Add(w.size)); err != nil {
					b.Fatal(err)
				}
			}
			b.ReportMetric(float64(len(got)), "events/op")
		})
	}
}
