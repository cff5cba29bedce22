package bot

import (
	"maps"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"

	"github.com/threatgate/threatgate/policies"
)

// Verb names a command.
type Verb string

// The verbs. Each is typed as /threatgate <verb>; escalate and approve
// also have their own slash commands, /escalate and /approve.
const (
	VerbEscalate    Verb = "escalate"     // ask for a security review of a merge request
	VerbApprove     Verb = "approve"      // approve, answering the checklist
	VerbHelp        Verb = "help"         // show usage
	VerbStatus      Verb = "status"       // show where an escalation stands
	VerbBacklog     Verb = "backlog"      // list open escalations
	VerbIntake      Verb = "intake"       // answer a manual escalation's intake fields
	VerbReject      Verb = "reject"       // reject, with a rationale
	VerbDissent     Verb = "dissent"      // record a dissenting note
	VerbArtifact    Verb = "artifact"     // attach an artifact such as a threat model
	VerbDefer       Verb = "defer"        // defer until a date or for a while
	VerbAction      Verb = "action"       // record a follow-up action item
	VerbDone        Verb = "done"         // close an action item
	VerbAway        Verb = "away"         // say you are away until a date, or back
	VerbRisk        Verb = "risk"         // record the residual risk
	VerbRetier      Verb = "retier"       // move to another tier
	VerbWithdraw    Verb = "withdraw"     // withdraw the escalation
	VerbOverrideCap Verb = "override-cap" // grant a person extra manual escalations

	VerbIncident      Verb = "incident"       // record a security defect traced to a merged MR
	VerbIncidentFixed Verb = "incident-fixed" // record that an incident was remediated
)

// MRRef names a merge request: "group/sub/proj!12" or its web URL.
type MRRef struct {
	Project string // path_with_namespace, "group/sub/proj"
	IID     int64
	URL     string // the URL as given, "" for the short form
}

// Command is one parsed chat command. Which fields are set depends on
// Verb; the others are zero. ParseCommand(c.String()) gives c back for
// every c that ParseCommand returned.
type Command struct {
	Verb       Verb
	Escalation string            // "ESC-12" when given (normalised to upper case), else ""
	MR         MRRef             // escalate, incident: the merge request
	FixedBy    MRRef             // incident --fixed-by: the merge request that fixes it, zero for none
	Incident   string            // incident-fixed: "INC-7" (normalised to upper case)
	Tier       string            // escalate --tier, retier target tier
	Urgent     bool              // escalate --urgent
	Artifact   string            // artifact kind, e.g. "threat-model" (artifact verb)
	Ref        string            // artifact link or text (artifact verb)
	Risk       int               // risk verb: residual risk 1..25 (likelihood 1-5 x impact 1-5)
	Likelihood int               // risk verb, likelihood=1..5 form: the likelihood; Risk is Likelihood x Impact
	Impact     int               // risk verb, likelihood=1..5 form: the impact
	Controls   string            // risk verb: controls="..." the compensating controls, "" for none given
	Validate   bool              // risk --validate: validate the recorded score instead of scoring
	Until      time.Time         // defer: a date YYYY-MM-DD (UTC midnight) when given as a date; away: the day one is back, zero for "away off"
	For        time.Duration     // defer: a duration such as 72h, 3d, 2w when given as a duration
	Person     string            // override-cap: whose cap (a person id, a leading @ is stripped)
	Count      int               // override-cap: extra manual escalations granted (default 1)
	Owner      string            // action: @person who owns the item (a leading @ is stripped), "" for the sender
	Due        time.Time         // action: due:YYYY-MM-DD (UTC midnight), zero for none
	N          int               // done: which action item, 1-based
	Checks     map[string]string // approve: --check item=answer (repeatable), nil when none
	Fields     map[string]string // "key: value" lines after the first line (escalate intake fields), nil when none
	Text       string            // the free text: reason, rationale, note, action text
}

const (
	maxCommandBytes = 8 << 10 // a whole command, as received and as written out by String
	maxTextBytes    = 4000    // one free-text value: Text, Ref, a field, a check answer
	maxOverrideCap  = 100     // extra escalations one override-cap may grant
)

// threatgateVerbs are the verbs /threatgate takes, in the order problems
// list them.
var threatgateVerbs = []Verb{
	VerbHelp, VerbStatus, VerbBacklog, VerbReject, VerbDissent, VerbArtifact, VerbDefer,
	VerbAction, VerbDone, VerbRisk, VerbRetier, VerbWithdraw, VerbOverrideCap, VerbAway, VerbApprove, VerbEscalate, VerbIntake,
	VerbIncident, VerbIncidentFixed,
}

// HelpText returns the usage line of v followed by what it does, or, for
// v == "", the full help: every verb plus notes on escalation ids,
// quoting and fields. It returns "" for an unknown verb.
func HelpText(v Verb) string {
	if v != "" {
		for _, h := range verbs {
			if h.verb == v {
				return h.usage + " — " + h.about
			}
		}
		return ""
	}
	var b strings.Builder
	b.WriteString("threatgate commands (in GitLab comments write /threatgate escalate … and /threatgate approve …):\n")
	for _, h := range verbs {
		b.WriteString(h.usage + " — " + h.about + "\n")
	}
	b.WriteString("ESC-id names an escalation, such as ESC-12; leave it out to mean the escalation of this thread.\n")
	b.WriteString(`Quote an argument that has spaces: --check data-sensitivity="no PII".` + "\n")
	b.WriteString(`Lines after the first that look like "summary: text" are fields; other lines add to the text.`)
	return b.String()
}

// usage returns the usage line of v, for problems.
func usage(v Verb) string {
	for _, h := range verbs {
		if h.verb == v {
			return h.usage
		}
	}
	return "/threatgate help"
}

// textName returns what the free text of v is called, for problems.
func textName(v Verb) string {
	for _, h := range verbs {
		if h.verb == v && h.text != "" {
			return h.text
		}
	}
	return "text"
}

// ParseReply parses a message written in an escalation's thread: a
// command, or, when it does not start with "/", lines such as
// "summary: ..." answering the intake fields (a /threatgate intake).
func ParseReply(s string) (Command, error) {
	if t := strings.TrimLeftFunc(s, isBlank); t != "" && !strings.HasPrefix(t, "/") {
		c, err := ParseCommand("/threatgate intake\n" + t)
		if err != nil {
			return Command{}, problemf("", "in a thread, write a command such as /approve, or answer intake fields as lines \"field: answer\"")
		}
		return c, nil
	}
	return ParseCommand(s)
}

