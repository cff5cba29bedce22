package slack

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"time"

	sl "github.com/slack-go/slack"

	"github.com/threatgate/threatgate/bot"
	"github.com/threatgate/threatgate/policies"
)

var _ bot.Sink = (*App)(nil)

// sinkEventType is the event_type of the metadata on every message the
// sink posts; its event_payload names the effect ("effect") and the part
// of it ("part": sinkPartThread, sinkPartSecurity or sinkPartInform plus
// the group). That is how a retry finds a message an earlier attempt
// posted without hearing back.
const sinkEventType = "threatgate_effect"

// The parts of an effect: each is one message, posted at most once.
const (
	sinkPartThread   = "thread"   // the post in the escalation's thread, or its parent
	sinkPartSecurity = "security" // a thread post's copy in the security channel
	sinkPartInform   = "inform:"  // + group: the card in an informed group's channel
)

// sinkInformKey, after the sink's name and before a group, is the key of
// the group's message in the threads store ("slack#inform:appsec").
const sinkInformKey = "#inform:"

const (
	// sinkLookupSkew widens the look back for an uncertain post: Slack's
	// clock, which stamps the message, may be behind ours.
	sinkLookupSkew = 5 * time.Minute
	// sinkLookupPage and sinkLookupPages bound the look back: pages of
	// history read from the first uncertain attempt on.
	sinkLookupPage  = 100
	sinkLookupPages = 5
	// sinkMarkTTL is how long the marks of an effect that is not delivered
	// again are kept (a superseded effect is dropped by the dispatcher
	// without another attempt); sinkMarkPrune is how many effects with
	// marks there may be before old ones are dropped.
	sinkMarkTTL   = 24 * time.Hour
	sinkMarkPrune = 256
)

// Log keys of the sink.
const (
	sinkLogChannel = "channel"
	sinkLogPart    = "part"
	sinkLogGroup   = "group"
)

// Deliver delivers a chat effect to Slack; it implements bot.Sink.
//
//   - A thread_summary (with a Card) is the escalation's parent message.
//     With no thread yet (e.Thread zero) the card is posted in Channel and
//     its ref returned (the thread opens on it; Deliver records it in the
//     Store at once too, so that a later failure in this call does not
//     lose it). Otherwise the message is edited in place (chat.update) and
//     e.Thread is returned. Then each group of Card.Inform whose policy
//     group has a SlackChannel gets one message per escalation there,
//     the card without mentions: posted the first time and recorded in the
//     Store under the sink's name + "#inform:" + group, edited after that.
//   - A thread_post is posted in the thread (thread_ts), or as the parent
//     in Channel when there is no thread yet (its ref is returned and
//     recorded). It mentions the people of e.Mention that the policy maps
//     to a Slack id. With e.Security and a SecurityChannel, a copy goes
//     there as a top-level message naming the escalation and linking its
//     thread, mentioning nobody.
//   - A digest (the daily digest or the weekly report) is posted in
//     Channel as a top-level message (RenderDigest, RenderReport).
//   - Other effects are nothing to do: the zero ref, nil.
//
// Errors are *bot.DeliveryError: a rate limit with Retry-After sets After;
// a 5xx, a 429 without Retry-After, a transport error or an unknown
// ok:false error is retried with backoff; an ok:false error that no retry
// fixes (channel_not_found, not_in_channel, is_archived, invalid_auth,
// token_revoked, missing_scope, msg_too_long, invalid_blocks, ...) is
// Permanent. When the parent message can no longer be edited
// (message_not_found, cant_update_message: someone deleted it) the error
// is Permanent and nothing new is posted: the thread's ref cannot move
// (SetThreadRef keeps the first), and a second parent would split it.
// An error names the call and the channel, never the token.
//
// The first part of an effect (the thread post, the parent card) decides
// its outcome. A copy (the security channel, a group's channel) that
// fails for a transient reason fails the effect, and the retry posts only
// what is missing; one that fails for good is logged as an error and
// leaves the effect delivered, so that a misconfigured channel neither
// parks the thread's summary (a parked summary retried hours later would
// overwrite a newer card) nor holds up the queue. The next summary tries
// a group's channel again.
//
// Slack has no idempotency key, so each message carries metadata naming
// the effect and the part, and the sink remembers in memory, per effect,
// the parts it posted and the parts whose outcome it does not know (a
// timeout, a connection error, a 5xx, Slack's internal_error and
// fatal_error: the message may have been posted). Before it posts an
// uncertain part again it looks for the metadata in the thread
// (conversations.replies) or the channel (conversations.history), from
// shortly before the first attempt, at most a few pages; found, the part
// counts as posted. A 429 or another ok:false error means it was not
// posted. This needs the history scopes (channels:history, groups:history
// for private channels); when the look-up is refused for good, the part is
// posted again, with a warning, rather than not at all.
//
// What remains: the memory is lost on a restart. A crash after a message
// was posted and before the dispatcher marked the effect done posts that
// message again when the effect is retried (for a thread reply or a
// security copy; a parent or a group's message is recorded in the Store
// as soon as it is posted, so a retry edits it instead, unless the crash
// falls between the post and that record). So does an uncertain attempt
// before a restart, and a message the look-up misses (older than the
// look-back or beyond its pages, or not yet visible in history).
//
// Deliver may run concurrently for different effects; the dispatcher
// delivers one effect of a queue at a time.
func (a *App) Deliver(ctx context.Context, e bot.Effect) (bot.MessageRef, error) {
	log := a.sinkLog().With(bot.LogEffectID, e.ID, bot.LogKind, e.Kind, bot.LogEscalationID, e.Escalation)
	var ref bot.MessageRef
	var err error
	switch {
	case e.Kind == bot.EffectThreadSummary && e.Card != nil:
		ref, err = a.deliverSummary(ctx, e, log)
	case e.Kind == bot.EffectThreadPost:
		ref, err = a.deliverPost(ctx, e, log)
	case e.Kind == bot.EffectDigest:
		ref, err = a.deliverDigest(ctx, e, log)
	default:
		return bot.MessageRef{}, nil
	}
	if err != nil {
		return bot.MessageRef{}, err
	}
	a.sinkMarks().forget(e.ID)
	return ref, nil
}

