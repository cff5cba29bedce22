package store

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"runtime"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	bolt "go.etcd.io/bbolt"
)

// errHold rolls back the transaction holdWriter holds (so that it adds no
// write transaction to WriteTxs).
var errHold = errors.New("held")

// holdWriter takes bbolt's writer lock and keeps it until release is
// called (at the latest at cleanup): an inbox round started meanwhile
// waits in its Update, and later arrivals queue behind it.
func holdWriter(tb testing.TB, db *DB) (release func()) {
	tb.Helper()
	held, done := make(chan struct{}), make(chan struct{})
	var once sync.Once
	release = func() { once.Do(func() { close(done) }) }
	tb.Cleanup(release)
	go db.bolt.Update(func(*bolt.Tx) error {
		close(held)
		<-done
		return errHold
	})
	waitFor(tb, held, "the writer lock")
	return release
}

// waitFor waits for ch to be closed or to yield, for at most 10s.
func waitFor[T any](tb testing.TB, ch <-chan T, what string) T {
	tb.Helper()
	select {
	case v := <-ch:
		return v
	case <-time.After(10 * time.Second):
		tb.Fatalf("waited 10s for %s", what)
		panic("unreachable")
	}
}

// waitInbox waits, for at most 10s, until cond holds of the group
// commit's state (read under its lock).
func waitInbox(tb testing.TB, db *DB, what string, cond func(c *inboxCommits) bool) {
	tb.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		db.inbox.mu.Lock()
		ok := cond(&db.inbox)
		db.inbox.mu.Unlock()
		if ok {
			return
		}
		if time.Now().After(deadline) {
			tb.Fatalf("waited 10s for %s", what)
		}
		runtime.Gosched()
	}
}

// inboxQueued waits until n items wait in the queue behind a round in flight.
func inboxQueued(tb testing.TB, db *DB, n int) {
	tb.Helper()
	waitInbox(tb, db, fmt.Sprintf("%d items queued", n), func(c *inboxCommits) bool {
		return c.leading && len(c.queue) == n
	})
}

type answer struct {
	key string
	dup bool
	err error
}

// enqueueAsync starts Enqueue of key and returns where its answer comes.
func enqueueAsync(ctx context.Context, db *DB, key string, at time.Time) <-chan answer {
	ch := make(chan answer, 1)
	go func() {
		defer func() {
			// A panic in the commit (TestInboxCommitPanics) is the
			// leader's answer.
			if p := recover(); p != nil {
				ch <- answer{key, false, fmt.Errorf("panic: %v", p)}
			}
		}()
		dup, err := db.Enqueue(ctx, key, "k", []byte("body of "+key), at)
		ch <- answer{key, dup, err}
	}()
	return ch
}

// keysOnDisk returns how many inbox items hold each delivery id.
func keysOnDisk(tb testing.TB, db *DB) map[string]int {
	tb.Helper()
	items, err := db.InboxDue(ctx, time.Date(2100, 1, 1, 0, 0, 0, 0, time.UTC), 0)
	if err != nil {
		tb.Fatal(err)
	}
	if got := inboxIndex(tb, db); len(got) != len(items) {
		tb.Errorf("inbox_due has %d entries for %d items", len(got), len(items))
	}
	n := map[string]int{}
	for _, it := range items {
		n[it.Key]++
		if string(it.Body) != "body of "+it.Key {
			tb.Errorf("item %d (%s) body = %q", it.ID, it.Key, it.Body)
		}
	}
	return n
}