// ParseThreadReply parses a message written in an escalation's chat
// thread under the policy pol. A first line "kind: link-or-text" naming
// one of the policy's artifact kinds records that artifact (the lines
// after it are part of its text, such as a filled-in threat model);
// anything else is read as ParseReply reads it.
func ParseThreadReply(s string, pol *policies.Policy) (Command, error) {
	t := strings.TrimLeftFunc(s, isBlank)
	first, more, _ := strings.Cut(t, "\n")
	if key, value, ok := artifactLine(first); ok && pol != nil && !strings.HasPrefix(t, "/") {
		if _, known := pol.Artifact(key); known {
			ref := strings.TrimSpace(value)
			if m := strings.TrimSpace(more); m != "" {
				ref = strings.TrimSpace(ref + "\n" + m)
			}
			if ref == "" {
				return Command{}, problemf(key, "give the artifact after the colon: a link, or its text")
			}
			if len(ref) > maxTextBytes {
				return Command{}, problemf(key, "the artifact is %d bytes; the limit is %d bytes: link to it instead", len(ref), maxTextBytes)
			}
			c := Command{Verb: VerbArtifact, Artifact: key, Ref: ref}
			// Held to what a typed command is: no control characters,
			// within the limits.
			if _, err := ParseCommand(c.String()); err != nil {
				return Command{}, err
			}
			return c, nil
		}
	}
	return ParseReply(s)
}

// artifactLine reads "key: value" like fieldLine, and also "key:" alone
// (the value follows on the next lines).
func artifactLine(line string) (key, value string, ok bool) {
	if k, v, ok := fieldLine(line); ok {
		return k, v, true
	}
	t := strings.TrimSpace(line)
	if k, found := strings.CutSuffix(t, ":"); found {
		if k2, _, ok := fieldLine(k + ": x"); ok && k2 == k {
			return k, "", true
		}
	}
	return "", "", false
}

// IsThreadCommand reports whether a message written in an escalation's
// chat thread is meant for threatgate: a command ("/approve …"), or a
// first line "key: value" naming an artifact kind or an intake field of
// pol. Anything else is conversation, which threatgate leaves alone.
func IsThreadCommand(s string, pol *policies.Policy) bool {
	t := strings.TrimLeftFunc(s, isBlank)
	if strings.HasPrefix(t, "/") {
		return true
	}
	first, _, _ := strings.Cut(t, "\n")
	key, _, ok := artifactLine(first)
	if !ok || pol == nil {
		return false
	}
	if _, known := pol.Artifact(key); known {
		return true
	}
	for _, f := range pol.Intake {
		if f.ID == key {
			return true
		}
	}
	return false
}

// ParseSlash parses a slash command delivered as command and text apart,
// as Slack does: command is "/escalate", "/approve" or "/threatgate".
// It is ParseCommand(command + " " + text), with the same errors.
func ParseSlash(command, text string) (Command, error) {
	return ParseCommand(command + " " + text)
}

// ParseCommand parses one chat command: /escalate, /approve or
// /threatgate <verb>, on the first line, optionally followed by
// "key: value" field lines and more lines of free text. It is pure and
// never panics; every error it returns is a *Problem naming the command,
// what was expected and what was found. It does not check anything that
// needs state, such as whether an escalation exists or a date is past.
func ParseCommand(s string) (Command, error) {
	c, err := parse(s)
	if err != nil {
		return Command{}, err
	}
	// Checked again on the canonical form, so that whatever parses also
	// parses once written out (quoting may make it longer).
	if n := len(c.String()); n > maxCommandBytes {
		return Command{}, problemf("", "command is %d bytes once written out; the limit is %d bytes (8 KiB)", n, maxCommandBytes)
	}
	return c, nil
}

func parse(s string) (Command, error) {
	if len(s) > maxCommandBytes {
		return Command{}, problemf("", "command is %d bytes; the limit is %d bytes (8 KiB)", len(s), maxCommandBytes)
	}
	if !utf8.ValidString(s) {
		return Command{}, problemf("", "command is not valid UTF-8 text")
	}
	s = strings.ReplaceAll(s, "\r\n", "\n")
	s = strings.ReplaceAll(s, "\r", "\n")
	for _, r := range s {
		// Control characters have no place in a command and would
		// survive into logs and the audit trail.
		if r != '\n' && r != '\t' && unicode.IsControl(r) {
			return Command{}, problemf("", "command contains the control character %U; remove it", r)
		}
	}
	s = strings.TrimLeftFunc(s, isBlank)
	if s == "" {
		return Command{}, problemf("", "empty command; try /threatgate help")
	}
	first, more, _ := strings.Cut(s, "\n")
	p := &parser{line: first}

	name := p.word()
	p.pos += len(name)
	switch strings.ToLower(name) {
	case "/escalate":
		p.c.Verb, p.cmd = VerbEscalate, "/escalate"
	case "/approve":
		p.c.Verb, p.cmd = VerbApprove, "/approve"
	case "/threatgate":
		p.c.Verb = VerbHelp
		if w := p.word(); w != "" {
			p.pos += len(w)
			v, ok := lookupVerb(w)
			if !ok {
				return Command{}, unknownVerb("/threatgate", w)
			}
			p.c.Verb = v
		}
		p.cmd = "/threatgate " + string(p.c.Verb)
	default:
		commands := []string{"/escalate", "/approve", "/threatgate"}
		if !strings.HasPrefix(name, "/") {
			return Command{}, problemf("", "want a command starting with /escalate, /approve or /threatgate, got %s", show(first))
		}
		return Command{}, problemf("", "unknown command %s; want /escalate, /approve or /threatgate%s", show(name), didYouMean(strings.ToLower(name), commands))
	}

	if err := p.splitLines(more); err != nil {
		return Command{}, err
	}
	if err := p.parse(); err != nil {
		return Command{}, err
	}
	return p.c, nil
}

// lookupVerb finds the verb named w, in any case.
func lookupVerb(w string) (Verb, bool) {
	w = strings.ToLower(w)
	for _, v := range threatgateVerbs {
		if string(v) == w {
			return v, true
		}
	}
	return "", false
}

func unknownVerb(field, w string) *Problem {
	names := make([]string, len(threatgateVerbs))
	for i, v := range threatgateVerbs {
		names[i] = string(v)
	}
	return problemf(field, "unknown command %s; want one of %s%s",
		show(w), strings.Join(names, ", "), didYouMean(strings.ToLower(w), names))
}

// parser reads the first line of a command left to right. Decisions
// (is this a flag, an escalation id, a count?) are made on the raw word,
// so a quoted word is always a plain argument; values are read with
// token, which understands quotes.
type parser struct {
	line   string   // the first line
	pos    int      // byte offset in line
	cmd    string   // "/escalate", "/threatgate reject": names the command in problems
	lines  []string // the later lines that are not fields
	c      Command
	haveMR bool
}

