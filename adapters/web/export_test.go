package web_test

import (
	"archive/zip"
	"bytes"
	"context"
	"encoding/json"
	"html"
	"io"
	"net/http"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/threatgate/threatgate/adapters/web"
	"github.com/threatgate/threatgate/bot"
)

// exportReader is a Reader that fails the test on any read of the whole
// store, or of anything but the audit log, and records what was read:
// the windows of the log and the escalations whose events were read.
type exportReader struct {
	web.Reader
	t       *testing.T
	windows [][2]time.Time
	events  []string
}

func (s *exportReader) List(context.Context) ([]*bot.Escalation, error) {
	s.t.Error("List: the export read every escalation")
	return nil, nil
}

func (s *exportReader) FindOpen(context.Context) ([]*bot.Escalation, error) {
	s.t.Error("FindOpen: the export read the open escalations")
	return nil, nil
}

func (s *exportReader) FindEscalation(_ context.Context, id string) (*bot.Escalation, error) {
	s.t.Errorf("FindEscalation(%s): the export read a projection, not the events", id)
	return nil, bot.ErrNotFound
}

func (s *exportReader) Verify(context.Context) (int, error) {
	s.t.Error("Verify: the export walked the whole chain")
	return 0, nil
}

func (s *exportReader) EventsBetween(ctx context.Context, from, to time.Time) ([]bot.Event, error) {
	s.windows = append(s.windows, [2]time.Time{from, to})
	return s.Reader.EventsBetween(ctx, from, to)
}

func (s *exportReader) Events(ctx context.Context, id string) ([]bot.Event, error) {
	s.events = append(s.events, id)
	return s.Reader.Events(ctx, id)
}

// exportSite is a seeded dashSite read through an exportReader.
func exportSite(t *testing.T, opts ...siteOption) (*dashSite, *exportReader) {
	t.Helper()
	var reader *exportReader
	opts = append(opts, withReader(func(r web.Reader) web.Reader { reader = &exportReader{Reader: r, t: t}; return reader }))
	s := newDashSite(t, opts...)
	s.seed()
	return s, reader
}

// cliFiles are the files `threatgate export` writes for [from, to] (days,
// both included) in format: it writes bot.RenderExport of bot.ExportOf,
// each file as is (cmd/threatgate/export.go).
func (s *dashSite) cliFiles(from, to, format string) map[string][]byte {
	s.t.Helper()
	start, end, problems := bot.ExportWindow("--from", from, "--to", to)
	if problems != nil {
		s.t.Fatal(problems)
	}
	x, err := bot.ExportOf(context.Background(), s.db, start, end)
	if err != nil {
		s.t.Fatal(err)
	}
	files, err := bot.RenderExport(x, format)
	if err != nil {
		s.t.Fatal(err)
	}
	out := map[string][]byte{}
	for _, f := range files {
		out[f.Name] = f.Data
	}
	return out
}

// unzip returns the names of the files in a zip, in its order, and
// their contents.
func unzip(t *testing.T, data []byte) ([]string, map[string][]byte) {
	t.Helper()
	z, err := zip.NewReader(bytes.NewReader(data), int64(len(data)))
	if err != nil {
		t.Fatalf("not a zip: %v", err)
	}
	var names []string
	files := map[string][]byte{}
	for _, f := range z.File {
		rc, err := f.Open()
		if err != nil {
			t.Fatal(err)
		}
		b, err := io.ReadAll(rc)
		rc.Close()
		if err != nil {
			t.Fatalf("%s: %v", f.Name, err)
		}
		names = append(names, f.Name)
		files[f.Name] = b
	}
	return names, files
}

func wantDownload(t *testing.T, res *http.Response, contentType, filename string) {
	t.Helper()
	wantStatus(t, res, http.StatusOK)
	if got := res.Header.Get("Content-Type"); got != contentType {
		t.Errorf("%s: Content-Type = %q, want %q", res.Request.URL, got, contentType)
	}
	if got, want := res.Header.Get("Content-Disposition"), `attachment; filename="`+filename+`"`; got != want {
		t.Errorf("%s: Content-Disposition = %q, want %q", res.Request.URL, got, want)
	}
	if got := res.Header.Get("Cache-Control"); got != "no-store" {
		t.Errorf("%s: Cache-Control = %q, want no-store", res.Request.URL, got)
	}
}

// The seed's decided escalations: ESC-1 approved 2026-10-05, ESC-4
// rejected 2026-10-27, ESC-5 merged without approval 2026-11-03.
const seedFrom, seedTo = "2026-10-01", "2026-11-05"

