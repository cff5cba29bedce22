package web_test

import (
	"bytes"
	"encoding/json"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"net/url"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/threatgate/threatgate/adapters/web"
)

func from(addr string) func(*http.Request) {
	return func(r *http.Request) { r.RemoteAddr = addr }
}

func forwardedFor(v string) func(*http.Request) {
	return func(r *http.Request) { r.Header.Set("X-Forwarded-For", v) }
}

// loginForm returns the CSRF cookie and field of a fresh login form.
func (s *dashSite) loginForm() (*http.Cookie, string) {
	s.t.Helper()
	form := s.get("/login")
	return cookie(form, "threatgate_csrf"), csrfOf(s.t, body(s.t, form))
}

func wantRetryAfter(t *testing.T, res *http.Response, want time.Duration) {
	t.Helper()
	if got := res.Header.Get("Retry-After"); got != strconv.Itoa(int(want/time.Second)) {
		t.Errorf("Retry-After = %q, want %d", got, int(want/time.Second))
	}
}

func TestLoginThrottlesWrongTokensPerAddress(t *testing.T) {
	var logs bytes.Buffer
	s := newDashSite(t, withToken(testToken), func(srv *web.Server) { srv.Log = slog.New(slog.NewTextHandler(&logs, nil)) })
	csrf, tok := s.loginForm()
	try := func(token string, mod ...func(*http.Request)) *http.Response {
		t.Helper()
		return s.post("/login", url.Values{"csrf": {tok}, "token": {token}, "next": {"/"}}, append([]func(*http.Request){withCookies(csrf)}, mod...)...)
	}
	guess := func(i int) string { return "guess-" + strconv.Itoa(i) + "-zq" }

	for i := 1; i <= 5; i++ {
		wantStatus(t, try(guess(i)), http.StatusUnauthorized)
	}
	// The sixth attempt is refused before the token is looked at: even
	// the right one. A rotating X-Forwarded-For from an untrusted peer
	// changes nothing.
	res := try(testToken)
	wantStatus(t, res, http.StatusTooManyRequests)
	wantRetryAfter(t, res, time.Minute)
	wantContains(t, body(t, res), "Too many wrong dashboard tokens", "Try again in 1m")
	if cookie(res, "threatgate_session") != nil {
		t.Error("a throttled attempt got a session")
	}
	wantStatus(t, try(testToken, forwardedFor("203.0.113.77")), http.StatusTooManyRequests)
	// Another address is not affected.
	wantStatus(t, try(guess(6), from("198.51.100.7:40000")), http.StatusUnauthorized)

	s.clock.Advance(59 * time.Second)
	res = try(guess(7))
	wantStatus(t, res, http.StatusTooManyRequests)
	wantRetryAfter(t, res, time.Second)

	// Each further wrong token doubles the wait: 2m, 4m, 8m, then 15m at most.
	s.clock.Advance(time.Second)
	for i, wait := range []time.Duration{2 * time.Minute, 4 * time.Minute, 8 * time.Minute, 15 * time.Minute, 15 * time.Minute} {
		wantStatus(t, try(guess(10+i)), http.StatusUnauthorized)
		res := try(guess(20 + i))
		wantStatus(t, res, http.StatusTooManyRequests)
		wantRetryAfter(t, res, wait)
		s.clock.Advance(wait)
	}

	// The right token, once the wait is over, resets the address.
	wantStatus(t, try(testToken), http.StatusSeeOther)
	for i := 1; i <= 5; i++ {
		wantStatus(t, try(guess(30+i)), http.StatusUnauthorized)
	}
	wantStatus(t, try(guess(36)), http.StatusTooManyRequests)

	out := logs.String()
	wantContains(t, out, "dashboard token refused", "client=192.0.2.1", "failures=5", "via=login", "retry_in=1m0s")
	for _, secret := range []string{testToken, "guess-", "zq", tok, csrf.Value} {
		if strings.Contains(out, secret) {
			t.Errorf("the log holds %q:\n%s", secret, out)
		}
	}
}

