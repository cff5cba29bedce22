package slack

import (
	"bytes"
	"encoding/json"
	"flag"
	"go/ast"
	"go/parser"
	"go/token"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	sl "github.com/slack-go/slack"

	"github.com/threatgate/threatgate/bot"
	"github.com/threatgate/threatgate/policies"
)

var update = flag.Bool("update", false, "rewrite the golden files")

// due is the decision deadline of every sample.
var due = time.Date(2026, 11, 4, 9, 0, 0, 0, time.UTC)

// samples has one notice of every kind, as decide builds them (the same
// facts as bot's own text goldens).
func samples() map[bot.NoticeKind]*bot.Notice {
	req := &bot.Requirements{
		Artifacts: []bot.Field{{ID: "threat-model", Text: "STRIDE threat model"}, {ID: "rollback-plan", Text: "Rollback plan"}},
		Approvals: []policies.Approval{{Group: "appsec", Count: 2, Role: "approver"}, {Group: "leads", Count: 1, Role: "risk-acceptance"}},
		Review:    []string{"sre"}, Inform: []string{"security-announce"}, Checklist: []string{"data-sensitivity"},
	}
	auto := &bot.Summary{Signals: []policies.Fired{{ID: "auth", Category: "access-control", Weight: 40, Evidence: []string{"path src/auth/login.go matches \"**/auth/**\"", "a", "b", "c"}}},
		FirstResponseDue: due.Add(-44 * time.Hour), DecisionDue: due}
	manual := &bot.Summary{Manual: true, Urgent: true, Filer: "erin", Reason: "token in logs @all", Intake: []bot.Field{{ID: "summary", Text: "s"}},
		FirstResponseDue: due.Add(-44 * time.Hour), DecisionDue: due}
	decisions := []bot.Decision{{By: "alice", Group: "appsec", Rationale: "fine"}, {By: "dave", Arbiter: true}, {By: "bob", Group: "appsec", Stale: true}}
	return map[bot.NoticeKind]*bot.Notice{
		bot.NoticeOpened:        {Kind: bot.NoticeOpened, Tier: "T3", TierName: "critical", Score: 140, Summary: auto, Requirements: req},
		bot.NoticeFiled:         {Kind: bot.NoticeFiled, Tier: "T2", TierName: "high", Summary: manual, Requirements: req},
		bot.NoticeSelfFiled:     {Kind: bot.NoticeSelfFiled, Tier: "T3", TierName: "critical", Score: 140, Summary: auto, Requirements: req},
		bot.NoticeIntakeAsked:   {Kind: bot.NoticeIntakeAsked, Project: "g/p", MRIID: 7, Tier: "T2", TierName: "high", By: "erin", Text: "looks dodgy", Fields: []bot.Field{{ID: "summary", Text: "What is wrong?"}, {ID: "assets", Text: "What is at stake?"}}},
		bot.NoticeTierRaised:    {Kind: bot.NoticeTierRaised, Tier: "T3", TierName: "critical", FromTier: "T2", Score: 140, Requirements: req},
		bot.NoticeRetiered:      {Kind: bot.NoticeRetiered, Tier: "T1", TierName: "elevated", FromTier: "T2", By: "dave", Text: "only touches tests", Requirements: &bot.Requirements{Approvals: []policies.Approval{{Group: "champions", Count: 1, Role: "approver"}}}},
		bot.NoticeReady:         {Kind: bot.NoticeReady},
		bot.NoticeBackInReview:  {Kind: bot.NoticeBackInReview, SHA: "bbb2222233334444"},
		bot.NoticeApproved:      {Kind: bot.NoticeApproved, Tier: "T3", TierName: "critical", Decisions: decisions},
		bot.NoticeRejected:      {Kind: bot.NoticeRejected, Decisions: []bot.Decision{{By: "bob", Group: "appsec", Rationale: "leaks tokens"}}},
		bot.NoticeDisputed:      {Kind: bot.NoticeDisputed, Arbiters: []string{"leads"}},
		bot.NoticeDissent:       {Kind: bot.NoticeDissent, By: "carol", Text: "I would have asked for a pentest"},
		bot.NoticeWithdrawn:     {Kind: bot.NoticeWithdrawn, By: "dave", Text: "false alarm"},
		bot.NoticeClosed:        {Kind: bot.NoticeClosed},
		bot.NoticeReopened:      {Kind: bot.NoticeReopened},
		bot.NoticeResumed:       {Kind: bot.NoticeResumed, Tier: "T3", TierName: "critical", Why: "the merge request's head bbb22222 classifies as T3 (score 140)", Requirements: req},
		bot.NoticeDeferralEnded: {Kind: bot.NoticeDeferralEnded, State: bot.StateInReview, Why: "tier T3 cannot be deferred"},
		bot.NoticeBypass:        {Kind: bot.NoticeBypass, Project: "g/p", MRIID: 1, SHA: "ccc3333344445555", State: bot.StateInReview, Tier: "T2"},
		bot.NoticeAnswer:        {Kind: bot.NoticeAnswer, Text: "threatgate could not do that: /approve: you wrote this merge request"},
		bot.NoticeForged:        {Kind: bot.NoticeForged, Found: "success", FoundBy: "mallory", SHA: "aaa1111122223333", Reset: "pending"},
		bot.NoticeNudge:         {Kind: bot.NoticeNudge, Why: "approval", Threshold: 50, AskedOf: []string{"alice", "bob"}, Due: due},
		bot.NoticeHandoff:       {Kind: bot.NoticeHandoff, Groups: []string{"appsec-backup"}, AskedOf: []string{"carol"}, By: "alice", Why: "away:alice"},
		bot.NoticeLapsed:        {Kind: bot.NoticeLapsed, Project: "g/p", MRIID: 1, Tier: "T3", TierName: "critical", State: bot.StateInReview, Due: due},
		bot.NoticeArtifactsAsked: {Kind: bot.NoticeArtifactsAsked, Tier: "T3", AskedOf: []string{"ann", "erin"},
			Fields: []bot.Field{{ID: "threat-model", Text: "Threat model (STRIDE)"}, {ID: "rollback-plan", Text: "Rollback plan"}}},
	}
}

