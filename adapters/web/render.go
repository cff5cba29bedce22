package web

import (
	"bytes"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"html/template"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/threatgate/threatgate/bot"
)

// Page is what every template gets. The page's own template reads its
// data from .Data and may use the rest: .Now for ages, .CSRF for forms
// (a hidden input named .CSRFField), .Nonce for an inline <script
// nonce="{{.Nonce}}"> (the CSP refuses inline scripts without it).
type Page struct {
	Name      string // the template the page is rendered with: "dashboard", "console"...
	Title     string
	Banner    string
	Console   bool // a console is mounted: the nav links to it
	SignedIn  bool // signed in with the login form: the nav offers to sign out
	CSRF      string
	CSRFField string
	Nonce     string
	Now       time.Time // UTC
	Data      any
	Body      template.HTML // the rendered page, for the layout only
}

// Render writes the page made by template name, inside the shared layout
// (templates/layout.html: nav, banner, stylesheet), with status 200.
//
// Any templates/*.html file is part of the set, so a page is added by
// writing templates/<page>.html with {{define "<page>"}}...{{end}} and
// calling s.Render(w, r, "<page>", "Title", data); the template reads data
// as .Data (see Page). Nothing is written until both templates have run,
// so a template error becomes a 500 page, not half a page.
func (s *Server) Render(w http.ResponseWriter, r *http.Request, name, title string, data any) {
	s.RenderStatus(w, r, http.StatusOK, name, title, data)
}

// RenderStatus is Render with another status code, such as 400 for a
// form that needs correcting.
func (s *Server) RenderStatus(w http.ResponseWriter, r *http.Request, status int, name, title string, data any) {
	s.setup()
	out, err := s.renderPage(w, r, name, title, data)
	if err != nil {
		s.fail(w, r, fmt.Errorf("render %s: %w", name, err))
		return
	}
	s.write(w, status, out)
}

// RenderError writes the error page with status and msg, a sentence the
// user can act on.
func (s *Server) RenderError(w http.ResponseWriter, r *http.Request, status int, msg string) {
	s.setup()
	out, err := s.renderPage(w, r, "error", http.StatusText(status), errorView{Status: status, Text: http.StatusText(status), Msg: msg})
	if err != nil {
		s.log.Error("render error page", bot.LogErr, err)
		http.Error(w, msg, status)
		return
	}
	s.write(w, status, out)
}

// NotFound writes the 404 page.
func (s *Server) NotFound(w http.ResponseWriter, r *http.Request) {
	s.RenderError(w, r, http.StatusNotFound, "There is no page at "+r.URL.Path+".")
}

// CSRFToken returns the token a form posted to this server must carry in
// a hidden field named CSRFField, setting the CSRF cookie when r has none.
// Call it before writing the response; Render puts it in Page.CSRF.
func (s *Server) CSRFToken(w http.ResponseWriter, r *http.Request) string {
	s.setup()
	return s.csrf.token(w, r)
}

// CheckCSRF reports whether the form of r carries the token of its CSRF
// cookie. Refuse the request with 403 when it does not.
func (s *Server) CheckCSRF(r *http.Request) bool {
	s.setup()
	return s.csrf.check(r)
}

type errorView struct {
	Status int
	Text   string
	Msg    string
	Ref    string
}

// fail logs an internal error with a reference and shows the user only
// the reference.
func (s *Server) fail(w http.ResponseWriter, r *http.Request, err error) {
	b := make([]byte, 4)
	rand.Read(b)
	ref := hex.EncodeToString(b)
	s.log.Error("page failed", "path", r.URL.Path, "ref", ref, bot.LogErr, err)
	out, rerr := s.renderPage(w, r, "error", "Internal error", errorView{Status: 500, Text: "Internal error", Msg: "Something went wrong on our side.", Ref: ref})
	if rerr != nil {
		http.Error(w, "internal error (ref "+ref+")", http.StatusInternalServerError)
		return
	}
	s.write(w, http.StatusInternalServerError, out)
}

