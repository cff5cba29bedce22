package web_test

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	bolt "go.etcd.io/bbolt"

	"github.com/threatgate/threatgate/adapters/web"
	"github.com/threatgate/threatgate/bot"
	"github.com/threatgate/threatgate/policies"
	"github.com/threatgate/threatgate/store"
)

func TestDashboardEmpty(t *testing.T) {
	s := newDashSite(t)
	res := s.get("/")
	wantStatus(t, res, http.StatusOK)
	page := body(t, res)
	wantContains(t, page, "No escalations yet", "/webhooks/gitlab", "threatgate demo")
	wantNotContains(t, page, "sample MR in the")

	c := newDashSite(t, withConsole(http.NotFoundHandler()))
	page = body(t, c.get("/"))
	wantContains(t, page, `No escalations yet: open a sample MR in the <a href="/console">console</a>`)
}

// section returns the part of page from the element with id to the next
// top-level section (one with an id), or to the end.
func section(t *testing.T, page, id string) string {
	t.Helper()
	i := strings.Index(page, `id="`+id+`"`)
	if i < 0 {
		t.Fatalf("page has no section %q", id)
	}
	rest := page[i:]
	if j := strings.Index(rest, `<section id=`); j >= 0 {
		return rest[:j]
	}
	return rest
}

// inOrder reports an error unless the strings appear in s in this order.
func inOrder(t *testing.T, what, s string, xs ...string) {
	t.Helper()
	at := -1
	for _, x := range xs {
		i := strings.Index(s, x)
		if i < 0 {
			t.Errorf("%s: %q missing", what, x)
			return
		}
		if i < at {
			t.Errorf("%s: %q comes too early; want order %q", what, x, xs)
			return
		}
		at = i
	}
}

func TestDashboard(t *testing.T) {
	s := newDashSite(t)
	s.seed()
	res := s.get("/")
	wantStatus(t, res, http.StatusOK)
	if cc := res.Header.Get("Cache-Control"); cc != "no-store" {
		t.Errorf("Cache-Control = %q, want no-store", cc)
	}
	page := body(t, res)

	// The summary counts.
	for _, want := range []string{
		"<strong>4</strong> open", "<strong>2</strong> SLA breaches", "<strong>0</strong> past first response",
		"<strong>1</strong> urgent", "<strong>1</strong> deferred", "<strong>0</strong> approved, not merged",
		"<strong>1</strong> bypassed merge", "<strong>1</strong> forged status",
	} {
		wantContains(t, page, want)
	}

	// Aging: overdue first, by how far over; the breaches in red (ESC-3 is
	// deferred: paused by a decision, not late, and due when the deferral
	// ends, 25 days after its decision date: after ESC-6).
	aging := section(t, page, "aging")
	inOrder(t, "aging", aging, ">ESC-1<", ">ESC-2<", ">ESC-6<", ">ESC-3<")
	wantContains(t, aging, "paused, 2d left")
	if n := strings.Count(aging, `class="breach"`); n != 2 {
		t.Errorf("aging marks %d rows as breaches, want 2", n)
	}
	wantContains(t, aging, "overdue by 30d", "overdue by 15d", "10h left", "Alice Appsec, bob")

	// Open escalations by tier, highest first, then by state.
	open := section(t, page, "open")
	inOrder(t, "tiers", open, `id="tier-T3"`, "awaiting artifacts", ">ESC-2<", ">ESC-6<", "deferred", ">ESC-3<", `id="tier-T2"`, "in review", ">ESC-1<")
	wantContains(t, open, `T3</span> critical · <a href="/escalations?open=true&amp;tier=T3">3 open</a>`, `T2</span> high · <a href="/escalations?open=true&amp;tier=T2">1 open</a>`,
		`<span class="flag urgent">urgent</span>`, `<span class="flag manual">manual</span>`,
		`href="https://gitlab.example.com/shop/api/-/merge_requests/2"`)
	// Decided, merged and bypassed ones are not open.
	wantNotContains(t, open, ">ESC-4<", ">ESC-5<")

	wantContains(t, section(t, page, "deferred"), ">ESC-3<", "until <time", "2026-11-20 00:00 UTC")
	wantContains(t, section(t, page, "urgent"), ">ESC-6<")

	// Bottlenecks: who and which group holds the most. Only escalations
	// in review wait on approvers (ESC-1); while artifacts are missing
	// they wait on the authors.
	b := section(t, page, "bottlenecks")
	inOrder(t, "people", b, `<a class="who" href="/escalations?open=true&amp;person=alice">Alice Appsec</a> <strong>1</strong>`, `<a class="who" href="/escalations?open=true&amp;person=bob">bob</a> <strong>1</strong>`)
	inOrder(t, "groups", b, `<span class="who">appsec</span> <strong>1</strong>`)
	wantNotContains(t, b, `<span class="who">dave</span>`)

	// Throughput: 12 weeks, ending with this one (W45).
	th := section(t, page, "throughput")
	if n := strings.Count(th, `class="bar opened"`); n != 12 {
		t.Errorf("%d opened bars, want 12", n)
	}
	if n := strings.Count(th, `class="bar decided"`); n != 12 {
		t.Errorf("%d decided bars, want 12", n)
	}
	wantContains(t, th, "2026-W34 to 2026-W45: 6 opened, 2 decided", "2026-W41 1 opened, 1 decided", "2026-W43 1 opened, 0 decided",
		"2026-W44 2 opened, 1 decided", "2026-W45 2 opened, 0 decided", ">17 Aug</tspan>", ">– 23 Aug</tspan>", ">2 Nov</tspan>", ">– 8 Nov</tspan>")
	wantNotContains(t, th, ">W34<", ">W45<")

	wantContains(t, section(t, page, "all"), "All 6 escalations", "rejected</span> 1", "merged</span> 1")
}