// TestInboxGroupCommitConcurrent: 64 goroutines enqueue 100 items each,
// every delivery id twice (from two goroutines at about the same time, so
// in one round or two): each id is recorded once and reported once as a
// duplicate; the calls share transactions; after a reopen every id is
// there once and a redelivery is a duplicate.
func TestInboxGroupCommitConcurrent(t *testing.T) {
	dir := t.TempDir()
	db := mustOpenDir(t, dir)
	const goroutines, each = 64, 100
	const ids = goroutines * each / 2
	before := db.WriteTxs()
	answers := make(chan answer, goroutines*each)
	var wg sync.WaitGroup
	for g := range goroutines {
		wg.Go(func() {
			for j := range each {
				key := fmt.Sprintf("k%d", (g*each+j)%ids)
				dup, err := db.Enqueue(ctx, key, "k", []byte("body of "+key), t0)
				answers <- answer{key, dup, err}
			}
		})
	}
	wg.Wait()
	close(answers)
	txs := db.WriteTxs() - before
	recorded, dups := map[string]int{}, map[string]int{}
	for a := range answers {
		if a.err != nil {
			t.Fatalf("Enqueue(%s): %v", a.key, a.err)
		}
		if a.dup {
			dups[a.key]++
		} else {
			recorded[a.key]++
		}
	}
	for i := range ids {
		key := fmt.Sprintf("k%d", i)
		if recorded[key] != 1 || dups[key] != 1 {
			t.Errorf("%s: recorded %d times, duplicate %d times; want 1, 1", key, recorded[key], dups[key])
		}
	}
	t.Logf("%d calls in %d write transactions", goroutines*each, txs)
	if txs >= goroutines*each {
		t.Errorf("%d calls took %d write transactions: nothing was coalesced", goroutines*each, txs)
	}

	mustClose(t, db)
	db = mustOpenDir(t, dir)
	onDisk := keysOnDisk(t, db)
	if len(onDisk) != ids {
		t.Errorf("%d delivery ids on disk, want %d", len(onDisk), ids)
	}
	for key, n := range onDisk {
		if n != 1 {
			t.Errorf("%s is on disk %d times", key, n)
		}
	}
	for g := range goroutines {
		wg.Go(func() {
			for j := range each / 2 {
				key := fmt.Sprintf("k%d", g*each/2+j)
				if dup, err := db.Enqueue(ctx, key, "k", nil, t0.Add(time.Hour)); err != nil || !dup {
					t.Errorf("redelivery of %s after reopen: dup %v, err %v; want a duplicate", key, dup, err)
				}
			}
		})
	}
	wg.Wait()
}

// TestInboxGroupCommitDuplicateInOneRound: a delivery id twice in the same
// round is recorded once; the second and third are duplicates, exactly as
// across rounds. The four calls queued behind the first share one
// transaction.
func TestInboxGroupCommitDuplicateInOneRound(t *testing.T) {
	db := mustOpen(t)
	before := db.WriteTxs()
	release := holdWriter(t, db)
	first := enqueueAsync(ctx, db, "a", t0)
	waitInbox(t, db, "the first round", func(c *inboxCommits) bool { return c.leading && len(c.queue) == 0 })
	var rest []<-chan answer
	for i, key := range []string{"x", "x", "y", "x"} {
		rest = append(rest, enqueueAsync(ctx, db, key, t0.Add(time.Duration(i)*time.Second)))
		inboxQueued(t, db, i+1)
	}
	release()
	if a := waitFor(t, first, "a's answer"); a.err != nil || a.dup {
		t.Errorf("a: dup %v, err %v", a.dup, a.err)
	}
	for i, want := range []bool{false, true, false, true} {
		a := waitFor(t, rest[i], "an answer")
		if a.err != nil || a.dup != want {
			t.Errorf("call %d (%s): dup %v, err %v; want dup %v", i+2, a.key, a.dup, a.err, want)
		}
	}
	if n := db.WriteTxs() - before; n != 2 {
		t.Errorf("%d write transactions, want 2 (a; then x, x, y, x)", n)
	}
	if got := keysOnDisk(t, db); got["x"] != 1 || got["y"] != 1 || got["a"] != 1 || len(got) != 3 {
		t.Errorf("on disk: %v, want a, x, y once each", got)
	}
}