// word skips spaces and returns the raw text up to the next space,
// without consuming it.
func (p *parser) word() string {
	for p.pos < len(p.line) {
		r, n := utf8.DecodeRuneInString(p.line[p.pos:])
		if !unicode.IsSpace(r) {
			break
		}
		p.pos += n
	}
	end := p.pos
	for end < len(p.line) {
		r, n := utf8.DecodeRuneInString(p.line[end:])
		if unicode.IsSpace(r) {
			break
		}
		end += n
	}
	return p.line[p.pos:end]
}

// token skips spaces and reads one argument, joining quoted parts:
// data="no PII" reads as data=no PII.
func (p *parser) token() (string, error) {
	p.word()
	return p.tokenHere()
}

// tokenHere reads one argument starting exactly at pos; "" when pos is
// at a space or the end of the line.
func (p *parser) tokenHere() (string, error) {
	var b strings.Builder
	start, i := p.pos, p.pos
	for i < len(p.line) {
		r, n := utf8.DecodeRuneInString(p.line[i:])
		if unicode.IsSpace(r) {
			break
		}
		if _, ok := closingQuote(r); ok {
			t, end, ok := unquote(p.line, i)
			if !ok {
				return "", problemf(p.cmd, "unterminated %c quote in %s; close it", r, show(p.line[start:]))
			}
			b.WriteString(t)
			i = end
			continue
		}
		b.WriteString(p.line[i : i+n])
		i += n
	}
	p.pos = i
	return b.String(), nil
}

// rest consumes the remainder of the first line, trimmed. A remainder
// that is one quoted string is unquoted, and quoted reports it; any
// other remainder is kept as typed, so apostrophes and stray quotes in
// free text are not errors.
func (p *parser) rest() (s string, quoted bool) {
	r := strings.TrimSpace(p.line[p.pos:])
	p.pos = len(p.line)
	open, _ := utf8.DecodeRuneInString(r)
	if _, ok := closingQuote(open); ok {
		if t, end, ok := unquote(r, 0); ok && end == len(r) {
			return t, true
		}
	}
	return r, false
}

// closingQuote returns the quote that closes open, for the quotes the
// tokenizer knows: "double", 'single' and “curly” (phones type those).
func closingQuote(open rune) (rune, bool) {
	switch open {
	case '"':
		return '"', true
	case '\'':
		return '\'', true
	case '“':
		return '”', true
	}
	return 0, false
}

// unquote reads the quoted string that starts at s[i] and returns its
// text and the offset after the closing quote; ok is false when it is
// not closed. Inside double quotes, \" and \\ stand for " and \; any
// other backslash is kept.
func unquote(s string, i int) (text string, end int, ok bool) {
	open, n := utf8.DecodeRuneInString(s[i:])
	closing, _ := closingQuote(open)
	var b strings.Builder
	for j := i + n; j < len(s); {
		r, m := utf8.DecodeRuneInString(s[j:])
		if r == closing {
			return b.String(), j + m, true
		}
		if open == '"' && r == '\\' && j+1 < len(s) && (s[j+1] == '"' || s[j+1] == '\\') {
			b.WriteByte(s[j+1])
			j += 2
			continue
		}
		b.WriteString(s[j : j+m])
		j += m
	}
	return "", len(s), false
}

// splitLines sorts the lines after the first into fields and text.
func (p *parser) splitLines(more string) error {
	if more == "" {
		return nil
	}
	seen := map[string]int{}
	for i, line := range strings.Split(more, "\n") {
		k, v, ok := fieldLine(line)
		if !ok {
			p.lines = append(p.lines, line)
			continue
		}
		n := i + 2 // the first line is line 1
		if prev, dup := seen[k]; dup {
			return problemf(p.cmd, "field %q is given twice, on lines %d and %d; give it once", k, prev, n)
		}
		seen[k] = n
		if len(v) > maxTextBytes {
			return problemf(p.cmd, "field %q is %d bytes; the limit is %d bytes", k, len(v), maxTextBytes)
		}
		if p.c.Fields == nil {
			p.c.Fields = map[string]string{}
		}
		p.c.Fields[k] = v
	}
	return nil
}

// fieldLine matches `^\s*([a-z][a-z0-9_-]*):\s+(\S.*)$` and returns the
// key and the trimmed value. The space after the colon keeps URLs such as
// https://x from reading as fields.
func fieldLine(line string) (key, value string, ok bool) {
	t := strings.TrimLeftFunc(line, unicode.IsSpace)
	i := 0
	for i < len(t) && (isLower(t[i]) || i > 0 && (isDigit(t[i]) || t[i] == '_' || t[i] == '-')) {
		i++
	}
	if i == 0 || i >= len(t) || t[i] != ':' {
		return "", "", false
	}
	after := t[i+1:]
	if r, _ := utf8.DecodeRuneInString(after); !unicode.IsSpace(r) {
		return "", "", false
	}
	value = strings.TrimSpace(after)
	if value == "" {
		return "", "", false
	}
	return t[:i], value, true
}