func TestHostileTitleIsEscaped(t *testing.T) {
	s := newDashSite(t)
	s.seed()
	for _, p := range []string{"/", "/escalations/ESC-1"} {
		page := body(t, s.get(p))
		wantNotContains(t, page, "<script", `alert("pwned")`)
		wantContains(t, page, "&lt;script&gt;alert(&#34;pwned&#34;)&lt;/script&gt; login rework")
	}
	// The artifact "javascript:alert(1)" is text, never a link.
	page := body(t, s.get("/escalations/ESC-1"))
	wantNotContains(t, page, `href="javascript:`, "ZgotmplZ")
	wantContains(t, page, `<td data-label="Link or text">javascript:alert(1)</td>`)
}

func TestEscalationPage(t *testing.T) {
	s := newDashSite(t)
	s.seed()
	res := s.get("/escalations/ESC-1")
	wantStatus(t, res, http.StatusOK)
	page := body(t, res)
	wantContains(t, page,
		"<title>ESC-1 shop/api!1 · threatgate</title>",
		`href="https://gitlab.example.com/shop/api/-/merge_requests/1"`,
		`<span class="tier-badge">T2</span> high`, "in review", "1 forged status", "SLA breach",
		// signals with evidence
		"<code>auth</code>", "Authentication code changed.", "path internal/auth/session.go matches",
		// artifacts: who added what; http(s) links only
		"Threat model", `<a href="https://wiki.example.com/tm-1" rel="noopener noreferrer nofollow">https://wiki.example.com/tm-1</a>`,
		"Ann Author, 2026-10-05 10:00 UTC",
		// the approvals matrix: the stale approval struck through, with its SHA
		"<td data-label=\"Group\">appsec</td>", "0 of 1", `<del title="stale: given for aaa111aaa111">Alice Appsec at aaa111aa</del>`,
		// the approval's checklist and rationale
		"<dt>data-sensitivity</dt><dd>no PII</dd>", "reviewed the token rotation",
		// deadlines
		"2026-10-06 09:00 UTC", "overdue by 30d",
	)

	// The timeline: every event with seq, actor, kind, summary and hash prefix.
	events, err := s.db.Events(context.Background(), "ESC-1")
	if err != nil {
		t.Fatal(err)
	}
	tl := section(t, page, "timeline-h")
	for _, ev := range events {
		wantContains(t, tl, `<td data-label="Seq">`+strconv.FormatUint(ev.Seq, 10)+`</td>`, ev.Hash[:12])
	}
	wantContains(t, tl, "approval added", "for appsec; role approver; 1 checklist answer; “reviewed the token rotation”",
		"approvals for aaa111aa now stale", "status forged", "set by mallory")
	n, _ := s.db.Verify(context.Background())
	wantContains(t, page, `class="chain ok"`, "Audit chain verified: "+strconv.Itoa(n)+" events")
	wantNotContains(t, page, "chain broken")
}

