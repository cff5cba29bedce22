package web

import (
	"context"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/threatgate/threatgate/bot"
)

// Dashboard access. With no DashboardToken everything is open (the
// listener binds to loopback by default). With one, pages, /api and the
// console need either "Authorization: Bearer <token>" or the session
// cookie that POST /login sets after checking the token.
//
// The session cookie holds a random session id, its expiry and an HMAC of
// both under a key made when the process starts, never the token: a
// restart signs everyone out, and sign-out revokes the id for the rest of
// its life. The login and logout forms carry the CSRF token (csrf.go).

const (
	sessionCookie = "threatgate_session"
	sessionTTL    = 12 * time.Hour
	maxLoginForm  = 8 << 10
)

// sessions signs and checks session cookies.
type sessions struct {
	key     []byte
	mu      sync.Mutex
	revoked map[string]time.Time // session id -> its expiry, until then
}

func newSessions() *sessions {
	k := make([]byte, 32)
	rand.Read(k)
	return &sessions{key: k, revoked: map[string]time.Time{}}
}

func (ss *sessions) mac(id string, exp int64) string {
	m := hmac.New(sha256.New, ss.key)
	m.Write([]byte("session|" + id + "|" + strconv.FormatInt(exp, 10)))
	return base64.RawURLEncoding.EncodeToString(m.Sum(nil))
}

// issue returns a new session value expiring at now+sessionTTL.
func (ss *sessions) issue(now time.Time) (value string, exp time.Time) {
	b := make([]byte, 18)
	rand.Read(b)
	id := base64.RawURLEncoding.EncodeToString(b)
	exp = now.Add(sessionTTL)
	return id + "." + strconv.FormatInt(exp.Unix(), 10) + "." + ss.mac(id, exp.Unix()), exp
}

// check returns the id and expiry of a valid, unexpired, unrevoked
// session value.
func (ss *sessions) check(value string, now time.Time) (id string, exp time.Time, ok bool) {
	parts := strings.Split(value, ".")
	if len(parts) != 3 {
		return "", time.Time{}, false
	}
	unix, err := strconv.ParseInt(parts[1], 10, 64)
	if err != nil {
		return "", time.Time{}, false
	}
	if !hmac.Equal([]byte(parts[2]), []byte(ss.mac(parts[0], unix))) {
		return "", time.Time{}, false
	}
	exp = time.Unix(unix, 0)
	if !now.Before(exp) {
		return "", time.Time{}, false
	}
	ss.mu.Lock()
	_, gone := ss.revoked[parts[0]]
	ss.mu.Unlock()
	return parts[0], exp, !gone
}

// revoke ends a session before its expiry and forgets the revocations
// that have expired anyway.
func (ss *sessions) revoke(id string, exp, now time.Time) {
	ss.mu.Lock()
	defer ss.mu.Unlock()
	for k, e := range ss.revoked {
		if !now.Before(e) {
			delete(ss.revoked, k)
		}
	}
	ss.revoked[id] = exp
}

// tokenOK compares a presented token with the dashboard token in
// constant time (hashing first, so the length does not show either).
func (s *Server) tokenOK(got string) bool {
	return bot.SecretEqual(got, s.DashboardToken)
}

// authenticate returns how r proves it may read: "bearer", "cookie", or
// "" when it does not. A bearer token is checked only when the client's
// address is not throttled (see throttle.go); when it is, wait says for
// how long, and the request should get 429.
func (s *Server) authenticate(r *http.Request) (via string, wait time.Duration) {
	if h := r.Header.Get("Authorization"); len(h) > 7 && strings.EqualFold(h[:7], "Bearer ") {
		if s.checkToken(r, "bearer", strings.TrimSpace(h[7:]), &wait) {
			return "bearer", 0
		}
		return "", wait
	}
	if c, err := r.Cookie(sessionCookie); err == nil {
		if _, _, ok := s.sessions.check(c.Value, s.now()); ok {
			return "cookie", 0
		}
	}
	return "", 0
}

// checkToken checks a token presented by r through the throttle of its
// client address: it reports whether it is the dashboard token, and sets
// *wait when the address may not try now (the token is then not looked
// at).
func (s *Server) checkToken(r *http.Request, via, token string, wait *time.Duration) bool {
	key := clientKey(r, s.TrustedProxies)
	w, ok := s.limiter.begin(key, s.now())
	if !ok {
		*wait = w
		return false
	}
	return s.endAttempt(key, via, token)
}

