package store

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sync"
	"time"

	bolt "go.etcd.io/bbolt"
)

// maxInboxRound caps the items one inbox commit holds, so that a burst
// does not make one transaction (and the wait of its first caller)
// arbitrarily long; the rest go in the next round, right after.
const maxInboxRound = 1000

// inboxWrite is one Enqueue: its encoded record and, once its round has
// run, its answer.
type inboxWrite struct {
	key []byte // delivery id; nil for none
	at  time.Time
	rec []byte // encodeInbox

	// taken: handed to a round (guarded by inboxCommits.mu). From then on
	// the item is committed or not with its round, whatever the caller does.
	taken bool
	// committed: its write is durable (its round's transaction, or its
	// own retry, committed); set by the round's leader.
	committed bool

	// The answer, written by the round's leader before it sends false on
	// wake, read by the caller after it receives.
	dup bool
	err error

	// wake gets one value: true when this write is to lead the next round
	// (sent under inboxCommits.mu), false when its answer is set.
	wake chan bool
}

// inboxCommits is the inbox's group commit. Webhooks arriving
// concurrently are coalesced into one bbolt Update (one commit, one pair
// of fdatasyncs) with no fixed wait: when no inbox round is in flight, the
// first arrival leads a round at once; arrivals during a round queue, and
// the first of them leads the next round, right after, with everything
// queued by then (at most maxInboxRound). Unlike bbolt's Batch, no caller
// waits for a timer, and an item is written a second time only when its
// round failed, alone, in a new transaction. The leader is a caller, not
// a goroutine of the store: nothing runs while no one enqueues.
//
// Invariant (under mu): when no one leads, the queue is empty; the queue's
// head is the next leader.
type inboxCommits struct {
	mu      sync.Mutex
	queue   []*inboxWrite
	leading bool          // a round is in flight, or its leader is being woken
	idle    chan struct{} // closed when leading ends; nil while no one leads
	closed  bool          // Close was called: Enqueue refuses new items
	// last is how many items the previous round held; arrived is pinged
	// (without blocking) by every arrival while a leader gathers.
	last    int
	arrived chan struct{}
	// gatherMax, when set (tests), replaces maxGather.
	gatherMax time.Duration

	// hook, when set (tests), runs inside the transaction for every item
	// written; an error fails that item's write.
	hook func(key string) error
}

// enqueueInbox records w in a round of the group commit and returns its
// answer once the round's transaction committed. When ctx ends first: an
// item not yet handed to a round is withdrawn (nothing is written); one
// already handed to a round is committed or not with the round, and the
// caller gets an error saying it may have been recorded.
func (d *DB) enqueueInbox(ctx context.Context, w *inboxWrite) (dup bool, err error) {
	c := &d.inbox
	w.wake = make(chan bool, 1)
	c.mu.Lock()
	if c.closed {
		c.mu.Unlock()
		return false, bolt.ErrDatabaseNotOpen
	}
	c.queue = append(c.queue, w)
	if c.arrived != nil {
		select {
		case c.arrived <- struct{}{}:
		default:
		}
	}
	if !c.leading {
		c.leading = true
		c.idle = make(chan struct{})
		c.mu.Unlock()
		d.leadInboxRound(w)
		return w.dup, w.err
	}
	c.mu.Unlock()

	select {
	case lead := <-w.wake:
		if lead {
			d.leadInboxRound(w)
		}
		return w.dup, w.err
	case <-ctx.Done():
	}
	c.mu.Lock()
	select {
	case lead := <-w.wake:
		if !lead {
			// Answered meanwhile.
			c.mu.Unlock()
			return w.dup, w.err
		}
		// Chosen to lead but not started: withdraw, and pass the lead on.
		i := slices.Index(c.queue, w)
		c.queue = slices.Delete(c.queue, i, i+1)
		c.handOff()
		c.mu.Unlock()
		return false, ctx.Err()
	default:
	}
	if !w.taken {
		if i := slices.Index(c.queue, w); i >= 0 {
			c.queue = slices.Delete(c.queue, i, i+1)
		}
		c.mu.Unlock()
		return false, ctx.Err()
	}
	c.mu.Unlock()
	return false, fmt.Errorf("%w while its commit was under way: it may have been recorded (a redelivery will tell)", ctx.Err())
}

// leadInboxRound runs one round, led by w (the head of the queue): it
// takes what is queued, commits it, answers the round's other callers,
// then passes the lead to the next arrival (if any).
func (d *DB) leadInboxRound(w *inboxWrite) {
	c := &d.inbox
	c.gather()
	c.mu.Lock()
	n := min(len(c.queue), maxInboxRound)
	c.last = n
	round := c.queue[:n:n]
	c.queue = slices.Clone(c.queue[n:])
	for _, x := range round {
		x.taken = true
	}
	c.mu.Unlock()

	// Should the commit panic (bbolt panics on a corrupt page; net/http
	// recovers a handler's panic and goes on serving), bbolt rolls the
	// transaction back: the round's other callers are told, and the lead
	// still passes on, so that no caller waits for ever.
	finished := false
	defer func() {
		if !finished {
			for _, x := range round {
				if !x.committed { // one its own retry committed keeps its answer
					x.dup, x.err = false, errCommitPanicked
				}
			}
			d.endInboxRound(w, round)
		}
	}()
	d.commitInbox(round)
	finished = true
	d.endInboxRound(w, round)
}