func (p *parser) parse() error {
	c := &p.c
	switch c.Verb {
	case VerbHelp:
		if w := p.word(); w != "" {
			p.pos += len(w)
			v, ok := lookupVerb(strings.TrimPrefix(w, "/"))
			if !ok {
				return unknownVerb(p.cmd, w)
			}
			c.Text = string(v)
		}
		return p.nothingMore("takes at most a command name, such as /threatgate help escalate")
	case VerbBacklog:
		return p.nothingMore("takes no arguments")
	}

	if err := p.options(); err != nil {
		return err
	}
	switch c.Verb {
	case VerbEscalate, VerbIncident:
		if !p.haveMR {
			return p.missing("a merge request such as group/proj!12 or its URL")
		}
		return p.freeText(true)
	case VerbIncidentFixed:
		const want = "an incident id such as INC-3"
		w, err := p.arg(want)
		if err != nil {
			return err
		}
		id, ok := parseIncident(w)
		if !ok {
			return problemf(p.cmd, "want %s, got %s", want, show(w))
		}
		c.Incident = id
		return p.freeText(false)
	case VerbApprove:
		return p.freeText(false)
	case VerbIntake:
		if err := p.freeText(false); err != nil {
			return err
		}
		if len(c.Fields) == 0 {
			return problemf(p.cmd, "want lines such as \"summary: what is wrong\" after the command")
		}
		return nil
	case VerbStatus:
		return p.nothingMore("takes at most an escalation id such as ESC-12")
	case VerbReject, VerbDissent, VerbWithdraw:
		return p.freeText(true)

	case VerbAction:
		if err := p.actionArgs(); err != nil {
			return err
		}
		return p.freeText(true)

	case VerbDone:
		const want = "the number of an action item, such as 2"
		w, err := p.arg(want)
		if err != nil {
			return err
		}
		n, err := strconv.Atoi(w)
		if err != nil || n < 1 {
			return problemf(p.cmd, "want %s (as /threatgate status lists them), got %s", want, show(w))
		}
		c.N = n
		return p.nothingMore("takes an escalation id and the number of an action item, such as /threatgate done ESC-12 2")

	case VerbAway:
		const want = "until YYYY-MM-DD, or off"
		w, err := p.arg(want)
		if err != nil {
			return err
		}
		switch strings.ToLower(w) {
		case "off":
		case "until":
			d, err := p.arg("a date such as 2026-12-24 after until")
			if err != nil {
				return err
			}
			t, ok := parseDate(d)
			if !ok {
				return problemf(p.cmd, "want a real date from 2000 on as YYYY-MM-DD after until, got %s", show(d))
			}
			c.Until = t
		default:
			return problemf(p.cmd, "want %s, got %s; usage: %s", want, show(w), usage(c.Verb))
		}
		return p.nothingMore("takes until YYYY-MM-DD or off, and nothing more")

	case VerbArtifact:
		kind, err := p.arg("an artifact kind such as threat-model")
		if err != nil {
			return err
		}
		c.Artifact = strings.ToLower(kind)
		lowerOrDigit := func(b byte) bool { return isLower(b) || isDigit(b) }
		if !validName(c.Artifact, lowerOrDigit, lowerOrDigit, is('-')) {
			return problemf(p.cmd, "want an artifact kind such as threat-model (letters, digits and -), got %s", show(kind))
		}
		ref, _ := p.rest()
		if ref == "" {
			return problemf(p.cmd, "want a link or text after the kind %q; usage: %s", c.Artifact, usage(c.Verb))
		}
		if len(ref) > maxTextBytes {
			return problemf(p.cmd, "the link or text is %d bytes; the limit is %d bytes", len(ref), maxTextBytes)
		}
		c.Ref = ref
		// The later lines are a note on the artifact.
		return p.setText(strings.TrimSpace(strings.Join(p.lines, "\n")), false)

	case VerbDefer:
		const want = "a date such as 2025-07-01 or a duration such as 72h, 3d or 2w"
		w, err := p.arg(want)
		if err != nil {
			return err
		}
		if looksLikeDate(w) {
			t, ok := parseDate(w)
			if !ok {
				return problemf(p.cmd, "want a real date from 2000 on as YYYY-MM-DD, got %s", show(w))
			}
			c.Until = t
		} else {
			d, ok := parseDuration(w)
			if !ok {
				return problemf(p.cmd, "want %s, got %s", want, show(w))
			}
			c.For = d
		}
		return p.freeText(true)

	case VerbRisk:
		if c.Validate {
			// Validating takes no score: it is about the recorded one.
			if w := p.word(); isInteger(w) || riskPairKey(w) != "" {
				return problemf(p.cmd+" --validate", "validates the score already recorded and takes none, got %s; record a new score without --validate", show(w))
			}
			return p.freeText(false)
		}
		const want = `a residual risk from 1 to 25, or likelihood=1..5 impact=1..5 [controls="..."]`
		w := p.word()
		if w == "" {
			return p.missing(want)
		}
		if riskPairKey(w) != "" {
			if err := p.riskPairs(); err != nil {
				return err
			}
			return p.freeText(false)
		}
		w, err := p.token()
		if err != nil {
			return err
		}
		n, err := strconv.Atoi(w)
		if err != nil || n < 1 || n > 25 {
			return problemf(p.cmd, "want a residual risk from 1 to 25 (likelihood 1-5 x impact 1-5), got %s; or score it as likelihood=1..5 impact=1..5", show(w))
		}
		c.Risk = n
		return p.freeText(false)

	case VerbRetier:
		w, err := p.arg("a tier such as T2")
		if err != nil {
			return err
		}
		if !validTier(w) {
			return problemf(p.cmd, "want a tier such as T2 (letters, digits, - and _), got %s", show(w))
		}
		c.Tier = w
		return p.freeText(true)

	case VerbOverrideCap:
		w, err := p.arg("a person such as @ann")
		if err != nil {
			return err
		}
		person, ok := parsePerson(w)
		if !ok {
			return problemf(p.cmd, "want a person such as @ann or a chat user id, got %s", show(w))
		}
		c.Person, c.Count = person, 1
		if w := p.word(); isInteger(w) {
			n, err := strconv.Atoi(w)
			if err != nil || n < 1 || n > maxOverrideCap {
				return problemf(p.cmd, "want a count of extra escalations from 1 to %d, got %s", maxOverrideCap, show(w))
			}
			p.pos += len(w)
			c.Count = n
		}
		return p.freeText(true)
	}
	return nil
}

// riskPairKey returns the key of a risk argument written key=value,
// likelihood, impact or controls in any case, judged on the raw word; ""
// when w is not one.
func riskPairKey(w string) string {
	k, _, ok := strings.Cut(w, "=")
	if !ok {
		return ""
	}
	switch k = strings.ToLower(k); k {
	case "likelihood", "impact", "controls":
		return k
	}
	return ""
}

// riskPairs reads likelihood=L impact=I [controls="..."], in any order,
// each once, and sets Risk to L x I. A plain word starts the rationale.
func (p *parser) riskPairs() error {
	c := &p.c
	seen := map[string]bool{}
	for {
		key := riskPairKey(p.word())
		if key == "" {
			break
		}
		field := p.cmd + " " + key
		if seen[key] {
			return problemf(field, "given twice; give it once")
		}
		seen[key] = true
		t, err := p.token()
		if err != nil {
			return err
		}
		_, v, _ := strings.Cut(t, "=")
		switch key {
		case "likelihood", "impact":
			n, err := strconv.Atoi(v)
			if err != nil || !allDigits(v) || n < 1 || n > 5 {
				return problemf(field, "want a whole number from 1 to 5 such as %s=3, got %s", key, show(t))
			}
			if key == "likelihood" {
				c.Likelihood = n
			} else {
				c.Impact = n
			}
		case "controls":
			v = strings.TrimSpace(v)
			if v == "" {
				return problemf(field, `want the compensating controls such as controls="WAF rule, rate limit", got nothing`)
			}
			if len(v) > maxTextBytes {
				return problemf(field, "the controls are %d bytes; the limit is %d bytes", len(v), maxTextBytes)
			}
			c.Controls = v
		}
	}
	var missing []string
	for _, k := range []string{"likelihood", "impact"} {
		if !seen[k] {
			missing = append(missing, k+"=1..5")
		}
	}
	if len(missing) > 0 {
		return problemf(p.cmd, "want both likelihood=1..5 and impact=1..5, missing %s; usage: %s", strings.Join(missing, " and "), usage(c.Verb))
	}
	c.Risk = c.Likelihood * c.Impact
	return nil
}

