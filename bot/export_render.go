package bot

import (
	"bytes"
	"encoding/csv"
	"encoding/json"
	"fmt"
	"net/url"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"
)

// The renderings of an export (docs/EXPORT.md): pure functions from an
// Export to the files of one format. Text from outside (titles,
// rationales, artifact text, evidence) is escaped for each format: pipes
// and markup in Markdown, formula prefixes in CSV.

// ExportFormats are the formats RenderExport writes.
var ExportFormats = []string{"json", "csv", "md"}

// ExportFile is one file of a rendered export: a name without
// directories and its content.
type ExportFile struct {
	Name string
	Data []byte
}

// RenderExport renders x in format (one of ExportFormats):
//
//   - json: index.json (the Export: index, control summary) and one
//     <escalation>.json per bundle;
//   - md: index.md and one <escalation>.md per bundle;
//   - csv: index.csv, controls.csv and one CSV per table (gaps, signals,
//     tiers, artifacts, approvals, checklist, rejections, dissents, risks,
//     actions, timeline), each row naming its escalation.
//
// It fails only for an unknown format.
func RenderExport(x *Export, format string) ([]ExportFile, error) {
	switch format {
	case "json":
		return renderExportJSON(x)
	case "md":
		return renderExportMarkdown(x), nil
	case "csv":
		return renderExportCSV(x), nil
	}
	return nil, fmt.Errorf("render export: unknown format %q; want %s", format, strings.Join(ExportFormats, ", "))
}

// ExportWindow reads the window of an export from its first and last
// day, each YYYY-MM-DD in UTC and both included, given as the parameters
// named fromName and toName ("--from" on the command line, "from" in a
// URL): it returns [first, the day after last). Each problem names its
// parameter, what was expected and what was found; when there are any,
// start and end are zero.
func ExportWindow(fromName, from, toName, to string) (start, end time.Time, problems []string) {
	day := func(name, s string) (time.Time, bool) {
		if s == "" {
			problems = append(problems, fmt.Sprintf("%s: want a day such as 2026-11-01 (YYYY-MM-DD)", name))
			return time.Time{}, false
		}
		t, err := time.Parse(time.DateOnly, s)
		if err != nil {
			problems = append(problems, fmt.Sprintf("%s: want a day such as 2026-11-01 (YYYY-MM-DD), got %q", name, s))
			return time.Time{}, false
		}
		return t, true
	}
	first, fromOK := day(fromName, from)
	last, toOK := day(toName, to)
	if fromOK && toOK && last.Before(first) {
		problems = append(problems, fmt.Sprintf("%s: want a day on or after %s (%s), got %s", toName, fromName, from, to))
	}
	if len(problems) > 0 {
		return time.Time{}, time.Time{}, problems
	}
	return first, last.AddDate(0, 0, 1), nil
}

var safeName = regexp.MustCompile(`[^A-Za-z0-9._-]`)

// BundleFile is the name of an escalation's bundle file with extension
// ext: its id, with anything but letters, digits, dot, dash and
// underscore replaced.
func BundleFile(id, ext string) string {
	name := safeName.ReplaceAllString(id, "_")
	if strings.Trim(name, ".") == "" || name == "index" {
		name = "escalation-" + name
	}
	return name + "." + ext
}

func renderExportJSON(x *Export) ([]ExportFile, error) {
	enc := func(v any) ([]byte, error) {
		var buf bytes.Buffer
		e := json.NewEncoder(&buf)
		e.SetIndent("", "  ")
		e.SetEscapeHTML(false)
		if err := e.Encode(v); err != nil {
			return nil, fmt.Errorf("render export: %w", err)
		}
		return buf.Bytes(), nil
	}
	idx, err := enc(x)
	if err != nil {
		return nil, err
	}
	files := []ExportFile{{Name: "index.json", Data: idx}}
	for _, b := range x.Bundles {
		data, err := enc(b)
		if err != nil {
			return nil, err
		}
		files = append(files, ExportFile{Name: BundleFile(b.Escalation, "json"), Data: data})
	}
	return files, nil
}

// Markdown.

