package web_test

import (
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/threatgate/threatgate/bot"
	"github.com/threatgate/threatgate/policies"
)

// listBody is the body of GET /api/escalations.
type listBody struct {
	Items []struct {
		ID       string `json:"id"`
		Title    string `json:"title"`
		MRURL    string `json:"mr_url"`
		HeadSHA  string `json:"head_sha"`
		Bypassed bool   `json:"bypassed"`
	} `json:"items"`
	Next    string `json:"next"`
	NextURL string `json:"next_url"`
}

// apiList gets path and decodes a 200 answer.
func (s *dashSite) apiList(path string) (listBody, *http.Response) {
	s.t.Helper()
	res := s.get(path)
	raw := body(s.t, res)
	var b listBody
	if res.StatusCode == http.StatusOK {
		if err := json.Unmarshal([]byte(raw), &b); err != nil {
			s.t.Fatalf("%s: %v\n%s", path, err, raw)
		}
	}
	return b, res
}

// apiIDs follows next from path to the end and returns every id.
func (s *dashSite) apiIDs(path string) []string {
	s.t.Helper()
	var ids []string
	for range 100 {
		b, res := s.apiList(path)
		if res.StatusCode != http.StatusOK {
			s.t.Fatalf("%s: status %d", path, res.StatusCode)
		}
		for _, it := range b.Items {
			ids = append(ids, it.ID)
		}
		if b.NextURL == "" {
			return ids
		}
		if link := res.Header.Get("Link"); link != "<"+b.NextURL+`>; rel="next"` {
			s.t.Fatalf("%s: Link %q, want next_url %q", path, link, b.NextURL)
		}
		path = b.NextURL
	}
	s.t.Fatalf("%s: more than 100 pages", path)
	return nil
}

func ids(s ...string) []string { return s }

// TestAPIFilters: each filter alone and in combination selects what the
// seed says (see seed), newest first, and the page of the same query
// agrees.
func TestAPIFilters(t *testing.T) {
	s := newDashSite(t)
	s.seed()
	for _, tt := range []struct {
		query string
		want  []string
	}{
		{"", ids("ESC-6", "ESC-5", "ESC-4", "ESC-3", "ESC-2", "ESC-1")},
		{"state=bypassed", ids("ESC-5")},
		{"state=merged", ids("ESC-5")},
		{"state=rejected", ids("ESC-4")},
		{"state=deferred", ids("ESC-3")},
		{"state=in_review", ids("ESC-1")},
		{"state=open", ids("ESC-6", "ESC-3", "ESC-2", "ESC-1")},
		{"state=closed", ids("ESC-5", "ESC-4")},
		{"state=approved", nil},
		{"open=true", ids("ESC-6", "ESC-3", "ESC-2", "ESC-1")},
		{"open=false", ids("ESC-5", "ESC-4")},
		{"tier=T3", ids("ESC-6", "ESC-3", "ESC-2")},
		{"tier=T2", ids("ESC-5", "ESC-4", "ESC-1")},
		{"project=shop/web", ids("ESC-6")},
		{"project=SHOP/API", ids("ESC-5", "ESC-4", "ESC-3", "ESC-2", "ESC-1")},
		{"person=bob", ids("ESC-4", "ESC-2", "ESC-1")},                            // rejected ESC-4, dissented on ESC-2, ESC-1 waits on him
		{"person=alice", ids("ESC-2", "ESC-1")},                                   // an action item on ESC-2, approved ESC-1
		{"person=ANN", ids("ESC-6", "ESC-5", "ESC-4", "ESC-3", "ESC-2", "ESC-1")}, // the author; the filer of ESC-6
		{"person=nobody", nil},
		{"flag=urgent", ids("ESC-6")},
		{"flag=manual", ids("ESC-6")},
		{"flag=forged", ids("ESC-1")},
		{"flag=overdue", ids("ESC-2", "ESC-1")},
		{"since=2026-10-26", ids("ESC-6", "ESC-5", "ESC-4", "ESC-3")},
		{"until=2026-10-26", ids("ESC-3", "ESC-2", "ESC-1")},
		{"since=2026-10-19&until=2026-10-27", ids("ESC-4", "ESC-3", "ESC-2")},
		{"since=2026-10-27T09:00:00Z&until=2026-11-03T09:00:00Z", ids("ESC-5", "ESC-4")},
		{"tier=T3&open=true", ids("ESC-6", "ESC-3", "ESC-2")},
		{"tier=T2&state=closed", ids("ESC-5", "ESC-4")},
		{"person=bob&tier=T3", ids("ESC-2")},
		{"person=ann&state=bypassed", ids("ESC-5")},
		{"project=shop/api&open=true&tier=T3", ids("ESC-3", "ESC-2")},
		{"project=shop/api&flag=overdue&person=alice", ids("ESC-2", "ESC-1")},
		{"state=bypassed&tier=T3", nil},
		{"person=ann&tier=T2&open=false&since=2026-10-27&until=2026-11-30", ids("ESC-5", "ESC-4")},
		{"state=&tier=&person=", ids("ESC-6", "ESC-5", "ESC-4", "ESC-3", "ESC-2", "ESC-1")}, // a form's "any"
	} {
		for _, limit := range []string{"", "&limit=1", "&limit=2"} {
			path := "/api/escalations?" + tt.query + limit
			if got := s.apiIDs(path); !slices.Equal(got, tt.want) {
				t.Errorf("%s: %v, want %v", path, got, tt.want)
			}
		}
		page := body(t, s.get("/escalations?"+tt.query))
		for _, id := range []string{"ESC-1", "ESC-2", "ESC-3", "ESC-4", "ESC-5", "ESC-6"} {
			if got := strings.Contains(page, `href="/escalations/`+id+`"`); got != slices.Contains(tt.want, id) {
				t.Errorf("/escalations?%s lists %s: %v", tt.query, id, got)
			}
		}
	}
}

