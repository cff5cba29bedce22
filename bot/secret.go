package bot

import "log/slog"

// Secret is a credential. It prints as [redacted] through fmt and slog, so
// a token that strays into a log line or an error does not leak; call
// Reveal where the value is really needed.
type Secret string

// String hides the value.
func (Secret) String() string { return "[redacted]" }

// GoString hides the value from %#v.
func (Secret) GoString() string { return "[redacted]" }

// LogValue hides the value from slog.
func (Secret) LogValue() slog.Value { return slog.StringValue("[redacted]") }

// Reveal returns the value.
func (s Secret) Reveal() string { return string(s) }
