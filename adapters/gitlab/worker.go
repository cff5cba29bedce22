package gitlab

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"runtime/debug"
	"strings"
	"sync"
	"time"

	"github.com/threatgate/threatgate/bot"
	"github.com/threatgate/threatgate/policies"
)

// WorkerInbox is what the worker needs of the store's inbox.
type WorkerInbox interface {
	InboxDue(ctx context.Context, now time.Time, limit int) ([]bot.InboxItem, error)
	// InboxDone removes processed items (in one transaction; those
	// already gone are skipped).
	InboxDone(ctx context.Context, ids ...uint64) error
	InboxFailed(ctx context.Context, id uint64, next time.Time, errText string) error
}

// Fetcher reads a merge request as GitLab shows it now; *Client is one.
type Fetcher interface {
	FetchMR(ctx context.Context, project string, iid int64) (*bot.MRInput, error)
}

// Handler decides on inputs; *bot.Engine is one.
type Handler interface {
	Handle(ctx context.Context, in bot.Input) (bot.Reply, error)
	// Answer queues the answer to an MR comment (an MR note, once per key).
	Answer(ctx context.Context, a bot.Answer) error
}

// Escalations finds escalations (read only: everything the worker writes
// goes through the engine); store.DB is one.
type Escalations interface {
	FindByMR(ctx context.Context, project string, iid int64) (*bot.Escalation, error)
	List(ctx context.Context) ([]*bot.Escalation, error)
}

// Worker turns recorded webhooks into engine inputs, fetching each MR's
// current state first, and reconciles what webhooks missed. Run it from
// main; it stops when its context ends.
type Worker struct {
	Inbox WorkerInbox
	Fetch Fetcher // nil: dry run, the MR is read from the webhook alone
	// Notes reads comment notes, MR versions and user ids through the
	// API. nil: Fetch, when it is a NoteReader (*Client is one). Without
	// a NoteReader and a Fetch, MR-comment commands other than help are
	// refused.
	Notes  NoteReader
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
	// DeadLetters keeps what panicked: an inbox item whose processing
	// panicked is recorded there and removed from the inbox, so it does
	// not replay on every start; an escalation whose reconciliation
	// panicked is recorded once per process. nil: a panicking inbox item
	// is kept and retried with backoff (never lost), and a panicking
	// reconciliation is only logged.
	DeadLetters bot.DeadLetters

	// Marks keeps reconcile's watermarks (what GitLab has shown of each
	// project up to when) across restarts. nil: Store, when it is one
	// (store.DB is), else they are kept in memory only.
	Marks Watermarks
	// FullEvery is how often reconcile lists every open MR of a project,
	// not only those updated since its watermark; default
	// DefaultFullEvery. See Reconcile.
	FullEvery time.Duration
	// Projects are reconciled even when no webhook of theirs ever
	// arrived and they have no escalation (gitlab.projects). Reconcile
	// also lists the projects of watched escalations and those webhooks
	// named (Classifications.ProjectsSeen).
	Projects []string
	// Memory remembers the open MRs classified into no tier and the
	// projects webhooks named. nil: Store, when it is one (store.DB is),
	// else they are kept in memory only.
	Memory Classifications
	// ClassifyPerPass bounds how many MRs without an escalation one
	// reconcile pass reads; default DefaultClassifyPerPass.
	ClassifyPerPass int

	wake chan struct{}

	unesc unescalatedState

	asideMu sync.Mutex
	aside   map[string]bool // escalations whose reconciliation was set aside by this process

	recMu    sync.Mutex
	lastFull map[string]time.Time   // project → when this process last listed all its open MRs
	pipeSeen map[int64]time.Time    // pipeline id → its updated_at, once the MRs at its SHA were fetched
	memMarks map[string]time.Time   // watermarks, when there is no Marks
	retries  map[string]*retryState // "project!iid" → back-off of an MR without an escalation whose read failed or was partial
	missing  map[string]int         // project → consecutive passes GitLab answered 404 for its lists
	passes   int                    // reconcile passes this process began
}

// maxInboxBackoff bounds the wait between attempts at one item.
const maxInboxBackoff = 10 * time.Minute

func short(sha string) string { return bot.ShortSHA(sha) }

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

