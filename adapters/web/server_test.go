package web_test

import (
	"context"
	"crypto/tls"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/threatgate/threatgate/adapters/web"
	"github.com/threatgate/threatgate/bot"
	"github.com/threatgate/threatgate/bot/bottest"
	"github.com/threatgate/threatgate/policies"
	"github.com/threatgate/threatgate/store"
)

const dashPolicy = `
version: 1
signals:
  - {id: auth, category: access-control, weight: 50, description: Authentication code changed., when: {paths: ["**/auth/**"]}}
  - {id: pii, category: data-exposure, weight: 100, when: {paths: ["**/migrations/**"]}}
tiers:
  - id: T3
    name: critical
    when: {min_score: 100}
    artifacts: [threat-model]
    approvals: [{group: appsec, count: 2}, {group: leads, count: 1, role: risk-acceptance}]
    first_response: 4h
    decision: 48h
    checklist: [data-sensitivity, access-implications]
    deferrable: true
    controls: ["SOC2 CC8.1"]
  - id: T2
    name: high
    when: {min_score: 50}
    artifacts: [threat-model, rollback-plan]
    approvals: [{group: appsec, count: 1}]
    first_response: 2h
    decision: 24h
    reset_approvals_on_push: true
    checklist: [data-sensitivity]
groups:
  appsec: {members: [alice, bob]}
  leads: {members: [dave]}
people:
  - {gitlab: ann, slack: UANN, name: Ann Author, email: ann@example.com}
  - {gitlab: alice, slack: UALICE, name: Alice Appsec, email: alice@example.com}
  - {gitlab: bob, slack: UBOB, email: bob@example.com}
  - {gitlab: dave, slack: UDAVE, email: dave@example.com}
authority: {retier: [leads], arbiter: [leads]}
`

// hostileTitle is an MR title that would run script if it were not
// escaped.
const hostileTitle = `<script>alert("pwned")</script> login rework`

// dashSite is a Server over a real store and engine.
type dashSite struct {
	t     *testing.T
	db    *store.DB
	dir   string
	eng   *bot.Engine
	clock *bottest.Clock
	pol   *policies.Policy
	srv   *web.Server
	h     http.Handler
}

type siteOption func(*web.Server)

func withToken(tok string) siteOption {
	return func(s *web.Server) { s.DashboardToken = bot.Secret(tok) }
}

func withConsole(h http.Handler) siteOption { return func(s *web.Server) { s.Console = h } }

func withReader(wrap func(web.Reader) web.Reader) siteOption {
	return func(s *web.Server) { s.Store = wrap(s.Store) }
}

func newDashSite(t *testing.T, opts ...siteOption) *dashSite {
	t.Helper()
	pol, err := policies.Load("dash.yaml", []byte(dashPolicy))
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	db, err := store.Open(dir, store.NoSync())
	if err != nil {
		t.Fatal(err)
	}
	s := &dashSite{t: t, db: db, dir: dir, pol: pol, clock: bottest.NewClock(time.Date(2026, 10, 5, 9, 0, 0, 0, time.UTC))}
	s.eng = bot.NewEngine(db, pol, s.clock, nil)
	t.Cleanup(func() { s.db.Close() })
	s.srv = &web.Server{Store: db, Policy: s.eng.Policy, Clock: s.clock, Banner: "Test banner: data is made up"}
	for _, o := range opts {
		o(s.srv)
	}
	s.h = s.srv.Handler()
	return s
}

func (s *dashSite) mr(iid int64, sha, title string, action bot.MRAction, paths ...string) bot.Input {
	mr := &policies.MergeRequest{
		IID: iid, PathWithNamespace: "shop/api", Title: title, TargetBranch: "main", SHA: sha, UpdatedAt: s.clock.Now(),
		WebURL: "https://gitlab.example.com/shop/api/-/merge_requests/" + strconv.FormatInt(iid, 10), Author: policies.User{Username: "ann"},
	}
	for _, p := range paths {
		mr.Changes = append(mr.Changes, policies.Change{OldPath: p, NewPath: p})
	}
	return bot.Input{Kind: bot.InputMR, MR: &bot.MRInput{Action: action, MR: mr}}
}

func (s *dashSite) handle(in bot.Input) bot.Reply {
	s.t.Helper()
	rep, err := s.eng.Handle(context.Background(), in)
	if err != nil {
		s.t.Fatalf("handle %+v: %v", in, err)
	}
	return rep
}

