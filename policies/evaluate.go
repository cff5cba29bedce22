package policies

import (
	"fmt"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"unicode/utf8"

	"github.com/bmatcuk/doublestar/v4"
)

// Result is the classification of one MR.
type Result struct {
	Tier    *Tier   // nil when no tier applies
	Score   int     // sum of the fired signals' weights
	Signals []Fired // in policy order
}

// Fired is a signal that fired, with the evidence that fired it.
type Fired struct {
	ID       string   `json:"id"`
	Category string   `json:"category"`
	Weight   int      `json:"weight"`
	Evidence []string `json:"evidence"`
}

// maxEvidence bounds the evidence kept per condition of a signal; the rest
// is summarised as "and N more".
const maxEvidence = 10

// Evaluate classifies mr: which signals fire, with what evidence, the score
// and the tier. It does not modify mr and is safe for concurrent use.
func (p *Policy) Evaluate(mr *MergeRequest) Result {
	ev := evaluation{p: p, mr: mr}
	var res Result
	for _, s := range p.Signals {
		if evidence, ok := ev.signal(s); ok {
			res.Signals = append(res.Signals, Fired{ID: s.ID, Category: s.Category, Weight: s.Weight, Evidence: evidence})
			res.Score += s.Weight
		}
	}
	res.Tier = p.Select(res.Score, res.Signals)
	return res
}

// Select returns the first tier whose condition holds for score and fired
// signals, or nil.
func (p *Policy) Select(score int, fired []Fired) *Tier {
	for _, t := range p.Tiers {
		if t.When.MinScore > 0 && score < t.When.MinScore {
			continue
		}
		if len(t.When.AnySignals) > 0 && !slices.ContainsFunc(fired, func(f Fired) bool { return slices.Contains(t.When.AnySignals, f.ID) }) {
			continue
		}
		return t
	}
	return nil
}

// evaluation holds what one Evaluate call computes once and shares between
// signals: the path matches and the changed-line count.
type evaluation struct {
	p  *Policy
	mr *MergeRequest

	pathsDone bool
	// hits[pattern] lists the indexes of the changes whose old or new path
	// matched the pattern.
	hits    [][]int32
	mark    []bool // scratch for union, all false between calls
	changed int
	counted bool
}

func (ev *evaluation) matchPaths() {
	ev.pathsDone = true
	g := ev.p.paths
	ev.hits = make([][]int32, len(g.patterns))
	if len(g.patterns) == 0 {
		return
	}
	m := g.matcher(len(ev.mr.Changes))
	var ids []int
	for i := range ev.mr.Changes {
		c := &ev.mr.Changes[i]
		ids = m.match(ids[:0], c.NewPath)
		if c.OldPath != c.NewPath && c.OldPath != "" {
			ids = m.match(ids, c.OldPath)
		}
		for _, id := range ids {
			if h := ev.hits[id]; len(h) == 0 || h[len(h)-1] != int32(i) {
				ev.hits[id] = append(h, int32(i))
			}
		}
	}
}

// union returns the changes that any of the patterns ids matched, in
// order, each once.
func (ev *evaluation) union(ids []int) []int32 {
	if len(ids) == 1 {
		return ev.hits[ids[0]] // already sorted and unique
	}
	total := 0
	for _, id := range ids {
		total += len(ev.hits[id])
	}
	if total < 64 {
		var out []int32
		for _, id := range ids {
			out = append(out, ev.hits[id]...)
		}
		slices.Sort(out)
		return slices.Compact(out)
	}
	if ev.mark == nil {
		ev.mark = make([]bool, len(ev.mr.Changes))
	}
	n := 0
	for _, id := range ids {
		for _, ci := range ev.hits[id] {
			if !ev.mark[ci] {
				ev.mark[ci] = true
				n++
			}
		}
	}
	out := make([]int32, 0, n)
	for i, m := range ev.mark {
		if m {
			out = append(out, int32(i))
			ev.mark[i] = false
		}
	}
	return out
}

