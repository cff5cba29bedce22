package gitlab

import (
	"context"
	"fmt"
	"log/slog"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/threatgate/threatgate/adapters/gitlab/gitlabtest"
	"github.com/threatgate/threatgate/bot"
)

// reconciled runs one reconcile pass and then delivers what it decided,
// and returns the requests the pass sent GitLab by endpoint.
func (r *rig) reconciled() map[string]int {
	r.t.Helper()
	r.gl.ResetRequests()
	if _, err := r.worker.Reconcile(context.Background()); err != nil {
		r.t.Fatal(err)
	}
	calls := r.gl.CallsByEndpoint()
	r.settle()
	return calls
}

// perMR counts the requests about one MR (anything under
// /merge_requests/:iid, and commit statuses).
func perMR(calls map[string]int) int {
	n := 0
	for ep, c := range calls {
		if strings.Contains(ep, "/merge_requests/:iid") || strings.Contains(ep, "/statuses") {
			n += c
		}
	}
	return n
}

// openMRs opens an escalation for each iid (auth code: tier T2) and runs
// the first reconcile pass, which reads each MR and sets the watermark.
func (r *rig) openMRs(iids ...int64) {
	r.t.Helper()
	for _, iid := range iids {
		r.addMR(iid, fmt.Sprintf("%040d", iid), "auth/a.go")
		r.hook(iid, "open", fmt.Sprintf("%040d", iid), "")
	}
	r.settle()
	// The first pass comes more than the overlap later, so that what
	// the tests change below is stamped between the MRs' own updated_at
	// and the watermark less the overlap when they want it skewed.
	r.clock.Advance(30 * time.Minute)
	first := r.reconciled()
	if perMR(first) == 0 {
		r.t.Fatalf("the first pass (no watermark) read no MR: %v", first)
	}
	r.clock.Advance(10 * time.Minute)
}

// TestReconcileWithNothingChangedListsOnly: once a project has a
// watermark, a pass in which nothing changed costs a list of MRs and a
// list of pipelines, whatever the number of MRs; nothing is fetched or
// written.
func TestReconcileWithNothingChangedListsOnly(t *testing.T) {
	r := newRig(t, "status")
	iids := make([]int64, 0, 30)
	for i := int64(1); i <= 30; i++ {
		iids = append(iids, 100+i)
	}
	r.openMRs(iids...)
	calls := r.reconciled()
	want := map[string]int{"GET /projects/:id/merge_requests": 1, "GET /projects/:id/pipelines": 1}
	if fmt.Sprint(calls) != fmt.Sprint(want) {
		t.Errorf("a pass with nothing changed sent %v, want %v", calls, want)
	}
	// With more MRs than a page, still one request per page.
	r.clock.Advance(10 * time.Minute)
	if calls := r.reconciled(); perMR(calls) != 0 {
		t.Errorf("a second quiet pass read MRs: %v", calls)
	}
}

// TestReconcileFetchesOnlyWhatChanged: with 1 of 30 MRs pushed (its
// webhook lost), a pass fetches that one (its diffs and commits too, the
// head moved), and its approval goes stale: the gate is pending on the
// new head.
func TestReconcileFetchesOnlyWhatChanged(t *testing.T) {
	r := newRig(t, "status")
	r.readyForReview(12)
	r.comment(12, "alice", "/threatgate approve")
	r.settle()
	if e := r.escalation(12); e.State != bot.StateApproved {
		t.Fatalf("!12 is %s, want approved", e.State)
	}
	var others []int64
	for i := int64(1); i <= 29; i++ {
		others = append(others, 200+i)
	}
	r.openMRs(others...)

	r.gl.PushCommit("shop/api", 12, sha2, gitlabtest.Diff{OldPath: "auth/a.go", NewPath: "auth/a.go", Diff: "@@ -1 +1 @@\n-a\n+b\n"})
	r.clock.Advance(time.Minute)
	calls := r.reconciled()
	for ep, n := range map[string]int{
		"GET /projects/:id/merge_requests/:iid":         1,
		"GET /projects/:id/merge_requests/:iid/diffs":   1,
		"GET /projects/:id/merge_requests/:iid/commits": 1,
	} {
		if calls[ep] != n {
			t.Errorf("%s: %d requests, want %d (only the pushed MR); all: %v", ep, calls[ep], n, calls)
		}
	}
	e := r.escalation(12)
	if e.HeadSHA != sha2 || e.State == bot.StateApproved {
		t.Errorf("!12 at %s is %s; want the new head, its approval stale", short(e.HeadSHA), e.State)
	}
	if st := r.lastStatus(sha2); st.State != "pending" {
		t.Errorf("gate on the new head: %+v, want pending", st)
	}
}