// actionArgs reads what may come before an action item's text, in either
// order: its owner, written @person (or a chat mention), and its due date,
// written due:YYYY-MM-DD. A plain word starts the text.
func (p *parser) actionArgs() error {
	for {
		w := p.word()
		switch {
		case personLike(w):
			if p.c.Owner != "" {
				return problemf(p.cmd, "give one owner, got @%s and %s (quote the text if it starts with @)", p.c.Owner, show(w))
			}
			person, ok := parsePerson(w)
			if !ok {
				return problemf(p.cmd, "want an owner such as @ann or a chat mention, got %s", show(w))
			}
			p.c.Owner = person
		case dueLike(w):
			if !p.c.Due.IsZero() {
				return problemf(p.cmd, "give one due date, got due:%s and %s", p.c.Due.Format(time.DateOnly), show(w))
			}
			t, ok := parseDate(w[len("due:"):])
			if !ok {
				return problemf(p.cmd, "want a due date as due:YYYY-MM-DD, such as due:2026-12-24, got %s", show(w))
			}
			p.c.Due = t
		default:
			return nil
		}
		p.pos += len(w)
	}
}

// personLike reports whether w is meant as a person: @ann or a chat
// mention such as <@U123>.
func personLike(w string) bool {
	return strings.HasPrefix(w, "@") || strings.HasPrefix(w, "<@")
}

// dueLike reports whether w is meant as a due date: due:... in any case.
func dueLike(w string) bool {
	return len(w) >= 4 && strings.EqualFold(w[:4], "due:")
}

// options reads what may come before the arguments, in any order: flags,
// the optional escalation id and, for escalate, the merge request. It
// stops at the first word that is none of these.
func (p *parser) options() error {
	for {
		w := p.word()
		if w == "" {
			return nil
		}
		if n, ok := flagPrefix(w); ok {
			if err := p.flag(w, n); err != nil {
				return err
			}
			continue
		}
		if p.c.Verb == VerbEscalate || p.c.Verb == VerbIncident {
			if p.haveMR {
				return nil
			}
			t, err := p.token()
			if err != nil {
				return err
			}
			mr, err := parseMR(p.cmd, t)
			if err != nil {
				return err
			}
			p.c.MR, p.haveMR = mr, true
			continue
		}
		if !escLike(w) {
			return nil
		}
		if !takesEscalation(p.c.Verb) {
			return problemf(p.cmd, "takes no escalation id, got %s; usage: %s", show(w), usage(p.c.Verb))
		}
		id, err := parseEscalation(p.cmd, w)
		if err != nil {
			return err
		}
		if p.c.Escalation != "" {
			return problemf(p.cmd, "give one escalation id, got %s and %s", p.c.Escalation, id)
		}
		p.c.Escalation = id
		p.pos += len(w)
	}
}

func takesEscalation(v Verb) bool {
	switch v {
	case VerbEscalate, VerbHelp, VerbBacklog, VerbOverrideCap, VerbAway, VerbIncident, VerbIncidentFixed:
		return false
	}
	return true
}

// flagPrefix reports whether w is a flag and how long its dashes are:
// "--tier", or "—tier" as phones autocorrect "--".
func flagPrefix(w string) (int, bool) {
	for _, dash := range []string{"--", "—", "–"} {
		if strings.HasPrefix(w, dash) && len(w) > len(dash) {
			return len(dash), true
		}
	}
	return 0, false
}

// knownFlag reports whether v takes the flag name.
func knownFlag(v Verb, name string) bool {
	switch v {
	case VerbEscalate:
		return name == "tier" || name == "urgent"
	case VerbApprove:
		return name == "check"
	case VerbRisk:
		return name == "validate"
	case VerbIncident:
		return name == "fixed-by"
	}
	return false
}

// flag reads the flag w at pos; dashes is the length of its leading dashes.
func (p *parser) flag(w string, dashes int) error {
	name, _, hasValue := strings.Cut(w[dashes:], "=")
	typed := w[:dashes+len(name)]
	name = strings.ToLower(name)
	p.pos += len(typed)
	field := p.cmd + " --" + name
	if !knownFlag(p.c.Verb, name) {
		takes := "takes no flags"
		switch p.c.Verb {
		case VerbEscalate:
			takes = "takes --tier T and --urgent"
		case VerbApprove:
			takes = "takes --check item=answer, repeated as needed"
		case VerbRisk:
			takes = "takes --validate"
		case VerbIncident:
			takes = "takes --fixed-by <MR ref>"
		}
		return problemf(p.cmd, "unknown flag %s; %s %s", show(typed), p.cmd, takes)
	}
	switch name {
	case "tier":
		if p.c.Tier != "" {
			return problemf(field, "given twice; give it once")
		}
		v, err := p.flagValue(field, hasValue, "a tier such as T2")
		if err != nil {
			return err
		}
		if !validTier(v) {
			return problemf(field, "want a tier such as T2 (letters, digits, - and _), got %s", show(v))
		}
		p.c.Tier = v
	case "urgent", "validate":
		if hasValue {
			return problemf(field, "takes no value, got %s", show(w))
		}
		set := &p.c.Urgent
		if name == "validate" {
			set = &p.c.Validate
		}
		if *set {
			return problemf(field, "given twice; give it once")
		}
		*set = true
	case "fixed-by":
		if p.c.FixedBy != (MRRef{}) {
			return problemf(field, "given twice; give it once")
		}
		v, err := p.flagValue(field, hasValue, "a merge request such as group/proj!13 or its URL")
		if err != nil {
			return err
		}
		mr, err := parseMR(field, v)
		if err != nil {
			return err
		}
		p.c.FixedBy = mr
	case "check":
		const want = `item=answer such as data-sensitivity="no PII"`
		v, err := p.flagValue(field, hasValue, want)
		if err != nil {
			return err
		}
		item, answer, _ := strings.Cut(v, "=")
		item, answer = strings.ToLower(item), strings.TrimSpace(answer)
		if answer == "" || !validName(item, isLower, isLower, isDigit, is('-'), is('_')) {
			return problemf(field, "want %s, got %s", want, show(v))
		}
		if _, dup := p.c.Checks[item]; dup {
			return problemf(field, "item %q is given twice; give it once", item)
		}
		if len(answer) > maxTextBytes {
			return problemf(field, "the answer for %q is %d bytes; the limit is %d bytes", item, len(answer), maxTextBytes)
		}
		if p.c.Checks == nil {
			p.c.Checks = map[string]string{}
		}
		p.c.Checks[item] = answer
	}
	return nil
}

