package web

import "testing"

func TestNeutralize(t *testing.T) {
	const j = "\u200d"
	for _, tt := range []struct{ in, want string }{
		{"", ""},
		{"no mentions here", "no mentions here"},
		{"@all", "@" + j + "all"},
		{"ping @here and @channel, @everyone!", "ping @" + j + "here and @" + j + "channel, @" + j + "everyone!"},
		{"cc @appsec-team (@alice)", "cc @" + j + "appsec-team (@" + j + "alice)"},
		{"line one\n@group", "line one\n@" + j + "group"},
		{"see @" + j + "all", "see @" + j + "all"}, // already inert
		{"<!channel> <!here> <!everyone>", "<" + j + "!channel> <" + j + "!here> <" + j + "!everyone>"},
		{"<@U0123ABC> and <@&112233> in <#C0123>", "<" + j + "@" + j + "U0123ABC> and <" + j + "@" + j + "&112233> in <" + j + "#C0123>"},
		{"<" + j + "!channel>", "<" + j + "!channel>"},
		{"ann@example.com wrote it", "ann@example.com wrote it"}, // an address, no mention
		{"Dr_Ann@example.com", "Dr_Ann@example.com"},
		{"a @ b", "a @ b"},
		{"trailing @", "trailing @"},
		{"x < y <b>bold</b>", "x < y <b>bold</b>"},
		{"<script>alert(1)</script> @all", "<script>alert(1)</script> @" + j + "all"},
		{"bad \xff@all", "bad \xff@" + j + "all"},
		{"日本@all", "日本@all"}, // letters before: a word, as in an address
		{"「@all」", "「@" + j + "all」"},
	} {
		got := neutralize(tt.in)
		if got != tt.want {
			t.Errorf("neutralize(%q) = %q, want %q", tt.in, got, tt.want)
		}
		if again := neutralize(got); again != got {
			t.Errorf("neutralize(neutralize(%q)) = %q, want %q", tt.in, again, got)
		}
	}
}