// cards are the summary cards with goldens: a full one, a draft's, and
// one that no longer waits on anyone (no buttons).
func cards() map[string]*bot.CardData {
	return map[string]*bot.CardData{
		"card": {Project: "g/p", MRIID: 1, Title: "Rotate sessions", MRURL: "https://gitlab.example.com/g/p/-/merge_requests/1", Author: "ann",
			Signals: []policies.Fired{{ID: "auth", Category: "access-control", Weight: 50, Evidence: []string{"internal/auth/session.go"}}},
			Tier:    "T3", TierName: "critical", State: bot.StateInReview, Urgent: true,
			Artifacts: []bot.CardArtifact{{Kind: "threat-model", By: "ann"}, {Kind: "rollback-plan"}}, AskedOf: "ann, erin",
			HeadSHA: "aaa1111122223333", Approvals: []bot.CardRow{{Group: "appsec", Filled: 1, Count: 2}, {Group: "leads", Count: 1}},
			RiskCeiling: 9, RiskRecorded: true, Risk: 16, UnknownAuthors: []string{"stranger@elsewhere.example"},
			Waiting: []string{"bob", "carol"}, DecisionDue: due,
			Actions: []bot.CardAction{{N: 2, Text: "rotate the signing key", Owner: "carol", Due: due}}, ActionsDone: 1},
		"card_intake": {Project: "g/q", MRIID: 7, Tier: "T2", TierName: "high", State: bot.StateIntake, Filer: "erin",
			IntakeMissing: []bot.Field{{ID: "assets", Text: "What is at stake?"}}},
		"card_approved": {Project: "g/p", MRIID: 1, Title: "Rotate sessions", Tier: "T3", TierName: "critical", State: bot.StateApproved,
			Artifacts: []bot.CardArtifact{{Kind: "threat-model", By: "ann"}}, HeadSHA: "aaa1111122223333",
			Approvals: []bot.CardRow{{Group: "appsec", Filled: 2, Count: 2}}, RiskCeiling: 9, RiskRecorded: true, Risk: 4},
	}
}

