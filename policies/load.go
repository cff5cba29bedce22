package policies

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"os"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/bmatcuk/doublestar/v4"
	"github.com/robfig/cron/v3"
	"go.yaml.in/yaml/v3"

	"github.com/threatgate/threatgate/internal/yamlnode"
)

// MaxPolicySize bounds a policy file; larger files are refused unread.
const MaxPolicySize = 4 << 20

// LoadFile reads and loads the policy in path. See Load.
func LoadFile(path string) (*Policy, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, &Problem{File: path, Msg: "cannot read the policy: " + pathErr(err)}
	}
	defer f.Close()
	var buf bytes.Buffer
	if _, err := buf.ReadFrom(&limitReader{r: f, n: MaxPolicySize + 1}); err != nil {
		return nil, &Problem{File: path, Msg: "cannot read the policy: " + pathErr(err)}
	}
	return Load(path, buf.Bytes())
}

// Load parses, validates and compiles a policy. file names the source in
// problems. Every mistake found is reported, each as a *Problem with its
// line and column, joined into one error (see Problems).
func Load(file string, data []byte) (*Policy, error) {
	l := &loader{file: file}
	if len(data) > MaxPolicySize {
		return nil, &Problem{File: file, Msg: fmt.Sprintf("the policy is larger than %d MiB", MaxPolicySize>>20)}
	}
	var doc yaml.Node
	if err := yaml.Unmarshal(data, &doc); err != nil {
		return nil, yamlProblem(file, err)
	}
	if doc.Kind == 0 || len(doc.Content) == 0 {
		return nil, &Problem{File: file, Line: 1, Col: 1, Msg: "the policy is empty; want a mapping with version, signals, tiers, groups and people"}
	}
	if n := overExpanded(&doc); n != nil {
		return nil, &Problem{File: file, Line: n.Line, Col: n.Column, Msg: fmt.Sprintf("aliases (*name) expand the policy by more than %d nodes or refer to themselves; write the repeated parts out", maxAliasExpansion)}
	}
	p := l.policy(doc.Content[0])
	if err := joinProblems(l.probs); err != nil {
		return nil, err
	}
	p.Source = file
	sum := sha256.Sum256(data)
	p.Digest = hex.EncodeToString(sum[:])
	return p, nil
}

// maxAliasExpansion bounds how many nodes aliases may add to a policy.
// The loader walks an alias every time it is used, so without a bound a
// small file of aliases to aliases would take hours and gigabytes to load.
const maxAliasExpansion = 100_000

// overExpanded returns the first alias that makes the document grow by
// more than maxAliasExpansion nodes, or that contains itself; nil when the
// document is within bounds.
func overExpanded(doc *yaml.Node) *yaml.Node {
	const inProgress = -1
	size := map[*yaml.Node]int{}
	added := 0
	var culprit *yaml.Node
	// count returns the number of nodes n stands for, aliases expanded,
	// and adds what aliases contribute to added.
	var count func(n *yaml.Node) int
	count = func(n *yaml.Node) int {
		if culprit != nil {
			return 0
		}
		if n.Kind == yaml.AliasNode {
			if n.Alias == nil {
				return 1
			}
			k, ok := size[n.Alias]
			if ok && k == inProgress {
				culprit = n
				return 0
			}
			if !ok {
				k = count(n.Alias)
			}
			added += k
			if added > maxAliasExpansion && culprit == nil {
				culprit = n
			}
			return k
		}
		if k, ok := size[n]; ok && k != inProgress {
			return k
		}
		size[n] = inProgress
		total := 1
		for _, c := range n.Content {
			total += count(c)
		}
		size[n] = total
		return total
	}
	count(doc)
	return culprit
}

type loader struct {
	file     string
	probs    []*Problem
	refs     []ref
	badEmail map[*Person]bool // people with an address already reported as malformed
}

// ref is a name that must be defined somewhere else in the policy; it is
// checked once everything is read.
type ref struct {
	n     *yaml.Node
	field string
	kind  string // "group", "signal", "person", "artifact"
	name  string
}

func (l *loader) fail(n *yaml.Node, field, format string, args ...any) {
	p := &Problem{File: l.file, Field: field, Msg: fmt.Sprintf(format, args...)}
	if n != nil {
		p.Line, p.Col = n.Line, n.Column
	}
	l.probs = append(l.probs, p)
}

func resolve(n *yaml.Node) *yaml.Node { return yamlnode.Resolve(n) }

func describe(n *yaml.Node) string { return yamlnode.Describe(n) }

// fields walks the mapping n, calling fn for each key in allowed order of
// appearance; unknown and duplicate keys are problems.
func (l *loader) fields(n *yaml.Node, field string, allowed []string, fn func(key string, v *yaml.Node, f string)) bool {
	n = resolve(n)
	if n.Kind != yaml.MappingNode {
		l.fail(n, field, "want a mapping with keys %s, got %s", strings.Join(allowed, ", "), describe(n))
		return false
	}
	yamlnode.Each(n, field, allowed, func(n *yaml.Node, field, msg string) { l.fail(n, field, "%s", msg) }, nil, fn)
	return true
}

func (l *loader) scalar(n *yaml.Node, f, want string) (*yaml.Node, bool) {
	n = resolve(n)
	if n.Kind != yaml.ScalarNode || n.Tag == "!!null" {
		l.fail(n, f, "want %s, got %s", want, describe(n))
		return n, false
	}
	return n, true
}

func (l *loader) str(n *yaml.Node, f string) string {
	n, ok := l.scalar(n, f, "a string")
	if !ok {
		return ""
	}
	return n.Value
}

// strs reads a list of strings; a single string is a list of one.
func (l *loader) strs(n *yaml.Node, f string) []string {
	n = resolve(n)
	if n.Kind == yaml.ScalarNode && n.Tag != "!!null" {
		return []string{n.Value}
	}
	if n.Kind != yaml.SequenceNode {
		l.fail(n, f, "want a list of strings, got %s", describe(n))
		return nil
	}
	out := make([]string, 0, len(n.Content))
	for i, c := range n.Content {
		if v, ok := l.scalar(c, fmt.Sprintf("%s[%d]", f, i), "a string"); ok {
			out = append(out, v.Value)
		}
	}
	return out
}

