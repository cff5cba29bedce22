package bot

import (
	"testing"
	"time"
)

func TestHelpers(t *testing.T) {
	for in, want := range map[string]string{"": "", "abc": "abc", "0123456789abcdef": "01234567"} {
		if got := ShortSHA(in); got != want {
			t.Errorf("ShortSHA(%q) = %q, want %q", in, got, want)
		}
	}
	for n, want := range map[int]time.Duration{0: time.Second, 1: time.Second, 2: 2 * time.Second, 4: 8 * time.Second, 9: time.Minute, 100: time.Minute} {
		if got := Backoff(n, time.Second, time.Minute); got != want {
			t.Errorf("Backoff(%d) = %s, want %s", n, got, want)
		}
	}
	if !SecretEqual("s3cret", Secret("s3cret")) || SecretEqual("s3cre", Secret("s3cret")) || SecretEqual("", Secret("")) || SecretEqual("x", "") {
		t.Error("SecretEqual")
	}
}
