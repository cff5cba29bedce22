package slack

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"runtime/debug"
	"sync"

	sl "github.com/slack-go/slack"
	"github.com/slack-go/slack/slackevents"
	"github.com/slack-go/slack/socketmode"

	"github.com/threatgate/threatgate/bot"
)

// RunSocket is what serve calls when an app-level token is configured.
var _ interface {
	RunSocket(context.Context, bot.Secret) error
} = (*App)(nil)

// maxAck is Slack's limit on a Socket Mode response, envelope included:
// one of 20KB or more is dropped by Slack (slack-go refuses to send it).
const maxAck = 20 * 1024

// maxInFlight bounds the requests handled at once over the socket; more
// wait, unread, in the socket's buffer.
const maxInFlight = 64

// Log keys of the Socket Mode transport.
const (
	logEnvelopeID = "envelope_id"
	logRequest    = "request_type"
	logConnection = "connection"
)

// internalError is what a slash command whose handling panicked answers.
const internalError = "threatgate could not do that: an internal error, which was logged. Try again later."

// RunSocket serves Slack over Socket Mode until ctx ends, then returns
// nil once the requests being handled are done. It is the transport for
// an app without a public HTTP endpoint: slash commands, interactions and
// Events API callbacks arrive over a websocket and go to Command,
// Interaction and Event, as they do over HTTP (Handler). The socket is
// authenticated by the app-level token, so no signature is checked; the
// workspace check of those methods applies all the same.
//
// The websocket is opened with apps.connections.open, which needs the
// app-level token (xapp-…): appToken when it is not empty (a.Client keeps
// its bot token for everything else, and a.Client itself is not changed),
// otherwise the one a.Client was built with (sl.OptionAppLevelToken).
// slack-go's socketmode reconnects on its own when Slack asks it to, when
// the connection drops or goes quiet, and, with backoff, when Slack cannot
// be reached. RunSocket returns an error only when Slack refuses the token
// (invalid_auth, token_revoked, not_authed, account_inactive, or a 404):
// the operator must act.
//
// Every request is acknowledged exactly once. A command's or an
// interaction's answer is the ack's payload (a modal's errors, an
// ephemeral reply); an answer too large for an ack (maxAck) goes to the
// command's response_url instead. An Events API callback is acknowledged
// before it is handled, since Slack retries one that is not acknowledged
// within 3 seconds. A refused request (another workspace) and one that
// cannot be parsed are acknowledged with no payload and logged. Requests
// are handled concurrently (up to maxInFlight); a panic while handling one
// is logged and the request acknowledged, and the others go on. An ack
// made once ctx has ended is dropped: Slack sends an unacknowledged event
// again, on the next connection.
func (a *App) RunSocket(ctx context.Context, appToken bot.Secret) error {
	if a.Client == nil {
		return errors.New("slack socket mode: no Web API client")
	}
	log := a.Log.With(bot.LogComponent, "slack-socket-mode")
	// socketmode logs only in debug mode, which stays off; the logger
	// keeps it off stderr all the same.
	sm := socketmode.New(a.Client, socketmode.OptionLog(slog.NewLogLogger(log.Handler(), slog.LevelDebug)))
	if appToken != "" {
		// sm holds its own copy of the client: a.Client is not changed.
		sl.OptionAppLevelToken(appToken.Reveal())(&sm.Client)
	}
	s := &socket{app: a, sm: sm, log: log}

	// runCtx ends with ctx, or when socketmode gives up: then the
	// requests still being handled stop waiting to be acknowledged.
	runCtx, stop := context.WithCancel(ctx)
	defer stop()
	done := make(chan error, 1)
	go func() { done <- sm.RunContext(runCtx) }()

	var wg sync.WaitGroup
	defer wg.Wait() // runCtx is done by then: ctx ended, or stop was called
	slots := make(chan struct{}, maxInFlight)
	for {
		select {
		case <-ctx.Done():
			// socketmode stops sending events once ctx is done, and
			// RunContext returns.
			<-done
			return nil
		case err := <-done:
			if ctx.Err() != nil {
				return nil
			}
			stop()
			return socketError(err)
		case evt := <-sm.Events:
			req, ok := s.request(evt)
			if !ok {
				continue
			}
			select {
			case slots <- struct{}{}:
			case <-ctx.Done():
				// Not acknowledged: Slack sends it again on the next
				// connection.
				continue
			}
			wg.Add(1)
			go func() {
				defer wg.Done()
				defer func() { <-slots }()
				s.serve(runCtx, evt, req)
			}()
		}
	}
}

// socketError explains why Socket Mode stopped.
func socketError(err error) error {
	if err == nil {
		return errors.New("slack socket mode stopped")
	}
	var se sl.SlackErrorResponse
	var sc sl.StatusCodeError
	if errors.As(err, &se) || errors.As(err, &sc) {
		return fmt.Errorf("slack socket mode: Slack refused the app-level token (%w); check the xapp- token, its connections:write scope, and that Socket Mode is on for the app", err)
	}
	return fmt.Errorf("slack socket mode: %w", err)
}

// socket is one RunSocket's state.
type socket struct {
	app *App
	sm  *socketmode.Client
	log *slog.Logger
}