// deliverSummary posts or edits the escalation's parent message, then the
// informed groups' messages.
func (a *App) deliverSummary(ctx context.Context, e bot.Effect, log *slog.Logger) (bot.MessageRef, error) {
	pol := a.sinkPolicy()
	users := a.sinkUsers(pol)
	render := func() ([]sl.Block, string) { return RenderEffect(e, users) }
	sink := sinkName(e)
	ref := e.Thread
	if ref == (bot.MessageRef{}) {
		posted, err := a.sinkPost(ctx, e, sinkPartThread, a.Channel, "", render, log)
		if err != nil {
			return bot.MessageRef{}, err
		}
		if err := a.sinkRecord(ctx, e.Escalation, sink, posted); err != nil {
			return bot.MessageRef{}, err
		}
		ref = posted
	} else {
		blocks, text := render()
		if err := a.sinkUpdate(ctx, ref, blocks, text); err != nil {
			return bot.MessageRef{}, err
		}
	}
	if err := a.sinkInform(ctx, e, pol, sink, ref, log); err != nil {
		return bot.MessageRef{}, err
	}
	return ref, nil
}

// deliverPost posts a thread post (opening the thread when there is none)
// and its copy in the security channel.
func (a *App) deliverPost(ctx context.Context, e bot.Effect, log *slog.Logger) (bot.MessageRef, error) {
	pol := a.sinkPolicy()
	blocks, text := RenderEffect(e, a.sinkUsers(pol))
	if len(blocks) == 0 && text == "" {
		return bot.MessageRef{}, nil // nothing to say: Slack refuses an empty message
	}
	render := func() ([]sl.Block, string) { return blocks, text }
	thread, ret := e.Thread, bot.MessageRef{}
	if thread == (bot.MessageRef{}) {
		posted, err := a.sinkPost(ctx, e, sinkPartThread, a.Channel, "", render, log)
		if err != nil {
			return bot.MessageRef{}, err
		}
		if err := a.sinkRecord(ctx, e.Escalation, sinkName(e), posted); err != nil {
			return bot.MessageRef{}, err
		}
		thread, ret = posted, posted
	} else if _, err := a.sinkPost(ctx, e, sinkPartThread, thread.Channel, thread.TS, render, log); err != nil {
		return bot.MessageRef{}, err
	}
	if e.Security && a.SecurityChannel != "" {
		copyOf := func() ([]sl.Block, string) { return a.sinkSecurityCopy(ctx, e, thread) }
		if _, err := a.sinkPost(ctx, e, sinkPartSecurity, a.SecurityChannel, "", copyOf, log); err != nil {
			if !sinkIsPermanent(err) {
				return bot.MessageRef{}, err
			}
			log.Error("security copy not posted; fix the cause (the notice is in the thread)", sinkLogChannel, a.SecurityChannel, bot.LogErr, err)
		}
	}
	if err := a.sinkDirect(ctx, e, thread, pol, log); err != nil {
		return bot.MessageRef{}, err
	}
	return ret, nil
}

