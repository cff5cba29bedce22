package gitlab

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"slices"
	"strings"
	"sync"

	"github.com/threatgate/threatgate/bot"
)

// Classifications remembers the open MRs threatgate classified into no
// tier (bot.Unescalated), so that reconcile reads again only those whose
// head or tier facts changed since, and the projects webhooks named;
// store.DB is one.
type Classifications interface {
	// FindUnescalated returns what is remembered of project's MRs iids
	// (nil: all of the project's), by iid.
	FindUnescalated(ctx context.Context, project string, iids []int64) (map[int64]bot.Unescalated, error)
	// KeepUnescalated remembers put and forgets drop, and adds the
	// projects of put and projects to those seen, in one write.
	KeepUnescalated(ctx context.Context, put, drop []bot.Unescalated, projects ...string) error
	// SawProjects adds projects to those seen; ProjectsSeen lists them.
	SawProjects(ctx context.Context, projects ...string) error
	ProjectsSeen(ctx context.Context) ([]string, error)
	// ForgetProject removes project (in any case) from those seen and
	// forgets its MRs.
	ForgetProject(ctx context.Context, project string) error
}

// DefaultClassifyPerPass bounds how many MRs without an escalation one
// reconcile pass reads and classifies, by default: about four requests
// each (the MR, its diffs, its commits, the gate's status), so 500 are
// some 2,000 requests, a little over three minutes of the default
// request rate. A backlog larger than that (the first pass after an
// upgrade, a new policy, a long outage of the webhook) is worked off
// over several passes, leaving the rest of the rate to the gate's own
// writes.
const DefaultClassifyPerPass = 500

// unescalatedState is the worker's part of remembering classifications:
// what the inbox pass classified, written together at the end of the
// pass, and the projects webhooks named.
type unescalatedState struct {
	mu  sync.Mutex
	put []bot.Unescalated
	mem *memClassifications
	// pending are projects an MR webhook named that may not be kept as
	// seen yet: written with the next write of classifications (an inbox
	// pass that remembers an MR), else by the next reconcile pass, which
	// lists them either way. kept are those known to be kept (bounded).
	pending map[string]bool
	kept    map[string]bool
}

// maxKeptProjects bounds the projects the worker remembers as kept; past
// it, a webhook's project is checked by the next reconcile pass again
// (a read, no write).
const maxKeptProjects = 10_000

// classifications returns where classifications are remembered: Memory,
// else Store when it remembers them (store.DB does), else this process's
// memory.
func (w *Worker) classifications() Classifications {
	if w.Memory != nil {
		return w.Memory
	}
	if c, ok := w.Store.(Classifications); ok {
		return c
	}
	w.unesc.mu.Lock()
	defer w.unesc.mu.Unlock()
	if w.unesc.mem == nil {
		w.unesc.mem = &memClassifications{recs: map[string]map[int64]bot.Unescalated{}, projects: map[string]bool{}}
	}
	return w.unesc.mem
}

// unescalatedOf is what to remember of an MR that mi read through the API
// and the engine decided on (rep): its head, tier facts and the policy
// in force, when it is open and has no escalation; nil otherwise (an
// escalation watches it, or it is closed or merged and gated by
// nothing).
func unescalatedOf(project string, iid int64, mi *bot.MRInput, rep bot.Reply, w *Worker) *bot.Unescalated {
	if mi == nil || mi.MR == nil || !mi.Fetched || rep.Escalation != "" || rep.Duplicate || mi.MR.SHA == "" || !bot.Classifiable(mi.MR.State) {
		return nil
	}
	return &bot.Unescalated{Project: project, IID: iid, SHA: mi.MR.SHA, Facts: bot.TierFacts(mi.MR), Policy: w.policyDigest(), At: w.Clock.Now()}
}

// policyDigest is the Digest of the policy the engine decides with; ""
// when the Handler does not say (then nothing remembered counts:
// bot.NeedsClassifying).
func (w *Worker) policyDigest() string {
	if p := w.policy(); p != nil {
		return p.Digest
	}
	return ""
}

// fetchMR reads MR iid of project through Fetch. partial: what GitLab
// gave of its diff may be short of the whole (Client.FetchMRPartial); a
// Fetch that cannot tell says false.
func (w *Worker) fetchMR(ctx context.Context, project string, iid int64) (mi *bot.MRInput, partial bool, err error) {
	if pf, ok := w.Fetch.(interface {
		FetchMRPartial(ctx context.Context, project string, iid int64) (*bot.MRInput, bool, error)
	}); ok {
		return pf.FetchMRPartial(ctx, project, iid)
	}
	mi, err = w.Fetch.FetchMR(ctx, project, iid)
	return mi, false, err
}