// request returns the request evt carries, when there is one to
// acknowledge; other events (the connection's) are logged.
func (s *socket) request(evt socketmode.Event) (socketmode.Request, bool) {
	switch evt.Type {
	case socketmode.EventTypeEventsAPI, socketmode.EventTypeSlashCommand, socketmode.EventTypeInteractive:
		if evt.Request != nil && evt.Request.EnvelopeID != "" {
			return *evt.Request, true
		}
		s.log.Warn("slack request without an envelope id; dropped", logRequest, string(evt.Type))
	case socketmode.EventTypeErrorBadMessage:
		// A request socketmode cannot parse (an inner event type it does
		// not know, say) is still acknowledged, or Slack retries it.
		var req socketmode.Request
		if bad, ok := evt.Data.(*socketmode.ErrorBadMessage); ok {
			json.Unmarshal(bad.Message, &req)
			s.log.Warn("unreadable slack request; acknowledged and dropped", logRequest, req.Type, logEnvelopeID, req.EnvelopeID, bot.LogErr, bad.Cause)
		}
		return req, req.EnvelopeID != ""
	case socketmode.EventTypeConnecting:
		if d, ok := evt.Data.(*sl.ConnectingEvent); ok {
			s.log.Debug("connecting", bot.LogAttempt, d.Attempt, logConnection, d.ConnectionCount)
		}
	case socketmode.EventTypeConnected:
		if d, ok := evt.Data.(*socketmode.ConnectedEvent); ok {
			s.log.Info("connected", logConnection, d.ConnectionCount)
		}
	case socketmode.EventTypeHello:
		if evt.Request != nil {
			s.log.Debug("hello", "connections", evt.Request.NumConnections)
		}
	case socketmode.EventTypeConnectionError:
		if d, ok := evt.Data.(*sl.ConnectionErrorEvent); ok {
			s.log.Warn("could not connect, will retry", bot.LogAttempt, d.Attempt, bot.LogRetryIn, d.Backoff, bot.LogErr, d.ErrorObj)
		}
	case socketmode.EventTypeIncomingError:
		if d, ok := evt.Data.(*sl.IncomingEventError); ok {
			s.log.Info("connection lost, reconnecting", bot.LogErr, d.ErrorObj)
		}
	case socketmode.EventTypeErrorWriteFailed:
		if d, ok := evt.Data.(*socketmode.ErrorWriteFailed); ok {
			id := ""
			if d.Response != nil {
				id = d.Response.EnvelopeID
			}
			s.log.Warn("an acknowledgement was not sent; Slack may send the request again", logEnvelopeID, id, bot.LogErr, d.Cause)
		}
	case socketmode.EventTypeInvalidAuth:
		s.log.Debug("app-level token refused")
	case socketmode.EventTypeDisconnect:
		s.log.Info("slack asked to reconnect")
	default:
		s.log.Debug("socket mode event", logRequest, string(evt.Type))
	}
	return socketmode.Request{}, false
}

// serve handles one request and acknowledges it, exactly once.
func (s *socket) serve(ctx context.Context, evt socketmode.Event, req socketmode.Request) {
	log := s.log.With(logEnvelopeID, req.EnvelopeID, logRequest, req.Type)
	acked := false
	ack := func(payload any) {
		if acked {
			return
		}
		acked = true
		if err := s.sm.AckCtx(ctx, req.EnvelopeID, payload); err != nil {
			log.Warn("could not acknowledge a slack request", bot.LogErr, err)
		}
	}
	defer func() {
		if r := recover(); r != nil {
			log.Error("slack request panicked", bot.LogPanic, bot.PanicReason(r), bot.LogStack, string(debug.Stack()))
			if evt.Type == socketmode.EventTypeSlashCommand {
				ack(say(internalError))
			}
		}
		ack(nil) // a no-op when the request was acknowledged
	}()

	switch evt.Type {
	case socketmode.EventTypeEventsAPI:
		ack(nil)
		ev, ok := evt.Data.(slackevents.EventsAPIEvent)
		if !ok {
			return
		}
		switch ev.Type {
		case slackevents.CallbackEvent:
			if err := s.app.Event(ctx, ev); err != nil {
				refused(log, err)
			}
		case slackevents.AppRateLimited:
			log.Warn("slack is dropping events: the app exceeded its events rate limit")
		}
	case socketmode.EventTypeSlashCommand:
		cmd, ok := evt.Data.(sl.SlashCommand)
		if !ok {
			return
		}
		ans, err := s.app.Command(ctx, cmd)
		if err != nil {
			refused(log, err)
			return
		}
		if fits(req.EnvelopeID, ans) {
			ack(ans)
			return
		}
		ack(nil)
		if e, ok := ans.(ephemeral); ok && cmd.ResponseURL != "" {
			s.app.respond(cmd.ResponseURL, e.Text)
			return
		}
		log.Warn("an answer too large for an acknowledgement was dropped")
	case socketmode.EventTypeInteractive:
		ic, ok := evt.Data.(sl.InteractionCallback)
		if !ok {
			return
		}
		ans, err := s.app.Interaction(ctx, &ic)
		if err != nil {
			refused(log, err)
			return
		}
		if fits(req.EnvelopeID, ans) {
			ack(ans)
			return
		}
		log.Warn("an answer too large for an acknowledgement was dropped")
	}
}

// fits reports whether an ack of envelope id with payload ans is below
// Slack's limit.
func fits(id string, ans Answer) bool {
	if ans == nil {
		return true
	}
	b, err := json.Marshal(socketmode.Response{EnvelopeID: id, Payload: ans})
	return err == nil && len(b) < maxAck
}

// refused logs a request Command, Interaction or Event turned down.
func refused(log *slog.Logger, err error) {
	if errors.Is(err, errForeignTeam) {
		log.Warn("slack request refused: another workspace")
		return
	}
	log.Warn("slack request refused", bot.LogErr, err)
}