// say runs a chat command as the person with Slack id slackID.
func (s *dashSite) say(slackID, line string) bot.Reply {
	s.t.Helper()
	c, err := bot.ParseCommand(line)
	if err != nil {
		s.t.Fatalf("parse %q: %v", line, err)
	}
	return s.handle(bot.Input{Kind: bot.InputCommand, Actor: bot.Identity{Surface: "slack", ExternalID: slackID}, Command: &c})
}

// seed makes six escalations over five weeks, ending on Thursday
// 2026-11-05 09:00 UTC (ISO week 45):
//
//	ESC-1 T2, hostile title, approved in W41 by alice, made stale by a push in W42
//	      (in review again, overdue), a forged status seen
//	ESC-2 T3, opened W43, awaiting artifacts, overdue; a dissent and an action item
//	ESC-3 T3, opened W44, deferred until 2026-11-20
//	ESC-4 T2, opened W44, rejected by bob in W44
//	ESC-5 T2, opened W45 and merged without approval (bypassed)
//	ESC-6 T3, manual and urgent, filed 2h before now
func (s *dashSite) seed() {
	s.t.Helper()
	s.handle(s.mr(1, "aaa111aaa111", hostileTitle, bot.MROpen, "internal/auth/session.go"))
	s.clock.Advance(time.Hour)
	s.say("UANN", "/threatgate artifact ESC-1 threat-model https://wiki.example.com/tm-1")
	s.say("UANN", "/threatgate artifact ESC-1 rollback-plan javascript:alert(1)")
	s.say("UALICE", `/approve ESC-1 --check data-sensitivity="no PII" reviewed the token rotation`)

	s.clock.Set(time.Date(2026, 10, 12, 9, 0, 0, 0, time.UTC))
	s.handle(s.mr(1, "bbb222bbb222", hostileTitle, bot.MRUpdate, "internal/auth/session.go"))
	forged := s.mr(1, "bbb222bbb222", hostileTitle, bot.MRUpdate, "internal/auth/session.go")
	forged.MR.Status = &bot.ForgeStatus{SHA: "bbb222bbb222", State: "success", Author: "mallory"}
	s.handle(forged)

	s.clock.Set(time.Date(2026, 10, 19, 9, 0, 0, 0, time.UTC))
	s.handle(s.mr(2, "ccc333", "add customer table", bot.MROpen, "db/migrations/001_customers.sql"))
	s.say("UBOB", "/threatgate dissent ESC-2 the migration copies PII into the audit log")
	s.say("UALICE", "/threatgate action ESC-2 add log scrubbing before release")

	s.clock.Set(time.Date(2026, 10, 26, 9, 0, 0, 0, time.UTC))
	s.handle(s.mr(3, "ddd444", "SSO for admins", bot.MROpen, "internal/auth/sso.go", "db/migrations/002_sso.sql"))
	s.say("UDAVE", "/threatgate defer ESC-3 2026-11-20 waiting for the vendor's audit")

	s.clock.Set(time.Date(2026, 10, 27, 9, 0, 0, 0, time.UTC))
	s.handle(s.mr(4, "eee555", "password reset", bot.MROpen, "internal/auth/reset.go"))
	s.say("UANN", "/threatgate artifact ESC-4 threat-model https://wiki.example.com/tm-4")
	s.say("UANN", "/threatgate artifact ESC-4 rollback-plan revert the commit")
	s.say("UBOB", "/threatgate reject ESC-4 the reset token never expires")

	s.clock.Set(time.Date(2026, 11, 3, 9, 0, 0, 0, time.UTC))
	s.handle(s.mr(6, "fff666", "hotfix login", bot.MROpen, "internal/auth/login.go"))
	s.handle(s.mr(6, "fff666", "hotfix login", bot.MRMerge, "internal/auth/login.go"))

	s.clock.Set(time.Date(2026, 11, 5, 7, 0, 0, 0, time.UTC))
	s.say("UANN", "/escalate shop/web!5 --urgent --tier T3 home-grown crypto in the session cookie\nsummary: a custom cipher guards sessions\nassets: session cookies\nexploit: forge a session")

	s.clock.Set(time.Date(2026, 11, 5, 9, 0, 0, 0, time.UTC))
}

// get requests path with the site's handler.
func (s *dashSite) get(path string, mod ...func(*http.Request)) *http.Response {
	s.t.Helper()
	return s.do(httptest.NewRequest(http.MethodGet, path, nil), mod...)
}

// post sends form to path.
func (s *dashSite) post(path string, form url.Values, mod ...func(*http.Request)) *http.Response {
	s.t.Helper()
	r := httptest.NewRequest(http.MethodPost, path, strings.NewReader(form.Encode()))
	r.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	return s.do(r, mod...)
}

