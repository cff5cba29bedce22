package gitlab

import (
	"context"
	"regexp"
	"strings"
	"testing"

	"github.com/threatgate/threatgate/bot"
)

func TestNeutralize(t *testing.T) {
	const z = "\u200d"
	for _, tt := range []struct {
		name, in, want string
	}{
		{"plain text is unchanged", "ESC-4 T2: needs threat-model; 0/1 appsec", "ESC-4 T2: needs threat-model; 0/1 appsec"},
		{"empty", "", ""},
		{"@all", "ping @all now", "ping @" + z + "all now"},
		{"@here at the start", "@here look", "@" + z + "here look"},
		{"a user", "thanks @alice.", "thanks @" + z + "alice."},
		{"a group and a subgroup", "cc @security and @shop/security-team", "cc @" + z + "security and @" + z + "shop/security-team"},
		{"after punctuation and brackets", "(@all) \"@bob\" -@eve", "(@" + z + "all) \"@" + z + "bob\" -@" + z + "eve"},
		{"after a non-ASCII letter (GitLab's \\w is ASCII)", "é@all", "é@" + z + "all"},
		// GitLab mentions nobody for an e-mail address (the "@" follows a
		// word character), so it is left readable and copyable.
		{"an e-mail address is unchanged", "mail ann@example.com or a@b.c", "mail ann@example.com or a@b.c"},
		{"a lone @ is unchanged", "meet @ 10, user@", "meet @ 10, user@"},
		{"@@user: the second one mentions", "@@alice", "@@" + z + "alice"},
		{"HTML references to @", "&#64;all &#x40;here &commat;bob &#0064;eve", "@" + z + "all @" + z + "here @" + z + "bob @" + z + "eve"},
		{"a quick action on the first line", "/approve", z + "/approve"},
		{"quick actions on later lines", "LGTM\n/merge\n/unlabel ~security", "LGTM\n" + z + "/merge\n" + z + "/unlabel ~security"},
		{"an indented quick action keeps its indentation", "text\n    /approve\n\t/merge", "text\n    " + z + "/approve\n\t" + z + "/merge"},
		{"a no-break space is indentation too", "\u00a0/approve", "\u00a0" + z + "/approve"},
		{"CRLF line ends are kept", "a\r\n/approve\r\n@all\r\n", "a\r\n" + z + "/approve\r\n@" + z + "all\r\n"},
		{"a slash inside a line is unchanged", "see a/b and https://x/y", "see a/b and https://x/y"},
		{"both on one line", "/assign @bob", z + "/assign @" + z + "bob"},
		{"invalid UTF-8 is kept byte for byte", "\xff/x @all", "\xff/x @" + z + "all"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			got := Neutralize(tt.in)
			if got != tt.want {
				t.Errorf("Neutralize(%q) = %q, want %q", tt.in, got, tt.want)
			}
			if again := Neutralize(got); again != got {
				t.Errorf("Neutralize is not idempotent: %q -> %q", got, again)
			}
		})
	}
}

func TestNoteTextMentionsOnlyTheAnswersAuthor(t *testing.T) {
	const z = "\u200d"
	for _, tt := range []struct {
		name    string
		mention []string
		text    string
		want    string
	}{
		{"the author is mentioned, the text is neutralised", []string{"alice"}, "done @all\n/approve", "@alice done @" + z + "all\n" + z + "/approve"},
		{"the mention goes before a first-line quick action", []string{"bob"}, "/merge", "@bob " + z + "/merge"},
		{"an invalid username is dropped", []string{"all here", "x/y", "@eve", ""}, "hi", "hi"},
		{"no mention", nil, "hi @all", "hi @" + z + "all"},
		{"one mention per user", []string{"Ann", "ann"}, "hi", "@Ann hi"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			got := noteText(bot.Effect{Kind: bot.EffectMRNote, Text: tt.text, Mention: tt.mention})
			if got != tt.want {
				t.Errorf("noteText = %q, want %q", got, tt.want)
			}
		})
	}
	// The escalation id placeholder is filled before neutralising.
	if got := noteText(bot.Effect{Kind: bot.EffectMRNote, Escalation: "ESC-9", Text: bot.IDPlaceholder + " @all"}); !strings.HasPrefix(got, "ESC-9 @"+z) {
		t.Errorf("noteText = %q", got)
	}
}

func TestValidUsername(t *testing.T) {
	for s, want := range map[string]bool{
		"alice": true, "a.b-c_d": true, "_x": true, "9lives": true,
		"": false, ".dot": false, "-dash": false, "a b": false, "a/b": false, "@a": false, "ä": false,
	} {
		if got := ValidUsername(s); got != want {
			t.Errorf("ValidUsername(%q) = %v, want %v", s, got, want)
		}
	}
}

func TestDryRunRecordsNotesAsTheyWouldBePosted(t *testing.T) {
	d := &DryRun{}
	d.PostNote(context.Background(), bot.Effect{Kind: bot.EffectMRNote, Escalation: "ESC-2", Project: "shop/api", MRIID: 3,
		Text: bot.IDPlaceholder + ": @all\n/merge", Mention: []string{"bob"}})
	a := d.Actions()
	if len(a) != 1 || a[0].Text != "@bob ESC-2: @\u200dall\n\u200d/merge" || a[0].Escalation != "ESC-2" {
		t.Errorf("dry run recorded %+v", a)
	}
}

// FuzzNeutralize: whatever the text, what threatgate posts to GitLab has no
// line that starts a quick action and no "@" that starts a reference, reads
// the same once neutralised again, and never panics.
func FuzzNeutralize(f *testing.F) {
	for _, s := range []string{"@all please", "/merge\n  /approve", "a@b.c", "&#64;all &#x40;here &commat;x", "\r\n/x", "@", "x@", "\u00a0/close", "@\u200dall"} {
		f.Add(s)
	}
	quick := regexp.MustCompile(`(?m)^[\s\x{00a0}]*/`)
	mention := regexp.MustCompile(`(^|[^A-Za-z0-9_])@[A-Za-z0-9_.-]`)
	f.Fuzz(func(t *testing.T, s string) {
		got := Neutralize(s)
		if quick.MatchString(got) {
			t.Fatalf("Neutralize(%q) = %q starts a line with /", s, got)
		}
		if mention.MatchString(got) {
			t.Fatalf("Neutralize(%q) = %q keeps a mention", s, got)
		}
		if again := Neutralize(got); again != got {
			t.Fatalf("Neutralize is not idempotent on %q: %q then %q", s, got, again)
		}
	})
}