func TestEscalationPageOtherStates(t *testing.T) {
	s := newDashSite(t)
	s.seed()
	for _, tc := range []struct {
		id    string
		wants []string
	}{
		{"ESC-2", []string{
			"awaiting artifacts", "1 missing", `<span class="missing">missing</span>`,
			"<td data-label=\"Group\">appsec</td>", "0 of 2", "<td data-label=\"Group\">leads</td>", "risk-acceptance", "nobody yet",
			"the migration copies PII into the audit log", "add log scrubbing before release", "controls SOC2 CC8.1",
		}},
		{"ESC-3", []string{"deferred", "Deferred until", "2026-11-20 00:00 UTC", "“waiting for the vendor&#39;s audit”"}},
		{"ESC-4", []string{"rejected", "Rejections", "the reset token never expires", "<dt>Decided</dt>"}},
		{"ESC-5", []string{"merged", "merged without approval", "merged without approval (bypassed)"}},
		{"ESC-6", []string{"manual", "urgent", "Filed by", "home-grown crypto in the session cookie",
			"<dt>summary</dt><dd class=\"pre\">a custom cipher guards sessions</dd>", "No signal fired: escalated by hand."}},
	} {
		t.Run(tc.id, func(t *testing.T) {
			res := s.get("/escalations/" + tc.id)
			wantStatus(t, res, http.StatusOK)
			wantContains(t, body(t, res), tc.wants...)
		})
	}
}

func TestEscalationNotFound(t *testing.T) {
	s := newDashSite(t)
	s.seed()
	for _, tc := range []struct{ path, want string }{
		{"/escalations/ESC-99", "There is no escalation ESC-99."},
		{"/escalations/%3Cscript%3Ealert(1)%3C%2Fscript%3E", "There is no page at"},
		{"/escalations/" + strings.Repeat("A", 500), "There is no page at"},
		{"/escalations/..%2F..%2Fetc", "There is no page at"},
	} {
		res := s.get(tc.path)
		wantStatus(t, res, http.StatusNotFound)
		page := body(t, res)
		wantContains(t, page, tc.want)
		wantNotContains(t, page, "<script>alert")
	}
}

// tamper closes the site's store, changes event seq directly in bbolt,
// and serves the changed file again, as store's own tests do.
func (s *dashSite) tamper(seq uint64, from, to string) {
	s.t.Helper()
	if err := s.db.Close(); err != nil {
		s.t.Fatal(err)
	}
	b, err := bolt.Open(filepath.Join(s.dir, store.FileName), 0o600, &bolt.Options{Timeout: time.Second})
	if err != nil {
		s.t.Fatal(err)
	}
	err = b.Update(func(tx *bolt.Tx) error {
		bk := tx.Bucket([]byte("events"))
		key := binary.BigEndian.AppendUint64(nil, seq)
		v, err := store.RecordJSON(bk.Get(key))
		if err != nil {
			return err
		}
		if !bytes.Contains(v, []byte(from)) {
			return errors.New("the event has no " + from)
		}
		return bk.Put(key, bytes.Replace(v, []byte(from), []byte(to), 1))
	})
	if err != nil {
		s.t.Fatal(err)
	}
	if err := b.Close(); err != nil {
		s.t.Fatal(err)
	}
	if s.db, err = store.Open(s.dir, store.NoSync()); err != nil {
		s.t.Fatal(err)
	}
	s.srv = &web.Server{Store: s.db, Policy: s.eng.Policy, Clock: s.clock}
	s.h = s.srv.Handler()
}

