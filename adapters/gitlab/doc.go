// Package gitlab is threatgate's GitLab adapter: it verifies and records
// webhooks (Intake), turns them into bot inputs after fetching the MR's
// current state through the API (Worker), reconciles what webhooks missed,
// and implements bot.Forge (commit statuses or external status checks, MR
// notes, labels) over gitlab.com/gitlab-org/api/client-go.
//
// # Basics
//
// Intake answers GitLab within milliseconds: it checks X-Gitlab-Token in
// constant time before reading the body, bounds the body, checks it is
// JSON, records it durably in the store's inbox (deduplicated by
// X-Gitlab-Event-UUID or Idempotency-Key) and answers 200. Everything that
// calls GitLab happens afterwards, in the Worker. A webhook is only a
// trigger: the Worker fetches the MR as it is now, so a late or repeated
// delivery can never move an escalation backwards.
//
// MR-comment commands ("/threatgate approve" in a comment) are the same:
// the Note Hook only names a note. The Worker reads the note back from the
// API (NoteReader; *Client is one) and runs its text as its author, known
// by numeric user id: the policy person with the author's username, only
// when that person's pinned gitlab_id, or the id the username resolves to
// (cached for an hour), is the author's. The note's created_at and the
// MR's diff versions say when it was written and which head its author
// saw. Without the API (dry run, demo) only help runs. Every refusal is
// answered in the MR.
//
// Every note threatgate posts goes through Neutralize: text from outside
// can neither mention anyone nor run a quick action. The one mention
// threatgate makes is the author of the comment it answers.
//
// Reconcile asks GitLab what changed (Lister: MRs and pipelines updated
// since a watermark per project, kept in the store; every FullEvery, the
// list of open MRs) and reads only the MRs that moved. Every request the
// Client sends waits for its Limiter (gitlab.max_requests_per_minute,
// GitLab's RateLimit-* headers, 429s) and is reported by route template
// and outcome (Config.OnRequest).
//
// # Caveats
//
// The client runs with client-go's own retries off: the outbox owns
// retries, and client-go would otherwise repeat POSTs (duplicate notes).
// This package imports bot and policies, never another adapter.
package gitlab
