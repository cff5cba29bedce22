package main

import (
	"context"
	"io"
	"net/http"
	"net/http/cookiejar"
	"net/http/httptest"
	"net/url"
	"regexp"
	"strings"
	"testing"

	"github.com/threatgate/threatgate/bot"
	"github.com/threatgate/threatgate/bot/bottest"
)

// consoleClient serves the demo rig's handler over HTTP and returns a
// cookie-keeping client with the console's CSRF token.
func consoleClient(t *testing.T, r *demoRig) (base string, c *http.Client, csrf string) {
	t.Helper()
	srv := httptest.NewServer(r.srv.handler)
	t.Cleanup(srv.Close)
	jar, _ := cookiejar.New(nil)
	c = &http.Client{Jar: jar, CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	code, page := fetch(t, c, http.MethodGet, srv.URL+"/console?as=frank", nil)
	m := regexp.MustCompile(`name="csrf" value="([^"]+)"`).FindStringSubmatch(page)
	if code != http.StatusOK || m == nil {
		t.Fatalf("GET /console: %d, CSRF field found: %v", code, m != nil)
	}
	return srv.URL, c, m[1]
}

func fetch(t *testing.T, c *http.Client, method, u string, form url.Values) (int, string) {
	t.Helper()
	var body io.Reader
	if form != nil {
		body = strings.NewReader(form.Encode())
	}
	req, _ := http.NewRequest(method, u, body)
	if form != nil {
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	}
	resp, err := c.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	if loc := resp.Header.Get("Location"); loc != "" {
		return resp.StatusCode, loc
	}
	return resp.StatusCode, string(b)
}

// TestConsoleMR drives POST /console/mr: the simulated GitLab's buttons.
func TestConsoleMR(t *testing.T) {
	r := newDemoRig(t, bottest.NewClock(demoT0))
	ctx := context.Background()
	esc, _, err := r.sim.OpenSample(ctx, "auth-session")
	if err != nil {
		t.Fatal(err)
	}
	r.deliver(t)
	ref := r.panel(t, esc).Ref
	base, c, csrf := consoleClient(t, r)

	// The panel shows the MR, its gate on its head, and its buttons; the
	// sample buttons show the tier the policy gives them.
	_, page := fetch(t, c, http.MethodGet, base+"/console?as=frank&thread="+esc, nil)
	for _, want := range []string{`id="mr-acme-identity-service-200"`, "Gate:", "<strong>pending</strong> on " + bot.ShortSHA(r.find(t, esc).HeadSHA) + " (the head)",
		`id="push-acme-identity-service-200"`, `id="merge-acme-identity-service-200"`, `id="sample-tier-auth-session">opens as T2<`, `id="sample-tier-docs-only">no review<`,
		`<details class="help"`, `<script src="/static/console.js" defer></script>`} {
		if !strings.Contains(page, want) {
			t.Errorf("the console lacks %q", want)
		}
	}

	post := func(form url.Values) (int, string) {
		t.Helper()
		return fetch(t, c, http.MethodPost, base+"/console/mr", form)
	}
	for _, tc := range []struct {
		name string
		form url.Values
		code int
		want string
	}{
		{"no CSRF token", url.Values{"as": {"frank"}, "mr": {ref}, "action": {"push"}}, http.StatusForbidden, "did not come from this console"},
		{"a wrong CSRF token", url.Values{"csrf": {"x" + csrf}, "as": {"frank"}, "mr": {ref}, "action": {"push"}}, http.StatusForbidden, "did not come from this console"},
		{"no MR", url.Values{"csrf": {csrf}, "as": {"frank"}, "action": {"push"}}, http.StatusBadRequest, "which merge request"},
		{"no action", url.Values{"csrf": {csrf}, "as": {"frank"}, "mr": {ref}}, http.StatusBadRequest, "push, merge, close or reopen"},
		{"an unknown action", url.Values{"csrf": {csrf}, "as": {"frank"}, "mr": {ref}, "action": {"<b>rebase</b>"}}, http.StatusBadRequest, "no action &#34;&lt;b&gt;rebase&lt;/b&gt;&#34;; want push, merge, close or reopen"},
		{"an unknown MR", url.Values{"csrf": {csrf}, "as": {"frank"}, "mr": {"acme/nope!9"}, "action": {"push"}}, http.StatusNotFound, "has no merge request &#34;acme/nope!9&#34;"},
		{"not an MR", url.Values{"csrf": {csrf}, "as": {"frank"}, "mr": {"<script>"}, "action": {"merge"}}, http.StatusNotFound, "&lt;script&gt;"},
		{"reopen an open MR", url.Values{"csrf": {csrf}, "as": {"frank"}, "mr": {ref}, "action": {"reopen"}}, http.StatusBadRequest, "only a closed merge request can be reopened"},
	} {
		code, body := post(tc.form)
		if code != tc.code || !strings.Contains(body, tc.want) {
			t.Errorf("%s: %d, want %d with %q:\n%.600s", tc.name, code, tc.code, tc.want, body)
		}
		if strings.Contains(body, "<script>") || strings.Contains(body, "<b>rebase") {
			t.Errorf("%s: input echoed unescaped", tc.name)
		}
	}
	if e := r.find(t, esc); e.State != bot.StateAwaitingArtifacts || len(r.sim.gl.Requests()) == 0 {
		t.Fatalf("refused forms changed %s: %s", esc, e.State)
	}

	// A push: back to the thread, which says what happened.
	head := r.find(t, esc).HeadSHA
	code, loc := post(url.Values{"csrf": {csrf}, "as": {"frank"}, "mr": {ref}, "action": {"push"}})
	if code != http.StatusSeeOther || loc != "/console?as=frank&thread="+esc {
		t.Fatalf("push: %d to %q; want 303 to the thread", code, loc)
	}
	if e := r.find(t, esc); e.HeadSHA == head {
		t.Errorf("after a push the head is still %s", head)
	}
	if _, page := fetch(t, c, http.MethodGet, base+loc, nil); !strings.Contains(page, "Pushed commit") {
		t.Errorf("the thread does not tell of the push")
	}
	// A merge without approval: a bypass, shown in the panel.
	if code, _ := post(url.Values{"csrf": {csrf}, "as": {"frank"}, "mr": {ref}, "action": {"merge"}}); code != http.StatusSeeOther {
		t.Fatalf("merge: %d", code)
	}
	r.deliver(t)
	_, page = fetch(t, c, http.MethodGet, base+"/console?as=frank&thread="+esc, nil)
	for _, want := range []string{"recorded as a bypass", `<strong class="bypass">bypassed</strong>`, `<span class="mr-state">merged</span>`} {
		if !strings.Contains(page, want) {
			t.Errorf("after the merge the console lacks %q", want)
		}
	}
	if strings.Contains(page, `id="push-acme-identity-service-200"`) {
		t.Error("a merged MR still offers a push")
	}
}

// TestConsoleMRNeedsToken: with a dashboard token, /console/mr is behind
// the login like the rest of the console.
func TestConsoleMRNeedsToken(t *testing.T) {
	r := newDemoRig(t, bottest.NewClock(demoT0))
	r.srv.web.DashboardToken = "s3cret-token-for-the-test"
	srv := httptest.NewServer(r.srv.handler)
	defer srv.Close()
	c := &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	code, _ := fetch(t, c, http.MethodPost, srv.URL+"/console/mr", url.Values{"mr": {"acme/x!1"}, "action": {"push"}})
	if code != http.StatusUnauthorized && code != http.StatusSeeOther && code != http.StatusForbidden {
		t.Errorf("POST /console/mr without the token: %d; want it refused", code)
	}
	if len(r.sim.MergeRequests(context.Background())) != 0 {
		t.Error("something was opened")
	}
}
