package main

import (
	"context"
	"slices"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"

	"github.com/threatgate/threatgate/adapters/gitlab"
	"github.com/threatgate/threatgate/bot"
)

// metrics are threatgate's Prometheus series, on a registry of their own.
//
// Every series is an aggregate: labels say what kind of thing happened
// (source, result, kind, tier, state), never which escalation, MR or
// person it was, so the number of series does not grow with use and
// /metrics tells a reader nothing about any one review. Label values that
// come from other packages are checked against the values known here
// (label); anything else is counted as "other".
type metrics struct {
	reg        *prometheus.Registry
	webhooks   *prometheus.CounterVec
	processing *prometheus.HistogramVec
	deliveries *prometheus.CounterVec
	failures   *prometheus.CounterVec
	gitlab     *prometheus.CounterVec
}

// storeStats is what the scrape-time collector reads.
type storeStats interface {
	// Aggregates are the counters kept at commit time: one read, not a
	// scan of every escalation.
	Aggregates(ctx context.Context) (bot.Aggregates, error)
	OutboxDepth(ctx context.Context) (int, error)
	InboxDepth(ctx context.Context) (int, error)
	DeadLetterCount(ctx context.Context) (int, error)
}

func newMetrics(st storeStats) *metrics {
	reg := prometheus.NewRegistry()
	m := &metrics{
		reg: reg,
		webhooks: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "threatgate_webhook_requests_total", Help: "Webhook requests by how they ended (accepted, duplicate, ignored, unauthorized, too_large, bad_request, method_not_allowed, error, other).",
		}, []string{"source", "result"}),
		processing: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name: "threatgate_webhook_processing_seconds", Help: "Time from a webhook's arrival to its processing (fetch, decide, commit).",
			Buckets: prometheus.ExponentialBuckets(0.005, 2, 14),
		}, []string{"kind", "result"}),
		deliveries: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "threatgate_outbox_deliveries_total", Help: "Effects delivered from the outbox, by kind.",
		}, []string{"kind"}),
		failures: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "threatgate_outbox_delivery_failures_total", Help: "Failed delivery attempts of outbox effects, by kind.",
		}, []string{"kind"}),
		gitlab: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "threatgate_gitlab_requests_total", Help: "Requests to GitLab's API by method, endpoint (the route template, such as /projects/:id/merge_requests/:iid; never an id or a path) and outcome (ok, not_found, unauthorized, forbidden, rate_limited, client_error, server_error, no_answer).",
		}, []string{"method", "endpoint", "outcome"}),
	}
	reg.MustRegister(m.webhooks, m.processing, m.deliveries, m.failures, m.gitlab,
		collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}),
		&storeCollector{st: st})
	return m
}

// The label values each series may have; see label.
var (
	webhookSources  = []string{"gitlab", "gitlab_status_check"}
	webhookResults  = []string{"accepted", "duplicate", "ignored", "unauthorized", "too_large", "bad_request", "method_not_allowed", "error"}
	processingKinds = []string{gitlab.EventMergeRequest, gitlab.EventNote, gitlab.EventStatusCheck}
	effectKinds     = []string{string(bot.EffectReply), string(bot.EffectStatus), string(bot.EffectMRNote), string(bot.EffectMRLabels),
		string(bot.EffectThreadPost), string(bot.EffectThreadSummary), string(bot.EffectPage), string(bot.EffectRefresh),
		string(bot.EffectResolve), string(bot.EffectDigest)}
	escalationStates = []bot.State{bot.StateIntake, bot.StateAwaitingArtifacts, bot.StateInReview, bot.StateDisputed, bot.StateDeferred,
		bot.StateApproved, bot.StateRejected, bot.StateMerged, bot.StateWithdrawn}
)

// gitlabEndpoints are the routes threatgate calls (gitlab.Route); any
// other is counted as "other".
var (
	gitlabMethods   = []string{"GET", "POST", "PUT"}
	gitlabEndpoints = []string{
		"/user", "/users",
		"/projects/:id/merge_requests", "/projects/:id/pipelines",
		"/projects/:id/merge_requests/:iid", "/projects/:id/merge_requests/:iid/diffs",
		"/projects/:id/merge_requests/:iid/commits", "/projects/:id/merge_requests/:iid/versions",
		"/projects/:id/merge_requests/:iid/notes", "/projects/:id/merge_requests/:iid/notes/:note_id",
		"/projects/:id/merge_requests/:iid/status_checks", "/projects/:id/merge_requests/:iid/status_check_responses",
		"/projects/:id/repository/commits/:sha/statuses", "/projects/:id/statuses/:sha",
		"/projects/:id/external_status_checks",
	}
)

// gitlabRequest counts one request to GitLab (gitlab.Config.OnRequest).
func (m *metrics) gitlabRequest(method, route, outcome string) {
	m.gitlab.WithLabelValues(label(method, gitlabMethods), label(route, gitlabEndpoints), label(outcome, gitlab.Outcomes)).Inc()
}

