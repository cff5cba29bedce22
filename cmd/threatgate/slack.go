package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"net/url"
	"time"

	sl "github.com/slack-go/slack"

	"github.com/threatgate/threatgate/adapters/slack"
	"github.com/threatgate/threatgate/bot"
	"github.com/threatgate/threatgate/store"
)

// slackTimeout bounds one Slack Web API call.
const slackTimeout = 10 * time.Second

// newSlack builds the Slack app of the slack section and checks its token
// with auth.test: a token Slack refuses, or one of another workspace than
// team_id, stops serve with a message that says which.
func newSlack(c *SlackConfig, sec Secrets, eng *bot.Engine, db *store.DB, clock bot.Clock, log *slog.Logger) (*slack.App, error) {
	hc := &http.Client{Timeout: slackTimeout}
	opts := []sl.Option{sl.OptionAPIURL(c.APIURL), sl.OptionHTTPClient(hc)}
	if sec.SlackAppToken != "" {
		opts = append(opts, sl.OptionAppLevelToken(sec.SlackAppToken.Reveal()))
	}
	client := sl.New(sec.SlackBotToken.Reveal(), opts...)
	ctx, cancel := context.WithTimeout(context.Background(), 2*slackTimeout)
	defer cancel()
	who, err := client.AuthTestContext(ctx)
	if err != nil {
		var se sl.SlackErrorResponse
		if errors.As(err, &se) {
			return nil, fmt.Errorf("slack: auth.test refused the bot token (%s); check the token in %s", se.Err, tokenSource(c))
		}
		return nil, fmt.Errorf("slack: auth.test at %s failed: %v", redactURL(c.APIURL), err)
	}
	if who.TeamID != c.TeamID {
		return nil, fmt.Errorf("slack: the bot token belongs to workspace %s (%s), but slack.team_id is %s; use that workspace's token or fix team_id", who.TeamID, who.Team, c.TeamID)
	}
	hosts := []string{"hooks.slack.com"}
	if u, err := url.Parse(c.APIURL); err == nil && u.Host != "" {
		hosts = append(hosts, u.Host)
	}
	app := slack.NewApp(&slack.App{
		Client: client, Engine: eng, Store: db, Clock: clock, Log: log.With(bot.LogComponent, "slack"),
		TeamID: c.TeamID, SigningSecret: sec.SlackSigningSecret, Channel: c.Channel, SecurityChannel: c.SecurityChannel,
		BotUserID: who.UserID, ResponseHosts: hosts, HTTPClient: hc,
	})
	log.Info("slack connected", "team", who.TeamID, "bot_user", who.UserID, "socket_mode", sec.SlackAppToken != "")
	return app, nil
}

// tokenSource names where the bot token was read from.
func tokenSource(c *SlackConfig) string {
	if c.BotTokenFile != "" {
		return "the file " + c.BotTokenFile + " (slack.bot_token_file)"
	}
	return "the environment variable " + c.BotTokenEnv
}
