package slack

import "strings"

// zwj is the zero-width joiner Escape puts after the @ of a special
// mention: invisible, and Slack no longer reads "@\u200dhere" as @here.
const zwj = "\u200d"

// specials are the words Slack may turn into a broadcast when they follow
// an @ in text it parses: @channel, @here, @everyone and the legacy
// @group. Lower case; matched without regard to case.
var specials = []string{"channel", "here", "everyone", "group"}

// Escape makes text that came from outside threatgate (MR titles, diff
// evidence, rationales, reasons, intake answers, e-mail addresses, the
// answer to a command) inert in Slack mrkdwn, so that it reads the same
// and does nothing else:
//
//   - &, < and > become &amp;, &lt; and &gt;, the only escapes mrkdwn has.
//     Every Slack control sequence starts with <, so <!channel>, <!here>,
//     <!everyone>, <!subteam^S1>, <@U123>, <#C1>, <!date^...> and
//     <http://evil|click> are shown as typed, and a typed entity (&lt;)
//     is shown as typed too.
//   - A bare @channel, @here, @everyone or @group (any case, anywhere)
//     gets a zero-width joiner after its @: Slack may link these in text
//     it parses automatically (the fallback text of a message has no
//     verbatim switch).
//
// Escape is for one piece of text at a time, exactly once: the renderers
// escape every piece and add threatgate's own markup (bold, quotes, date
// tokens, the mentions it means to make) around the escaped pieces.
// Escaping twice shows "&amp;" where "&" was written.
func Escape(s string) string { return escape(s, true) }

// escape is Escape; with entities false it only breaks broadcasts and
// replaces < and > by look-alikes (‹ ›), for plain_text, where Slack shows
// entities as typed.
func escape(s string, entities bool) string {
	if !strings.ContainsAny(s, "&<>@") {
		return s
	}
	var b strings.Builder
	b.Grow(len(s) + 16)
	for i := 0; i < len(s); i++ {
		switch c := s[i]; {
		case c == '&' && entities:
			b.WriteString("&amp;")
		case c == '<':
			if entities {
				b.WriteString("&lt;")
			} else {
				b.WriteString("‹")
			}
		case c == '>':
			if entities {
				b.WriteString("&gt;")
			} else {
				b.WriteString("›")
			}
		case c == '@':
			b.WriteByte(c)
			if special(s[i+1:]) {
				b.WriteString(zwj)
			}
		default:
			b.WriteByte(c) // multi-byte runes are copied byte by byte, unchanged
		}
	}
	return b.String()
}

// special reports whether rest (what follows an @) starts with a word
// Slack may read as a broadcast mention.
func special(rest string) bool {
	for _, w := range specials {
		if len(rest) >= len(w) && strings.EqualFold(rest[:len(w)], w) {
			return true
		}
	}
	return false
}