// flagValue reads a flag's value, "--tier=T2" or "--tier T2".
func (p *parser) flagValue(field string, inline bool, want string) (string, error) {
	if inline {
		p.pos++ // the '='
		v, err := p.tokenHere()
		if err == nil && v == "" {
			err = problemf(field, "want %s after =, got nothing", want)
		}
		return v, err
	}
	w := p.word()
	if w == "" {
		return "", problemf(field, "want %s, got nothing", want)
	}
	if _, ok := flagPrefix(w); ok {
		return "", problemf(field, "want %s, got %s", want, show(w))
	}
	return p.token()
}

// arg reads a required argument.
func (p *parser) arg(want string) (string, error) {
	if p.word() == "" {
		return "", p.missing(want)
	}
	return p.token()
}

func (p *parser) missing(want string) *Problem {
	return problemf(p.cmd, "want %s, got nothing; usage: %s", want, usage(p.c.Verb))
}

// freeText sets Text from the rest of the first line and the later
// lines; required says it may not be empty.
func (p *parser) freeText(required bool) error {
	first, quoted := p.rest()
	if !quoted {
		// A flag typed after the text would be silently ignored.
		for _, w := range fieldsSpace(first) {
			n, ok := flagPrefix(w)
			if !ok {
				continue
			}
			name, _, _ := strings.Cut(w[n:], "=")
			if knownFlag(p.c.Verb, strings.ToLower(name)) {
				what := textName(p.c.Verb)
				return problemf(p.cmd, "put flags before the %s: found %s after it (or quote the %s to keep it as text)", what, show(w[:n+len(name)]), what)
			}
		}
	}
	return p.setText(strings.TrimSpace(first+"\n"+strings.Join(p.lines, "\n")), required)
}

func (p *parser) setText(t string, required bool) error {
	what := textName(p.c.Verb)
	if required && t == "" {
		return problemf(p.cmd, "%s required; usage: %s", what, usage(p.c.Verb))
	}
	if len(t) > maxTextBytes {
		return problemf(p.cmd, "the %s is %d bytes; the limit is %d bytes", what, len(t), maxTextBytes)
	}
	p.c.Text = t
	return nil
}

// nothingMore refuses anything left on the first line and any later
// line of text; fields are left to decide.
func (p *parser) nothingMore(says string) error {
	if r := strings.TrimSpace(p.line[p.pos:]); r != "" {
		return problemf(p.cmd, "%s, got %s", says, show(r))
	}
	if t := strings.TrimSpace(strings.Join(p.lines, "\n")); t != "" {
		return problemf(p.cmd, "%s, got %s", says, show(t))
	}
	return nil
}

// escLike reports whether w is meant as an escalation id: it starts with
// "ESC-" in any case.
func escLike(w string) bool {
	return len(w) >= 4 && strings.EqualFold(w[:4], "esc-")
}

// parseEscalation reads an escalation id such as esc-007 as ESC-7.
func parseEscalation(field, w string) (string, error) {
	d := w[4:]
	n, err := strconv.ParseInt(d, 10, 64)
	if !allDigits(d) || err != nil || n < 1 {
		return "", problemf(field, "want an escalation id such as ESC-12, got %s", show(w))
	}
	return "ESC-" + strconv.FormatInt(n, 10), nil
}

// parseIncident reads an incident id such as inc-007 as INC-7.
func parseIncident(w string) (string, bool) {
	if len(w) < 4 || !strings.EqualFold(w[:4], "inc-") {
		return "", false
	}
	n, ok := positive(w[4:])
	if !ok {
		return "", false
	}
	return "INC-" + strconv.FormatInt(n, 10), true
}

// parseMR reads a merge request as group/proj!12 or its web URL. Slack
// and Discord send links as <url> or <url|label>; both are accepted.
func parseMR(field, t string) (MRRef, error) {
	const want = "want a merge request such as group/proj!12 or its URL"
	if inner, ok := strings.CutPrefix(t, "<"); ok && strings.HasSuffix(inner, ">") && strings.Contains(inner, "://") {
		t, _, _ = strings.Cut(strings.TrimSuffix(inner, ">"), "|")
	}
	if strings.Contains(t, "://") {
		return parseMRURL(field, t)
	}
	i := strings.LastIndexByte(t, '!')
	if i < 0 {
		return MRRef{}, problemf(field, "%s, got %s", want, show(t))
	}
	project, iid := t[:i], t[i+1:]
	if !validProject(project) {
		return MRRef{}, problemf(field, "%s; the project path is letters, digits, _ . - with its group, such as group/proj, got %s", want, show(t))
	}
	n, ok := positive(iid)
	if !ok {
		return MRRef{}, problemf(field, "want a positive merge request number after !, got %s", show(t))
	}
	return MRRef{Project: project, IID: n}, nil
}

// String writes the reference as it was given: the URL, or
// group/proj!iid; "" for the zero MRRef.
func (r MRRef) String() string {
	switch {
	case r.URL != "":
		return r.URL
	case r == (MRRef{}):
		return ""
	}
	return r.Project + "!" + strconv.FormatInt(r.IID, 10)
}

// ParseMRRef reads a merge request as commands take it: group/proj!12
// or its web URL; every error is a *Problem.
func ParseMRRef(s string) (MRRef, error) { return parseMR("", strings.TrimSpace(s)) }

// ParseMRURL reads a merge request's web URL, as parseMRURL does for
// commands; every error is a *Problem that never repeats credentials or
// the query.
func ParseMRURL(raw string) (MRRef, error) { return parseMRURL("", strings.TrimSpace(raw)) }

