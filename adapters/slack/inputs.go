package slack

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"time"

	sl "github.com/slack-go/slack"
	"github.com/slack-go/slack/slackevents"

	"github.com/threatgate/threatgate/bot"
	"github.com/threatgate/threatgate/policies"
)

// Answer is what a command or interaction answers at once: the JSON body
// of the HTTP response, or the payload of the Socket Mode ack. nil is an
// empty 200 (an interaction that needs no answer, a modal that closes).
type Answer any

// ephemeral is an answer only its sender sees. Its blocks hold the same
// text as verbatim mrkdwn, so that Slack links nothing in it on its own.
type ephemeral struct {
	ResponseType string    `json:"response_type"`
	Text         string    `json:"text"`
	Blocks       sl.Blocks `json:"blocks"`
}

// say answers text (already escaped) to its sender alone.
func say(text string) Answer {
	return ephemeral{ResponseType: "ephemeral", Text: text, Blocks: sl.Blocks{BlockSet: answerBlocks(text)}}
}

// answerBlocks lays out an answer (escaped text) as verbatim sections.
func answerBlocks(text string) []sl.Block {
	lines := strings.Split(text, "\n")
	ms := make([]markup, len(lines))
	for i, l := range lines {
		ms[i] = markup(l) // escaped by the caller: Escape or threatgate's own text
	}
	return sections("", ms)
}

// errForeignTeam refuses a request from another workspace than the
// configured one.
var errForeignTeam = errors.New("request from another Slack workspace")

// notMapped tells a Slack user threatgate does not know how to get known.
func notMapped(userID string) string {
	return fmt.Sprintf("Your Slack account (%s) is not mapped to a person in threatgate's policy, so nothing was recorded. "+
		"Ask whoever maintains the policy to add `slack: %s` to your entry under `people:`.", Escape(userID), Escape(userID))
}

// Command handles a slash command (/escalate, /approve, /threatgate): it
// maps the sender, parses the command, and hands it to the engine, which
// records it before the answer is given. /escalate opens the intake modal
// when the policy has intake fields the command does not answer. An answer
// the engine does not give within AckWithin goes to the response_url.
func (a *App) Command(ctx context.Context, cmd sl.SlashCommand) (Answer, error) {
	if cmd.TeamID != a.TeamID {
		return nil, errForeignTeam
	}
	pol := a.Engine.Policy()
	c, err := bot.ParseSlash(cmd.Command, cmd.Text)
	if err != nil {
		return say(problemText(err)), nil
	}
	actor := a.identity(pol, cmd.UserID)
	if actor.Person == "" && !anyone(c.Verb) {
		return say(notMapped(cmd.UserID)), nil
	}
	start := time.Now() // real time: Slack's 3 seconds are
	if c.Verb == bot.VerbEscalate && len(missingIntake(pol, c)) > 0 && cmd.TriggerID != "" {
		m, err := BuildModal(bot.VerbEscalate, nil, pol, modalMeta{Channel: cmd.ChannelID, Command: strings.TrimPrefix(c.String(), "/escalate ")})
		if err == nil {
			fillIntake(&m, c.Fields)
			if err = a.openModal(ctx, cmd.TriggerID, m); err == nil {
				return nil, nil
			}
		}
		a.Log.Warn("could not open the intake modal; handling the command as typed", bot.LogErr, err)
	}
	in := bot.Input{Kind: bot.InputCommand, Actor: actor, Command: &c, WrittenAt: a.writtenAt(ctx)}
	if cmd.TriggerID != "" {
		in.Key = "slack:command:" + cmd.TriggerID
	}
	// Slack waits 3s in all: what a failed views.open took is not
	// waited again.
	wait := a.ackWithin() - time.Since(start)
	out, done := a.decideWithin(ctx, in, wait, func(o outcome) { a.respond(cmd.ResponseURL, o.text) })
	if !done {
		return say("Working on it; the answer follows here."), nil
	}
	return say(out.text), nil
}

// anyone reports whether v needs no person of the policy (help, status,
// backlog).
func anyone(v bot.Verb) bool {
	info, ok := verbInfo(v)
	return ok && info.Anyone
}

