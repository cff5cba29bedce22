package web

import (
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"net/http"
)

// csrf protects state-changing forms with the double-submit pattern: a
// random value in an HttpOnly, SameSite=Strict cookie, and the HMAC of it
// under a per-process key in every form. A request passes only when the
// form field matches the cookie; another site can neither read the cookie
// nor compute the field.
type csrf struct {
	key    []byte
	secure bool // cookies are Secure even when the request is plain HTTP (TLS proxy)
}

const csrfCookie = "threatgate_csrf"

// CSRFField is the form field that carries the token.
const CSRFField = "csrf"

func newCSRF() *csrf {
	k := make([]byte, 32)
	rand.Read(k)
	return &csrf{key: k}
}

func (c *csrf) sign(v string) string {
	m := hmac.New(sha256.New, c.key)
	m.Write([]byte(v))
	return base64.RawURLEncoding.EncodeToString(m.Sum(nil))
}

// token returns the form token for r, setting the cookie when r has none.
func (c *csrf) token(w http.ResponseWriter, r *http.Request) string {
	if ck, err := r.Cookie(csrfCookie); err == nil && len(ck.Value) >= 16 {
		return c.sign(ck.Value)
	}
	b := make([]byte, 24)
	rand.Read(b)
	v := base64.RawURLEncoding.EncodeToString(b)
	http.SetCookie(w, &http.Cookie{Name: csrfCookie, Value: v, Path: "/", HttpOnly: true, SameSite: http.SameSiteStrictMode, Secure: r.TLS != nil || c.secure})
	return c.sign(v)
}

// check reports whether the form of r carries the token of its cookie.
func (c *csrf) check(r *http.Request) bool {
	ck, err := r.Cookie(csrfCookie)
	if err != nil || len(ck.Value) < 16 {
		return false
	}
	want := c.sign(ck.Value)
	got := r.PostFormValue(CSRFField)
	return subtle.ConstantTimeCompare([]byte(got), []byte(want)) == 1
}
