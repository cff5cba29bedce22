package web

import (
	"container/list"
	"net"
	"net/http"
	"net/netip"
	"strconv"
	"strings"
	"sync"
	"time"
)

// Dashboard token guessing is throttled per client address. An address
// may get freeFailures tokens wrong; after that each attempt has to wait
// out a backoff that starts at firstBackoff and doubles with every further
// wrong token, up to maxBackoff. Attempts made before the wait is over are
// refused at once with 429 and Retry-After, before the token is looked at
// (nothing sleeps, no goroutine waits), and do not count. The right token
// forgets the address. An address is forgotten failureWindow after its
// last wrong token or the end of its wait, whichever is later, so an
// address that keeps guessing stays at maxBackoff: one guess per quarter
// of an hour.
//
// Every way the token is presented is throttled alike: the login form,
// "Authorization: Bearer" on the pages and /api, and RequireToken.
const (
	freeFailures  = 5
	failureWindow = 15 * time.Minute
	firstBackoff  = time.Minute
	maxBackoff    = 15 * time.Minute
	maxTracked    = 10000 // addresses remembered at once; the least recently seen goes first
)

// limiter counts wrong tokens per client address. It is safe for
// concurrent use; its memory is bounded by max entries.
type limiter struct {
	mu      sync.Mutex
	max     int
	entries map[string]*list.Element // key -> element holding *strikes
	lru     *list.List               // least recently touched first
}

// strikes is what the limiter knows of one address.
type strikes struct {
	key      string
	failures int       // wrong tokens since the address was last forgotten
	last     time.Time // the last wrong token
	until    time.Time // no attempt before then
	inflight int       // attempts begun and not yet ended
}

func newLimiter(max int) *limiter {
	return &limiter{max: max, entries: map[string]*list.Element{}, lru: list.New()}
}

// quiet reports whether the address's wrong tokens are old enough at now
// to be forgotten: failureWindow after the last one or the end of the
// wait, whichever is later.
func (st *strikes) quiet(now time.Time) bool {
	end := st.last
	if st.until.After(end) {
		end = st.until
	}
	return !now.Before(end.Add(failureWindow))
}

// expired reports whether the address can be forgotten at now.
func (st *strikes) expired(now time.Time) bool {
	return st.inflight == 0 && st.quiet(now)
}

// find returns the entry of key, dropping it when it has expired.
func (l *limiter) find(key string, now time.Time) *list.Element {
	el := l.entries[key]
	if el != nil && el.Value.(*strikes).expired(now) {
		l.remove(el)
		return nil
	}
	return el
}

func (l *limiter) remove(el *list.Element) {
	delete(l.entries, el.Value.(*strikes).key)
	l.lru.Remove(el)
}

// add tracks key, first forgetting expired addresses and, when max are
// still tracked, the least recently seen one.
func (l *limiter) add(key string, now time.Time) *list.Element {
	for front := l.lru.Front(); front != nil && front.Value.(*strikes).expired(now); front = l.lru.Front() {
		l.remove(front)
	}
	for l.lru.Len() > 0 && l.lru.Len() >= l.max {
		l.remove(l.lru.Front())
	}
	el := l.lru.PushBack(&strikes{key: key})
	l.entries[key] = el
	return el
}

// begin asks whether the address key may try a token at now. When it may
// not, wait says for how long it may not (at least a second). Each
// attempt begun must be ended by exactly one of fail, succeed or abandon.
//
// Once an address has given a wrong token, no more attempts from it run
// at once than it has wrong tokens left, and once it is throttled, one at
// a time: parallel requests get no more guesses than sequential ones. An
// address with no wrong token is not limited, so that a script sending
// the right token in parallel requests is not refused.
func (l *limiter) begin(key string, now time.Time) (wait time.Duration, ok bool) {
	l.mu.Lock()
	defer l.mu.Unlock()
	el := l.find(key, now)
	if el == nil {
		el = l.add(key, now)
	}
	st := el.Value.(*strikes)
	if now.Before(st.until) {
		return max(st.until.Sub(now), time.Second), false
	}
	if st.failures > 0 && st.inflight >= max(1, freeFailures-st.failures) {
		return time.Second, false
	}
	st.inflight++
	l.lru.MoveToBack(el)
	return 0, true
}

