// Package store is the bbolt implementation of bot.Store: the escalation
// projections and their indexes, the audit log with its hash chain, the
// outbox of effects waiting for delivery, idempotency keys and quarterly
// quotas, all in one file, threatgate.db, inside the data directory.
//
// It imports bot (the vocabulary it stores) and bbolt, and no adapter or
// other SDK. Nothing outside this package sees a bbolt type.
//
// # Basics
//
// Everything one decision writes goes through Commit, in one bbolt Update
// transaction: the events are appended to the chain, the projection and
// its indexes are replaced, the effects are enqueued, the idempotency key
// and the quotas are recorded. Either all of it is written or none of it.
// Commit never uses bbolt's Batch, whose function may run twice.
//
// Stored times come from the caller (bot.Commit.At, the now of a read
// method), never from time.Now, so that tests drive the clock.
//
// # Buckets
//
//	meta              schema_version, head_seq + head_hash (the end of the
//	                  audit chain), verified_seq + verified_hash (the
//	                  checkpoint of VerifyFrom, absent until its first
//	                  run), next_escalation (n of the next ESC-n),
//	                  next_quiet (counter for effect ids of commits without
//	                  events), list_key (the secret that signs esc_list
//	                  cursors). Integers are big-endian uint64.
//	events            big-endian uint64 seq -> JSON of bot.Event. Append-only;
//	                  seq is global across escalations and starts at 1.
//	payloads          big-endian uint64 seq -> the bulky payload of that
//	                  event (bot.Bulk: signal evidence lines, artifact
//	                  text; schema 8), kept beside the chain: the event is
//	                  sealed without it, with its SHA-256 (Sealed). Once
//	                  retention removed it: {"removed": {"by": seq of the
//	                  compaction event, "at": when}}.
//	events_by_esc     escalation id + 0x00 + big-endian seq -> nil: one
//	                  escalation's events in order.
//	escalations       escalation id -> JSON of bot.Escalation (the projection).
//	by_mr             "project!iid" -> escalation id. One escalation per MR,
//	                  for ever: a second one for the same MR is refused.
//	open_by_deadline  time key of DecisionDue + id -> nil, for escalations
//	                  whose State.Active() is true, and only those.
//	by_approver       person + 0x00 + id -> nil for each person in Waiting of
//	                  an active escalation.
//	outbox            effect id -> JSON of OutboxRecord.
//	outbox_due        time key of NextAttempt + effect id -> nil, for queue
//	                  heads and parked effects, so DueEffects reads only what
//	                  is due.
//	idempotency       key -> time key of its expiry.
//	quota             person + "|" + quarter ("2026Q4") -> JSON of bot.Quota.
//	inbox             big-endian uint64 id -> an InboxItem: verified
//	                  inputs (webhook bodies) recorded before they were
//	                  acknowledged, until processed. 0x01 + uvarint length
//	                  + JSON header (the item without id and body) + the
//	                  body as received; records from before are the JSON
//	                  of the item (body in base64), read alike
//	                  (encodeInbox, decodeInbox). Written by Enqueue's
//	                  group commit (groupcommit.go: concurrent webhooks
//	                  share one Update, with no fixed wait; measured in
//	                  docs/BENCHMARKS.md). Removed by the commit of
//	                  the item's decision (bot.Commit.Inbox), or, for an
//	                  item whose processing committed nothing, by
//	                  InboxDone, many at a time.
//	inbox_keys        delivery id (webhook UUID) -> expiry time key.
//	outbox_queue      sink + 0x00 + escalation (or "~" + effect id) + 0x00 +
//	                  big-endian enqueue Seq + effect id -> nil: one delivery
//	                  queue per (sink, escalation), in enqueue order. Only a
//	                  queue's head (and parked effects) has an outbox_due
//	                  entry. meta outbox_seq counts enqueued effects.
//	outbox_latest     sink + 0x00 + kind + 0x00 + (project!iid + 0x00 + sha
//	                  for a status; the escalation for a summary) -> newest Seq and
//	                  how many wait (8 + 8 bytes): an older one is superseded
//	                  (a lookup), whoever queued it; removed when none waits.
//	threads           sink + 0x00 + escalation -> JSON of bot.MessageRef: where
//	                  the escalation's thread is on that chat sink; and the
//	                  reverse, 0x01 + sink + 0x00 + channel + 0x00 + ts ->
//	                  escalation, so a reply in a thread finds its
//	                  escalation (EscalationOfThread).
//	inbox_due         time key of NextAttempt + big-endian item id -> nil,
//	                  one entry per inbox item (a zero NextAttempt is keyed
//	                  as the earliest time), so InboxDue reads only what is
//	                  due. Every write of an item goes through putInbox and
//	                  deleteInbox (inbox.go), which keep it; schema 3 built
//	                  it for the items already waiting.
//	dead_letters      big-endian uint64 seq -> JSON of bot.DeadLetter: items a
//	                  background loop set aside because handling them
//	                  panicked (SetAside; ID "DL-<seq>" when none is given).
//	                  Nothing removes them yet; read newest first, counted
//	                  from the bucket's stats (DeadLetterCount).
//	away              person id -> time key of the day they are back: the
//	                  absences people recorded (/threatgate away), written by
//	                  Commit from bot.EventAway (a zero Until removes the
//	                  entry; ended ones are pruned then); read by Away.
//	incident_events   incident id + 0x00 + big-endian seq -> nil: each
//	                  incident's recorded and fixed events (schema 10),
//	                  written by Commit; read by FindIncident; audit verify
//	                  checks it against the log.
//	retention_due     time key of UpdatedAt + escalation id -> nil: the
//	                  escalations closed for retention (bot.Retainable:
//	                  decided or withdrawn, MR merged or closed) with events
//	                  since their last compaction (schema 7); read by
//	                  RetentionDue, so a pass with nothing to compact reads
//	                  one key.
//	esc_list          the whole record's index (list.go): dimension byte +
//	                  value + 0x00 + time key of CreatedAt + id -> nil.
//	                  Dimensions: 'c' every escalation (value ""), 's' its
//	                  state, "open" or "closed", and "bypassed" for a merge
//	                  without approval (bot.StatesOf), 't' its tier, 'p'
//	                  its project in lower case, 'u' everyone named on it
//	                  in lower case (bot.PeopleOf), 'f' its flags urgent,
//	                  manual, forged (bot.FlagsOf). Written by Commit with
//	                  the other indexes (index, unindex); built for older
//	                  files by migrateListIndex (list_migration.go).
//	                  ListPage walks one value's range newest first,
//	                  looks up each entry's position under the other
//	                  filters' values, and decodes only the projections
//	                  that pass: at most the page's limit of matches and
//	                  max(10 x limit, 1000) entries walked per call,
//	                  whatever the store's size. meta list_key (32
//	                  random bytes, made by the same migration, schema 9)
//	                  signs its cursors with the query's filters
//	                  (HMAC-SHA-256).
//	aggregates        counter key -> big-endian int64: the whole record's
//	                  figures the dashboard and /metrics show (schema 11):
//	                  total, by tier and state, bypassed, forged statuses,
//	                  open and urgent, opened and decided per ISO week,
//	                  open escalations each person and group holds up.
//	                  What counts where is bot.Contributions; Commit and
//	                  Compact take the old projection's contributions away
//	                  and add the new one's (aggregate, aggregate.go), so a
//	                  read is one small bucket. A counter at 0 is removed.
//	                  Built for older files by migrate11Aggregates;
//	                  RebuildAggregates (threatgate aggregates rebuild)
//	                  recomputes it from the projections.
//	first_response_due time key of FirstResponseDue + id -> JSON of
//	                  bot.FirstResponseWatch (empty when nobody has acted
//	                  on it), for the active, not deferred escalations with
//	                  a first-response deadline (schema 11, kept by
//	                  aggregate). CountPastFirstResponse walks it up to
//	                  now.
//	mr_unescalated    project NUL iid (8 bytes) -> JSON bot.Unescalated:
//	                  the head and tier facts at which the GitLab worker
//	                  classified an open MR into no tier (schema 13,
//	                  unescalated.go). About one key per open MR without
//	                  an escalation: the worker forgets an MR closed,
//	                  merged, gone or escalated.
//	gitlab_projects   project path -> empty: the projects reconcile lists
//	                  besides those of watched escalations: projects of
//	                  MRs a webhook or a pass read, and (migration 13)
//	                  of every escalation, merged ones included; one
//	                  GitLab answers 404 for three passes in a row is
//	                  forgotten (schema 13).
//
// What depends on the clock is no counter: CountOverdue walks the
// open_by_deadline keys due before now without decoding them (less the
// deferred ones, decoded from deferred_until, whose deadline moves with
// their pause), and CountPastFirstResponse walks first_response_due up to
// now, decoding only the small watches of escalations someone acted on.
// Both cost the number of escalations late now, never the whole record.
// MostUrgent reads the first entries of open_by_deadline and
// deferred_until; IncidentEventsBetween reads incident_events.
//
// The buckets whose keys only grow (events, payloads, dead_letters) are
// split full (FillPercent 1.0, fill.go) in every transaction that appends
// to them; bbolt's default leaves their pages half empty.
//
// A time key is 8 bytes that sort like the time: the Unix nanoseconds with
// the sign bit flipped, big-endian; the zero time sorts last (an escalation
// with no deadline comes after every one that has one).
//
// # Invariants
//
// Every index entry is derived from the stored projection or outbox
// record it points to: Commit removes the entries of the previously stored
// projection and adds those of the new one in the same transaction, so an
// index never names something that is missing or out of date.
//
// The audit chain links every event to the one before it. An event's Hash
// is the hex SHA-256 of its PrevHash (the 64 hex characters as text)
// followed by the event's canonical JSON: encoding/json's output for the
// bot.Event with Hash empty, exactly as written at commit. The stored
// record is that JSON with `,"hash":"<hash>"` inserted before the closing
// brace, so an auditor recomputes a hash by removing that last member from
// the record. The first event's PrevHash is 64 zeros. Verify recomputes
// the chain from the stored bytes, so a field added to bot.Event later
// does not invalidate the hashes of older records.
//
// Since schema 12 the value stored for an event record or a projection
// is packed (codec.go): a mark byte (0x01 event, 0x02 projection), the
// JSON's length as a uvarint, then the JSON as raw DEFLATE against a
// preset dictionary (dict/events-v1.json, dict/projection-v1.json; fixed
// for ever, pinned by TestDictionariesUnchanged). A value whose first
// byte is '{' is the JSON itself (everything written before schema 12,
// and a value packing would not shrink). Packing is beneath the chain:
// the hash covers the JSON, so an auditor unpacks (RecordJSON, or any
// DEFLATE implementation given the dictionary) and recomputes as above.
// A damaged packed value is a broken link, never a panic.
//
// Verify walks the whole chain. VerifyFrom (for pages, which must not
// cost all history) checks only from the verified checkpoint in meta to
// the head, and moves the checkpoint there when all of it is good: events
// after the checkpoint are checked on every call until they are, and the
// checkpoint's own event is re-read each time. A change to an earlier
// event, or to the checkpoint itself (it is in the same file), is found
// only by Verify.
//
// Bulky payloads (signal evidence lines, artifact text over 256 bytes:
// bot.SplitBulk) are never hashed into an event: Commit seals the event
// without them and with their SHA-256 (Event.Sealed), and keeps them in
// the payloads bucket; readers put them back (decodeEvent). Retention
// (retention.go, retention.closed_days) removes the payloads of an
// escalation closed for long enough: each becomes a tombstone naming the
// EventCompacted event, appended in the same transaction, that lists the
// event's seq, hash and payload digest. No record is ever rewritten, so
// every hash still recomputes from the stored bytes and every anchor
// holds. Verify, VerifyFrom and Audit also check each sealed event's
// payload: present with the digest it was sealed with, or a tombstone
// naming a later compaction event of the same escalation that lists it.
// Events sealed before schema 8 hold their payloads inline (hashed) and
// are never compacted.
//
// The outcomes of a dispatcher round (delivered, failed, parked, the
// thread a chat post opened) are written together by SettleEffects, in
// one transaction; an effect leaves the outbox only there, after its
// delivery, so a crash before it delivers the round again under the same
// ids (the sinks' idempotency keys).
//
// Effect ids are "<escalation id or global>/<seq>/<index>": the seq of the
// first event of the commit (20 digits, zero-padded) and the effect's
// index in bot.Commit.Effects (3 digits). A commit without events uses
// "<head seq>-<n>" for the seq part, n counting such commits. Ids are
// never reused, so the dispatcher can pass them on as idempotency keys.
//
// # Schema
//
// meta.schema_version counts the migrations applied. Open runs each
// missing migration in its own transaction, in order, and refuses a file
// whose version is newer than the binary knows.
//
// # Caveats
//
// The bbolt file holds an exclusive lock while open: a second process (or
// a second Open in the same process) waits for the lock timeout and then
// fails with ErrInUse.
package store