func (ev *evaluation) changedLines() int {
	if !ev.counted {
		ev.counted = true
		for _, c := range ev.mr.Changes {
			diffLines(c.Diff, func(byte, string, int) { ev.changed++ })
		}
	}
	return ev.changed
}

// signal checks every condition of s; all must hold.
func (ev *evaluation) signal(s *Signal) ([]string, bool) {
	c := &s.When
	var evidence []string
	var inScope []int32 // changes matched by paths, when paths is set
	if len(c.Paths) > 0 {
		if !ev.pathsDone {
			ev.matchPaths()
		}
		inScope = ev.union(c.pathIDs)
		if len(inScope) == 0 {
			return nil, false
		}
		n := 0
		for _, ci := range inScope {
			if n == maxEvidence {
				evidence = append(evidence, fmt.Sprintf("and %d more paths", len(inScope)-n))
				break
			}
			ch := &ev.mr.Changes[ci]
			evidence = append(evidence, ev.pathEvidence(c, ch))
			n++
		}
	}
	if len(c.Labels) > 0 {
		var hits []string
		for _, l := range ev.mr.Labels {
			for _, pat := range c.Labels {
				if wildcard(pat, l) {
					hits = append(hits, fmt.Sprintf("label %q", l))
					break
				}
			}
		}
		if len(hits) == 0 {
			return nil, false
		}
		evidence = append(evidence, capped(hits, "labels")...)
	}
	if len(c.TargetBranches) > 0 {
		pat, ok := anyGlob(c.TargetBranches, ev.mr.TargetBranch)
		if !ok {
			return nil, false
		}
		evidence = append(evidence, fmt.Sprintf("target branch %q matches %q", ev.mr.TargetBranch, pat))
	}
	if len(c.Projects) > 0 {
		proj := ev.mr.Project()
		pat, ok := anyGlob(c.Projects, proj)
		if !ok {
			return nil, false
		}
		evidence = append(evidence, fmt.Sprintf("project %q matches %q", proj, pat))
	}
	if len(c.title) > 0 {
		e, ok := anyRegexp(c.title, c.Title, "title", ev.mr.Title, s.Redact, ev.p.maskStart(ev.mr.Title))
		if !ok {
			return nil, false
		}
		evidence = append(evidence, e)
	}
	if len(c.desc) > 0 {
		e, ok := anyRegexp(c.desc, c.Description, "description", ev.mr.Description, s.Redact, ev.p.maskStart(ev.mr.Description))
		if !ok {
			return nil, false
		}
		evidence = append(evidence, e)
	}
	if c.MinChangedLines > 0 {
		n := ev.changedLines()
		if n < c.MinChangedLines {
			return nil, false
		}
		evidence = append(evidence, fmt.Sprintf("%d changed lines (at least %d)", n, c.MinChangedLines))
	}
	if len(c.Authors) > 0 {
		if !slices.Contains(c.Authors, ev.mr.Author.Username) {
			return nil, false
		}
		evidence = append(evidence, fmt.Sprintf("author %q", ev.mr.Author.Username))
	}
	if len(c.added) > 0 {
		hits := ev.addedLines(c, inScope, len(c.Paths) > 0, s.Redact)
		if len(hits) == 0 {
			return nil, false
		}
		evidence = append(evidence, hits...)
	}
	return evidence, true
}

// pathEvidence names the path of ch that matched and the pattern it matched.
func (ev *evaluation) pathEvidence(c *Condition, ch *Change) string {
	for k, id := range c.pathIDs {
		pat := ev.p.paths.patterns[id]
		if ch.DeletedFile {
			// GitLab repeats the old path as new_path of a deleted file.
			if ok, _ := doublestar.Match(pat, ch.OldPath); ok && ch.OldPath != "" {
				return fmt.Sprintf("path %s (deleted) matches %q", ch.OldPath, c.Paths[k])
			}
		}
		if ok, _ := doublestar.Match(pat, ch.NewPath); ok && ch.NewPath != "" {
			if ch.RenamedFile && ch.OldPath != ch.NewPath {
				return fmt.Sprintf("path %s (renamed from %s) matches %q", ch.NewPath, ch.OldPath, c.Paths[k])
			}
			return fmt.Sprintf("path %s matches %q", ch.NewPath, c.Paths[k])
		}
		if ok, _ := doublestar.Match(pat, ch.OldPath); ok && ch.OldPath != "" {
			if ch.DeletedFile {
				return fmt.Sprintf("path %s (deleted) matches %q", ch.OldPath, c.Paths[k])
			}
			return fmt.Sprintf("path %s (renamed to %s) matches %q", ch.OldPath, ch.NewPath, c.Paths[k])
		}
	}
	return "path " + ch.NewPath
}

