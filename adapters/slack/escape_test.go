package slack

import "testing"

func TestEscape(t *testing.T) {
	for _, tt := range []struct{ in, want string }{
		{"", ""},
		{"plain words, no markup", "plain words, no markup"},
		{"a & b", "a &amp; b"},
		{"x < y > z", "x &lt; y &gt; z"},
		{"<!channel>", "&lt;!channel&gt;"},
		{"<!here>", "&lt;!here&gt;"},
		{"<!everyone>", "&lt;!everyone&gt;"},
		{"<!subteam^S0123|@appsec>", "&lt;!subteam^S0123|@appsec&gt;"},
		{"<@U123>", "&lt;@U123&gt;"},
		{"<@W123|ann>", "&lt;@W123|ann&gt;"},
		{"<#C1>", "&lt;#C1&gt;"},
		{"<#C1|general>", "&lt;#C1|general&gt;"},
		{"<http://evil|click>", "&lt;http://evil|click&gt;"},
		{"<mailto:a@b.c|mail>", "&lt;mailto:a@b.c|mail&gt;"},
		{"<!date^1^{date}|now>", "&lt;!date^1^{date}|now&gt;"},
		{"&lt;!here&gt;", "&amp;lt;!here&amp;gt;"}, // a typed entity is shown as typed
		{"&amp;", "&amp;amp;"},
		{"@channel", "@\u200dchannel"},
		{"@here now", "@\u200dhere now"},
		{"hey @everyone!", "hey @\u200deveryone!"},
		{"@HERE @Channel", "@\u200dHERE @\u200dChannel"},
		{"@group", "@\u200dgroup"},
		{"@channels", "@\u200dchannels"}, // a prefix is enough to be careful
		{"ann@example.com", "ann@example.com"},
		{"@alice", "@alice"}, // Slack mentions users only by <@U…>
		{"@", "@"},
		{"line one\n> two\n<!here>", "line one\n&gt; two\n&lt;!here&gt;"},
		{"é <b>ü</b> 😀", "é &lt;b&gt;ü&lt;/b&gt; 😀"},
		{"*bold* _it_ `code`", "*bold* _it_ `code`"}, // formatting is no injection: it stays
	} {
		if got := Escape(tt.in); got != tt.want {
			t.Errorf("Escape(%q) = %q, want %q", tt.in, got, tt.want)
		}
	}
}

func FuzzEscape(f *testing.F) {
	for _, s := range []string{"<!here>", "a & b", "@channel", "&lt;", "é<"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		got := Escape(s)
		for _, c := range []string{"<", ">"} {
			if contains(got, c) {
				t.Fatalf("Escape(%q) = %q keeps %q", s, got, c)
			}
		}
		if hasBroadcast(got) {
			t.Fatalf("Escape(%q) = %q keeps a broadcast mention", s, got)
		}
	})
}
