package slack

import (
	"fmt"
	"reflect"
	"regexp"
	"strings"
	"time"
	"unicode/utf8"

	sl "github.com/slack-go/slack"

	"github.com/threatgate/threatgate/bot"
)

// Block Kit limits (https://docs.slack.dev/reference/block-kit): a payload
// over any of them is refused with invalid_blocks, which no retry fixes,
// so the renderers cut long text instead.
const (
	maxBlocks         = 50   // blocks in a message
	maxText           = 3000 // a section's text, a context element
	maxField          = 2000 // one field of a section
	maxFields         = 10   // fields in a section
	maxHeader         = 150  // a header's plain text
	maxContextElems   = 10   // elements in a context block
	maxOutside        = 1500 // one piece of outside text (a rationale, a reason) before escaping
	maxOutsideShort   = 300  // one short piece (a title, an evidence line)
	maxFallback       = 300  // the notification text, before escaping
	evidencePerSignal = 3    // evidence lines shown per signal, as the text renderer does
)

// markup is mrkdwn that is safe to post: threatgate's own markup (bold,
// quotes, code spans, the mentions it means to make, date tokens) around
// pieces of text that were each escaped with Escape. Blocks are built only
// from markup, and a string variable is not markup: it gets there through
// md, code, quote, list or mention, which escape it. The explicit
// conversions, markup(...), are of constants and of Escape's result; md's
// format is always a constant.
type markup string

// md formats markup. format is threatgate's own markup (a constant of this
// package, with no < or & in it); every argument that is text is escaped
// with Escape, except markup ones; numbers are written as they are.
func md(format string, args ...any) markup {
	out := make([]any, len(args))
	for i, a := range args {
		switch v := a.(type) {
		case markup:
			out[i] = string(v)
		case string:
			out[i] = Escape(v)
		case int, int64:
			out[i] = v
		default:
			if reflect.ValueOf(a).Kind() == reflect.String { // bot.State, bot.NoticeKind...
				out[i] = Escape(reflect.ValueOf(a).String())
			} else {
				out[i] = Escape(fmt.Sprint(a))
			}
		}
	}
	return markup(fmt.Sprintf(format, out...))
}

// join puts parts on separate lines, leaving out empty ones.
func join(parts ...markup) markup { return joinWith("\n", parts...) }

// joinWith puts parts together with sep between them, leaving out empty
// ones.
func joinWith(sep markup, parts ...markup) markup {
	var b strings.Builder
	for _, p := range parts {
		if p == "" {
			continue
		}
		if b.Len() > 0 {
			b.WriteString(string(sep))
		}
		b.WriteString(string(p))
	}
	return markup(b.String())
}

// clip shortens outside text to at most n runes (before it is escaped, so
// that no entity is cut), marking the cut with "…".
func clip(s string, n int) string {
	if utf8.RuneCountInString(s) <= n {
		return s
	}
	r := []rune(s)
	return string(r[:n-1]) + "…"
}

// fit shortens escaped mrkdwn to at most n runes without cutting an
// entity (&amp;) or a token (<@U1>, <!date^...>) in two.
func fit(m markup, n int) markup {
	s := string(m)
	if utf8.RuneCountInString(s) <= n {
		return m
	}
	r := []rune(s)
	cut := string(r[:n-1])
	if i := strings.LastIndexByte(cut, '&'); i > strings.LastIndexByte(cut, ';') {
		cut = cut[:i]
	}
	if i := strings.LastIndexByte(cut, '<'); i > strings.LastIndexByte(cut, '>') {
		cut = cut[:i]
	}
	return markup(cut + "…")
}

// code writes outside text as inline code: escaped, on one line, with its
// backticks turned into look-alikes (ˋ) so that it cannot close the span.
func code(s string) markup {
	s = strings.NewReplacer("`", "ˋ", "\r\n", " ", "\n", " ", "\r", " ").Replace(clip(s, maxOutsideShort))
	return markup("`" + Escape(s) + "`")
}

// quote writes outside text as a block quote, every line escaped.
func quote(s string) markup {
	s = strings.TrimSpace(clip(s, maxOutside))
	if s == "" {
		return ""
	}
	var lines []markup
	for l := range strings.SplitSeq(strings.ReplaceAll(s, "\r\n", "\n"), "\n") {
		lines = append(lines, markup(">"+Escape(l)))
	}
	return join(lines...)
}

// userID matches a Slack user id (U…, or W… on Enterprise Grid). An id
// that does not match is never written into a mention token.
var userID = regexp.MustCompile(`^[UW][A-Z0-9]{2,31}$`)

// UserIDs maps a person of the policy (people[].id) to their Slack user id
// (people[].slack), "" when they have none. A nil UserIDs maps nobody.
type UserIDs func(person string) string

// mention writes a person threatgate means to mention: <@U…> when users
// gives a well-formed Slack id, else the person's id as plain text.
func mention(person string, users UserIDs) markup {
	if users != nil {
		if id := users(person); userID.MatchString(id) {
			return markup("<@" + id + ">")
		}
	}
	return markup(Escape(person))
}