// sinkDirect sends a reminder (and a handoff's request) to each person it
// asks by direct message too, with a link to the thread: Slack opens the
// app's conversation with them. Once per person (each is a part of the
// effect); a DM Slack refuses for good is logged, not retried.
func (a *App) sinkDirect(ctx context.Context, e bot.Effect, thread bot.MessageRef, pol *policies.Policy, log *slog.Logger) error {
	if e.Notice == nil || (e.Notice.Kind != bot.NoticeNudge && e.Notice.Kind != bot.NoticeHandoff) {
		return nil
	}
	users := a.sinkUsers(pol)
	for _, person := range unique(e.Mention) {
		uid := users(person)
		if !userID.MatchString(uid) {
			continue
		}
		dm := func() ([]sl.Block, string) {
			personal := e
			personal.Mention = nil
			blocks, text := RenderEffect(personal, nil)
			head := md(":bell: From the thread of *%s*", e.Escalation)
			if link := a.sinkThreadLink(ctx, thread); link != "" {
				head += " · " + link
			}
			return compact(append([]sl.Block{contextBlock(head)}, blocks...)), text
		}
		if _, err := a.sinkPost(ctx, e, "dm:"+uid, uid, "", dm, log); err != nil {
			if !sinkIsPermanent(err) {
				return err
			}
			log.Warn("direct message not sent (the reminder is in the thread)", sinkLogChannel, uid, bot.LogErr, err)
		}
	}
	return nil
}

// sinkSecurityCopy renders a thread post for the security channel: a
// line naming the escalation and linking its thread, then the notice,
// mentioning nobody.
func (a *App) sinkSecurityCopy(ctx context.Context, e bot.Effect, thread bot.MessageRef) ([]sl.Block, string) {
	plainCopy := e
	plainCopy.Mention = nil
	blocks, text := RenderEffect(plainCopy, nil)
	id := e.Escalation
	if id == "" {
		id = bot.IDPlaceholder
	}
	head := md(":rotating_light: Security notice for *%s*", id)
	if link := a.sinkThreadLink(ctx, thread); link != "" {
		head += " · " + link
	}
	// text is escaped already (RenderEffect).
	return compact(append([]sl.Block{contextBlock(head)}, blocks...)), string(md("Security notice for %s: ", id)) + text
}

// sinkThreadLink links the thread at ref: its permalink when Slack gives
// one (chat.getPermalink), else the channel; "" when neither is known.
// A failure to get the permalink is not an error: the channel will do.
func (a *App) sinkThreadLink(ctx context.Context, ref bot.MessageRef) markup {
	if ref.Channel == "" || ref.TS == "" {
		return ""
	}
	if p, err := a.Client.GetPermalinkContext(ctx, &sl.PermalinkParameters{Channel: ref.Channel, Ts: ref.TS}); err == nil && sinkSafeLink(p) {
		return markup("<" + p + "|view the thread>")
	}
	if policies.SlackChannelID(ref.Channel) {
		return markup("thread in <#" + ref.Channel + ">")
	}
	return ""
}