// users maps the sample people to Slack ids: bob has one, carol none.
func users(p string) string {
	return map[string]string{"alice": "U01ALICE", "bob": "U02BOB"}[p]
}

// noticeKinds lists the NoticeKind constants declared in package bot, read
// from its source, so that a kind added there fails here until it has a
// sample, a rendering and a golden file.
func noticeKinds(t *testing.T) []bot.NoticeKind {
	t.Helper()
	fset := token.NewFileSet()
	dir := filepath.Join("..", "..", "bot")
	files, err := filepath.Glob(filepath.Join(dir, "*.go"))
	if err != nil || len(files) == 0 {
		t.Fatalf("read bot's sources in %s: %v", dir, err)
	}
	var kinds []bot.NoticeKind
	for _, path := range files {
		if strings.HasSuffix(path, "_test.go") {
			continue
		}
		f, err := parser.ParseFile(fset, path, nil, 0)
		if err != nil {
			t.Fatal(err)
		}
		for _, d := range f.Decls {
			g, ok := d.(*ast.GenDecl)
			if !ok || g.Tok != token.CONST {
				continue
			}
			for _, s := range g.Specs {
				vs := s.(*ast.ValueSpec)
				if id, ok := vs.Type.(*ast.Ident); !ok || id.Name != "NoticeKind" {
					continue
				}
				for _, v := range vs.Values {
					lit, ok := v.(*ast.BasicLit)
					if !ok || lit.Kind != token.STRING {
						t.Fatalf("%s: a NoticeKind that is not a string literal", fset.Position(v.Pos()))
					}
					s, _ := strconv.Unquote(lit.Value)
					kinds = append(kinds, bot.NoticeKind(s))
				}
			}
		}
	}
	if len(kinds) == 0 {
		t.Fatal("no NoticeKind constants found in bot")
	}
	return kinds
}

// marshal is the JSON of blocks as slack-go sends them (json.Marshal of
// the block set), indented.
func marshal(t *testing.T, bs []sl.Block) []byte {
	t.Helper()
	compact, err := sl.Blocks{BlockSet: bs}.MarshalJSON()
	if err != nil {
		t.Fatal(err)
	}
	var out bytes.Buffer
	if err := json.Indent(&out, compact, "", "  "); err != nil {
		t.Fatal(err)
	}
	out.WriteByte('\n')
	return out.Bytes()
}

