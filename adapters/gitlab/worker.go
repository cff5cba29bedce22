package gitlab

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/threatgate/threatgate/bot"
	"github.com/threatgate/threatgate/policies"
)

// WorkerInbox is what the worker needs of the store's inbox.
type WorkerInbox interface {
	InboxDue(ctx context.Context, now time.Time, limit int) ([]bot.InboxItem, error)
	InboxDone(ctx context.Context, id uint64) error
	InboxFailed(ctx context.Context, id uint64, next time.Time, errText string) error
}

// Fetcher reads a merge request as GitLab shows it now; *Client is one.
type Fetcher interface {
	FetchMR(ctx context.Context, project string, iid int64) (*bot.MRInput, error)
}

// Handler decides on inputs; *bot.Engine is one.
type Handler interface {
	Handle(ctx context.Context, in bot.Input) (bot.Reply, error)
}

// Escalations finds escalations and queues effects; store.DB is one.
type Escalations interface {
	FindByMR(ctx context.Context, project string, iid int64) (*bot.Escalation, error)
	List(ctx context.Context) ([]*bot.Escalation, error)
	Commit(ctx context.Context, c *bot.Commit) (*bot.Escalation, error)
}

// Worker turns recorded webhooks into engine inputs, fetching each MR's
// current state first, and reconciles what webhooks missed. Run it from
// main; it stops when its context ends.
type Worker struct {
	Inbox  WorkerInbox
	Fetch  Fetcher // nil: dry run, the MR is read from the webhook alone
	Engine Handler
	Store  Escalations
	// Answer, when true, answers MR comments with an MR note (queued in the
	// outbox); off in a dry run, where nothing is posted to GitLab.
	Answer bool
	Clock  bot.Clock
	Log    *slog.Logger
	// OnProcessed, when set, is told of every processed item: its kind,
	// how long after it arrived it was done, and the error if it failed.
	OnProcessed func(kind string, latency time.Duration, err error)

	wake chan struct{}
}

// maxInboxBackoff bounds the wait between attempts at one item.
const maxInboxBackoff = 10 * time.Minute

// maxCommentAge is how old an approving or rejecting MR comment may be
// when it arrives.
const maxCommentAge = 15 * time.Minute

func short(sha string) string {
	if len(sha) > 8 {
		return sha[:8]
	}
	return sha
}

func (w *Worker) log() *slog.Logger {
	if w.Log == nil {
		return slog.New(slog.DiscardHandler)
	}
	return w.Log
}

// Wake asks the worker to look at the inbox now.
func (w *Worker) Wake() {
	if w.wake == nil {
		return
	}
	select {
	case w.wake <- struct{}{}:
	default:
	}
}

// Run processes the inbox until ctx ends, when woken and every poll.
func (w *Worker) Run(ctx context.Context, poll time.Duration) {
	if w.wake == nil {
		w.wake = make(chan struct{}, 1)
	}
	t := time.NewTicker(poll)
	defer t.Stop()
	for {
		if _, err := w.ProcessDue(ctx); err != nil && ctx.Err() == nil {
			w.log().Error("inbox pass failed", "err", err)
		}
		select {
		case <-ctx.Done():
			return
		case <-w.wake:
		case <-t.C:
		}
	}
}

// permanent reports whether err will not go away by retrying.
func permanent(err error) bool {
	var p interface{ Permanent() bool }
	return errors.As(err, &p) && p.Permanent()
}

// ProcessDue processes the inbox items that are due and returns how many
// it finished.
func (w *Worker) ProcessDue(ctx context.Context) (int, error) {
	items, err := w.Inbox.InboxDue(ctx, w.Clock.Now(), 500)
	if err != nil {
		return 0, err
	}
	done := 0
	for _, it := range items {
		if ctx.Err() != nil {
			return done, ctx.Err()
		}
		err := w.process(ctx, it)
		if w.OnProcessed != nil {
			w.OnProcessed(it.Kind, w.Clock.Now().Sub(it.At), err)
		}
		log := w.log().With("inbox_id", it.ID, "kind", it.Kind, "attempt", it.Attempts+1)
		var drop dropped
		switch {
		case err == nil:
		case errors.As(err, &drop):
			log.Error("webhook dropped: it cannot succeed", "err", err)
		default:
			// GitLab's 401/403/404 are permanent for one call but not for
			// an acknowledged webhook: a token gets renewed, a permission
			// fixed. Keep the item and retry slowly; never lose it.
			wait := time.Second << min(it.Attempts, 20)
			if wait > maxInboxBackoff || wait <= 0 {
				wait = maxInboxBackoff
			}
			if permanent(err) {
				log.Error("webhook processing failed; fix the cause, it is retried", "retry_in", wait, "err", err)
			}
			var ra interface{ RetryAfter() time.Duration }
			if errors.As(err, &ra) && ra.RetryAfter() > wait {
				wait = ra.RetryAfter()
			}
			log.Warn("webhook processing failed, will retry", "retry_in", wait, "err", err)
			if err := w.Inbox.InboxFailed(ctx, it.ID, w.Clock.Now().Add(wait), err.Error()); err != nil {
				return done, err
			}
			continue
		}
		if err := w.Inbox.InboxDone(ctx, it.ID); err != nil {
			return done, err
		}
		done++
	}
	return done, nil
}

