// Package slack is threatgate's Slack surface. For now it holds the Block
// Kit renderer: it turns what an effect says as data (a bot.Notice for a
// thread post, a bot.CardData for the thread's parent message) into
// slack-go blocks and the fallback text Slack shows in notifications, and
// reads back the buttons it rendered (ParseAction).
//
// # Basics
//
// RenderNotice and RenderCard say what bot.RenderText and
// bot.RenderCardText say, in Slack's idiom: sections of mrkdwn, context
// blocks for secondary facts, fields for lists, deadlines as date tokens
// that each reader sees in their own time zone, and on an active card the
// buttons Approve, Reject, Add artifact and Dissent, whose action_id names
// the verb ("threatgate:approve") and whose value names the escalation and
// the head the card showed ("ESC-7@<sha>"). RenderEffect renders a
// thread_post or thread_summary effect whole, with the mentions it asks for.
// Golden files in testdata/blocks hold the JSON of every notice kind and of
// the card (go test ./adapters/slack -update rewrites them).
//
// Every piece of text is escaped with Escape (&, < and > as entities; a
// bare @channel, @here, @everyone or @group broken by a zero-width joiner),
// and mrkdwn text objects are verbatim, so Slack links nothing on its own.
// The only mentions in the output are the ones threatgate means to make:
// the effect's Mention list and the card's Waiting, for people the UserIDs
// mapping gives a Slack id. The markup type keeps this by construction: a
// block's text is markup, and a string variable becomes markup only
// through the helpers that escape it.
// Text too long for Block Kit's limits is cut rather than refused by Slack.
//
// # The app
//
// App is the Slack surface. Its inputs come over HTTP (Handler: POST
// /slack/commands, /slack/interactions, /slack/events, each request's v0
// signature checked over the raw body with a 5-minute window before
// anything is parsed) or over Socket Mode (RunSocket, with the app-level
// token); both call the same methods: Command, Interaction and Event.
// Every input is mapped to a person through the policy's people[].slack
// (an unmapped user is told how to get mapped; nothing is recorded),
// refused when it comes from another workspace than TeamID, and handed to
// the engine, which records it before the answer is given; an answer the
// engine does not give within AckWithin (2s; Slack waits 3s) is given
// later through the response_url or in the thread. Buttons open modals
// built from the verb table and the tier (BuildModal): the checklist for
// Approve, the artifact kinds with the STRIDE template for Add artifact,
// the policy's intake fields for /escalate. Replies in an escalation's
// thread are commands ("@threatgate approve …", "/threatgate …"),
// artifacts ("threat-model: <link>", or an uploaded file whose message is
// the kind) or intake answers; other conversation is left alone. A
// retried event or a repeated submission changes nothing: each carries an
// idempotency key the engine refuses the second time.
//
// App is also the Slack sink (Deliver, sink.go): the card is the thread's
// parent message, posted once and edited in place; thread posts go into
// it; security notices are copied to SecurityChannel; each informed group
// with a slack_channel has one message per escalation, edited in place.
// Every post carries its effect's id as message metadata, so a post whose
// outcome was unknown (a timeout, a 5xx) is looked up before it is made
// again. PublishHome renders the App Home tab: the viewer's queue.
//
// # Caveats
//
// This package imports bot (and slack-go), never the store and never
// another adapter; it decides nothing (who may press a button is the
// engine's to judge). A crash between a thread post and its
// acknowledgement in the outbox can post it twice after a restart (the
// memory of uncertain posts is in process). Slack does not say in which
// thread a slash command was typed, so /approve there needs the
// escalation's id; "@threatgate approve" in the thread does not.
package slack