func TestTamperedChainShownBroken(t *testing.T) {
	s := newDashSite(t)
	s.seed()
	s.tamper(2, `"actor":"ann"`, `"actor":"eve"`)
	for _, id := range []string{"ESC-1", "ESC-4"} { // the tampered escalation and another: the chain is one
		res := s.get("/escalations/" + id)
		wantStatus(t, res, http.StatusOK)
		page := body(t, res)
		wantContains(t, page, `class="chain broken" role="alert"`, "Audit chain broken.", "event 2: hash does not match its content")
		wantNotContains(t, page, "Audit chain verified")
	}
	wantStatus(t, s.get("/"), http.StatusOK)
}

// faultyReader fails the calls named in its fields.
type faultyReader struct {
	web.Reader
	find, list, verify error
}

func (f faultyReader) FindEscalation(ctx context.Context, id string) (*bot.Escalation, error) {
	if f.find != nil {
		return nil, f.find
	}
	return f.Reader.FindEscalation(ctx, id)
}

func (f faultyReader) Aggregates(ctx context.Context) (bot.Aggregates, error) {
	if f.list != nil {
		return bot.Aggregates{}, f.list
	}
	return f.Reader.Aggregates(ctx)
}

func (f faultyReader) ListPage(ctx context.Context, q bot.ListQuery) (bot.ListPage, error) {
	if f.list != nil {
		return bot.ListPage{}, f.list
	}
	return f.Reader.ListPage(ctx, q)
}

func (f faultyReader) Verify(ctx context.Context) (int, error) {
	if f.verify != nil {
		return 3, f.verify
	}
	return f.Reader.Verify(ctx)
}

func TestVerifyErrorShownProminently(t *testing.T) {
	s := newDashSite(t, withReader(func(r web.Reader) web.Reader {
		return faultyReader{Reader: r, verify: errors.New("verify audit chain: event 4: prev_hash does not match event 3")}
	}))
	s.seed()
	page := body(t, s.get("/escalations/ESC-1"))
	wantContains(t, page, "Audit chain broken.", "event 4: prev_hash does not match event 3")
}

var refPattern = regexp.MustCompile(`Reference <code>([0-9a-f]{8})</code>`)

func TestStoreFailureIs500WithReference(t *testing.T) {
	secret := errors.New("open /var/lib/threatgate/threatgate.db: disk on fire")
	s := newDashSite(t, withReader(func(r web.Reader) web.Reader { return faultyReader{Reader: r, find: secret, list: secret} }))
	for _, p := range []string{"/", "/escalations/ESC-1", "/api/escalations", "/escalations"} {
		res := s.get(p)
		wantStatus(t, res, http.StatusInternalServerError)
		page := body(t, res)
		wantNotContains(t, page, "disk on fire", "/var/lib")
		if p != "/api/escalations" && !refPattern.MatchString(page) {
			t.Errorf("%s: no reference in the 500 page", p)
		}
	}
}

// TestPagesWithoutTheTier renders escalations whose tier the policy in
// force no longer has, and with no policy at all: the pages still work.
func TestPagesWithoutTheTier(t *testing.T) {
	s := newDashSite(t)
	s.seed()
	for _, srv := range []*web.Server{
		{Store: s.db, Clock: s.clock},
		{Store: s.db, Clock: s.clock, Policy: func() *policies.Policy { return nil }},
	} {
		h := srv.Handler()
		for _, p := range []string{"/", "/escalations/ESC-1", "/escalations/ESC-2", "/escalations/ESC-6", "/api/escalations", "/escalations?tier=T3"} {
			w := httptest.NewRecorder()
			h.ServeHTTP(w, httptest.NewRequest(http.MethodGet, p, nil))
			if w.Code != http.StatusOK {
				t.Fatalf("%s: status %d\n%s", p, w.Code, w.Body)
			}
			if strings.HasPrefix(p, "/escalations/") {
				wantContains(t, w.Body.String(), "(no longer in the policy)", "approvals matrix is unknown")
			}
		}
	}
}