// TestBundleIsWhatTheCLIWrites: the bundle of each decided escalation, as
// JSON and Markdown, is byte for byte the file the command writes for it,
// read from that escalation's events alone.
func TestBundleIsWhatTheCLIWrites(t *testing.T) {
	s, reader := exportSite(t)
	for _, format := range []string{"json", "md"} {
		cli := s.cliFiles(seedFrom, seedTo, format)
		for _, id := range []string{"ESC-1", "ESC-4", "ESC-5"} {
			reader.events = nil
			res := s.get("/escalations/" + id + "/bundle?format=" + format)
			name := id + "." + format
			wantDownload(t, res, map[string]string{"json": "application/json", "md": "text/markdown; charset=utf-8"}[format], name)
			got := body(t, res)
			want, ok := cli[name]
			if !ok {
				t.Fatalf("the command writes no %s", name)
			}
			if got != string(want) {
				t.Errorf("%s differs from the command's:\n got %s\nwant %s", name, got, want)
			}
			if !slices.Equal(reader.events, []string{id}) {
				t.Errorf("%s read the events of %v, want only %s", name, reader.events, id)
			}
		}
	}
	if len(reader.windows) != 0 {
		t.Errorf("a bundle read windows of the log: %v", reader.windows)
	}
	// Without ?format: JSON.
	wantDownload(t, s.get("/escalations/ESC-4/bundle"), "application/json", "ESC-4.json")
}

// TestBundleOfUndecidedEscalation: an escalation not decided yet has a
// bundle too, with an empty decision ("not decided" in Markdown).
func TestBundleOfUndecidedEscalation(t *testing.T) {
	s, _ := exportSite(t)
	res := s.get("/escalations/ESC-2/bundle?format=json")
	wantDownload(t, res, "application/json", "ESC-2.json")
	var b bot.Bundle
	if err := json.Unmarshal([]byte(body(t, res)), &b); err != nil {
		t.Fatal(err)
	}
	if b.Schema != bot.BundleSchema || b.Escalation != "ESC-2" || b.Decision.Kind != "" || b.State != bot.StateAwaitingArtifacts {
		t.Errorf("bundle = schema %q, escalation %q, decision %+v, state %q; want ESC-2 undecided, awaiting artifacts", b.Schema, b.Escalation, b.Decision, b.State)
	}
	if len(b.Dissents) != 1 || len(b.Actions) != 1 {
		t.Errorf("dissents %+v, actions %+v; want one of each", b.Dissents, b.Actions)
	}
	res = s.get("/escalations/ESC-2/bundle?format=md")
	wantDownload(t, res, "text/markdown; charset=utf-8", "ESC-2.md")
	wantContains(t, body(t, res), "| Decision | not decided |")
}

// TestBundleAsCSV: the CSV tables of the export for that one escalation,
// in a zip.
func TestBundleAsCSV(t *testing.T) {
	s, _ := exportSite(t)
	res := s.get("/escalations/ESC-4/bundle?format=csv")
	wantDownload(t, res, "application/zip", "ESC-4-csv.zip")
	names, files := unzip(t, []byte(body(t, res)))
	want := []string{"index.csv", "controls.csv", "gaps.csv", "signals.csv", "tiers.csv", "artifacts.csv", "approvals.csv", "checklist.csv",
		"rejections.csv", "dissents.csv", "risks.csv", "actions.csv", "timeline.csv"}
	if !slices.Equal(names, want) {
		t.Errorf("zip holds %v, want %v", names, want)
	}
	index := strings.Split(strings.TrimSpace(string(files["index.csv"])), "\n")
	if len(index) != 2 || !strings.HasPrefix(index[1], "ESC-4,shop/api,4,") {
		t.Errorf("index.csv:\n%s\nwant a header and ESC-4", files["index.csv"])
	}
	wantContains(t, string(files["rejections.csv"]), "ESC-4,", "the reset token never expires")
	// The rows are the command's rows for ESC-4.
	cli := s.cliFiles(seedFrom, seedTo, "csv")
	for _, line := range strings.Split(string(files["timeline.csv"]), "\n")[1:] {
		if !bytes.Contains(cli["timeline.csv"], []byte(line)) {
			t.Errorf("timeline.csv row %q is not in the command's", line)
		}
	}
}

