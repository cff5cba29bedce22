package web

import (
	"archive/zip"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"slices"
	"strings"

	"github.com/threatgate/threatgate/bot"
)

// Evidence bundles from the dashboard (docs/EXPORT.md, "From the
// dashboard"): the files `threatgate export` writes, rendered by the same
// bot functions (bot.BuildBundle, bot.ExportOf, bot.RenderExport), so a
// download holds the same bytes as the command's files.

// exportFilters are the whole record's filters GET /export takes;
// exportParams every parameter it takes.
var (
	exportFilters = []string{"tier", "project", "person", "state", "flag", "open", "since", "until"}
	exportParams  = append([]string{"from", "to", "format"}, exportFilters...)
)

// maxExportDays bounds the window of GET /export: a year, leap day
// included. A longer one is refused rather than read.
const maxExportDays = 366

// logFile is the log key of the file of a download being written.
const logFile = "file"

var _ bot.ExportStore = Reader(nil)

// bundle serves GET /escalations/{id}/bundle?format=json|md|csv: the
// evidence bundle of one escalation, decided or not (an undecided one has
// an empty decision; its Markdown says "not decided"), built from its own
// events only (Reader.Events, then bot.BuildBundle over their replay, as
// bot.ExportOf builds each bundle). json (the default) is ESC-n.json and md
// ESC-n.md, byte for byte the files of `threatgate export`; csv is
// ESC-n-csv.zip, the export's CSV tables (index.csv, controls.csv, ...)
// for this one escalation. Another format is a 400 naming the allowed
// ones; an unknown escalation a 404.
func (s *Server) bundle(w http.ResponseWriter, r *http.Request) {
	id := r.PathValue("id")
	if !plausibleID(id) {
		s.NotFound(w, r)
		return
	}
	format, ok := s.exportFormat(w, r)
	if !ok {
		return
	}
	events, err := s.Store.Events(r.Context(), id)
	if errors.Is(err, bot.ErrNotFound) || (err == nil && len(events) == 0) {
		s.RenderError(w, r, http.StatusNotFound, fmt.Sprintf("There is no escalation %s.", id))
		return
	}
	if err != nil {
		s.fail(w, r, fmt.Errorf("events of %s: %w", id, err))
		return
	}
	b := bot.BuildBundle(bot.Replay(events), events)
	// The one-bundle export renders the bundle's files exactly as the
	// command writes them; its window is not part of a bundle's file.
	files, err := bot.RenderExport(bot.NewExport(b.OpenedAt, b.OpenedAt, []*bot.Bundle{b}), format)
	if err != nil {
		s.fail(w, r, fmt.Errorf("render bundle of %s: %w", id, err))
		return
	}
	if format == "csv" {
		s.writeZip(w, r, strings.TrimSuffix(bot.BundleFile(b.Escalation, "csv"), ".csv")+"-csv.zip", files)
		return
	}
	name := bot.BundleFile(b.Escalation, format)
	i := slices.IndexFunc(files, func(f bot.ExportFile) bool { return f.Name == name })
	if i < 0 {
		s.fail(w, r, fmt.Errorf("render bundle of %s: no file %s", id, name))
		return
	}
	h := w.Header()
	h.Set("Content-Type", contentTypes[format])
	h.Set("Cache-Control", "no-store")
	h.Set("Content-Disposition", attachment(name))
	w.Write(files[i].Data)
}