// Run processes the inbox until ctx ends (then it returns nil), when woken
// and every poll.
func (w *Worker) Run(ctx context.Context, poll time.Duration) error {
	if w.wake == nil {
		w.wake = make(chan struct{}, 1)
	}
	t := time.NewTicker(poll)
	defer t.Stop()
	for {
		if _, err := w.ProcessDue(ctx); err != nil && ctx.Err() == nil {
			w.log().Error("inbox pass failed", bot.LogErr, err)
		}
		select {
		case <-ctx.Done():
			return nil
		case <-w.wake:
		case <-t.C:
		}
	}
}

// backoff is the wait before the next attempt at an item that failed
// attempts times: 1s doubling, at most maxInboxBackoff.
func backoff(attempts int) time.Duration {
	return bot.Backoff(attempts+1, time.Second, maxInboxBackoff)
}

// panicked is a panic recovered while handling one item, as an error.
type panicked struct {
	value any
	stack []byte
}

func (p *panicked) Error() string { return "panic: " + p.reason() }

// reason is the panic value on one line, bounded: what a dead letter
// records and the log shows.
func (p *panicked) reason() string { return bot.PanicReason(p.value) }

// recovered runs f and returns its error, or a *panicked when f panics.
func recovered(f func() error) (err error) {
	defer func() {
		if v := recover(); v != nil {
			err = &panicked{value: v, stack: debug.Stack()}
		}
	}()
	return f()
}

// permanent reports whether err will not go away by retrying.
func permanent(err error) bool {
	var p interface{ Permanent() bool }
	return errors.As(err, &p) && p.Permanent()
}

// ProcessDue processes the inbox items that are due and returns how many
// it finished. A panic while processing one item does not stop the pass:
// the item is set aside (DeadLetters) and removed from the inbox, or, when
// it cannot be set aside, kept and retried with backoff.
//
// An MR webhook's item is removed by the commit of its decision (the
// same transaction: Input.Inbox). The items whose processing committed
// nothing (nothing changed, a redelivery, a comment, one set aside) are
// removed together, at most inboxAckBatch at a time and at the end of the
// pass: one transaction for them all. Until then they are still in the
// inbox; a crash before it makes them run again, which their delivery
// keys and the MR read afresh make a no-op. Nothing is removed before its
// processing is durable.
func (w *Worker) ProcessDue(ctx context.Context) (done int, err error) {
	items, err := w.Inbox.InboxDue(ctx, w.Clock.Now(), 500)
	if err != nil {
		return 0, err
	}
	var finished []uint64
	flush := func() error {
		// What was classified into no tier, before the items go: a crash
		// in between runs them again, which costs a read, nothing more.
		w.keepClassified(ctx)
		if len(finished) == 0 {
			return nil
		}
		// Not ctx: a pass cut short still records what it finished.
		if err := w.Inbox.InboxDone(context.WithoutCancel(ctx), finished...); err != nil {
			return err
		}
		done += len(finished)
		finished = finished[:0]
		return nil
	}
	defer func() {
		if ferr := flush(); ferr != nil && err == nil {
			err = ferr
		}
	}()
	for _, it := range items {
		if ctx.Err() != nil {
			return done, ctx.Err()
		}
		err := recovered(func() error { return w.process(ctx, it) })
		if w.OnProcessed != nil {
			w.OnProcessed(it.Kind, w.Clock.Now().Sub(it.At), err)
		}
		log := w.log().With(bot.LogInboxID, it.ID, bot.LogKind, it.Kind, bot.LogAttempt, it.Attempts+1)
		var drop dropped
		var pan *panicked
		switch {
		case err == nil:
		case errors.As(err, &pan):
			if !w.setAsideItem(ctx, log, it, pan) {
				wait := backoff(it.Attempts)
				if err := w.Inbox.InboxFailed(ctx, it.ID, w.Clock.Now().Add(wait), pan.Error()); err != nil && !errors.Is(err, bot.ErrNotFound) {
					return done, err
				}
				continue
			}
		case errors.As(err, &drop):
			log.Error("webhook dropped: it cannot succeed", bot.LogErr, err)
		default:
			// GitLab's 401/403/404 are permanent for one call but not for
			// an acknowledged webhook: a token gets renewed, a permission
			// fixed. Keep the item and retry slowly; never lose it.
			wait := backoff(it.Attempts)
			if permanent(err) {
				log.Error("webhook processing failed; fix the cause, it is retried", bot.LogRetryIn, wait, bot.LogErr, err)
			}
			var ra interface{ RetryAfter() time.Duration }
			if errors.As(err, &ra) && ra.RetryAfter() > wait {
				wait = ra.RetryAfter()
			}
			log.Warn("webhook processing failed, will retry", bot.LogRetryIn, wait, bot.LogErr, err)
			// Gone (bot.ErrNotFound): the decision was committed, and
			// the item with it, before something after it failed.
			if err := w.Inbox.InboxFailed(ctx, it.ID, w.Clock.Now().Add(wait), err.Error()); err != nil && !errors.Is(err, bot.ErrNotFound) {
				return done, err
			}
			continue
		}
		finished = append(finished, it.ID)
		if len(finished) >= inboxAckBatch {
			if err := flush(); err != nil {
				return done, err
			}
		}
	}
	return done, nil
}