func (l *loader) num(n *yaml.Node, f string, min, max int) int {
	want := fmt.Sprintf("a whole number from %d to %d", min, max)
	if min == max {
		want = strconv.Itoa(min)
	}
	n, ok := l.scalar(n, f, want)
	if !ok {
		return 0
	}
	v, err := strconv.Atoi(n.Value)
	if err != nil || v < min || v > max {
		l.fail(n, f, "want %s, got %q", want, n.Value)
		return 0
	}
	return v
}

func (l *loader) flag(n *yaml.Node, f string) bool {
	n, ok := l.scalar(n, f, "true or false")
	if !ok {
		return false
	}
	switch n.Value {
	case "true", "True", "TRUE", "yes", "on":
		return true
	case "false", "False", "FALSE", "no", "off":
		return false
	}
	l.fail(n, f, "want true or false, got %q", n.Value)
	return false
}

func (l *loader) dur(n *yaml.Node, f string) time.Duration {
	n, ok := l.scalar(n, f, `a duration such as "48h" or "2d"`)
	if !ok {
		return 0
	}
	d, err := ParseDuration(n.Value)
	if err != nil || d <= 0 {
		l.fail(n, f, `want a positive duration such as "48h", "90m" or "2d", got %q`, n.Value)
		return 0
	}
	return d
}

// MinUpdateEvery is the shortest tiers[].update_every: status updates
// more often than this would be noise.
const MinUpdateEvery = time.Minute

// every reads tiers[].update_every: a duration of at least MinUpdateEvery,
// or 0 for none.
func (l *loader) every(n *yaml.Node, f string) time.Duration {
	n, ok := l.scalar(n, f, `a duration such as "24h" or "1d", or 0 for none`)
	if !ok {
		return 0
	}
	d, err := ParseDuration(n.Value)
	switch {
	case err != nil || d < 0:
		l.fail(n, f, `want a duration such as "24h", "90m" or "1d", or 0 for none, got %q`, n.Value)
		return 0
	case d > 0 && d < MinUpdateEvery:
		l.fail(n, f, `want at least 1m (or 0 for none), got %q`, n.Value)
		return 0
	}
	return d
}

// date reads a calendar day written YYYY-MM-DD as UTC midnight starting
// it.
func (l *loader) date(n *yaml.Node, f string) time.Time {
	n, ok := l.scalar(n, f, `a date such as "2026-12-24"`)
	if !ok {
		return time.Time{}
	}
	t, err := time.Parse(time.DateOnly, n.Value)
	if err != nil || t.Year() < 2000 {
		l.fail(n, f, `want a date from 2000 on as YYYY-MM-DD, such as "2026-12-24", got %q`, n.Value)
		return time.Time{}
	}
	return t
}