// parseMRURL reads https://host[:port]/group/proj/-/merge_requests/12,
// with anything after the number (/diffs, ?query, #note_1). Problems
// never repeat credentials or query strings.
func parseMRURL(field, raw string) (MRRef, error) {
	const example = "https://gitlab.example.com/group/proj/-/merge_requests/12"
	u, err := url.Parse(raw)
	if err != nil {
		return MRRef{}, problemf(field, "want a merge request URL such as %s; this one is not a valid URL", example)
	}
	if u.User != nil {
		return MRRef{}, problemf(field, "remove the user name and password from the merge request URL")
	}
	if strings.Contains(strings.ToLower(u.RawQuery), "token") {
		return MRRef{}, problemf(field, "remove the token from the merge request URL")
	}
	shown := show((&url.URL{Scheme: u.Scheme, Host: u.Host, Path: u.Path}).String())
	if u.Scheme != "http" && u.Scheme != "https" || u.Hostname() == "" || u.Opaque != "" {
		return MRRef{}, problemf(field, "want a merge request URL such as %s, got %s", example, shown)
	}
	before, after, ok := strings.Cut(u.Path, "/-/merge_requests/")
	project, hadSlash := strings.CutPrefix(before, "/")
	if !ok || !hadSlash {
		return MRRef{}, problemf(field, "want a merge request URL such as %s, got %s", example, shown)
	}
	if !validProject(project) {
		return MRRef{}, problemf(field, "want a project path of letters, digits, _ . - with its group in the URL, got %s", shown)
	}
	iid, _, _ := strings.Cut(after, "/")
	n, ok := positive(iid)
	if !ok {
		return MRRef{}, problemf(field, "want a positive merge request number after /-/merge_requests/, got %s", shown)
	}
	return MRRef{Project: project, IID: n, URL: raw}, nil
}

// validProject reports whether p is a GitLab path with namespace: at
// least two segments of letters, digits, _ . -, each starting with a
// letter, digit or _ (so never "." or "..").
func validProject(p string) bool {
	segs := strings.Split(p, "/")
	if len(segs) < 2 {
		return false
	}
	for _, s := range segs {
		if !validName(s, alnumOr('_'), alnumOr('_'), is('.'), is('-')) {
			return false
		}
	}
	return true
}

// validTier reports whether t is a tier name: letters, digits, - and _.
func validTier(t string) bool {
	return validName(t, alnumOr('_', '-'), alnumOr('_', '-'))
}

// parsePerson reads @ann, ann, or a chat mention such as <@U123>,
// <@!123> or <@U123|ann>, and returns the person id.
func parsePerson(w string) (string, bool) {
	if inner, ok := strings.CutPrefix(w, "<@"); ok && strings.HasSuffix(inner, ">") {
		w, _, _ = strings.Cut(strings.TrimPrefix(strings.TrimSuffix(inner, ">"), "!"), "|")
	} else {
		w = strings.TrimPrefix(w, "@")
	}
	return w, validName(w, alnumOr(), alnumOr('.', '_', '-'))
}

// parseDate reads a real date from 2000 on, YYYY-MM-DD, as UTC midnight
// starting it. Years before 2000 are typos, and the zero time would read
// as no date at all.
func parseDate(w string) (time.Time, bool) {
	if !looksLikeDate(w) {
		return time.Time{}, false
	}
	t, err := time.Parse(time.DateOnly, w)
	return t, err == nil && t.Year() >= 2000
}

// looksLikeDate reports whether w has the shape YYYY-MM-DD.
func looksLikeDate(w string) bool {
	return len(w) == 10 && w[4] == '-' && w[7] == '-' &&
		allDigits(w[:4]) && allDigits(w[5:7]) && allDigits(w[8:])
}

// parseDuration reads a positive duration as the policy writes them: a Go
// duration (72h, 90m) or a number of days or weeks (3d, 2w).
func parseDuration(w string) (time.Duration, bool) {
	d, err := policies.ParseDuration(w)
	return d, err == nil && d > 0
}

// formatDuration writes d as parseDuration reads it, as short as it can.
func formatDuration(d time.Duration) string { return policies.FormatDuration(d) }

// String writes c as a command line that ParseCommand reads back as c:
// /escalate and /approve for those verbs, /threatgate <verb> for the
// others, arguments quoted where needed, then the later lines of Text
// and the fields in key order. It is meant for logs, the audit trail and
// tests.
func (c Command) String() string {
	var b strings.Builder
	arg := func(v string) {
		b.WriteByte(' ')
		b.WriteString(quoteArg(v))
	}
	esc := func() {
		if c.Escalation != "" {
			b.WriteString(" " + c.Escalation)
		}
	}
	rest := func(v string) {
		if v == "" {
			return
		}
		b.WriteByte(' ')
		if restNeedsQuote(v) {
			v = quote(v)
		}
		b.WriteString(v)
	}
	first, more, _ := strings.Cut(c.Text, "\n")

	switch c.Verb {
	case VerbEscalate:
		b.WriteString("/escalate")
	case VerbApprove:
		b.WriteString("/approve")
	case "":
		b.WriteString("/threatgate")
	default:
		b.WriteString("/threatgate " + string(c.Verb))
	}
	switch c.Verb {
	case VerbEscalate:
		switch {
		case c.MR.URL != "":
			arg(c.MR.URL)
		case c.MR != (MRRef{}):
			arg(c.MR.Project + "!" + strconv.FormatInt(c.MR.IID, 10))
		}
		if c.Tier != "" {
			b.WriteString(" --tier")
			arg(c.Tier)
		}
		if c.Urgent {
			b.WriteString(" --urgent")
		}
		rest(first)
	case VerbIncident:
		arg(c.MR.String())
		if c.FixedBy != (MRRef{}) {
			b.WriteString(" --fixed-by")
			arg(c.FixedBy.String())
		}
		rest(first)
	case VerbIncidentFixed:
		if c.Incident != "" {
			arg(c.Incident)
		}
		rest(first)
	case VerbIntake:
		esc()
		rest(first)
	case VerbApprove:
		esc()
		for _, item := range slices.Sorted(maps.Keys(c.Checks)) {
			b.WriteString(" --check " + item + "=" + quoteArg(c.Checks[item]))
		}
		rest(first)
	case VerbHelp:
		if c.Text != "" {
			arg(c.Text)
		}
		more = ""
	case VerbBacklog:
		more = ""
	case VerbStatus:
		esc()
		more = ""
	case VerbArtifact:
		esc()
		if c.Artifact != "" {
			arg(c.Artifact)
		}
		rest(c.Ref)
		more = c.Text // Ref fills the first line; Text is on the next
	case VerbDefer:
		esc()
		switch {
		case !c.Until.IsZero():
			arg(c.Until.Format(time.DateOnly))
		case c.For != 0:
			arg(formatDuration(c.For))
		}
		rest(first)
	case VerbAction:
		esc()
		if c.Owner != "" {
			b.WriteString(" @" + c.Owner)
		}
		if !c.Due.IsZero() {
			b.WriteString(" due:" + c.Due.Format(time.DateOnly))
		}
		if w := fieldsSpace(first); len(w) > 0 && (personLike(w[0]) || dueLike(w[0])) && !restNeedsQuote(first) {
			// Text that starts like an owner or a due date is quoted to
			// stay text.
			b.WriteString(" " + quote(first))
		} else {
			rest(first)
		}
	case VerbDone:
		esc()
		if c.N != 0 {
			arg(strconv.Itoa(c.N))
		}
		rest(first)
	case VerbAway:
		if c.Until.IsZero() {
			b.WriteString(" off")
		} else {
			b.WriteString(" until " + c.Until.Format(time.DateOnly))
		}
		rest(first)
	case VerbRisk:
		esc()
		switch {
		case c.Validate:
			b.WriteString(" --validate")
		case c.Likelihood != 0 || c.Impact != 0:
			b.WriteString(" likelihood=" + strconv.Itoa(c.Likelihood) + " impact=" + strconv.Itoa(c.Impact))
			if c.Controls != "" {
				b.WriteString(" controls=" + quoteArg(c.Controls))
			}
		case c.Risk != 0:
			arg(strconv.Itoa(c.Risk))
		}
		if w := fieldsSpace(first); len(w) > 0 && riskPairKey(w[0]) != "" && !restNeedsQuote(first) {
			// A rationale that starts like likelihood=... is quoted to
			// stay text.
			b.WriteString(" " + quote(first))
		} else {
			rest(first)
		}
	case VerbRetier:
		esc()
		if c.Tier != "" {
			arg(c.Tier)
		}
		rest(first)
	case VerbOverrideCap:
		if c.Person != "" {
			arg(c.Person)
		}
		if c.Count != 0 {
			arg(strconv.Itoa(c.Count))
		}
		rest(first)
	default:
		esc()
		rest(first)
	}
	if more != "" {
		b.WriteString("\n" + more)
	}
	for _, k := range slices.Sorted(maps.Keys(c.Fields)) {
		b.WriteString("\n" + k + ": " + c.Fields[k])
	}
	return b.String()
}

