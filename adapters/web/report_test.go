package web_test

import (
	"context"
	"encoding/json"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/threatgate/threatgate/adapters/web"
	"github.com/threatgate/threatgate/bot"
)

// scanless is a Reader that fails the test on any read of the whole
// store, and records the windows of the log read.
type scanless struct {
	web.Reader
	t       *testing.T
	windows [][2]time.Time
}

func (s *scanless) List(context.Context) ([]*bot.Escalation, error) {
	s.t.Error("List: the weekly report read every escalation")
	return nil, nil
}

func (s *scanless) Verify(context.Context) (int, error) {
	s.t.Error("Verify: the weekly report walked the whole chain")
	return 0, nil
}

func (s *scanless) EventsBetween(ctx context.Context, from, to time.Time) ([]bot.Event, error) {
	s.windows = append(s.windows, [2]time.Time{from, to})
	return s.Reader.EventsBetween(ctx, from, to)
}

// TestWeeklyReportPage: by default the last full week (the seed ends on
// Thursday of W45, so W44: ESC-3 opened and deferred, ESC-4 opened and
// rejected), in the shared layout, read from that week of the log only.
func TestWeeklyReportPage(t *testing.T) {
	var reader *scanless
	s := newDashSite(t, withReader(func(r web.Reader) web.Reader { reader = &scanless{Reader: r, t: t}; return reader }))
	s.seed()
	res := s.get("/reports/weekly")
	wantStatus(t, res, http.StatusOK)
	page := body(t, res)
	wantContains(t, page,
		"<title>Weekly report 2026-W44 · threatgate</title>",
		"Test banner", // the shared layout
		"Monday 2026-10-26 to Sunday 2026-11-01, UTC",
		"<strong>2</strong> opened", "<strong>1</strong> decided", "<strong>1</strong> rejected",
		"<strong>0%</strong> SLA breaches (0 of 1)",
		"<strong>50%</strong> deferred (1 of 2)",
		`href="/reports/weekly?week=2026-W43"`, `href="/reports/weekly?week=2026-W45"`,
		`href="/reports/weekly?format=json&amp;week=2026-W44"`,
		"<code>auth</code>", "access-control",
		"No manual escalation was filed this week.",
	)
	wantNotContains(t, page, "The week is not over yet", "<script>alert")
	from := time.Date(2026, 10, 26, 0, 0, 0, 0, time.UTC)
	if len(reader.windows) != 1 || !reader.windows[0][0].Equal(from) || !reader.windows[0][1].Equal(from.AddDate(0, 0, 7)) {
		t.Errorf("read the log over %v, want the week from %v", reader.windows, from)
	}
	if times := section(t, page, "times"); !strings.Contains(times, "T2") || !strings.Contains(times, "high") {
		t.Errorf("times per tier lack T2:\n%s", times)
	}

	// The week under way: not final, no next week.
	page = body(t, s.get("/reports/weekly?week=2026-W45"))
	wantContains(t, page, "Weekly report <span class=\"title\">2026-W45</span>", "The week is not over yet",
		"<strong>0%</strong> SLA breaches (0 of 0)") // ESC-6 is due on Saturday
	wantNotContains(t, page, "next week")
}

// TestWeeklyReportJSON: ?format=json is the bot.WeeklyReport, durations
// in seconds.
func TestWeeklyReportJSON(t *testing.T) {
	s := newDashSite(t)
	s.seed()
	res := s.get("/reports/weekly?week=2026-W44&format=json")
	wantStatus(t, res, http.StatusOK)
	if ct := res.Header.Get("Content-Type"); ct != "application/json" {
		t.Errorf("Content-Type = %q", ct)
	}
	raw := body(t, res)
	var r bot.WeeklyReport
	if err := json.Unmarshal([]byte(raw), &r); err != nil {
		t.Fatalf("%v:\n%s", err, raw)
	}
	if r.Year != 2026 || r.Week != 44 || r.Opened != 2 || r.Decided != 1 || r.Deferrals != (bot.Rate{Count: 1, Of: 2}) {
		t.Errorf("report = %+v", r)
	}
	wantContains(t, raw, `"first_response": {`, `"median_seconds":`, `"sla_breaches": {`)
}

// TestWeeklyReportRefusals: what the user can fix is a 400 naming it, as
// a page or as JSON; the page needs the token like every other.
func TestWeeklyReportRefusals(t *testing.T) {
	s := newDashSite(t)
	s.clock.Set(time.Date(2026, 11, 5, 9, 0, 0, 0, time.UTC))
	for _, tt := range []struct{ path, want string }{
		{"/reports/weekly?week=banana", `want an ISO week such as &#34;2026-W49&#34;, got &#34;banana&#34;`},
		{"/reports/weekly?week=2025-W53", "2025 has weeks 1 to 52, not 53"},
		{"/reports/weekly?week=2026-W46", "2026-W46 has not begun yet; the last full week is 2026-W44."},
		{"/reports/weekly?format=xml", "format: want json"},
	} {
		res := s.get(tt.path)
		wantStatus(t, res, http.StatusBadRequest)
		wantContains(t, body(t, res), tt.want)
	}
	res := s.get("/reports/weekly?week=banana&format=json")
	wantStatus(t, res, http.StatusBadRequest)
	var e struct{ Error string }
	if err := json.NewDecoder(res.Body).Decode(&e); err != nil || !strings.Contains(e.Error, "want an ISO week") {
		t.Errorf("JSON refusal = %+v, %v", e, err)
	}

	locked := newDashSite(t, withToken("s3cret-token"))
	res = locked.get("/reports/weekly")
	wantStatus(t, res, http.StatusFound)
	if loc := res.Header.Get("Location"); !strings.HasPrefix(loc, "/login?next=") {
		t.Errorf("Location = %q, want the login form", loc)
	}
	wantStatus(t, locked.get("/reports/weekly", bearer("s3cret-token")), http.StatusOK)
}

// TestConsoleGeneralShowsTheDigest: the daily digest, delivered by the
// dispatcher to the console, is a post in General (not a thread), its
// outside text made inert, posted once per effect.
func TestConsoleGeneralShowsTheDigest(t *testing.T) {
	site, console, srv, client := consoleSite(t)
	site.seed()
	ctx := context.Background()
	if err := site.eng.Digest(ctx, site.clock.Now(), time.Time{}, "http://127.0.0.1:8080/"); err != nil {
		t.Fatal(err)
	}
	d := bot.NewDispatcher(site.db, nil, console, nil, site.clock, nil)
	d.Threads = site.db
	for range 2 {
		if _, err := d.DeliverDue(ctx); err != nil {
			t.Fatal(err)
		}
	}
	if _, posts := console.Thread(""); len(posts) != 0 {
		t.Errorf("the digest opened a thread of no escalation: %+v", posts)
	}
	_, page := getPage(t, client, srv.URL+"/console")
	general := page[strings.Index(page, "<h2>General</h2>"):]
	wantContains(t, general, "Security review digest, 2026-11-05 09:00 UTC", "ESC-6 URGENT shop/web!5", "Dashboard: http://127.0.0.1:8080/")
	if n := strings.Count(general, "Security review digest"); n != 1 {
		t.Errorf("the digest is in General %d times, want once", n)
	}
	wantNotContains(t, general, "<script>alert")
}
