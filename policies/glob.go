package policies

import (
	"encoding/binary"
	"slices"
	"strings"
	"unicode/utf8"

	"github.com/bmatcuk/doublestar/v4"
)

// globSet matches a path against many doublestar patterns at once.
//
// Every pattern is split into path segments and compiled into one
// non-deterministic automaton whose states are (pattern, segment) pairs.
// Matching walks a path segment by segment; the set of live states after a
// directory is cached for the whole evaluation, so the files of one
// directory share the work of their parents and a file costs a few map
// lookups instead of one doublestar.Match per pattern. The result is the
// same as doublestar.Match for every pattern (a fuzz test holds the two
// side by side); patterns the automaton cannot express exactly (escapes,
// character classes, very large brace expansions) are matched with
// doublestar.Match directly.
type globSet struct {
	patterns []string
	states   []gstate
	start    []int32 // closure of the first state of every alternative
	fallback []int   // pattern ids matched with doublestar.Match
}

type segKind uint8

const (
	segLiteral segKind = iota
	segGlob
	segAny    // "**": zero or more segments
	segAccept // past the last segment
)

type gstate struct {
	kind    segKind
	lit     string // the literal, or the glob of one segment
	pattern int
	closure []int32 // states reachable from this one without consuming a segment (itself included)
}

// maxAlternatives bounds brace expansion; past it a pattern falls back to
// doublestar.Match.
const maxAlternatives = 256

// add compiles pattern and returns its id. The pattern must have passed
// doublestar.ValidatePattern.
func (g *globSet) add(pattern string) int {
	id := len(g.patterns)
	g.patterns = append(g.patterns, pattern)
	if strings.ContainsAny(pattern, `\[`) || strings.Contains(pattern, "{}") || !utf8.ValidString(pattern) {
		g.fallback = append(g.fallback, id)
		return id
	}
	alts, ok := expandBraces(pattern, maxAlternatives)
	if strings.Contains(pattern, "*{") || strings.Contains(pattern, "}*") || starsInBraces(pattern) {
		// Expansion could make a "**" that doublestar never sees as one.
		ok = false
	}
	for _, alt := range alts {
		// Empty segments ("a//b", "a/", "/a") have quirks of their own in
		// doublestar; leave them to it.
		// Neither do "**" inside a segment ("a**b").
		if alt == "" || alt[0] == '/' || alt[len(alt)-1] == '/' || strings.Contains(alt, "//") ||
			strings.Contains(strings.ReplaceAll("/"+alt+"/", "/**/", "/"), "**") {
			ok = false
		}
	}
	if !ok {
		g.fallback = append(g.fallback, id)
		return id
	}
	for _, alt := range alts {
		first := int32(len(g.states))
		for _, seg := range strings.Split(alt, "/") {
			st := gstate{kind: segLiteral, lit: seg, pattern: id}
			switch {
			case seg == "**":
				st.kind = segAny
			case strings.ContainsAny(seg, "*?"):
				st.kind = segGlob
			}
			g.states = append(g.states, st)
		}
		g.states = append(g.states, gstate{kind: segAccept, pattern: id})
		last := int32(len(g.states))
		for s := last - 1; s >= first; s-- {
			cl := []int32{s}
			if g.states[s].kind == segAny {
				cl = append(cl, g.states[s+1].closure...)
			}
			g.states[s].closure = cl
		}
		g.start = append(g.start, g.states[first].closure...)
	}
	return id
}

// expandBraces turns "a/{b,c}/d" into ["a/b/d", "a/c/d"]. Nested braces
// and empty choices are not expanded. It reports false when there would be more than limit results
// or the braces do not balance.
func expandBraces(p string, limit int) ([]string, bool) {
	open := -1
	depth := 0
	for i := 0; i < len(p); i++ {
		switch p[i] {
		case '{':
			if depth > 0 {
				return nil, false // nested braces: left to doublestar
			}
			open = i
			depth++
		case '}':
			depth--
			if depth < 0 {
				return nil, false
			}
			if depth == 0 {
				var out []string
				for _, choice := range splitTopLevel(p[open+1 : i]) {
					if choice == "" || choice[0] == '*' || choice[len(choice)-1] == '*' {
						// "{a,}" and "{*}{*}" (which would join into "**")
						// are left to doublestar.
						return nil, false
					}
					rest, ok := expandBraces(p[:open]+choice+p[i+1:], limit)
					if !ok || len(out)+len(rest) > limit {
						return nil, false
					}
					out = append(out, rest...)
				}
				return out, true
			}
		}
	}
	if depth != 0 {
		return nil, false
	}
	return []string{p}, true
}