// quoteArg quotes v when it would not read back as one plain argument.
func quoteArg(v string) string {
	if v == "" || escLike(v) || strings.HasPrefix(v, "-") || strings.HasPrefix(v, "—") || strings.HasPrefix(v, "–") ||
		strings.ContainsFunc(v, func(r rune) bool { _, q := closingQuote(r); return q || unicode.IsSpace(r) }) {
		return quote(v)
	}
	return v
}

// restNeedsQuote reports whether the free text v, written at the end of
// the first line, could read back as something else: an escalation id,
// a flag, a count, a quoted string, or with its outer spaces trimmed.
func restNeedsQuote(v string) bool {
	if v != strings.TrimSpace(v) {
		return true
	}
	if r, _ := utf8.DecodeRuneInString(v); r != utf8.RuneError {
		if _, ok := closingQuote(r); ok {
			return true
		}
	}
	words := fieldsSpace(v)
	if len(words) > 0 && (escLike(words[0]) || isInteger(words[0])) {
		return true
	}
	for _, w := range words {
		if _, ok := flagPrefix(w); ok {
			return true
		}
	}
	return false
}

// quote writes v in double quotes, escaping " and \.
func quote(v string) string {
	return `"` + strings.NewReplacer(`\`, `\\`, `"`, `\"`).Replace(v) + `"`
}

// show quotes a user's value for a problem, cut to a readable length.
func show(s string) string {
	const maxRunes = 60
	if utf8.RuneCountInString(s) > maxRunes {
		s = string([]rune(s)[:maxRunes]) + "…"
	}
	return strconv.Quote(s)
}

// didYouMean returns ` (did you mean "x"?)` for the one of names closest
// to got, when it is close enough to be a typo.
func didYouMean(got string, names []string) string {
	if len(got) > 40 {
		return ""
	}
	best, bestDist := "", 3
	for _, n := range names {
		if d := editDistance(got, n); d < bestDist {
			best, bestDist = n, d
		}
	}
	if best == "" {
		return ""
	}
	return " (did you mean " + strconv.Quote(best) + "?)"
}

// editDistance is the Levenshtein distance between a and b, in runes.
func editDistance(a, b string) int {
	ra, rb := []rune(a), []rune(b)
	prev := make([]int, len(rb)+1)
	cur := make([]int, len(rb)+1)
	for j := range prev {
		prev[j] = j
	}
	for i := 1; i <= len(ra); i++ {
		cur[0] = i
		for j := 1; j <= len(rb); j++ {
			cost := 1
			if ra[i-1] == rb[j-1] {
				cost = 0
			}
			cur[j] = min(prev[j]+1, cur[j-1]+1, prev[j-1]+cost)
		}
		prev, cur = cur, prev
	}
	return prev[len(rb)]
}

func fieldsSpace(s string) []string { return strings.FieldsFunc(s, unicode.IsSpace) }

// validName reports whether s is non-empty, starts with a byte first
// accepts and continues with bytes any of rest accepts.
func validName(s string, first func(byte) bool, rest ...func(byte) bool) bool {
	if s == "" || !first(s[0]) {
		return false
	}
next:
	for i := 1; i < len(s); i++ {
		for _, ok := range rest {
			if ok(s[i]) {
				continue next
			}
		}
		return false
	}
	return true
}

func isLower(c byte) bool { return 'a' <= c && c <= 'z' }
func isDigit(c byte) bool { return '0' <= c && c <= '9' }
func is(want byte) func(byte) bool {
	return func(c byte) bool { return c == want }
}

// alnumOr accepts ASCII letters, digits and the bytes in extra.
func alnumOr(extra ...byte) func(byte) bool {
	return func(c byte) bool {
		return isLower(c) || 'A' <= c && c <= 'Z' || isDigit(c) || slices.Contains(extra, c)
	}
}

func allDigits(s string) bool {
	return s != "" && strings.IndexFunc(s, func(r rune) bool { return r < '0' || r > '9' }) < 0
}

// isInteger reports whether w is a whole number, with an optional sign.
func isInteger(w string) bool {
	return allDigits(strings.TrimLeft(w, "+-")) && len(w)-len(strings.TrimLeft(w, "+-")) <= 1
}

// positive reads a positive int64 written in digits only.
func positive(s string) (int64, bool) {
	n, err := strconv.ParseInt(s, 10, 64)
	return n, allDigits(s) && err == nil && n > 0
}

// isBlank reports whether r is white space or an invisible format
// character that a surface adds to neutralise text (a zero-width joiner
// before a quick action): a command copied from threatgate's own notes
// still parses.
func isBlank(r rune) bool {
	switch r {
	case '\u200b', '\u200c', '\u200d', '\u2060', '\ufeff':
		return true
	}
	return unicode.IsSpace(r)
}
