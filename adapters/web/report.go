package web

import (
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"

	"github.com/threatgate/threatgate/bot"
)

// reportView is what templates/report.html shows.
type reportView struct {
	R    *bot.WeeklyReport
	Name string // "2026-W45"
	// Prev and Next link the weeks around it ("" for a week that has not
	// begun); JSON links this report as JSON.
	Prev, Next string
	JSON       string
}

// weeklyReport serves GET /reports/weekly: the report of the ISO week
// ?week=2026-W49 (by default the last full week, UTC), in the shared
// layout, or as JSON (bot.WeeklyReport) with ?format=json. A malformed
// week, a week that has not begun or another format is a 400 saying what
// is expected. It reads that week of the audit log, the escalations it
// names and the open ones (bot.WeeklyReportOf), never the whole store.
func (s *Server) weeklyReport(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	asJSON, refuse, ok := s.reportFormat(w, r)
	if !ok {
		return
	}
	now := s.now()
	year, week := bot.LastFullWeek(now)
	if v := q.Get("week"); v != "" {
		y, wk, err := bot.ParseWeek(v)
		if err != nil {
			refuse(err.Error() + ".")
			return
		}
		year, week = y, wk
	}
	start := bot.WeekStart(year, week)
	if start.After(now) {
		ly, lw := bot.LastFullWeek(now)
		refuse(fmt.Sprintf("week: %s has not begun yet; the last full week is %s.", bot.WeekName(year, week), bot.WeekName(ly, lw)))
		return
	}
	rep, err := bot.WeeklyReportOf(r.Context(), s.Store, year, week, now, s.policy())
	if s.reportAsJSON(w, r, "weekly report", asJSON, rep, err) {
		return
	}
	name := bot.WeekName(year, week)
	v := reportView{R: rep, Name: name, JSON: reportURL(name, "json")}
	py, pw := start.AddDate(0, 0, -7).ISOWeek()
	v.Prev = reportURL(bot.WeekName(py, pw), "")
	if next := start.AddDate(0, 0, 7); !next.After(now) {
		ny, nw := next.ISOWeek()
		v.Next = reportURL(bot.WeekName(ny, nw), "")
	}
	s.Render(w, r, "report", "Weekly report "+name, v)
}

// reportURL is the path of the report of week, as format ("" for the
// page).
func reportURL(week, format string) string {
	q := url.Values{"week": {week}}
	if format != "" {
		q.Set("format", format)
	}
	return "/reports/weekly?" + q.Encode()
}

// reportFormat reads a report page's ?format (json, or html/nothing for
// the page) and returns how to refuse a bad request in that format; ok is
// false when the format itself was refused (the answer is written).
func (s *Server) reportFormat(w http.ResponseWriter, r *http.Request) (asJSON bool, refuse func(msg string), ok bool) {
	format := r.URL.Query().Get("format")
	asJSON = format == "json"
	refuse = func(msg string) {
		if asJSON {
			apiError(w, http.StatusBadRequest, msg)
			return
		}
		s.RenderError(w, r, http.StatusBadRequest, msg)
	}
	if format != "" && format != "json" && format != "html" {
		refuse(fmt.Sprintf("format: want json (or nothing, for the page), got %q.", format))
		return asJSON, refuse, false
	}
	return asJSON, refuse, true
}

// reportAsJSON answers a report's request when it is done: a failure to
// make the report (what, err: a 500, as JSON or as a page), or the report
// as JSON. It returns false when the page is still to be rendered.
func (s *Server) reportAsJSON(w http.ResponseWriter, r *http.Request, what string, asJSON bool, rep any, err error) bool {
	switch {
	case err != nil && asJSON:
		s.log.Error(what, bot.LogErr, err)
		apiError(w, http.StatusInternalServerError, "internal error")
	case err != nil:
		s.fail(w, r, err)
	case asJSON:
		w.Header().Set("Content-Type", "application/json")
		w.Header().Set("Cache-Control", "no-store")
		enc := json.NewEncoder(w)
		enc.SetIndent("", "  ")
		enc.Encode(rep)
	default:
		return false
	}
	return true
}