// mdEscape escapes what Markdown would read as markup or HTML in one
// line, a table cell's pipes included. An underscore inside a word (as in
// awaiting_artifacts) cannot start emphasis and is left as it is.
func mdEscape(s string) string {
	var b strings.Builder
	word := func(i int) bool {
		if i < 0 || i >= len(s) {
			return false
		}
		c := s[i]
		return c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9'
	}
	for i := 0; i < len(s); i++ {
		switch c := s[i]; c {
		case '<':
			b.WriteString("&lt;")
		case '>':
			b.WriteString("&gt;")
		case '&':
			b.WriteString("&amp;")
		case '_':
			if !word(i-1) || !word(i+1) {
				b.WriteByte('\\')
			}
			b.WriteByte(c)
		case '\\', '`', '*', '[', ']', '|', '~':
			b.WriteByte('\\')
			b.WriteByte(c)
		default:
			b.WriteByte(c)
		}
	}
	return b.String()
}

// md escapes s (text from outside) for a Markdown table cell or inline
// text: on one line (line breaks become <br>), markup escaped.
func md(s string) string {
	s = strings.ReplaceAll(strings.TrimSpace(s), "\r\n", "\n")
	lines := strings.Split(s, "\n")
	for i, l := range lines {
		lines[i] = mdEscape(l)
	}
	return strings.Join(lines, "<br>")
}

// webURL reports whether s is one plain http(s) URL that can be written
// as a Markdown link.
func webURL(s string) bool {
	if strings.ContainsAny(s, " \t\r\n<>()[]`\"|") {
		return false
	}
	u, err := url.Parse(s)
	return err == nil && (u.Scheme == "https" || u.Scheme == "http") && u.Host != ""
}

// mdRef writes an artifact's link as a link, its text as text.
func mdRef(s string) string {
	if webURL(s) {
		return "<" + s + ">"
	}
	return md(s)
}

// mdLink writes text linking to href when href is a plain URL.
func mdLink(text, href string) string {
	if webURL(href) {
		return "[" + md(text) + "](" + href + ")"
	}
	return md(text)
}

func code(s string) string {
	if s == "" {
		return ""
	}
	return "`" + strings.ReplaceAll(s, "`", "") + "`"
}

func mdTable(b *strings.Builder, head []string, rows [][]string) {
	b.WriteString("| " + strings.Join(head, " | ") + " |\n|")
	for range head {
		b.WriteString("---|")
	}
	b.WriteString("\n")
	for _, r := range rows {
		b.WriteString("| " + strings.Join(r, " | ") + " |\n")
	}
	b.WriteString("\n")
}

func yes(v bool) string {
	if v {
		return "yes"
	}
	return "no"
}

func seqText(n uint64) string {
	if n == 0 {
		return ""
	}
	return strconv.FormatUint(n, 10)
}

func listOr(s []string, none string) string {
	if len(s) == 0 {
		return none
	}
	out := make([]string, len(s))
	for i, x := range s {
		out[i] = md(x)
	}
	return strings.Join(out, ", ")
}

// ApprovalsText writes an approvals matrix: "1 of appsec, 1 of leads
// (risk-acceptance)".
func approvalsText(def *TierSnapshot, escape func(string) string) string {
	var parts []string
	for _, a := range def.Approvals {
		p := fmt.Sprintf("%d of %s", a.Count, escape(a.Group))
		if a.Role != "" {
			p += " (" + escape(a.Role) + ")"
		}
		parts = append(parts, p)
	}
	return strings.Join(parts, ", ")
}

func windowText(x *Export) string {
	return fmt.Sprintf("from %s to %s (exclusive)", stamp(x.From), stamp(x.To))
}

func renderExportMarkdown(x *Export) []ExportFile {
	files := []ExportFile{{Name: "index.md", Data: []byte(RenderIndexMarkdown(x))}}
	for _, b := range x.Bundles {
		files = append(files, ExportFile{Name: BundleFile(b.Escalation, "md"), Data: []byte(RenderBundleMarkdown(b))})
	}
	return files
}

