package bot

import "time"

// EffectKind names something to do outside threatgate once a decision is
// committed.
type EffectKind string

const (
	EffectReply      EffectKind = "reply"       // answer to the sender; returned by Engine.Handle, never queued
	EffectStatus     EffectKind = "status"      // set the gate's commit status on the MR head
	EffectMRNote     EffectKind = "mr_note"     // post a note on the MR
	EffectMRLabels   EffectKind = "mr_labels"   // add labels to the MR
	EffectThreadPost EffectKind = "thread_post" // post in the escalation's chat thread (opening it if needed)
	// EffectThreadSummary replaces the escalation's summary (the thread's
	// parent message) in place: state, what is missing, who is waited on.
	EffectThreadSummary EffectKind = "thread_summary"
	EffectPage          EffectKind = "page" // page on-call
	// EffectRefresh reads the MR (Project, MRIID) from the forge and feeds
	// it to the engine, as a webhook would: a manual escalation gets its
	// MR's title, link, head, authors and gate this way.
	EffectRefresh EffectKind = "mr_refresh"
	// EffectResolve resolves the page an earlier EffectPage raised about
	// the same escalation (PageKey names the incident).
	EffectResolve EffectKind = "resolve"
	// EffectDigest posts the daily digest (Digest) or the weekly report
	// (Report) in a chat surface's main channel, outside any thread.
	EffectDigest EffectKind = "digest"
)

// Sink classes: where an effect of a kind is delivered. The engine sends
// each effect to every sink configured for its class (Engine.SetSinks);
// each sink keeps its own queue per escalation, its own order and its own
// backoff.
const (
	SinkForge = "forge" // GitLab: status, notes, labels, refresh
	SinkChat  = "chat"  // the chat surfaces: thread posts, summaries, digests
	SinkPager = "pager" // on-call: pages and their resolution
)

// SinkClass returns the class of sink that delivers effects of kind k, ""
// for a reply (never queued).
func SinkClass(k EffectKind) string {
	switch k {
	case EffectStatus, EffectMRNote, EffectMRLabels, EffectRefresh:
		return SinkForge
	case EffectThreadPost, EffectThreadSummary, EffectDigest:
		return SinkChat
	case EffectPage, EffectResolve:
		return SinkPager
	}
	return ""
}

// Status values of the gate's commit status.
const (
	StatusPending = "pending"
	StatusSuccess = "success"
	StatusFailed  = "failed"
)

// Effect is one delivery in the outbox. The store assigns ID when it
// enqueues the effect; the dispatcher passes ID on as the idempotency key,
// so a retried delivery never acts twice.
type Effect struct {
	ID         string     `json:"id"`
	Kind       EffectKind `json:"kind"`
	Escalation string     `json:"escalation,omitempty"`
	Project    string     `json:"project,omitempty"`
	MRIID      int64      `json:"mr_iid,omitempty"`
	SHA        string     `json:"sha,omitempty"`
	Status     string     `json:"status,omitempty"` // EffectStatus: pending, success, failed
	Text       string     `json:"text,omitempty"`   // note, post or status description
	Labels     []string   `json:"labels,omitempty"`
	Mention    []string   `json:"mention,omitempty"`  // thread posts: person ids to mention; mr_note: GitLab usernames (only the author of an answered comment)
	Security   bool       `json:"security,omitempty"` // thread_post: also post to the security channel
	// Notice is what a thread post or MR note says, as data; each surface
	// renders it (RenderText for GitLab and the console). Text is used
	// when there is none (a status description, a summary card).
	Notice *Notice `json:"notice,omitempty"`
	// Card is the summary a thread_summary effect sets, as data.
	Card *CardData `json:"card,omitempty"`
	// Digest and Report are what a digest effect posts, as data: the
	// daily digest or the weekly report.
	Digest *DigestData   `json:"digest,omitempty"`
	Report *WeeklyReport `json:"report,omitempty"`
	// Sink is the sink this record is for (a name from Engine.SetSinks;
	// by default its class). One effect decided for several chat surfaces
	// is one record per surface.
	Sink string `json:"sink,omitempty"`
	// Thread is where the escalation's thread is on Sink, filled in by the
	// dispatcher at delivery (never stored with the effect).
	Thread MessageRef `json:"-"`
}

// OutboxRecord is an effect waiting for delivery, with its delivery
// history. Effect.ID is its id in the outbox and the idempotency key the
// dispatcher passes on.
type OutboxRecord struct {
	Effect      Effect    `json:"effect"`
	Attempts    int       `json:"attempts"`
	NextAttempt time.Time `json:"next_attempt"`
	LastError   string    `json:"last_error,omitempty"`
	Created     time.Time `json:"created"`
	// Parked: it failed for a reason retrying will not fix soon; it left
	// its queue (which goes on) and is retried on its own.
	Parked bool `json:"parked,omitempty"`
	// Seq orders effects as they were enqueued (the store assigns it);
	// a queue is delivered in Seq order.
	Seq uint64 `json:"seq,omitempty"`
	// Superseded is set on a record read for delivery when a newer effect
	// of the same kind makes it pointless (a status of the same head, a
	// summary): it is dropped, not sent.
	Superseded bool `json:"-"`
	// Behind is set on a record read for delivery behind the head of its
	// queue (Outbox.DueQueues): the id of the effect just before it, which
	// must be delivered first; "" for a queue head or a parked effect.
	Behind string `json:"-"`
}

// InboxItem is a verified input recorded before it was acknowledged: a
// webhook body waiting to be processed (fetching the MR, deciding). It
// stays in the store's inbox until it is done, so nothing acknowledged is
// lost to a crash or an outage.
type InboxItem struct {
	ID          uint64    `json:"id"`
	Key         string    `json:"key"`  // delivery id (webhook UUID); "" for none
	Kind        string    `json:"kind"` // what Body is, e.g. "Merge Request Hook"
	Body        []byte    `json:"body"`
	At          time.Time `json:"at"`
	Attempts    int       `json:"attempts"`
	NextAttempt time.Time `json:"next_attempt"`
	LastError   string    `json:"last_error,omitempty"`
}
