package gitlab

import (
	"context"
	"errors"
	"log/slog"
	"maps"
	"slices"
	"strings"
	"time"

	"github.com/threatgate/threatgate/bot"
)

// Lister lists what changed in GitLab; *Client is one.
type Lister interface {
	// ListMRs lists a project's MRs in state ("" for all) updated at or
	// after since (zero: all), every page.
	ListMRs(ctx context.Context, project, state string, since time.Time) ([]MRBrief, error)
	// ListPipelines lists a project's pipelines updated after since.
	ListPipelines(ctx context.Context, project string, since time.Time) ([]PipelineBrief, error)
	// GitLabNow is the time on GitLab's clock, the one of updated_at.
	GitLabNow() time.Time
	// WatchesStatuses reports whether fetching an MR reads the gate's
	// commit status, which pipelines tell of.
	WatchesStatuses() bool
}

// Watermarks keeps times across restarts; store.DB is one.
type Watermarks interface {
	Watermark(ctx context.Context, name string) (time.Time, bool, error)
	SetWatermark(ctx context.Context, name string, t time.Time) error
}

// ReconcileOverlap is how far before its watermark a pass starts listing
// a project: updated_at is stamped by GitLab's application servers and
// committed a little later, and the watermark is read from the Date
// header of another answer; the overlap absorbs skew between them (and
// between threatgate's clock and GitLab's when GitLab sends no Date).
// MRs listed again because of it cost nothing but their place in a page:
// one already current is not fetched.
const ReconcileOverlap = 15 * time.Minute

// DefaultFullEvery is how often, by default, a pass also lists every open
// MR of a project (one request per 100), whatever the watermark: the
// backstop for a change whose updated_at did not move past the watermark
// (clock skew beyond the overlap, a head rewritten without an update).
const DefaultFullEvery = time.Hour

// watermarkName is the name of a project's watermark in the store.
func watermarkName(project string) string { return "gitlab/reconcile/" + project }