var idRE = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$`)

func (l *loader) id(n *yaml.Node, f string) string {
	s := l.str(n, f)
	if s != "" && !idRE.MatchString(s) {
		l.fail(resolve(n), f, "want an id of letters, digits, '-', '_' or '.' (at most 64), got %q", s)
		return ""
	}
	return s
}

func (l *loader) refer(n *yaml.Node, f, kind, name string) {
	l.refs = append(l.refs, ref{n: resolve(n), field: f, kind: kind, name: name})
}

// item returns the node of the i-th element of a list, for positions.
func item(n *yaml.Node, i int) *yaml.Node {
	n = resolve(n)
	if n.Kind == yaml.SequenceNode && i < len(n.Content) {
		return n.Content[i]
	}
	return n
}

func (l *loader) seq(n *yaml.Node, f string, fn func(i int, c *yaml.Node, f string)) {
	n = resolve(n)
	if n.Kind != yaml.SequenceNode {
		l.fail(n, f, "want a list, got %s", describe(n))
		return
	}
	for i, c := range n.Content {
		fn(i, c, fmt.Sprintf("%s[%d]", f, i))
	}
}

var topKeys = []string{"version", "intake", "artifacts", "signals", "tiers", "groups", "people", "caps", "authority", "schedule", "urgent_labels", "backlog"}

func (l *loader) policy(root *yaml.Node) *Policy {
	p := &Policy{
		Groups:   map[string]*Group{},
		Schedule: Schedule{Sweep: "@every 5m", Digest: "0 9 * * MON-FRI", Weekly: "0 9 * * MON", Timezone: "UTC", Location: time.UTC},
		Intake:   slices.Clone(DefaultIntake),
		paths:    &globSet{},
	}
	var signalsNode, tiersNode, peopleNode *yaml.Node
	ok := l.fields(root, "", topKeys, func(k string, v *yaml.Node, f string) {
		switch k {
		case "version":
			p.Version = l.num(v, f, 1, 1)
		case "intake":
			p.Intake = l.intake(v, f)
		case "artifacts":
			p.Artifacts = l.artifacts(v, f)
		case "signals":
			signalsNode = v
			p.Signals = l.signals(p, v, f)
		case "tiers":
			tiersNode = v
			p.Tiers = l.tiers(v, f)
		case "groups":
			l.groups(p, v, f)
		case "people":
			peopleNode = v
			p.People = l.people(v, f)
		case "caps":
			l.caps(p, v, f)
		case "authority":
			l.authority(p, v, f)
		case "schedule":
			l.schedule(p, v, f)
		case "urgent_labels":
			p.UrgentLabels = l.nonEmpty(v, f)
		case "backlog":
			l.backlog(p, v, f)
		}
	})
	if !ok {
		return p
	}
	if p.Version == 0 && !l.has(root, "version") {
		l.fail(root, "version", "missing; want version: 1")
	}
	if signalsNode == nil {
		l.fail(root, "signals", "missing; a policy needs at least one signal")
	}
	if tiersNode == nil {
		l.fail(root, "tiers", "missing; a policy needs at least one tier")
	}
	l.index(p)
	l.checkRefs(p)
	l.checkTiers(p, tiersNode)
	l.checkEmails(p, peopleNode)
	return p
}

func (l *loader) has(n *yaml.Node, key string) bool {
	n = resolve(n)
	for i := 0; i+1 < len(n.Content); i += 2 {
		if n.Content[i].Value == key {
			return true
		}
	}
	return false
}

// DefaultIntake is what a manual escalation must carry when the policy
// does not say otherwise.
var DefaultIntake = []IntakeField{
	{ID: "summary", Prompt: "Summarise the vulnerability or risk in one or two sentences."},
	{ID: "assets", Prompt: "Which systems, services or data are affected?"},
	{ID: "exploit", Prompt: "Describe a realistic exploit scenario: who could do what, and how."},
}

// BuiltinArtifacts is the artifact catalogue every policy starts with.
var BuiltinArtifacts = []ArtifactKind{
	{ID: "threat-model", Name: "Threat model (STRIDE)", Prompt: "Link a STRIDE threat model covering the changed components."},
	{ID: "data-flow-diagram", Name: "Data-flow diagram", Prompt: "Link a data-flow diagram showing trust boundaries the change crosses."},
	{ID: "impact-matrix", Name: "Impact matrix", Prompt: "Link an impact matrix: affected assets, likelihood and impact."},
	{ID: "test-evidence", Name: "Test evidence", Prompt: "Link security test evidence: tests, scans or a pentest note for this change."},
	{ID: "rollback-plan", Name: "Rollback plan", Prompt: "Describe or link how this change is rolled back safely."},
}

func (l *loader) intake(n *yaml.Node, f string) []IntakeField {
	var out []IntakeField
	seen := map[string]bool{}
	l.seq(n, f, func(i int, c *yaml.Node, f string) {
		var fld IntakeField
		l.fields(c, f, []string{"id", "prompt"}, func(k string, v *yaml.Node, f string) {
			switch k {
			case "id":
				fld.ID = l.id(v, f)
			case "prompt":
				fld.Prompt = l.str(v, f)
			}
		})
		switch {
		case fld.ID == "":
			l.fail(resolve(c), f+".id", "missing")
		case seen[fld.ID]:
			l.fail(resolve(c), f+".id", "duplicate intake field %q", fld.ID)
		default:
			if fld.Prompt == "" {
				fld.Prompt = "Please provide " + fld.ID + "."
			}
			seen[fld.ID] = true
			out = append(out, fld)
		}
	})
	return out
}

func (l *loader) artifacts(n *yaml.Node, f string) []ArtifactKind {
	var out []ArtifactKind
	l.seq(n, f, func(i int, c *yaml.Node, f string) {
		var a ArtifactKind
		l.fields(c, f, []string{"id", "name", "prompt"}, func(k string, v *yaml.Node, f string) {
			switch k {
			case "id":
				a.ID = l.id(v, f)
			case "name":
				a.Name = l.str(v, f)
			case "prompt":
				a.Prompt = l.str(v, f)
			}
		})
		if a.ID == "" {
			l.fail(resolve(c), f+".id", "missing")
			return
		}
		if slices.ContainsFunc(out, func(b ArtifactKind) bool { return b.ID == a.ID }) {
			l.fail(resolve(c), f+".id", "duplicate artifact kind %q", a.ID)
			return
		}
		out = append(out, a)
	})
	return out
}

var signalKeys = []string{"id", "category", "weight", "description", "when", "redact"}
var conditionKeys = []string{"paths", "labels", "target_branches", "projects", "title", "description", "added_lines", "min_changed_lines", "authors"}

func (l *loader) signals(p *Policy, n *yaml.Node, f string) []*Signal {
	var out []*Signal
	seen := map[string]bool{}
	l.seq(n, f, func(i int, c *yaml.Node, f string) {
		s := &Signal{}
		var when *yaml.Node
		isMap := l.fields(c, f, signalKeys, func(k string, v *yaml.Node, f string) {
			switch k {
			case "id":
				s.ID = l.id(v, f)
			case "category":
				s.Category = l.id(v, f)
			case "weight":
				s.Weight = l.num(v, f, 1, 1000)
			case "description":
				s.Description = l.str(v, f)
			case "redact":
				s.Redact = l.flag(v, f)
			case "when":
				when = v
				s.When = l.condition(p, v, f)
			}
		})
		c = resolve(c)
		if !isMap {
			return // already reported; what is missing would only repeat it
		}
		if s.ID == "" && !l.has(c, "id") {
			l.fail(c, f+".id", "missing")
		}
		if s.ID != "" && seen[s.ID] {
			l.fail(c, f+".id", "duplicate signal id %q", s.ID)
		}
		seen[s.ID] = true
		if s.Category == "" && !l.has(c, "category") {
			l.fail(c, f+".category", "missing; want a category such as access-control, cryptography, data-exposure, supply-chain, ci-cd, infrastructure or declared")
		}
		if !l.has(c, "weight") {
			l.fail(c, f+".weight", "missing; want a whole number from 1 to 1000")
		}
		if when == nil {
			l.fail(c, f+".when", "missing; a signal needs at least one condition (%s)", strings.Join(conditionKeys, ", "))
		} else if w := resolve(when); w.Kind == yaml.MappingNode && len(w.Content) == 0 {
			l.fail(w, f+".when", "empty; a signal needs at least one condition (%s)", strings.Join(conditionKeys, ", "))
		}
		out = append(out, s)
	})
	return out
}

func (l *loader) condition(p *Policy, n *yaml.Node, f string) Condition {
	var c Condition
	l.fields(n, f, conditionKeys, func(k string, v *yaml.Node, f string) {
		switch k {
		case "paths":
			c.Paths = l.globs(v, f)
			for _, g := range c.Paths {
				c.pathIDs = append(c.pathIDs, p.paths.add(g))
			}
		case "labels":
			c.Labels = l.nonEmpty(v, f)
		case "target_branches":
			c.TargetBranches = l.globs(v, f)
		case "projects":
			c.Projects = l.globs(v, f)
		case "title":
			c.Title, c.title = l.regexps(v, f)
		case "description":
			c.Description, c.desc = l.regexps(v, f)
		case "added_lines":
			c.AddedLines, c.added = l.regexps(v, f)
		case "min_changed_lines":
			c.MinChangedLines = l.num(v, f, 1, 10_000_000)
		case "authors":
			c.Authors = l.nonEmpty(v, f)
		}
	})
	return c
}

func (l *loader) nonEmpty(n *yaml.Node, f string) []string {
	ss := l.strs(n, f)
	out := ss[:0]
	for i, s := range ss {
		if strings.TrimSpace(s) == "" {
			l.fail(item(n, i), fmt.Sprintf("%s[%d]", f, i), "empty; want a name")
			continue
		}
		out = append(out, s)
	}
	if len(ss) == 0 && isList(n) {
		l.fail(resolve(n), f, "empty list; remove the key or name at least one value")
	}
	return out
}

// isList reports whether n is a YAML list. strs has already reported
// anything else, so "empty list" is said only of a real one.
func isList(n *yaml.Node) bool { return resolve(n).Kind == yaml.SequenceNode }

func (l *loader) globs(n *yaml.Node, f string) []string {
	ss := l.strs(n, f)
	var out []string
	for i, s := range ss {
		if s == "" || !doublestar.ValidatePattern(s) {
			l.fail(item(n, i), fmt.Sprintf("%s[%d]", f, i), "bad glob %q; want a pattern such as \"src/**/auth/*.go\" with balanced [] and {}", s)
			continue
		}
		out = append(out, s)
	}
	if len(ss) == 0 && isList(n) {
		l.fail(resolve(n), f, "empty list; remove the key or give at least one pattern")
	}
	return out
}

func (l *loader) regexps(n *yaml.Node, f string) ([]string, []*regexp.Regexp) {
	ss := l.strs(n, f)
	var src []string
	var res []*regexp.Regexp
	for i, s := range ss {
		re, err := regexp.Compile(s)
		if err != nil {
			msg := err.Error()
			msg = strings.TrimPrefix(msg, "error parsing regexp: ")
			l.fail(item(n, i), fmt.Sprintf("%s[%d]", f, i), "bad regular expression: %s", msg)
			continue
		}
		src = append(src, s)
		res = append(res, re)
	}
	if len(ss) == 0 && isList(n) {
		l.fail(resolve(n), f, "empty list; remove the key or give at least one regular expression")
	}
	return src, res
}

var tierKeys = []string{"id", "name", "description", "when", "artifacts", "approvals", "review", "inform",
	"first_response", "decision", "urgent_decision", "handoff_after", "page_on_lapse",
	"reset_approvals_on_push", "checklist", "max_residual_risk", "deferrable", "controls", "update_every"}

// Tier defaults, documented in docs/POLICY.md.
const (
	DefaultFirstResponse = 24 * time.Hour
	DefaultDecision      = 72 * time.Hour
)

func (l *loader) tiers(n *yaml.Node, f string) []*Tier {
	var out []*Tier
	seen := map[string]bool{}
	l.seq(n, f, func(i int, c *yaml.Node, f string) {
		t := &Tier{ResetApprovalsOnPush: true, rank: len(out)}
		set := map[string]*yaml.Node{}
		isMap := l.fields(c, f, tierKeys, func(k string, v *yaml.Node, f string) {
			set[k] = v
			switch k {
			case "id":
				t.ID = l.id(v, f)
			case "name", "description":
				s := l.str(v, f)
				if k == "name" {
					t.Name = s
				}
			case "when":
				l.fields(v, f, []string{"min_score", "any_signals"}, func(k string, v *yaml.Node, f string) {
					switch k {
					case "min_score":
						t.When.MinScore = l.num(v, f, 1, 1_000_000)
					case "any_signals":
						t.When.AnySignals = l.nonEmpty(v, f)
						for j, s := range t.When.AnySignals {
							l.refer(item(v, j), fmt.Sprintf("%s[%d]", f, j), "signal", s)
						}
					}
				})
			case "artifacts":
				t.Artifacts = l.strs(v, f)
				for j, a := range t.Artifacts {
					l.refer(item(v, j), fmt.Sprintf("%s[%d]", f, j), "artifact", a)
				}
			case "approvals":
				l.seq(v, f, func(j int, c *yaml.Node, f string) {
					a := Approval{Count: 1, Role: "approver"}
					l.fields(c, f, []string{"group", "count", "role"}, func(k string, v *yaml.Node, f string) {
						switch k {
						case "group":
							a.Group = l.str(v, f)
							if a.Group != "" {
								l.refer(v, f, "group", a.Group)
							}
						case "count":
							a.Count = l.num(v, f, 1, 50)
						case "role":
							a.Role = l.id(v, f)
						}
					})
					if a.Group == "" && !l.has(resolve(c), "group") {
						l.fail(resolve(c), f+".group", "missing; name the group that approves")
					}
					t.Approvals = append(t.Approvals, a)
				})
			case "review", "inform":
				gs := l.strs(v, f)
				for j, g := range gs {
					l.refer(item(v, j), fmt.Sprintf("%s[%d]", f, j), "group", g)
				}
				if k == "review" {
					t.Review = gs
				} else {
					t.Inform = gs
				}
			case "first_response":
				t.FirstResponse = l.dur(v, f)
			case "decision":
				t.Decision = l.dur(v, f)
			case "urgent_decision":
				t.UrgentDecision = l.dur(v, f)
			case "handoff_after":
				t.HandoffAfter = l.dur(v, f)
			case "page_on_lapse":
				t.PageOnLapse = l.flag(v, f)
			case "reset_approvals_on_push":
				t.ResetApprovalsOnPush = l.flag(v, f)
			case "checklist":
				t.Checklist = l.strs(v, f)
				for j, s := range t.Checklist {
					if !idRE.MatchString(s) {
						l.fail(item(v, j), fmt.Sprintf("%s[%d]", f, j), "want a checklist item id such as data-sensitivity, got %q", s)
					}
				}
			case "max_residual_risk":
				t.MaxResidualRisk = l.num(v, f, 1, 25)
			case "deferrable":
				t.Deferrable = l.flag(v, f)
			case "controls":
				t.Controls = l.strs(v, f)
			case "update_every":
				t.UpdateEvery = l.every(v, f)
			}
		})
		c = resolve(c)
		if !isMap {
			// Already reported. The tier still takes its place so that
			// ranks and positions of the tiers after it stay right.
			out = append(out, t)
			return
		}
		switch {
		case t.ID == "" && set["id"] == nil:
			l.fail(c, f+".id", "missing")
		case t.ID != "" && seen[t.ID]:
			l.fail(set["id"], f+".id", "duplicate tier id %q", t.ID)
		}
		seen[t.ID] = true
		if t.Name == "" {
			t.Name = t.ID
		}
		if set["when"] == nil {
			l.fail(c, f+".when", "missing; want min_score and/or any_signals")
		} else if w := resolve(set["when"]); w.Kind == yaml.MappingNode && t.When.MinScore == 0 && len(t.When.AnySignals) == 0 && !l.has(w, "min_score") && !l.has(w, "any_signals") {
			l.fail(resolve(set["when"]), f+".when", "empty; want min_score and/or any_signals")
		}
		if len(t.Approvals) == 0 && set["approvals"] == nil {
			l.fail(c, f+".approvals", "missing; a tier needs at least one approval row such as {group: appsec, count: 1}")
		} else if a := resolve(set["approvals"]); a != nil && a.Kind == yaml.SequenceNode && len(a.Content) == 0 {
			l.fail(a, f+".approvals", "empty; a tier needs at least one approval row such as {group: appsec, count: 1}")
		}
		if t.Decision == 0 && set["decision"] == nil {
			t.Decision = DefaultDecision
		}
		if t.FirstResponse == 0 && set["first_response"] == nil {
			// A tier that must be decided sooner than the default first
			// response is answered within its decision time.
			t.FirstResponse = DefaultFirstResponse
			if t.Decision > 0 && t.Decision < t.FirstResponse {
				t.FirstResponse = t.Decision
			}
		}
		if t.UrgentDecision == 0 && set["urgent_decision"] == nil {
			t.UrgentDecision = t.Decision / 4
		}
		if t.HandoffAfter == 0 && set["handoff_after"] == nil {
			t.HandoffAfter = t.FirstResponse
		}
		if t.Decision > 0 && t.FirstResponse > t.Decision {
			l.fail(set["first_response"], f+".first_response", "%s is longer than decision %s", t.FirstResponse, t.Decision)
		}
		if t.Decision > 0 && t.UrgentDecision > t.Decision {
			l.fail(set["urgent_decision"], f+".urgent_decision", "%s is longer than decision %s; urgent should be faster", t.UrgentDecision, t.Decision)
		}
		out = append(out, t)
	})
	return out
}

func (l *loader) groups(p *Policy, n *yaml.Node, f string) {
	n = resolve(n)
	if n.Kind != yaml.MappingNode {
		l.fail(n, f, "want a mapping of group name to {members, backups}, got %s", describe(n))
		return
	}
	for i := 0; i+1 < len(n.Content); i += 2 {
		k, v := n.Content[i], n.Content[i+1]
		gf := f + "." + k.Value
		if !idRE.MatchString(k.Value) {
			l.fail(k, gf, "want a group name of letters, digits, '-', '_' or '.', got %q", k.Value)
			continue
		}
		if p.Groups[k.Value] != nil {
			l.fail(k, gf, "duplicate group %q", k.Value)
			continue
		}
		g := &Group{ID: k.Value}
		isMap := l.fields(v, gf, []string{"members", "backups", "description", "slack_channel"}, func(key string, v *yaml.Node, f string) {
			switch key {
			case "slack_channel":
				g.SlackChannel = l.str(v, f)
				if !SlackChannelID(g.SlackChannel) {
					l.fail(v, f, "want a Slack channel id such as C0123ABCD (channel details, at the bottom), got %q", g.SlackChannel)
				}
			case "members":
				g.Members = l.strs(v, f)
				for j, m := range g.Members {
					l.refer(item(v, j), fmt.Sprintf("%s[%d]", f, j), "person", m)
				}
			case "backups":
				g.Backups = l.strs(v, f)
				for j, b := range g.Backups {
					l.refer(item(v, j), fmt.Sprintf("%s[%d]", f, j), "group", b)
					if b == g.ID {
						l.fail(item(v, j), fmt.Sprintf("%s[%d]", f, j), "a group cannot be its own backup")
					}
				}
			case "description":
				l.str(v, f)
			}
		})
		if len(g.Members) == 0 && isMap {
			l.fail(k, gf+".members", "missing or empty; a group needs at least one member")
		}
		p.Groups[g.ID] = g
	}
}

var personKeys = []string{"id", "name", "gitlab", "gitlab_id", "slack", "discord", "email", "emails", "timezone", "hours", "away_until"}

// emailRE is a plausible e-mail address: something@domain, no spaces.
var emailRE = regexp.MustCompile(`^[^\s@]+@[^\s@]+$`)

var hoursRE = regexp.MustCompile(`^([01]\d|2[0-3]):([0-5]\d)-([01]\d|2[0-4]):([0-5]\d)$`)

func (l *loader) people(n *yaml.Node, f string) []*Person {
	var out []*Person
	owner := map[string]string{} // "slack:U1" -> the person it was first given to
	l.seq(n, f, func(i int, c *yaml.Node, f string) {
		pr := &Person{}
		set := map[string]*yaml.Node{}
		isMap := l.fields(c, f, personKeys, func(k string, v *yaml.Node, f string) {
			set[k] = v
			switch k {
			case "id":
				pr.ID = l.id(v, f)
			case "name":
				pr.Name = l.str(v, f)
			case "gitlab":
				pr.GitLab = l.str(v, f)
			case "slack":
				pr.Slack = l.str(v, f)
				if pr.Slack != "" && !SlackUserID(pr.Slack) {
					l.fail(v, f, "want the person's Slack member id, such as U0123ABCD (their profile, ⋮ menu, Copy member ID), got %q", pr.Slack)
				}
			case "discord":
				pr.Discord = l.str(v, f)
			case "gitlab_id":
				pr.GitLabID = int64(l.num(v, f, 1, 1<<31-1))
			case "email", "emails":
				for j, e := range l.strs(v, f) {
					ef := f
					if k == "emails" {
						ef = fmt.Sprintf("%s[%d]", f, j)
					}
					e = strings.TrimSpace(e)
					if !emailRE.MatchString(e) {
						l.fail(resolve(item(v, j)), ef, "want an e-mail address such as alice@example.com, got %q", e)
						if l.badEmail == nil {
							l.badEmail = map[*Person]bool{}
						}
						l.badEmail[pr] = true
						continue
					}
					if !slices.ContainsFunc(pr.Emails, func(x string) bool { return strings.EqualFold(x, e) }) {
						pr.Emails = append(pr.Emails, e)
					}
				}
				if len(pr.Emails) > 0 {
					pr.Email = pr.Emails[0]
				}
			case "timezone":
				pr.Timezone = l.str(v, f)
				if pr.Timezone != "" {
					loc, err := time.LoadLocation(pr.Timezone)
					if err != nil {
						l.fail(resolve(v), f, "unknown time zone %q; want an IANA name such as Europe/Berlin", pr.Timezone)
					}
					pr.Location = loc
				}
			case "hours":
				pr.Hours = l.str(v, f)
				if m := hoursRE.FindStringSubmatch(pr.Hours); m == nil || m[1]+m[2] >= m[3]+m[4] || m[3] == "24" && m[4] != "00" {
					l.fail(resolve(v), f, `want working hours such as "09:00-17:00" (start before end), got %q`, pr.Hours)
				}
			case "away_until":
				pr.AwayUntil = l.date(v, f)
			}
		})
		if !isMap {
			return // already reported
		}
		if pr.ID == "" {
			pr.ID = pr.GitLab
		}
		if pr.ID == "" {
			l.fail(resolve(c), f, "a person needs an id or a gitlab username")
			return
		}
		// Each identity names one person; a second claim is a mistake
		// reported where it is written (the id, when it defaults to gitlab,
		// is reported at the gitlab key).
		var reported *yaml.Node
		for _, k := range [][2]string{{"id", pr.ID}, {"gitlab", pr.GitLab}, {"slack", pr.Slack}, {"discord", pr.Discord}} {
			if k[1] == "" {
				continue
			}
			key := k[0] + ":" + k[1]
			if other, dup := owner[key]; dup {
				at := set[k[0]]
				if at == nil {
					at = set["gitlab"]
				}
				if at != reported {
					l.fail(resolve(at), f+"."+k[0], "%s %q is already given to %s", k[0], k[1], other)
				}
				reported = at
				continue
			}
			owner[key] = pr.ID
		}
		for _, e := range pr.Emails {
			key := "email:" + strings.ToLower(e)
			if other, dup := owner[key]; dup && other != pr.ID {
				at := set["emails"]
				if at == nil {
					at = set["email"]
				}
				l.fail(resolve(at), f+".emails", "e-mail %q is already given to %s", e, other)
				continue
			}
			owner[key] = pr.ID
		}
		if pr.GitLabID != 0 {
			key := fmt.Sprintf("gitlab_id:%d", pr.GitLabID)
			if other, dup := owner[key]; dup {
				l.fail(resolve(set["gitlab_id"]), f+".gitlab_id", "gitlab_id %d is already given to %s", pr.GitLabID, other)
			} else {
				owner[key] = pr.ID
			}
			if pr.GitLab == "" {
				l.fail(resolve(set["gitlab_id"]), f+".gitlab", "missing; gitlab_id pins the numeric id of a gitlab username, so give the username too")
			}
		}
		if pr.Location == nil {
			pr.Location = time.UTC
			if pr.Timezone == "" {
				pr.Timezone = "UTC"
			}
		}
		if pr.Hours == "" {
			pr.Hours = "09:00-17:00"
		}
		out = append(out, pr)
	})
	return out
}

func (l *loader) caps(p *Policy, n *yaml.Node, f string) {
	l.fields(n, f, []string{"manual_escalations_per_quarter", "override_group"}, func(k string, v *yaml.Node, f string) {
		switch k {
		case "manual_escalations_per_quarter":
			p.Caps.ManualPerQuarter = l.num(v, f, 0, 1000)
		case "override_group":
			p.Caps.OverrideGroup = l.str(v, f)
			if p.Caps.OverrideGroup != "" {
				l.refer(v, f, "group", p.Caps.OverrideGroup)
			}
		}
	})
	if p.Caps.ManualPerQuarter > 0 && p.Caps.OverrideGroup == "" && !l.has(n, "override_group") {
		l.fail(resolve(n), f+".override_group", "missing; name the group that may lift the cap")
	}
}

// DeferralLimit is how far threatgate ever defers an escalation, whatever
// the policy says; backlog.max_deferral may only be shorter.
const DeferralLimit = 90 * 24 * time.Hour

func (l *loader) backlog(p *Policy, n *yaml.Node, f string) {
	l.fields(n, f, []string{"peak_open_threshold", "max_deferral"}, func(k string, v *yaml.Node, f string) {
		switch k {
		case "peak_open_threshold":
			p.Backlog.PeakOpenThreshold = l.num(v, f, 0, 1_000_000)
		case "max_deferral":
			p.Backlog.MaxDeferral = l.dur(v, f)
			if p.Backlog.MaxDeferral > DeferralLimit {
				l.fail(resolve(v), f, "%s is longer than the 90d threatgate ever defers; want at most 90d", FormatDuration(p.Backlog.MaxDeferral))
				p.Backlog.MaxDeferral = 0
			}
		}
	})
}

func (l *loader) authority(p *Policy, n *yaml.Node, f string) {
	l.fields(n, f, []string{"retier", "arbiter", "risk_validators"}, func(k string, v *yaml.Node, f string) {
		gs := l.strs(v, f)
		for j, g := range gs {
			l.refer(item(v, j), fmt.Sprintf("%s[%d]", f, j), "group", g)
		}
		switch k {
		case "retier":
			p.Authority.Retier = gs
		case "arbiter":
			p.Authority.Arbiter = gs
		case "risk_validators":
			p.Authority.RiskValidators = gs
		}
	})
}

func (l *loader) schedule(p *Policy, n *yaml.Node, f string) {
	weekly := ""
	l.fields(n, f, []string{"sweep", "digest", "weekly", "report", "timezone"}, func(k string, v *yaml.Node, f string) {
		s := l.str(v, f)
		if k == "timezone" {
			loc, err := time.LoadLocation(s)
			if err != nil || s == "" {
				l.fail(resolve(v), f, "unknown time zone %q; want an IANA name such as UTC or Europe/Berlin", s)
				return
			}
			p.Schedule.Timezone, p.Schedule.Location = s, loc
			return
		}
		if s == "" {
			return
		}
		if err := parseCron(s); err != nil {
			l.fail(resolve(v), f, `bad schedule %q: %v; want a cron spec such as "0 9 * * MON-FRI" or "@every 5m"`, s, err)
			return
		}
		switch k {
		case "sweep":
			p.Schedule.Sweep = s
		case "digest":
			p.Schedule.Digest = s
		case "weekly", "report":
			// report is another name for weekly (the weekly report).
			if weekly != "" {
				l.fail(resolve(v), f, "set the weekly report's schedule once: %s is already set; weekly and report are the same job", weekly)
				return
			}
			weekly = f
			p.Schedule.Weekly = s
		}
	})
}

// index builds the lookup maps once the lists are read.
func (l *loader) index(p *Policy) {
	p.signalByID = map[string]*Signal{}
	p.redactRE = nil
	for _, s := range p.Signals {
		if s.ID != "" {
			p.signalByID[s.ID] = s
		}
		if s.Redact {
			p.redactRE = append(p.redactRE, s.When.added...)
			p.redactRE = append(p.redactRE, s.When.title...)
			p.redactRE = append(p.redactRE, s.When.desc...)
		}
	}
	p.tierByID = map[string]*Tier{}
	for _, t := range p.Tiers {
		if t.ID != "" {
			p.tierByID[t.ID] = t
		}
	}
	own := p.Artifacts
	p.Artifacts = nil
	p.artByID = map[string]ArtifactKind{}
	for _, a := range append(slices.Clone(BuiltinArtifacts), own...) {
		if old, ok := p.artByID[a.ID]; ok {
			// The policy's own entry overrides a built-in one.
			if a.Name == "" {
				a.Name = old.Name
			}
			if a.Prompt == "" {
				a.Prompt = old.Prompt
			}
			i := slices.IndexFunc(p.Artifacts, func(b ArtifactKind) bool { return b.ID == a.ID })
			p.Artifacts[i] = a
		} else {
			if a.Name == "" {
				a.Name = a.ID
			}
			if a.Prompt == "" {
				a.Prompt = "Link or describe the " + a.Name + "."
			}
			p.Artifacts = append(p.Artifacts, a)
		}
		p.artByID[a.ID] = a
	}
	p.personBy = map[string]*Person{}
	for _, pr := range p.People {
		for _, k := range [][2]string{{"id", pr.ID}, {"gitlab", pr.GitLab}, {"slack", pr.Slack}, {"discord", pr.Discord}} {
			if k[1] == "" {
				continue
			}
			key := k[0] + ":" + k[1]
			if _, dup := p.personBy[key]; dup {
				continue // reported by people
			}
			p.personBy[key] = pr
		}
		for _, e := range pr.Emails {
			if key := "email:" + strings.ToLower(e); p.personBy[key] == nil {
				p.personBy[key] = pr
			}
		}
	}
}

func (l *loader) checkRefs(p *Policy) {
	for _, r := range l.refs {
		var ok bool
		var known []string
		switch r.kind {
		case "group":
			_, ok = p.Groups[r.name]
			for g := range p.Groups {
				known = append(known, g)
			}
		case "signal":
			ok = p.signalByID[r.name] != nil
			for _, s := range p.Signals {
				known = append(known, s.ID)
			}
		case "person":
			ok = p.personBy["id:"+r.name] != nil
			for _, pr := range p.People {
				known = append(known, pr.ID)
			}
		case "artifact":
			_, ok = p.artByID[r.name]
			for _, a := range p.Artifacts {
				known = append(known, a.ID)
			}
		}
		if !ok {
			slices.Sort(known)
			hint := "none are defined"
			if len(known) > 0 {
				hint = "want one of " + strings.Join(known, ", ")
				if len(known) > 12 {
					hint = "want one of " + strings.Join(known[:12], ", ") + ", ..."
				}
			}
			where := map[string]string{"group": "groups", "signal": "signals", "person": "people", "artifact": "artifacts"}[r.kind]
			l.fail(r.n, r.field, "undefined %s %q (not in %s); %s", r.kind, r.name, where, hint)
		}
	}
}

// checkTiers reports tiers that can never match or never be approved.
func (l *loader) checkTiers(p *Policy, tiersNode *yaml.Node) {
	if tiersNode != nil && len(p.Tiers) == 0 && resolve(tiersNode).Kind == yaml.SequenceNode {
		l.fail(resolve(tiersNode), "tiers", "empty; a policy needs at least one tier")
	}
	// A signal whose weight is wrong counts 0 here; its problem is
	// reported already, and the sum would only add a misleading one.
	maxScore, weightsOK := 0, true
	for _, s := range p.Signals {
		maxScore += s.Weight
		weightsOK = weightsOK && s.Weight > 0
	}
	for i, t := range p.Tiers {
		f := fmt.Sprintf("tiers[%d]", i)
		pos := item(tiersNode, i)
		if pos == nil {
			continue
		}
		if t.When.MinScore > maxScore && len(p.Signals) > 0 && weightsOK {
			l.fail(child(child(pos, "when"), "min_score"), f+".when.min_score", "tier %s can never match: min_score %d is above %d, the score of every signal firing at once", t.ID, t.When.MinScore, maxScore)
		}
		for j := 0; j < i; j++ {
			u := p.Tiers[j]
			if u.When.MinScore == 0 && len(u.When.AnySignals) == 0 {
				continue // already reported as empty
			}
			if u.When.MinScore <= t.When.MinScore && (len(u.When.AnySignals) == 0 || len(t.When.AnySignals) > 0 && subset(t.When.AnySignals, u.When.AnySignals)) {
				l.fail(child(pos, "when"), f+".when", "tier %s can never match: tier %s above it matches every MR that %s would (tiers are tried in order, highest first)", t.ID, u.ID, t.ID)
				break
			}
		}
		for j, a := range t.Approvals {
			g := p.Groups[a.Group]
			if g == nil || len(g.Members) == 0 {
				continue // reported as undefined or empty
			}
			people := map[string]bool{}
			for _, m := range g.Members {
				people[m] = true
			}
			for _, b := range g.Backups {
				if bg := p.Groups[b]; bg != nil {
					for _, m := range bg.Members {
						people[m] = true
					}
				}
			}
			if a.Count > len(people) {
				row := item(child(pos, "approvals"), j)
				l.fail(child(row, "count"), fmt.Sprintf("%s.approvals[%d].count", f, j), "tier %s can never be approved: it needs %d approvals from %s, which has %d people with its backups", t.ID, a.Count, a.Group, len(people))
			}
		}
	}
}

// child returns the value of key in the mapping n, or n itself when there
// is none, so that a problem points as close to its cause as it can.
func child(n *yaml.Node, key string) *yaml.Node {
	r := resolve(n)
	if r == nil || r.Kind != yaml.MappingNode {
		return n
	}
	for i := 0; i+1 < len(r.Content); i += 2 {
		if r.Content[i].Value == key {
			return resolve(r.Content[i+1])
		}
	}
	return n
}

func subset(a, b []string) bool {
	for _, x := range a {
		if !slices.Contains(b, x) {
			return false
		}
	}
	return true
}

// parseCron checks a cron spec. robfig/cron panics on some malformed
// specs (such as "TZ=UTC" with nothing after it); that is a bad spec too.
func parseCron(spec string) (err error) {
	defer func() {
		if r := recover(); r != nil {
			err = fmt.Errorf("cannot parse it")
		}
	}()
	_, err = cron.ParseStandard(spec)
	return err
}

// ParseDuration parses a Go duration ("90m", "48h") or a whole number of
// days or weeks ("2d", "1w").
func ParseDuration(s string) (time.Duration, error) {
	if n := len(s); n > 1 && (s[n-1] == 'd' || s[n-1] == 'w') {
		v, err := strconv.Atoi(s[:n-1])
		if err != nil || v < 0 || v > 3650 {
			return 0, fmt.Errorf("bad duration %q", s)
		}
		d := time.Duration(v) * 24 * time.Hour
		if s[n-1] == 'w' {
			d *= 7
		}
		return d, nil
	}
	return time.ParseDuration(s)
}

// FormatDuration writes d as ParseDuration reads it, as short as it can:
// "2w", "3d", "8h", "90m", "1h30m".
func FormatDuration(d time.Duration) string {
	const day, week = 24 * time.Hour, 7 * 24 * time.Hour
	switch {
	case d > 0 && d%week == 0 && d/week <= 3650:
		return strconv.FormatInt(int64(d/week), 10) + "w"
	case d > 0 && d%day == 0 && d/day <= 3650:
		return strconv.FormatInt(int64(d/day), 10) + "d"
	}
	s := d.String()
	if t, ok := strings.CutSuffix(s, "m0s"); ok {
		s = t + "m"
	}
	if t, ok := strings.CutSuffix(s, "h0m"); ok {
		s = t + "h"
	}
	return s
}

// yamlProblem turns a YAML syntax error into a Problem with its line.
func yamlProblem(file string, err error) *Problem {
	msg := err.Error()
	msg = strings.TrimPrefix(msg, "yaml: ")
	line := 0
	if strings.HasPrefix(msg, "line ") {
		rest := msg[len("line "):]
		if i := strings.IndexByte(rest, ':'); i > 0 {
			if n, err := strconv.Atoi(rest[:i]); err == nil {
				line = n
				msg = strings.TrimSpace(rest[i+1:])
			}
		}
	}
	p := &Problem{File: file, Line: line, Msg: "not valid YAML: " + msg}
	if line > 0 {
		p.Col = 1
	}
	return p
}

type limitReader struct {
	r interface{ Read([]byte) (int, error) }
	n int64
}

func (l *limitReader) Read(b []byte) (int, error) {
	if l.n <= 0 {
		return 0, fmt.Errorf("file is larger than %d MiB", MaxPolicySize>>20)
	}
	if int64(len(b)) > l.n {
		b = b[:l.n]
	}
	n, err := l.r.Read(b)
	l.n -= int64(n)
	return n, err
}

// pathErr drops the path from an *os.PathError, which the Problem already names.
func pathErr(err error) string {
	if pe, ok := err.(*os.PathError); ok {
		return pe.Err.Error()
	}
	return err.Error()
}

// checkEmails fails closed on people whose own commits could not be
// recognised: everyone who may approve (a member of a group in some tier's
// approvals matrix, or of one of its backups), arbitrate, re-tier or
// withdraw needs at least one e-mail address, because GitLab names the
// authors of commits only by e-mail. Without one, such a person could
// approve code they wrote.
func (l *loader) checkEmails(p *Policy, peopleNode *yaml.Node) {
	powerful := map[string]string{} // group -> why it matters
	for _, t := range p.Tiers {
		for _, a := range t.Approvals {
			if _, ok := powerful[a.Group]; !ok {
				powerful[a.Group] = "approves tier " + t.ID
			}
			if g := p.Groups[a.Group]; g != nil {
				for _, b := range g.Backups {
					if _, ok := powerful[b]; !ok {
						powerful[b] = "stands in for " + a.Group
					}
				}
			}
		}
	}
	for _, g := range p.Authority.Retier {
		if _, ok := powerful[g]; !ok {
			powerful[g] = "may re-tier and withdraw"
		}
	}
	for _, g := range p.Authority.Arbiter {
		if _, ok := powerful[g]; !ok {
			powerful[g] = "arbitrates disputes"
		}
	}
	for _, g := range p.Authority.RiskValidators {
		if _, ok := powerful[g]; !ok {
			powerful[g] = "validates residual risk"
		}
	}
	groups := make([]string, 0, len(powerful))
	for g := range powerful {
		groups = append(groups, g)
	}
	slices.Sort(groups)
	reported := map[string]bool{}
	for _, g := range groups {
		grp := p.Groups[g]
		if grp == nil {
			continue
		}
		for _, m := range grp.Members {
			pr := p.personBy["id:"+m]
			if pr == nil || len(pr.Emails) > 0 || reported[m] || l.badEmail[pr] {
				continue
			}
			reported[m] = true
			i := slices.Index(p.People, pr)
			l.fail(item(peopleNode, i), fmt.Sprintf("people[%d].emails", i),
				"%s is in group %s, which %s, but has no e-mail address: threatgate could not tell the commits %s wrote and would count their approval of them; add emails: [%s@...] (every address %s commits with)",
				m, g, powerful[g], m, m, m)
		}
	}
}