// starsInBraces reports whether "**" occurs inside braces.
func starsInBraces(p string) bool {
	depth := 0
	for i := 0; i < len(p); i++ {
		switch p[i] {
		case '{':
			depth++
		case '}':
			depth--
		case '*':
			if depth > 0 && i+1 < len(p) && p[i+1] == '*' {
				return true
			}
		}
	}
	return false
}

// splitTopLevel splits s at the commas that are not inside nested braces.
func splitTopLevel(s string) []string {
	var out []string
	depth, from := 0, 0
	for i := 0; i < len(s); i++ {
		switch s[i] {
		case '{':
			depth++
		case '}':
			depth--
		case ',':
			if depth == 0 {
				out = append(out, s[from:i])
				from = i + 1
			}
		}
	}
	return append(out, s[from:])
}

// globMatcher matches paths against a globSet, caching the live states of
// every directory it has seen. It is not safe for concurrent use; make one
// per evaluation.
type globMatcher struct {
	g     *globSet
	dirs  map[string]*dirState
	sets  map[string]*dirState // by live set
	seen  []uint32             // per state: generation stamp, to dedupe sets
	gen   uint32
	pseen []uint32 // per pattern: generation stamp, to dedupe results
	pgen  uint32
}

// dirState is the set of live states after a directory, and the table that
// finishes a path in it with one lookup per kind of last segment.
type dirState struct {
	live []int32
	last *lastTable
	next map[string]*dirState // by the next directory segment
}

// lastTable answers "which patterns accept name as the last segment".
type lastTable struct {
	always   []int            // a trailing ** matches whatever the name is
	lit      map[string][]int // exact names
	suffix   map[string][]int // "*.go" stored as ".go"
	sufLens  []int
	prefix   map[string][]int // "Dockerfile*" stored as "Dockerfile"
	preLens  []int
	globs    []globAccept
	full     []int // patterns checked with doublestar.Match on the whole path
	anyState bool  // some state is live; false means nothing can match below
}

type globAccept struct {
	glob    string
	pattern int
}

func (g *globSet) matcher() *globMatcher {
	return &globMatcher{
		g:     g,
		dirs:  make(map[string]*dirState),
		sets:  make(map[string]*dirState),
		seen:  make([]uint32, len(g.states)),
		pseen: make([]uint32, len(g.patterns)),
	}
}

// match appends to dst the ids of the patterns that match path, each once.
func (m *globMatcher) match(dst []int, path string) []int {
	m.pgen++
	if m.pgen == 0 { // wrapped: clear stamps
		clear(m.pseen)
		m.pgen = 1
	}
	add := func(ids []int) {
		for _, id := range ids {
			if m.pseen[id] != m.pgen {
				m.pseen[id] = m.pgen
				dst = append(dst, id)
			}
		}
	}
	for _, id := range m.g.fallback {
		if ok, _ := doublestar.Match(m.g.patterns[id], path); ok {
			add([]int{id})
		}
	}
	if len(m.g.states) == 0 {
		return dst
	}
	if path == "" || path[0] == '/' || path[len(path)-1] == '/' || strings.Contains(path, "//") || !utf8.ValidString(path) {
		// Empty segments or broken UTF-8: rare enough to ask doublestar itself.
		for id, p := range m.g.patterns {
			if ok, _ := doublestar.Match(p, path); ok {
				add([]int{id})
			}
		}
		return dst
	}
	dir, name := "", path
	if i := strings.LastIndexByte(path, '/'); i >= 0 {
		dir, name = path[:i], path[i+1:]
	}
	d := m.dir(dir)
	if !d.last.anyState {
		return dst
	}
	t := d.last
	add(t.always)
	add(t.lit[name])
	for _, n := range t.sufLens {
		if len(name) >= n {
			add(t.suffix[name[len(name)-n:]])
		}
	}
	for _, n := range t.preLens {
		if len(name) >= n {
			add(t.prefix[name[:n]])
		}
	}
	for _, id := range t.full {
		if m.pseen[id] != m.pgen {
			if ok, _ := doublestar.Match(m.g.patterns[id], path); ok {
				add([]int{id})
			}
		}
	}
	for _, ga := range t.globs {
		if m.pseen[ga.pattern] == m.pgen {
			continue
		}
		if ok, _ := doublestar.Match(ga.glob, name); ok {
			add([]int{ga.pattern})
		}
	}
	return dst
}

