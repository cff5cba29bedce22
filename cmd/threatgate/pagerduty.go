package main

import (
	"fmt"
	"log/slog"
	"time"

	"github.com/threatgate/threatgate/adapters/pagerduty"
	"github.com/threatgate/threatgate/bot"
)

// pagerDutyTimeout bounds one Events API call.
const pagerDutyTimeout = 10 * time.Second

// newPagerDuty builds the PagerDuty sink of the pagerduty section, with
// the routing key of sec; a page links to the escalation's page under
// publicURL. It asks PagerDuty nothing: the Events API cannot check a
// routing key without raising an alert, so a wrong key shows on the first
// page, as a permanent delivery error naming where the key was read from.
func newPagerDuty(c *PagerDutyConfig, sec Secrets, publicURL string, log *slog.Logger) (*pagerduty.Client, error) {
	p, err := pagerduty.New(pagerduty.Config{
		EventsURL:    c.EventsURL,
		RoutingKey:   sec.PagerDutyRoutingKey,
		KeySource:    routingKeySource(c),
		DashboardURL: publicURL,
		Timeout:      pagerDutyTimeout,
		Log:          log.With(bot.LogComponent, "pagerduty"),
	})
	if err != nil {
		return nil, err
	}
	log.Info("pagerduty ready", "events_url", redactURL(c.EventsURL), "routing_key_from", routingKeySource(c))
	return p, nil
}

// routingKeySource names where the routing key was read from.
func routingKeySource(c *PagerDutyConfig) string {
	if c.RoutingKeyFile != "" {
		return fmt.Sprintf("the file %s (pagerduty.routing_key_file)", c.RoutingKeyFile)
	}
	env := c.RoutingKeyEnv
	if env == "" {
		env = envPagerDutyRoutingKey
	}
	return fmt.Sprintf("the environment variable %s (pagerduty.routing_key_env)", env)
}