// TestExportZip: /export is a zip of the files the command writes for the
// window, byte for byte, read from that window of the log and the
// escalations decided in it.
func TestExportZip(t *testing.T) {
	s, reader := exportSite(t)
	for _, tt := range []struct {
		format string
		names  []string
	}{
		{"json", []string{"index.json", "ESC-1.json", "ESC-4.json", "ESC-5.json"}},
		{"md", []string{"index.md", "ESC-1.md", "ESC-4.md", "ESC-5.md"}},
		{"csv", []string{"index.csv", "controls.csv", "gaps.csv", "signals.csv", "tiers.csv", "artifacts.csv", "approvals.csv", "checklist.csv",
			"rejections.csv", "dissents.csv", "risks.csv", "actions.csv", "timeline.csv"}},
	} {
		t.Run(tt.format, func(t *testing.T) {
			reader.windows, reader.events = nil, nil
			res := s.get("/export?from=" + seedFrom + "&to=" + seedTo + "&format=" + tt.format)
			wantDownload(t, res, "application/zip", "threatgate-export-2026-10-01-to-2026-11-05-"+tt.format+".zip")
			names, files := unzip(t, []byte(body(t, res)))
			if !slices.Equal(names, tt.names) {
				t.Errorf("zip holds %v, want %v", names, tt.names)
			}
			cli := s.cliFiles(seedFrom, seedTo, tt.format)
			for name, want := range cli {
				if got, ok := files[name]; !ok || !bytes.Equal(got, want) {
					t.Errorf("%s differs from the command's:\n got %s\nwant %s", name, got, want)
				}
			}
			from := time.Date(2026, 10, 1, 0, 0, 0, 0, time.UTC)
			if len(reader.windows) != 1 || !reader.windows[0][0].Equal(from) || !reader.windows[0][1].Equal(time.Date(2026, 11, 6, 0, 0, 0, 0, time.UTC)) {
				t.Errorf("read the log over %v, want [2026-10-01, 2026-11-06)", reader.windows)
			}
			for _, id := range reader.events {
				if id == "ESC-6" { // opened in the window, never decided
					t.Errorf("read the events of %s, which has no decision in the window", id)
				}
			}
		})
	}

	// A window with nothing decided: the index alone.
	names, _ := unzip(t, []byte(body(t, s.get("/export?from=2026-10-06&to=2026-10-07"))))
	if !slices.Equal(names, []string{"index.json"}) {
		t.Errorf("empty window: zip holds %v, want index.json", names)
	}
}

// TestExportRefusals: a parameter the user can fix is a 400 naming it and
// what was expected, before anything is read.
func TestExportRefusals(t *testing.T) {
	s, reader := exportSite(t)
	reader.windows, reader.events = nil, nil
	for _, tt := range []struct {
		path string
		want []string
	}{
		{"/export", []string{"from: want a day such as 2026-11-01 (YYYY-MM-DD); to: want a day such as 2026-11-01 (YYYY-MM-DD)."}},
		{"/export?from=2026-13-01&to=yesterday", []string{
			`from: want a day such as 2026-11-01 (YYYY-MM-DD), got &#34;2026-13-01&#34;`,
			`to: want a day such as 2026-11-01 (YYYY-MM-DD), got &#34;yesterday&#34;`}},
		{"/export?from=2026-11-04&to=2026-11-02", []string{"to: want a day on or after from (2026-11-04), got 2026-11-02."}},
		{"/export?from=2026-11-01&to=2026-11-02&format=pdf", []string{`format: want one of json, csv, md, got &#34;pdf&#34;.`}},
		{"/export?from=2025-01-01&to=2026-01-02", []string{"to: want a window of at most 366 days, got 367 days from 2025-01-01 to 2026-01-02; export it in parts."}},
		{"/escalations/ESC-1/bundle?format=xlsx", []string{`format: want one of json, csv, md, got &#34;xlsx&#34;.`}},
	} {
		res := s.get(tt.path)
		wantStatus(t, res, http.StatusBadRequest)
		wantContains(t, body(t, res), tt.want...)
	}
	if len(reader.windows) != 0 || len(reader.events) != 0 {
		t.Errorf("refused requests read the store: windows %v, events of %v", reader.windows, reader.events)
	}
	// 366 days (a leap year) is allowed.
	wantStatus(t, s.get("/export?from=2024-01-01&to=2024-12-31"), http.StatusOK)

	for _, path := range []string{"/escalations/ESC-99/bundle", "/escalations/ESC%3Cb%3E/bundle"} {
		wantStatus(t, s.get(path), http.StatusNotFound)
	}
}

// TestExportNeedsTheToken: the downloads are behind the dashboard's auth,
// as the escalation page is.
func TestExportNeedsTheToken(t *testing.T) {
	s, _ := exportSite(t, withToken("s3cret-token"))
	for _, path := range []string{"/escalations/ESC-1/bundle?format=md", "/export?from=" + seedFrom + "&to=" + seedTo} {
		res := s.get(path)
		wantStatus(t, res, http.StatusFound)
		if loc := res.Header.Get("Location"); !strings.HasPrefix(loc, "/login?next=") {
			t.Errorf("%s: Location = %q, want the login form", path, loc)
		}
		wantStatus(t, s.get(path, bearer("wrong-token")), http.StatusFound)
		wantStatus(t, s.get(path, bearer("s3cret-token")), http.StatusOK)
	}
}

