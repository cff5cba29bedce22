package web_test

import (
	"bytes"
	"encoding/json"
	"log/slog"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/threatgate/threatgate/adapters/web"
)

const testToken = "correct-horse-battery-staple"

func TestNoTokenEverythingOpen(t *testing.T) {
	s := newDashSite(t)
	s.seed()
	for _, p := range []string{"/", "/escalations/ESC-1", "/api/escalations"} {
		wantStatus(t, s.get(p), http.StatusOK)
	}
	res := s.get("/login?next=/escalations/ESC-1")
	wantStatus(t, res, http.StatusFound)
	if loc := res.Header.Get("Location"); loc != "/escalations/ESC-1" {
		t.Errorf("GET /login without a token: Location = %q, want the next page", loc)
	}
}

func TestUnauthenticatedRequests(t *testing.T) {
	s := newDashSite(t, withToken(testToken), withConsole(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		t.Errorf("console reached without auth: %s %s", r.Method, r.URL)
	})))
	s.seed()
	for _, tc := range []struct{ path, next string }{
		{"/", "/"},
		{"/escalations/ESC-1", "/escalations/ESC-1"},
		{"/console", "/console"},
		{"/console/threads?x=1", "/console/threads?x=1"},
	} {
		res := s.get(tc.path)
		wantStatus(t, res, http.StatusFound)
		loc, _ := url.Parse(res.Header.Get("Location"))
		if loc.Path != "/login" || loc.Query().Get("next") != tc.next {
			t.Errorf("GET %s: Location = %q, want /login?next=%s", tc.path, loc, tc.next)
		}
	}
	// The wrong bearer token is no better than none.
	wantStatus(t, s.get("/", bearer("wrong")), http.StatusFound)

	res := s.get("/api/escalations")
	wantStatus(t, res, http.StatusUnauthorized)
	if ct := res.Header.Get("Content-Type"); ct != "application/json" {
		t.Errorf("/api 401 Content-Type = %q, want application/json", ct)
	}
	var msg map[string]string
	if err := json.NewDecoder(res.Body).Decode(&msg); err != nil || !strings.Contains(msg["error"], "Bearer") {
		t.Errorf("/api 401 body: %v, %v", msg, err)
	}
	if res.Header.Get("WWW-Authenticate") == "" {
		t.Error("/api 401 without WWW-Authenticate")
	}
	page := body(t, s.get("/api/escalations", bearer("wrong")))
	wantNotContains(t, page, "ESC-1")

	// A form post to the console without auth is refused, not redirected.
	wantStatus(t, s.post("/console/say", url.Values{"text": {"/approve"}}), http.StatusUnauthorized)
}

func TestBearerToken(t *testing.T) {
	var consoleAuth []string
	s := newDashSite(t, withToken(testToken), withConsole(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		consoleAuth = append(consoleAuth, r.URL.Path)
	})))
	s.seed()
	for _, p := range []string{"/", "/escalations/ESC-1", "/api/escalations", "/console"} {
		wantStatus(t, s.get(p, bearer(testToken)), http.StatusOK)
	}
	if len(consoleAuth) != 1 {
		t.Errorf("console served %d requests, want 1", len(consoleAuth))
	}
	// The scheme is case-insensitive.
	wantStatus(t, s.get("/api/escalations", func(r *http.Request) { r.Header.Set("Authorization", "bearer "+testToken) }), http.StatusOK)
	// A bearer-authenticated page offers no sign-out: there is no session.
	wantNotContains(t, body(t, s.get("/", bearer(testToken))), "Sign out")
}

// signIn runs the login form and returns the session and CSRF cookies.
func (s *dashSite) signIn(next string) (session, csrf *http.Cookie, res *http.Response) {
	s.t.Helper()
	form := s.get("/login?next=" + url.QueryEscape(next))
	wantStatus(s.t, form, http.StatusOK)
	csrf = cookie(form, "threatgate_csrf")
	tok := csrfOf(s.t, body(s.t, form))
	res = s.post("/login", url.Values{"csrf": {tok}, "token": {testToken}, "next": {next}}, withCookies(csrf))
	return cookie(res, "threatgate_session"), csrf, res
}

