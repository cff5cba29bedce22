package web_test

import (
	"encoding/json"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/threatgate/threatgate/adapters/web"
	"github.com/threatgate/threatgate/bot"
)

// TestRetroPage: by default the current quarter (the seed runs from
// October to 5 November 2026), in the shared layout, read from that
// quarter of the log only.
func TestRetroPage(t *testing.T) {
	var reader *scanless
	s := newDashSite(t, withReader(func(r web.Reader) web.Reader { reader = &scanless{Reader: r, t: t}; return reader }))
	s.seed()
	res := s.get("/reports/retro")
	wantStatus(t, res, http.StatusOK)
	page := body(t, res)
	wantContains(t, page,
		"<title>Retrospective 2026Q4 · threatgate</title>",
		"Test banner",
		"2026-10-01 to 2026-12-31, UTC",
		"The quarter is not over yet",
		`href="/reports/retro?format=json&amp;quarter=2026Q4"`,
		"Outcomes per tier", "SLA breaches and where they stalled", "Policy tuning suggestions",
	)
	wantNotContains(t, page, "<script>alert")
	from := time.Date(2026, 10, 1, 0, 0, 0, 0, time.UTC)
	if len(reader.windows) != 1 || !reader.windows[0][0].Equal(from) || !reader.windows[0][1].Equal(from.AddDate(0, 3, 0)) {
		t.Errorf("read the log over %v, want the quarter from %v", reader.windows, from)
	}
	if tiers := section(t, page, "outcomes"); !strings.Contains(tiers, "T2") {
		t.Errorf("outcomes lack T2:\n%s", tiers)
	}
	if b := section(t, page, "breaches"); !strings.Contains(b, "awaiting_artifacts") {
		t.Errorf("breaches do not say where ESC-2 stalled:\n%s", b)
	}
}

// TestRetroJSON: ?format=json is the bot.Retro.
func TestRetroJSON(t *testing.T) {
	s := newDashSite(t)
	s.seed()
	res := s.get("/reports/retro?quarter=2026Q4&format=json")
	wantStatus(t, res, http.StatusOK)
	if ct := res.Header.Get("Content-Type"); ct != "application/json" {
		t.Errorf("Content-Type = %q", ct)
	}
	raw := body(t, res)
	var r bot.Retro
	if err := json.Unmarshal([]byte(raw), &r); err != nil {
		t.Fatalf("%v:\n%s", err, raw)
	}
	if r.Year != 2026 || r.Quarter != 4 || len(r.Tiers) == 0 {
		t.Errorf("retro = %+v", r)
	}
	wantContains(t, raw, `"sla_breaches": [`, `"suggestions": [`, `"stalled": {`)
}

// TestRetroRefusals: a bad quarter is a 400 naming it, as a page or as
// JSON; the page needs the token like every other.
func TestRetroRefusals(t *testing.T) {
	s := newDashSite(t)
	s.clock.Set(time.Date(2026, 11, 5, 9, 0, 0, 0, time.UTC))
	for _, tt := range []struct{ path, want string }{
		{"/reports/retro?quarter=banana", `want a quarter such as &#34;2026Q4&#34;, got &#34;banana&#34;`},
		{"/reports/retro?quarter=2026Q5", "a year has quarters 1 to 4, not 5"},
		{"/reports/retro?quarter=2027Q1", "2027Q1 has not begun yet; the current quarter is 2026Q4."},
		{"/reports/retro?format=xml", "format: want json"},
	} {
		res := s.get(tt.path)
		wantStatus(t, res, http.StatusBadRequest)
		wantContains(t, body(t, res), tt.want)
	}
	res := s.get("/reports/retro?quarter=banana&format=json")
	wantStatus(t, res, http.StatusBadRequest)
	var e struct{ Error string }
	if err := json.NewDecoder(res.Body).Decode(&e); err != nil || !strings.Contains(e.Error, "want a quarter") {
		t.Errorf("JSON refusal = %+v, %v", e, err)
	}

	locked := newDashSite(t, withToken("s3cret-token"))
	res = locked.get("/reports/retro")
	wantStatus(t, res, http.StatusFound)
	if loc := res.Header.Get("Location"); !strings.HasPrefix(loc, "/login?next=") {
		t.Errorf("Location = %q, want the login form", loc)
	}
	wantStatus(t, locked.get("/reports/retro?format=json"), http.StatusFound)
	wantStatus(t, locked.get("/reports/retro", bearer("s3cret-token")), http.StatusOK)
}

// TestNavLinksToReports: every page's navigation leads to the weekly
// report and the retrospective, and both answer without parameters.
func TestNavLinksToReports(t *testing.T) {
	s := newDashSite(t)
	page := body(t, s.get("/"))
	for _, link := range []string{`href="/reports/weekly"`, `href="/reports/retro"`} {
		if !strings.Contains(page, link) {
			t.Errorf("the dashboard's navigation lacks %s", link)
		}
	}
	for _, path := range []string{"/reports/weekly", "/reports/retro"} {
		wantStatus(t, s.get(path), http.StatusOK)
	}
}
