package policies

import (
	"encoding/binary"
	"slices"
	"strings"
	"sync"
	"unicode/utf8"

	"github.com/bmatcuk/doublestar/v4"
)

// globSet matches a path against many doublestar patterns at once.
//
// Every pattern is expanded into its brace alternatives ("a/{b,c/**}" is
// "a/b" or "a/c/**"), each alternative is split into path segments, and
// all of them are compiled into one non-deterministic automaton whose
// states are (alternative, segment) pairs. Matching walks a path segment
// by segment; the set of live states after a directory is interned and
// keeps its transitions, so directories share the work of their parents
// and of every directory that leaves the same states live (a lazily built
// deterministic automaton), and a file costs a few map lookups instead of
// one doublestar.Match per pattern.
//
// The result is the same as doublestar.Match for every pattern: a
// differential fuzz test (FuzzGlobSet) holds the two side by side.
// Patterns the automaton cannot express exactly (escapes, character
// classes, empty segments, "**" inside a segment, very large brace
// expansions, and braces whose expansion doublestar reads differently from
// the braces themselves; see alternatives) are matched with
// doublestar.Match directly.
type globSet struct {
	patterns []string
	states   []gstate
	start    []int32 // closure of the first state of every alternative
	fallback []int   // pattern ids matched with doublestar.Match
	ids      map[string]int

	// The deterministic automaton built so far, shared by every
	// evaluation: the live sets met (at most maxSharedSets) and their
	// transitions (at most maxSharedSteps). Past the bounds an evaluation
	// still matches right, with what it builds for itself.
	mu     sync.Mutex
	shared map[string]*dirState // by live set
	steps  int
}

const (
	maxSharedSets  = 4096
	maxSharedSteps = 1 << 17
)

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
const maxAlternatives = 1024

// maxBraces bounds the braces of a compiled pattern (and so the depth of
// the expansion's recursion).
const maxBraces = 64