// errCommitPanicked answers the callers of a round whose commit panicked
// (and was rolled back).
var errCommitPanicked = errors.New("the inbox commit panicked and was rolled back")

// endInboxRound answers the round's callers but its leader w, then passes
// the lead on. Answers go first: the goroutine woken last runs next on
// this P (Go's runnext), so the next leader does not wait behind the
// round's callers for a CPU while the disk idles.
func (d *DB) endInboxRound(w *inboxWrite, round []*inboxWrite) {
	for _, x := range round {
		if x != w {
			x.wake <- false
		}
	}
	c := &d.inbox
	c.mu.Lock()
	c.handOff()
	c.mu.Unlock()
}

// maxGather bounds how long a round's leader waits for the callers of the
// previous round to come back (gather).
const maxGather = time.Millisecond

// gather, run by a round's leader before it takes the queue, waits while
// fewer items are queued than the previous round held, at most
// maxGather: callers that send their next webhook as soon as they are
// answered (a burst, a redelivery queue) then share one commit instead of
// splitting into two halves that commit in turn, each paying the fsyncs.
// After a round of one (a lone webhook, a quiet server) it does not wait.
func (c *inboxCommits) gather() {
	c.mu.Lock()
	want := min(c.last, maxInboxRound)
	if want <= 1 || len(c.queue) >= want {
		c.mu.Unlock()
		return
	}
	arrived := make(chan struct{}, 1)
	c.arrived = arrived
	c.mu.Unlock()
	max := maxGather
	if c.gatherMax > 0 {
		max = c.gatherMax
	}
	timer := time.NewTimer(max)
	defer timer.Stop()
	for {
		select {
		case <-timer.C:
		case <-arrived:
			c.mu.Lock()
			enough := len(c.queue) >= want || c.closed
			c.mu.Unlock()
			if !enough {
				continue
			}
		}
		break
	}
	c.mu.Lock()
	c.arrived = nil
	c.mu.Unlock()
}

// handOff makes the queue's head lead the next round, or, with nothing
// queued, ends the leading. c.mu is held.
func (c *inboxCommits) handOff() {
	if len(c.queue) > 0 {
		c.queue[0].wake <- true
		return
	}
	c.leading = false
	close(c.idle)
	c.idle = nil
}

// close refuses new items and waits for the rounds of those queued or in
// flight to commit, so that no caller is left waiting (and none is lost).
func (c *inboxCommits) close() {
	c.mu.Lock()
	c.closed = true
	idle := c.idle
	c.mu.Unlock()
	if idle != nil {
		<-idle
	}
}

// commitInbox writes a round in one transaction. When it fails, each item
// is tried again on its own, as bbolt's Batch does, so that one bad item
// fails only its caller and every caller gets its own answer.
func (d *DB) commitInbox(round []*inboxWrite) {
	err := d.bolt.Update(func(tx *bolt.Tx) error {
		for _, w := range round {
			if err := d.putInboxWrite(tx, w); err != nil {
				return err
			}
		}
		return nil
	})
	if err == nil {
		for _, w := range round {
			w.committed = true
		}
		return
	}
	if len(round) == 1 {
		round[0].dup, round[0].err = false, err
		return
	}
	for _, w := range round {
		err := d.bolt.Update(func(tx *bolt.Tx) error { return d.putInboxWrite(tx, w) })
		if err != nil {
			w.dup, w.err = false, err
			continue
		}
		w.committed = true
	}
}

// putInboxWrite writes one item inside a round's transaction, and sets
// its answer afresh (a failed round's items are written again, alone): a
// duplicate when its delivery id was recorded and has not expired, in an
// earlier transaction or earlier in this one.
func (d *DB) putInboxWrite(tx *bolt.Tx, w *inboxWrite) error {
	w.dup, w.err = false, nil
	keys := tx.Bucket(bucketInboxKeys)
	if w.key != nil {
		if v := keys.Get(w.key); len(v) == 8 && w.at.Before(keyTime(v)) {
			w.dup = true
			return nil
		}
	}
	if h := d.inbox.hook; h != nil {
		if err := h(string(w.key)); err != nil {
			return err
		}
	}
	// Items and their due entries arrive in order: pages filled to the
	// brim are written once (fill.go).
	in, due := tx.Bucket(bucketInbox), tx.Bucket(bucketInboxDue)
	in.FillPercent, due.FillPercent = 1.0, 1.0
	id, err := in.NextSequence()
	if err != nil {
		return err
	}
	if err := putInboxRecord(tx, id, w.at, w.rec); err != nil {
		return err
	}
	if w.key != nil {
		return keys.Put(w.key, timeKey(w.at.Add(inboxKeyTTL)))
	}
	return nil
}
