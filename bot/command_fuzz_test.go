package bot

import (
	"reflect"
	"testing"
)

// FuzzParseCommand checks that ParseCommand never panics, that every
// error is a *Problem, and that every command it accepts reads back
// unchanged from its String form. The seeds are also committed under
// testdata/fuzz/FuzzParseCommand.
func FuzzParseCommand(f *testing.F) {
	for _, s := range []string{
		"/escalate group/sub/proj!12 --tier T2 --urgent touches the auth middleware",
		"/escalate https://gitlab.example.com:8443/g/p/-/merge_requests/7/diffs?tab=x#note_12 new crypto\nsummary: SAML\nmore detail",
		"/escalate <https://gl.example.com/g/p/-/merge_requests/5|g/p!5> why",
		`/approve esc-7 --check data-sensitivity="no PII" --check authz='yes' don't merge "yet`,
		"/approve —check data=“no PII” ok",
		"/threatgate help override-cap",
		"/threatgate status ESC-3",
		"/threatgate reject\nESC-5 leaks keys\nseverity: high",
		"/threatgate artifact ESC-2 threat-model https://wiki.example/tm/42\nreviewed with ann",
		"/threatgate defer ESC-1 2025-07-01 vendor fix\r\n",
		"/threatgate risk 12 likely but contained",
		"/threatgate retier ESC-1 T3 \"only touches docs  \"\nand tests",
		"/threatgate override-cap <@U123|ann> 3 incident week",
		"/threatgate defer 90m x",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		c, err := ParseCommand(s)
		if err != nil {
			if _, ok := IsProblem(err); !ok {
				t.Fatalf("ParseCommand(%q) error %T %v, want a *Problem", s, err, err)
			}
			return
		}
		out := c.String()
		again, err := ParseCommand(out)
		if err != nil {
			t.Fatalf("ParseCommand(%q) = %#v\nbut its String %q does not parse: %v", s, c, out, err)
		}
		if !reflect.DeepEqual(again, c) {
			t.Fatalf("ParseCommand(%q) through String %q\n got %#v\nwant %#v", s, out, again, c)
		}
		if out2 := again.String(); out2 != out {
			t.Fatalf("String not stable: %q then %q", out, out2)
		}
	})
}