// missingIntake lists the policy's intake fields c does not answer.
func missingIntake(pol *policies.Policy, c bot.Command) []string {
	var out []string
	for _, f := range pol.Intake {
		if strings.TrimSpace(c.Fields[f.ID]) == "" {
			out = append(out, f.ID)
		}
	}
	return out
}

// fillIntake puts the answers a command already gave into its modal.
func fillIntake(m *sl.ModalViewRequest, fields map[string]string) {
	for _, b := range m.Blocks.BlockSet {
		ib, ok := b.(*sl.InputBlock)
		if !ok {
			continue
		}
		id, ok := strings.CutPrefix(ib.BlockID, prefixField)
		if el, isText := ib.Element.(*sl.PlainTextInputBlockElement); ok && isText && fields[id] != "" {
			el.InitialValue = clip(fields[id], maxInput)
		}
	}
}

// outcome is what the engine said to an input: the text for its sender,
// and the refusal when it was one.
type outcome struct {
	text    string
	problem *bot.Problem
}

// decide hands in to the engine and waits up to AckWithin for its answer:
// done reports that out is the answer; otherwise later is called with it
// once the engine is done (the decision goes on without the request).
func (a *App) decide(ctx context.Context, in bot.Input, later func(outcome)) (out outcome, done bool) {
	return a.decideWithin(ctx, in, a.ackWithin(), later)
}

// decideWithin is decide waiting at most wait.
func (a *App) decideWithin(ctx context.Context, in bot.Input, wait time.Duration, later func(outcome)) (out outcome, done bool) {
	ch := make(chan outcome, 1)
	a.bg.Add(1)
	go func() {
		defer a.bg.Done()
		ectx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 30*time.Second)
		defer cancel()
		defer func() {
			// A panic deciding one input is that input's failure, not
			// the server's.
			if r := recover(); r != nil {
				a.Log.Error("slack input panicked", bot.LogPanic, bot.PanicReason(r), bot.LogActor, in.Actor.String())
				ch <- outcome{text: "threatgate could not do that: an internal error, which was logged. Try again later."}
			}
		}()
		ch <- a.handle(ectx, in)
	}()
	t := time.NewTimer(max(wait, 0))
	defer t.Stop()
	select {
	case out := <-ch:
		return out, true
	case <-t.C:
	}
	a.bg.Add(1)
	go func() {
		defer a.bg.Done()
		later(<-ch)
	}()
	return outcome{}, false
}

// handle runs in through the engine and says what its sender is told.
func (a *App) handle(ctx context.Context, in bot.Input) outcome {
	rep, err := a.Engine.Handle(ctx, in)
	if err != nil {
		if p, ok := bot.IsProblem(err); ok {
			return outcome{text: problemText(err), problem: p}
		}
		a.Log.Error("slack input failed", bot.LogErr, err, bot.LogActor, in.Actor.String())
		return outcome{text: "threatgate could not do that: an internal error, which was logged. Nothing was recorded; try again later."}
	}
	return outcome{text: Escape(rep.Text)}
}

// problemText writes a refusal for Slack: escaped, as the engine said it.
func problemText(err error) string {
	if p, ok := bot.IsProblem(err); ok {
		return Escape(p.Error())
	}
	return Escape(err.Error())
}

func (a *App) ackWithin() time.Duration {
	if a.AckWithin > 0 {
		return a.AckWithin
	}
	return 2 * time.Second
}

// Drain waits for the answers still being sent in the background (to
// response_urls and as ephemeral messages), for a clean shutdown and for
// tests.
func (a *App) Drain() { a.bg.Wait() }

