package web_test

import (
	"context"
	"net/http"
	"net/http/cookiejar"
	"net/http/httptest"
	"net/url"
	"regexp"
	"strings"
	"testing"

	"github.com/threatgate/threatgate/adapters/web"
	"github.com/threatgate/threatgate/bot"
)

// fakeSamples opens one sample MR through the site's engine.
type fakeSamples struct{ site *dashSite }

func (f fakeSamples) Samples() []web.Sample {
	return []web.Sample{{ID: "auth", Title: "Session rework", Description: "touches auth"}}
}

func (f fakeSamples) OpenSample(ctx context.Context, id string) (string, string, error) {
	if id != "auth" {
		return "", "", &bot.Problem{Msg: "no sample " + id}
	}
	rep, err := f.site.eng.Handle(ctx, f.site.mr(77, "abc1234", "Session rework", bot.MROpen, "internal/auth/session.go"))
	return rep.Escalation, rep.Text, err
}

// consoleSite is a dashboard with the console mounted, served over HTTP
// so that a cookie-keeping client can use its forms.
func consoleSite(t *testing.T) (*dashSite, *web.Console, *httptest.Server, *http.Client) {
	t.Helper()
	var console *web.Console
	site := newDashSite(t, func(s *web.Server) {
		console = &web.Console{Web: s}
		s.Console = console
	})
	console.Engine = site.eng
	console.Samples = fakeSamples{site}
	srv := httptest.NewServer(site.h)
	t.Cleanup(srv.Close)
	jar, _ := cookiejar.New(nil)
	client := &http.Client{Jar: jar}
	return site, console, srv, client
}

var csrfField = regexp.MustCompile(`name="csrf" value="([^"]+)"`)

func getPage(t *testing.T, c *http.Client, u string) (int, string) {
	t.Helper()
	resp, err := c.Get(u)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var b strings.Builder
	buf := make([]byte, 32<<10)
	for {
		n, err := resp.Body.Read(buf)
		b.Write(buf[:n])
		if err != nil {
			break
		}
	}
	return resp.StatusCode, b.String()
}

func postForm(t *testing.T, c *http.Client, u string, form url.Values) (int, string) {
	t.Helper()
	resp, err := c.PostForm(u, form)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b := make([]byte, 64<<10)
	n, _ := resp.Body.Read(b)
	return resp.StatusCode, string(b[:n])
}

func TestConsoleActsAsAPersonAndShowsTheThread(t *testing.T) {
	_, console, srv, client := consoleSite(t)
	code, page := getPage(t, client, srv.URL+"/console?as=ann")
	if code != 200 || !strings.Contains(strings.ToLower(page), "can act as anyone") {
		t.Fatalf("console page %d lacks the warning:\n%s", code, page)
	}
	m := csrfField.FindStringSubmatch(page)
	if m == nil {
		t.Fatal("no CSRF field on the console")
	}
	token := m[1]

	// Open the sample: redirected into its thread.
	code, page = postForm(t, client, srv.URL+"/console/sample", url.Values{"csrf": {token}, "as": {"ann"}, "sample": {"auth"}})
	if code != 200 || !strings.Contains(page, "ESC-1") {
		t.Fatalf("open sample: %d", code)
	}
	// The dispatcher would post the summary; post as it would.
	console.Post(context.Background(), bot.Message{Key: "s1", Escalation: "ESC-1", Summary: true, Text: "ESC-1 · summary v1"})
	console.Post(context.Background(), bot.Message{Key: "s2", Escalation: "ESC-1", Summary: true, Text: "ESC-1 · summary v2"})
	console.Post(context.Background(), bot.Message{Key: "p1", Escalation: "ESC-1", Text: "Security review required"})
	console.Post(context.Background(), bot.Message{Key: "p1", Escalation: "ESC-1", Text: "Security review required"}) // a retry
	sum, posts := console.Thread("ESC-1")
	bots := 0
	for _, p := range posts {
		if p.Kind == "bot" {
			bots++
		}
	}
	if sum != "ESC-1 · summary v2" || bots != 1 || posts[0].Kind != "reply" || !strings.Contains(posts[0].Text, "escalated as ESC-1") {
		t.Errorf("thread: summary %q, posts %+v; want the sample's answer, the summary replaced in place and the retried post once", sum, posts)
	}

	send := func(as, text string) string {
		t.Helper()
		code, page := postForm(t, client, srv.URL+"/console/send", url.Values{"csrf": {token}, "as": {as}, "thread": {"ESC-1"}, "text": {text}})
		if code != 200 {
			t.Fatalf("send %q as %s: %d", text, as, code)
		}
		return page
	}
	page = send("ann", "/threatgate artifact threat-model https://wiki/tm")
	if !strings.Contains(page, "threat-model added to ESC-1") {
		t.Errorf("artifact reply missing:\n%s", page)
	}
	page = send("ann", "/approve mine")
	if !strings.Contains(page, "you wrote this merge request") {
		t.Errorf("the author's approval was not refused in the thread")
	}
	page = send("bob", "not a command")
	if !strings.Contains(page, "in a thread, write a command") {
		t.Errorf("plain chat got no hint")
	}
}