// addedLines searches the lines the diff adds, in the changes in scope
// (all of them unless the signal also has paths), for any of the regexps.
//
// With redact, the text of a matching line is masked from the fifth
// character of the match on (see Mask), so that a secret the signal found
// is never shown or stored.
func (ev *evaluation) addedLines(c *Condition, scope []int32, scoped bool, redact bool) []string {
	var out []string
	total := 0
	search := func(ch *Change) {
		diffLines(ch.Diff, func(op byte, text string, newLine int) {
			if op != '+' {
				return
			}
			for k, re := range c.added {
				if re.MatchString(text) {
					total++
					if len(out) < maxEvidence {
						// Masked from the leftmost secret any redacting
						// signal finds on the line (this one's patterns
						// among them), whichever signal shows it: a line
						// never appears with a secret in it.
						shown := text
						if ms := ev.p.maskStart(text); ms >= 0 {
							shown = Mask(text, ms)
						} else if redact {
							shown = Mask(text, 0)
						}
						out = append(out, fmt.Sprintf("added line %s:%d matches %q: %s", ch.NewPath, newLine, c.AddedLines[k], truncate(strings.TrimSpace(shown), 120)))
					}
					return
				}
			}
		})
	}
	if scoped {
		for _, ci := range scope {
			search(&ev.mr.Changes[ci])
		}
	} else {
		for i := range ev.mr.Changes {
			search(&ev.mr.Changes[i])
		}
	}
	if total > len(out) {
		out = append(out, fmt.Sprintf("and %d more added lines", total-len(out)))
	}
	return out
}

// diffLines calls fn for every line a unified diff adds (op '+') or
// removes (op '-'), with its text (without the op and the line end) and,
// for an added line, its line number in the new file (0 before any hunk
// header).
//
// "+++ b/x" and "--- a/x" are file headers, not changes, except inside a
// hunk whose header still expects lines: there they are an added "++ b/x"
// or a removed "-- a/x" (an SQL comment, say). "\ No newline at end of
// file" is neither and takes no line number.
func diffLines(diff string, fn func(op byte, text string, newLine int)) {
	newLine, oldLeft, newLeft := 0, 0, 0
	for line := range strings.Lines(diff) {
		inHunk := oldLeft > 0 || newLeft > 0
		switch {
		case strings.HasPrefix(line, "@@"):
			newLine, oldLeft, newLeft = hunkHeader(line)
		case line[0] == '+':
			if !inHunk && strings.HasPrefix(line, "+++") {
				continue
			}
			fn('+', strings.TrimRight(line[1:], "\r\n"), newLine)
			newLine++
			newLeft--
		case line[0] == '-':
			if !inHunk && strings.HasPrefix(line, "---") {
				continue
			}
			fn('-', strings.TrimRight(line[1:], "\r\n"), 0)
			oldLeft--
		case line[0] == '\\':
		default:
			newLine++
			oldLeft--
			newLeft--
		}
	}
}

// hunkHeader reads a hunk header "@@ -a,b +c,d @@": the new-file start
// line c and the old and new lengths b and d (1 when left out).
func hunkHeader(h string) (start, oldLen, newLen int) {
	_, oldLen = hunkRange(h, " -")
	start, newLen = hunkRange(h, " +")
	return start, oldLen, newLen
}