// Reconcile compares every escalation whose MR is not merged
// (Escalation.Watched) with what GitLab shows now, and feeds each MR
// that changed through the engine exactly as a webhook would: missed
// pushes, label changes, closes, reopens and merges are caught up, and a
// foreign status on the head is put right. It also catches up the MRs
// without an escalation whose webhook was lost: an open MR that was
// never classified, whose head or tier facts (bot.TierFacts) changed
// since it was classified into no tier, or which was classified under
// another policy (policies.Policy.Digest), is read with its diff and fed
// through the engine too, which opens its escalation and gate when it
// now classifies into a tier. It returns how many escalations it found
// current or brought up to date; errors for single MRs are logged and
// skipped. A panic for one MR is logged, set aside (DeadLetters, once
// per MR and process) and skipped too; the next pass tries it again.
//
// The projects reconciled are those of watched escalations, those named
// in Projects (gitlab.projects), those MR webhooks named, and those seen
// before (Classifications.ProjectsSeen: of an MR a webhook named, of an
// MR a pass left without an escalation, of any escalation, merged ones
// included): a project whose first tiered MR's webhook was lost has no
// escalation yet, and one whose escalations all merged has none any
// longer. A project GitLab answers 404 for missingPasses passes in a
// row, with no watched escalation and not in Projects, is forgotten.
//
// When Fetch is a Lister (*Client is), a pass asks GitLab what changed
// rather than reading every MR. Per project:
//
//   - the MRs updated since the project's watermark (less
//     ReconcileOverlap), in any state;
//   - with the status gate and watched escalations, the pipelines
//     updated since then: a commit status, forged or re-run, lands in a
//     pipeline of its SHA;
//   - on the first pass of the process and every FullEvery, every open
//     MR: one whose head or state differs from the escalation's is
//     fetched, and one that left the list (merged, closed, gone) too.
//
// Only an MR whose head, state or updated_at differs from its
// escalation's, or whose head has a pipeline updated since, is fetched,
// and diffs and commits are fetched again only when its head (or base)
// moved. An open MR without an escalation is fetched only when
// bot.NeedsClassifying says so against what is remembered of it
// (Classifications), and at most ClassifyPerPass of them a pass, shared
// between projects (each its share of what is left first, then those
// that want more share the rest, from another project each pass); a
// project with more waits for the next pass, its watermark unmoved. One
// whose read failed is skipped for 1, 2, 4 ... 64 passes that list it
// (the watermark unmoved), one whose diff was read partial is not
// remembered and is read again (backOff). A
// project without a watermark (its first pass ever) is reconciled by
// fetching each of its escalations' MRs, as a pass without a Lister
// does, and by listing its open MRs. The watermark moves, to the time on
// GitLab's clock when the project's pass began (but not far past the
// newest change listed: nextMark), only when every MR it had to fetch
// was handled (an MR GitLab no longer has counts as handled).
func (w *Worker) Reconcile(ctx context.Context) (int, error) {
	if w.Fetch == nil {
		return 0, errors.New("reconcile needs the GitLab API (gitlab.url is not set)")
	}
	// Only the watched ones, through the store's index when it has one
	// (merged escalations, most of the record, are not read).
	list := w.Store.List
	if lw, ok := w.Store.(interface {
		ListWatched(context.Context) ([]*bot.Escalation, error)
	}); ok {
		list = lw.ListWatched
	}
	all, err := list(ctx)
	if err != nil {
		return 0, err
	}
	// Merged is final. A closed MR may have been reopened without us
	// hearing of it, and a withdrawal by a person holds only until the
	// head moves or the policy tiers it: both are read again.
	byProject := map[string][]*bot.Escalation{}
	watched := 0
	for _, e := range all {
		if e.Watched() {
			byProject[e.Project] = append(byProject[e.Project], e)
			watched++
		}
	}
	if s, ok := w.Fetch.(interface{ SizeCache(int) }); ok {
		s.SizeCache(watched + watched/4)
	}
	lister, _ := w.Fetch.(Lister)
	projects := sortedKeys(byProject)
	if lister != nil {
		// Without a Lister nothing finds the MRs nobody escalated.
		projects = w.reconcileProjects(ctx, byProject)
	}
	left := w.ClassifyPerPass
	if left <= 0 {
		left = DefaultClassifyPerPass
	}
	w.recMu.Lock()
	pass := w.passes
	w.passes++
	w.recMu.Unlock()
	// The budget of MRs without an escalation is shared fairly: each
	// project may first read its share of what is left (what those
	// before it did not use is shared by those after), then the projects
	// that wanted more share what the first round left, from another one
	// each pass. No project's backlog, nor its MRs that cannot be read,
	// takes the whole budget for good.
	var hungry []*catchUpJob
	finishHungry := func() {
		if len(hungry) == 0 {
			return
		}
		from := pass % len(hungry)
		for i := range hungry {
			job := hungry[(from+i)%len(hungry)]
			w.classifyUpTo(ctx, job, left, &left)
			w.finishCatchUp(ctx, job)
		}
	}
	n := 0
	for i, project := range projects {
		if ctx.Err() != nil {
			finishHungry()
			return n, ctx.Err()
		}
		escs := byProject[project]
		if lister == nil {
			k, _ := w.reconcileEach(ctx, escs)
			n += k
			continue
		}
		k, job := w.reconcileProject(ctx, lister, project, escs)
		n += k
		if job == nil {
			continue
		}
		share := max(1, left/(len(projects)-i))
		w.classifyUpTo(ctx, job, share, &left)
		if len(job.todo) > 0 && ctx.Err() == nil {
			hungry = append(hungry, job)
			continue
		}
		w.finishCatchUp(ctx, job)
	}
	finishHungry()
	return n, ctx.Err()
}

func sortedKeys[V any](m map[string]V) []string {
	return slices.Sorted(maps.Keys(m))
}