// watchLimiter exports how long the GitLab client has waited for its
// request budget (nil: no limiter, nothing exported).
func (m *metrics) watchLimiter(l *gitlab.Limiter) {
	if l == nil {
		return
	}
	m.reg.MustRegister(prometheus.NewCounterFunc(prometheus.CounterOpts{
		Name: "threatgate_gitlab_rate_limit_wait_seconds_total",
		Help: "Time GitLab requests waited to stay under gitlab.max_requests_per_minute and GitLab's RateLimit headers (429 included).",
	}, func() float64 { return l.Waited().Seconds() }))
}

// label returns v when it is one of known, and "other" otherwise, so that
// no label can carry an id, a name or anything else without bound.
func label(v string, known []string) string {
	if slices.Contains(known, v) {
		return v
	}
	return "other"
}

func (m *metrics) webhook(source string) func(string) {
	source = label(source, webhookSources)
	return func(result string) { m.webhooks.WithLabelValues(source, label(result, webhookResults)).Inc() }
}

func (m *metrics) processed(kind string, latency time.Duration, err error) {
	result := "ok"
	if err != nil {
		result = "error"
	}
	m.processing.WithLabelValues(label(kind, processingKinds), result).Observe(latency.Seconds())
}

func (m *metrics) delivered(kind bot.EffectKind, err error) {
	k := label(string(kind), effectKinds)
	if err != nil {
		m.failures.WithLabelValues(k).Inc()
		return
	}
	m.deliveries.WithLabelValues(k).Inc()
}

// storeCollector reads gauges from the store at scrape time: counts by
// tier (ids the policy defines, a handful) and state, and totals; nothing
// per escalation.
type storeCollector struct{ st storeStats }

var (
	descAll      = prometheus.NewDesc("threatgate_escalations", "Escalations by tier and state (merged and withdrawn included).", []string{"tier", "state"}, nil)
	descOpen     = prometheus.NewDesc("threatgate_escalations_open", "Open escalations (waiting on people: intake, artifacts, review, dispute, deferral) by tier and state.", []string{"tier", "state"}, nil)
	descOutbox   = prometheus.NewDesc("threatgate_outbox_depth", "Effects waiting in the outbox.", nil, nil)
	descInbox    = prometheus.NewDesc("threatgate_inbox_depth", "Recorded webhooks waiting to be processed.", nil, nil)
	descDead     = prometheus.NewDesc("threatgate_dead_letters", "Items a background loop set aside because handling them panicked (the dashboard lists them).", nil, nil)
	descBypassed = prometheus.NewDesc("threatgate_bypasses", "Merges of escalated MRs that were not approved.", nil, nil)
	descForged   = prometheus.NewDesc("threatgate_forged_statuses", "Gate statuses found set by someone other than threatgate.", nil, nil)
	descUp       = prometheus.NewDesc("threatgate_store_up", "1 when the store could be read at this scrape.", nil, nil)
)

func (c *storeCollector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{descAll, descOpen, descOutbox, descInbox, descDead, descBypassed, descForged, descUp} {
		ch <- d
	}
}

func (c *storeCollector) Collect(ch chan<- prometheus.Metric) {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	agg, err := c.st.Aggregates(ctx)
	if err != nil {
		ch <- prometheus.MustNewConstMetric(descUp, prometheus.GaugeValue, 0)
		return
	}
	type key struct{ tier, state string }
	counts := map[key]int{}
	for ts, n := range agg.Counts {
		st := "other"
		if slices.Contains(escalationStates, ts.State) {
			st = string(ts.State)
		}
		counts[key{ts.Tier, st}] += n
	}
	bypassed, forged := agg.Bypassed, agg.Forged
	for k, n := range counts {
		ch <- prometheus.MustNewConstMetric(descAll, prometheus.GaugeValue, float64(n), k.tier, k.state)
		if bot.State(k.state).Active() {
			ch <- prometheus.MustNewConstMetric(descOpen, prometheus.GaugeValue, float64(n), k.tier, k.state)
		}
	}
	ch <- prometheus.MustNewConstMetric(descBypassed, prometheus.GaugeValue, float64(bypassed))
	ch <- prometheus.MustNewConstMetric(descForged, prometheus.GaugeValue, float64(forged))
	if n, err := c.st.OutboxDepth(ctx); err == nil {
		ch <- prometheus.MustNewConstMetric(descOutbox, prometheus.GaugeValue, float64(n))
	}
	if n, err := c.st.InboxDepth(ctx); err == nil {
		ch <- prometheus.MustNewConstMetric(descInbox, prometheus.GaugeValue, float64(n))
	}
	if n, err := c.st.DeadLetterCount(ctx); err == nil {
		ch <- prometheus.MustNewConstMetric(descDead, prometheus.GaugeValue, float64(n))
	}
	ch <- prometheus.MustNewConstMetric(descUp, prometheus.GaugeValue, 1)
}