// RenderIndexMarkdown writes an export's index and control summary.
func RenderIndexMarkdown(x *Export) string {
	var b strings.Builder
	fmt.Fprintf(&b, "# Evidence export\n\nEscalations decided %s: %d.\n\n", windowText(x), len(x.Index))
	b.WriteString("An escalation is decided when it first moves into approved, rejected or withdrawn, or its merge request is merged, whichever comes first; " +
		"each bundle holds every event recorded for it when the export was made. " +
		"What its tier required is the definition recorded with the escalation, not today's policy. " +
		"Schema: `" + BundleSchema + "` (docs/EXPORT.md).\n\n")
	b.WriteString("## Escalations\n\n")
	if len(x.Index) == 0 {
		b.WriteString("None.\n\n")
	} else {
		var rows [][]string
		for _, e := range x.Index {
			rows = append(rows, []string{
				"[" + md(e.Escalation) + "](" + BundleFile(e.Escalation, "md") + ")",
				mdLink(fmt.Sprintf("%s!%d", e.Project, e.MRIID), e.MRURL), md(e.Title),
				md(tierWithName(e.Tier, e.TierName)), md(e.Decision), stamp(e.DecidedAt), md(e.DecidedBy),
				listOr(e.Controls, notRecordedOr(e.Recorded, "none")), strconv.Itoa(e.Gaps),
			})
		}
		mdTable(&b, []string{"Escalation", "Merge request", "Title", "Tier", "Decision", "Decided", "By", "Controls", "Gaps"}, rows)
	}
	b.WriteString("## Controls\n\n")
	if len(x.Controls) == 0 {
		b.WriteString("No escalation of the export maps to a control.\n\n")
	}
	for _, c := range x.Controls {
		fmt.Fprintf(&b, "### %s\n\n", md(c.Control))
		var ev []string
		for _, e := range c.Escalations {
			ev = append(ev, fmt.Sprintf("[%s](%s) (%s, %s)", md(e.Escalation), BundleFile(e.Escalation, "md"), md(e.Tier), md(e.Decision)))
		}
		fmt.Fprintf(&b, "Evidenced by %d escalations: %s.\n\n", len(c.Escalations), strings.Join(ev, ", "))
		if len(c.Gaps) == 0 {
			b.WriteString("Gaps: none.\n\n")
			continue
		}
		var rows [][]string
		for _, g := range c.Gaps {
			rows = append(rows, []string{md(g.Escalation), md(g.Kind), md(g.Detail)})
		}
		mdTable(&b, []string{"Escalation", "Gap", "Detail"}, rows)
	}
	if len(x.Unmapped) > 0 {
		b.WriteString("### Evidencing no control\n\n")
		var rows [][]string
		for _, u := range x.Unmapped {
			rows = append(rows, []string{"[" + md(u.Escalation) + "](" + BundleFile(u.Escalation, "md") + ")", md(u.Reason)})
		}
		mdTable(&b, []string{"Escalation", "Why"}, rows)
	}
	return b.String()
}

func notRecordedOr(recorded bool, none string) string {
	if !recorded {
		return "not recorded"
	}
	return none
}