// respond posts a late answer to a command's response_url, when it points
// to Slack.
func (a *App) respond(responseURL, text string) {
	if responseURL == "" || !a.responseURLAllowed(responseURL) {
		a.Log.Warn("a late answer was not sent: the response_url is not Slack's", "host_allowed", false)
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	hc := a.HTTPClient
	if hc == nil {
		hc = &http.Client{Timeout: 10 * time.Second}
	}
	msg := &sl.WebhookMessage{Text: text, ResponseType: "ephemeral", Blocks: &sl.Blocks{BlockSet: answerBlocks(text)}}
	if err := sl.PostWebhookCustomHTTPContext(ctx, responseURL, hc, msg); err != nil {
		a.Log.Warn("could not send a late answer to the response_url", bot.LogErr, err)
	}
}

// tell sends an answer only user sees, in channel (and thread), in the
// background.
func (a *App) tell(channel, thread, user, text string) {
	if channel == "" || user == "" || text == "" {
		return
	}
	a.bg.Add(1)
	go func() {
		defer a.bg.Done()
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		opts := []sl.MsgOption{sl.MsgOptionText(text, false), sl.MsgOptionBlocks(answerBlocks(text)...)}
		if thread != "" {
			opts = append(opts, sl.MsgOptionTS(thread))
		}
		if _, err := a.Client.PostEphemeralContext(ctx, channel, user, opts...); err != nil {
			a.Log.Warn("could not answer in Slack", "channel", channel, bot.LogErr, err)
		}
	}()
}

func (a *App) openModal(ctx context.Context, trigger string, m sl.ModalViewRequest) error {
	ctx, cancel := context.WithTimeout(ctx, 2500*time.Millisecond)
	defer cancel()
	_, err := a.Client.OpenViewContext(ctx, trigger, m)
	if err != nil {
		return fmt.Errorf("views.open: %w", err)
	}
	return nil
}

// Interaction handles a click on a card's button (it opens the verb's
// modal) and a modal's submission (it hands the command to the engine; a
// refusal is shown under the input it concerns, and the modal stays open).
func (a *App) Interaction(ctx context.Context, ic *sl.InteractionCallback) (Answer, error) {
	if ic.Team.ID != a.TeamID {
		return nil, errForeignTeam
	}
	switch ic.Type {
	case sl.InteractionTypeBlockActions:
		for _, act := range ic.ActionCallback.BlockActions {
			if act == nil {
				continue
			}
			if action, ok := ParseAction(act.ActionID, act.Value); ok {
				a.button(ctx, ic, action)
				break
			}
		}
		return nil, nil
	case sl.InteractionTypeViewSubmission:
		if ic.View.CallbackID != callbackView {
			return nil, nil
		}
		return a.submit(ctx, ic), nil
	}
	return nil, nil
}

// button opens the modal of the verb a card's button names.
func (a *App) button(ctx context.Context, ic *sl.InteractionCallback, act Action) {
	pol := a.Engine.Policy()
	channel, thread := ic.Channel.ID, ic.Message.Timestamp
	if ic.Message.ThreadTimestamp != "" {
		thread = ic.Message.ThreadTimestamp
	}
	if a.identity(pol, ic.User.ID).Person == "" {
		a.tell(channel, thread, ic.User.ID, notMapped(ic.User.ID))
		return
	}
	esc, err := a.Store.FindEscalation(ctx, act.Escalation)
	if err != nil {
		a.tell(channel, thread, ic.User.ID, Escape(fmt.Sprintf("%s: no such escalation.", act.Escalation)))
		return
	}
	if !bot.AllowedIn(act.Verb, esc.State) {
		a.tell(channel, thread, ic.User.ID, Escape(fmt.Sprintf("%s is %s: %s no longer applies.", esc.ID, state(esc.State), act.Verb)))
		return
	}
	clicked := a.writtenAt(ctx)
	for _, b := range ic.ActionCallback.BlockActions {
		if b != nil && b.ActionID == act.ID() {
			if t := slackTime(b.ActionTs); !t.IsZero() {
				clicked = t
			}
		}
	}
	m, err := BuildModal(act.Verb, esc, pol, modalMeta{Esc: esc.ID, Head: act.Head, Channel: channel, Thread: thread, At: clicked.Unix()})
	if err != nil {
		a.tell(channel, thread, ic.User.ID, problemText(err))
		return
	}
	if err := a.openModal(ctx, ic.TriggerID, m); err != nil {
		a.Log.Warn("could not open a modal", bot.LogErr, err)
		a.tell(channel, thread, ic.User.ID, "Slack did not open the form in time; press the button again.")
	}
}

// submit hands a submitted modal to the engine.
func (a *App) submit(ctx context.Context, ic *sl.InteractionCallback) Answer {
	var meta modalMeta
	if err := json.Unmarshal([]byte(ic.View.PrivateMetadata), &meta); err != nil || meta.Verb == "" {
		return nil
	}
	pol := a.Engine.Policy()
	actor := a.identity(pol, ic.User.ID)
	if actor.Person == "" {
		return errorsOn(ic.View.State, "", notMapped(ic.User.ID))
	}
	c, err := modalCommand(meta, ic.View.State)
	if err != nil {
		p, ok := bot.IsProblem(err)
		if !ok {
			p = &bot.Problem{Msg: err.Error()}
		}
		return errorsOn(ic.View.State, problemBlock(p, meta, ic.View.State), p.Error())
	}
	in := bot.Input{Kind: bot.InputCommand, Actor: actor, Command: &c, Escalation: meta.Esc, Head: meta.Head, Key: "slack:view:" + ic.View.ID}
	if meta.Head == "" && meta.At > 0 {
		// The card showed no head: the command is about the head
		// threatgate knew when the button was pressed.
		in.WrittenAt = time.Unix(meta.At, 0)
	}
	out, done := a.decide(ctx, in, func(o outcome) { a.tell(meta.Channel, meta.Thread, ic.User.ID, o.text) })
	if !done {
		// The modal closes; the answer follows in the thread.
		return nil
	}
	if out.problem != nil {
		// A refusal keeps the modal open, shown under the input it is
		// about, so nothing typed is lost.
		block := problemBlock(out.problem, meta, ic.View.State)
		msg := out.problem.Error()
		if strings.HasPrefix(block, prefixCheck) && strings.Contains(msg, "--check") {
			msg = "Answer this item: the tier asks every approver to answer its checklist."
		}
		return errorsOn(ic.View.State, block, msg)
	}
	a.tell(meta.Channel, meta.Thread, ic.User.ID, out.text)
	return nil
}

// errorsOn answers a submission with msg under block (the first input
// when block is "").
func errorsOn(state *sl.ViewState, block, msg string) Answer {
	if block == "" && state != nil {
		for b := range state.Values {
			if block == "" || b < block {
				block = b
			}
		}
	}
	if block == "" {
		block = blockText
	}
	return sl.NewErrorsViewSubmissionResponse(map[string]string{block: clip(msg, 2000)})
}

// Event handles an Events API callback: a reply in an escalation's thread
// (a command, an artifact such as "threat-model: <link>", intake answers,
// or an uploaded file named after an artifact kind) and the App Home tab
// being opened. Conversation that is not meant for threatgate is left
// alone. A retried event (same event id) changes nothing the second time:
// the engine refuses its key, and no answer is sent twice.
func (a *App) Event(ctx context.Context, ev slackevents.EventsAPIEvent) error {
	if ev.TeamID != a.TeamID {
		return errForeignTeam
	}
	cb, _ := ev.Data.(*slackevents.EventsAPICallbackEvent)
	eventID := ""
	if cb != nil {
		eventID = cb.EventID
	}
	if eventID != "" && !a.once("event:"+eventID) {
		return nil
	}
	switch inner := ev.InnerEvent.Data.(type) {
	case *slackevents.MessageEvent:
		if err := a.message(ctx, eventID, inner); err != nil {
			// Slack's retry of this event may succeed: it is not
			// remembered as handled.
			a.forget("event:" + eventID)
			return err
		}
	case *slackevents.AppHomeOpenedEvent:
		if inner.Tab == "home" || inner.Tab == "" {
			a.bg.Add(1)
			go func() {
				defer a.bg.Done()
				hctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 10*time.Second)
				defer cancel()
				if err := a.PublishHome(hctx, inner.User); err != nil {
					a.Log.Warn("could not publish the App Home tab", bot.LogErr, err)
				}
			}()
		}
	}
	return nil
}