// TestInboxGroupCommitOneItemFails: one item of a round fails inside the
// transaction; the round is tried again one item at a time, so only its
// caller gets the error, the others are recorded once each (none twice,
// no index entry twice), and the ids stay in order without gaps.
func TestInboxGroupCommitOneItemFails(t *testing.T) {
	dir := t.TempDir()
	db := mustOpenDir(t, dir)
	errBad := errors.New("bad item")
	var mu sync.Mutex
	tries := 0
	db.inbox.hook = func(key string) error {
		if key != "bad" {
			return nil
		}
		mu.Lock()
		defer mu.Unlock()
		tries++
		return errBad
	}
	release := holdWriter(t, db)
	first := enqueueAsync(ctx, db, "a", t0)
	waitInbox(t, db, "the first round", func(c *inboxCommits) bool { return c.leading && len(c.queue) == 0 })
	var rest []<-chan answer
	for i, key := range []string{"b", "bad", "c"} {
		rest = append(rest, enqueueAsync(ctx, db, key, t0))
		inboxQueued(t, db, i+1)
	}
	release()
	if a := waitFor(t, first, "a's answer"); a.err != nil {
		t.Errorf("a: %v", a.err)
	}
	for _, ch := range rest {
		a := waitFor(t, ch, "an answer")
		switch {
		case a.key == "bad" && !errors.Is(a.err, errBad):
			t.Errorf("bad: err = %v, want the item's own error", a.err)
		case a.key != "bad" && (a.err != nil || a.dup):
			t.Errorf("%s: dup %v, err %v; want recorded", a.key, a.dup, a.err)
		}
	}
	if tries != 2 {
		t.Errorf("the bad item was tried %d times, want 2 (in the round, then alone)", tries)
	}
	mustClose(t, db)
	db = mustOpenDir(t, dir)
	items, err := db.InboxDue(ctx, t0, 0)
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, it := range items {
		got = append(got, fmt.Sprintf("%d:%s", it.ID, it.Key))
	}
	if want := []string{"1:a", "2:b", "3:c"}; !slices.Equal(got, want) {
		t.Errorf("items = %v, want %v", got, want)
	}
	if ids := inboxIndex(t, db); !slices.Equal(ids, []uint64{1, 2, 3}) {
		t.Errorf("index = %v, want [1 2 3]", ids)
	}
	// The failed one was not recorded: its redelivery is not a duplicate.
	if dup, err := db.Enqueue(ctx, "bad", "k", []byte("body of bad"), t0); err != nil || dup {
		t.Errorf("redelivery of the failed item: dup %v, err %v; want recorded", dup, err)
	}
}

// TestInboxCloseWhileWaiting: Close with a round in flight and calls
// queued behind it waits for them (it does not hang, and loses none);
// a call after Close fails at once. Every answer matches the file.
func TestInboxCloseWhileWaiting(t *testing.T) {
	dir := t.TempDir()
	db := mustOpenDir(t, dir)
	release := holdWriter(t, db)
	var answers []<-chan answer
	answers = append(answers, enqueueAsync(ctx, db, "k0", t0))
	waitInbox(t, db, "the first round", func(c *inboxCommits) bool { return c.leading && len(c.queue) == 0 })
	for i := 1; i <= 20; i++ {
		answers = append(answers, enqueueAsync(ctx, db, fmt.Sprintf("k%d", i), t0))
	}
	inboxQueued(t, db, 20)
	closed := make(chan error, 1)
	go func() { closed <- db.Close() }()
	waitInbox(t, db, "Close to start", func(c *inboxCommits) bool { return c.closed })
	if _, err := db.Enqueue(ctx, "late", "k", []byte("body of late"), t0); !errors.Is(err, bolt.ErrDatabaseNotOpen) {
		t.Errorf("Enqueue after Close: err = %v, want ErrDatabaseNotOpen", err)
	}
	release()
	if err := waitFor(t, closed, "Close"); err != nil {
		t.Fatalf("Close: %v", err)
	}
	got := map[string]bool{}
	for _, ch := range answers {
		a := waitFor(t, ch, "an answer")
		got[a.key] = a.err == nil && !a.dup
		if a.err != nil {
			t.Logf("%s: %v", a.key, a.err)
		}
	}
	db = mustOpenDir(t, dir)
	onDisk := keysOnDisk(t, db)
	for key, ok := range got {
		if ok && onDisk[key] != 1 || !ok && onDisk[key] != 0 {
			t.Errorf("%s: answered recorded=%v, on disk %d times", key, ok, onDisk[key])
		}
	}
	if len(onDisk) != 21 || onDisk["late"] != 0 {
		t.Errorf("on disk: %v, want k0..k20 and not late", onDisk)
	}
}