func TestConsoleRefusesForgedForms(t *testing.T) {
	_, _, srv, client := consoleSite(t)
	getPage(t, client, srv.URL+"/console")
	if code, _ := postForm(t, client, srv.URL+"/console/send", url.Values{"csrf": {"forged"}, "as": {"alice"}, "text": {"/threatgate backlog"}}); code != http.StatusForbidden {
		t.Errorf("forged CSRF token: %d, want 403", code)
	}
	other := &http.Client{} // no cookie at all: a cross-site post
	if code, _ := postForm(t, other, srv.URL+"/console/sample", url.Values{"as": {"alice"}, "sample": {"auth"}}); code != http.StatusForbidden {
		t.Errorf("no CSRF cookie: %d, want 403", code)
	}
	_, page := getPage(t, client, srv.URL+"/console")
	token := csrfField.FindStringSubmatch(page)[1]
	if code, _ := postForm(t, client, srv.URL+"/console/send", url.Values{"csrf": {token}, "as": {"mallory"}, "text": {"/threatgate backlog"}}); code != http.StatusBadRequest {
		t.Errorf("unknown person: %d, want 400", code)
	}
	if code, _ := getPage(t, client, srv.URL+"/console/nope"); code != 404 {
		t.Errorf("unknown console path: %d", code)
	}
}

func TestConsoleMentionsFromOutsideAreInert(t *testing.T) {
	site, console, srv, client := consoleSite(t)
	site.handle(site.mr(5, "abc5", "@here hotfix <!channel>", bot.MROpen, "internal/auth/session.go"))
	ctx := context.Background()
	console.Post(ctx, bot.Message{Key: "s", Escalation: "ESC-1", Summary: true, Text: "ESC-1 · shop/api!5 @here hotfix <!channel>"})
	console.Post(ctx, bot.Message{Key: "p", Escalation: "ESC-1", Text: "Evidence: +// @all see <!channel> and <@U999>", Mention: []string{"alice", "bob"}})

	_, page := getPage(t, client, srv.URL+"/console?as=bob&thread=ESC-1")
	token := csrfField.FindStringSubmatch(page)[1]
	// What people type is echoed too, and so is the engine's answer.
	code, page := postForm(t, client, srv.URL+"/console/send", url.Values{"csrf": {token}, "as": {"bob"}, "thread": {"ESC-1"}, "text": {"/threatgate dissent ESC-1 @everyone <!here> look"}})
	if code != 200 {
		t.Fatalf("send: %d", code)
	}
	wantNotContains(t, page, "@all", "@here", "@everyone", "&lt;!channel&gt;", "&lt;!here&gt;", "&lt;@U999")
	wantContains(t, page,
		"@\u200dall see &lt;\u200d!channel&gt; and &lt;\u200d@\u200dU999&gt;", // the post
		"shop/api!5 @\u200dhere hotfix &lt;\u200d!channel&gt;",                // the summary and the thread list
		"@\u200deveryone &lt;\u200d!here&gt; look",                            // what bob typed
		`<span class="mention">@alice @bob</span>`)                            // threatgate's own mentions
	// The thread itself keeps the text as posted.
	if _, posts := console.Thread("ESC-1"); !strings.Contains(posts[0].Text, "@all see <!channel>") {
		t.Errorf("stored post = %q, want it unchanged", posts[0].Text)
	}
}