func (s *Server) renderPage(w http.ResponseWriter, r *http.Request, name, title string, data any) ([]byte, error) {
	nonce, _ := r.Context().Value(nonceKey).(string)
	p := &Page{
		Name: name, Title: title, Banner: s.Banner, Console: s.Console != nil,
		SignedIn: s.DashboardToken != "" && authVia(r) == "cookie",
		CSRF:     s.csrf.token(w, r), CSRFField: CSRFField, Nonce: nonce, Now: s.now(), Data: data,
	}
	if s.BannerFor != nil {
		if b := s.BannerFor(r); b != "" {
			p.Banner = b
		}
	}
	var body bytes.Buffer
	if err := s.tmpl.ExecuteTemplate(&body, name, p); err != nil {
		return nil, err
	}
	p.Body = template.HTML(body.String()) // made by html/template: already escaped
	var out bytes.Buffer
	if err := s.tmpl.ExecuteTemplate(&out, "layout", p); err != nil {
		return nil, err
	}
	return out.Bytes(), nil
}

func (s *Server) write(w http.ResponseWriter, status int, page []byte) {
	h := w.Header()
	h.Set("Content-Type", "text/html; charset=utf-8")
	h.Set("Cache-Control", "no-store")
	w.WriteHeader(status)
	w.Write(page)
}

// funcs are the template helpers. Times are shown in UTC.
func (s *Server) funcs() template.FuncMap {
	return template.FuncMap{
		"utc":      formatUTC,
		"date":     func(t time.Time) string { return dateOrDash(t) },
		"iso":      func(t time.Time) string { return t.UTC().Format(time.RFC3339) },
		"dur":      formatDuration,
		"since":    func(now, t time.Time) string { return formatDuration(now.Sub(t)) },
		"shortSHA": shortSHA,
		"prefix":   prefix,
		"join":     func(xs []string, sep string) string { return strings.Join(xs, sep) },
		"safeURL":  safeURL,
		"words":    func(s any) string { return words(fmt.Sprint(s)) },
		"plural":   plural,
		"person":   s.personName,
		"people":   s.peopleNames,
		// tierList links to the open escalations of a tier on the All
		// escalations page.
		"tierList": func(tier string) string {
			return "/escalations?" + url.Values{"open": {"true"}, "tier": {tier}}.Encode()
		},
	}
}

// formatUTC formats t as "2026-11-02 09:00 UTC", "—" for the zero time.
func formatUTC(t time.Time) string {
	if t.IsZero() {
		return "—"
	}
	return t.UTC().Format("2006-01-02 15:04 UTC")
}

func dateOrDash(t time.Time) string {
	if t.IsZero() {
		return "—"
	}
	return t.UTC().Format("2006-01-02")
}

// formatDuration formats d compactly with at most two units, as every
// surface does (bot.HumanDuration): "2d 3h", "5h 20m", "45m", "<1m".
func formatDuration(d time.Duration) string { return bot.HumanDuration(d) }

// shortSHA returns the first 8 characters of a commit SHA.
func shortSHA(sha string) string { return bot.ShortSHA(sha) }

// prefix returns the first n characters of s (ASCII: SHAs and hashes).
func prefix(n int, s string) string {
	if len(s) <= n {
		return s
	}
	return s[:n]
}

// safeURL returns u for use in an href when it is an absolute http(s)
// URL, and "" otherwise: a template shows anything else as text.
func safeURL(u string) template.URL {
	p, err := url.Parse(strings.TrimSpace(u))
	if err != nil || (p.Scheme != "http" && p.Scheme != "https") || p.Host == "" {
		return ""
	}
	return template.URL(p.String()) // only http(s): no script URL gets through
}

func plural(n int, one, many string) string {
	if n == 1 {
		return one
	}
	return many
}

// personName returns the person's name from the policy, or their id.
func (s *Server) personName(id string) string {
	if pol := s.policy(); pol != nil {
		if p := pol.Person("id", id); p != nil && p.Name != "" {
			return p.Name
		}
	}
	return id
}

func (s *Server) peopleNames(ids []string) string {
	names := make([]string, len(ids))
	for i, id := range ids {
		names[i] = s.personName(id)
	}
	return strings.Join(names, ", ")
}
