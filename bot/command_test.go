package bot

import (
	"reflect"
	"strings"
	"testing"
	"time"
)

func TestParseCommand(t *testing.T) {
	date := func(y int, m time.Month, d int) time.Time { return time.Date(y, m, d, 0, 0, 0, 0, time.UTC) }
	for _, tt := range []struct {
		name string
		in   string
		want Command
	}{
		// escalate
		{"escalate short form with flags",
			"/escalate group/sub/proj!12 --tier T2 --urgent touches   the auth middleware",
			Command{Verb: VerbEscalate, MR: MRRef{Project: "group/sub/proj", IID: 12}, Tier: "T2", Urgent: true, Text: "touches   the auth middleware"}},
		{"escalate URL with port, diffs and note",
			"/escalate https://gitlab.example.com:8443/g/sub/p.x_y-z/-/merge_requests/7/diffs#note_12 new crypto",
			Command{Verb: VerbEscalate, MR: MRRef{Project: "g/sub/p.x_y-z", IID: 7, URL: "https://gitlab.example.com:8443/g/sub/p.x_y-z/-/merge_requests/7/diffs#note_12"}, Text: "new crypto"}},
		{"escalate URL with query",
			"/escalate http://gl/g/p/-/merge_requests/9?tab=overview why",
			Command{Verb: VerbEscalate, MR: MRRef{Project: "g/p", IID: 9, URL: "http://gl/g/p/-/merge_requests/9?tab=overview"}, Text: "why"}},
		{"escalate Slack link",
			"/escalate <https://gl.example.com/g/p/-/merge_requests/5|g/p!5> why",
			Command{Verb: VerbEscalate, MR: MRRef{Project: "g/p", IID: 5, URL: "https://gl.example.com/g/p/-/merge_requests/5"}, Text: "why"}},
		{"escalate flags before the MR, inline value",
			"/escalate --urgent --tier=T1 g/p!3 why",
			Command{Verb: VerbEscalate, MR: MRRef{Project: "g/p", IID: 3}, Tier: "T1", Urgent: true, Text: "why"}},
		{"escalate fields and more lines",
			"/escalate g/p!1 adds SSO\nsummary: new SAML login\n  data-classes:   user emails  \nMore detail here.\n  indented\n",
			Command{Verb: VerbEscalate, MR: MRRef{Project: "g/p", IID: 1},
				Fields: map[string]string{"summary": "new SAML login", "data-classes": "user emails"},
				Text:   "adds SSO\nMore detail here.\n  indented"}},
		{"escalate reason on the next line",
			"/escalate g/p!1\nreason on the next line\nsee https://x.example/y",
			Command{Verb: VerbEscalate, MR: MRRef{Project: "g/p", IID: 1}, Text: "reason on the next line\nsee https://x.example/y"}},
		{"threatgate escalate",
			"/threatgate escalate g/p!1 reason",
			Command{Verb: VerbEscalate, MR: MRRef{Project: "g/p", IID: 1}, Text: "reason"}},
		{"escalate quoted reason stays text",
			`/escalate g/p!1 "--urgent is not a flag here"`,
			Command{Verb: VerbEscalate, MR: MRRef{Project: "g/p", IID: 1}, Text: "--urgent is not a flag here"}},
		{"leading whitespace and CRLF",
			" \r\n\t/escalate g/p!1 why\r\nsummary: x\r\n",
			Command{Verb: VerbEscalate, MR: MRRef{Project: "g/p", IID: 1}, Text: "why", Fields: map[string]string{"summary": "x"}}},

		// approve
		{"approve bare", "/approve", Command{Verb: VerbApprove}},
		{"approve with checks",
			`/approve esc-7 --check data-sensitivity="no PII" --check Authz=yes looks good`,
			Command{Verb: VerbApprove, Escalation: "ESC-7",
				Checks: map[string]string{"data-sensitivity": "no PII", "authz": "yes"}, Text: "looks good"}},
		{"approve canonical escalation number", "/approve ESC-007", Command{Verb: VerbApprove, Escalation: "ESC-7"}},
		{"approve curly and single quotes",
			"/approve --check data=“no PII” --check=ok='it is' fine",
			Command{Verb: VerbApprove, Checks: map[string]string{"data": "no PII", "ok": "it is"}, Text: "fine"}},
		{"approve apostrophes and stray quotes in text",
			`/approve ESC-1 don't   merge "yet`,
			Command{Verb: VerbApprove, Escalation: "ESC-1", Text: `don't   merge "yet`}},
		{"approve quoted text is literal",
			`/approve "ESC-5 is fine too"`,
			Command{Verb: VerbApprove, Text: "ESC-5 is fine too"}},
		{"approve em dash flag from a phone",
			"/approve —check a=b ok — really",
			Command{Verb: VerbApprove, Checks: map[string]string{"a": "b"}, Text: "ok — really"}},
		{"threatgate approve", "/threatgate approve ESC-2 lgtm", Command{Verb: VerbApprove, Escalation: "ESC-2", Text: "lgtm"}},

		// help, status, backlog
		{"threatgate alone", "/threatgate", Command{Verb: VerbHelp}},
		{"help", "/threatgate help", Command{Verb: VerbHelp}},
		{"help verb, any case", "/THREATGATE Help Override-Cap", Command{Verb: VerbHelp, Text: "override-cap"}},
		{"help slash verb", "/threatgate help /escalate", Command{Verb: VerbHelp, Text: "escalate"}},
		{"status", "/threatgate status", Command{Verb: VerbStatus}},
		{"status id", "/threatgate status esc-3", Command{Verb: VerbStatus, Escalation: "ESC-3"}},
		{"backlog", "/threatgate backlog  ", Command{Verb: VerbBacklog}},

		// free-text verbs
		{"reject", "/threatgate reject ESC-1 stores tokens in plain text",
			Command{Verb: VerbReject, Escalation: "ESC-1", Text: "stores tokens in plain text"}},
		{"reject with a field", "/threatgate reject tokens in logs\nseverity: high",
			Command{Verb: VerbReject, Text: "tokens in logs", Fields: map[string]string{"severity": "high"}}},
		{"dissent", "/threatgate dissent I'd have asked for a pentest",
			Command{Verb: VerbDissent, Text: "I'd have asked for a pentest"}},
		{"action", "/threatgate action ESC-4 rotate the signing key\nby Friday",
			Command{Verb: VerbAction, Escalation: "ESC-4", Text: "rotate the signing key\nby Friday"}},
		{"withdraw", "/threatgate withdraw ESC-9 opened by mistake",
			Command{Verb: VerbWithdraw, Escalation: "ESC-9", Text: "opened by mistake"}},

		// artifact
		{"artifact", "/threatgate artifact ESC-2 threat-model https://wiki.example/tm/42\nreviewed with ann",
			Command{Verb: VerbArtifact, Escalation: "ESC-2", Artifact: "threat-model", Ref: "https://wiki.example/tm/42", Text: "reviewed with ann"}},
		{"artifact text ref", "/threatgate artifact Pentest-2 see the  report in the vault",
			Command{Verb: VerbArtifact, Artifact: "pentest-2", Ref: "see the  report in the vault"}},

		// defer
		{"defer date", "/threatgate defer 2025-07-01 waiting for the vendor",
			Command{Verb: VerbDefer, Until: date(2025, 7, 1), Text: "waiting for the vendor"}},
		{"defer days", "/threatgate defer ESC-1 3d vendor", Command{Verb: VerbDefer, Escalation: "ESC-1", For: 72 * time.Hour, Text: "vendor"}},
		{"defer weeks", "/threatgate defer 2w vendor", Command{Verb: VerbDefer, For: 14 * 24 * time.Hour, Text: "vendor"}},
		{"defer Go duration", "/threatgate defer 90m vendor", Command{Verb: VerbDefer, For: 90 * time.Minute, Text: "vendor"}},

		// risk
		{"risk", "/threatgate risk ESC-1 12 likely but contained",
			Command{Verb: VerbRisk, Escalation: "ESC-1", Risk: 12, Text: "likely but contained"}},
		{"risk without rationale", "/threatgate risk 25", Command{Verb: VerbRisk, Risk: 25}},

		// retier
		{"retier", "/threatgate retier ESC-1 T3 only touches docs",
			Command{Verb: VerbRetier, Escalation: "ESC-1", Tier: "T3", Text: "only touches docs"}},

		// override-cap
		{"override-cap", "/threatgate override-cap @ann 3 incident week",
			Command{Verb: VerbOverrideCap, Person: "ann", Count: 3, Text: "incident week"}},
		{"override-cap default count", "/threatgate override-cap ann.smith incident week",
			Command{Verb: VerbOverrideCap, Person: "ann.smith", Count: 1, Text: "incident week"}},
		{"override-cap Slack mention", "/threatgate override-cap <@U123ABC|ann> 2 incident",
			Command{Verb: VerbOverrideCap, Person: "U123ABC", Count: 2, Text: "incident"}},
		{"override-cap Discord mention", "/threatgate override-cap <@!80351110224678912> oncall",
			Command{Verb: VerbOverrideCap, Person: "80351110224678912", Count: 1, Text: "oncall"}},
		{"override-cap quoted number is text", `/threatgate override-cap ann "3 more needed"`,
			Command{Verb: VerbOverrideCap, Person: "ann", Count: 1, Text: "3 more needed"}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			got, err := ParseCommand(tt.in)
			if err != nil {
				t.Fatalf("ParseCommand(%q): %v", tt.in, err)
			}
			if !reflect.DeepEqual(got, tt.want) {
				t.Fatalf("ParseCommand(%q)\n got %#v\nwant %#v", tt.in, got, tt.want)
			}
			again, err := ParseCommand(got.String())
			if err != nil {
				t.Fatalf("ParseCommand(String() = %q): %v", got.String(), err)
			}
			if !reflect.DeepEqual(again, got) {
				t.Errorf("round trip through %q\n got %#v\nwant %#v", got.String(), again, got)
			}
		})
	}
}