// add compiles pattern and returns its id; a pattern added again (YAML
// aliases make that common) keeps its first id. The pattern must have
// passed doublestar.ValidatePattern.
func (g *globSet) add(pattern string) int {
	if id, ok := g.ids[pattern]; ok {
		return id
	}
	id := len(g.patterns)
	g.patterns = append(g.patterns, pattern)
	if g.ids == nil {
		g.ids = make(map[string]int)
	}
	g.ids[pattern] = id
	alts, ok := compilable(pattern)
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

// compilable returns the alternatives of pattern that the automaton
// matches exactly as doublestar.Match matches pattern, or false when the
// pattern must be left to doublestar.Match.
func compilable(pattern string) ([]string, bool) {
	if strings.ContainsAny(pattern, `\[`) || !utf8.ValidString(pattern) || strings.Count(pattern, "{") > maxBraces {
		return nil, false
	}
	alts, ok := alternatives(pattern, maxAlternatives)
	if !ok {
		return nil, false
	}
	for _, alt := range alts {
		// Empty segments ("a//b", "a/", "/a") have quirks of their own in
		// doublestar, and so has "**" inside a segment ("a**b", or "**"
		// right after another "**"); leave them to it.
		if alt == "" || alt[0] == '/' || alt[len(alt)-1] == '/' || strings.Contains(alt, "//") ||
			strings.Contains(strings.ReplaceAll("/"+alt+"/", "/**/", "/"), "**") {
			return nil, false
		}
	}
	return alts, true
}

// alternatives expands the braces of p into the patterns doublestar.Match
// tries for them ("{a,b}/{c,d/**}" gives "a/c", "a/d/**", "b/c",
// "b/d/**"), nested braces and empty choices included. It reports false
// when p has more than limit alternatives, when its braces do not
// balance, or when doublestar would not read an alternative the way it
// reads the braces.
//
// doublestar.Match substitutes a choice for the braces when it reaches
// them, so matching p is matching any of its alternatives, except where
// the matcher looks at the brace itself before substituting: a '*' right
// before a brace checks whether a second '*' (or the '/' that ends "**")
// follows, and at the end of the name the rest of the pattern is tested
// for the few forms that match nothing ("", "*", "**", "/**", "**/",
// "/**/") as written, braces and all. Alternatives on which either
// would decide differently are refused.
func alternatives(p string, limit int) ([]string, bool) {
	type expansion struct {
		text  string
		opens []int // where in text a brace was (doublestar substitutes there)
	}
	var out []expansion
	var expand func(s string, from int, opens []int) bool
	expand = func(s string, from int, opens []int) bool {
		i := strings.IndexByte(s[from:], '{')
		if i < 0 {
			if strings.IndexByte(s[from:], '}') >= 0 || len(out) == limit {
				return false
			}
			out = append(out, expansion{s, opens})
			return true
		}
		i += from
		if strings.IndexByte(s[from:i], '}') >= 0 {
			return false
		}
		// The matching '}' and the top-level commas, as doublestar's
		// indexMatchedClosingAlt and indexNextAlt find them (p has no
		// escapes or classes).
		depth, start := 0, i+1
		var choices []string
		for j := i + 1; j < len(s); j++ {
			switch s[j] {
			case '{':
				depth++
			case ',':
				if depth == 0 {
					choices = append(choices, s[start:j])
					start = j + 1
				}
			case '}':
				if depth > 0 {
					depth--
					continue
				}
				choices = append(choices, s[start:j])
				for _, c := range choices {
					if !expand(s[:i]+c+s[j+1:], i, append(opens[:len(opens):len(opens)], i)) {
						return false
					}
				}
				return true
			}
		}
		return false // no closing brace
	}
	if !expand(p, 0, nil) {
		return nil, false
	}
	alts := make([]string, 0, len(out))
	for _, e := range out {
		s := e.text
		for _, o := range e.opens {
			// A '*' before the brace: doublestar sees '{', the alternative
			// may continue the '*' into "**" or "**/", or end the pattern.
			if o > 0 && s[o-1] == '*' && (o == len(s) || s[o] == '*' || s[o] == '/') {
				return nil, false
			}
		}
		// At the end of the name: a rest of the alternative that matches
		// nothing, but has a brace after its first character.
		run := len(s)
		for run > 0 && (s[run-1] == '*' || s[run-1] == '/') {
			run--
		}
		for q := max(run, len(s)-4); q < len(s); q++ {
			if !zeroLength(s[q:]) {
				continue
			}
			for _, o := range e.opens {
				if o > q {
					return nil, false
				}
			}
		}
		alts = append(alts, s)
	}
	slices.Sort(alts)
	return slices.Compact(alts), true
}

// zeroLength reports whether doublestar lets the rest of a pattern match
// the end of a name (its isZeroLengthPattern, without braces).
func zeroLength(rest string) bool {
	switch rest {
	case "", "*", "**", "/**", "**/", "/**/":
		return true
	}
	return false
}

// globMatcher matches paths against a globSet, caching the live states of
// every directory it has seen. It is not safe for concurrent use; make one
// per evaluation.
type globMatcher struct {
	g     *globSet
	dirs  map[string]*dirState // by directory path
	seen  []uint32             // per state: generation stamp, to dedupe sets
	gen   uint32
	pseen []uint32 // per pattern: generation stamp, to dedupe results
	pgen  uint32
	key   []byte  // scratch for intern
	buf   []int32 // scratch for step
}

// dirState is a set of live states after a directory: a state of the
// deterministic automaton. live, trans and last are never changed once
// built; def and next are guarded by globSet.mu.
type dirState struct {
	live  []int32
	trans transTable // to the next directory
	last  lastTable  // to the end of a path: the file's name
	def   *dirState  // trans.base interned: the segment matched nothing else
	next  map[string]*dirState
}

// transTable steps a set of live states over one directory segment.
type transTable struct {
	base  []int32  // live after any segment: what the "**" states keep
	names segTable // states whose segment matches the name; their successors become live
}

// lastTable answers "which patterns accept name as the last segment".
type lastTable struct {
	always []int    // a trailing ** matches whatever the name is
	names  segTable // states whose segment matches the name and then accept
	full   []int    // patterns checked with doublestar.Match on the whole path
}

// segTable finds the states whose one-segment glob matches a name, with a
// map lookup for literals and extensions and a prefix test for the rest.
type segTable struct {
	lit    map[string][]int32 // exact names
	dotSuf map[string][]int32 // "*.go" stored as ".go": looked up at every '.' of the name
	suffix []affix            // "*-ci" and other suffixes that do not start with '.'
	affix  []affix            // "Dockerfile*", "requirements*.txt"
	globs  []affix            // anything else: doublestar.Match on the segment
}

type affix struct {
	pre, suf string
	glob     string // for globs
	state    int32
}

func (t *segTable) add(seg string, s int32) {
	star := strings.IndexByte(seg, '*')
	switch {
	case !strings.ContainsAny(seg, "*?"):
		if t.lit == nil {
			t.lit = make(map[string][]int32)
		}
		t.lit[seg] = append(t.lit[seg], s)
	case strings.IndexByte(seg, '?') >= 0 || strings.Count(seg, "*") > 1:
		t.globs = append(t.globs, affix{glob: seg, state: s})
	case star == 0 && len(seg) > 1 && seg[1] == '.':
		if t.dotSuf == nil {
			t.dotSuf = make(map[string][]int32)
		}
		t.dotSuf[seg[1:]] = append(t.dotSuf[seg[1:]], s)
	case star == 0:
		t.suffix = append(t.suffix, affix{suf: seg[1:], state: s})
	default:
		t.affix = append(t.affix, affix{pre: seg[:star], suf: seg[star+1:], state: s})
	}
}

// each calls fn for every state whose segment matches name (a state may
// come more than once).
func (t *segTable) each(name string, fn func(int32)) {
	for _, s := range t.lit[name] {
		fn(s)
	}
	if t.dotSuf != nil {
		for i := 0; i < len(name); i++ {
			if name[i] == '.' {
				for _, s := range t.dotSuf[name[i:]] {
					fn(s)
				}
			}
		}
	}
	for _, a := range t.suffix {
		if strings.HasSuffix(name, a.suf) {
			fn(a.state)
		}
	}
	for _, a := range t.affix {
		if len(name) >= len(a.pre)+len(a.suf) && strings.HasPrefix(name, a.pre) && strings.HasSuffix(name, a.suf) {
			fn(a.state)
		}
	}
	for _, a := range t.globs {
		if ok, _ := doublestar.Match(a.glob, name); ok {
			fn(a.state)
		}
	}
}

func (g *globSet) matcher(paths int) *globMatcher {
	return &globMatcher{
		g:     g,
		dirs:  make(map[string]*dirState, paths/2),
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
	for _, id := range m.g.fallback {
		if ok, _ := doublestar.Match(m.g.patterns[id], path); ok {
			dst = m.found(dst, id)
		}
	}
	if len(m.g.states) == 0 {
		return dst
	}
	if path == "" || path[0] == '/' || path[len(path)-1] == '/' || strings.Contains(path, "//") || !utf8.ValidString(path) {
		// Empty segments or broken UTF-8: rare enough to ask doublestar itself.
		for id, p := range m.g.patterns {
			if ok, _ := doublestar.Match(p, path); ok {
				dst = m.found(dst, id)
			}
		}
		return dst
	}
	dir, name := "", path
	if i := strings.LastIndexByte(path, '/'); i >= 0 {
		dir, name = path[:i], path[i+1:]
	}
	d := m.dir(dir)
	if len(d.live) == 0 {
		return dst
	}
	t := &d.last
	for _, id := range t.always {
		dst = m.found(dst, id)
	}
	t.names.each(name, func(s int32) { dst = m.found(dst, m.g.states[s].pattern) })
	for _, id := range t.full {
		if m.pseen[id] != m.pgen {
			if ok, _ := doublestar.Match(m.g.patterns[id], path); ok {
				dst = m.found(dst, id)
			}
		}
	}
	return dst
}

// found appends pattern id to dst unless this path already has it.
func (m *globMatcher) found(dst []int, id int) []int {
	if m.pseen[id] != m.pgen {
		m.pseen[id] = m.pgen
		dst = append(dst, id)
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
		d = m.intern(m.closure(m.g.start))
	} else {
		parent, seg := "", dir
		if i := strings.LastIndexByte(dir, '/'); i >= 0 {
			parent, seg = dir[:i], dir[i+1:]
		}
		d = m.step(m.dir(parent), seg)
	}
	m.dirs[dir] = d
	return d
}

// step returns the state after directory segment seg below p.
func (m *globMatcher) step(p *dirState, seg string) *dirState {
	g := m.g
	g.mu.Lock()
	d, ok := p.next[seg]
	g.mu.Unlock()
	if ok {
		return d
	}
	t := &p.trans
	m.buf = m.buf[:0]
	t.names.each(seg, func(s int32) { m.buf = append(m.buf, s+1) })
	// base is sorted; add what the matched states reach beyond it.
	m.bump()
	for _, s := range t.base {
		m.seen[s] = m.gen
	}
	var extra []int32
	for _, s := range m.buf {
		for _, c := range g.states[s].closure {
			if m.seen[c] != m.gen && g.states[c].kind != segAccept {
				m.seen[c] = m.gen
				extra = append(extra, c)
			}
		}
	}
	if len(extra) == 0 {
		g.mu.Lock()
		d = p.def
		g.mu.Unlock()
		if d == nil {
			d = m.intern(slices.Clone(t.base))
			g.mu.Lock()
			p.def = d
			g.mu.Unlock()
		}
	} else {
		slices.Sort(extra)
		live := make([]int32, 0, len(t.base)+len(extra))
		i, j := 0, 0
		for i < len(t.base) || j < len(extra) {
			if j == len(extra) || (i < len(t.base) && t.base[i] < extra[j]) {
				live = append(live, t.base[i])
				i++
			} else {
				live = append(live, extra[j])
				j++
			}
		}
		d = m.intern(live)
	}
	g.mu.Lock()
	if g.steps < maxSharedSteps {
		if p.next == nil {
			p.next = make(map[string]*dirState)
		}
		if _, ok := p.next[seg]; !ok {
			// A copy: seg is part of an MR's path, which the
			// automaton must not keep alive.
			p.next[strings.Clone(seg)] = d
			g.steps++
		}
	}
	g.mu.Unlock()
	return d
}

// closure returns the states reachable from states without consuming a
// segment, each once, leaving out the accepting ones: a directory is never
// the end of a path.
func (m *globMatcher) closure(states []int32) []int32 {
	m.bump()
	var out []int32
	for _, s := range states {
		for _, c := range m.g.states[s].closure {
			if m.seen[c] != m.gen && m.g.states[c].kind != segAccept {
				m.seen[c] = m.gen
				out = append(out, c)
			}
		}
	}
	return out
}

// intern returns the one dirState for a set of live states, so that the
// many directories that leave the same states live share their tables
// and transitions: a lazily built deterministic automaton.
func (m *globMatcher) intern(live []int32) *dirState {
	if !slices.IsSorted(live) {
		slices.Sort(live)
	}
	m.key = m.key[:0]
	for _, s := range live {
		m.key = binary.LittleEndian.AppendUint32(m.key, uint32(s))
	}
	g := m.g
	g.mu.Lock()
	d, ok := g.shared[string(m.key)]
	g.mu.Unlock()
	if ok {
		return d
	}
	d = &dirState{live: live, trans: m.transTable(live), last: m.lastTable(live)}
	g.mu.Lock()
	defer g.mu.Unlock()
	if old, ok := g.shared[string(m.key)]; ok {
		return old // built meanwhile by another evaluation
	}
	if len(g.shared) < maxSharedSets {
		if g.shared == nil {
			g.shared = make(map[string]*dirState)
		}
		g.shared[string(m.key)] = d
	}
	return d
}

func (m *globMatcher) bump() {
	m.gen++
	if m.gen == 0 {
		clear(m.seen)
		m.gen = 1
	}
}

// transTable builds the transitions of a set of live states.
func (m *globMatcher) transTable(live []int32) transTable {
	var t transTable
	var any []int32
	for _, s := range live {
		switch st := &m.g.states[s]; st.kind {
		case segAny:
			any = append(any, s)
		case segLiteral, segGlob:
			if m.g.states[s+1].kind != segAccept {
				t.names.add(st.lit, s)
			}
		}
	}
	t.base = m.closure(any)
	slices.Sort(t.base)
	return t
}

// lastTable builds the last-segment table of a set of live states.
func (m *globMatcher) lastTable(live []int32) lastTable {
	var t lastTable
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
		case segLiteral, segGlob:
			if !accepts(s + 1) {
				continue
			}
			if st.kind == segGlob && strings.HasSuffix(st.lit, "*") && m.g.states[s+1].kind == segAny {
				// doublestar does not let "x*/**" match "x" itself though
				// "docs/**" matches "docs"; ask it about the whole path.
				t.full = append(t.full, st.pattern)
				continue
			}
			t.names.add(st.lit, s)
		}
	}
	return t
}