// people writes a list of people, each as mention writes them.
func people(ps []string, users UserIDs) markup {
	var out []markup
	for _, p := range ps {
		if p != "" {
			out = append(out, mention(p, users))
		}
	}
	return joinWith(", ", out...)
}

// list writes outside names (groups, checklist items, e-mail addresses)
// separated by commas, each escaped.
func list(ss []string) markup {
	out := make([]markup, len(ss))
	for i, s := range ss {
		out[i] = markup(Escape(s))
	}
	return joinWith(", ", out...)
}

// date writes t as a Slack date token: each reader sees it in their own
// time zone ("Tuesday, 4 Nov at 10:00"); clients that cannot show it show
// the UTC fallback.
func date(t time.Time) markup {
	t = t.UTC()
	return markup(fmt.Sprintf("<!date^%d^{date_short_pretty} {time}|%s>", t.Unix(), t.Format("2006-01-02 15:04 MST")))
}

// shortSHA writes a head as inline code, or says there is none yet.
func shortSHA(sha string) markup {
	if sha == "" {
		return "(no commit yet)"
	}
	return code(shortHead(sha))
}

func shortHead(sha string) string {
	if len(sha) > 8 {
		return sha[:8]
	}
	return sha
}

// state writes a state the way people read it: "in review".
func state(s bot.State) string { return strings.ReplaceAll(string(s), "_", " ") }

// mrkdwn is a text object for escaped mrkdwn. verbatim is on: Slack keeps
// the markup and the tokens threatgate wrote, but links nothing on its own
// (no channel names, no bare mentions, no URLs in outside text).
func mrkdwn(m markup, n int) *sl.TextBlockObject {
	return &sl.TextBlockObject{Type: sl.MarkdownType, Text: string(fit(m, n)), Verbatim: true}
}

// plain is a plain_text object. Slack parses no markup in it, but the
// text is made inert all the same, in case a client ever did: < and > are
// replaced by look-alikes (‹ ›) and broadcasts broken as Escape does.
func plain(s string, n int) *sl.TextBlockObject {
	s = escape(s, false)
	if r := []rune(s); len(r) > n {
		s = string(r[:n-1]) + "…"
	}
	return sl.NewTextBlockObject(sl.PlainTextType, s, true, false)
}

// section is a section block with text (escaped mrkdwn) and fields.
func section(text markup, fields ...markup) *sl.SectionBlock {
	b := &sl.SectionBlock{Type: sl.MBTSection}
	if text != "" {
		b.Text = mrkdwn(text, maxText)
	}
	for _, f := range fields {
		if f != "" {
			b.Fields = append(b.Fields, mrkdwn(f, maxField))
		}
	}
	return b
}

// sections writes text followed by lines as few section blocks as Block
// Kit's length limit allows, breaking only between lines.
func sections(text markup, lines []markup) []sl.Block {
	var out []sl.Block
	cur := fit(text, maxText)
	for _, l := range lines {
		l = fit(l, maxText)
		switch {
		case cur == "":
			cur = l
		case utf8.RuneCountInString(string(cur))+1+utf8.RuneCountInString(string(l)) <= maxText:
			cur += "\n" + l
		default:
			out = append(out, section(cur))
			cur = l
		}
	}
	if cur != "" {
		out = append(out, section(cur))
	}
	return out
}

// fielded writes text and fields as section blocks of at most maxFields
// fields each; text goes in the first.
func fielded(text markup, fields []markup) []sl.Block {
	var out []sl.Block
	for len(fields) > maxFields {
		out = append(out, section(text, fields[:maxFields]...))
		text, fields = "", fields[maxFields:]
	}
	if text != "" || len(fields) > 0 {
		out = append(out, section(text, fields...))
	}
	return out
}

// contextBlock is a context block of escaped mrkdwn elements (empty ones
// left out); nil when there are none.
func contextBlock(elems ...markup) sl.Block {
	b := &sl.ContextBlock{Type: sl.MBTContext}
	for _, e := range elems {
		if e != "" && len(b.ContextElements.Elements) < maxContextElems {
			b.ContextElements.Elements = append(b.ContextElements.Elements, mrkdwn(e, maxText))
		}
	}
	if len(b.ContextElements.Elements) == 0 {
		return nil
	}
	return b
}

// compact drops nil blocks and keeps a message within maxBlocks: when
// there are more, the last ones give way to a note, and a trailing
// actions block (the card's buttons) is kept.
func compact(bs []sl.Block) []sl.Block {
	out := make([]sl.Block, 0, len(bs))
	for _, b := range bs {
		if v := reflect.ValueOf(b); b != nil && !(v.Kind() == reflect.Pointer && v.IsNil()) {
			out = append(out, b)
		}
	}
	if len(out) <= maxBlocks {
		return out
	}
	var actions sl.Block
	if a, ok := out[len(out)-1].(*sl.ActionBlock); ok {
		actions = a
		out = out[:len(out)-1]
	}
	keep := maxBlocks - 1
	if actions != nil {
		keep--
	}
	dropped := len(out) - keep
	out = append(out[:keep], contextBlock(md("%d more blocks left out; `/threatgate status` shows the rest.", dropped)))
	if actions != nil {
		out = append(out, actions)
	}
	return out
}