// dropped is an input that can never be processed.
type dropped struct{ msg string }

func (d dropped) Error() string   { return d.msg }
func (d dropped) Permanent() bool { return true }

func (w *Worker) process(ctx context.Context, it bot.InboxItem) error {
	switch it.Kind {
	case EventMergeRequest, EventStatusCheck:
		var h mrHook
		if err := json.Unmarshal(it.Body, &h); err != nil {
			return dropped{"malformed " + it.Kind + ": " + err.Error()}
		}
		in, err := w.mrInput(ctx, &h)
		if err != nil {
			return err
		}
		in.Key = it.Key
		in.MR.AnswerCheck = it.Kind == EventStatusCheck
		_, err = w.Engine.Handle(ctx, in)
		return settle(err)
	case EventNote:
		var h noteHook
		if err := json.Unmarshal(it.Body, &h); err != nil {
			return dropped{"malformed Note Hook: " + err.Error()}
		}
		return w.comment(ctx, it, &h)
	}
	return dropped{fmt.Sprintf("unknown inbox kind %q", it.Kind)}
}

// settle turns a user-facing refusal into success: there is nobody to tell
// and retrying would not change the answer.
func settle(err error) error {
	if _, ok := bot.IsProblem(err); ok {
		return nil
	}
	return err
}

// mrInput builds the engine input for a merge request hook: the MR as the
// API shows it now, or, in a dry run, as the webhook describes it.
func (w *Worker) mrInput(ctx context.Context, h *mrHook) (bot.Input, error) {
	project, iid := h.Project.PathWithNamespace, h.ObjectAttributes.IID
	if w.Fetch != nil {
		mi, err := w.Fetch.FetchMR(ctx, project, iid)
		if err != nil {
			return bot.Input{}, fmt.Errorf("fetch %s!%d: %w", project, iid, err)
		}
		// The webhook only says "look": what counts is the MR now, so an
		// old or repeated delivery cannot move anything backwards.
		mi.Action = bot.MRSeen
		return bot.Input{Kind: bot.InputMR, Actor: bot.System, MR: mi}, nil
	}
	a := h.ObjectAttributes
	mr := &policies.MergeRequest{
		IID: iid, PathWithNamespace: project, Title: a.Title, Description: a.Description, State: a.State,
		SourceBranch: a.SourceBranch, TargetBranch: a.TargetBranch, SHA: a.LastCommit.ID, WebURL: a.URL,
		UpdatedAt: parseTime(a.UpdatedAt), Labels: policies.Labels{}, Changes: []policies.Change{},
	}
	for _, l := range h.Labels {
		mr.Labels = append(mr.Labels, l.Title)
	}
	action := map[string]bot.MRAction{"open": bot.MROpen, "reopen": bot.MRReopen, "update": bot.MRUpdate, "close": bot.MRClose, "merge": bot.MRMerge}[a.Action]
	if action == "" {
		action = bot.MRSeen
	}
	return bot.Input{Kind: bot.InputMR, Actor: bot.System, MR: &bot.MRInput{Action: action, MR: mr}}, nil
}

