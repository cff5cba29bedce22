package slack

import (
	"encoding/json"
	"reflect"
	"regexp"
	"strconv"
	"strings"
	"testing"

	sl "github.com/slack-go/slack"

	"github.com/threatgate/threatgate/bot"
)

// hostile is outside text that tries every way into a Slack message:
// broadcasts, user, group and channel mentions, links, date tokens,
// typed entities, bare broadcast words and mrkdwn.
const hostile = "<!channel> <!here> <!everyone> <!subteam^S1> <@U0EVIL> <@W0EVIL|x> <#C0EVIL> <http://evil.example|click> " +
	"<mailto:x@evil.example> <!date^1^{date}|d> &lt;!here&gt; @channel @here @everyone @HERE @group ` ``` *b* _i_ ~s~\n> q\n"

// poison sets every string reachable from v (fields, slice and pointer
// elements, nested structs) to hostile text, and gives empty slices and
// nil pointers a value first, so that a field added to Notice or CardData
// later is poisoned too. Fields named in keep are left alone.
func poison(v reflect.Value, keep map[string]bool) {
	switch v.Kind() {
	case reflect.String:
		v.SetString(hostile + strconv.Itoa(v.Len()))
	case reflect.Pointer:
		if v.IsNil() && v.Type().Elem().Kind() == reflect.Struct {
			v.Set(reflect.New(v.Type().Elem()))
		}
		if !v.IsNil() {
			poison(v.Elem(), keep)
		}
	case reflect.Slice:
		if v.Len() == 0 {
			v.Set(reflect.MakeSlice(v.Type(), 2, 2))
		}
		for i := range v.Len() {
			poison(v.Index(i), keep)
		}
	case reflect.Struct:
		for i := range v.NumField() {
			if f := v.Type().Field(i); f.IsExported() && !keep[f.Name] {
				poison(v.Field(i), keep)
			}
		}
	}
}

// allowed are the tokens threatgate writes itself: date tokens, and
// mentions of the people the test mapping gives a Slack id.
var allowed = regexp.MustCompile(`<!date\^\d+\^\{date_short_pretty\} \{time\}\|[0-9]{4}-[0-9]{2}-[0-9]{2} [0-9]{2}:[0-9]{2} UTC>|<@U01ALICE>|<@U02BOB>|<https://gitlab\.example\.com/g/p/-/merge_requests/1\|g/p!1>`)

// broadcast matches a bare broadcast word Slack may link.
var broadcast = regexp.MustCompile(`(?i)@(channel|here|everyone|group)`)

func contains(s, sub string) bool { return strings.Contains(s, sub) }

func hasBroadcast(s string) bool { return broadcast.MatchString(s) }

// strs collects every string in the JSON of blocks: each text, action id,
// value and block id, as Slack would read them.
func strs(t *testing.T, bs []sl.Block) []string {
	t.Helper()
	raw, err := json.Marshal(bs)
	if err != nil {
		t.Fatal(err)
	}
	var doc any
	if err := json.Unmarshal(raw, &doc); err != nil {
		t.Fatal(err)
	}
	var out []string
	var walk func(any)
	walk = func(x any) {
		switch x := x.(type) {
		case string:
			out = append(out, x)
		case []any:
			for _, e := range x {
				walk(e)
			}
		case map[string]any:
			for _, e := range x {
				walk(e)
			}
		}
	}
	walk(doc)
	return out
}

// inert fails when s holds a Slack control sequence threatgate did not
// write (anything starting with < once its own tokens are taken out) or a
// bare broadcast word.
func inert(t *testing.T, where, s string) {
	t.Helper()
	rest := allowed.ReplaceAllString(s, "")
	for _, bad := range []string{"<!", "<@", "<#", "<http", "<mailto", "<"} {
		if strings.Contains(rest, bad) {
			t.Errorf("%s: %q reaches Slack unescaped in %q", where, bad, s)
			return
		}
	}
	if m := broadcast.FindString(s); m != "" {
		t.Errorf("%s: bare %q in %q", where, m, s)
	}
}

// hostileUsers maps alice and bob as the goldens do, and mallory to an id
// that is itself an injection: it must never be written as a mention.
func hostileUsers(p string) string {
	switch p {
	case "mallory":
		return "U1><!channel"
	case "eve":
		return "<!here>"
	}
	return users(p)
}

// TestHostileTextIsInert: every notice kind and the card, with hostile
// text in every string field (outside text and all), render with no
// mention, broadcast, channel link or link but the ones threatgate makes:
// in the blocks, in the fallback text, and through RenderEffect with a
// Mention list.
func TestHostileTextIsInert(t *testing.T) {
	for kind, n := range samples() {
		for _, withReq := range []bool{false, true} {
			n := clone(t, n)
			// Once with Requirements and Summary as the sample has them (a
			// resumed notice without requirements says something else),
			// once with them too.
			keep := map[string]bool{"Kind": true, "Requirements": !withReq, "Summary": !withReq}
			poison(reflect.ValueOf(n), keep)
			where := string(kind)
			for i, s := range strs(t, RenderNotice(n, "ESC-7")) {
				inert(t, where+" block string "+strconv.Itoa(i), s)
			}
			inert(t, where+" NoticeText", NoticeText(n, "ESC-7"))
			bs, text := RenderEffect(bot.Effect{Kind: bot.EffectThreadPost, Escalation: "ESC-7", Notice: n,
				Mention: []string{"alice", "mallory", "eve", hostile}}, hostileUsers)
			for _, s := range strs(t, bs) {
				inert(t, where+" RenderEffect", s)
			}
			inert(t, where+" RenderEffect text", text)
			if !strings.HasPrefix(text, "<@U01ALICE>, mallory, eve, ") {
				t.Errorf("%s: RenderEffect text %q does not start with the mentions", where, text)
			}
		}
	}
	for name, c := range cards() {
		for _, st := range []bot.State{c.State, bot.StateInReview, bot.StateIntake, bot.StateDeferred} {
			c := clone(t, c)
			poison(reflect.ValueOf(c), map[string]bool{"State": true})
			c.State = st
			c.Waiting = append(c.Waiting, "alice", "mallory", "eve")
			where := name + "/" + string(st)
			bs := RenderCard(c, "ESC-7", hostileUsers)
			checkLimits(t, bs)
			all := strs(t, bs)
			for _, s := range all {
				inert(t, where, s)
			}
			if st != bot.StateIntake && !strings.Contains(strings.Join(all, "\n"), "<@U01ALICE>, mallory, eve") {
				t.Errorf("%s: the waiting line does not mention alice and name mallory and eve plainly", where)
			}
			inert(t, where+" CardText", CardText(c, "ESC-7"))
			bs, text := RenderEffect(bot.Effect{Kind: bot.EffectThreadSummary, Escalation: "ESC-7", Card: c, Mention: c.Waiting}, hostileUsers)
			for _, s := range strs(t, bs) {
				inert(t, where+" RenderEffect", s)
			}
			inert(t, where+" RenderEffect text", text)
		}
	}
	// The escalation id is threatgate's, but a hostile one is inert too.
	for _, s := range strs(t, RenderCard(cards()["card"], hostile, users)) {
		inert(t, "hostile id", s)
	}
	for _, s := range strs(t, RenderNotice(samples()[bot.NoticeOpened], hostile)) {
		inert(t, "hostile id", s)
	}
}

// clone deep-copies a notice or card through JSON.
func clone[T any](t *testing.T, v *T) *T {
	t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	out := new(T)
	if err := json.Unmarshal(b, out); err != nil {
		t.Fatal(err)
	}
	return out
}