// TestInboxCancelWhileWaiting: a caller whose context ends while its item
// waits in the queue gets the context's error and nothing is written; one
// whose item is already in a round's transaction gets an error too (not
// "recorded"), and the item is committed with its round, so that a
// redelivery is a duplicate.
func TestInboxCancelWhileWaiting(t *testing.T) {
	dir := t.TempDir()
	db := mustOpenDir(t, dir)
	inHook, releaseHook := make(chan struct{}), make(chan struct{})
	db.inbox.hook = func(key string) error {
		if key == "d" {
			close(inHook)
			<-releaseHook
		}
		return nil
	}
	release := holdWriter(t, db)
	a := enqueueAsync(ctx, db, "a", t0)
	waitInbox(t, db, "the first round", func(c *inboxCommits) bool { return c.leading && len(c.queue) == 0 })

	// b waits in the queue, then gives up: withdrawn.
	ctxB, cancelB := context.WithCancel(ctx)
	b := enqueueAsync(ctxB, db, "b", t0)
	inboxQueued(t, db, 1)
	cancelB()
	if ans := waitFor(t, b, "b's answer"); !errors.Is(ans.err, context.Canceled) || strings.Contains(ans.err.Error(), "may have been recorded") {
		t.Errorf("b (cancelled in the queue): err = %v, want context.Canceled, not written", ans.err)
	}
	inboxQueued(t, db, 0)

	// c leads the next round with d; d gives up inside the transaction.
	c := enqueueAsync(ctx, db, "c", t0)
	inboxQueued(t, db, 1)
	ctxD, cancelD := context.WithCancel(ctx)
	d := enqueueAsync(ctxD, db, "d", t0)
	inboxQueued(t, db, 2)
	release()
	waitFor(t, inHook, "d's round")
	cancelD()
	if ans := waitFor(t, d, "d's answer"); !errors.Is(ans.err, context.Canceled) || !strings.Contains(ans.err.Error(), "may have been recorded") {
		t.Errorf("d (cancelled in its round): err = %v, want context.Canceled, may have been recorded", ans.err)
	}
	close(releaseHook)
	for _, ch := range []<-chan answer{a, c} {
		if ans := waitFor(t, ch, "an answer"); ans.err != nil || ans.dup {
			t.Errorf("%s: dup %v, err %v; want recorded", ans.key, ans.dup, ans.err)
		}
	}

	mustClose(t, db)
	db = mustOpenDir(t, dir)
	if got := keysOnDisk(t, db); len(got) != 3 || got["a"] != 1 || got["c"] != 1 || got["d"] != 1 {
		t.Errorf("on disk: %v, want a, c, d once each (b withdrawn)", got)
	}
	if dup, err := db.Enqueue(ctx, "d", "k", nil, t0); err != nil || !dup {
		t.Errorf("redelivery of d: dup %v, err %v; want a duplicate", dup, err)
	}
	if dup, err := db.Enqueue(ctx, "b", "k", []byte("body of b"), t0); err != nil || dup {
		t.Errorf("redelivery of b: dup %v, err %v; want recorded", dup, err)
	}
}