// golden compares got with testdata/blocks/name.json, or rewrites it with
// -update. It also proves slack-go reads the file back to the same blocks.
func golden(t *testing.T, name string, got []byte) {
	t.Helper()
	path := filepath.Join("testdata", "blocks", name+".json")
	if *update {
		if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(path, got, 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("%s: %v (run go test ./adapters/slack -update)", name, err)
	}
	if !bytes.Equal(got, want) {
		t.Errorf("%s: blocks differ from %s (go test ./adapters/slack -update rewrites it)\n got %s\nwant %s", name, path, got, want)
	}
	var back sl.Blocks
	if err := json.Unmarshal(want, &back); err != nil {
		t.Fatalf("%s: slack-go cannot read its golden back: %v", name, err)
	}
	if again := marshal(t, back.BlockSet); !bytes.Equal(again, want) {
		t.Errorf("%s: slack-go reads the golden back differently:\n%s", name, again)
	}
}

// TestRenderNoticeGolden: every notice kind in Block Kit is its golden
// file in testdata/blocks.
func TestRenderNoticeGolden(t *testing.T) {
	for kind, n := range samples() {
		t.Run(string(kind), func(t *testing.T) {
			bs := RenderNotice(n, "ESC-7")
			checkLimits(t, bs)
			golden(t, string(kind), marshal(t, bs))
		})
	}
}

// TestRenderCardGolden: the card, active, in intake and decided.
func TestRenderCardGolden(t *testing.T) {
	for name, c := range cards() {
		t.Run(name, func(t *testing.T) {
			bs := RenderCard(c, "ESC-7", users)
			checkLimits(t, bs)
			golden(t, name, marshal(t, bs))
		})
	}
}

// TestEveryNoticeKindHasAGolden: each NoticeKind bot declares has a
// sample, a rendering of its own (not the fallback for unknown kinds) and
// a golden file; no golden is left for a kind that is gone.
func TestEveryNoticeKindHasAGolden(t *testing.T) {
	kinds := noticeKinds(t)
	all := samples()
	for _, k := range kinds {
		n := all[k]
		if n == nil {
			t.Errorf("no sample of notice %s", k)
			continue
		}
		if _, known := renderNotice(n, "ESC-7"); !known {
			t.Errorf("notice %s has no Block Kit rendering of its own", k)
		}
		if _, err := os.Stat(filepath.Join("testdata", "blocks", string(k)+".json")); err != nil && !*update {
			t.Errorf("notice %s: no golden file: %v", k, err)
		}
	}
	if len(all) != len(kinds) {
		t.Errorf("%d samples for %d kinds", len(all), len(kinds))
	}
	files, _ := filepath.Glob(filepath.Join("testdata", "blocks", "*.json"))
	for _, f := range files {
		name := strings.TrimSuffix(filepath.Base(f), ".json")
		if !slices.Contains(kinds, bot.NoticeKind(name)) && cards()[name] == nil && name != "effect_opened" {
			t.Errorf("%s: a golden file for no notice kind or card", f)
		}
	}
	if _, known := renderNotice(&bot.Notice{Kind: "no_such_kind"}, "ESC-7"); known {
		t.Error("an unknown kind counts as known")
	}
}

// TestFallbackText: the notification text is the first line of the text
// rendering, escaped.
func TestFallbackText(t *testing.T) {
	for _, tt := range []struct {
		n    *bot.Notice
		want string
	}{
		{samples()[bot.NoticeOpened], "Security review required: ESC-7, tier T3 (critical), score 140."},
		{samples()[bot.NoticeApproved], "ESC-7 approved (T3 critical)."},
		{&bot.Notice{Kind: bot.NoticeDissent, By: "eve", Text: "<!here> & @channel\nsecond line"}, "Dissent from eve on ESC-7, recorded: &lt;!here&gt; &amp; @\u200dchannel"},
	} {
		if got := NoticeText(tt.n, "ESC-7"); got != tt.want {
			t.Errorf("NoticeText(%s) = %q, want %q", tt.n.Kind, got, tt.want)
		}
	}
	if got, want := CardText(cards()["card"], "ESC-7"), "ESC-7 · g/p!1 \"Rotate sessions\" · T3 critical · in review · URGENT"; got != want {
		t.Errorf("CardText = %q, want %q", got, want)
	}
}

// TestRenderEffectMentions: a thread post mentions its Mention list,
// mapped to Slack ids, and names the rest in plain text; a summary is the
// card.
func TestRenderEffectMentions(t *testing.T) {
	e := bot.Effect{Kind: bot.EffectThreadPost, Escalation: "ESC-7", Notice: samples()[bot.NoticeOpened], Mention: []string{"alice", "carol", "alice", ""}}
	bs, text := RenderEffect(e, users)
	golden(t, "effect_opened", marshal(t, bs))
	first, ok := bs[0].(*sl.ContextBlock)
	if !ok {
		t.Fatalf("first block is %T, want the context block with the mentions", bs[0])
	}
	if got, want := first.ContextElements.Elements[0].(*sl.TextBlockObject).Text, "cc <@U01ALICE>, carol"; got != want {
		t.Errorf("mentions = %q, want %q", got, want)
	}
	if want := "<@U01ALICE>, carol: Security review required: ESC-7"; !strings.HasPrefix(text, want) {
		t.Errorf("text = %q, want it to start with %q", text, want)
	}
	if bs, _ := RenderEffect(bot.Effect{Kind: bot.EffectThreadPost, Escalation: "ESC-7", Notice: samples()[bot.NoticeReady]}, nil); len(bs) != 1 {
		t.Errorf("a post without mentions has %d blocks, want 1 (no cc line)", len(bs))
	}
	c := cards()["card"]
	bs, text = RenderEffect(bot.Effect{Kind: bot.EffectThreadSummary, Escalation: "ESC-7", Card: c, Mention: c.Waiting}, users)
	if !bytes.Equal(marshal(t, bs), marshal(t, RenderCard(c, "ESC-7", users))) || text != CardText(c, "ESC-7") {
		t.Error("a summary effect does not render as its card")
	}
	if bs, text := RenderEffect(bot.Effect{Kind: bot.EffectStatus, Text: "x"}, users); bs != nil || text != "" {
		t.Errorf("a status effect renders as %v %q, want nothing", bs, text)
	}
}

// TestCardButtons: buttons only while the escalation is active, each
// naming its verb and the escalation with the head the card shows; in
// intake only those whose verb runs there.
func TestCardButtons(t *testing.T) {
	for _, tt := range []struct {
		card string
		want []string
	}{
		{"card", []string{"threatgate:approve ESC-7@aaa1111122223333", "threatgate:reject ESC-7@aaa1111122223333", "threatgate:artifact ESC-7@aaa1111122223333", "threatgate:dissent ESC-7@aaa1111122223333"}},
		{"card_intake", []string{"threatgate:dissent ESC-7"}},
		{"card_approved", nil},
	} {
		var got []string
		for _, b := range RenderCard(cards()[tt.card], "ESC-7", nil) {
			if a, ok := b.(*sl.ActionBlock); ok {
				for _, el := range a.Elements.ElementSet {
					btn := el.(*sl.ButtonBlockElement)
					got = append(got, btn.ActionID+" "+btn.Value)
					if act, ok := ParseAction(btn.ActionID, btn.Value); !ok || act.Escalation != "ESC-7" {
						t.Errorf("%s: ParseAction(%q, %q) = %+v, %v", tt.card, btn.ActionID, btn.Value, act, ok)
					}
				}
			}
		}
		if !slices.Equal(got, tt.want) {
			t.Errorf("%s: buttons %q, want %q", tt.card, got, tt.want)
		}
	}
	for _, b := range RenderCard(cards()["card"], "", nil) {
		if _, ok := b.(*sl.ActionBlock); ok {
			t.Error("a card without an escalation id (bot.IDPlaceholder) has buttons no click could name")
		}
	}
	for _, s := range []bot.State{bot.StateRejected, bot.StateWithdrawn, bot.StateMerged} {
		c := cards()["card"]
		c.State = s
		for _, b := range RenderCard(c, "ESC-7", nil) {
			if _, ok := b.(*sl.ActionBlock); ok {
				t.Errorf("a %s card has buttons", s)
			}
		}
	}
}

// TestCardWaitingMentions: the people waited on are mentioned when they
// have a Slack id, plain text otherwise; nothing else on the card
// mentions anyone, not even a person with a Slack id.
func TestCardWaitingMentions(t *testing.T) {
	c := cards()["card"]
	c.Waiting = []string{"bob", "carol"}
	c.AskedOf = "alice"
	c.Artifacts[0].By = "alice"
	js := string(marshal(t, RenderCard(c, "ESC-7", users)))
	if !strings.Contains(js, `*Waiting on* \u003c@U02BOB\u003e, carol`) {
		t.Errorf("no mention of bob and plain carol in the waiting line:\n%s", js)
	}
	if n := strings.Count(js, `\u003c@`); n != 1 {
		t.Errorf("%d mentions on the card, want 1 (bob)", n)
	}
	js = string(marshal(t, RenderCard(c, "ESC-7", nil)))
	if strings.Contains(js, `\u003c@`) {
		t.Errorf("a card without a mapping mentions someone:\n%s", js)
	}
}

// checkLimits fails when blocks break a Block Kit limit Slack refuses a
// message for (invalid_blocks).
func checkLimits(t *testing.T, bs []sl.Block) {
	t.Helper()
	if len(bs) > maxBlocks {
		t.Errorf("%d blocks, at most %d", len(bs), maxBlocks)
	}
	text := func(where string, o *sl.TextBlockObject, max int) {
		if o == nil {
			return
		}
		if err := o.Validate(); err != nil {
			t.Errorf("%s: %v", where, err)
		}
		if n := len([]rune(o.Text)); n > max {
			t.Errorf("%s: %d characters, at most %d", where, n, max)
		}
	}
	for i, b := range bs {
		where := strconv.Itoa(i)
		switch b := b.(type) {
		case *sl.HeaderBlock:
			text(where+" header", b.Text, maxHeader)
		case *sl.SectionBlock:
			if b.Text == nil && len(b.Fields) == 0 {
				t.Errorf("%s: a section with neither text nor fields", where)
			}
			text(where+" section", b.Text, maxText)
			if len(b.Fields) > maxFields {
				t.Errorf("%s: %d fields, at most %d", where, len(b.Fields), maxFields)
			}
			for j, f := range b.Fields {
				text(where+" field "+strconv.Itoa(j), f, maxField)
			}
		case *sl.ContextBlock:
			if n := len(b.ContextElements.Elements); n == 0 || n > maxContextElems {
				t.Errorf("%s: %d context elements", where, n)
			}
			for _, e := range b.ContextElements.Elements {
				text(where+" context", e.(*sl.TextBlockObject), maxText)
			}
		case *sl.ActionBlock:
			if i != len(bs)-1 {
				t.Errorf("%s: the actions are not the last block", where)
			}
			for _, e := range b.Elements.ElementSet {
				btn := e.(*sl.ButtonBlockElement)
				text(where+" button", btn.Text, 75)
				if len(btn.ActionID) > 255 || len(btn.Value) > 2000 {
					t.Errorf("%s: action_id or value too long", where)
				}
			}
		default:
			t.Errorf("%s: unexpected block %T", where, b)
		}
	}
}

// TestLimits: huge outside text, many signals and many fields still make
// a message Slack accepts, buttons kept.
func TestLimits(t *testing.T) {
	long := strings.Repeat("<!here> & long text ", 800)
	var sigs []policies.Fired
	for i := range 80 {
		sigs = append(sigs, policies.Fired{ID: "sig" + strconv.Itoa(i), Category: long, Weight: i, Evidence: []string{long, long, long, long, long}})
	}
	var fields []bot.Field
	var ds []bot.Decision
	for i := range 35 {
		fields = append(fields, bot.Field{ID: "f" + strconv.Itoa(i), Text: long})
		ds = append(ds, bot.Decision{By: long, Group: "appsec", Rationale: long})
	}
	req := &bot.Requirements{Artifacts: fields, Checklist: []string{long, long}, Review: []string{long}}
	for _, n := range []*bot.Notice{
		{Kind: bot.NoticeFiled, Tier: long, TierName: long, Summary: &bot.Summary{Manual: true, Filer: long, Reason: long, Intake: fields, Signals: sigs, DecisionDue: due}, Requirements: req},
		{Kind: bot.NoticeIntakeAsked, Project: long, By: long, Text: long, Fields: fields},
		{Kind: bot.NoticeApproved, Decisions: ds},
		{Kind: bot.NoticeAnswer, Text: long},
		{Kind: bot.NoticeForged, Found: long, FoundBy: long, Reset: long, SHA: long},
	} {
		t.Run(string(n.Kind), func(t *testing.T) { checkLimits(t, RenderNotice(n, "ESC-7")) })
	}
	var rows []bot.CardRow
	var arts []bot.CardArtifact
	for i := range 40 {
		rows = append(rows, bot.CardRow{Group: long, Filled: 1, Count: 2})
		arts = append(arts, bot.CardArtifact{Kind: long + strconv.Itoa(i)})
	}
	c := &bot.CardData{Project: long, Title: long, Tier: long, TierName: long, State: bot.StateInReview, Artifacts: arts, AskedOf: long,
		HeadSHA: "aaa1111122223333", Approvals: rows, UnknownAuthors: []string{long, long}, Waiting: []string{long}, DecisionDue: due}
	bs := RenderCard(c, "ESC-7", users)
	checkLimits(t, bs)
	if _, ok := bs[len(bs)-1].(*sl.ActionBlock); !ok {
		t.Errorf("a long card lost its buttons; last block is %T", bs[len(bs)-1])
	}
	c.State, c.IntakeMissing = bot.StateIntake, fields
	checkLimits(t, RenderCard(c, "ESC-7", users))
}