// classified notes what the inbox pass decided on an MR read through the
// API with its whole diff: an open MR left without an escalation is
// remembered (at the end of the pass, by keepClassified, which keeps its
// project as seen too), so that reconcile does not read it again until
// it changes. An MR whose diff was read partial is not: GitLab may still
// be preparing it.
func (w *Worker) classified(project string, iid int64, mi *bot.MRInput, rep bot.Reply) {
	u := unescalatedOf(project, iid, mi, rep, w)
	if u == nil || project == "" {
		return
	}
	w.unesc.mu.Lock()
	defer w.unesc.mu.Unlock()
	w.unesc.put = append(w.unesc.put, *u)
}

// sawProject notes that an MR webhook named project and its MR was read:
// reconcile lists the project from now on, also once the escalation the
// webhook opened there has merged (so an MR there whose webhook is lost
// is caught up). It costs no write of its own: the project is kept with
// the next write of classifications or by the next reconcile pass.
func (w *Worker) sawProject(project string) {
	if project == "" {
		return
	}
	w.unesc.mu.Lock()
	defer w.unesc.mu.Unlock()
	if w.unesc.kept[project] {
		return
	}
	if w.unesc.pending == nil {
		w.unesc.pending = map[string]bool{}
	}
	w.unesc.pending[project] = true
}

// pendingProjects returns the projects sawProject noted and not yet
// known to be kept.
func (w *Worker) pendingProjects() []string {
	w.unesc.mu.Lock()
	defer w.unesc.mu.Unlock()
	return sortedKeys(w.unesc.pending)
}

// projectsKept records that projects are kept as seen (or, forgot, no
// longer are).
func (w *Worker) projectsKept(forgot bool, projects ...string) {
	w.unesc.mu.Lock()
	defer w.unesc.mu.Unlock()
	for _, p := range projects {
		if forgot {
			delete(w.unesc.kept, p)
			continue
		}
		delete(w.unesc.pending, p)
		if w.unesc.kept == nil {
			w.unesc.kept = map[string]bool{}
		}
		if len(w.unesc.kept) < maxKeptProjects {
			w.unesc.kept[p] = true
		}
	}
}

// keepClassified writes what classified noted: one small transaction for
// the pass's MRs, none when there are none; the projects webhooks named
// (sawProject) go with it. A failure is logged: what is not remembered
// is read again by a later reconcile, and nothing is lost.
func (w *Worker) keepClassified(ctx context.Context) {
	w.unesc.mu.Lock()
	put := w.unesc.put
	w.unesc.put = nil
	w.unesc.mu.Unlock()
	if len(put) == 0 {
		return
	}
	projects := w.pendingProjects()
	// Not ctx: a pass cut short still remembers what it classified.
	if err := w.classifications().KeepUnescalated(context.WithoutCancel(ctx), put, nil, projects...); err != nil {
		w.log().Warn("cannot remember the merge requests classified into no tier; reconcile reads them again", bot.LogErr, err)
		return
	}
	w.projectsKept(false, projects...)
}

// reconcileProjects returns the projects a pass lists, in order: those
// of watched escalations (byProject), those configured (Projects), those
// MR webhooks named (sawProject) and those seen before
// (Classifications.ProjectsSeen: of an MR left without an escalation, of
// an escalation, of a webhook), each once whatever its case (GitLab's
// paths are not case sensitive; an escalation's spelling first, then the
// configured one). The projects of watched escalations and of webhooks
// not yet kept as seen are kept (a write only when there is a new one),
// so that a project stays listed after its last escalation merged.
func (w *Worker) reconcileProjects(ctx context.Context, byProject map[string][]*bot.Escalation) []string {
	mem := w.classifications()
	seen, err := mem.ProjectsSeen(ctx)
	if err != nil {
		w.log().Warn("reconcile: cannot read the projects seen; listing those with escalations, those configured and those webhooks named", bot.LogErr, err)
	}
	kept := make(map[string]bool, len(seen))
	for _, p := range seen {
		kept[p] = true
	}
	w.projectsKept(false, seen...)
	byFold := map[string]string{} // lower case -> the spelling listed
	add := func(p string) {
		if p == "" {
			return
		}
		if _, ok := byFold[strings.ToLower(p)]; !ok {
			byFold[strings.ToLower(p)] = p
		}
	}
	var fresh []string
	for _, p := range sortedKeys(byProject) {
		add(p)
		if !kept[p] {
			fresh = append(fresh, p)
		}
	}
	for _, p := range w.Projects {
		add(p)
	}
	for _, p := range w.pendingProjects() {
		add(p)
		if !kept[p] && byProject[p] == nil {
			fresh = append(fresh, p)
		}
	}
	for _, p := range seen {
		add(p)
	}
	if len(fresh) > 0 && err == nil {
		if err := mem.SawProjects(ctx, fresh...); err != nil {
			w.log().Warn("reconcile: cannot keep the projects seen", bot.LogErr, err)
		} else {
			w.projectsKept(false, fresh...)
		}
	}
	out := make([]string, 0, len(byFold))
	for _, p := range byFold {
		out = append(out, p)
	}
	slices.Sort(out)
	return out
}

