package web

import (
	"fmt"
	"net/http/httptest"
	"net/netip"
	"testing"
	"time"
)

var t0 = time.Date(2026, 10, 5, 9, 0, 0, 0, time.UTC)

func TestLimiterBackoffAndForgetting(t *testing.T) {
	l := newLimiter(100)
	now := t0
	attempt := func(want bool) {
		t.Helper()
		if _, ok := l.begin("a", now); ok != want {
			t.Fatalf("begin at +%s = %v, want %v", now.Sub(t0), ok, want)
		}
	}
	for i := 1; i <= 4; i++ {
		attempt(true)
		if n, wait := l.fail("a", now); n != i || wait != 0 {
			t.Fatalf("failure %d: fail = %d, %s; want %d, 0", i, n, wait, i)
		}
	}
	var waits []time.Duration
	for i := 0; i < 7; i++ {
		attempt(true)
		_, wait := l.fail("a", now)
		waits = append(waits, wait)
		now = now.Add(wait - time.Second)
		attempt(false)
		now = now.Add(time.Second)
	}
	want := fmt.Sprint([]time.Duration{time.Minute, 2 * time.Minute, 4 * time.Minute, 8 * time.Minute, 15 * time.Minute, 15 * time.Minute, 15 * time.Minute})
	if fmt.Sprint(waits) != want {
		t.Errorf("waits = %v, want %v", waits, want)
	}
	// Waiting out the block and guessing at once keeps the address at the
	// cap; only a quiet quarter of an hour after the wait forgets it.
	now = now.Add(failureWindow - time.Second)
	attempt(true)
	if n, _ := l.fail("a", now); n != 12 {
		t.Errorf("failures = %d, want 12 (not forgotten yet)", n)
	}
	now = now.Add(maxBackoff + failureWindow)
	attempt(true)
	if n, wait := l.fail("a", now); n != 1 || wait != 0 {
		t.Errorf("after a quiet window: fail = %d, %s; want 1, 0", n, wait)
	}
	// The right token forgets the address at once.
	for i := 0; i < 6; i++ {
		l.begin("b", now)
		l.fail("b", now)
	}
	l.succeed("b")
	attempt2 := func() bool { _, ok := l.begin("b", now); return ok }
	if !attempt2() {
		t.Error("an address that gave the right token is still throttled")
	}
}

func TestLimiterConcurrentAttempts(t *testing.T) {
	l := newLimiter(100)
	// An address with no wrong token is not limited: parallel requests
	// with the right token all go through.
	for i := 0; i < 20; i++ {
		if _, ok := l.begin("a", t0); !ok {
			t.Fatalf("attempt %d of a fresh address refused", i+1)
		}
	}
	for i := 0; i < 20; i++ {
		l.abandon("a")
	}
	// After a wrong token, no more attempts run at once than it has
	// wrong tokens left: parallel requests get no more guesses than
	// sequential ones.
	l.begin("a", t0)
	l.fail("a", t0)
	for i := 0; i < 4; i++ {
		if _, ok := l.begin("a", t0); !ok {
			t.Fatalf("attempt %d with 4 left refused", i+1)
		}
	}
	if wait, ok := l.begin("a", t0); ok || wait != time.Second {
		t.Errorf("fifth concurrent attempt with 4 left: %v, %s; want refused for 1s", ok, wait)
	}
	for i := 0; i < 3; i++ {
		l.fail("a", t0)
	}
	l.abandon("a")
	// Four wrong: one left, so one at a time.
	if _, ok := l.begin("a", t0); !ok {
		t.Fatal("the fifth attempt was refused")
	}
	if _, ok := l.begin("a", t0); ok {
		t.Error("two attempts ran at once with one guess left")
	}
	l.abandon("a")
	// A refused form neither counts nor keeps an untouched address.
	l.begin("c", t0)
	l.abandon("c")
	if _, ok := l.entries["c"]; ok {
		t.Error("an abandoned attempt left its address tracked")
	}
}

func TestLimiterMemoryIsBounded(t *testing.T) {
	l := newLimiter(50)
	now := t0
	for i := 0; i < 1000; i++ {
		key := fmt.Sprintf("198.51.%d.%d", i/256, i%256)
		l.begin(key, now)
		l.fail(key, now)
		if n := l.len(); n > 50 || len(l.entries) != n {
			t.Fatalf("after %d addresses: %d tracked (%d in the map), want at most 50", i+1, n, len(l.entries))
		}
	}
	// Expired addresses are dropped when a new one comes.
	now = now.Add(failureWindow)
	l.begin("203.0.113.1", now)
	l.fail("203.0.113.1", now)
	if n := l.len(); n != 1 {
		t.Errorf("after the window: %d tracked, want 1", n)
	}
}

func TestClientKey(t *testing.T) {
	proxies := []netip.Prefix{netip.MustParsePrefix("10.0.0.0/8"), netip.MustParsePrefix("::1/128")}
	for _, tt := range []struct {
		remote, xff string
		trusted     []netip.Prefix
		want        string
	}{
		{"192.0.2.1:1234", "", nil, "192.0.2.1"},
		{"192.0.2.1:1234", "203.0.113.5", nil, "192.0.2.1"},     // untrusted peer: header ignored
		{"192.0.2.1:1234", "203.0.113.5", proxies, "192.0.2.1"}, // still not a proxy
		{"10.0.0.2:80", "203.0.113.5", proxies, "203.0.113.5"},
		{"10.0.0.2:80", "6.6.6.6, 203.0.113.5", proxies, "203.0.113.5"},    // the client's own entries are skipped
		{"10.0.0.2:80", "203.0.113.5, 10.9.9.9", proxies, "203.0.113.5"},   // a chain of trusted proxies
		{"10.0.0.2:80", "garbage, 10.9.9.9", proxies, "10.9.9.9"},          // nonsense: the last hop that made sense
		{"10.0.0.2:80", "", proxies, "10.0.0.2"},                           // no header: the proxy itself
		{"[2001:db8:1:2:3:4:5:6]:443", "", nil, "2001:db8:1:2::/64"},       // IPv6 by /64
		{"[::ffff:192.0.2.9]:443", "", nil, "192.0.2.9"},                   // IPv4-mapped
		{"[::1]:443", "2001:db8:aa:bb::1", proxies, "2001:db8:aa:bb::/64"}, // from a trusted IPv6 proxy
		{"[fe80::1%eth0]:443", "", nil, "fe80::/64"},                       // zone dropped
		{"not an address", "", nil, "not an address"},                      // kept as is
	} {
		r := httptest.NewRequest("GET", "/", nil)
		r.RemoteAddr = tt.remote
		if tt.xff != "" {
			r.Header.Set("X-Forwarded-For", tt.xff)
		}
		if got := clientKey(r, tt.trusted); got != tt.want {
			t.Errorf("clientKey(%q, XFF %q) = %q, want %q", tt.remote, tt.xff, got, tt.want)
		}
	}
}