// inboxAckBatch bounds how many finished items wait for their removal:
// what a crash would make run again.
const inboxAckBatch = 64

// setAsideItem logs the panic of inbox item it (its id, kind and the
// panic; never its body) and records it as a dead letter with the body as
// payload. It reports whether the dead letter is stored: only then may the
// item leave the inbox.
func (w *Worker) setAsideItem(ctx context.Context, log *slog.Logger, it bot.InboxItem, pan *panicked) bool {
	log.Error("webhook processing panicked; setting the item aside", bot.LogPanic, pan.reason(), bot.LogStack, string(pan.stack))
	if w.DeadLetters == nil {
		log.Error("no dead-letter store: the item stays in the inbox and is retried", bot.LogRetryIn, backoff(it.Attempts))
		return false
	}
	// Kept for good: no secret a redacting signal would find (in a title,
	// a description, a comment) is stored with it.
	payload := maskedBody(w.policy(), it.Body)
	dl := bot.DeadLetter{Kind: "inbox", Ref: fmt.Sprint(it.ID), Reason: pan.reason(), Panic: true, At: w.Clock.Now(), Payload: payload}
	_ = recovered(func() error { dl.Escalation = w.escalationOf(ctx, it); return nil })
	if err := w.DeadLetters.SetAside(ctx, dl); err != nil {
		log.Error("cannot set the item aside; it stays in the inbox and is retried", bot.LogRetryIn, backoff(it.Attempts), bot.LogErr, err)
		return false
	}
	return true
}