// RenderBundleMarkdown writes one bundle as a Markdown document that reads
// on its own.
func RenderBundleMarkdown(bd *Bundle) string {
	var b strings.Builder
	mr := fmt.Sprintf("%s!%d", bd.MR.Project, bd.MR.IID)
	fmt.Fprintf(&b, "# %s\n\n", strings.TrimSpace(md(bd.Escalation)+": "+md(mr)+" "+md(bd.MR.Title)))

	decision := "not decided"
	if bd.Decision.Kind != "" {
		decision = fmt.Sprintf("**%s** %s by %s (event %d)", md(bd.Decision.Kind), stamp(bd.Decision.At), md(bd.Decision.By), bd.Decision.Seq)
		if bd.Decision.Text != "" {
			decision += ": " + md(bd.Decision.Text)
		}
	}
	opened := stamp(bd.OpenedAt)
	if bd.OpenedBy != "" {
		opened += " by " + md(bd.OpenedBy)
	}
	if bd.Urgent {
		opened += ", urgent"
	}
	rows := [][]string{
		{"Merge request", mdLink(mr, bd.MR.URL)},
		{"Title", md(bd.MR.Title)},
		{"Author", md(bd.MR.Author)},
		{"Commit authors", listOr(bd.MR.CommitAuthors, "")},
		{"Target branch", md(bd.MR.TargetBranch)},
		{"Head", code(bd.MR.Head)},
		{"Opened", opened},
		{"Decision", decision},
		{"Decided on head", code(bd.Decision.SHA)},
		{"State now", md(string(bd.State))},
	}
	if !bd.Deadlines.DecisionDue.IsZero() {
		due := stamp(bd.Deadlines.DecisionDue)
		if bd.Deadlines.Late {
			due += " (decided " + HumanDuration(bd.Decision.At.Sub(bd.Deadlines.DecisionDue)) + " after it)"
		} else if bd.Decision.Kind != "" {
			due += " (kept)"
		}
		rows = append(rows, []string{"Decision deadline", due})
	}
	mdTable(&b, []string{"Merge request and decision", "As recorded"}, rows)

	if m := bd.Manual; m != nil {
		b.WriteString("## Manual escalation\n\n")
		fmt.Fprintf(&b, "Filed by %s: %s\n\n", md(m.Filer), md(m.Reason))
		if len(m.Intake) > 0 {
			keys := make([]string, 0, len(m.Intake))
			for k := range m.Intake {
				keys = append(keys, k)
			}
			slices.Sort(keys)
			var rows [][]string
			for _, k := range keys {
				rows = append(rows, []string{md(k), md(m.Intake[k])})
			}
			mdTable(&b, []string{"Intake", "Answer"}, rows)
		}
	}

	t := bd.Tier
	fmt.Fprintf(&b, "## Tier\n\n%s, score %d.\n\n", md(tierWithName(t.ID, t.Name)), t.Score)
	b.WriteString("### Why: signals\n\n")
	if len(t.Signals) == 0 {
		b.WriteString("No signal fired (a manual escalation or a re-tier sets the tier).\n\n")
	} else {
		var rows [][]string
		for _, s := range t.Signals {
			ev := make([]string, len(s.Evidence))
			for i, e := range s.Evidence {
				ev[i] = md(e)
			}
			evidence := strings.Join(ev, "<br>")
			if s.Evidence == nil && bd.Retention != nil {
				evidence = "*removed by retention*"
			}
			rows = append(rows, []string{md(s.ID), md(s.Category), strconv.Itoa(s.Weight), evidence})
		}
		mdTable(&b, []string{"Signal", "Category", "Weight", "Evidence (as stored, redacted)"}, rows)
	}
	b.WriteString("### Definition in force\n\n")
	if def := t.Definition; def == nil {
		b.WriteString("Tier definition not recorded: this escalation was recorded before threatgate kept tier definitions with escalations, " +
			"so what its tier required, and the controls it maps to, are not part of this bundle (they are not read from today's policy).\n\n")
	} else {
		var arts []string
		for _, a := range def.Artifacts {
			arts = append(arts, md(artifactLabel(a)))
		}
		risk := "no ceiling"
		if def.MaxResidualRisk > 0 {
			risk = strconv.Itoa(def.MaxResidualRisk)
		}
		mdTable(&b, []string{"Requirement", "As recorded"}, [][]string{
			{"Tier", md(tierWithName(def.ID, def.Name))},
			{"Artifacts", strings.Join(arts, ", ")},
			{"Approvals", approvalsText(def, md)},
			{"Review", listOr(def.Review, "")},
			{"Inform", listOr(def.Inform, "")},
			{"Checklist", listOr(def.Checklist, "")},
			{"Controls", listOr(def.Controls, "")},
			{"Max residual risk", risk},
			{"First response", md(def.FirstResponse)},
			{"Decision", md(def.Decision)},
			{"Urgent decision", md(def.UrgentDecision)},
		})
	}
	if len(t.Changes) > 0 {
		b.WriteString("### Tier changes\n\n")
		var rows [][]string
		for _, c := range t.Changes {
			change := md(c.To)
			if c.From != "" {
				change = md(c.From) + " → " + md(c.To)
			}
			rows = append(rows, []string{seqText(c.Seq), stamp(c.At), md(string(c.Kind)), change, md(c.By), md(c.Rationale), yes(c.Recorded)})
		}
		mdTable(&b, []string{"Event", "At", "Kind", "Tier", "By", "Rationale", "Definition recorded"}, rows)
	}

	b.WriteString("## Compliance controls\n\n")
	switch {
	case t.Definition == nil:
		b.WriteString("Not recorded.\n\n")
	case len(bd.Controls) == 0:
		b.WriteString("The recorded tier maps to no control.\n\n")
	default:
		for _, c := range bd.Controls {
			b.WriteString("- " + md(c) + "\n")
		}
		b.WriteString("\n")
	}

	b.WriteString("## Gaps\n\n")
	if len(bd.Gaps) == 0 {
		b.WriteString("None.\n\n")
	} else {
		var rows [][]string
		for _, g := range bd.Gaps {
			rows = append(rows, []string{md(g.Kind), md(g.Detail)})
		}
		mdTable(&b, []string{"Gap", "Detail"}, rows)
	}

	b.WriteString("## Artifacts\n\n")
	if len(bd.Artifacts) == 0 {
		b.WriteString("None handed in.\n\n")
	} else {
		var rows [][]string
		for _, a := range bd.Artifacts {
			ref := mdRef(a.Ref)
			if !a.Removed.IsZero() {
				ref = "*text removed by retention " + stamp(a.Removed) + "*"
			}
			rows = append(rows, []string{seqText(a.Seq), md(artifactLabel(ArtifactSpec{a.Kind, a.Name})), ref, md(a.By), stamp(a.At), code(ShortSHA(a.SHA))})
		}
		mdTable(&b, []string{"Event", "Kind", "Link or text", "By", "At", "Head"}, rows)
	}
	if len(bd.MissingArtifacts) > 0 {
		var miss []string
		for _, a := range bd.MissingArtifacts {
			miss = append(miss, md(artifactLabel(a)))
		}
		fmt.Fprintf(&b, "Never handed in: %s.\n\n", strings.Join(miss, ", "))
	}

	votes := func(title string, vs []BundleVote, none string) {
		fmt.Fprintf(&b, "## %s\n\n", title)
		if len(vs) == 0 {
			b.WriteString(none + "\n\n")
			return
		}
		var rows [][]string
		for _, v := range vs {
			var notes []string
			if v.Arbiter {
				notes = append(notes, "arbiter")
			}
			if v.Stale {
				notes = append(notes, "stale")
			}
			rows = append(rows, []string{seqText(v.Seq), md(v.By), md(v.Group), md(v.Role), code(ShortSHA(v.SHA)), stamp(v.At), strings.Join(notes, ", "), md(v.Rationale)})
		}
		mdTable(&b, []string{"Event", "By", "Group", "Role", "Head", "At", "Notes", "Rationale"}, rows)
	}
	votes("Approvals", bd.Approvals, "None.")
	var checks [][]string
	for _, v := range bd.Approvals {
		for _, c := range v.Checklist {
			checks = append(checks, []string{seqText(v.Seq), md(v.By), md(c.Item), md(c.Answer)})
		}
	}
	if len(checks) > 0 {
		b.WriteString("### Checklist answers\n\n")
		mdTable(&b, []string{"Approval", "By", "Item", "Answer"}, checks)
	}
	votes("Rejections", bd.Rejections, "None.")

	b.WriteString("## Dissent\n\n")
	if len(bd.Dissents) == 0 {
		b.WriteString("None recorded.\n\n")
	} else {
		var rows [][]string
		for _, n := range bd.Dissents {
			rows = append(rows, []string{seqText(n.Seq), md(n.By), stamp(n.At), code(ShortSHA(n.SHA)), md(n.Text)})
		}
		mdTable(&b, []string{"Event", "By", "At", "Head", "Note"}, rows)
	}

	b.WriteString("## Residual risk\n\n")
	if r := bd.Risk; r == nil {
		b.WriteString("None recorded.\n\n")
	} else {
		ceiling := "no ceiling recorded"
		if r.Ceiling > 0 {
			ceiling = fmt.Sprintf("the tier's ceiling is %d", r.Ceiling)
			if r.Above {
				ceiling += ", exceeded"
			}
		}
		fmt.Fprintf(&b, "Score **%d** (%s), assessed by %s %s on %s (event %d).\n\n", r.Score, ceiling, md(r.By), stamp(r.At), code(ShortSHA(r.SHA)), r.Seq)
		if r.Likelihood != 0 {
			fmt.Fprintf(&b, "Likelihood %d x impact %d.\n\n", r.Likelihood, r.Impact)
		}
		if r.Controls != "" {
			b.WriteString("Compensating controls: " + md(r.Controls) + "\n\n")
		}
		if r.Rationale != "" {
			b.WriteString("Rationale: " + md(r.Rationale) + "\n\n")
		}
		if v := r.Validation; v != nil {
			fmt.Fprintf(&b, "Validated by %s %s (event %d).", md(v.By), stamp(v.At), v.Seq)
			if v.Note != "" {
				b.WriteString(" Note: " + md(v.Note))
			}
			b.WriteString("\n\n")
		}
		for _, a := range r.Acceptances {
			fmt.Fprintf(&b, "Accepted by %s (%s, %s) %s on %s (event %d).\n\n", md(a.By), md(a.Group), RoleRiskAcceptance, stamp(a.At), code(ShortSHA(a.SHA)), a.Seq)
		}
	}

	b.WriteString("## Action items\n\n")
	if len(bd.Actions) == 0 {
		b.WriteString("None.\n\n")
	} else {
		var rows [][]string
		for _, a := range bd.Actions {
			due := ""
			if !a.Due.IsZero() {
				due = a.Due.Format(time.DateOnly)
			}
			done := "open"
			if a.Done {
				done = "closed " + stamp(a.DoneAt) + " by " + md(a.DoneBy)
			}
			rows = append(rows, []string{strconv.Itoa(a.N), md(a.Text), md(a.Owner), due, md(a.By) + ", " + stamp(a.At), done})
		}
		mdTable(&b, []string{"#", "Item", "Owner", "Due", "Recorded", "Done"}, rows)
	}

	b.WriteString("## Timeline\n\n")
	var tl [][]string
	for _, e := range bd.Timeline {
		tl = append(tl, []string{seqText(e.Seq), stamp(e.At), md(string(e.Kind)), md(e.Actor), md(e.Summary)})
	}
	mdTable(&b, []string{"Seq", "At", "Kind", "Actor", "Summary"}, tl)

	if r := bd.Retention; r != nil {
		b.WriteString("## Retention\n\n")
		fmt.Fprintf(&b, "Retention removed the %s of %d events (%s) on %s, under compaction event %s. "+
			"No event was rewritten: the removed text was never part of an event's hash (each event carries its digest), and the compaction event lists what it removed, so `threatgate audit verify` still checks every hash; the removed text itself can no longer be shown.\n\n",
			RetentionRemoved, len(r.Records), seqsText(r.Records), stamp(r.At), seqsText(r.Seqs))
	}

	c := bd.Chain
	b.WriteString("## Audit chain\n\n")
	fmt.Fprintf(&b, "%d events of the audit log, from event %d to event %d (other escalations' events lie between them). "+
		"Each hash is the SHA-256 of the previous event's hash and this event's record.\n\n", c.Events, c.FirstSeq, c.LastSeq)
	var ch [][]string
	for _, e := range bd.Timeline {
		ch = append(ch, []string{seqText(e.Seq), code(e.Hash), code(e.PrevHash)})
	}
	mdTable(&b, []string{"Seq", "Hash", "Previous hash"}, ch)
	return strings.TrimRight(b.String(), "\n") + "\n"
}