// reconcileEach fetches every escalation of escs. clean is true when each
// was handled (or its MR is gone).
func (w *Worker) reconcileEach(ctx context.Context, escs []*bot.Escalation) (n int, clean bool) {
	clean = true
	for _, e := range escs {
		if ctx.Err() != nil {
			return n, false
		}
		ok, gone := w.reconcileSafely(ctx, e)
		if ok {
			n++
		} else if !gone {
			clean = false
		}
	}
	return n, clean
}

// reconcileSafely reconciles e under recover. ok: handled; gone: GitLab
// has no such MR (not an error that the next pass must repeat).
func (w *Worker) reconcileSafely(ctx context.Context, e *bot.Escalation) (ok, gone bool) {
	err := recovered(func() error { return w.reconcileOne(ctx, e) })
	var pan *panicked
	switch {
	case errors.As(err, &pan):
		w.setAsideReconcile(ctx, e.ID, e.ID, pan)
		return false, false
	case err != nil:
		return false, isNotFound(err)
	}
	return true, false
}

// differs reports whether what a list says of an MR is not what the
// escalation last saw of it.
func differs(e *bot.Escalation, b MRBrief) bool {
	return b.SHA != e.HeadSHA || b.State != e.MRState || b.UpdatedAt.After(e.MRUpdatedAt)
}

