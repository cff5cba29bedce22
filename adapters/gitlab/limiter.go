package gitlab

import (
	"context"
	"net/http"
	"strconv"
	"sync"
	"time"
)

// DefaultMaxRequestsPerMinute is the request rate a Client keeps under
// when Config.MaxRequestsPerMinute is 0: well under GitLab.com's 2,000
// authenticated API requests per minute, leaving room for the people and
// other bots that share the account's budget.
const DefaultMaxRequestsPerMinute = 600

// Limiter spaces a Client's requests so that they stay under a rate, and
// slows down further when GitLab says the budget is running out: as
// RateLimit-Remaining nears zero the rest of the window's requests are
// spread until RateLimit-Reset, and after a 429 nothing is sent until
// Retry-After (or RateLimit-Reset) has passed.
//
// It is a GCRA token bucket: a burst of up to a tenth of a minute's
// requests goes out at once, then one request every minute/rate. Wait is
// called before each request is sent, Observe with each answer. Time
// comes from the clock and waiting from the sleep function given to
// NewLimiter, so tests run it without sleeping. Safe for concurrent use.
type Limiter struct {
	now   func() time.Time
	sleep func(ctx context.Context, d time.Duration) error

	mu       sync.Mutex
	interval time.Duration // minute / rate
	burst    int
	tat      time.Time // GCRA theoretical arrival time
	until    time.Time // nothing is sent before this (after a 429, or at zero remaining)
	slow     time.Duration
	slowTill time.Time // while now < slowTill, at least slow between requests
	last     time.Time // when the last request was let through
	waited   time.Duration
}

// NewLimiter returns a Limiter for perMinute requests a minute (0 or less:
// DefaultMaxRequestsPerMinute). now and sleep default to the wall clock
// and a timer that stops early when its context ends.
func NewLimiter(perMinute int, now func() time.Time, sleep func(context.Context, time.Duration) error) *Limiter {
	if perMinute <= 0 {
		perMinute = DefaultMaxRequestsPerMinute
	}
	if now == nil {
		now = time.Now
	}
	if sleep == nil {
		sleep = sleepCtx
	}
	return &Limiter{now: now, sleep: sleep, interval: time.Minute / time.Duration(perMinute), burst: max(1, perMinute/10)}
}

// sleepCtx waits d, or less when ctx ends first (then it returns ctx's
// error).
func sleepCtx(ctx context.Context, d time.Duration) error {
	if d <= 0 {
		return ctx.Err()
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-t.C:
		return nil
	}
}

// Wait blocks until the next request may be sent, or ctx ends (then it
// returns ctx's error and the slot it reserved is lost, which only makes
// later requests a little more cautious).
func (l *Limiter) Wait(ctx context.Context) error {
	if l == nil {
		return nil
	}
	d := l.reserve()
	if d <= 0 {
		return ctx.Err()
	}
	return l.sleep(ctx, d)
}

// reserve takes the next slot and returns how long to wait for it.
func (l *Limiter) reserve() time.Duration {
	l.mu.Lock()
	defer l.mu.Unlock()
	now := l.now()
	tat := l.tat
	if tat.Before(now) {
		tat = now
	}
	if tat.Before(l.until) {
		tat = l.until
	}
	tat = tat.Add(l.interval)
	start := tat.Add(-time.Duration(l.burst) * l.interval)
	if start.Before(now) {
		start = now
	}
	if start.Before(l.until) {
		start = l.until
	}
	if l.slow > 0 && start.Before(l.slowTill) && !l.last.IsZero() {
		if s := l.last.Add(l.slow); start.Before(s) {
			start = s
		}
	}
	l.tat = tat
	l.last = start
	d := start.Sub(now)
	if d > 0 {
		l.waited += d
	}
	return d
}

// Waited returns the total time Wait has asked callers to wait.
func (l *Limiter) Waited() time.Duration {
	if l == nil {
		return 0
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.waited
}

// lowRemaining is the RateLimit-Remaining below which the rest of the
// window's requests are spread evenly until RateLimit-Reset.
const lowRemaining = 0.1

// maxHold bounds any wait GitLab's headers ask for, so that a wrong clock
// or a broken header cannot stop threatgate for hours.
const maxHold = 10 * time.Minute

// Observe reads GitLab's rate-limit headers from an answer with status.
func (l *Limiter) Observe(status int, h http.Header) {
	if l == nil {
		return
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	now := l.now()
	reset, hasReset := resetTime(h, now)
	if status == http.StatusTooManyRequests {
		// The same reading of RateLimit-Reset and Retry-After as the
		// RateLimitError the caller gets.
		l.hold(now, retryAfter(h, now))
		return
	}
	rem, err := strconv.Atoi(h.Get("RateLimit-Remaining"))
	if err != nil || !hasReset || !reset.After(now) {
		return
	}
	limit, err := strconv.Atoi(h.Get("RateLimit-Limit"))
	if err != nil || limit <= 0 {
		limit = int(time.Minute / l.interval)
	}
	switch {
	case rem <= 0:
		l.hold(now, reset.Sub(now))
	case float64(rem) <= lowRemaining*float64(limit):
		// Spread what is left over what is left of the window.
		window := min(reset.Sub(now), maxHold)
		l.slow = window / time.Duration(rem+1)
		l.slowTill = now.Add(window)
	}
}

// hold stops every request until now+d (bounded by maxHold).
func (l *Limiter) hold(now time.Time, d time.Duration) {
	d = min(max(d, 0), maxHold)
	if u := now.Add(d); u.After(l.until) {
		l.until = u
	}
}

// resetTime reads RateLimit-Reset: the Unix time (in seconds) at which the
// window restarts. A small number is read as seconds from now, as some
// proxies send it.
func resetTime(h http.Header, now time.Time) (time.Time, bool) {
	n, err := strconv.ParseInt(h.Get("RateLimit-Reset"), 10, 64)
	if err != nil || n <= 0 {
		return time.Time{}, false
	}
	if n < 1_000_000_000 {
		return now.Add(time.Duration(n) * time.Second), true
	}
	return time.Unix(n, 0), true
}
