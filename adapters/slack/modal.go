package slack

import (
	"encoding/json"
	"fmt"
	"slices"
	"strings"

	sl "github.com/slack-go/slack"

	"github.com/threatgate/threatgate/bot"
	"github.com/threatgate/threatgate/policies"
)

// Block and action ids of the inputs in threatgate's modals. Every input
// block holds one element whose action_id is inputAction.
const (
	blockText    = "text"   // the verb's free text: rationale, reason, note
	blockKind    = "kind"   // artifact: which kind
	blockLink    = "link"   // artifact: a link
	blockBody    = "body"   // artifact: the text (a filled-in template)
	prefixCheck  = "check:" // approve: one per checklist item
	prefixField  = "field:" // escalate: one per intake field
	inputAction  = "v"
	callbackView = "threatgate:modal"
)

// Modal limits (Block Kit): a title of 24 characters, a label of 2,000, a
// plain-text input of 3,000, private_metadata of 3,000.
const (
	maxTitle    = 24
	maxLabel    = 2000
	maxInput    = 3000
	maxMetadata = 3000
)

// modalMeta is what a modal carries to its submission (private_metadata,
// which Slack keeps and returns unchanged): the verb, the escalation and
// the head the button showed, and where to answer.
type modalMeta struct {
	Verb    bot.Verb `json:"v"`
	Esc     string   `json:"e,omitempty"`
	Head    string   `json:"h,omitempty"`
	Channel string   `json:"c,omitempty"`
	Thread  string   `json:"t,omitempty"`
	// Command is the /escalate command as typed (its MR, tier, urgency
	// and reason), whose intake fields the modal asks for.
	Command string `json:"cmd,omitempty"`
	// At is when the button was pressed (Unix seconds): a card that showed
	// no head binds its command to the head threatgate knew then.
	At int64 `json:"at,omitempty"`
}

// BuildModal builds the modal of a verb on an escalation from the verb
// table and the escalation's tier: the tier's checklist (one required
// answer per item) for approve, the tier's artifact kinds with a link, a
// text and the kind's template for artifact, the policy's intake fields
// for escalate, and the verb's free text (named as the verb table names
// it) for every verb that takes one. esc is nil for escalate.
func BuildModal(v bot.Verb, esc *bot.Escalation, pol *policies.Policy, meta modalMeta) (sl.ModalViewRequest, error) {
	info, ok := verbInfo(v)
	if !ok {
		return sl.ModalViewRequest{}, fmt.Errorf("no modal for %q", v)
	}
	meta.Verb = v
	var blocks []sl.Block
	title := strings.ToUpper(string(v[:1])) + string(v[1:])
	if esc != nil {
		title += " " + esc.ID
		mr := mrRef(esc.Project, esc.MRIID)
		if esc.Title != "" {
			mr = md("%s “%s”", mr, clip(esc.Title, maxOutsideShort))
		}
		blocks = append(blocks, section(md("*%s* · %s · %s", esc.ID, mr, esc.Tier)))
		if meta.Head != "" {
			blocks = append(blocks, contextBlock(md("About the code at %s, as the card showed it. A push since then makes this refused.", shortSHA(meta.Head))))
		}
	}
	var tier *policies.Tier
	if esc != nil {
		tier = pol.Tier(esc.Tier)
	}
	switch v {
	case bot.VerbApprove:
		if tier != nil {
			for _, item := range tier.Checklist {
				blocks = append(blocks, input(prefixCheck+item, item, false, "", false))
			}
		}
	case bot.VerbArtifact:
		if tier == nil || len(tier.Artifacts) == 0 {
			return sl.ModalViewRequest{}, &bot.Problem{Field: "/threatgate artifact", Msg: "this escalation's tier asks for no artifacts"}
		}
		missing := esc.MissingArtifacts(tier)
		first := tier.Artifacts[0]
		if len(missing) > 0 {
			first = missing[0]
		}
		var opts []*sl.OptionBlockObject
		var initial *sl.OptionBlockObject
		for _, k := range tier.Artifacts {
			name := k
			if a, ok := pol.Artifact(k); ok && a.Name != "" {
				name = a.Name
			}
			o := sl.NewOptionBlockObject(k, plain(name, 75), nil)
			opts = append(opts, o)
			if k == first {
				initial = o
			}
		}
		sel := sl.NewOptionsSelectBlockElement(sl.OptTypeStatic, plain("Artifact", 150), inputAction, opts...)
		sel.InitialOption = initial
		blocks = append(blocks, sl.NewInputBlock(blockKind, plain("Artifact", maxLabel), nil, sel))
		blocks = append(blocks, input(blockLink, "Link", true, "", false))
		body := input(blockBody, "Or its text", true, bot.ArtifactTemplate(first), true)
		if bot.ArtifactTemplate(first) != "" {
			body.Hint = plain("The threat-model template: fill it in, or clear it and give a link above.", maxLabel)
		}
		blocks = append(blocks, body)
	case bot.VerbEscalate:
		for _, f := range pol.Intake {
			label := f.ID
			b := input(prefixField+f.ID, label, false, "", true)
			if f.Prompt != "" {
				b.Hint = plain(f.Prompt, maxLabel)
			}
			blocks = append(blocks, b)
		}
	}
	if info.TextName != "" && v != bot.VerbArtifact && v != bot.VerbEscalate {
		blocks = append(blocks, input(blockText, capital(info.TextName), v == bot.VerbApprove, "", true))
	}
	raw, err := json.Marshal(meta)
	if err != nil || len(raw) > maxMetadata {
		return sl.ModalViewRequest{}, fmt.Errorf("modal metadata too long (%d bytes)", len(raw))
	}
	return sl.ModalViewRequest{
		Type:            sl.VTModal,
		CallbackID:      callbackView,
		Title:           plain(clip(title, maxTitle), maxTitle),
		Submit:          plain(clip(capital(string(v)), maxTitle), maxTitle),
		Close:           plain("Cancel", maxTitle),
		Blocks:          sl.Blocks{BlockSet: blocks},
		PrivateMetadata: string(raw),
	}, nil
}