// TestReconcileListingCatchesAMergeWithoutApproval: an MR merged while
// its webhook was lost is found by the list of changed MRs and recorded
// as a bypass.
func TestReconcileListingCatchesAMergeWithoutApproval(t *testing.T) {
	r := newRig(t, "status")
	r.openMRs(5, 6)
	r.gl.SetState("shop/api", 5, "merged")
	calls := r.reconciled()
	if calls["GET /projects/:id/merge_requests/:iid"] != 1 {
		t.Errorf("the pass read %d MRs, want the merged one only: %v", calls["GET /projects/:id/merge_requests/:iid"], calls)
	}
	if e := r.escalation(5); e.State != bot.StateMerged || !e.Bypassed {
		t.Errorf("!5 is %s, bypassed %v; want a merge recorded as a bypass", e.State, e.Bypassed)
	}
	if e := r.escalation(6); e.State == bot.StateMerged {
		t.Errorf("!6 is %s", e.State)
	}
}

// TestReconcileListingCatchesAForgedStatus: someone sets the gate's
// status to success with their own token. The MR itself does not change
// (its updated_at stays), but the status lands in a pipeline of its head,
// which the pipeline list shows: the forgery is recorded and the gate set
// again, newer than the forgery, although threatgate's own pending status
// in that pipeline is still pending (GitLab refuses pending over pending).
func TestReconcileListingCatchesAForgedStatus(t *testing.T) {
	r := newRig(t, "status")
	r.openMRs(7, 8)
	head := fmt.Sprintf("%040d", 7)
	before, _ := r.gl.MR("shop/api", 7)
	r.gl.SetStatusAs("shop/api", head, statusName, "success", "mallory")
	if after, _ := r.gl.MR("shop/api", 7); !after.UpdatedAt.Equal(before.UpdatedAt) {
		t.Fatal("setting a status moved the MR's updated_at; the test wants it still")
	}
	calls := r.reconciled()
	if n := calls["GET /projects/:id/merge_requests/:iid"]; n != 1 {
		t.Errorf("the pass read %d MRs, want the one with the forged status: %v", n, calls)
	}
	e := r.escalation(7)
	if e.Forged != 1 {
		t.Errorf("!7 forged = %d, want the forged status recorded", e.Forged)
	}
	// threatgate's own pending status sat in the same pipeline; the
	// forged success came after it, so the gate is set again, newer.
	if st := r.lastStatus(head); st.State != "pending" || st.Author != gitlabtest.DefaultBotUser {
		t.Errorf("gate: %+v (statuses %v), want threatgate's pending newer than the forgery", st, r.statuses(head))
	}
	// The pipeline moved again when threatgate set its status; once
	// read, it is not read again.
	r.clock.Advance(10 * time.Minute)
	r.reconciled()
	r.clock.Advance(10 * time.Minute)
	if calls := r.reconciled(); perMR(calls) != 0 {
		t.Errorf("a quiet pass after the forgery was put right read MRs: %v", calls)
	}
}

