package gitlab

import (
	"regexp"
	"strings"
	"unicode"
	"unicode/utf8"

	"github.com/threatgate/threatgate/bot"
)

// zwj is the zero-width joiner Neutralize inserts: invisible when the note
// is rendered, but GitLab no longer sees a reference or a quick action.
const zwj = "\u200d"

// entityAt matches the HTML character references GitLab's Markdown turns
// into "@" before it looks for references: &#64;, &#x40; and &commat;.
var entityAt = regexp.MustCompile(`(?i)&(?:#0*64|#x0*40|commat);`)

// Neutralize makes text safe to post as a GitLab note: nothing in it
// mentions anyone or runs a quick action, and it reads the same.
//
//   - Every "@" that would start a reference (@all, @here, @user,
//     @group/sub, also written &#64; &#x40; &commat;) gets a zero-width
//     joiner after it. GitLab only sees a reference when the "@" is not
//     preceded by an ASCII letter, digit or underscore, so an e-mail
//     address such as a@b.c is left as it is (GitLab does not mention
//     anyone for it either).
//   - Every line whose first non-space character is "/" gets a zero-width
//     joiner right before the "/" (after its indentation, so indented code
//     keeps its layout): GitLab runs quick actions (/approve, /merge,
//     /unlabel...) only from lines that start with "/".
//
// Line ends (\n or \r\n) are kept. Text with none of these is returned
// unchanged. Neutralize is idempotent.
func Neutralize(s string) string {
	if !strings.ContainsAny(s, "@/&") {
		return s
	}
	s = entityAt.ReplaceAllString(s, "@")
	var b strings.Builder
	b.Grow(len(s) + 16)
	lineStart := true // only spaces seen since the last line break
	for i := 0; i < len(s); {
		r, size := utf8.DecodeRuneInString(s[i:])
		switch {
		case r == '\n':
			lineStart = true
		case r == '/' && lineStart:
			b.WriteString(zwj)
			lineStart = false
		case r == '@' && mentionStart(s, i):
			b.WriteString("@" + zwj)
			lineStart = false
			i += size
			continue
		case lineStart && unicode.IsSpace(r):
			// Indentation, \r of a \r\n, a no-break space...
		default:
			lineStart = false
		}
		b.WriteString(s[i : i+size])
		i += size
	}
	return b.String()
}

// mentionStart reports whether the "@" at s[i] starts a GitLab reference:
// it is followed by a character a username or group path starts with, and
// not preceded by an ASCII word character (GitLab's (?<!\w)).
func mentionStart(s string, i int) bool {
	if i+1 >= len(s) {
		return false
	}
	if n := s[i+1]; !(isWordByte(n) || n == '.' || n == '-') {
		return false
	}
	return i == 0 || !isWordByte(s[i-1])
}

func isWordByte(c byte) bool {
	return c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '_'
}

// username matches what GitLab accepts as a username.
var username = regexp.MustCompile(`^[A-Za-z0-9_][A-Za-z0-9_.-]*$`)

// ValidUsername reports whether s can be a GitLab username, so that
// "@" + s mentions exactly that user and nothing else.
func ValidUsername(s string) bool { return len(s) <= 255 && username.MatchString(s) }

// noteText is the body threatgate posts for a note effect: e.Body()
// neutralised, after the mentions e asks for. For an MR note, e.Mention
// holds GitLab usernames (the author of the comment an answer is for);
// they are the only mentions threatgate ever makes in GitLab, and a name
// that is not a valid username is dropped rather than posted.
func noteText(e bot.Effect) string {
	body := Neutralize(e.Body())
	var at strings.Builder
	seen := map[string]bool{}
	for _, m := range e.Mention {
		if !ValidUsername(m) || seen[strings.ToLower(m)] {
			continue
		}
		seen[strings.ToLower(m)] = true
		at.WriteString("@" + m + " ")
	}
	return at.String() + body
}