// catchUpJob is one project's part of a pass's catch-up of MRs without
// an escalation (see catchUp): what it has still to read and what it
// read, until finishCatchUp writes it and moves the watermark.
type catchUpJob struct {
	project string
	log     *slog.Logger
	todo    []MRBrief // still to read, most recently updated first
	wanted  int
	read    int
	// put and drop are what to remember and forget.
	put, drop []bot.Unescalated
	// clean: every MR the project's pass had to read so far was handled
	// (its escalations' too).
	clean bool
	// onClean moves the project's watermark; run when the job ends clean.
	onClean func()
}

// catchUp plans the catch-up of the open MRs of project without an
// escalation that the lists showed (changed: updated since the
// watermark; open, when full: every open MR) and that
// bot.NeedsClassifying says must be read under the policy in force:
// classifyUpTo reads them, through the same engine path as a webhook
// (classifyOne), and finishCatchUp remembers those left without an
// escalation and forgets those closed, merged, gone or escalated since;
// a full pass also forgets those no longer open. An MR whose last read
// failed, or was partial, is skipped for a while (backedOff); one
// skipped after a failure leaves the job unclean. The job is clean
// only when every MR it had to read was handled: otherwise the
// project's watermark stays where it was, so the next pass lists them
// again.
func (w *Worker) catchUp(ctx context.Context, log *slog.Logger, project string, byIID map[int64]*bot.Escalation, changed, open []MRBrief, full bool) *catchUpJob {
	job := &catchUpJob{project: project, log: log, clean: true}
	cand := map[int64]MRBrief{}
	add := func(bs []MRBrief) {
		for _, b := range bs {
			if byIID[b.IID] != nil {
				continue
			}
			if had, ok := cand[b.IID]; !ok || b.UpdatedAt.After(had.UpdatedAt) {
				cand[b.IID] = b
			}
		}
	}
	add(changed)
	add(open)
	if len(cand) == 0 && !full {
		return job
	}
	mem := w.classifications()
	var iids []int64
	if !full {
		iids = slices.Sorted(maps.Keys(cand))
	}
	recs, err := mem.FindUnescalated(ctx, project, iids)
	if err != nil {
		log.Warn("reconcile: cannot read what is remembered of merge requests without an escalation; tried again next pass", bot.LogErr, err)
		job.clean = false
		return job
	}
	policy := w.policyDigest()
	skipped, held := 0, 0
	for _, b := range cand {
		rec, known := recs[b.IID]
		switch {
		case !bot.Classifiable(b.State):
			w.settled(project, b.IID)
			if known {
				job.drop = append(job.drop, rec)
			}
		case bot.NeedsClassifying(rec, known, b.SHA, b.Facts, policy):
			if skip, hold := w.backedOff(project, b); skip {
				skipped++
				if hold {
					held++
					job.clean = false
				}
				continue
			}
			job.todo = append(job.todo, b)
		}
	}
	if full {
		listed := make(map[int64]bool, len(open))
		for _, b := range open {
			listed[b.IID] = true
		}
		for iid, rec := range recs {
			// Escalated (the escalation watches it now), or no longer
			// open (closed, merged, moved, deleted): nothing to remember.
			if byIID[iid] != nil || !listed[iid] {
				job.drop = append(job.drop, rec)
			}
		}
	}
	if skipped > 0 {
		log.Debug("reconcile: merge requests without an escalation skipped after a failed or partial read", "skipped", skipped, "failed", held)
	}
	// The most recently updated first: those most likely to merge soon.
	slices.SortFunc(job.todo, func(a, b MRBrief) int {
		if c := b.UpdatedAt.Compare(a.UpdatedAt); c != 0 {
			return c
		}
		return cmp.Compare(b.IID, a.IID)
	})
	job.wanted = len(job.todo)
	return job
}