// input is a plain-text input block.
func input(id, label string, optional bool, initial string, multiline bool) *sl.InputBlock {
	el := sl.NewPlainTextInputBlockElement(nil, inputAction)
	el.Multiline = multiline
	el.MaxLength = maxInput
	if initial != "" {
		el.InitialValue = clip(initial, maxInput)
	}
	b := sl.NewInputBlock(id, plain(clip(label, maxLabel), maxLabel), nil, el)
	b.Optional = optional
	return b
}

func capital(s string) string {
	if s == "" {
		return s
	}
	return strings.ToUpper(s[:1]) + s[1:]
}

func verbInfo(v bot.Verb) (bot.VerbInfo, bool) {
	i := slices.IndexFunc(bot.Verbs(), func(x bot.VerbInfo) bool { return x.Verb == v })
	if i < 0 {
		return bot.VerbInfo{}, false
	}
	return bot.Verbs()[i], true
}

// modalCommand reads a submitted modal back into a command: the verb and
// escalation from its metadata, the answers from its state.
func modalCommand(meta modalMeta, state *sl.ViewState) (bot.Command, error) {
	val := func(block string) string {
		if state == nil {
			return ""
		}
		a, ok := state.Values[block][inputAction]
		if !ok {
			return ""
		}
		if a.SelectedOption.Value != "" {
			return a.SelectedOption.Value
		}
		return strings.TrimSpace(a.Value)
	}
	c := bot.Command{Verb: meta.Verb, Escalation: meta.Esc, Text: val(blockText)}
	switch meta.Verb {
	case bot.VerbApprove:
		if state != nil {
			for block := range state.Values {
				if item, ok := strings.CutPrefix(block, prefixCheck); ok {
					if v := val(block); v != "" {
						if c.Checks == nil {
							c.Checks = map[string]string{}
						}
						c.Checks[item] = v
					}
				}
			}
		}
	case bot.VerbArtifact:
		c.Artifact = val(blockKind)
		c.Ref = val(blockLink)
		if c.Ref == "" {
			c.Ref = val(blockBody)
		}
		if c.Ref == "" {
			return c, &bot.Problem{Field: blockLink, Msg: "give a link, or the artifact's text below"}
		}
	case bot.VerbEscalate:
		typed, err := bot.ParseSlash("/escalate", meta.Command)
		if err != nil {
			return c, err
		}
		typed.Fields = map[string]string{}
		if state != nil {
			for block := range state.Values {
				if id, ok := strings.CutPrefix(block, prefixField); ok {
					if v := val(block); v != "" {
						typed.Fields[id] = v
					}
				}
			}
		}
		return typed, nil
	}
	// Re-read through the parser's rules (lengths, shapes): what a modal
	// submits is held to what a typed command is.
	if _, err := bot.ParseCommand(c.String()); err != nil {
		return c, err
	}
	return c, nil
}

// problemBlock says which input of a modal a refusal is about, so that
// Slack shows it under that input: a checklist item, the artifact's link,
// an intake field, else the free text (or the first input there is).
func problemBlock(p *bot.Problem, meta modalMeta, state *sl.ViewState) string {
	if state == nil || len(state.Values) == 0 {
		return ""
	}
	has := func(b string) bool { _, ok := state.Values[b]; return ok }
	msg := p.Field + " " + p.Msg
	var blocks []string
	for b := range state.Values {
		blocks = append(blocks, b)
	}
	slices.Sort(blocks)
	for _, b := range blocks {
		if name, ok := strings.CutPrefix(b, prefixCheck); ok && strings.Contains(msg, name) {
			return b
		}
		if name, ok := strings.CutPrefix(b, prefixField); ok && strings.Contains(msg, name) {
			return b
		}
	}
	switch {
	case meta.Verb == bot.VerbArtifact && has(blockLink):
		return blockLink
	case has(blockText):
		return blockText
	}
	return blocks[0]
}