// sinkSafeLink reports whether u may be written into a link token: an
// absolute http(s) URL with nothing in it that could end the token.
func sinkSafeLink(u string) bool {
	p, err := url.Parse(u)
	return err == nil && (p.Scheme == "https" || p.Scheme == "http") && p.Host != "" && p.User == nil &&
		!strings.ContainsAny(u, "<>| \t\r\n")
}

// sinkInform keeps the informed groups' messages: one per escalation per
// group with a Slack channel. A group whose message fails for good is
// logged and skipped; transient failures fail the effect (the retry edits
// the parent again and posts only what is missing).
func (a *App) sinkInform(ctx context.Context, e bot.Effect, pol *policies.Policy, sink string, thread bot.MessageRef, log *slog.Logger) error {
	if pol == nil || e.Escalation == "" {
		return nil
	}
	var errs []error
	var after time.Duration
	for _, g := range unique(e.Card.Inform) {
		grp := pol.Groups[g]
		if grp == nil || grp.SlackChannel == "" {
			continue
		}
		err := a.sinkInformGroup(ctx, e, g, grp.SlackChannel, sink, thread, log)
		switch {
		case err == nil:
		case sinkIsGone(err):
			log.Warn("informed group's message is gone; not replaced", sinkLogGroup, g, sinkLogChannel, grp.SlackChannel, bot.LogErr, err)
		case sinkIsPermanent(err):
			log.Error("informed group's message not delivered; fix the cause, the next summary tries again", sinkLogGroup, g, sinkLogChannel, grp.SlackChannel, bot.LogErr, err)
		default:
			errs = append(errs, err)
			var de *bot.DeliveryError
			if errors.As(err, &de) {
				after = max(after, de.After)
			}
		}
	}
	if len(errs) == 0 {
		return nil
	}
	return &bot.DeliveryError{Err: errors.Join(errs...), After: after}
}

// sinkInformGroup posts or edits group g's message in channel.
func (a *App) sinkInformGroup(ctx context.Context, e bot.Effect, g, channel, sink string, thread bot.MessageRef, log *slog.Logger) error {
	key := sink + sinkInformKey + g
	ref, err := a.Store.ThreadRef(ctx, e.Escalation, key)
	if err != nil {
		return fmt.Errorf("read the message of group %s: %w", g, err)
	}
	render := func() ([]sl.Block, string) { return sinkInformCard(e, g, thread) }
	if ref != (bot.MessageRef{}) {
		blocks, text := render()
		return a.sinkUpdate(ctx, ref, blocks, text)
	}
	if ref, err = a.sinkPost(ctx, e, sinkPartInform+g, channel, "", render, log); err != nil {
		return err
	}
	return a.sinkRecord(ctx, e.Escalation, key, ref)
}

// sinkInformCard is the card as an informed group sees it: mentioning
// nobody (the people waited on are pinged in the thread), with a line
// saying why the group sees it and where the thread is.
func sinkInformCard(e bot.Effect, g string, thread bot.MessageRef) ([]sl.Block, string) {
	blocks, text := RenderEffect(e, nil)
	line := md("Shown to *%s*, a group this tier informs.", g)
	if policies.SlackChannelID(thread.Channel) {
		line += markup(" The review happens in <#" + thread.Channel + ">.")
	}
	at := min(1, len(blocks)) // after the header
	blocks = append(blocks[:at:at], append([]sl.Block{contextBlock(line)}, blocks[at:]...)...)
	return compact(blocks), text
}