// TestInboxCancelStorm: many callers whose contexts end at arbitrary
// moments (in the queue, as the next leader, inside a round): none hangs,
// none is written twice, every "recorded" is on disk, every plain
// cancellation is not.
func TestInboxCancelStorm(t *testing.T) {
	dir := t.TempDir()
	db := mustOpenDir(t, dir)
	const goroutines, each = 32, 50
	answers := make(chan answer, goroutines*each)
	var wg sync.WaitGroup
	for g := range goroutines {
		wg.Go(func() {
			for j := range each {
				key := fmt.Sprintf("g%d-%d", g, j)
				ctx, cancel := context.WithCancel(ctx)
				if j%2 == 1 {
					// Cancelled by another goroutine, at whatever point
					// this call has reached.
					go func() {
						for range j % 5 {
							runtime.Gosched()
						}
						cancel()
					}()
				}
				dup, err := db.Enqueue(ctx, key, "k", []byte("body of "+key), t0)
				cancel()
				answers <- answer{key, dup, err}
			}
		})
	}
	wg.Wait()
	close(answers)
	mustClose(t, db)
	db = mustOpenDir(t, dir)
	onDisk := keysOnDisk(t, db)
	var recorded, withdrawn, unsure int
	for a := range answers {
		switch {
		case a.err == nil && !a.dup:
			recorded++
			if onDisk[a.key] != 1 {
				t.Errorf("%s answered recorded, on disk %d times", a.key, onDisk[a.key])
			}
		case a.err == nil:
			t.Errorf("%s answered duplicate, but every id is new", a.key)
		case !errors.Is(a.err, context.Canceled):
			t.Errorf("%s: %v", a.key, a.err)
		case strings.Contains(a.err.Error(), "may have been recorded"):
			unsure++
			if onDisk[a.key] > 1 {
				t.Errorf("%s on disk %d times", a.key, onDisk[a.key])
			}
		default:
			withdrawn++
			if onDisk[a.key] != 0 {
				t.Errorf("%s answered withdrawn (%v), on disk %d times", a.key, a.err, onDisk[a.key])
			}
		}
	}
	t.Logf("recorded %d, withdrawn %d, cancelled in a round %d", recorded, withdrawn, unsure)
	if recorded < goroutines*each/2 {
		t.Errorf("only %d recorded of the %d never cancelled", recorded, goroutines*each/2)
	}
}

// TestInboxCancelWhenChosenToLead: a caller chosen to lead the next round
// whose context ended before it started withdraws its item and passes the
// lead on, so that the items queued behind it are still committed. The
// test plays the round in flight itself: with both the lead and the
// cancellation ready, the caller either leads (and answers recorded) or
// withdraws (and answers the context's error); it tries until it has seen
// a withdrawal.
func TestInboxCancelWhenChosenToLead(t *testing.T) {
	dir := t.TempDir()
	db := mustOpenDir(t, dir)
	c := &db.inbox
	want := map[string]int{}
	withdrawn, led := 0, 0
	for i := 0; withdrawn == 0; i++ {
		if i == 200 {
			t.Fatalf("no withdrawal by the chosen leader in 200 tries (%d led)", led)
		}
		c.mu.Lock()
		c.leading, c.idle = true, make(chan struct{})
		c.mu.Unlock()
		ctxC, cancelC := context.WithCancel(ctx)
		keyC, keyD := fmt.Sprintf("c%d", i), fmt.Sprintf("d%d", i)
		ansC := enqueueAsync(ctxC, db, keyC, t0)
		inboxQueued(t, db, 1)
		ansD := enqueueAsync(ctx, db, keyD, t0)
		inboxQueued(t, db, 2)
		c.mu.Lock()
		cancelC()
		c.handOff() // the round in flight ends: c leads the next
		c.mu.Unlock()
		a := waitFor(t, ansC, "c's answer")
		switch {
		case a.err == nil && !a.dup:
			led++
			want[keyC] = 1
		case errors.Is(a.err, context.Canceled) && !strings.Contains(a.err.Error(), "may have been recorded"):
			withdrawn++
		default:
			t.Fatalf("%s: dup %v, err %v; want recorded or withdrawn", keyC, a.dup, a.err)
		}
		if a := waitFor(t, ansD, "d's answer"); a.err != nil || a.dup {
			t.Fatalf("%s: dup %v, err %v; want recorded", keyD, a.dup, a.err)
		}
		want[keyD] = 1
		waitInbox(t, db, "the rounds to end", func(c *inboxCommits) bool { return !c.leading })
	}
	t.Logf("%d withdrawn, %d led", withdrawn, led)
	mustClose(t, db)
	db = mustOpenDir(t, dir)
	if got := keysOnDisk(t, db); !maps.Equal(got, want) {
		t.Errorf("on disk %v, want %v", got, want)
	}
}