// reconcileProject is one pass over a project's watched escalations and
// the lists of its MRs; see Reconcile. It returns how many escalations
// are current or were brought up to date, and the catch-up of its MRs
// without one (nil when its lists failed): the caller reads them within
// the pass's budget and finishes it (finishCatchUp), which moves the
// project's watermark when the whole pass over the project was clean.
func (w *Worker) reconcileProject(ctx context.Context, l Lister, project string, escs []*bot.Escalation) (int, *catchUpJob) {
	log := w.log().With("project", project)
	// The pass begins at the earlier of two readings of GitLab's clock:
	// before its first request (threatgate's own clock while GitLab's is
	// unknown) and after it (from the answer's Date). Later is never
	// safe: a watermark ahead of GitLab's clock would skip changes.
	before := l.GitLabNow()
	startAfterFirst := func() time.Time {
		if after := l.GitLabNow(); after.Before(before) {
			return after
		}
		return before
	}
	byIID := make(map[int64]*bot.Escalation, len(escs))
	for _, e := range escs {
		byIID[e.MRIID] = e
	}
	// Pipelines tell of the gate's status on an escalation's head; a
	// project without escalations has no gate to watch.
	statuses := l.WatchesStatuses() && len(escs) > 0
	mark, ok, err := w.watermark(ctx, project)
	if err != nil {
		log.Warn("reconcile: cannot read the watermark; fetching every MR", bot.LogErr, err)
		ok = false
	}
	if !ok {
		// The pipelines first: once every MR is read, those listed now are
		// known to be read (a status set later moves its pipeline again).
		// Which also reads GitLab's clock, as the list of open MRs does.
		var pls []PipelineBrief
		if statuses {
			pls, err = l.ListPipelines(ctx, project, before.Add(-ReconcileOverlap))
			if err != nil {
				log.Warn("reconcile: cannot list pipelines", bot.LogErr, err)
				pls = nil
			}
		}
		open, lerr := l.ListMRs(ctx, project, "opened", time.Time{})
		start := startAfterFirst()
		w.listed(ctx, log, project, len(escs) > 0, lerr)
		n, clean := w.reconcileEach(ctx, escs)
		onClean := func() {
			w.sawPipelines(pls)
			w.passed(ctx, log, project, nextMark(start, newestListed(open, pls), time.Time{}), true)
		}
		switch {
		case lerr == nil:
			job := w.catchUp(ctx, log, project, byIID, nil, open, true)
			job.clean = job.clean && clean
			job.onClean = onClean
			return n, job
		case permanent(lerr) && !errors.As(lerr, new(*RateLimitError)):
			// Its escalations were read one by one; nothing lists the
			// others until GitLab lets threatgate list the project.
			log.Warn("reconcile: cannot list open merge requests; those without an escalation are not caught up", bot.LogErr, lerr)
		default:
			log.Warn("reconcile: cannot list open merge requests; the project is tried again next pass", bot.LogErr, lerr)
			clean = false
		}
		if clean {
			onClean()
		}
		return n, nil
	}
	since := mark.Add(-ReconcileOverlap)
	now := w.Clock.Now()
	full := w.fullDue(project, now)

	var order []int64
	fetch := map[int64]bool{}
	want := func(iid int64) {
		if !fetch[iid] {
			fetch[iid] = true
			order = append(order, iid)
		}
	}
	listFailed := func(what string, err error) (int, *catchUpJob) {
		if permanent(err) && !errors.As(err, new(*RateLimitError)) {
			// A list GitLab refuses for good (a moved project, a scope):
			// read each MR instead, so nothing goes unwatched.
			log.Warn("reconcile: cannot list "+what+"; fetching every MR", bot.LogErr, err)
			n, _ := w.reconcileEach(ctx, escs)
			return n, nil
		}
		log.Warn("reconcile: cannot list "+what+"; the project is tried again next pass", bot.LogErr, err)
		return 0, nil
	}

	changed, err := l.ListMRs(ctx, project, "", since)
	w.listed(ctx, log, project, len(escs) > 0, err)
	if err != nil {
		return listFailed("merge requests", err)
	}
	start := startAfterFirst()
	for _, b := range changed {
		if e := byIID[b.IID]; e != nil && differs(e, b) {
			want(b.IID)
		}
	}
	var pipes, pls []PipelineBrief
	if statuses {
		pls, err = l.ListPipelines(ctx, project, since)
		if err != nil {
			return listFailed("pipelines", err)
		}
		heads := map[string][]int64{}
		for _, e := range escs {
			if e.HeadSHA != "" {
				heads[e.HeadSHA] = append(heads[e.HeadSHA], e.MRIID)
			}
		}
		w.recMu.Lock()
		for _, p := range pls {
			iids := heads[p.SHA]
			if len(iids) == 0 {
				continue
			}
			if at, ok := w.pipeSeen[p.ID]; ok && !p.UpdatedAt.After(at) {
				continue // its MRs were read since it last changed
			}
			pipes = append(pipes, p)
			for _, iid := range iids {
				want(iid)
			}
		}
		w.recMu.Unlock()
	}
	var open []MRBrief
	if full {
		open, err = l.ListMRs(ctx, project, "opened", time.Time{})
		if err != nil {
			return listFailed("open merge requests", err)
		}
		listed := make(map[int64]MRBrief, len(open))
		for _, b := range open {
			listed[b.IID] = b
		}
		for _, e := range escs {
			b, ok := listed[e.MRIID]
			switch {
			case ok && differs(e, b):
				want(e.MRIID)
			case !ok && e.MRState != "closed":
				// Left the list of open MRs (merged, closed, moved,
				// deleted) without our hearing of it.
				want(e.MRIID)
			}
		}
	}

	n := len(escs) - len(order)
	clean := true
	for _, iid := range order {
		if ctx.Err() != nil {
			return n, nil
		}
		ok, gone := w.reconcileSafely(ctx, byIID[iid])
		if ok {
			n++
		} else if !gone {
			clean = false
		}
	}
	log.Debug("reconciled project", "escalations", len(escs), "fetched", len(order), "full", full, "clean", clean)
	job := w.catchUp(ctx, log, project, byIID, changed, open, full)
	job.clean = job.clean && clean
	job.onClean = func() {
		w.sawPipelines(pipes)
		w.passed(ctx, log, project, nextMark(start, newestListed(changed, pls), mark), full)
	}
	return n, job
}

// missingPasses is how many passes in a row GitLab must answer 404 for a
// project's merge requests before reconcile forgets the project, when
// nothing else names it (no watched escalation, not in Projects): a
// project deleted, moved or never there (a webhook may name anything)
// costs a request a pass no longer.
const missingPasses = 3