func TestParseCommandProblems(t *testing.T) {
	long := "/threatgate reject " + strings.Repeat("x", 4001)
	for _, tt := range []struct {
		name string
		in   string
		err  string // in the Problem text
	}{
		{"empty", "", "empty command"},
		{"blank", " \n\t ", "empty command"},
		{"not a command", "please escalate", `want a command starting with /escalate, /approve or /threatgate, got "please escalate"`},
		{"unknown command", "/foo bar", `unknown command "/foo"; want /escalate, /approve or /threatgate`},
		{"command typo", "/escalte g/p!1 x", `(did you mean "/escalate"?)`},
		{"unknown verb", "/threatgate frobnicate", `/threatgate: unknown command "frobnicate"; want one of help, status, backlog, reject, dissent, artifact, defer, action, done, risk, retier, withdraw, override-cap, away, approve, escalate, intake`},
		{"verb typo", "/threatgate aprove", `did you mean "approve"?`},
		{"too long", "/threatgate reject " + strings.Repeat("x", 9000), "the limit is 8192 bytes (8 KiB)"},
		{"text too long", long, "/threatgate reject: the rationale is 4001 bytes; the limit is 4000 bytes"},
		{"control character", "/approve \x1b[31mred", "control character U+001B"},
		{"not UTF-8", "/approve \xff", "not valid UTF-8"},
		{"unterminated quote", `/approve --check data="no PII`, `/approve: unterminated " quote in "data=\"no PII"`},
		{"unterminated single quote", `/threatgate retier 'T2 x`, "unterminated ' quote"},
		{"duplicate field", "/escalate g/p!1 why\nsummary: a\nother text\nsummary: b", `/escalate: field "summary" is given twice, on lines 2 and 4`},

		// escalate
		{"escalate without MR", "/escalate", "/escalate: want a merge request such as group/proj!12 or its URL, got nothing; usage: /escalate <group/proj!iid | MR URL>"},
		{"escalate without reason", "/escalate g/p!1 --urgent", "/escalate: reason required; usage: /escalate"},
		{"escalate with fields but no reason", "/escalate g/p!1\nsummary: x", "/escalate: reason required"},
		{"escalate IID zero", "/escalate g/p!0 x", `want a positive merge request number after !, got "g/p!0"`},
		{"escalate IID not a number", "/escalate g/p!12a x", "want a positive merge request number"},
		{"escalate IID missing", "/escalate g/p x", `want a merge request such as group/proj!12 or its URL, got "g/p"`},
		{"escalate without namespace", "/escalate proj!1 x", "with its group"},
		{"escalate bad project", "/escalate g/../p!1 x", "with its group"},
		{"escalate ESC instead of MR", "/escalate ESC-1 x", `got "ESC-1"`},
		{"escalate URL without merge_requests", "/escalate https://gl.example.com/g/p/merge_requests/1 x", `want a merge request URL such as https://gitlab.example.com/group/proj/-/merge_requests/12, got "https://gl.example.com/g/p/merge_requests/1"`},
		{"escalate URL bad IID", "/escalate https://gl.example.com/g/p/-/merge_requests/x1 x", "want a positive merge request number after /-/merge_requests/"},
		{"escalate URL without namespace", "/escalate https://gl.example.com/p/-/merge_requests/1 x", "project path"},
		{"escalate URL scheme", "/escalate ftp://gl.example.com/g/p/-/merge_requests/1 x", "want a merge request URL"},
		{"escalate URL not a URL", "/escalate https://gl.example.com:port/g/p/-/merge_requests/1 x", "not a valid URL"},
		{"escalate URL credentials", "/escalate https://bob:hunter2@gl.example.com/g/p/-/merge_requests/1 x", "remove the user name and password"},
		{"escalate URL token", "/escalate https://gl.example.com/g/p/-/merge_requests/1?private_token=abc x", "remove the token"},
		{"escalate unknown flag", "/escalate g/p!1 --fast x", `/escalate: unknown flag "--fast"; /escalate takes --tier T and --urgent`},
		{"escalate tier missing", "/escalate g/p!1 --tier", "/escalate --tier: want a tier such as T2, got nothing"},
		{"escalate tier is a flag", "/escalate g/p!1 --tier --urgent x", `/escalate --tier: want a tier such as T2, got "--urgent"`},
		{"escalate tier empty inline", "/escalate g/p!1 --tier= x", "want a tier such as T2 after =, got nothing"},
		{"escalate tier bad", "/escalate g/p!1 --tier T/2 x", `want a tier such as T2 (letters, digits, - and _), got "T/2"`},
		{"escalate tier twice", "/escalate g/p!1 --tier T1 --tier T2 x", "/escalate --tier: given twice"},
		{"escalate urgent value", "/escalate g/p!1 --urgent=yes x", "/escalate --urgent: takes no value"},
		{"escalate flag after reason", "/escalate g/p!1 needs a look --urgent", `put flags before the reason: found "--urgent" after it`},

		// approve
		{"approve unknown flag", "/approve --tier T2", `/approve: unknown flag "--tier"; /approve takes --check item=answer`},
		{"approve check without answer", "/approve --check data", `/approve --check: want item=answer such as data-sensitivity="no PII", got "data"`},
		{"approve check empty answer", "/approve --check data=", "want item=answer"},
		{"approve check missing", "/approve --check", "want item=answer such as"},
		{"approve check twice", "/approve --check a=1 --check A=2", `item "a" is given twice`},
		{"approve bad escalation id", "/approve ESC-abc", `/approve: want an escalation id such as ESC-12, got "ESC-abc"`},
		{"approve escalation zero", "/approve esc-0", "want an escalation id such as ESC-12"},
		{"approve escalation too big", "/approve ESC-99999999999999999999", "want an escalation id such as ESC-12"},
		{"approve two ids", "/approve ESC-1 ESC-2", "give one escalation id, got ESC-1 and ESC-2"},
		{"approve check after rationale", "/approve ok --check a=b", "put flags before the rationale"},

		// help, status, backlog
		{"help unknown verb", "/threatgate help foo", `/threatgate help: unknown command "foo"; want one of`},
		{"help extra", "/threatgate help escalate please", "takes at most a command name"},
		{"help extra line", "/threatgate help\nplease", "takes at most a command name"},
		{"status extra", "/threatgate status ESC-1 please", `/threatgate status: takes at most an escalation id such as ESC-12, got "please"`},
		{"status flag", "/threatgate status --all", `unknown flag "--all"; /threatgate status takes no flags`},
		{"backlog extra", "/threatgate backlog mine", `/threatgate backlog: takes no arguments, got "mine"`},
		{"backlog id", "/threatgate backlog ESC-1", "takes no arguments"},

		// missing free text
		{"reject without rationale", "/threatgate reject ESC-1", "/threatgate reject: rationale required; usage: /threatgate reject [ESC-id] <rationale>"},
		{"reject with flag", "/threatgate reject --force no", `unknown flag "--force"; /threatgate reject takes no flags`},
		{"dissent without note", "/threatgate dissent ESC-1", "/threatgate dissent: note required"},
		{"action without text", "/threatgate action", "/threatgate action: action text required"},
		{"withdraw without reason", "/threatgate withdraw ESC-1\n\n", "/threatgate withdraw: reason required"},

		// artifact
		{"artifact without kind", "/threatgate artifact ESC-1", "/threatgate artifact: want an artifact kind such as threat-model, got nothing"},
		{"artifact bad kind", "/threatgate artifact threat_model x", `want an artifact kind such as threat-model (letters, digits and -), got "threat_model"`},
		{"artifact without ref", "/threatgate artifact ESC-1 threat-model\na note", `want a link or text after the kind "threat-model"`},

		// defer
		{"defer without when", "/threatgate defer ESC-1", "want a date such as 2025-07-01 or a duration such as 72h, 3d or 2w, got nothing"},
		{"defer bad duration", "/threatgate defer soon vendor", `want a date such as 2025-07-01 or a duration such as 72h, 3d or 2w, got "soon"`},
		{"defer negative duration", "/threatgate defer -3h vendor", "or a duration such as 72h"},
		{"defer zero duration", "/threatgate defer 0d vendor", "or a duration such as 72h"},
		{"defer huge duration", "/threatgate defer 99999999999w vendor", "or a duration such as 72h"},
		{"defer bad date", "/threatgate defer 2025-02-30 vendor", `want a real date from 2000 on as YYYY-MM-DD, got "2025-02-30"`},
		{"defer zero date", "/threatgate defer 0001-01-01 vendor", "want a real date from 2000 on"},
		{"defer without reason", "/threatgate defer 3d", "/threatgate defer: reason required"},

		// risk
		{"risk missing", "/threatgate risk ESC-1", "want a residual risk from 1 to 25"},
		{"risk zero", "/threatgate risk 0", `want a residual risk from 1 to 25 (likelihood 1-5 x impact 1-5), got "0"`},
		{"risk too high", "/threatgate risk 26 bad", `got "26"`},
		{"risk words", "/threatgate risk high", `got "high"`},

		// retier
		{"retier without tier", "/threatgate retier ESC-1", "want a tier such as T2, got nothing"},
		{"retier bad tier", "/threatgate retier T:2 x", `want a tier such as T2 (letters, digits, - and _), got "T:2"`},
		{"retier without rationale", "/threatgate retier ESC-1 T3", "/threatgate retier: rationale required"},

		// override-cap
		{"override-cap without person", "/threatgate override-cap", "want a person such as @ann"},
		{"override-cap bad person", "/threatgate override-cap @ 2 x", `want a person such as @ann or a chat user id, got "@"`},
		{"override-cap count zero", "/threatgate override-cap ann 0 x", `want a count of extra escalations from 1 to 100, got "0"`},
		{"override-cap count too big", "/threatgate override-cap ann 101 x", "from 1 to 100"},
		{"override-cap without rationale", "/threatgate override-cap ann 2", "/threatgate override-cap: rationale required"},
		{"override-cap escalation id", "/threatgate override-cap ESC-1 ann x", "/threatgate override-cap: takes no escalation id"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			got, err := ParseCommand(tt.in)
			p, ok := IsProblem(err)
			if !ok {
				t.Fatalf("ParseCommand(%q) = %#v, %v; want Problem %q", tt.in, got, err, tt.err)
			}
			if !strings.Contains(p.Error(), tt.err) {
				t.Errorf("ParseCommand(%q) = Problem %q, want it to contain %q", tt.in, p.Error(), tt.err)
			}
			if !reflect.DeepEqual(got, Command{}) {
				t.Errorf("Command = %#v with the Problem, want zero", got)
			}
		})
	}
}