// endAttempt ends the attempt begun for the address key by checking
// token: the right one forgets the address, a wrong one counts against it
// and is logged with the address and its count, never with the token.
func (s *Server) endAttempt(key, via, token string) bool {
	if s.tokenOK(token) {
		s.limiter.succeed(key)
		return true
	}
	n, blocked := s.limiter.fail(key, s.now())
	attrs := []any{logClient, key, logFailures, n, logVia, via}
	if blocked > 0 {
		attrs = append(attrs, logRetryIn, blocked)
	}
	s.log.Warn("dashboard token refused", attrs...)
	return false
}

// tooMany answers a request whose address must wait before it tries a
// token again.
func (s *Server) tooMany(w http.ResponseWriter, r *http.Request, wait time.Duration, page func(msg string)) {
	w.Header().Set("Retry-After", retryAfter(wait))
	msg := "Too many wrong dashboard tokens from your address. Try again in " + formatDuration(wait.Round(time.Second)) + "."
	if wait < time.Minute {
		msg = "Too many wrong dashboard tokens from your address. Try again in " + retryAfter(wait) + " s."
	}
	if page != nil {
		page(msg)
		return
	}
	s.RenderError(w, r, http.StatusTooManyRequests, msg)
}

// authVia returns how the request was authenticated by requireAuth.
func authVia(r *http.Request) string {
	v, _ := r.Context().Value(authKey).(string)
	return v
}

// requireAuth lets h serve only authenticated requests when a dashboard
// token is configured. Others get 401 JSON under /api/, a redirect to the
// login form for GET and HEAD, and a 401 page otherwise.
func (s *Server) requireAuth(h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if s.DashboardToken == "" {
			h.ServeHTTP(w, r)
			return
		}
		via, wait := s.authenticate(r)
		if via != "" {
			h.ServeHTTP(w, r.WithContext(context.WithValue(r.Context(), authKey, via)))
			return
		}
		api := r.URL.Path == "/api" || strings.HasPrefix(r.URL.Path, "/api/")
		if wait > 0 {
			var page func(string)
			if api {
				page = func(msg string) { apiError(w, http.StatusTooManyRequests, msg) }
			}
			s.tooMany(w, r, wait, page)
			return
		}
		w.Header().Set("WWW-Authenticate", `Bearer realm="threatgate"`)
		switch {
		case api:
			apiError(w, http.StatusUnauthorized, "this needs the dashboard token: Authorization: Bearer <token>")
		case r.Method == http.MethodGet || r.Method == http.MethodHead:
			http.Redirect(w, r, "/login?next="+url.QueryEscape(r.URL.RequestURI()), http.StatusFound)
		default:
			s.RenderError(w, r, http.StatusUnauthorized, "Sign in with the dashboard token first.")
		}
	})
}

// localPath returns next when it is a path on this server, and "/"
// otherwise, so that the login form cannot send anyone elsewhere.
func localPath(next string) string {
	if next == "" || next[0] != '/' || strings.HasPrefix(next, "//") {
		return "/"
	}
	for _, c := range next {
		// A backslash is a slash to browsers ("/\evil.com"); control
		// characters are dropped by them ("/\t/evil.com").
		if c == '\\' || c < 0x20 || c == 0x7f {
			return "/"
		}
	}
	u, err := url.Parse(next)
	if err != nil || u.Scheme != "" || u.Host != "" || u.User != nil || u.Opaque != "" {
		return "/"
	}
	return next
}

type loginView struct {
	Next  string
	Error string
}

// loginForm serves GET /login.
func (s *Server) loginForm(w http.ResponseWriter, r *http.Request) {
	next := localPath(r.URL.Query().Get("next"))
	if s.DashboardToken == "" {
		http.Redirect(w, r, next, http.StatusFound)
		return
	}
	if via, _ := s.authenticate(r); via != "" {
		http.Redirect(w, r, next, http.StatusFound)
		return
	}
	s.Render(w, r, "login", "Sign in", loginView{Next: next})
}