// sinkPost posts one part of e in channel (in the thread threadTS when
// not ""), at most once: a part posted by an earlier attempt is not posted
// again, and one whose outcome is unknown is looked for first. render
// builds the message; it is called only when a message is posted.
func (a *App) sinkPost(ctx context.Context, e bot.Effect, part, channel, threadTS string, render func() ([]sl.Block, string), log *slog.Logger) (bot.MessageRef, error) {
	marks := a.sinkMarks()
	m := marks.get(e.ID, part)
	if m.posted {
		return m.ref, nil
	}
	if !m.since.IsZero() {
		ref, found, err := a.sinkFind(ctx, e.ID, part, channel, threadTS, m.since)
		switch {
		case err != nil && !sinkIsPermanent(err):
			return bot.MessageRef{}, err
		case err != nil:
			log.Warn("cannot look for an earlier attempt's message; posting it again may show it twice", sinkLogPart, part, sinkLogChannel, channel, bot.LogErr, err)
		case found:
			log.Info("an earlier attempt had posted the message", sinkLogPart, part, sinkLogChannel, channel)
			marks.setPosted(e.ID, part, ref, a.now())
			return ref, nil
		}
	}
	blocks, text := render()
	opts := []sl.MsgOption{
		sl.MsgOptionText(text, false),
		sl.MsgOptionMetadata(sl.SlackMetadata{EventType: sinkEventType, EventPayload: map[string]any{"effect": e.ID, "part": part}}),
		sl.MsgOptionDisableLinkUnfurl(),
		sl.MsgOptionDisableMediaUnfurl(),
	}
	if len(blocks) > 0 {
		opts = append(opts, sl.MsgOptionBlocks(blocks...))
	}
	if threadTS != "" {
		opts = append(opts, sl.MsgOptionTS(threadTS))
	}
	ch, ts, err := a.Client.PostMessageContext(ctx, channel, opts...)
	if err == nil && ts == "" {
		err = errors.New("the answer has no ts")
	}
	if err != nil {
		if sinkMaybePosted(err) {
			marks.setUncertain(e.ID, part, a.now())
		}
		return bot.MessageRef{}, sinkError("chat.postMessage", channel, err)
	}
	if ch == "" {
		ch = channel
	}
	ref := bot.MessageRef{Channel: ch, TS: ts}
	marks.setPosted(e.ID, part, ref, a.now())
	return ref, nil
}

// sinkUpdate edits the message at ref (chat.update, which is idempotent).
// Its metadata is left as it was posted.
func (a *App) sinkUpdate(ctx context.Context, ref bot.MessageRef, blocks []sl.Block, text string) error {
	_, _, _, err := a.Client.UpdateMessageContext(ctx, ref.Channel, ref.TS, sl.MsgOptionText(text, false), sl.MsgOptionBlocks(blocks...))
	if err != nil {
		return sinkError("chat.update of "+ref.TS, ref.Channel, err)
	}
	return nil
}

// sinkFind looks for the message of part of effect id posted from since
// on: in the thread threadTS, or at the top of channel. found is false
// when it is not among the messages read.
func (a *App) sinkFind(ctx context.Context, id, part, channel, threadTS string, since time.Time) (ref bot.MessageRef, found bool, err error) {
	oldest := since.Add(-sinkLookupSkew)
	oldestTS := fmt.Sprintf("%d.%06d", oldest.Unix(), oldest.Nanosecond()/1000)
	cursor := ""
	for range sinkLookupPages {
		var msgs []sl.Message
		var more bool
		call := "conversations.history"
		if threadTS != "" {
			call = "conversations.replies"
			msgs, more, cursor, err = a.Client.GetConversationRepliesContext(ctx, &sl.GetConversationRepliesParameters{
				ChannelID: channel, Timestamp: threadTS, Oldest: oldestTS, Limit: sinkLookupPage, Cursor: cursor, IncludeAllMetadata: true})
		} else {
			var h *sl.GetConversationHistoryResponse
			h, err = a.Client.GetConversationHistoryContext(ctx, &sl.GetConversationHistoryParameters{
				ChannelID: channel, Oldest: oldestTS, Limit: sinkLookupPage, Cursor: cursor, IncludeAllMetadata: true})
			if h != nil {
				msgs, more, cursor = h.Messages, h.HasMore, h.ResponseMetaData.NextCursor
			}
		}
		if err != nil {
			return bot.MessageRef{}, false, sinkError(call, channel, err)
		}
		for _, m := range msgs {
			if a.sinkMine(m, id, part) {
				return bot.MessageRef{Channel: channel, TS: m.Timestamp}, true, nil
			}
		}
		if !more || cursor == "" {
			break
		}
	}
	return bot.MessageRef{}, false, nil
}