func TestLoginFlow(t *testing.T) {
	s := newDashSite(t, withToken(testToken))
	s.seed()

	form := s.get("/login?next=%2Fescalations%2FESC-1")
	wantStatus(t, form, http.StatusOK)
	page := body(t, form)
	wantContains(t, page, `type="password"`, `name="next" value="/escalations/ESC-1"`, `action="/login"`)
	csrf := cookie(form, "threatgate_csrf")
	if csrf == nil || !csrf.HttpOnly || csrf.SameSite != http.SameSiteStrictMode {
		t.Fatalf("csrf cookie %+v, want HttpOnly SameSite=Strict", csrf)
	}
	tok := csrfOf(t, page)

	// The wrong token: refused, no session.
	res := s.post("/login", url.Values{"csrf": {tok}, "token": {"guess"}, "next": {"/"}}, withCookies(csrf))
	wantStatus(t, res, http.StatusUnauthorized)
	if cookie(res, "threatgate_session") != nil {
		t.Error("a wrong token got a session cookie")
	}
	wantContains(t, body(t, res), "That is not the dashboard token.")

	// The right token: a session cookie, then back to next.
	res = s.post("/login", url.Values{"csrf": {tok}, "token": {testToken}, "next": {"/escalations/ESC-1"}}, withCookies(csrf))
	wantStatus(t, res, http.StatusSeeOther)
	if loc := res.Header.Get("Location"); loc != "/escalations/ESC-1" {
		t.Errorf("after sign-in: Location = %q, want /escalations/ESC-1", loc)
	}
	sess := cookie(res, "threatgate_session")
	if sess == nil {
		t.Fatal("no session cookie")
	}
	if !sess.HttpOnly || sess.SameSite != http.SameSiteStrictMode || sess.Secure || sess.Path != "/" {
		t.Errorf("session cookie %+v, want HttpOnly, SameSite=Strict, not Secure without TLS, Path=/", sess)
	}
	if sess.MaxAge != int((12 * time.Hour).Seconds()) {
		t.Errorf("session MaxAge = %d, want 12h", sess.MaxAge)
	}
	if strings.Contains(sess.Value, testToken) {
		t.Error("the session cookie holds the token")
	}

	// Pages, /api and the 404 page work with the cookie.
	for _, p := range []string{"/", "/escalations/ESC-1", "/api/escalations"} {
		wantStatus(t, s.get(p, withCookies(sess)), http.StatusOK)
	}
	wantStatus(t, s.get("/nope", withCookies(sess)), http.StatusNotFound)
	dash := body(t, s.get("/", withCookies(sess, csrf)))
	wantContains(t, dash, "Sign out", `action="/logout"`)

	// A tampered cookie is refused.
	bad := *sess
	bad.Value = strings.Replace(sess.Value, ".", ".9", 1)
	wantStatus(t, s.get("/", withCookies(&bad)), http.StatusFound)

	// Sign out: CSRF checked, cookie cleared, the old value revoked.
	wantStatus(t, s.post("/logout", url.Values{}, withCookies(sess, csrf)), http.StatusForbidden)
	res = s.post("/logout", url.Values{"csrf": {csrfOf(t, dash)}}, withCookies(sess, csrf))
	wantStatus(t, res, http.StatusSeeOther)
	if loc := res.Header.Get("Location"); loc != "/login" {
		t.Errorf("after sign-out: Location = %q, want /login", loc)
	}
	if c := cookie(res, "threatgate_session"); c == nil || c.MaxAge >= 0 || c.Value != "" {
		t.Errorf("sign-out cookie %+v, want it cleared", c)
	}
	wantStatus(t, s.get("/", withCookies(sess)), http.StatusFound)
	wantStatus(t, s.get("/api/escalations", withCookies(sess)), http.StatusUnauthorized)
}

func TestSessionExpires(t *testing.T) {
	s := newDashSite(t, withToken(testToken))
	sess, _, _ := s.signIn("/")
	if sess == nil {
		t.Fatal("no session")
	}
	s.clock.Advance(11 * time.Hour)
	wantStatus(t, s.get("/", withCookies(sess)), http.StatusOK)
	s.clock.Advance(time.Hour)
	wantStatus(t, s.get("/", withCookies(sess)), http.StatusFound)
}