// login serves POST /login: the throttle of the client's address first
// (before the form is read), then the CSRF field, then the token.
func (s *Server) login(w http.ResponseWriter, r *http.Request) {
	r.Body = http.MaxBytesReader(w, r.Body, maxLoginForm)
	if s.DashboardToken == "" {
		if !s.csrf.check(r) {
			s.RenderError(w, r, http.StatusForbidden, "The form had expired or did not come from this page. Open the sign-in page again and retry.")
			return
		}
		http.Redirect(w, r, localPath(r.PostFormValue("next")), http.StatusSeeOther)
		return
	}
	key := clientKey(r, s.TrustedProxies)
	if wait, ok := s.limiter.begin(key, s.now()); !ok {
		s.tooMany(w, r, wait, func(msg string) {
			s.RenderStatus(w, r, http.StatusTooManyRequests, "login", "Sign in", loginView{Next: "/", Error: msg})
		})
		return
	}
	if !s.csrf.check(r) {
		s.limiter.abandon(key)
		s.RenderError(w, r, http.StatusForbidden, "The form had expired or did not come from this page. Open the sign-in page again and retry.")
		return
	}
	next := localPath(r.PostFormValue("next"))
	if !s.endAttempt(key, "login", r.PostFormValue("token")) {
		s.RenderStatus(w, r, http.StatusUnauthorized, "login", "Sign in", loginView{Next: next, Error: "That is not the dashboard token."})
		return
	}
	value, exp := s.sessions.issue(s.now())
	http.SetCookie(w, &http.Cookie{
		Name: sessionCookie, Value: value, Path: "/", Expires: exp, MaxAge: int(sessionTTL / time.Second),
		HttpOnly: true, SameSite: http.SameSiteStrictMode, Secure: s.secureCookies(r),
	})
	http.Redirect(w, r, next, http.StatusSeeOther)
}

// logout serves POST /logout: it revokes the session and clears the
// cookie.
func (s *Server) logout(w http.ResponseWriter, r *http.Request) {
	r.Body = http.MaxBytesReader(w, r.Body, maxLoginForm)
	if !s.csrf.check(r) {
		s.RenderError(w, r, http.StatusForbidden, "The form had expired or did not come from this page. Reload the page and retry.")
		return
	}
	if c, err := r.Cookie(sessionCookie); err == nil {
		if id, exp, ok := s.sessions.check(c.Value, s.now()); ok {
			s.sessions.revoke(id, exp, s.now())
		}
	}
	http.SetCookie(w, &http.Cookie{Name: sessionCookie, Value: "", Path: "/", MaxAge: -1,
		HttpOnly: true, SameSite: http.SameSiteStrictMode, Secure: s.secureCookies(r)})
	to := "/"
	if s.DashboardToken != "" {
		to = "/login"
	}
	http.Redirect(w, r, to, http.StatusSeeOther)
}

// secureCookies says whether cookies get the Secure flag: over TLS, or
// when threatgate is reached through https (a TLS-terminating proxy).
func (s *Server) secureCookies(r *http.Request) bool {
	return r.TLS != nil || s.HTTPS
}

// RequireToken lets h serve only requests that carry the dashboard token
// as "Authorization: Bearer <token>", for endpoints that machines call
// (/metrics, /api/reconcile); there is no login form or cookie for them.
// Others get 401 with WWW-Authenticate, or 429 with Retry-After while
// their address is throttled for wrong tokens (see throttle.go). Without
// a dashboard token, h serves everyone.
func (s *Server) RequireToken(h http.Handler) http.Handler {
	s.setup()
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if s.DashboardToken == "" {
			h.ServeHTTP(w, r)
			return
		}
		var wait time.Duration
		if a := r.Header.Get("Authorization"); len(a) > 7 && strings.EqualFold(a[:7], "Bearer ") {
			if s.checkToken(r, "bearer", strings.TrimSpace(a[7:]), &wait) {
				h.ServeHTTP(w, r)
				return
			}
		}
		if wait > 0 {
			w.Header().Set("Retry-After", retryAfter(wait))
			http.Error(w, "too many wrong dashboard tokens from this address; retry later", http.StatusTooManyRequests)
			return
		}
		w.Header().Set("WWW-Authenticate", `Bearer realm="threatgate"`)
		http.Error(w, "this needs the dashboard token: Authorization: Bearer <token>", http.StatusUnauthorized)
	})
}
