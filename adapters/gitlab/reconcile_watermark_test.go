package gitlab

import (
	"context"
	"fmt"
	"net/http"
	"testing"
	"time"

	"github.com/threatgate/threatgate/bot"
)

// dateAhead is a transport whose answers' Date header is ahead of the
// clock that stamps updated_at by ahead: the node that answers runs
// fast, or the one that writes runs slow.
type dateAhead struct {
	next  http.RoundTripper
	ahead time.Duration
}

func (d dateAhead) RoundTrip(r *http.Request) (*http.Response, error) {
	resp, err := d.next.RoundTrip(r)
	if resp != nil {
		if t, perr := http.ParseTime(resp.Header.Get("Date")); perr == nil {
			resp.Header.Set("Date", t.Add(d.ahead).UTC().Format(http.TimeFormat))
		}
	}
	return resp, err
}

// TestReconcileWatermarkNotPastWhatWasListed is the attacker's test of
// the watermark: GitLab's Date header runs an hour ahead of the
// updated_at its nodes stamp, more than the 15 minutes of overlap. Were
// the watermark the Date, the next pass would list pipelines from 45
// minutes in the future, and a forged success on an escalation's head
// (which moves no MR, so no list of MRs, full or not, shows it) would
// never be seen. The watermark never moves past the newest updated_at a
// pass listed, so the forgery is found by the next pass.
func TestReconcileWatermarkNotPastWhatWasListed(t *testing.T) {
	r := newRig(t, "status")
	r.openMRs(7, 8)

	hc := &http.Client{Transport: dateAhead{next: r.gl.Client().Transport, ahead: time.Hour}}
	client, err := New(Config{BaseURL: r.gl.URL, Token: bot.Secret(r.gl.Token), StatusName: statusName, Gate: GateStatus, Timeout: 5 * time.Second, HTTPClient: hc})
	if err != nil {
		t.Fatal(err)
	}
	client.now = r.clock.Now
	r.worker.Fetch = client
	r.worker.FullEvery = 1000 * time.Hour
	r.disp = bot.NewDispatcher(r.db, client, nil, nil, r.clock, nil)
	// Two passes: the second begins with GitLab's clock known (the Date).
	for range 2 {
		r.clock.Advance(10 * time.Minute)
		r.pass()
	}
	mark, _, _ := r.db.Watermark(context.Background(), watermarkName("shop/api"))
	if mark.After(r.clock.Now()) {
		t.Errorf("watermark %s is ahead of every updated_at GitLab stamped (now %s)", mark, r.clock.Now())
	}

	r.clock.Advance(5 * time.Minute)
	head := fmt.Sprintf("%040d", 7)
	r.gl.SetStatusAs("shop/api", head, statusName, "success", "mallory")
	r.clock.Advance(5 * time.Minute)
	r.pass()
	if e := r.escalation(7); e.Forged != 1 {
		t.Errorf("!7 forged = %d, want the forged status found by the next pass", e.Forged)
	}
	if st := r.lastStatus(head); st.State != "pending" || st.Author != "threatgate-bot" {
		t.Errorf("gate on !7: %+v, want threatgate's pending again", st)
	}
}

func TestNextMark(t *testing.T) {
	t0 := time.Date(2026, 12, 7, 9, 0, 0, 0, time.UTC)
	for _, tt := range []struct {
		name                      string
		start, newest, prev, want time.Time
	}{
		{"first pass, nothing listed", t0, time.Time{}, time.Time{}, t0},
		{"nothing listed keeps the mark", t0, time.Time{}, t0.Add(-time.Hour), t0.Add(-time.Hour)},
		{"a mark ahead of the start comes back", t0, time.Time{}, t0.Add(time.Hour), t0},
		{"a busy project: the start", t0, t0.Add(-time.Minute), t0.Add(-time.Hour), t0},
		{"a quiet project: its last change, the overlap and a second", t0, t0.Add(-time.Hour), t0.Add(-2 * time.Hour), t0.Add(-time.Hour + ReconcileOverlap + time.Second)},
		{"a date an hour ahead of the stamps", t0.Add(time.Hour), t0, t0.Add(-time.Hour), t0.Add(ReconcileOverlap + time.Second)},
		{"a stamp ahead of the start", t0, t0.Add(time.Minute), t0.Add(-time.Hour), t0},
	} {
		if got := nextMark(tt.start, tt.newest, tt.prev); !got.Equal(tt.want) {
			t.Errorf("%s: nextMark = %s, want %s", tt.name, got, tt.want)
		}
	}
}
