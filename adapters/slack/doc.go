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
// # Caveats
//
// This package imports bot (and slack-go), never the store and never
// another adapter; it decides nothing (who may press a button is the
// engine's to judge). The Slack HTTP endpoints (signature checks, slash
// commands, interactions, events), Socket Mode, modals and the Slack sink
// that delivers effects through the outbox are not written yet (issue 10);
// they will live here and use this renderer.
package slack
