package web

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"time"
	"unicode"

	"github.com/threatgate/threatgate/bot"
)

// Pager reads the whole record a page at a time, through the store's
// indexes; store.DB is one (store.DB.ListPage says what a page costs).
type Pager interface {
	ListPage(ctx context.Context, q bot.ListQuery) (bot.ListPage, error)
}

// listParams are the query parameters of GET /api/escalations and GET
// /escalations, in the order they are written back into links.
var listParams = []string{"state", "tier", "project", "person", "open", "flag", "since", "until", "limit", "cursor"}

// maxFilterLen bounds a text filter (tier, project, person).
const maxFilterLen = 256

// parseListQuery reads the filters of the whole record from a URL query,
// the same for the API and the page. Empty values are unset (a form's
// "any"). Every problem is reported at once, each naming its parameter.
func parseListQuery(v url.Values, now time.Time) (bot.ListQuery, error) {
	q := bot.ListQuery{Now: now}
	var problems []error
	bad := func(param, format string, args ...any) {
		problems = append(problems, &bot.Problem{Field: param, Msg: fmt.Sprintf(format, args...)})
	}
	var unknown []string
	for k, vs := range v {
		if !slices.Contains(listParams, k) {
			unknown = append(unknown, k)
			continue
		}
		if len(vs) > 1 {
			bad(k, "give it once, got %d values", len(vs))
		}
	}
	if len(unknown) > 0 {
		slices.Sort(unknown)
		for _, k := range unknown {
			bad(clipParam(k), "unknown parameter; the parameters are %s", strings.Join(listParams, ", "))
		}
	}
	get := func(k string) string { return strings.TrimSpace(v.Get(k)) }
	text := func(k string) string {
		s := get(k)
		switch {
		case len(s) > maxFilterLen:
			bad(k, "at most %d characters, got %d", maxFilterLen, len(s))
			return ""
		case strings.IndexFunc(s, unicode.IsControl) >= 0:
			bad(k, "control characters are not allowed")
			return ""
		}
		return s
	}
	if s := get("state"); s != "" {
		if slices.Contains(bot.ListStates, s) {
			q.State = s
		} else {
			bad("state", "want one of %s, got %q", strings.Join(bot.ListStates, ", "), clipParam(s))
		}
	}
	q.Tier, q.Project, q.Person = text("tier"), text("project"), text("person")
	switch s := get("open"); s {
	case "":
	case "true", "false":
		open := s == "true"
		q.Open = &open
	default:
		bad("open", "want true or false, got %q", clipParam(s))
	}
	if s := get("flag"); s != "" {
		if slices.Contains(bot.ListFlags, s) {
			q.Flag = s
		} else {
			bad("flag", "want one of %s, got %q", strings.Join(bot.ListFlags, ", "), clipParam(s))
		}
	}
	var err error
	if q.Since, err = parseBound(get("since"), false); err != nil {
		bad("since", "%v", err)
	}
	if q.Until, err = parseBound(get("until"), true); err != nil {
		bad("until", "%v", err)
	}
	if !q.Since.IsZero() && !q.Until.IsZero() && !q.Since.Before(q.Until) {
		bad("until", "must be after since")
	}
	if s := get("limit"); s != "" {
		n, err := strconv.Atoi(s)
		if err != nil || n < 1 || n > bot.MaxListLimit {
			bad("limit", "want a whole number from 1 to %d, got %q", bot.MaxListLimit, clipParam(s))
		} else {
			q.Limit = n
		}
	}
	q.Cursor = get("cursor")
	return q, errors.Join(problems...)
}

// parseBound reads since or until: RFC 3339 ("2026-12-01T09:00:00Z") or
// a date ("2026-12-01", UTC). Both bounds are inclusive: an until date
// covers its whole day. It returns the bound as ListQuery wants it
// (Until exclusive).
func parseBound(s string, until bool) (time.Time, error) {
	if s == "" {
		return time.Time{}, nil
	}
	if t, err := time.Parse(time.RFC3339, s); err == nil {
		if until {
			t = t.Add(time.Nanosecond)
		}
		return t.UTC(), nil
	}
	if t, err := time.Parse(time.DateOnly, s); err == nil {
		if until {
			t = t.AddDate(0, 0, 1)
		}
		return t, nil
	}
	return time.Time{}, fmt.Errorf("want a date (2026-12-01) or an RFC 3339 time (2026-12-01T09:00:00Z), got %q", clipParam(s))
}

// clipParam shortens text from the URL that a message quotes.
func clipParam(s string) string {
	if r := []rune(s); len(r) > 40 {
		return string(r[:40]) + "…"
	}
	return s
}

// problemsText is the message of parseListQuery's error: its problems
// joined with "; ".
func problemsText(err error) string {
	var parts []string
	if j, ok := err.(interface{ Unwrap() []error }); ok {
		for _, e := range j.Unwrap() {
			parts = append(parts, e.Error())
		}
	} else {
		parts = append(parts, err.Error())
	}
	return strings.Join(parts, "; ")
}