// TestPagesLinkTheExport: the escalation page links its bundle and the
// dashboard has the export form, under the same CSP (no inline script).
func TestPagesLinkTheExport(t *testing.T) {
	s := newDashSite(t)
	s.seed()
	res := s.get("/escalations/ESC-4")
	wantStatus(t, res, http.StatusOK)
	page := body(t, res)
	wantContains(t, page,
		`<a href="/escalations/ESC-4/bundle?format=md" download>Evidence bundle</a>`,
		`href="/escalations/ESC-4/bundle?format=json"`, `href="/escalations/ESC-4/bundle?format=csv"`)

	res = s.get("/")
	wantStatus(t, res, http.StatusOK)
	if csp := res.Header.Get("Content-Security-Policy"); !strings.Contains(csp, "script-src 'self' 'nonce-") || !strings.Contains(csp, "form-action 'self'") {
		t.Errorf("CSP = %q", csp)
	}
	page = section(t, body(t, res), "export")
	wantContains(t, page, `<form class="export" method="get" action="/export">`,
		`<input type="date" name="from" required value="2026-10-06">`, `<input type="date" name="to" required value="2026-11-05">`,
		`<option value="csv">CSV</option>`, `<button type="submit">Export</button>`)
	wantNotContains(t, page, "<script", "onclick", "onsubmit")
}

// TestExportOfAFilteredList: GET /export takes the whole record's filters
// (as the All escalations page), and refuses a parameter it does not know.
func TestExportOfAFilteredList(t *testing.T) {
	s, _ := exportSite(t)
	all := map[string]*bot.Escalation{}
	for _, id := range []string{"ESC-1", "ESC-4", "ESC-5"} {
		e, err := s.db.FindEscalation(context.Background(), id)
		if err != nil {
			t.Fatal(err)
		}
		all[id] = e
	}
	// The first filter of the list's that keeps some but not all.
	var query string
	var want []string
	for _, f := range []struct{ k, v string }{{"state", "approved"}, {"state", "merged"}, {"state", "bypassed"}, {"state", "rejected"}, {"tier", all["ESC-1"].Tier}, {"person", all["ESC-1"].Author}} {
		lq := bot.ListQuery{}
		switch f.k {
		case "state":
			lq.State = f.v
		case "tier":
			lq.Tier = f.v
		case "person":
			lq.Person = f.v
		}
		var ids []string
		for _, id := range []string{"ESC-1", "ESC-4", "ESC-5"} {
			if lq.Match(all[id]) {
				ids = append(ids, id+".json")
			}
		}
		if len(ids) > 0 && len(ids) < 3 {
			query, want = "&"+f.k+"="+f.v, ids
			break
		}
	}
	if query == "" {
		t.Fatal("no filter splits the seed: the test would prove nothing")
	}
	names, _ := unzip(t, []byte(body(t, s.get("/export?from="+seedFrom+"&to="+seedTo+query))))
	if !slices.Equal(names, append([]string{"index.json"}, want...)) {
		t.Errorf("%s: zip holds %v, want index.json and %v", query, names, want)
	}
	for path, msg := range map[string]string{
		"/export?from=" + seedFrom + "&to=" + seedTo + "&state=nonsense": "state",
		"/export?from=" + seedFrom + "&to=" + seedTo + "&color=red":      "color: unknown parameter",
	} {
		res := s.get(path)
		wantStatus(t, res, http.StatusBadRequest)
		if b := body(t, res); !strings.Contains(b, msg) {
			t.Errorf("GET %s: %q lacks %q", path, b, msg)
		}
	}
}

// TestAllEscalationsLinksItsExport: the All escalations page links the
// export of its filtered list, and the link works.
func TestAllEscalationsLinksItsExport(t *testing.T) {
	s, _ := exportSite(t)
	page := body(t, s.get("/escalations?state=merged&tier=T2"))
	i := strings.Index(page, `id="export-list"`)
	if i < 0 {
		t.Fatal("the All escalations page has no export link")
	}
	start := strings.LastIndex(page[:i], `href="`) + len(`href="`)
	link := html.UnescapeString(page[start : start+strings.Index(page[start:], `"`)])
	for _, want := range []string{"/export?", "state=merged", "tier=T2", "format=md"} {
		if !strings.Contains(link, want) {
			t.Errorf("export link %q lacks %q", link, want)
		}
	}
	wantStatus(t, s.get(link), http.StatusOK)
}
