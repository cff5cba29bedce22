package web_test

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/threatgate/threatgate/adapters/web"
	"github.com/threatgate/threatgate/bot"
)

// setAside records dead letters in the site's store, one a minute before
// the clock, the last one newest.
func (s *dashSite) setAside(dls ...bot.DeadLetter) {
	s.t.Helper()
	for i, dl := range dls {
		if dl.At.IsZero() {
			dl.At = s.clock.Now().Add(time.Duration(i-len(dls)) * time.Minute)
		}
		if err := s.db.SetAside(context.Background(), dl); err != nil {
			s.t.Fatal(err)
		}
	}
}

func TestDashboardWithoutDeadLetters(t *testing.T) {
	s := newDashSite(t)
	wantNotContains(t, body(t, s.get("/")), `id="set-aside"`, "Set aside")
	s.seed()
	wantNotContains(t, body(t, s.get("/")), `id="set-aside"`, "Set aside")
}

// TestDashboardShowsDeadLetters: the section shows the count and the
// newest items with when, kind, ref, escalation and reason, even before
// any escalation exists (the poison may be the first webhook); the
// payload never.
func TestDashboardShowsDeadLetters(t *testing.T) {
	s := newDashSite(t)
	s.setAside(
		bot.DeadLetter{Kind: "inbox", Ref: "7", Reason: "runtime error: index out of range [3] with length 2", Panic: true,
			At: time.Date(2026, 10, 5, 8, 30, 0, 0, time.UTC), Payload: []byte(`{"object_kind":"merge_request","token":"s3cr3t-payload"}`)},
		bot.DeadLetter{Kind: "reconcile", Ref: "ESC-2", Escalation: "ESC-2", Reason: "assignment to entry in nil map", Panic: true,
			At: time.Date(2026, 10, 5, 8, 45, 0, 0, time.UTC)},
	)
	res := s.get("/")
	wantStatus(t, res, http.StatusOK)
	page := body(t, res)
	wantContains(t, page, "No escalations yet") // and still the empty state
	sec := section(t, page, "set-aside")
	wantContains(t, sec, "Set aside", "<strong>2</strong> items could not be handled and were set aside",
		`<time datetime="2026-10-05T08:30:00Z">2026-10-05 08:30 UTC</time>`,
		`<td data-label="Kind">inbox</td>`, `<td data-label="Ref"><code>7</code></td>`,
		"runtime error: index out of range [3] with length 2",
		`<td data-label="Kind">reconcile</td>`, `<a href="/escalations/ESC-2">ESC-2</a>`, "assignment to entry in nil map",
		`<span class="flag bad">panic</span>`)
	inOrder(t, "newest first", sec, `id="DL-2"`, `id="DL-1"`)
	wantNotContains(t, sec, "The newest")
	wantNotContains(t, page, "s3cr3t-payload", "object_kind")

	// With escalations, the section comes first: an operator must act.
	s.seed()
	page = body(t, s.get("/"))
	inOrder(t, "page", page, `id="set-aside"`, `id="aging"`)
}

func TestDashboardShowsNewestTwentyDeadLetters(t *testing.T) {
	s := newDashSite(t)
	var dls []bot.DeadLetter
	for i := 1; i <= 23; i++ {
		dls = append(dls, bot.DeadLetter{Kind: "inbox", Ref: fmt.Sprint(i), Reason: "boom"})
	}
	s.setAside(dls...)
	sec := section(t, body(t, s.get("/")), "set-aside")
	wantContains(t, sec, "<strong>23</strong> items", "The newest 20 of 23.")
	if n := strings.Count(sec, "<tr id="); n != 20 {
		t.Errorf("%d rows, want the newest 20", n)
	}
	wantContains(t, sec, `<code>23</code>`, `<code>4</code>`)
	wantNotContains(t, sec, `<code>3</code>`, `<code>1</code>`)
}

func TestDeadLetterTextIsEscaped(t *testing.T) {
	s := newDashSite(t)
	s.setAside(bot.DeadLetter{Kind: "inbox", Ref: `<img src=x onerror=alert(1)>`, Escalation: `"><script>alert(2)</script>`,
		Reason: `<script>alert("pwned")</script>`, Panic: true})
	page := body(t, s.get("/"))
	wantNotContains(t, page, "<script>alert", "<img src=x", `href="/escalations/"><script>`)
	wantContains(t, page, "&lt;script&gt;alert(&#34;pwned&#34;)&lt;/script&gt;", "&lt;img src=x onerror=alert(1)&gt;")
}

// faultyDeadLetters fails the dead-letter reads.
type faultyDeadLetters struct {
	web.Reader
	err error
}

func (f faultyDeadLetters) DeadLetterCount(context.Context) (int, error) { return 0, f.err }

func TestDeadLetterReadFailureIs500(t *testing.T) {
	secret := errors.New("read /var/lib/threatgate/threatgate.db: disk on fire")
	s := newDashSite(t, withReader(func(r web.Reader) web.Reader { return faultyDeadLetters{Reader: r, err: secret} }))
	res := s.get("/")
	wantStatus(t, res, http.StatusInternalServerError)
	page := body(t, res)
	wantNotContains(t, page, "disk on fire", "/var/lib")
	if !refPattern.MatchString(page) {
		t.Error("no reference in the 500 page")
	}
}