// classifyUpTo reads at most limit of job's MRs, and no more than *left
// (the pass's budget, which it spends).
func (w *Worker) classifyUpTo(ctx context.Context, job *catchUpJob, limit int, left *int) {
	for len(job.todo) > 0 && limit > 0 && *left > 0 {
		if ctx.Err() != nil {
			return
		}
		b := job.todo[0]
		job.todo = job.todo[1:]
		limit--
		*left--
		u, partial, gone, err := w.classifySafely(ctx, job.project, b.IID)
		switch {
		case err == nil && partial && u != nil:
			// Read and decided on, but not remembered: GitLab may still be
			// preparing its diff, or left part of it out.
			w.backOff(job.project, b, true)
			job.drop = append(job.drop, bot.Unescalated{Project: job.project, IID: b.IID})
			job.read++
		case err == nil && u != nil:
			w.settled(job.project, b.IID)
			job.put = append(job.put, *u)
			job.read++
		case err == nil || gone:
			w.settled(job.project, b.IID)
			job.drop = append(job.drop, bot.Unescalated{Project: job.project, IID: b.IID})
			job.read++
		default:
			w.backOff(job.project, b, false)
			job.clean = false
		}
	}
}

// finishCatchUp ends job: it remembers and forgets what the job found,
// in one write, and moves the project's watermark when every MR it had
// to read was handled (none is left for want of budget).
func (w *Worker) finishCatchUp(ctx context.Context, job *catchUpJob) {
	if len(job.todo) > 0 {
		job.log.Info("reconcile: more merge requests without an escalation to classify than a pass may read; the rest next pass", "left", len(job.todo))
		job.clean = false
	}
	if err := w.classifications().KeepUnescalated(context.WithoutCancel(ctx), job.put, job.drop); err != nil {
		job.log.Warn("reconcile: cannot remember the merge requests classified into no tier; read again next pass", bot.LogErr, err)
	}
	if job.wanted > 0 {
		job.log.Debug("reconcile: classified merge requests without an escalation", "read", job.read, "wanted", job.wanted, "remembered", len(job.put))
	}
	if job.clean && ctx.Err() == nil && job.onClean != nil {
		job.onClean()
	}
}

// retryState is how long an MR without an escalation whose read failed
// (or was partial) is skipped: skip more passes that list it, after
// times such reads of its head and facts.
type retryState struct {
	sha, facts string
	times      int
	skip       int
	hold       bool // a failure: the project's watermark waits for it
}

// maxRetryStates bounds the MRs the worker backs off (past it, one is
// forgotten for each new one: it is read again, as before it failed).
const maxRetryStates = 10_000

// maxRetrySkip is the most passes in a row an MR is skipped.
const maxRetrySkip = 64

func retryKey(project string, iid int64) string { return fmt.Sprintf("%s!%d", project, iid) }

// backOff records a failed (partial false) or partial read of b: it is
// skipped for the next 1, 2, 4, ... maxRetrySkip passes that list it
// after a failure, and read again at once after its first partial read
// (GitLab prepares a new MR's diff after the MR exists), then after 1,
// 2, 4 ... passes. A push or an edit (another head or facts) starts
// over.
func (w *Worker) backOff(project string, b MRBrief, partial bool) {
	w.recMu.Lock()
	defer w.recMu.Unlock()
	k := retryKey(project, b.IID)
	st := w.retries[k]
	if st == nil || st.sha != b.SHA || st.facts != b.Facts || st.hold == partial {
		if w.retries == nil {
			w.retries = map[string]*retryState{}
		}
		if len(w.retries) >= maxRetryStates && st == nil {
			for old := range w.retries {
				delete(w.retries, old)
				break
			}
		}
		st = &retryState{sha: b.SHA, facts: b.Facts, hold: !partial}
		w.retries[k] = st
	}
	st.times++
	n := st.times
	if partial {
		n-- // the first partial read is followed by a read next pass
	}
	st.skip = 0
	if n > 0 {
		st.skip = min(1<<min(n-1, 7), maxRetrySkip)
	}
}