// listed notes how listing project's merge requests went (err nil: it
// was listed). GitLab answering 404 missingPasses passes in a row for a
// project with no watched escalation (escalated false) that Projects does
// not name makes reconcile forget it (Classifications.ForgetProject); a
// configured one is only logged. A webhook or an escalation of it makes
// it seen again.
func (w *Worker) listed(ctx context.Context, log *slog.Logger, project string, escalated bool, err error) {
	w.recMu.Lock()
	if !isNotFound(err) {
		delete(w.missing, project)
		w.recMu.Unlock()
		return
	}
	if w.missing == nil {
		w.missing = map[string]int{}
	}
	w.missing[project]++
	n := w.missing[project]
	w.recMu.Unlock()
	configured := slices.ContainsFunc(w.Projects, func(p string) bool { return strings.EqualFold(p, project) })
	switch {
	case configured:
		log.Warn("reconcile: GitLab has no such project, or the token cannot see it; check gitlab.projects", "passes", n)
	case escalated || n < missingPasses:
	default:
		if err := w.classifications().ForgetProject(ctx, project); err != nil {
			log.Warn("reconcile: cannot forget a project GitLab does not have", bot.LogErr, err)
			return
		}
		w.projectsKept(true, project)
		w.recMu.Lock()
		delete(w.missing, project)
		w.recMu.Unlock()
		log.Warn("reconcile: GitLab has no such project, or the token cannot see it; forgotten", "passes", n)
	}
}

// nextMark is where a clean pass that began at start (GitLab's clock, as
// its Date header told it) leaves a project's watermark, given the newest
// updated_at among the changes it listed (zero: none) and the watermark
// it started from (zero: none): start, but never more than
// ReconcileOverlap (and a second) past the newest updated_at listed. The
// Date comes from the node that answered and updated_at from the nodes
// that wrote; a Date running more than the overlap ahead of their stamps
// would otherwise carry the watermark past changes not yet listed,
// pipelines among them (which no list of MRs shows again), and the next
// pass would list from the future. Bounded, the next pass lists from just
// after the newest change this one saw (the second: updated_after goes
// to GitLab in whole seconds and is inclusive, and a burst of MRs updated
// in one second must not be listed again by every pass of a quiet
// project). With clocks that agree a busy project's watermark is start,
// as before. Nothing listed keeps the watermark where it was (at most
// start).
func nextMark(start, newest, prev time.Time) time.Time {
	switch {
	case !newest.IsZero():
		return minTime(start, newest.Add(ReconcileOverlap+time.Second))
	case !prev.IsZero():
		return minTime(start, prev)
	}
	return start
}

func minTime(a, b time.Time) time.Time {
	if b.Before(a) {
		return b
	}
	return a
}

// newestListed is the newest updated_at among mrs and pls (zero for
// none).
func newestListed(mrs []MRBrief, pls []PipelineBrief) time.Time {
	var newest time.Time
	for _, b := range mrs {
		if b.UpdatedAt.After(newest) {
			newest = b.UpdatedAt
		}
	}
	for _, p := range pls {
		if p.UpdatedAt.After(newest) {
			newest = p.UpdatedAt
		}
	}
	return newest
}

// sawPipelines records that the MRs at the SHAs of pls were read after
// the pipelines were listed: until a pipeline is updated again, it says
// nothing new.
func (w *Worker) sawPipelines(pls []PipelineBrief) {
	if len(pls) == 0 {
		return
	}
	w.recMu.Lock()
	defer w.recMu.Unlock()
	if w.pipeSeen == nil {
		w.pipeSeen = map[int64]time.Time{}
	}
	for _, p := range pls {
		w.pipeSeen[p.ID] = p.UpdatedAt
	}
}

// fullDue reports whether project's every open MR is to be listed now.
func (w *Worker) fullDue(project string, now time.Time) bool {
	every := w.FullEvery
	if every <= 0 {
		every = DefaultFullEvery
	}
	w.recMu.Lock()
	defer w.recMu.Unlock()
	last, ok := w.lastFull[project]
	return !ok || !now.Before(last.Add(every))
}