// hunkRange reads the "start,length" after marker in a hunk header.
func hunkRange(h, marker string) (start, length int) {
	i := strings.Index(h, marker)
	if i < 0 {
		return 0, 0
	}
	rest := h[i+len(marker):]
	if j := strings.IndexAny(rest, " @"); j >= 0 {
		rest = rest[:j]
	}
	startText, lenText, hasLen := strings.Cut(rest, ",")
	start, _ = strconv.Atoi(startText)
	length = 1
	if hasLen {
		length, _ = strconv.Atoi(lenText)
	}
	return start, length
}

func capped(hits []string, what string) []string {
	if len(hits) > maxEvidence {
		return append(hits[:maxEvidence:maxEvidence], fmt.Sprintf("and %d more %s", len(hits)-maxEvidence, what))
	}
	return hits
}

func anyGlob(patterns []string, s string) (string, bool) {
	if s == "" {
		return "", false
	}
	for _, p := range patterns {
		if ok, _ := doublestar.Match(p, s); ok {
			return p, true
		}
	}
	return "", false
}

// anyRegexp returns the evidence of the first of res that matches s. The
// excerpt is masked when the signal redacts, and from maskAt on (the
// leftmost secret a redacting signal finds in s, -1 for none).
func anyRegexp(res []*regexp.Regexp, src []string, what, s string, redact bool, maskAt int) (string, bool) {
	for k, re := range res {
		if loc := re.FindStringIndex(s); loc != nil {
			shown := s[loc[0]:loc[1]]
			switch {
			case maskAt >= 0 && maskAt < loc[1]:
				shown = Mask(shown, max(0, maskAt-loc[0]))
			case redact:
				shown = Mask(shown, 0)
			}
			return fmt.Sprintf("%s matches %q: %q", what, src[k], truncate(shown, 80)), true
		}
	}
	return "", false
}

// wildcard matches s against a label pattern in which '*' stands for any
// run of characters (so "security::*" matches every scoped security label).
func wildcard(pattern, s string) bool {
	if !strings.Contains(pattern, "*") {
		return pattern == s
	}
	parts := strings.Split(pattern, "*")
	if !strings.HasPrefix(s, parts[0]) {
		return false
	}
	s = s[len(parts[0]):]
	last := parts[len(parts)-1]
	for _, mid := range parts[1 : len(parts)-1] {
		i := strings.Index(s, mid)
		if i < 0 {
			return false
		}
		s = s[i+len(mid):]
	}
	return strings.HasSuffix(s, last)
}

// maskRun is what replaces masked text: always the same length, so that
// not even the length of a secret is shown.
const maskRun = "****************************"

// Mask hides line from the fifth character of the match that starts at
// byte offset start to its end: a rule often matches the key ("API_KEY =")
// and the secret follows it, so "API_KEY = \"sk_live_123\"" reads
// "API_****************************". What comes before the match is kept.
func Mask(line string, start int) string {
	if start < 0 || start > len(line) {
		start = 0
	}
	keep := start
	for n := 0; n < 4 && keep < len(line); n++ {
		_, size := utf8.DecodeRuneInString(line[keep:])
		keep += size
	}
	if keep >= len(line) && start < len(line) {
		// A match of four characters or fewer: hide all but the first.
		_, size := utf8.DecodeRuneInString(line[start:])
		keep = start + size
	}
	return line[:keep] + maskRun
}

// maskStart returns where the leftmost secret in text starts, as any
// signal marked redact would find it (its added_lines, title and
// description patterns), or -1 when none matches.
func (p *Policy) maskStart(text string) int {
	best := -1
	for _, re := range p.redactRE {
		if loc := re.FindStringIndex(text); loc != nil && (best < 0 || loc[0] < best) {
			best = loc[0]
		}
	}
	return best
}

// MaskSecrets returns text with every secret a signal marked redact would
// find in it masked (see Mask), from the leftmost one on each line: for MR
// titles and other text from outside that threatgate stores or shows.
func (p *Policy) MaskSecrets(text string) string {
	if len(p.redactRE) == 0 || text == "" {
		return text
	}
	lines := strings.Split(text, "\n")
	for i, l := range lines {
		if ms := p.maskStart(l); ms >= 0 {
			lines[i] = Mask(l, ms)
		}
	}
	return strings.Join(lines, "\n")
}