// message handles a message event: only replies in a thread threatgate
// opened count. An error means the reply was not handled (the store
// failed) and should come again.
func (a *App) message(ctx context.Context, eventID string, ev *slackevents.MessageEvent) error {
	switch ev.SubType {
	case "", "file_share", "thread_broadcast":
	default:
		return nil // edits, deletions, joins, bots
	}
	if ev.BotID != "" || ev.User == "" || ev.User == a.BotUserID {
		return nil
	}
	if ev.ThreadTimeStamp == "" || ev.ThreadTimeStamp == ev.TimeStamp {
		return nil // not a reply
	}
	esc, err := a.Store.EscalationOfThread(ctx, SinkName, bot.MessageRef{Channel: ev.Channel, TS: ev.ThreadTimeStamp})
	if err != nil {
		if errors.Is(err, bot.ErrNotFound) {
			return nil
		}
		a.Log.Warn("could not look up a thread; the reply is left for Slack to send again", bot.LogErr, err)
		a.tell(ev.Channel, ev.ThreadTimeStamp, ev.User, "threatgate could not read this reply just now (its store failed). If it does not act on it within a few minutes, write it again.")
		return fmt.Errorf("look up the thread of a reply: %w", err)
	}
	pol := a.Engine.Policy()
	text, addressed := a.strip(ev.Text)
	var files []sl.File
	if ev.Message != nil {
		files = ev.Message.Files
	}
	reply := func(t string) { a.tell(ev.Channel, ev.ThreadTimeStamp, ev.User, t) }
	var cmds []bot.Command
	switch {
	case len(files) > 0:
		kind := artifactKindOf(text, pol)
		if kind == "" {
			if addressed || strings.TrimSpace(text) != "" && bot.IsThreadCommand(text, pol) {
				break // a command with a file attached: the command counts
			}
			reply("To record this file as an artifact, upload it with the artifact's kind as its message, such as `threat-model`.")
			return nil
		}
		for _, f := range files {
			link := f.Permalink
			if link == "" {
				continue
			}
			name := f.Name
			if f.Title != "" && f.Title != f.Name {
				name = f.Title
			}
			cmds = append(cmds, bot.Command{Verb: bot.VerbArtifact, Escalation: esc, Artifact: kind, Ref: strings.TrimSpace(name + " " + link)})
		}
		if len(cmds) == 0 {
			reply("Slack gave no link for that file; share it again, or post its link as `" + Escape(kind) + ": <link>`.")
			return nil
		}
	}
	if len(cmds) == 0 {
		if !addressed && !bot.IsThreadCommand(text, pol) {
			return nil // conversation
		}
		if addressed && !strings.HasPrefix(strings.TrimSpace(text), "/") && !bot.IsThreadCommand(text, pol) {
			text = "/threatgate " + strings.TrimSpace(text)
		}
		c, err := bot.ParseThreadReply(text, pol)
		if err != nil {
			reply(problemText(err))
			return nil
		}
		cmds = append(cmds, c)
	}
	actor := a.identity(pol, ev.User)
	if actor.Person == "" && !anyone(cmds[0].Verb) {
		reply(notMapped(ev.User))
		return nil
	}
	for i := range cmds {
		// An upload is held to what a typed command is (lengths,
		// control characters).
		if _, err := bot.ParseCommand(cmds[i].String()); err != nil {
			reply(problemText(err))
			return nil
		}
	}
	written := slackTime(ev.TimeStamp)
	for i := range cmds {
		// Slack signs when the reply was written: a reply written before
		// the head last changed is not about the new head.
		in := bot.Input{Kind: bot.InputCommand, Actor: actor, Command: &cmds[i], Escalation: esc, WrittenAt: written}
		if eventID != "" {
			in.Key = fmt.Sprintf("slack:event:%s:%d", eventID, i)
		}
		out, done := a.decide(ctx, in, func(o outcome) { reply(o.text) })
		if done {
			reply(out.text)
		}
	}
	return nil
}

// strip removes a leading mention of the app (<@Ubot>) from a message and
// reports whether there was one: "@threatgate approve" is a command.
func (a *App) strip(text string) (string, bool) {
	t := strings.TrimSpace(text)
	if a.BotUserID != "" {
		if rest, ok := strings.CutPrefix(t, "<@"+a.BotUserID+">"); ok {
			return strings.TrimSpace(rest), true
		}
	}
	return t, false
}

// artifactKindOf reads the artifact kind a file's message names: the
// message is the kind ("threat-model"), or starts with "kind:".
func artifactKindOf(text string, pol *policies.Policy) string {
	t := strings.TrimSpace(text)
	first, _, _ := strings.Cut(t, "\n")
	first = strings.TrimSpace(first)
	if k, _, ok := strings.Cut(first, ":"); ok {
		first = strings.TrimSpace(k)
	} else if i := strings.IndexFunc(first, func(r rune) bool { return r == ' ' || r == '\t' }); i > 0 {
		first = first[:i]
	}
	if _, ok := pol.Artifact(first); ok {
		return first
	}
	return ""
}