// export serves GET /export?from=YYYY-MM-DD&to=YYYY-MM-DD&format=json|md|csv:
// a zip of what `threatgate export --from --to --format` writes for that
// window (both days included, UTC; json by default), streamed. It reads
// what bot.ExportOf reads: the window of the audit log and the events of
// the escalations decided in it, never the whole store. Bad parameters
// are a 400 naming each one and what was expected, as is a window longer
// than maxExportDays.
func (s *Server) export(w http.ResponseWriter, r *http.Request) {
	format, ok := s.exportFormat(w, r)
	if !ok {
		return
	}
	q := r.URL.Query()
	from, to := q.Get("from"), q.Get("to")
	start, end, problems := bot.ExportWindow("from", from, "to", to)
	if len(problems) == 0 && end.Sub(start).Hours()/24 > maxExportDays {
		problems = append(problems, fmt.Sprintf("to: want a window of at most %d days, got %d days from %s to %s; export it in parts",
			maxExportDays, int(end.Sub(start).Hours()/24), from, to))
	}
	if len(problems) > 0 {
		s.RenderError(w, r, http.StatusBadRequest, strings.Join(problems, "; ")+".")
		return
	}
	// The whole record's filters (tier, project, person, state, flag,
	// open, and since/until on when escalations were opened) narrow it
	// to a filtered list, as on the All escalations page.
	filters := url.Values{}
	for _, k := range exportFilters {
		if v, ok := q[k]; ok {
			filters[k] = v
		}
	}
	var keep func(*bot.Escalation) bool
	if len(filters) > 0 {
		lq, err := parseListQuery(filters, s.now())
		if err != nil {
			s.RenderError(w, r, http.StatusBadRequest, err.Error())
			return
		}
		lq.Policy = s.policy()
		keep = lq.Match
	}
	for k := range q {
		if !slices.Contains(exportParams, k) {
			s.RenderError(w, r, http.StatusBadRequest, fmt.Sprintf("%s: unknown parameter; the parameters are %s.", clipParam(k), strings.Join(exportParams, ", ")))
			return
		}
	}
	x, err := bot.ExportWhere(r.Context(), s.Store, start, end, keep)
	if err != nil {
		s.fail(w, r, err)
		return
	}
	files, err := bot.RenderExport(x, format)
	if err != nil {
		s.fail(w, r, err)
		return
	}
	s.writeZip(w, r, fmt.Sprintf("threatgate-export-%s-to-%s-%s.zip", from, to, format), files)
}

// exportFormat reads ?format (json when absent), or refuses it with a 400
// naming the allowed ones.
func (s *Server) exportFormat(w http.ResponseWriter, r *http.Request) (string, bool) {
	format := r.URL.Query().Get("format")
	if format == "" {
		return "json", true
	}
	if !slices.Contains(bot.ExportFormats, format) {
		s.RenderError(w, r, http.StatusBadRequest, fmt.Sprintf("format: want one of %s, got %q.", strings.Join(bot.ExportFormats, ", "), format))
		return "", false
	}
	return format, true
}

var contentTypes = map[string]string{
	"json": "application/json",
	"md":   "text/markdown; charset=utf-8",
}

// attachment is the Content-Disposition of a download named name (made
// of letters, digits, '.', '-' and '_': bot.BundleFile and the dates).
func attachment(name string) string {
	return `attachment; filename="` + name + `"`
}

// writeZip streams files as the zip download name. Once the first byte
// is out the status is sent, so a failure after it is only logged: the
// client sees a truncated zip, which does not open.
func (s *Server) writeZip(w http.ResponseWriter, r *http.Request, name string, files []bot.ExportFile) {
	h := w.Header()
	h.Set("Content-Type", "application/zip")
	h.Set("Cache-Control", "no-store")
	h.Set("Content-Disposition", attachment(name))
	z := zip.NewWriter(w)
	for _, f := range files {
		fw, err := z.CreateHeader(&zip.FileHeader{Name: f.Name, Method: zip.Deflate, Modified: s.now()})
		if err == nil {
			_, err = fw.Write(f.Data)
		}
		if err != nil {
			s.log.Warn("export download cut short", "path", r.URL.Path, logFile, f.Name, bot.LogErr, err)
			return
		}
	}
	if err := z.Close(); err != nil {
		s.log.Warn("export download cut short", "path", r.URL.Path, bot.LogErr, err)
	}
}