// backedOff reports whether b is to be skipped this pass (and counts the
// pass), and whether the skip holds the project's watermark (its last
// read failed).
func (w *Worker) backedOff(project string, b MRBrief) (skip, hold bool) {
	w.recMu.Lock()
	defer w.recMu.Unlock()
	k := retryKey(project, b.IID)
	st := w.retries[k]
	switch {
	case st == nil:
		return false, false
	case st.sha != b.SHA || st.facts != b.Facts:
		delete(w.retries, k) // changed since: read it now
		return false, false
	case st.skip > 0:
		st.skip--
		return true, st.hold
	}
	return false, false
}

// settled forgets the back-off of MR iid of project: it was read
// whole, or needs reading no more.
func (w *Worker) settled(project string, iid int64) {
	w.recMu.Lock()
	defer w.recMu.Unlock()
	delete(w.retries, retryKey(project, iid))
}

// classifySafely reads MR iid of project and feeds it through the engine
// (classifyOne) under recover. u is what to remember of it (nil: it has
// an escalation now, or is not open); partial: its diff was read partial
// (Client.FetchMRPartial); gone: GitLab has no such MR.
func (w *Worker) classifySafely(ctx context.Context, project string, iid int64) (u *bot.Unescalated, partial, gone bool, err error) {
	err = recovered(func() error {
		var err error
		u, partial, err = w.classifyOne(ctx, project, iid)
		return err
	})
	var pan *panicked
	switch {
	case errors.As(err, &pan):
		w.setAsideReconcile(ctx, fmt.Sprintf("%s!%d", project, iid), "", pan)
		return nil, false, false, err
	case err != nil:
		return nil, false, isNotFound(err), err
	}
	return u, partial, false, nil
}

// classifyOne feeds what GitLab shows now of MR iid of project, which
// has no escalation, through the engine, exactly as the worker does for
// a webhook: the engine opens its escalation (and gate) when it
// classifies into a tier. Its errors are logged here.
func (w *Worker) classifyOne(ctx context.Context, project string, iid int64) (*bot.Unescalated, bool, error) {
	log := w.log().With("project", project, "mr_iid", iid)
	mi, partial, err := w.fetchMR(ctx, project, iid)
	if err != nil {
		log.Warn("reconcile: cannot fetch MR", bot.LogErr, err)
		return nil, false, err
	}
	mi.Action = bot.MRSeen
	rep, err := w.Engine.Handle(ctx, bot.Input{Kind: bot.InputMR, Actor: bot.System, MR: mi})
	if settle(err) != nil {
		log.Warn("reconcile: engine refused", bot.LogErr, err)
		return nil, false, err
	}
	if err != nil {
		return nil, false, nil // refused for good: nothing to remember, read again when it changes
	}
	if rep.Escalation != "" {
		log.Info("reconcile: a merge request whose webhook was missed classifies into a tier", bot.LogEscalationID, rep.Escalation)
	}
	if partial && rep.Escalation == "" {
		log.Info("reconcile: GitLab gave part of the diff of a merge request left without an escalation; it is read again")
	}
	return unescalatedOf(project, iid, mi, rep, w), partial, nil
}

// memClassifications keeps classifications in this process's memory, for
// a worker whose store does not keep them.
type memClassifications struct {
	mu       sync.Mutex
	recs     map[string]map[int64]bot.Unescalated
	projects map[string]bool
}

func (m *memClassifications) FindUnescalated(_ context.Context, project string, iids []int64) (map[int64]bot.Unescalated, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	out := map[int64]bot.Unescalated{}
	for iid, u := range m.recs[project] {
		if iids == nil || slices.Contains(iids, iid) {
			out[iid] = u
		}
	}
	return out, nil
}

func (m *memClassifications) KeepUnescalated(_ context.Context, put, drop []bot.Unescalated, projects ...string) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	for _, p := range projects {
		if p != "" {
			m.projects[p] = true
		}
	}
	for _, u := range drop {
		delete(m.recs[u.Project], u.IID)
	}
	for _, u := range put {
		if m.recs[u.Project] == nil {
			m.recs[u.Project] = map[int64]bot.Unescalated{}
		}
		m.recs[u.Project][u.IID] = u
		m.projects[u.Project] = true
	}
	return nil
}

func (m *memClassifications) SawProjects(_ context.Context, projects ...string) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	for _, p := range projects {
		m.projects[p] = true
	}
	return nil
}

func (m *memClassifications) ProjectsSeen(context.Context) ([]string, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	return slices.Sorted(maps.Keys(m.projects)), nil
}

func (m *memClassifications) ForgetProject(_ context.Context, project string) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	for p := range m.projects {
		if strings.EqualFold(p, project) {
			delete(m.projects, p)
			delete(m.recs, p)
		}
	}
	return nil
}