// sinkMine reports whether m is the message of part of effect id: its
// metadata says so and, when BotUserID is known, the app posted it (only
// an app can set metadata, but another app in the channel could copy it).
func (a *App) sinkMine(m sl.Message, id, part string) bool {
	meta := m.Metadata
	if meta.EventType != sinkEventType || meta.EventPayload == nil {
		return false
	}
	if e, _ := meta.EventPayload["effect"].(string); e != id {
		return false
	}
	if p, _ := meta.EventPayload["part"].(string); p != part {
		return false
	}
	return a.BotUserID == "" || m.User == a.BotUserID
}

// sinkRecord records ref as where esc's thread (or group message) is on
// sink, as soon as it is posted: a failure later in the same delivery
// then edits it on the retry instead of posting it again.
func (a *App) sinkRecord(ctx context.Context, esc, sink string, ref bot.MessageRef) error {
	if esc == "" {
		return nil
	}
	if err := a.Store.SetThreadRef(ctx, esc, sink, ref); err != nil {
		return fmt.Errorf("record the message of %s on %s: %w", esc, sink, err)
	}
	return nil
}

// sinkName is the name of e's sink, as the dispatcher keys its threads.
func sinkName(e bot.Effect) string {
	if e.Sink != "" {
		return e.Sink
	}
	return bot.SinkClass(e.Kind)
}

func (a *App) sinkPolicy() *policies.Policy {
	if a.Engine == nil {
		return nil
	}
	return a.Engine.Policy()
}

func (a *App) sinkUsers(pol *policies.Policy) UserIDs {
	if pol == nil {
		return nil
	}
	return a.users(pol)
}

func (a *App) sinkLog() *slog.Logger {
	if a.Log == nil {
		return slog.New(slog.DiscardHandler)
	}
	return a.Log
}

// sinkPermanent are the ok:false errors no retry fixes, with what to do.
var sinkPermanent = map[string]string{
	"channel_not_found":              "check the channel id; invite the app to a private channel",
	"not_in_channel":                 "invite the app to the channel",
	"is_archived":                    "unarchive the channel or configure another",
	"invalid_auth":                   "check the bot token",
	"not_authed":                     "check the bot token",
	"account_inactive":               "check the bot token",
	"token_revoked":                  "check the bot token",
	"token_expired":                  "check the bot token",
	"no_permission":                  "check the app's permissions",
	"missing_scope":                  "add the scope to the app",
	"not_allowed_token_type":         "use the bot token (xoxb-)",
	"team_access_not_granted":        "install the app in the workspace",
	"ekm_access_denied":              "",
	"restricted_action":              "let the app post in the channel",
	"msg_too_long":                   "",
	"invalid_blocks":                 "",
	"invalid_blocks_format":          "",
	"invalid_metadata_format":        "",
	"invalid_metadata_schema":        "",
	"metadata_too_large":             "",
	"metadata_must_be_sent_from_app": "",
	"too_many_attachments":           "",
	"message_not_found":              "the message was deleted; it is not posted again",
	"cant_update_message":            "the message was deleted or not posted by this app; it is not posted again",
	"edit_window_closed":             "",
}

// sinkGoneErrors are the errors of chat.update on a message that is no
// longer there to edit.
var sinkGoneErrors = []string{"message_not_found", "cant_update_message", "edit_window_closed"}

// sinkError wraps err from call in channel as a *bot.DeliveryError that
// says whether and when to retry.
func sinkError(call, channel string, err error) error {
	de := &bot.DeliveryError{Err: fmt.Errorf("%s in %s: %w", call, channel, err)}
	var rl *sl.RateLimitedError
	var sc sl.StatusCodeError
	var se sl.SlackErrorResponse
	switch {
	case errors.As(err, &rl):
		de.After = rl.RetryAfter
	case errors.As(err, &sc):
		// 429 without Retry-After, 5xx and 408: retried with backoff;
		// another 4xx is the API refusing the call as made (a wrong API
		// URL, a malformed request).
		de.Permanent = sc.Code >= 400 && sc.Code < 500 && sc.Code != http.StatusTooManyRequests && sc.Code != http.StatusRequestTimeout
	case errors.As(err, &se):
		hint, ok := sinkPermanent[se.Err]
		de.Permanent = ok
		if se.Err == "missing_scope" && se.Needed != "" {
			hint = "add the scope " + se.Needed + " to the app"
		}
		if hint != "" {
			de.Err = fmt.Errorf("%s in %s: %w (%s)", call, channel, err, hint)
		}
	}
	return de
}