func TestParseCommandHidesURLSecrets(t *testing.T) {
	for _, in := range []string{
		"/escalate https://bob:hunter2@gl.example.com/g/p/-/merge_requests/1 x",
		"/escalate https://bob:hunter2@gl.example.com/g/p/merge_requests/1 x",
		"/escalate https://gl.example.com/g/p/-/merge_requests/1?private_token=hunter2 x",
		"/escalate https://gl.example.com/p/-/merge_requests/1?a=hunter2 x",
		"/escalate https://gl.example.com:x/g/p/-/merge_requests/1?a=hunter2 x",
	} {
		_, err := ParseCommand(in)
		if err == nil || strings.Contains(err.Error(), "hunter2") {
			t.Errorf("ParseCommand(%q) error = %v, want a Problem without the secret", in, err)
		}
	}
}

func TestParseSlash(t *testing.T) {
	got, err := ParseSlash("/escalate", "g/p!4 --tier T1 new login flow")
	if err != nil {
		t.Fatal(err)
	}
	want := Command{Verb: VerbEscalate, MR: MRRef{Project: "g/p", IID: 4}, Tier: "T1", Text: "new login flow"}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("ParseSlash\n got %#v\nwant %#v", got, want)
	}
	if got, err := ParseSlash("/threatgate", ""); err != nil || got.Verb != VerbHelp {
		t.Errorf(`ParseSlash("/threatgate", "") = %#v, %v; want help`, got, err)
	}
}

