package bot

import (
	"reflect"
	"strings"
	"testing"

	"github.com/threatgate/threatgate/policies"
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
		`/threatgate risk ESC-3 likelihood=2 impact=4 controls="WAF rule, rate limit" internal only`,
		`/threatgate risk Impact=5 likelihood=1 controls=“mTLS” "impact=3 is text"`,
		"/threatgate risk —validate esc-3 checked the WAF rule",
		"/threatgate retier ESC-1 T3 \"only touches docs  \"\nand tests",
		"/threatgate override-cap <@U123|ann> 3 incident week",
		"/threatgate defer 90m x",
		"/threatgate action ESC-4 due:2026-12-01 <@U123|bob> rotate the key",
		`/threatgate action "@bob is wrong" here`,
		"/threatgate action @ann\ndue: soon\nthe text",
		"/threatgate done esc-4 2",
		"/threatgate away until 2026-12-24",
		"/threatgate away off",
		"/threatgate incident group/proj!12 --fixed-by group/proj!13 tokens logged in plain text",
		"/threatgate incident https://gl.example.com/g/p/-/merge_requests/5 —fixed-by=g/p!6 \"--fixed-by is text\"",
		"/threatgate incident g/p!5 ESC-3 is not an id here",
		"/threatgate incident-fixed inc-007 rotated the keys",
		"/threatgate incident-fixed INC-2",
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

// FuzzParseThreadReply checks that a reply in a chat thread never panics,
// that every error is a *Problem, that an artifact it reads is one of the
// policy's kinds within the length limit, and that a message
// IsThreadCommand leaves alone is never read as an artifact. Seeds are
// committed under testdata/fuzz/FuzzParseThreadReply.
func FuzzParseThreadReply(f *testing.F) {
	pol := mustPolicy(f, `
version: 1
signals:
  - {id: auth, category: access-control, weight: 50, when: {paths: ["**/auth/**"]}}
tiers:
  - {id: T2, name: high, when: {min_score: 50}, artifacts: [threat-model], approvals: [{group: appsec, count: 1}]}
groups:
  appsec: {members: [alice]}
people:
  - {gitlab: alice, email: alice@example.com}
intake:
  - {id: summary, prompt: 'What?'}
`)
	for _, s := range []string{
		"threat-model: https://wiki.example.com/tm",
		"threat-model:\nAssets: sessions\nSpoofing: threat: … | mitigation: mTLS | status: mitigated",
		"summary: tokens are logged",
		"/approve --check a=b fine",
		"looks good to me",
		"rollback-plan: revert",
		"threat-model:",
		"  threat-model :  x",
		"<@U0BOT> approve",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		c, err := ParseThreadReply(s, pol)
		if err != nil {
			if _, ok := IsProblem(err); !ok {
				t.Fatalf("ParseThreadReply(%q) error %T %v, want a *Problem", s, err, err)
			}
			return
		}
		if c.Verb == VerbArtifact && !strings.HasPrefix(strings.TrimSpace(s), "/") {
			if _, ok := pol.Artifact(c.Artifact); !ok || c.Ref == "" || len(c.Ref) > maxTextBytes {
				t.Fatalf("ParseThreadReply(%q) = artifact %q %q", s, c.Artifact, c.Ref)
			}
			if !IsThreadCommand(s, pol) {
				t.Fatalf("ParseThreadReply(%q) read an artifact from what IsThreadCommand calls conversation", s)
			}
		}
	})
}

func mustPolicy(tb testing.TB, src string) *policies.Policy {
	tb.Helper()
	p, err := policies.Load("fuzz.yaml", []byte(src))
	if err != nil {
		tb.Fatal(err)
	}
	return p
}