// CSV.

// csvCell guards a cell against being read as a formula by a spreadsheet:
// text whose first character, after any spaces or invisible format
// characters (which some spreadsheets skip), is =, +, -, @ or their
// full-width forms, or that starts with a tab or a carriage return, gets a
// leading apostrophe.
func csvCell(s string) string {
	if s == "" {
		return s
	}
	if s[0] == '\t' || s[0] == '\r' {
		return "'" + s
	}
	first := strings.TrimLeftFunc(s, func(r rune) bool { return unicode.IsSpace(r) || unicode.Is(unicode.Cf, r) })
	if r, _ := utf8.DecodeRuneInString(first); strings.ContainsRune("=+-@\uFF1D\uFF0B\uFF0D\uFF20\uFE62\uFE63\uFE66\u2212", r) {
		return "'" + s
	}
	return s
}

func csvTime(t time.Time) string {
	if t.IsZero() {
		return ""
	}
	return t.UTC().Format(time.RFC3339)
}

func csvDate(t time.Time) string {
	if t.IsZero() {
		return ""
	}
	return t.UTC().Format(time.DateOnly)
}

func csvBool(v bool) string { return strconv.FormatBool(v) }

func csvFile(name string, head []string, rows [][]string) ExportFile {
	var buf bytes.Buffer
	w := csv.NewWriter(&buf)
	w.Write(head)
	for _, r := range rows {
		for i := range r {
			r[i] = csvCell(r[i])
		}
		w.Write(r)
	}
	w.Flush() // a bytes.Buffer does not fail
	return ExportFile{Name: name, Data: buf.Bytes()}
}

