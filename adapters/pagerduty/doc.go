// Package pagerduty pages on-call through the PagerDuty Events API v2
// (over github.com/PagerDuty/go-pagerduty). Client is a bot.Sink: the
// dispatcher hands it the page and resolve effects queued for the sink
// named SinkName.
//
// # Basics
//
// An EffectPage triggers an alert, an EffectResolve resolves it; other
// effects are nothing to do. The dedup key names the escalation
// ("threatgate/ESC-7"), never the effect: PagerDuty folds every trigger
// with one dedup key into one open incident, so a trigger repeated by a
// retry, or a second lapse of the same escalation while its incident is
// open, pages nobody twice; a resolve that arrives twice, or for an
// incident that is already resolved, changes nothing. That is what makes
// the dispatcher's at-least-once delivery safe here.
//
// Every error Deliver returns is a *bot.DeliveryError: a 5xx, a 408 or no
// answer at all is retried with the dispatcher's backoff; a 429 waits for
// its Retry-After when it names one; any other refusal (400 for an invalid
// event or routing key, 404 for a wrong events_url) is permanent and names
// what to fix. A PagerDuty outage therefore only delays the pages in the
// pagerduty queues; the outbox keeps them, and other sinks' queues go on.
//
// # Caveats
//
// The routing key is a bot.Secret: it is sent in each event's body and
// appears in no error and no log line, even when PagerDuty (or a proxy)
// echoes it back. go-pagerduty returns pagerduty.APIError for a refusal,
// discards the response headers and body, and flattens transport errors
// with %v; the client therefore notes what the transport saw (status,
// Retry-After, the start of the body, the transport error) on the request
// context and classifies from that. The library neither retries nor times
// out: the outbox owns retries and Config.Timeout bounds each call.
//
// This package imports bot, never the store or another adapter.
package pagerduty
