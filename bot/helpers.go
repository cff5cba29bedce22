package bot

import (
	"crypto/sha256"
	"crypto/subtle"
	"time"
)

// Small helpers every package needs the same way, written once.

// ShortSHA abbreviates a commit id to its first 8 characters, as people
// read them ("" stays "").
func ShortSHA(s string) string {
	if len(s) > 8 {
		return s[:8]
	}
	return s
}

// Backoff is the wait before attempt n+1 after n failed attempts (n >= 1):
// first doubling from first, at most max.
func Backoff(n int, first, max time.Duration) time.Duration {
	if n < 1 {
		n = 1
	}
	wait := first << min(n-1, 30)
	if wait > max || wait <= 0 {
		wait = max
	}
	return wait
}

// SecretEqual compares a presented secret with the expected one in
// constant time, hashing both first so that not even the length shows.
// An empty secret matches nothing.
func SecretEqual(got string, want Secret) bool {
	if got == "" || want == "" {
		return false
	}
	a := sha256.Sum256([]byte(got))
	b := sha256.Sum256([]byte(want.Reveal()))
	return subtle.ConstantTimeCompare(a[:], b[:]) == 1
}