func (s *dashSite) do(r *http.Request, mod ...func(*http.Request)) *http.Response {
	for _, m := range mod {
		m(r)
	}
	w := httptest.NewRecorder()
	s.h.ServeHTTP(w, r)
	res := w.Result()
	res.Request = r
	return res
}

func bearer(tok string) func(*http.Request) {
	return func(r *http.Request) { r.Header.Set("Authorization", "Bearer "+tok) }
}

func withCookies(cs ...*http.Cookie) func(*http.Request) {
	return func(r *http.Request) {
		for _, c := range cs {
			if c != nil {
				r.AddCookie(c)
			}
		}
	}
}

func overTLS(r *http.Request) { r.TLS = &tls.ConnectionState{} }

func body(t *testing.T, res *http.Response) string {
	t.Helper()
	b, err := io.ReadAll(res.Body)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

func cookie(res *http.Response, name string) *http.Cookie {
	for _, c := range res.Cookies() {
		if c.Name == name {
			return c
		}
	}
	return nil
}

func wantStatus(t *testing.T, res *http.Response, want int) {
	t.Helper()
	if res.StatusCode != want {
		t.Fatalf("%s %s: status = %d, want %d", res.Request.Method, res.Request.URL, res.StatusCode, want)
	}
}

func wantContains(t *testing.T, page string, wants ...string) {
	t.Helper()
	for _, w := range wants {
		if !strings.Contains(page, w) {
			t.Errorf("page lacks %q", w)
		}
	}
}

func wantNotContains(t *testing.T, page string, nots ...string) {
	t.Helper()
	for _, n := range nots {
		if strings.Contains(page, n) {
			t.Errorf("page contains %q", n)
		}
	}
}

var csrfInput = regexp.MustCompile(`name="csrf" value="([^"]+)"`)

// csrfOf returns the CSRF form token in page.
func csrfOf(t *testing.T, page string) string {
	t.Helper()
	m := csrfInput.FindStringSubmatch(page)
	if m == nil {
		t.Fatal("page has no csrf field")
	}
	return m[1]
}

func TestSecurityHeadersOnEveryResponse(t *testing.T) {
	s := newDashSite(t, withToken("s3cret-token"))
	for _, tc := range []struct {
		path string
		mod  []func(*http.Request)
	}{
		{"/", nil},
		{"/", []func(*http.Request){bearer("s3cret-token")}},
		{"/login", nil},
		{"/static/style.css", nil},
		{"/api/escalations", nil},
		{"/api/escalations", []func(*http.Request){bearer("s3cret-token")}},
		{"/no/such/page", []func(*http.Request){bearer("s3cret-token")}},
		{"/escalations/ESC-404", []func(*http.Request){bearer("s3cret-token")}},
	} {
		res := s.get(tc.path, tc.mod...)
		h := res.Header
		csp := h.Get("Content-Security-Policy")
		for _, want := range []string{"default-src 'self'", "frame-ancestors 'none'", "object-src 'none'"} {
			if !strings.Contains(csp, want) {
				t.Errorf("%s: CSP %q lacks %q", tc.path, csp, want)
			}
		}
		if strings.Contains(csp, "unsafe-inline") {
			t.Errorf("%s: CSP allows unsafe-inline: %q", tc.path, csp)
		}
		for k, v := range map[string]string{"X-Content-Type-Options": "nosniff", "X-Frame-Options": "DENY", "Referrer-Policy": "no-referrer"} {
			if got := h.Get(k); got != v {
				t.Errorf("%s: %s = %q, want %q", tc.path, k, got, v)
			}
		}
	}
}

func TestStaticAssets(t *testing.T) {
	s := newDashSite(t)
	res := s.get("/static/style.css")
	wantStatus(t, res, http.StatusOK)
	if ct := res.Header.Get("Content-Type"); !strings.HasPrefix(ct, "text/css") {
		t.Errorf("Content-Type = %q, want text/css", ct)
	}
	wantContains(t, body(t, res), "@media (max-width")
	wantStatus(t, s.get("/static/"), http.StatusNotFound)
	wantStatus(t, s.get("/static/nope.js"), http.StatusNotFound)
	if res := s.get("/static/../server.go"); res.StatusCode == http.StatusOK {
		t.Errorf("/static/../server.go served a file")
	}
}

func TestUnknownPathIs404Page(t *testing.T) {
	s := newDashSite(t)
	for _, p := range []string{"/nope", "/escalations/", "/escalations/ESC-1/extra", "/console"} {
		res := s.get(p)
		wantStatus(t, res, http.StatusNotFound)
		page := body(t, res)
		wantContains(t, page, "404", "Back to the dashboard", "<nav")
		if ct := res.Header.Get("Content-Type"); !strings.HasPrefix(ct, "text/html") {
			t.Errorf("%s: Content-Type = %q", p, ct)
		}
	}
}

func TestLayoutNavAndBanner(t *testing.T) {
	s := newDashSite(t, withConsole(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { io.WriteString(w, "console here") })))
	page := body(t, s.get("/"))
	wantContains(t, page, `href="/console"`, `href="/api/escalations"`, "Test banner: data is made up", `href="/static/style.css"`)
	wantNotContains(t, page, "Sign out") // no token: nobody signs in

	plain := newDashSite(t)
	wantNotContains(t, body(t, plain.get("/")), `href="/console"`)
}