// passed records a clean pass over project that began at start (GitLab's
// clock); full: it saw every open MR.
func (w *Worker) passed(ctx context.Context, log *slog.Logger, project string, start time.Time, full bool) {
	if full {
		w.recMu.Lock()
		if w.lastFull == nil {
			w.lastFull = map[string]time.Time{}
		}
		w.lastFull[project] = w.Clock.Now()
		w.recMu.Unlock()
	}
	if err := w.setWatermark(ctx, project, start); err != nil {
		log.Warn("reconcile: cannot keep the watermark; the next pass lists more", bot.LogErr, err)
	}
}

// marks returns where watermarks are kept: Marks, else Store when it
// keeps them, else nil (memory).
func (w *Worker) marks() Watermarks {
	if w.Marks != nil {
		return w.Marks
	}
	if m, ok := w.Store.(Watermarks); ok {
		return m
	}
	return nil
}

func (w *Worker) watermark(ctx context.Context, project string) (time.Time, bool, error) {
	if m := w.marks(); m != nil {
		return m.Watermark(ctx, watermarkName(project))
	}
	w.recMu.Lock()
	defer w.recMu.Unlock()
	t, ok := w.memMarks[project]
	return t, ok, nil
}

func (w *Worker) setWatermark(ctx context.Context, project string, t time.Time) error {
	if m := w.marks(); m != nil {
		return m.SetWatermark(ctx, watermarkName(project), t)
	}
	w.recMu.Lock()
	defer w.recMu.Unlock()
	if w.memMarks == nil {
		w.memMarks = map[string]time.Time{}
	}
	w.memMarks[project] = t
	return nil
}

// reconcileOne feeds what GitLab shows now of e's MR through the engine.
// Its errors are logged here; the caller only counts.
func (w *Worker) reconcileOne(ctx context.Context, e *bot.Escalation) error {
	mi, err := w.Fetch.FetchMR(ctx, e.Project, e.MRIID)
	if err != nil {
		w.log().Warn("reconcile: cannot fetch MR", bot.LogEscalationID, e.ID, bot.LogErr, err)
		return err
	}
	mi.Action = bot.MRSeen
	if _, err := w.Engine.Handle(ctx, bot.Input{Kind: bot.InputMR, Actor: bot.System, MR: mi}); settle(err) != nil {
		w.log().Warn("reconcile: engine refused", bot.LogEscalationID, e.ID, bot.LogErr, err)
		return err
	}
	return nil
}

// setAsideReconcile logs the panic of reconciling ref (an escalation id,
// or project!iid for an MR without one) and records it as a dead letter,
// once per ref in this process: reconciliation runs again on a timer,
// and one poison must not fill the store.
func (w *Worker) setAsideReconcile(ctx context.Context, ref, escalation string, pan *panicked) {
	log := w.log().With("ref", ref)
	if escalation != "" {
		log = log.With(bot.LogEscalationID, escalation)
	}
	log.Error("reconcile panicked; skipping the merge request", bot.LogPanic, pan.reason(), bot.LogStack, string(pan.stack))
	if w.DeadLetters == nil {
		return
	}
	// Claim the ref first, so that two passes running at once record it
	// once; give the claim back when nothing was recorded.
	w.asideMu.Lock()
	if w.aside[ref] {
		w.asideMu.Unlock()
		return
	}
	if w.aside == nil {
		w.aside = map[string]bool{}
	}
	w.aside[ref] = true
	w.asideMu.Unlock()
	dl := bot.DeadLetter{Kind: "reconcile", Ref: ref, Escalation: escalation, Reason: pan.reason(), Panic: true, At: w.Clock.Now()}
	if err := w.DeadLetters.SetAside(ctx, dl); err != nil {
		log.Error("cannot set the reconciliation aside", bot.LogErr, err)
		w.asideMu.Lock()
		delete(w.aside, ref)
		w.asideMu.Unlock()
	}
}