// comment runs a /threatgate command written in an MR comment, as the
// comment's author, and answers in the MR.
func (w *Worker) comment(ctx context.Context, it bot.InboxItem, h *noteHook) error {
	project, iid := h.Project.PathWithNamespace, h.MergeRequest.IID
	text := commandLine(h.ObjectAttributes.Note)
	var answer string
	cmd, err := bot.ParseCommand(text)
	decision := err == nil && (cmd.Verb == bot.VerbApprove || cmd.Verb == bot.VerbReject)
	if err == nil && decision {
		// A decision counts only for the code its author saw, and only when
		// it is fresh: a resent or long-delayed old comment must not
		// approve what was pushed since.
		if created := parseTime(h.ObjectAttributes.CreatedAt); !created.IsZero() && it.At.Sub(created) > maxCommentAge {
			err = &bot.Problem{Field: bot.VerbField(cmd.Verb), Msg: fmt.Sprintf("this comment was written at %s, more than %s before it reached threatgate; write the command again", created.Format(time.RFC3339), maxCommentAge)}
		}
	}
	if err == nil && w.Fetch != nil && cmd.Verb != bot.VerbHelp {
		// Bring the escalation up to date with the MR first: a decision
		// must be about the head GitLab shows now, even if the webhook of
		// the last push was lost.
		mi, ferr := w.Fetch.FetchMR(ctx, project, iid)
		if ferr != nil {
			return fmt.Errorf("fetch %s!%d: %w", project, iid, ferr)
		}
		mi.Action = bot.MRSeen
		if _, herr := w.Engine.Handle(ctx, bot.Input{Kind: bot.InputMR, Actor: bot.System, MR: mi}); settle(herr) != nil {
			return herr
		}
		if seen := h.MergeRequest.LastCommit.ID; decision && seen != "" && mi.MR.SHA != "" && seen != mi.MR.SHA {
			err = &bot.Problem{Field: bot.VerbField(cmd.Verb), Msg: fmt.Sprintf("the merge request moved from %s to %s since your comment; review the new commits and write the command again", short(seen), short(mi.MR.SHA))}
		}
	}
	if err == nil {
		key := it.Key
		if id := h.ObjectAttributes.ID; id > 0 {
			// One note runs once, whatever GitLab resends.
			key = fmt.Sprintf("gitlab-note:%s:%d", project, id)
		}
		in := bot.Input{Kind: bot.InputCommand, Actor: bot.Identity{Surface: "gitlab", ExternalID: h.User.Username}, Command: &cmd, Key: key}
		esc, ferr := w.Store.FindByMR(ctx, project, iid)
		switch {
		case errors.Is(ferr, bot.ErrNotFound):
		case ferr != nil:
			return ferr
		default:
			in.Escalation = esc.ID
		}
		if cmd.Escalation != "" && cmd.Verb != bot.VerbEscalate && cmd.Escalation != in.Escalation {
			// A comment speaks for its own MR: no reading or deciding
			// another project's escalation from here.
			err = &bot.Problem{Field: bot.VerbField(cmd.Verb), Msg: fmt.Sprintf("%s is not this merge request's escalation; use the command on its own MR or in its chat thread", cmd.Escalation)}
		} else {
			if cmd.Verb == bot.VerbEscalate {
				in.Escalation = ""
			}
			var rep bot.Reply
			rep, err = w.Engine.Handle(ctx, in)
			answer = rep.Text
			if rep.Duplicate {
				return nil // this note ran before: nothing to add
			}
		}
	}
	if p, ok := bot.IsProblem(err); ok {
		answer = "threatgate could not do that: " + p.Error()
	} else if err != nil {
		return err
	}
	if answer == "" || !w.Answer {
		return nil
	}
	// The answer goes out through the outbox like every other call to
	// GitLab: retried when GitLab is down, posted once (the key makes a
	// second processing of this comment enqueue nothing).
	ef := bot.Effect{Kind: bot.EffectMRNote, Project: project, MRIID: iid, Text: "@" + h.User.Username + " " + answer}
	key := fmt.Sprintf("gitlab-answer:%s:%d", project, h.ObjectAttributes.ID)
	if _, err := w.Store.Commit(ctx, &bot.Commit{Effects: []bot.Effect{ef}, Key: key, At: w.Clock.Now()}); err != nil && !errors.Is(err, bot.ErrDuplicate) {
		return fmt.Errorf("queue the answer to comment %d: %w", h.ObjectAttributes.ID, err)
	}
	return nil
}

// Reconcile fetches every escalation whose MR is not merged or withdrawn
// and feeds what GitLab shows now through the engine, exactly as a
// webhook would: missed pushes, label changes, closes and merges are
// caught up, and a foreign status on the head is put right. It returns how
// many MRs it looked at; errors for single MRs are logged and skipped.
func (w *Worker) Reconcile(ctx context.Context) (int, error) {
	if w.Fetch == nil {
		return 0, errors.New("reconcile needs the GitLab API (gitlab.url is not set)")
	}
	all, err := w.Store.List(ctx)
	if err != nil {
		return 0, err
	}
	n := 0
	for _, e := range all {
		// Merged is final, and so is a withdrawal by a person; an MR that
		// was closed may have been reopened without us hearing of it.
		closed := e.State == bot.StateWithdrawn && e.MRState == "closed"
		if (e.State.Ended() && !closed) || e.Project == "" || e.MRIID == 0 {
			continue
		}
		if ctx.Err() != nil {
			return n, ctx.Err()
		}
		mi, err := w.Fetch.FetchMR(ctx, e.Project, e.MRIID)
		if err != nil {
			w.log().Warn("reconcile: cannot fetch MR", "escalation_id", e.ID, "err", err)
			continue
		}
		mi.Action = bot.MRSeen
		if _, err := w.Engine.Handle(ctx, bot.Input{Kind: bot.InputMR, Actor: bot.System, MR: mi}); settle(err) != nil {
			w.log().Warn("reconcile: engine refused", "escalation_id", e.ID, "err", err)
			continue
		}
		n++
	}
	return n, nil
}