func TestConsoleMountedWithFullPath(t *testing.T) {
	var paths []string
	console := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		paths = append(paths, r.Method+" "+r.URL.Path)
		io.WriteString(w, "console here")
	})
	s := newDashSite(t, withConsole(console))
	for _, p := range []string{"/console", "/console/", "/console/threads/ESC-1"} {
		res := s.get(p)
		wantStatus(t, res, http.StatusOK)
		if res.Header.Get("X-Frame-Options") != "DENY" {
			t.Errorf("%s: no security headers", p)
		}
	}
	wantStatus(t, s.post("/console/say", url.Values{"text": {"hi"}}), http.StatusOK)
	want := []string{"GET /console", "GET /console/", "GET /console/threads/ESC-1", "POST /console/say"}
	if strings.Join(paths, "|") != strings.Join(want, "|") {
		t.Errorf("console saw %q, want %q", paths, want)
	}
}

// TestRenderInLayout renders a page the way the console does: by name,
// inside the shared layout.
func TestRenderInLayout(t *testing.T) {
	s := newDashSite(t)
	srv := s.srv
	w := httptest.NewRecorder()
	r := httptest.NewRequest(http.MethodGet, "/console", nil)
	srv.Render(w, r, "error", "A page", struct {
		Status    int
		Text, Msg string
		Ref       string
	}{Status: 299, Text: "Custom", Msg: "<b>escaped</b>"})
	res := w.Result()
	wantStatus(t, res, http.StatusOK)
	page := body(t, res)
	wantContains(t, page, "<title>A page · threatgate</title>", "&lt;b&gt;escaped&lt;/b&gt;", "Test banner")
	if cookie(res, "threatgate_csrf") == nil {
		t.Error("Render did not set the CSRF cookie for the page's forms")
	}

	w = httptest.NewRecorder()
	srv.Render(w, r, "no-such-template", "Broken", nil)
	if w.Code != http.StatusInternalServerError {
		t.Errorf("unknown template: status %d, want 500", w.Code)
	}
	wantContains(t, w.Body.String(), "Reference")
}

func TestAPIThroughServer(t *testing.T) {
	s := newDashSite(t)
	s.seed()
	res := s.get("/api/escalations")
	wantStatus(t, res, http.StatusOK)
	if ct := res.Header.Get("Content-Type"); ct != "application/json" {
		t.Errorf("Content-Type = %q", ct)
	}
	page := body(t, res)
	wantContains(t, page, `"id": "ESC-1"`, `"id": "ESC-6"`, `"tier": "T3"`, `"bypassed": true`, `"stale": true`)
	res = s.get("/api/escalations?state=rejected")
	page = body(t, res)
	wantContains(t, page, `"id": "ESC-4"`)
	wantNotContains(t, page, `"id": "ESC-1"`)
}

func TestSecureCookieOverTLS(t *testing.T) {
	s := newDashSite(t, withToken("tok"))
	res := s.get("/login", overTLS)
	c := cookie(res, "threatgate_csrf")
	if c == nil || !c.Secure {
		t.Fatalf("csrf cookie over TLS: %+v, want Secure", c)
	}
	tok := csrfOf(t, body(t, res))
	res = s.post("/login", url.Values{"csrf": {tok}, "token": {"tok"}}, withCookies(c), overTLS)
	wantStatus(t, res, http.StatusSeeOther)
	if sc := cookie(res, "threatgate_session"); sc == nil || !sc.Secure {
		t.Errorf("session cookie over TLS: %+v, want Secure", sc)
	}
}