// fail records a wrong token from key at now. It returns how many wrong
// tokens the address has given, and how long it must now wait (0 while it
// has free attempts left).
func (l *limiter) fail(key string, now time.Time) (failures int, wait time.Duration) {
	l.mu.Lock()
	defer l.mu.Unlock()
	el := l.entries[key]
	if el == nil { // forgotten meanwhile (evicted): start again
		el = l.add(key, now)
	}
	st := el.Value.(*strikes)
	if st.inflight > 0 {
		st.inflight--
	}
	if st.failures > 0 && st.quiet(now) {
		st.failures, st.until = 0, time.Time{}
	}
	st.failures++
	st.last = now
	if n := st.failures - freeFailures; n >= 0 {
		wait = maxBackoff
		if n < 16 && firstBackoff<<n < maxBackoff {
			wait = firstBackoff << n
		}
		st.until = now.Add(wait)
	}
	l.lru.MoveToBack(el)
	return st.failures, wait
}

// succeed forgets key: the right token resets the address.
func (l *limiter) succeed(key string) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if el := l.entries[key]; el != nil {
		l.remove(el)
	}
}

// abandon ends an attempt in which no token was checked (a refused form).
func (l *limiter) abandon(key string) {
	l.mu.Lock()
	defer l.mu.Unlock()
	el := l.entries[key]
	if el == nil {
		return
	}
	st := el.Value.(*strikes)
	if st.inflight > 0 {
		st.inflight--
	}
	if st.failures == 0 && st.inflight == 0 {
		l.remove(el)
	}
}

// len returns how many addresses are tracked.
func (l *limiter) len() int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.lru.Len()
}

// clientKey returns the address r is throttled by: the TCP peer, or, when
// the peer is one of the trusted proxies, the last address in
// X-Forwarded-For that is not a trusted proxy (the one the outermost
// trusted proxy saw). X-Forwarded-For from anyone else is ignored: a
// client can write anything there. IPv6 addresses count by their /64,
// which one host can usually rotate through.
func clientKey(r *http.Request, trusted []netip.Prefix) string {
	peer, ok := parseHost(r.RemoteAddr)
	if !ok {
		return r.RemoteAddr
	}
	if isTrusted(peer, trusted) {
		hops := strings.Split(strings.Join(r.Header.Values("X-Forwarded-For"), ","), ",")
		for i := len(hops) - 1; i >= 0; i-- {
			a, ok := parseHost(strings.TrimSpace(hops[i]))
			if !ok {
				break // garbage: keep the last hop that made sense
			}
			peer = a
			if !isTrusted(a, trusted) {
				break
			}
		}
	}
	if peer.Is6() {
		p, _ := peer.Prefix(64)
		return p.String()
	}
	return peer.String()
}

// parseHost parses "1.2.3.4", "1.2.3.4:5", "[::1]:5" or "::1".
func parseHost(s string) (netip.Addr, bool) {
	if ap, err := netip.ParseAddrPort(s); err == nil {
		return ap.Addr().Unmap().WithZone(""), true
	}
	if h, _, err := net.SplitHostPort(s); err == nil {
		s = h
	}
	a, err := netip.ParseAddr(strings.Trim(s, "[]"))
	if err != nil {
		return netip.Addr{}, false
	}
	return a.Unmap().WithZone(""), true
}

func isTrusted(a netip.Addr, trusted []netip.Prefix) bool {
	for _, p := range trusted {
		if p.Contains(a) {
			return true
		}
	}
	return false
}

// retryAfter formats a wait for the Retry-After header: whole seconds,
// rounded up.
func retryAfter(wait time.Duration) string {
	return strconv.FormatInt(int64((wait+time.Second-1)/time.Second), 10)
}