func TestBearerTokensAreThrottledButSessionsAreNot(t *testing.T) {
	s := newDashSite(t, withToken(testToken))
	sess, _, _ := s.signIn("/")
	if sess == nil {
		t.Fatal("no session")
	}
	for i := 0; i < 5; i++ {
		wantStatus(t, s.get("/api/escalations", bearer("wrong-"+strconv.Itoa(i))), http.StatusUnauthorized)
	}
	res := s.get("/api/escalations", bearer(testToken))
	wantStatus(t, res, http.StatusTooManyRequests)
	wantRetryAfter(t, res, time.Minute)
	var msg map[string]string
	if err := json.NewDecoder(res.Body).Decode(&msg); err != nil || !strings.Contains(msg["error"], "Too many") {
		t.Errorf("/api 429 body: %v, %v", msg, err)
	}
	res = s.get("/", bearer(testToken))
	wantStatus(t, res, http.StatusTooManyRequests)
	wantContains(t, body(t, res), "Too many wrong dashboard tokens")
	// Someone signed in from the same address (a shared NAT) keeps working.
	wantStatus(t, s.get("/api/escalations", withCookies(sess)), http.StatusOK)

	// The login form counts against the same address.
	s.clock.Advance(time.Minute)
	csrf, tok := s.loginForm()
	wantStatus(t, s.post("/login", url.Values{"csrf": {tok}, "token": {"nope"}}, withCookies(csrf)), http.StatusUnauthorized)
	wantStatus(t, s.get("/api/escalations", bearer(testToken)), http.StatusTooManyRequests)
}

func TestRequireTokenIsThrottled(t *testing.T) {
	s := newDashSite(t, withToken(testToken))
	h := s.srv.RequireToken(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { w.Write([]byte("metrics")) }))
	get := func(mod ...func(*http.Request)) *http.Response {
		r, _ := http.NewRequest(http.MethodGet, "/metrics", nil)
		r.RemoteAddr = "192.0.2.1:1234"
		for _, m := range mod {
			m(r)
		}
		w := httptest.NewRecorder()
		h.ServeHTTP(w, r)
		res := w.Result()
		res.Request = r
		return res
	}
	res := get()
	wantStatus(t, res, http.StatusUnauthorized)
	if res.Header.Get("WWW-Authenticate") == "" {
		t.Error("401 without WWW-Authenticate")
	}
	wantStatus(t, get(bearer(testToken)), http.StatusOK)
	wantStatus(t, get(func(r *http.Request) { r.Header.Set("Authorization", "bearer "+testToken) }), http.StatusOK)
	for i := 0; i < 5; i++ {
		wantStatus(t, get(bearer("no")), http.StatusUnauthorized)
	}
	res = get(bearer(testToken))
	wantStatus(t, res, http.StatusTooManyRequests)
	wantRetryAfter(t, res, time.Minute)
	s.clock.Advance(time.Minute)
	wantStatus(t, get(bearer(testToken)), http.StatusOK)
}

func TestForwardedForOnlyFromTrustedProxies(t *testing.T) {
	s := newDashSite(t, withToken(testToken), func(srv *web.Server) {
		srv.TrustedProxies = []netip.Prefix{netip.MustParsePrefix("10.0.0.0/8")}
	})
	proxy := from("10.1.2.3:55000")
	for i := 0; i < 5; i++ {
		wantStatus(t, s.get("/api/escalations", bearer("no"), proxy, forwardedFor("203.0.113.9")), http.StatusUnauthorized)
	}
	// The client behind the proxy is throttled, whatever it prepends.
	wantStatus(t, s.get("/api/escalations", bearer(testToken), proxy, forwardedFor("203.0.113.9")), http.StatusTooManyRequests)
	wantStatus(t, s.get("/api/escalations", bearer(testToken), proxy, forwardedFor("1.1.1.1, 203.0.113.9")), http.StatusTooManyRequests)
	// Another client of the same proxy is not.
	wantStatus(t, s.get("/api/escalations", bearer(testToken), proxy, forwardedFor("203.0.113.10")), http.StatusOK)
	// A peer that is not a trusted proxy cannot claim another address.
	for i := 0; i < 5; i++ {
		wantStatus(t, s.get("/api/escalations", bearer("no"), from("198.51.100.1:1"), forwardedFor("203.0.113."+strconv.Itoa(50+i))), http.StatusUnauthorized)
	}
	wantStatus(t, s.get("/api/escalations", bearer(testToken), from("198.51.100.1:1"), forwardedFor("203.0.113.99")), http.StatusTooManyRequests)
}