// dir returns the cached state of directory dir ("" is the root).
func (m *globMatcher) dir(dir string) *dirState {
	if d, ok := m.dirs[dir]; ok {
		return d
	}
	var d *dirState
	if dir == "" {
		d = m.intern(m.dedupe(m.g.start))
	} else {
		parent, seg := "", dir
		if i := strings.LastIndexByte(dir, '/'); i >= 0 {
			parent, seg = dir[:i], dir[i+1:]
		}
		p := m.dir(parent)
		if next, ok := p.next[seg]; ok {
			d = next
		} else {
			d = m.intern(m.step(p.live, seg))
			if p.next == nil {
				p.next = make(map[string]*dirState)
			}
			p.next[seg] = d
		}
	}
	m.dirs[dir] = d
	return d
}

// intern returns the one dirState for a set of live states, so that the
// many directories that leave the same states live share one table: a
// lazily built deterministic automaton.
func (m *globMatcher) intern(live []int32) *dirState {
	slices.Sort(live)
	key := make([]byte, 0, 4*len(live))
	for _, s := range live {
		key = binary.LittleEndian.AppendUint32(key, uint32(s))
	}
	if d, ok := m.sets[string(key)]; ok {
		return d
	}
	d := &dirState{live: live, last: m.table(live)}
	m.sets[string(key)] = d
	return d
}

// step consumes one segment from the live states.
func (m *globMatcher) step(live []int32, seg string) []int32 {
	m.bump()
	var next []int32
	push := func(s int32) {
		for _, c := range m.g.states[s].closure {
			if m.seen[c] != m.gen {
				m.seen[c] = m.gen
				next = append(next, c)
			}
		}
	}
	for _, s := range live {
		st := &m.g.states[s]
		switch st.kind {
		case segAny:
			push(s)
		case segLiteral:
			if st.lit == seg {
				push(s + 1)
			}
		case segGlob:
			if ok, _ := doublestar.Match(st.lit, seg); ok {
				push(s + 1)
			}
		}
	}
	return next
}

func (m *globMatcher) dedupe(states []int32) []int32 {
	m.bump()
	var out []int32
	for _, s := range states {
		if m.seen[s] != m.gen {
			m.seen[s] = m.gen
			out = append(out, s)
		}
	}
	return out
}

func (m *globMatcher) bump() {
	m.gen++
	if m.gen == 0 {
		clear(m.seen)
		m.gen = 1
	}
}

// table builds the last-segment table for a set of live states.
func (m *globMatcher) table(live []int32) *lastTable {
	t := &lastTable{anyState: len(live) > 0}
	accepts := func(s int32) bool {
		for _, c := range m.g.states[s].closure {
			if m.g.states[c].kind == segAccept {
				return true
			}
		}
		return false
	}
	for _, s := range live {
		st := &m.g.states[s]
		switch st.kind {
		case segAny:
			if accepts(s) {
				t.always = append(t.always, st.pattern)
			}
		case segLiteral:
			if accepts(s + 1) {
				if t.lit == nil {
					t.lit = make(map[string][]int)
				}
				t.lit[st.lit] = append(t.lit[st.lit], st.pattern)
			}
		case segGlob:
			if !accepts(s + 1) {
				continue
			}
			if strings.HasSuffix(st.lit, "*") && m.g.states[s+1].kind == segAny {
				// doublestar does not let "x*/**" match "x" itself though
				// "docs/**" matches "docs"; ask it about the whole path.
				t.full = append(t.full, st.pattern)
				continue
			}
			switch rest := st.lit[1:]; {
			case st.lit[0] == '*' && !strings.ContainsAny(rest, "*?"):
				if t.suffix == nil {
					t.suffix = make(map[string][]int)
				}
				if _, ok := t.suffix[rest]; !ok {
					t.sufLens = appendUnique(t.sufLens, len(rest))
				}
				t.suffix[rest] = append(t.suffix[rest], st.pattern)
			case st.lit[len(st.lit)-1] == '*' && !strings.ContainsAny(st.lit[:len(st.lit)-1], "*?"):
				pre := st.lit[:len(st.lit)-1]
				if t.prefix == nil {
					t.prefix = make(map[string][]int)
				}
				if _, ok := t.prefix[pre]; !ok {
					t.preLens = appendUnique(t.preLens, len(pre))
				}
				t.prefix[pre] = append(t.prefix[pre], st.pattern)
			default:
				t.globs = append(t.globs, globAccept{glob: st.lit, pattern: st.pattern})
			}
		}
	}
	return t
}

func appendUnique(xs []int, x int) []int {
	for _, v := range xs {
		if v == x {
			return xs
		}
	}
	return append(xs, x)
}
