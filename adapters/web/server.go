package web

import (
	"context"
	"crypto/rand"
	"embed"
	"encoding/base64"
	"html/template"
	"io/fs"
	"log/slog"
	"net/http"
	"net/netip"
	"strings"
	"sync"
	"time"

	"github.com/threatgate/threatgate/bot"
	"github.com/threatgate/threatgate/policies"
)

// templateFS holds every page template. The set is parsed as one, so any
// templates/*.html added later (the console's) joins it with its own
// {{define "name"}} and is rendered by Server.Render under that name.
//
//go:embed templates/*.html
var templateFS embed.FS

// staticFS holds the stylesheet and any other asset served under /static/.
//
//go:embed static
var staticFS embed.FS

// Server serves the dashboard, the escalation pages, /api and (when set)
// the console. Fill the exported fields, then call Handler once; the
// fields must not change afterwards. It is safe for concurrent use.
//
// Routes (Go 1.22 patterns):
//
//	GET  /                   dashboard
//	GET  /escalations        every escalation ever, filtered and paged (see list.go; the filters of the API)
//	GET  /escalations/{id}   one escalation with its audit timeline
//	GET  /escalations/{id}/bundle  its evidence bundle (?format=json|md|csv; see export.go)
//	GET  /export             a zip of the evidence bundles decided in a window (?from=&to=&format=; see export.go)
//	GET  /api/escalations    JSON, a page of the whole record (see API, docs/API.md)
//	GET  /reports/weekly     the weekly report (?week=2026-W49, ?format=json; see report.go)
//	GET  /login, POST /login sign in with the dashboard token (only when DashboardToken is set)
//	POST /logout             sign out
//	GET  /static/...         embedded assets
//	/console, /console/      Console, any method, the path unchanged (when Console is set)
//
// Everything but /login, /logout and /static needs the dashboard token
// when one is configured (see auth.go); wrong tokens are throttled per
// client address (see throttle.go). Unknown paths get a 404 page.
// Every response carries the security headers (see secure): the CSP
// allows scripts and styles from /static only, plus inline scripts that
// carry the page's nonce (Page.Nonce); no inline style attributes.
//
// The console plugs in as Console: it receives /console and /console/...
// with the path unchanged, after the auth check, and renders its page in
// the shared layout with Render(w, r, "console", title, data) from its
// own templates/console.html. Its forms use CSRFToken and CheckCSRF.
type Server struct {
	Store          Reader
	Policy         func() *policies.Policy
	Clock          bot.Clock
	Log            *slog.Logger
	DashboardToken bot.Secret   // when non-empty: pages, /api and the console need it (bearer token or login cookie)
	Console        http.Handler // mounted at /console and /console/ when non-nil
	// Engine, when set, takes POST /api/incidents (the same input as
	// /threatgate incident).
	Engine Handler
	Banner string // optional notice on every page, e.g. "Demo mode: ..."
	// BannerFor, when set, gives a page's banner for its request (it may
	// read r.PathValue("id") on an escalation's page); "" keeps Banner.
	BannerFor func(r *http.Request) string
	// DryRun says that the gate is not written to GitLab (gitlab.mode
	// dry_run, or no gitlab.url): pages and the API say a recorded gate
	// status is what threatgate would have set.
	DryRun bool
	HTTPS  bool // people reach threatgate over https (behind a proxy): cookies are Secure
	// TrustedProxies are the reverse proxies whose X-Forwarded-For is
	// believed when the client's address is needed (throttling wrong
	// tokens, see throttle.go). Empty: the TCP peer is the client and the
	// header is ignored.
	TrustedProxies []netip.Prefix

	once     sync.Once
	tmpl     *template.Template
	csrf     *csrf
	sessions *sessions
	limiter  *limiter
	log      *slog.Logger
}

// Log keys.
const (
	logClient   = "client"   // the client address a request is throttled by
	logFailures = "failures" // wrong tokens from that address so far
	logVia      = "via"      // how a token was presented: login, bearer
	logRetryIn  = "retry_in" // how long the address must now wait
)