// TestAPIEveryCombination: every combination of one value per filter
// gives, page by page, what ListQuery.Match gives over every escalation.
func TestAPIEveryCombination(t *testing.T) {
	s := newDashSite(t)
	s.seed()
	all, err := s.db.List(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	slices.Reverse(all) // newest first: the seed's ids grow with time
	values := map[string][]string{
		"state": {"", "open", "closed", "bypassed", "awaiting_artifacts"},
		"tier":  {"", "T2", "T3"}, "project": {"", "shop/api"}, "person": {"", "ann", "bob"},
		"open": {"", "true", "false"}, "flag": {"", "overdue", "urgent", "late"}, "since": {"", "2026-10-20"},
	}
	keys := []string{"state", "tier", "project", "person", "open", "flag", "since"}
	var walk func(i int, v url.Values)
	n := 0
	walk = func(i int, v url.Values) {
		if i == len(keys) {
			q, _ := url.ParseQuery(v.Encode())
			lq := bot.ListQuery{State: q.Get("state"), Tier: q.Get("tier"), Project: q.Get("project"), Person: q.Get("person"), Flag: q.Get("flag"), Now: s.clock.Now(), Policy: s.pol}
			if o := q.Get("open"); o != "" {
				b := o == "true"
				lq.Open = &b
			}
			if d := q.Get("since"); d != "" {
				lq.Since, _ = time.Parse(time.DateOnly, d)
			}
			var want []string
			for _, e := range all {
				if lq.Match(e) {
					want = append(want, e.ID)
				}
			}
			path := "/api/escalations?limit=2&" + v.Encode()
			if got := s.apiIDs(path); !slices.Equal(got, want) {
				t.Errorf("%s: %v, want %v", path, got, want)
			}
			n++
			return
		}
		for _, val := range values[keys[i]] {
			w := url.Values{}
			for k, vs := range v {
				w[k] = vs
			}
			if val != "" {
				w.Set(keys[i], val)
			}
			walk(i+1, w)
		}
	}
	walk(0, url.Values{})
	if n != 5*3*2*3*3*4*2 {
		t.Errorf("%d combinations checked", n)
	}
}

// TestAPIPaging: limits, the Link header, next, the end, and refusals of
// bad parameters and cursors with a 400 naming the parameter.
func TestAPIPaging(t *testing.T) {
	s := newDashSite(t)
	s.seed()
	b, res := s.apiList("/api/escalations?limit=4&tier=T3&tier=")
	wantStatus(t, res, http.StatusBadRequest) // tier given twice

	b, res = s.apiList("/api/escalations?limit=4")
	wantStatus(t, res, http.StatusOK)
	if len(b.Items) != 4 || b.Next == "" || !strings.Contains(b.NextURL, "cursor="+url.QueryEscape(b.Next)) || !strings.Contains(b.NextURL, "limit=4") {
		t.Fatalf("first page: %+v", b)
	}
	if link := res.Header.Get("Link"); link != "<"+b.NextURL+`>; rel="next"` {
		t.Errorf("Link = %q", link)
	}
	b2, res := s.apiList(b.NextURL)
	wantStatus(t, res, http.StatusOK)
	if len(b2.Items) != 2 || b2.Next != "" || res.Header.Get("Link") != "" || b2.Items[0].ID != "ESC-2" {
		t.Errorf("last page: %+v, Link %q", b2, res.Header.Get("Link"))
	}
	// The body of the last page has no next at all.
	if raw := body(t, s.get(b.NextURL)); strings.Contains(raw, `"next"`) {
		t.Errorf("last page names a next:\n%s", raw)
	}
	// The default page holds up to 100.
	if b, _ := s.apiList("/api/escalations"); len(b.Items) != 6 || b.Next != "" {
		t.Errorf("default page: %d items, next %q", len(b.Items), b.Next)
	}
	if _, res := s.apiList("/api/escalations?limit=1000"); res.StatusCode != http.StatusOK {
		t.Errorf("limit=1000: %d", res.StatusCode)
	}

	forged := []byte(b.Next)
	forged[len(forged)/2] ^= 2
	for _, tt := range []struct{ query, want string }{
		{"limit=0", "limit: want a whole number from 1 to 1000, got \"0\""},
		{"limit=1001", "limit: want a whole number from 1 to 1000"},
		{"limit=-5", "limit:"},
		{"limit=ten", "limit:"},
		{"state=lost", "state: want one of open, intake, awaiting_artifacts"},
		{"open=yes", "open: want true or false"},
		{"flag=red", "flag: want one of urgent, manual, forged, overdue, late"},
		{"since=yesterday", "since: want a date (2026-12-01) or an RFC 3339 time"},
		{"until=2026-13-01", "until: want a date"},
		{"since=2026-11-02&until=2026-11-01", "until: must be after since"},
		{"stat=merged", "stat: unknown parameter; the parameters are state, tier"},
		{"cursor=garbage!!", "cursor: not a cursor this server gave for these filters"},
		{"cursor=" + url.QueryEscape(string(forged)) + "&limit=4", "cursor: not a cursor"},
		{"cursor=" + url.QueryEscape(b.Next) + "&tier=T2", "cursor: not a cursor"}, // another query's cursor
		{"project=" + url.QueryEscape("a\x00b"), "project: control characters are not allowed"},
		{"person=" + strings.Repeat("x", 300), "person: at most 256 characters"},
		{"limit=0&state=lost", "limit: want a whole number"}, // both named at once
		{"limit=0&state=lost", "state: want one of"},
	} {
		res := s.get("/api/escalations?" + tt.query)
		raw := body(t, res)
		if res.StatusCode != http.StatusBadRequest || res.Header.Get("Content-Type") != "application/json" {
			t.Errorf("%s: %d %s, want 400 JSON", tt.query, res.StatusCode, res.Header.Get("Content-Type"))
			continue
		}
		var e struct{ Error string }
		if err := json.Unmarshal([]byte(raw), &e); err != nil || !strings.Contains(e.Error, tt.want) {
			t.Errorf("%s: %s, want %q", tt.query, raw, tt.want)
		}
		// The page refuses the same, with the form shown again.
		page := body(t, s.get("/escalations?"+tt.query))
		if !strings.Contains(page, "These filters cannot be used") {
			t.Errorf("/escalations?%s: no refusal on the page", tt.query)
		}
	}
	wantStatus(t, s.get("/escalations?limit=0"), http.StatusBadRequest)
}

// TestAllEscalationsPage: closed ones included, the next-page link, the
// tiles that lead to it, and text from outside escaped, including filter
// values shown back.
func TestAllEscalationsPage(t *testing.T) {
	s := newDashSite(t)
	s.seed()
	page := body(t, s.get("/escalations"))
	inOrder(t, "all", page, ">ESC-6<", ">ESC-5<", ">ESC-4<", ">ESC-3<", ">ESC-2<", ">ESC-1<")
	wantContains(t, page, `aria-current="page">All escalations</a>`, "&lt;script&gt;alert(&#34;pwned&#34;)&lt;/script&gt; login rework",
		`<span class="flag bad">bypassed</span>`, "merged <time", "decided <time")
	wantNotContains(t, page, hostileTitle)

	page = body(t, s.get("/escalations?limit=2"))
	wantContains(t, page, `rel="next" id="next-page"`)
	next := strings.Split(strings.Split(page, `<a href="`)[strings.Count(page, `<a href="`)], `"`)[0]
	next = strings.ReplaceAll(next, "&amp;", "&")
	if !strings.HasPrefix(next, "/escalations?") || !strings.Contains(next, "cursor=") {
		t.Fatalf("next link %q", next)
	}
	page = body(t, s.get(next))
	wantContains(t, page, ">ESC-4<", ">ESC-3<", "First page")
	wantNotContains(t, page, ">ESC-6<", ">ESC-5<")

	// Every tile leads to its list.
	dash := body(t, s.get("/"))
	for _, tt := range []struct{ href, want string }{
		{`/escalations?state=bypassed`, ">ESC-5<"},
		{`/escalations?flag=overdue`, ">ESC-2<"},
		{`/escalations?open=true&amp;flag=urgent`, ">ESC-6<"},
		{`/escalations?state=deferred`, ">ESC-3<"},
		{`/escalations?flag=forged`, ">ESC-1<"},
		{`/escalations?open=true`, ">ESC-6<"},
		{`/escalations?state=rejected`, ">ESC-4<"},
		{`/escalations?flag=late`, "No escalation matches these filters."}, // none is past its first response
	} {
		wantContains(t, dash, `href="`+tt.href+`"`)
		wantContains(t, body(t, s.get(strings.ReplaceAll(tt.href, "&amp;", "&"))), tt.want)
	}

	// A range keeps its dates in the form on the next page.
	page = body(t, s.get("/escalations?since=2026-10-19&until=2026-11-04&limit=1"))
	next = strings.ReplaceAll(strings.Split(strings.Split(page, `id="next-page"`)[0][strings.LastIndex(strings.Split(page, `id="next-page"`)[0], `<a href="`)+9:], `"`)[0], "&amp;", "&")
	page = body(t, s.get(next))
	wantContains(t, page, `name="since" id="f-since" value="2026-10-19"`, `name="until" id="f-until" value="2026-11-04"`, ">ESC-4<")

	// A hostile filter value is shown back escaped, in the form.
	page = body(t, s.get("/escalations?person="+url.QueryEscape(`"><script>alert(1)</script>`)))
	wantNotContains(t, page, "<script>alert(1)</script>")
	wantContains(t, page, `value="&#34;&gt;&lt;script&gt;alert(1)&lt;/script&gt;"`, "No escalation matches these filters.")
	page = body(t, s.get("/escalations?state="+url.QueryEscape(`<b>x</b>`)))
	wantNotContains(t, page, "<b>x</b>")
	wantContains(t, page, "&lt;b&gt;x&lt;/b&gt;")
}

// TestListNeedsTheToken: the page and the API are behind the dashboard
// token, whatever the filters.
func TestListNeedsTheToken(t *testing.T) {
	s := newDashSite(t, withToken("s3cret"))
	s.seed()
	for _, p := range []string{"/escalations", "/escalations?state=bypassed", "/api/escalations?person=ann", "/api/escalations?cursor=x"} {
		if res := s.get(p); res.StatusCode != http.StatusUnauthorized && res.StatusCode != http.StatusFound {
			t.Errorf("%s without the token: %d", p, res.StatusCode)
		} else if b := body(t, res); strings.Contains(b, "ESC-") {
			t.Errorf("%s without the token shows an escalation:\n%s", p, b)
		}
		wantStatus(t, s.get(p, bearer("s3cret")), map[bool]int{true: http.StatusBadRequest, false: http.StatusOK}[strings.Contains(p, "cursor=x")])
	}
}

// TestManualEscalationShowsItsMR: a manual escalation gets its MR's
// title, link and head from the refresh after filing (the forge's MR as
// an input), and the list and its page show them like an automatic one's.
func TestManualEscalationShowsItsMR(t *testing.T) {
	s := newDashSite(t)
	s.seed()
	b, _ := s.apiList("/api/escalations?flag=manual")
	if len(b.Items) != 1 || b.Items[0].Title != "" {
		t.Fatalf("before the refresh: %+v", b.Items)
	}
	// What the refresh (EffectRefresh -> FetchMR) hands the engine.
	s.handle(bot.Input{Kind: bot.InputMR, MR: &bot.MRInput{Action: bot.MRSeen, MR: &policies.MergeRequest{
		IID: 5, PathWithNamespace: "shop/web", Title: "session cookie cipher", TargetBranch: "main", SHA: "5e55105e5510",
		WebURL: "https://gitlab.example.com/shop/web/-/merge_requests/5", Author: policies.User{Username: "erin"}, UpdatedAt: s.clock.Now(),
	}}})
	b, _ = s.apiList("/api/escalations?flag=manual")
	if len(b.Items) != 1 || b.Items[0].Title != "session cookie cipher" || b.Items[0].MRURL == "" || b.Items[0].HeadSHA != "5e55105e5510" {
		t.Fatalf("after the refresh: %+v", b.Items)
	}
	list := body(t, s.get("/escalations?flag=manual"))
	wantContains(t, list, `href="https://gitlab.example.com/shop/web/-/merge_requests/5"`, "session cookie cipher")
	page := body(t, s.get("/escalations/ESC-6"))
	wantContains(t, page, "session cookie cipher", `href="https://gitlab.example.com/shop/web/-/merge_requests/5"`, `<code title="5e55105e5510">5e55105e</code>`)
	// The gate went on the head it learned.
	wantContains(t, page, `<span class="gate gate-pending">pending</span>`, `set on <code title="5e55105e5510">`)
}

// TestEscalationPageGateAndMerge: the gate as last set (and when), who
// merged and when, and for a bypass what the gate still needed, all from
// what was recorded.
func TestEscalationPageGateAndMerge(t *testing.T) {
	s := newDashSite(t)
	s.seed()
	// ESC-4 was rejected: the gate failed then.
	page := body(t, s.get("/escalations/ESC-4"))
	wantContains(t, page, `<span class="gate gate-failed">failed</span>`, "ESC-4 rejected (T2)", `datetime="2026-10-27T09:00:00Z"`)
	wantNotContains(t, page, `id="merged"`)

	// ESC-5, merged without approval, by nobody GitLab named.
	page = body(t, s.get("/escalations/ESC-5"))
	wantContains(t, page, `id="merged"`, "2026-11-03 09:00 UTC", "someone GitLab did not name",
		"Bypass: merged without the current head", "The gate still needed: threat-model, rollback-plan; 0/1 appsec.")

	// A merge GitLab reports with its author and time.
	s.clock.Set(time.Date(2026, 11, 5, 10, 0, 0, 0, time.UTC))
	s.handle(s.mr(7, "abc777", "token cache", bot.MROpen, "internal/auth/cache.go"))
	in := s.mr(7, "abc777", "token cache", bot.MRMerge, "internal/auth/cache.go")
	in.MR.MR.MergedBy = policies.User{Username: "mallory"}
	in.MR.MR.MergedAt = time.Date(2026, 11, 5, 9, 58, 0, 0, time.UTC)
	s.handle(in)
	page = body(t, s.get("/escalations/ESC-7"))
	wantContains(t, page, `<time datetime="2026-11-05T09:58:00Z">2026-11-05 09:58 UTC</time> by mallory`, "Bypass:", "The gate still needed: threat-model, rollback-plan; 0/1 appsec.")
	// Whoever merged is named on it: the person filter finds it.
	if got := s.apiIDs("/api/escalations?person=mallory&state=bypassed"); !slices.Equal(got, ids("ESC-7")) {
		t.Errorf("person=mallory: %v", got)
	}
	// The gate stays as last set: pending on the merged head.
	wantContains(t, page, `<span class="gate gate-pending">pending</span>`)
	// The API says the same.
	raw := body(t, s.get("/api/escalations?person=mallory"))
	wantContains(t, raw, `"merged_by": "mallory"`, `"merged_at": "2026-11-05T09:58:00Z"`, `"status": "pending"`, `"sha": "abc777"`)
}

// TestAPIPagingWhileEscalationsArrive: MRs escalated between pages (through
// the engine, as webhooks would) never make a page skip or repeat one.
func TestAPIPagingWhileEscalationsArrive(t *testing.T) {
	s := newDashSite(t)
	s.seed()
	want := s.apiIDs("/api/escalations")
	var got []string
	path := "/api/escalations?limit=2"
	iid := int64(100)
	for range 10 {
		b, res := s.apiList(path)
		wantStatus(t, res, http.StatusOK)
		for _, it := range b.Items {
			got = append(got, it.ID)
		}
		for range 2 {
			iid++
			s.clock.Advance(time.Minute)
			s.handle(s.mr(iid, fmt.Sprintf("%x", iid), "new work", bot.MROpen, "internal/auth/x.go"))
		}
		if b.NextURL == "" {
			break
		}
		path = b.NextURL
	}
	if !slices.Equal(got, want) {
		t.Errorf("paged while escalations arrived: %v, want %v", got, want)
	}
	if all := s.apiIDs("/api/escalations"); len(all) != len(want)+int(iid-100) {
		t.Errorf("after paging there are %d escalations, want %d", len(all), len(want)+int(iid-100))
	}
}