// listValues writes q's filters back as URL parameters (for links to the
// next page and to filtered lists); the cursor only when withCursor.
func listValues(q bot.ListQuery, withCursor bool) url.Values {
	v := url.Values{}
	set := func(k, s string) {
		if s != "" {
			v.Set(k, s)
		}
	}
	set("state", q.State)
	set("tier", q.Tier)
	set("project", q.Project)
	set("person", q.Person)
	if q.Open != nil {
		set("open", strconv.FormatBool(*q.Open))
	}
	set("flag", q.Flag)
	if !q.Since.IsZero() {
		set("since", q.Since.UTC().Format(time.RFC3339Nano))
	}
	if !q.Until.IsZero() {
		// Back to the inclusive form parseBound reads.
		set("until", q.Until.Add(-time.Nanosecond).UTC().Format(time.RFC3339Nano))
	}
	if q.Limit > 0 {
		set("limit", strconv.Itoa(q.Limit))
	}
	if withCursor {
		set("cursor", q.Cursor)
	}
	return v
}

// listURL is path with q's filters and, when cursor is not "", the cursor.
func listURL(path string, q bot.ListQuery, cursor string) string {
	q.Cursor = cursor
	v := listValues(q, cursor != "")
	if len(v) == 0 {
		return path
	}
	return path + "?" + v.Encode()
}

// listError answers a refused query: a Problem (a bad filter or cursor)
// is the caller's to fix.
func listProblem(err error) (string, bool) {
	if err == nil {
		return "", false
	}
	if _, ok := bot.IsProblem(err); ok {
		return problemsText(err), true
	}
	return "", false
}

// allView is what templates/escalations.html shows.
type allView struct {
	Query    bot.ListQuery
	Form     listForm
	Rows     []escRow
	Next     string // the URL of the next page, "" at the end
	First    string // the URL of the first page with these filters, "" on it
	Problem  string // why the filters were refused
	Filtered bool   // some filter is set
	// Export is GET /export of the last year's decisions with the
	// page's filters.
	Export string
	States []string
	Flags  []string
	Tiers  []string // the policy's tiers, for the select
}

// listForm holds the form's fields as typed (dates as dates).
type listForm struct {
	State, Tier, Project, Person, Open, Flag, Since, Until, Limit string
}

// formOf fills the form from the request's own values, so a refused value
// is shown back (escaped by the template) for correction.
func formOf(v url.Values) listForm {
	g := func(k string) string { return clipParam(strings.TrimSpace(v.Get(k))) }
	return listForm{State: g("state"), Tier: g("tier"), Project: g("project"), Person: g("person"), Open: g("open"),
		Flag: g("flag"), Since: formDate(g("since"), false), Until: formDate(g("until"), true), Limit: g("limit")}
}

// formDate shows a bound that a next-page link wrote as a time (the start
// or the end of a day, UTC) as the date the form's date input takes.
func formDate(s string, until bool) string {
	t, err := time.Parse(time.RFC3339Nano, s)
	if err != nil {
		return s
	}
	t = t.UTC()
	if until {
		t = t.Add(time.Nanosecond)
	}
	if t.Hour() == 0 && t.Minute() == 0 && t.Second() == 0 && t.Nanosecond() == 0 {
		if until {
			t = t.AddDate(0, 0, -1)
		}
		return t.Format(time.DateOnly)
	}
	return s
}

// allEscalations serves GET /escalations: every escalation ever, newest
// first, filtered like GET /api/escalations (the same parameters, read by
// parseListQuery) and paged by its cursor.
func (s *Server) allEscalations(w http.ResponseWriter, r *http.Request) {
	now := s.now()
	v := &allView{Form: formOf(r.URL.Query()), States: bot.ListStates, Flags: bot.ListFlags}
	if pol := s.policy(); pol != nil {
		for _, t := range pol.Tiers {
			v.Tiers = append(v.Tiers, t.ID)
		}
	}
	q, err := parseListQuery(r.URL.Query(), now)
	if err != nil {
		v.Problem = problemsText(err)
		s.RenderStatus(w, r, http.StatusBadRequest, "escalations", "All escalations", v)
		return
	}
	if q.Limit == 0 {
		q.Limit = pageRows
	}
	q.Policy = s.policy()
	v.Query = q
	v.Filtered = q.Key() != (bot.ListQuery{}).Key()
	ex := url.Values{"from": {now.UTC().AddDate(0, 0, -365).Format(time.DateOnly)}, "to": {now.UTC().Format(time.DateOnly)}, "format": {"md"}}
	for _, k := range exportFilters {
		if v := strings.TrimSpace(r.URL.Query().Get(k)); v != "" {
			ex.Set(k, v)
		}
	}
	v.Export = "/export?" + ex.Encode()
	page, err := s.Store.ListPage(r.Context(), q)
	if msg, ok := listProblem(err); ok {
		v.Problem = msg
		s.RenderStatus(w, r, http.StatusBadRequest, "escalations", "All escalations", v)
		return
	}
	if err != nil {
		s.fail(w, r, fmt.Errorf("list escalations: %w", err))
		return
	}
	pol := s.policy()
	for _, e := range page.Items {
		v.Rows = append(v.Rows, newRow(e, pol, now))
	}
	if page.Next != "" {
		v.Next = listURL("/escalations", q, page.Next)
	}
	if q.Cursor != "" {
		v.First = listURL("/escalations", q, "")
	}
	s.Render(w, r, "escalations", "All escalations", v)
}

// pageRows is the page size of the All escalations page unless ?limit=
// says otherwise.
const pageRows = 50