// setup parses the templates and makes the per-process keys, once. The
// templates are embedded, so a parse error is a bug in this build: it
// panics, and every test of the package finds it.
func (s *Server) setup() {
	s.once.Do(func() {
		s.log = s.Log
		if s.log == nil {
			s.log = slog.New(slog.DiscardHandler)
		}
		s.log = s.log.With(bot.LogComponent, "web")
		s.csrf = newCSRF()
		s.csrf.secure = s.HTTPS
		s.sessions = newSessions()
		s.limiter = newLimiter(maxTracked)
		s.tmpl = template.Must(template.New("web").Funcs(s.funcs()).ParseFS(templateFS, "templates/*.html"))
	})
}

// Handler returns the server's routes wrapped in the security headers.
func (s *Server) Handler() http.Handler {
	s.setup()
	mux := http.NewServeMux()
	mux.Handle("GET /{$}", s.requireAuth(http.HandlerFunc(s.dashboard)))
	mux.Handle("GET /escalations/{id}", s.requireAuth(http.HandlerFunc(s.escalation)))
	mux.Handle("GET /escalations/{id}/bundle", s.requireAuth(http.HandlerFunc(s.bundle)))
	mux.Handle("GET /export", s.requireAuth(http.HandlerFunc(s.export)))
	mux.Handle("GET /escalations", s.requireAuth(http.HandlerFunc(s.allEscalations)))
	mux.Handle("GET /api/escalations", s.requireAuth(&API{Store: s.Store, Policy: s.policy, Log: s.log, Now: s.now, DryRun: s.DryRun}))
	mux.Handle("GET /reports/weekly", s.requireAuth(http.HandlerFunc(s.weeklyReport)))
	mux.Handle("GET /reports/retro", s.requireAuth(http.HandlerFunc(s.retro)))
	if s.Engine != nil {
		mux.Handle("POST /api/incidents", s.requireAuth(http.HandlerFunc(s.postIncident)))
	}
	mux.HandleFunc("GET /login", s.loginForm)
	mux.HandleFunc("POST /login", s.login)
	mux.HandleFunc("POST /logout", s.logout)
	mux.HandleFunc("GET /static/", s.static)
	if s.Console != nil {
		mux.Handle("/console", s.requireAuth(s.Console))
		mux.Handle("/console/", s.requireAuth(s.Console))
	}
	mux.Handle("/", s.requireAuth(http.HandlerFunc(s.NotFound)))
	return s.secure(mux)
}

func (s *Server) now() time.Time {
	if s.Clock == nil {
		return time.Now().UTC()
	}
	return s.Clock.Now().UTC()
}

// policy returns the policy in force, nil when there is none.
func (s *Server) policy() *policies.Policy {
	if s.Policy == nil {
		return nil
	}
	return s.Policy()
}

type ctxKey int

const (
	nonceKey ctxKey = iota
	authKey
)

// secure sets the security headers of every response and a fresh CSP
// nonce for the page's inline scripts, if it has any.
func (s *Server) secure(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b := make([]byte, 16)
		rand.Read(b)
		nonce := base64.RawStdEncoding.EncodeToString(b)
		h := w.Header()
		h.Set("Content-Security-Policy", "default-src 'self'; script-src 'self' 'nonce-"+nonce+"'; style-src 'self'; img-src 'self' data:; "+
			"object-src 'none'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'")
		h.Set("X-Content-Type-Options", "nosniff")
		h.Set("Referrer-Policy", "no-referrer")
		h.Set("X-Frame-Options", "DENY")
		h.Set("Cross-Origin-Opener-Policy", "same-origin")
		next.ServeHTTP(w, r.WithContext(context.WithValue(r.Context(), nonceKey, nonce)))
	})
}

// static serves the embedded assets; directories are not listed.
func (s *Server) static(w http.ResponseWriter, r *http.Request) {
	name := strings.TrimPrefix(r.URL.Path, "/static/")
	if name == "" || strings.HasSuffix(name, "/") || !fs.ValidPath(name) {
		s.NotFound(w, r)
		return
	}
	if st, err := fs.Stat(staticFS, "static/"+name); err != nil || st.IsDir() {
		s.NotFound(w, r)
		return
	}
	w.Header().Set("Cache-Control", "public, max-age=3600")
	http.ServeFileFS(w, r, staticFS, "static/"+name)
}
