package bot

// Log keys: every package logs the same thing under the same key.
const (
	LogComponent    = "component"
	LogEscalationID = "escalation_id"
	LogEffectID     = "effect_id"
	LogInboxID      = "inbox_id"
	LogKind         = "kind"
	LogSink         = "sink"
	LogAttempt      = "attempt"
	LogRetryIn      = "retry_in"
	LogPanic        = "panic"
	LogStack        = "stack"
	LogErr          = "err"
	LogActor        = "actor"
	LogEvents       = "events"
	LogEffects      = "effects"
)