func TestCommandString(t *testing.T) {
	for _, tt := range []struct {
		in, want string
	}{
		{"/threatgate escalate g/p!1 --urgent   why\nsummary: s\nmore",
			"/escalate g/p!1 --urgent why\nmore\nsummary: s"},
		{`/approve --check b='x y' --check a=1 esc-02 "fine"`,
			`/approve ESC-2 --check a=1 --check b="x y" fine`},
		{"/threatgate reject\nESC-5 leaks\nkeys", "/threatgate reject \"ESC-5 leaks\"\nkeys"},
		{"/threatgate defer 90m x", "/threatgate defer 1h30m x"},
		{"/threatgate defer 168h x", "/threatgate defer 1w x"},
		{"/threatgate override-cap @ann x", "/threatgate override-cap ann 1 x"},
		{"/threatgate", "/threatgate help"},
	} {
		c, err := ParseCommand(tt.in)
		if err != nil {
			t.Fatalf("ParseCommand(%q): %v", tt.in, err)
		}
		if got := c.String(); got != tt.want {
			t.Errorf("String() of %q\n got %q\nwant %q", tt.in, got, tt.want)
		}
	}
}

func TestHelpText(t *testing.T) {
	all := HelpText("")
	for _, v := range threatgateVerbs {
		line := HelpText(v)
		if line == "" || strings.Contains(line, "\n") {
			t.Errorf("HelpText(%q) = %q, want one line", v, line)
		}
		if !strings.Contains(all, line) {
			t.Errorf("HelpText(\"\") lacks %q", line)
		}
	}
	if got := HelpText("nope"); got != "" {
		t.Errorf(`HelpText("nope") = %q, want ""`, got)
	}
}