// escalationOf names the escalation of the MR that inbox item it is
// about, for its dead letter: "" when the body names no MR or the MR has
// no escalation (yet). It never fails.
func (w *Worker) escalationOf(ctx context.Context, it bot.InboxItem) string {
	if w.Store == nil {
		return ""
	}
	var h struct {
		Project struct {
			PathWithNamespace string `json:"path_with_namespace"`
		} `json:"project"`
		ObjectAttributes struct {
			IID int64 `json:"iid"`
		} `json:"object_attributes"`
		MergeRequest struct {
			IID int64 `json:"iid"`
		} `json:"merge_request"`
	}
	if json.Unmarshal(it.Body, &h) != nil {
		return ""
	}
	iid := h.ObjectAttributes.IID
	if it.Kind == EventNote {
		iid = h.MergeRequest.IID
	}
	if h.Project.PathWithNamespace == "" || iid <= 0 {
		return ""
	}
	e, err := w.Store.FindByMR(ctx, h.Project.PathWithNamespace, iid)
	if err != nil {
		return ""
	}
	return e.ID
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
		in, partial, err := w.mrInput(ctx, &h)
		if err != nil {
			return err
		}
		in.Key = it.Key
		in.Inbox = it.ID
		in.MR.AnswerCheck = it.Kind == EventStatusCheck
		rep, err := w.Engine.Handle(ctx, in)
		if err == nil && in.MR.Fetched {
			// GitLab showed the MR: reconcile lists its project from now
			// on, escalated or not.
			w.sawProject(h.Project.PathWithNamespace)
			if !partial {
				w.classified(h.Project.PathWithNamespace, h.ObjectAttributes.IID, in.MR, rep)
			}
		}
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
// partial: the API gave part of the MR's diff, or none (fetchMR).
func (w *Worker) mrInput(ctx context.Context, h *mrHook) (in bot.Input, partial bool, err error) {
	project, iid := h.Project.PathWithNamespace, h.ObjectAttributes.IID
	if w.Fetch != nil {
		mi, partial, err := w.fetchMR(ctx, project, iid)
		if err != nil {
			return bot.Input{}, false, fmt.Errorf("fetch %s!%d: %w", project, iid, err)
		}
		// The webhook only says "look": what counts is the MR now, so an
		// old or repeated delivery cannot move anything backwards.
		mi.Action = bot.MRSeen
		return bot.Input{Kind: bot.InputMR, Actor: bot.System, MR: mi}, partial, nil
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
	return bot.Input{Kind: bot.InputMR, Actor: bot.System, MR: &bot.MRInput{Action: action, MR: mr}}, false, nil
}

// comment runs a /threatgate command written in an MR comment and answers
// in the MR. The Note Hook is only a trigger: the note is read back from
// the API, and its author (by numeric user id), text and time are what
// count. Every refusal is answered in the MR (when Answer is on) and
// logged; one note runs once, whatever GitLab resends.
func (w *Worker) comment(ctx context.Context, it bot.InboxItem, h *noteHook) error {
	project, iid, noteID := h.Project.PathWithNamespace, h.MergeRequest.IID, h.ObjectAttributes.ID
	log := w.log().With("project", project, "mr_iid", iid, "note_id", noteID, "hook_username", h.User.Username)
	if noteID <= 0 {
		log.Warn("comment refused: the Note Hook names no note id")
		return w.answer(ctx, project, iid, "", fmt.Sprintf("gitlab-refused:%s:inbox-%d", project, it.ID),
			"threatgate ran nothing: the webhook of a comment here names no note id (object_attributes.id), so threatgate cannot read the comment back from GitLab to check who wrote it and when.")
	}
	reader := w.noteReader()
	if reader == nil || w.Fetch == nil {
		return w.commentWithoutAPI(ctx, log, project, iid, noteID, h)
	}
	// A refusal before the note is known mentions nobody: the hook's
	// username is only a claim. Its key differs from the answer's, so a
	// forged hook for a note id not yet used cannot take the real note's
	// answer.
	refusedKey := fmt.Sprintf("gitlab-refused:%s:%d", project, noteID)
	n, err := reader.GetNote(ctx, project, iid, noteID)
	switch {
	case errors.Is(err, ErrNotFound):
		log.Warn("comment refused: GitLab has no such note on the merge request")
		return w.answer(ctx, project, iid, "", refusedKey, fmt.Sprintf(
			"threatgate ran nothing for comment %d: GitLab has no such comment on this merge request, so nobody can be said to have written it.", noteID))
	case errors.Is(err, ErrMalformed):
		log.Warn("comment refused: GitLab's answer for the note cannot be read", bot.LogErr, err)
		return w.answer(ctx, project, iid, "", refusedKey, fmt.Sprintf(
			"threatgate ran nothing for comment %d: GitLab's API returned it in a form threatgate cannot read (%s), so threatgate cannot tell who wrote it or when.", noteID, err))
	case err != nil:
		return fmt.Errorf("read note %d of %s!%d: %w", noteID, project, iid, err)
	}
	if n.System {
		log.Info("comment ignored: a system note")
		return nil
	}
	if strings.Contains(n.Body, "<!-- threatgate:") {
		return nil // threatgate's own notes quote commands; never run them
	}
	log = log.With("username", n.AuthorUsername, "user_id", n.AuthorID)
	text := commandLine(n.Body)
	if text == "" {
		log.Warn("comment ignored: the note in GitLab holds no /threatgate command, unlike its Note Hook")
		return nil
	}
	if n.Body != h.ObjectAttributes.Note {
		log.Warn("the Note Hook's text differs from the note in GitLab; running the note's")
	}

	var answer string
	cmd, err := bot.ParseCommand(text)
	var actor bot.Identity
	if err == nil {
		actor, err = w.commenter(ctx, log, reader, n)
	}
	// Approve, reject, retier, withdraw, risk and defer decide about the
	// code at the head: they must be about the head their author saw.
	decision := err == nil && bot.HeadBound(cmd.Verb)
	var seen string
	if err == nil {
		err = commentTime(cmd, n.CreatedAt, it.At, w.Clock.Now())
	}
	if err == nil && cmd.Verb != bot.VerbHelp {
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
		if decision {
			// A decision counts only for the code its author saw: the
			// head of the MR's newest diff version from before the note.
			vs, verr := reader.MRVersions(ctx, project, iid)
			if verr != nil && !errors.Is(verr, ErrMalformed) {
				return fmt.Errorf("list versions of %s!%d: %w", project, iid, verr)
			}
			var ok bool
			seen, ok = seenHead(vs, n.CreatedAt)
			switch {
			case verr != nil || !ok:
				err = &bot.Problem{Field: bot.VerbField(cmd.Verb), Msg: fmt.Sprintf("GitLab shows no version of this merge request from before your comment (%s), so threatgate cannot tell which commits you reviewed; write the command again", n.CreatedAt.Format(time.RFC3339))}
			case seen != mi.MR.SHA:
				err = bot.MovedSince(cmd.Verb, seen, mi.MR.SHA)
			}
		}
	}
	if err == nil {
		// One note runs once, whatever GitLab resends.
		// Head goes with the command: should the MR move between the check
		// above and the decision, the engine refuses it too.
		in := bot.Input{Kind: bot.InputCommand, Actor: actor, Command: &cmd, Key: fmt.Sprintf("gitlab-note:%s:%d", project, noteID), Head: seen}
		esc, ferr := w.Store.FindByMR(ctx, project, iid)
		switch {
		case errors.Is(ferr, bot.ErrNotFound):
		case ferr != nil:
			return ferr
		default:
			in.Escalation = esc.ID
		}
		if serr := bot.ScopeOfComment(&cmd, project, iid, in.Escalation); serr != nil {
			// A comment speaks for its own MR: escalating another one
			// would gate, label and annotate an MR (perhaps in a project
			// the commenter cannot see) on their word.
			err = serr
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
		log.Info("comment command refused", "reason", p.Error())
		answer = "threatgate could not do that: " + p.Error()
	} else if err != nil {
		return err
	}
	return w.answer(ctx, project, iid, n.AuthorUsername, fmt.Sprintf("gitlab-answer:%s:%d", project, noteID), answer)
}

// commentWithoutAPI answers a comment when threatgate has no GitLab API
// (dry run, demo): nothing can be checked, so only help runs.
func (w *Worker) commentWithoutAPI(ctx context.Context, log *slog.Logger, project string, iid, noteID int64, h *noteHook) error {
	key := fmt.Sprintf("gitlab-answer:%s:%d", project, noteID)
	cmd, err := bot.ParseCommand(commandLine(h.ObjectAttributes.Note))
	if err == nil && cmd.Verb == bot.VerbHelp {
		// Help changes nothing and speaks for nobody: no identity needed.
		rep, err := w.Engine.Handle(ctx, bot.Input{Kind: bot.InputCommand, Actor: bot.Identity{Surface: "gitlab"}, Command: &cmd, Key: fmt.Sprintf("gitlab-note:%s:%d", project, noteID)})
		if rep.Duplicate {
			return nil
		}
		if p, ok := bot.IsProblem(err); ok {
			rep.Text = "threatgate could not do that: " + p.Error()
		} else if err != nil {
			return err
		}
		return w.answer(ctx, project, iid, "", key, rep.Text)
	}
	log.Warn("comment refused: MR-comment commands need the GitLab API (gitlab.url is not set)")
	return w.answer(ctx, project, iid, "", key, "threatgate could not do that: MR-comment commands need the GitLab API to check who wrote the comment, when, and which commits they saw; this threatgate runs without it, so only /threatgate help works in comments.")
}

// commenter establishes who wrote note n: the policy person whose gitlab
// username is the author's username as the API reports it, and only when
// that person's GitLab user id (the pinned gitlab_id, else what the
// username resolves to now) is the author's id. An author in no policy
// person is returned without a person id; the engine refuses what needs
// one. A renamed or recycled username is a *bot.Problem.
func (w *Worker) commenter(ctx context.Context, log *slog.Logger, reader NoteReader, n *Note) (bot.Identity, error) {
	id := bot.Identity{Surface: "gitlab", ExternalID: n.AuthorUsername}
	if n.AuthorID <= 0 || !ValidUsername(n.AuthorUsername) {
		log.Warn("comment refused: GitLab gives no author for the note")
		return id, &bot.Problem{Msg: "GitLab's API gives no author id or username for this comment, so threatgate cannot tell who wrote it; nothing was run"}
	}
	pol := w.policy()
	if pol == nil {
		log.Error("comment refused: the worker's engine gives no policy to map GitLab users to people")
		return id, &bot.Problem{Msg: "threatgate cannot map GitLab users to the policy's people here; nothing was run"}
	}
	p := personByGitLab(pol, n.AuthorUsername)
	if p == nil {
		return id, nil
	}
	want := p.GitLabID
	if want == 0 {
		got, err := reader.UserID(ctx, p.GitLab)
		switch {
		case errors.Is(err, ErrNotFound):
		case err != nil:
			return id, fmt.Errorf("resolve GitLab user %s: %w", p.GitLab, err)
		default:
			want = got
		}
	}
	if want != n.AuthorID {
		log.Warn("comment refused: the author's user id is not the one of the policy person with that username",
			"person", p.ID, "author_id", n.AuthorID, "person_gitlab_id", want, "pinned", p.GitLabID != 0)
		whose := fmt.Sprintf("GitLab user id %d", want)
		if want == 0 {
			whose = "a GitLab user threatgate cannot find"
		}
		return id, &bot.Problem{Msg: fmt.Sprintf(
			"this comment was written by GitLab user id %d as %s, but the policy's person %s with that username is %s; a renamed or reused username carries nobody's rights, so nothing was run (if the account really changed, the security team updates gitlab_id in the policy)",
			n.AuthorID, n.AuthorUsername, p.ID, whose)}
	}
	id.Person = p.ID
	return id, nil
}

// personByGitLab finds the policy person whose gitlab username is name,
// without regard to case (GitLab's usernames are unique that way).
func personByGitLab(pol *policies.Policy, name string) *policies.Person {
	if p := pol.Person("gitlab", name); p != nil {
		return p
	}
	for _, p := range pol.People {
		if p != nil && p.GitLab != "" && strings.EqualFold(p.GitLab, name) {
			return p
		}
	}
	return nil
}

// commentTime refuses a comment whose time cannot be trusted: none, more
// than bot.MaxClockSkew ahead of now, or, for a head-bound verb, written more
// than bot.MaxCommandAge before it arrived (a resent or long-delayed old
// comment must not approve what was pushed since).
func commentTime(cmd bot.Command, created, arrived, now time.Time) error {
	if created.IsZero() {
		return &bot.Problem{Field: bot.VerbField(cmd.Verb), Msg: "GitLab's API gives no created_at for this comment, so threatgate cannot tell when it was written; nothing was run"}
	}
	return bot.CommandFresh(cmd.Verb, created, arrived, now)
}

// seenHead returns the MR head a comment written at created saw: the head
// of the newest diff version created at or before it.
func seenHead(vs []MRVersion, created time.Time) (string, bool) {
	hv := make([]bot.HeadVersion, 0, len(vs))
	for _, v := range vs {
		hv = append(hv, bot.HeadVersion{ID: v.ID, HeadSHA: v.HeadSHA, CreatedAt: v.CreatedAt})
	}
	return bot.SeenHead(hv, created)
}

// answer queues text as a note on the MR, after a mention of mention (a
// GitLab username; "" for none), once per key. It goes out through the
// outbox like every other call to GitLab: retried when GitLab is down,
// posted once. Nothing is queued when Answer is off (dry run).
func (w *Worker) answer(ctx context.Context, project string, iid int64, mention, key, text string) error {
	if text == "" || !w.Answer {
		return nil
	}
	return w.Engine.Answer(ctx, bot.Answer{Project: project, MRIID: iid, Mention: mention, Key: key, Text: text})
}

// noteReader returns what reads comment notes through the API: Notes, or
// Fetch when it is one (*Client is), else nil.
func (w *Worker) noteReader() NoteReader {
	if w.Notes != nil {
		return w.Notes
	}
	if r, ok := w.Fetch.(NoteReader); ok {
		return r
	}
	return nil
}

// policy returns the policy the engine decides with (*bot.Engine has
// Policy()), nil when the Handler does not say.
func (w *Worker) policy() *policies.Policy {
	if p, ok := w.Engine.(interface{ Policy() *policies.Policy }); ok {
		return p.Policy()
	}
	return nil
}

// maskedBody returns a webhook body with every string in it masked as the
// policy masks secrets (MaskSecrets works on text, and JSON escapes the
// quotes a secret is written in, so the body is decoded first). A body
// that is not JSON is not kept at all; without a policy, neither.
func maskedBody(pol *policies.Policy, body []byte) []byte {
	if pol == nil {
		return nil
	}
	var v any
	if err := json.Unmarshal(body, &v); err != nil {
		return nil
	}
	var mask func(any) any
	mask = func(x any) any {
		switch t := x.(type) {
		case string:
			return pol.MaskSecrets(t)
		case []any:
			for i := range t {
				t[i] = mask(t[i])
			}
		case map[string]any:
			for k := range t {
				t[k] = mask(t[k])
			}
		}
		return x
	}
	out, err := json.Marshal(mask(v))
	if err != nil {
		return nil
	}
	return out
}
