package web

import (
	"strings"
	"unicode"
	"unicode/utf8"
)

// zwj is the zero-width joiner that neutralize puts into mentions: it
// shows nothing, and no chat reads "@\u200dall" or "<\u200d!here>" as a
// mention.
const zwj = '\u200d'

// neutralize makes the mentions in s inert, for text that may hold text
// from outside threatgate (MR titles, diff evidence, commands people
// typed, rationales) before the console shows it: an @ that starts a word
// (@all, @here, @channel, @everyone, @group, @alice) gets a zero-width
// joiner after it, and so does the < of Slack's and Discord's mention
// syntax (<!channel>, <!here>, <@U123>, <@&123>, <#C123>). The text reads
// the same. An @ inside a word (ann@example.com) is no mention anywhere
// and is left alone. neutralize(neutralize(s)) == neutralize(s).
//
// threatgate's own mentions are not in the text: they are a post's
// Mention list, rendered apart.
func neutralize(s string) string {
	if !strings.ContainsAny(s, "@<") {
		return s
	}
	var b strings.Builder
	b.Grow(len(s) + 8)
	prev := rune(-1) // the rune before r; -1 at the start
	for i := 0; i < len(s); {
		r, w := utf8.DecodeRuneInString(s[i:])
		b.WriteString(s[i : i+w]) // invalid bytes are kept as they are
		i += w
		next := rune(-1) // the rune after r; -1 at the end
		if i < len(s) {
			next, _ = utf8.DecodeRuneInString(s[i:])
		}
		switch {
		case next == -1 || next == zwj:
		case r == '@' && !wordRune(prev) && !unicode.IsSpace(next):
			b.WriteRune(zwj)
		case r == '<' && (next == '!' || next == '@' || next == '#'):
			b.WriteRune(zwj)
		}
		prev = r
	}
	return b.String()
}

// wordRune reports whether r can precede the @ of an e-mail address.
func wordRune(r rune) bool {
	return r == '_' || unicode.IsLetter(r) || unicode.IsDigit(r)
}