func TestSessionsDoNotOutliveTheServer(t *testing.T) {
	s := newDashSite(t, withToken(testToken))
	sess, _, _ := s.signIn("/")
	other := newDashSite(t, withToken(testToken))
	wantStatus(t, other.get("/", withCookies(sess)), http.StatusFound)
}

func TestLoginCSRF(t *testing.T) {
	s := newDashSite(t, withToken(testToken))
	form := s.get("/login")
	csrf := cookie(form, "threatgate_csrf")
	tok := csrfOf(t, body(t, form))
	other := s.get("/login") // a second visitor: another cookie, another token
	otherTok := csrfOf(t, body(t, other))
	for _, tc := range []struct {
		name string
		form url.Values
		mod  []func(*http.Request)
	}{
		{"no field", url.Values{"token": {testToken}}, []func(*http.Request){withCookies(csrf)}},
		{"wrong field", url.Values{"token": {testToken}, "csrf": {"AAAA" + tok[4:]}}, []func(*http.Request){withCookies(csrf)}},
		{"another visitor's field", url.Values{"token": {testToken}, "csrf": {otherTok}}, []func(*http.Request){withCookies(csrf)}},
		{"no cookie", url.Values{"token": {testToken}, "csrf": {tok}}, nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			res := s.post("/login", tc.form, tc.mod...)
			wantStatus(t, res, http.StatusForbidden)
			if cookie(res, "threatgate_session") != nil {
				t.Error("session cookie set despite the CSRF refusal")
			}
		})
	}
	// An oversized form is refused too, unread beyond the bound.
	big := url.Values{"token": {strings.Repeat("x", 64<<10)}, "csrf": {tok}}
	wantStatus(t, s.post("/login", big, withCookies(csrf)), http.StatusForbidden)
}

func TestLoginNextIsLocalOnly(t *testing.T) {
	s := newDashSite(t, withToken(testToken))
	for _, tc := range []struct{ next, want string }{
		{"//evil.com", "/"},
		{"//evil.com/escalations", "/"},
		{`/\evil.com`, "/"},
		{"https://evil.com/", "/"},
		{"javascript:alert(1)", "/"},
		{"/\t/evil.com", "/"},
		{"evil.com", "/"},
		{"", "/"},
		{"/escalations/ESC-1?tab=timeline", "/escalations/ESC-1?tab=timeline"},
		{"/console", "/console"},
	} {
		t.Run(tc.next, func(t *testing.T) {
			form := s.get("/login?next=" + url.QueryEscape(tc.next))
			page := body(t, form)
			wantContains(t, page, `name="next" value="`+tc.want+`"`)
			_, _, res := s.signIn(tc.next)
			wantStatus(t, res, http.StatusSeeOther)
			if loc := res.Header.Get("Location"); loc != tc.want {
				t.Errorf("next=%q: Location = %q, want %q", tc.next, loc, tc.want)
			}
		})
	}
}

func TestSignedInLoginPageRedirects(t *testing.T) {
	s := newDashSite(t, withToken(testToken))
	sess, _, _ := s.signIn("/")
	res := s.get("/login?next=//evil.com", withCookies(sess))
	wantStatus(t, res, http.StatusFound)
	if loc := res.Header.Get("Location"); loc != "/" {
		t.Errorf("Location = %q, want /", loc)
	}
}

func TestNoTokenInLogs(t *testing.T) {
	var logs bytes.Buffer
	s := newDashSite(t, withToken(testToken), func(srv *web.Server) { srv.Log = slog.New(slog.NewTextHandler(&logs, nil)) })
	form := s.get("/login")
	csrf := cookie(form, "threatgate_csrf")
	tok := csrfOf(t, body(t, form))
	wantStatus(t, s.post("/login", url.Values{"csrf": {tok}, "token": {"a-wrong-guess"}}, withCookies(csrf)), http.StatusUnauthorized)
	sess, _, _ := s.signIn("/")
	wantStatus(t, s.get("/", bearer(testToken)), http.StatusOK)
	if logs.Len() == 0 {
		t.Fatal("a refused sign-in was not logged")
	}
	for _, secret := range []string{testToken, "a-wrong-guess", sess.Value, tok} {
		if strings.Contains(logs.String(), secret) {
			t.Errorf("the log holds %q:\n%s", secret, logs.String())
		}
	}
}