func renderExportCSV(x *Export) []ExportFile {
	var index, controls, gaps, signals, tiers, artifacts, approvals, checklist, rejections, dissents, risks, actions, timeline [][]string
	for _, b := range x.Bundles {
		id := b.Escalation
		def := b.Tier.Definition
		index = append(index, []string{
			id, b.MR.Project, strconv.FormatInt(b.MR.IID, 10), b.MR.Title, b.MR.URL, b.MR.Author, b.MR.Head,
			b.Tier.ID, b.Tier.Name, csvBool(def != nil), strconv.Itoa(b.Tier.Score),
			b.Decision.Kind, csvTime(b.Decision.At), b.Decision.By, seqText(b.Decision.Seq), string(b.State),
			csvTime(b.OpenedAt), csvTime(b.Deadlines.DecisionDue), csvBool(b.Deadlines.Late),
			strings.Join(b.Controls, "; "), strconv.Itoa(len(b.Gaps)),
			seqText(b.Chain.FirstSeq), seqText(b.Chain.LastSeq), strconv.Itoa(b.Chain.Events), b.Chain.LastHash,
		})
		for _, g := range b.Gaps {
			gaps = append(gaps, []string{id, g.Kind, g.Detail})
		}
		for _, s := range b.Tier.Signals {
			signals = append(signals, []string{id, s.ID, s.Category, strconv.Itoa(s.Weight), strings.Join(s.Evidence, "\n")})
		}
		if def == nil {
			tiers = append(tiers, []string{id, b.Tier.ID, b.Tier.Name, "false", "", "", "", "", "", "", "", "", "", ""})
		} else {
			var arts []string
			for _, a := range def.Artifacts {
				arts = append(arts, artifactLabel(a))
			}
			tiers = append(tiers, []string{id, def.ID, def.Name, "true", strings.Join(arts, "; "), approvalsText(def, func(s string) string { return s }),
				strings.Join(def.Review, "; "), strings.Join(def.Inform, "; "), strings.Join(def.Checklist, "; "), strings.Join(def.Controls, "; "),
				strconv.Itoa(def.MaxResidualRisk), def.FirstResponse, def.Decision, def.UrgentDecision})
		}
		for _, a := range b.Artifacts {
			artifacts = append(artifacts, []string{id, seqText(a.Seq), a.Kind, a.Name, a.Ref, a.By, csvTime(a.At), a.SHA})
		}
		for _, v := range b.Approvals {
			approvals = append(approvals, []string{id, seqText(v.Seq), v.By, v.Group, v.Role, csvTime(v.At), v.SHA, csvBool(v.Arbiter), csvBool(v.Stale), v.Rationale})
			for _, c := range v.Checklist {
				checklist = append(checklist, []string{id, seqText(v.Seq), v.By, c.Item, c.Answer})
			}
		}
		for _, v := range b.Rejections {
			rejections = append(rejections, []string{id, seqText(v.Seq), v.By, v.Group, csvTime(v.At), v.SHA, csvBool(v.Arbiter), csvBool(v.Stale), v.Rationale})
		}
		for _, n := range b.Dissents {
			dissents = append(dissents, []string{id, seqText(n.Seq), n.By, csvTime(n.At), n.SHA, n.Text})
		}
		if r := b.Risk; r != nil {
			row := []string{id, seqText(r.Seq), r.By, strconv.Itoa(r.Score), strconv.Itoa(r.Ceiling), csvBool(r.Above), csvTime(r.At), r.SHA, r.Rationale,
				"", "", r.Controls, "", "", ""}
			if r.Likelihood != 0 {
				row[9], row[10] = strconv.Itoa(r.Likelihood), strconv.Itoa(r.Impact)
			}
			if v := r.Validation; v != nil {
				row[12], row[13], row[14] = v.By, csvTime(v.At), seqText(v.Seq)
			}
			var accepted []string
			for _, a := range r.Acceptances {
				accepted = append(accepted, a.By)
			}
			row = append(row, strings.Join(accepted, " "))
			risks = append(risks, row)
		}
		for _, a := range b.Actions {
			actions = append(actions, []string{id, strconv.Itoa(a.N), seqText(a.Seq), a.Text, a.Owner, csvDate(a.Due), a.By, csvTime(a.At), csvBool(a.Done), csvTime(a.DoneAt), a.DoneBy})
		}
		for _, e := range b.Timeline {
			timeline = append(timeline, []string{id, seqText(e.Seq), csvTime(e.At), string(e.Kind), e.Actor, e.SHA, e.Summary, e.Hash, e.PrevHash})
		}
	}
	for _, c := range x.Controls {
		for _, e := range c.Escalations {
			controls = append(controls, []string{c.Control, e.Escalation, e.Tier, e.Decision, csvTime(e.DecidedAt), strconv.Itoa(e.Gaps), ""})
		}
	}
	for _, u := range x.Unmapped {
		// An escalation evidencing no control: control "", and why.
		row := []string{"", u.Escalation, "", "", "", "", u.Reason}
		if i := slices.IndexFunc(x.Index, func(e IndexEntry) bool { return e.Escalation == u.Escalation }); i >= 0 {
			e := x.Index[i]
			row[2], row[3], row[4], row[5] = e.Tier, e.Decision, csvTime(e.DecidedAt), strconv.Itoa(e.Gaps)
		}
		controls = append(controls, row)
	}
	return []ExportFile{
		csvFile("index.csv", []string{"escalation", "project", "mr_iid", "title", "mr_url", "author", "head", "tier", "tier_name", "tier_definition_recorded", "score",
			"decision", "decided_at", "decided_by", "decision_seq", "state", "opened_at", "decision_due", "late", "controls", "gaps",
			"first_seq", "last_seq", "events", "last_hash"}, index),
		csvFile("controls.csv", []string{"control", "escalation", "tier", "decision", "decided_at", "gaps", "unmapped"}, controls),
		csvFile("gaps.csv", []string{"escalation", "kind", "detail"}, gaps),
		csvFile("signals.csv", []string{"escalation", "signal", "category", "weight", "evidence"}, signals),
		csvFile("tiers.csv", []string{"escalation", "tier", "name", "recorded", "artifacts", "approvals", "review", "inform", "checklist", "controls",
			"max_residual_risk", "first_response", "decision", "urgent_decision"}, tiers),
		csvFile("artifacts.csv", []string{"escalation", "seq", "kind", "name", "ref", "by", "at", "sha"}, artifacts),
		csvFile("approvals.csv", []string{"escalation", "seq", "by", "group", "role", "at", "sha", "arbiter", "stale", "rationale"}, approvals),
		csvFile("checklist.csv", []string{"escalation", "approval_seq", "by", "item", "answer"}, checklist),
		csvFile("rejections.csv", []string{"escalation", "seq", "by", "group", "at", "sha", "arbiter", "stale", "rationale"}, rejections),
		csvFile("dissents.csv", []string{"escalation", "seq", "by", "at", "sha", "text"}, dissents),
		csvFile("risks.csv", []string{"escalation", "seq", "by", "score", "max_residual_risk", "above_max", "at", "sha", "rationale",
			"likelihood", "impact", "controls", "validated_by", "validated_at", "validation_seq", "accepted_by"}, risks),
		csvFile("actions.csv", []string{"escalation", "n", "seq", "text", "owner", "due", "by", "at", "done", "done_at", "done_by"}, actions),
		csvFile("timeline.csv", []string{"escalation", "seq", "at", "kind", "actor", "sha", "summary", "hash", "prev_hash"}, timeline),
	}
}

// seqsText lists event numbers: "3, 5, 9".
func seqsText(seqs []uint64) string {
	parts := make([]string, len(seqs))
	for i, s := range seqs {
		parts[i] = seqText(s)
	}
	return strings.Join(parts, ", ")
}