// TestInboxCommitPanics: when a round's commit panics in its leader, the
// transaction is rolled back, the round's other callers get an error, and
// the next rounds go on (nothing waits for ever).
func TestInboxCommitPanics(t *testing.T) {
	dir := t.TempDir()
	db := mustOpenDir(t, dir)
	db.inbox.hook = func(key string) error {
		if key == "boom" {
			panic("corrupt page")
		}
		return nil
	}
	release := holdWriter(t, db)
	a := enqueueAsync(ctx, db, "a", t0)
	waitInbox(t, db, "the first round", func(c *inboxCommits) bool { return c.leading && len(c.queue) == 0 })
	boom := enqueueAsync(ctx, db, "boom", t0) // leads the next round
	inboxQueued(t, db, 1)
	c := enqueueAsync(ctx, db, "c", t0)
	inboxQueued(t, db, 2)
	release()
	if ans := waitFor(t, a, "a's answer"); ans.err != nil {
		t.Errorf("a: %v", ans.err)
	}
	if ans := waitFor(t, boom, "boom's answer"); ans.err == nil || !strings.Contains(ans.err.Error(), "panic: corrupt page") {
		t.Errorf("boom: dup %v, err %v; want the panic", ans.dup, ans.err)
	}
	if ans := waitFor(t, c, "c's answer"); !errors.Is(ans.err, errCommitPanicked) {
		t.Errorf("c: dup %v, err %v; want errCommitPanicked", ans.dup, ans.err)
	}
	if ans := waitFor(t, enqueueAsync(ctx, db, "d", t0), "d's answer"); ans.err != nil || ans.dup {
		t.Errorf("d after the panic: dup %v, err %v; want recorded", ans.dup, ans.err)
	}
	mustClose(t, db)
	db = mustOpenDir(t, dir)
	if got := keysOnDisk(t, db); len(got) != 2 || got["a"] != 1 || got["d"] != 1 {
		t.Errorf("on disk: %v, want a and d (the panicked round rolled back)", got)
	}
}

// TestInboxGatherWaitsForThePreviousRoundsSize: after a round of three,
// the next leader takes the queue only once three are queued (the timer
// is an hour here, so only arrivals can end the wait); after a round of
// one it does not wait at all. Every item is recorded once.
func TestInboxGatherWaitsForThePreviousRoundsSize(t *testing.T) {
	db := mustOpen(t)
	ctx := context.Background()
	db.inbox.gatherMax = time.Hour
	db.inbox.mu.Lock()
	db.inbox.last = 3
	db.inbox.mu.Unlock()

	res := make(chan error, 3)
	enqueue := func(key string) {
		_, err := db.Enqueue(ctx, key, "k", []byte(`{}`), t0)
		res <- err
	}
	go enqueue("a")
	waitInbox(t, db, "the leader to gather", func(c *inboxCommits) bool { return c.arrived != nil })
	go enqueue("b")
	waitInbox(t, db, "b to queue", func(c *inboxCommits) bool { return len(c.queue) == 2 })
	select {
	case err := <-res:
		t.Fatalf("the leader committed with 2 of 3 queued (%v)", err)
	default:
	}
	go enqueue("c")
	for range 3 {
		select {
		case err := <-res:
			if err != nil {
				t.Fatal(err)
			}
		case <-time.After(10 * time.Second):
			t.Fatal("the round of three never committed")
		}
	}
	db.inbox.mu.Lock()
	last := db.inbox.last
	db.inbox.mu.Unlock()
	if last != 3 {
		t.Fatalf("the round held %d, want 3", last)
	}

	// A round of one: the next lone webhook commits at once.
	db.inbox.mu.Lock()
	db.inbox.last = 1
	db.inbox.mu.Unlock()
	go enqueue("d")
	select {
	case err := <-res:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("a lone webhook after a round of one waited for the gather")
	}
	if n, err := db.InboxDepth(ctx); err != nil || n != 4 {
		t.Errorf("InboxDepth = %d, %v; want 4", n, err)
	}
}