// sinkMaybePosted reports whether a failed chat.postMessage may have
// posted its message all the same: a timeout, a connection error, an
// answer that could not be read, a 5xx, or an ok:false internal_error or
// fatal_error (Slack: "it's possible some aspect of the operation
// succeeded"). A rate limit or another ok:false error means it was not.
func sinkMaybePosted(err error) bool {
	var rl *sl.RateLimitedError
	var sc sl.StatusCodeError
	var se sl.SlackErrorResponse
	switch {
	case errors.As(err, &rl):
		return false
	case errors.As(err, &sc):
		return sc.Code >= 500
	case errors.As(err, &se):
		return se.Err == "internal_error" || se.Err == "fatal_error"
	}
	return true
}

// sinkIsPermanent reports whether err is a delivery error no retry fixes.
func sinkIsPermanent(err error) bool {
	var de *bot.DeliveryError
	return errors.As(err, &de) && de.Permanent
}

// sinkIsGone reports whether err says a message to edit is gone.
func sinkIsGone(err error) bool {
	var se sl.SlackErrorResponse
	if !errors.As(err, &se) {
		return false
	}
	for _, g := range sinkGoneErrors {
		if se.Err == g {
			return true
		}
	}
	return false
}

// sinkMark is what the sink knows of one part of an effect.
type sinkMark struct {
	posted bool
	ref    bot.MessageRef
	// since is when the part was first tried with an unknown outcome;
	// zero when none was.
	since time.Time
}

// sinkMarkSet is the in-memory record of the parts of effects being
// delivered: posted ones (a retry after a later part failed must not post
// them again) and uncertain ones (to look for before posting again). An
// effect's marks go when it is delivered, or after sinkMarkTTL. Its mutex
// is never held across a call to Slack.
type sinkMarkSet struct {
	mu      sync.Mutex
	effects map[string]*sinkEffectMarks
}

type sinkEffectMarks struct {
	touched time.Time
	parts   map[string]sinkMark
}

func (s *sinkMarkSet) get(id, part string) sinkMark {
	s.mu.Lock()
	defer s.mu.Unlock()
	if em := s.effects[id]; em != nil {
		return em.parts[part]
	}
	return sinkMark{}
}

func (s *sinkMarkSet) setPosted(id, part string, ref bot.MessageRef, now time.Time) {
	s.update(id, part, now, func(m *sinkMark) { m.posted, m.ref = true, ref })
}

// setUncertain marks a part whose outcome is unknown; since stays the
// first such attempt, so that a look-up covers every attempt.
func (s *sinkMarkSet) setUncertain(id, part string, now time.Time) {
	s.update(id, part, now, func(m *sinkMark) {
		if m.since.IsZero() {
			m.since = now
		}
	})
}

func (s *sinkMarkSet) update(id, part string, now time.Time, f func(*sinkMark)) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.effects == nil {
		s.effects = map[string]*sinkEffectMarks{}
	}
	if len(s.effects) >= sinkMarkPrune {
		for k, em := range s.effects {
			if now.Sub(em.touched) > sinkMarkTTL {
				delete(s.effects, k)
			}
		}
	}
	em := s.effects[id]
	if em == nil {
		em = &sinkEffectMarks{parts: map[string]sinkMark{}}
		s.effects[id] = em
	}
	em.touched = now
	m := em.parts[part]
	f(&m)
	em.parts[part] = m
}

func (s *sinkMarkSet) forget(id string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	delete(s.effects, id)
}

func (a *App) sinkMarks() *sinkMarkSet { return &a.marks }