// TestReconcileCatchesWhatChangedWhileDown: threatgate stops; while it is
// down an MR is pushed and another closed, their webhooks lost. A new
// process (new client, new worker, same store) finds both from the
// watermark kept in the store, without reading the unchanged MRs.
func TestReconcileCatchesWhatChangedWhileDown(t *testing.T) {
	r := newRig(t, "status")
	r.openMRs(21, 22, 23, 24)

	// Down for two hours.
	r.clock.Advance(2 * time.Hour)
	r.gl.PushCommit("shop/api", 21, sha2, gitlabtest.Diff{OldPath: "auth/a.go", NewPath: "auth/a.go", Diff: "@@ -1 +1 @@\n-a\n+b\n"})
	r.gl.SetState("shop/api", 22, "closed")
	r.clock.Advance(time.Hour)

	client, err := New(Config{BaseURL: r.gl.URL, Token: bot.Secret(r.gl.Token), StatusName: statusName, Gate: "status", Timeout: 5 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	client.now = r.clock.Now
	old := r.worker
	r.worker = &Worker{Inbox: r.db, Fetch: client, Engine: old.Engine, Store: r.db, Answer: true, Clock: r.clock,
		Log: slog.New(slog.NewTextHandler(r.logs, nil))}
	r.disp = bot.NewDispatcher(r.db, client, nil, nil, r.clock, nil)

	calls := r.reconciled()
	if n := calls["GET /projects/:id/merge_requests/:iid"]; n != 2 {
		t.Errorf("after the restart the pass read %d MRs, want the 2 that changed: %v", n, calls)
	}
	if e := r.escalation(21); e.HeadSHA != sha2 {
		t.Errorf("!21 head %s, want the push made while down", short(e.HeadSHA))
	}
	if e := r.escalation(22); e.State != bot.StateWithdrawn {
		t.Errorf("!22 is %s, want withdrawn (closed while down)", e.State)
	}
}

// TestReconcileCatchesAnMRThatLeftTheList: an MR is merged but its
// updated_at does not move past the watermark (GitLab's clocks disagree).
// The list of changed MRs misses it; the list of open MRs, which a new
// process reads on its first pass and every FullEvery, no longer has it,
// so it is fetched, and the merge is a bypass.
func TestReconcileCatchesAnMRThatLeftTheList(t *testing.T) {
	r := newRig(t, "status")
	r.worker.FullEvery = time.Hour
	r.openMRs(31, 32)
	// The node that merges is an hour behind: the merge's updated_at is
	// before the watermark less the overlap (the watermark is at most the
	// overlap past the newest updated_at listed, here the MRs' last
	// update, so the merge is stamped before that update; decide applies
	// a state the API shows all the same).
	skewed := r.clock.Now().Add(-time.Hour)
	r.gl.SetNow(func() time.Time { return skewed })
	r.gl.SetState("shop/api", 31, "merged")
	r.gl.SetNow(r.clock.Now)

	r.reconciled() // the changed list misses it
	if e := r.escalation(31); e.State == bot.StateMerged {
		t.Fatal("test setup: the list of changed MRs caught the skewed merge; the test wants it missed there")
	}
	r.clock.Advance(time.Hour)
	calls := r.reconciled()
	if calls["GET /projects/:id/merge_requests/:iid"] != 1 {
		t.Errorf("the full pass read %d MRs, want the one that left the list: %v", calls["GET /projects/:id/merge_requests/:iid"], calls)
	}
	if e := r.escalation(31); e.State != bot.StateMerged || !e.Bypassed {
		t.Errorf("!31 is %s, bypassed %v; want the merge found and recorded as a bypass", e.State, e.Bypassed)
	}
}

// TestReconcileSkewedUpdatedAtCannotHideANewHead is the attacker's test:
// the head of an approved MR changes while the GitLab node that records
// it has a clock an hour behind, so its updated_at is older than the
// watermark less the overlap, and the webhook is lost. The list of
// changed MRs cannot show it; within FullEvery the list of open MRs shows
// a head that is not the escalation's, the MR is fetched, its approval
// goes stale and the gate is pending again. Until then nothing merges on
// the approval unseen: a merge moves updated_at too, and were that skewed
// as well, the open list misses the MR and fetches it (the test above).
func TestReconcileSkewedUpdatedAtCannotHideANewHead(t *testing.T) {
	r := newRig(t, "status")
	r.worker.FullEvery = time.Hour
	r.readyForReview(12)
	r.comment(12, "alice", "/threatgate approve")
	r.settle()
	r.clock.Advance(30 * time.Minute)
	r.reconciled() // first pass: every MR read, watermark set, full list done
	if e := r.escalation(12); e.State != bot.StateApproved {
		t.Fatalf("!12 is %s, want approved", e.State)
	}
	r.clock.Advance(10 * time.Minute)

	// The node's clock is an hour behind: the push is stamped before the
	// watermark less the overlap (and before the MR's last update).
	behind := r.clock.Now().Add(-time.Hour)
	r.gl.SetNow(func() time.Time { return behind })
	r.gl.PushCommit("shop/api", 12, sha2, gitlabtest.Diff{OldPath: "auth/a.go", NewPath: "auth/a.go", Diff: "@@ -1 +1 @@\n-a\n+secret\n"})
	r.gl.SetNow(r.clock.Now)
	mark, _, _ := r.db.Watermark(context.Background(), watermarkName("shop/api"))
	if m, _ := r.gl.MR("shop/api", 12); !m.UpdatedAt.Before(mark.Add(-ReconcileOverlap)) {
		t.Fatalf("the push's updated_at %s is not before the watermark %s less the overlap", m.UpdatedAt, mark)
	}

	deadline := r.clock.Now().Add(time.Hour)
	for e := r.escalation(12); e.HeadSHA != sha2; e = r.escalation(12) {
		if r.clock.Now().After(deadline) {
			t.Fatalf("an hour (FullEvery) on, !12 still has head %s: the skewed push is hidden", short(e.HeadSHA))
		}
		r.clock.Advance(10 * time.Minute)
		r.reconciled()
	}
	e := r.escalation(12)
	if e.State == bot.StateApproved {
		t.Errorf("!12 is still approved on the new head")
	}
	if st := r.lastStatus(sha2); st.State != "pending" {
		t.Errorf("gate on the new head: %+v, want pending", st)
	}
}

// TestReconcileKeepsTheWatermarkWhenAFetchFails: a changed MR that cannot
// be read this pass (GitLab answers 500) keeps the watermark where it
// was, so the next pass lists it again and catches it, however long the
// outage.
func TestReconcileKeepsTheWatermarkWhenAFetchFails(t *testing.T) {
	r := newRig(t, "status")
	r.openMRs(41, 42)
	r.gl.PushCommit("shop/api", 41, sha2)
	r.gl.FailPath("/merge_requests/41", 1, http.StatusInternalServerError)
	r.reconciled()
	if e := r.escalation(41); e.HeadSHA == sha2 {
		t.Fatal("the push was read despite the failure")
	}
	r.clock.Advance(3 * time.Hour) // far past watermark + overlap
	r.reconciled()
	if e := r.escalation(41); e.HeadSHA != sha2 {
		t.Errorf("!41 head %s after GitLab recovered, want the push", short(e.HeadSHA))
	}
}

// TestScanByUpdatedSkipsNothing: a list read by updated_at with more
// items sharing one updated_at than a page holds, and items updated while
// it is read, returns every item once, with its newest answer.
func TestScanByUpdatedSkipsNothing(t *testing.T) {
	type item struct {
		id  int64
		upd time.Time
	}
	t0 := time.Date(2026, 12, 7, 9, 0, 0, 0, time.UTC)
	var items []item
	for i := int64(1); i <= 350; i++ {
		items = append(items, item{i, t0.Add(time.Duration(i/200) * time.Second)}) // 199 share t0
	}
	calls := 0
	fetch := func(after time.Time, page int) ([]item, error) {
		calls++
		if calls == 2 {
			// Item 5 is updated while the list is read: it moves to the end.
			items[4].upd = t0.Add(time.Hour)
		}
		var sel []item
		for _, it := range items {
			if !it.upd.Before(after.Truncate(time.Second)) {
				sel = append(sel, it)
			}
		}
		// ascending updated_at, then id
		for i := 1; i < len(sel); i++ {
			for j := i; j > 0 && (sel[j].upd.Before(sel[j-1].upd) || sel[j].upd.Equal(sel[j-1].upd) && sel[j].id < sel[j-1].id); j-- {
				sel[j], sel[j-1] = sel[j-1], sel[j]
			}
		}
		start := (page - 1) * listPageSize
		if start >= len(sel) {
			return nil, nil
		}
		return sel[start:min(start+listPageSize, len(sel))], nil
	}
	got, err := scanByUpdated(context.Background(), time.Time{}, fetch, func(it item) (int64, time.Time) { return it.id, it.upd })
	if err != nil {
		t.Fatal(err)
	}
	seen := map[int64]time.Time{}
	for _, it := range got {
		if _, dup := seen[it.id]; dup {
			t.Errorf("item %d returned twice", it.id)
		}
		seen[it.id] = it.upd
	}
	if len(seen) != 350 {
		t.Errorf("%d items, want 350", len(seen))
	}
	if !seen[5].Equal(t0.Add(time.Hour)) {
		t.Errorf("item 5 has updated_at %s, want its newest answer", seen[5])
	}
}

// TestReconcileWatermarkFollowsGitLabsClock: threatgate's clock is an
// hour ahead of GitLab's. A new process, which has not heard GitLab's
// clock yet, must not keep its own time as the watermark (it would skip
// the next hour of changes): the watermark is GitLab's time, from the
// Date of its first answer, and a push made after the pass is found by
// the next one from the list of changed MRs alone.
func TestReconcileWatermarkFollowsGitLabsClock(t *testing.T) {
	r := newRig(t, "status")
	r.openMRs(51, 52)

	ahead := func() time.Time { return r.clock.Now().Add(time.Hour) }
	client, err := New(Config{BaseURL: r.gl.URL, Token: bot.Secret(r.gl.Token), StatusName: statusName, Gate: "status", Timeout: 5 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	client.now = ahead
	old := r.worker
	r.worker = &Worker{Inbox: r.db, Fetch: client, Engine: old.Engine, Store: r.db, Answer: true, Clock: clockFunc(ahead),
		FullEvery: 1000 * time.Hour, lastFull: map[string]time.Time{"shop/api": ahead()}} // no full list: the changed list alone
	r.disp = bot.NewDispatcher(r.db, client, nil, nil, r.clock, nil)

	r.reconciled()
	mark, _, _ := r.db.Watermark(context.Background(), watermarkName("shop/api"))
	if mark.After(r.clock.Now()) {
		t.Fatalf("watermark %s is ahead of GitLab's clock %s", mark, r.clock.Now())
	}
	r.clock.Advance(5 * time.Minute)
	r.gl.PushCommit("shop/api", 51, sha2)
	r.clock.Advance(5 * time.Minute)
	r.reconciled()
	if e := r.escalation(51); e.HeadSHA != sha2 {
		t.Errorf("!51 head %s, want the push (a watermark on threatgate's clock would have skipped it)", short(e.HeadSHA))
	}
}

// clockFunc is a bot.Clock reading f.
type clockFunc func() time.Time

func (f clockFunc) Now() time.Time { return f() }