func TestParseReplyIntake(t *testing.T) {
	c, err := ParseReply("summary: token in logs\nassets: api")
	if err != nil || c.Verb != VerbIntake || c.Fields["summary"] != "token in logs" || c.Fields["assets"] != "api" {
		t.Fatalf("ParseReply = %+v, %v", c, err)
	}
	if c, err := ParseReply("/approve ok"); err != nil || c.Verb != VerbApprove {
		t.Errorf("a command in a thread: %+v, %v", c, err)
	}
	if _, err := ParseReply("just chatting"); err == nil {
		t.Error("plain chat accepted as intake")
	}
	if _, err := ParseCommand("/threatgate intake ESC-3"); err == nil {
		t.Error("intake without fields accepted")
	}
	again, err := ParseCommand(c.String())
	if err != nil || again.Verb != VerbIntake {
		t.Errorf("round trip: %q -> %+v, %v", c.String(), again, err)
	}
}

// TestParseCommandAfterZeroWidth: a command copied from a note in which
// threatgate neutralised quick actions (a zero-width joiner before the /)
// still parses.
func TestParseCommandAfterZeroWidth(t *testing.T) {
	for _, s := range []string{"\u200d/threatgate status ESC-4", "\ufeff \u200b/threatgate status ESC-4"} {
		c, err := ParseCommand(s)
		if err != nil || c.Verb != VerbStatus || c.Escalation != "ESC-4" {
			t.Errorf("ParseCommand(%q) = %+v, %v", s, c, err)
		}
	}
}
