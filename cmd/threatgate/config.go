package main

import (
	"bytes"
	"cmp"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/netip"
	"net/url"
	"os"
	"path/filepath"
	"regexp"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"time"

	"go.yaml.in/yaml/v3"

	"github.com/threatgate/threatgate/internal/yamlnode"

	"github.com/threatgate/threatgate/bot"
	"github.com/threatgate/threatgate/policies"
)

// Config is the configuration of threatgate serve, read from one YAML file
// (docs/CONFIG.md describes every key). It holds no secrets: those come
// from the environment variables or files that the *Env and *File fields
// name, loaded by the sections' secret methods or by Config.LoadSecrets.
//
// An integration is on when its section is present: a nil section is off.
type Config struct {
	Listen       string // host:port of the HTTP server
	DataDir      string // directory of the database
	Policy       string // policy file; "" = the embedded default policy
	MaxBodyBytes int64  // largest webhook request body accepted

	GitLab    *GitLabConfig
	Slack     *SlackConfig
	Discord   *DiscordConfig
	PagerDuty *PagerDutyConfig
	Web       *WebConfig
	Retention *RetentionConfig

	src *configSource // where each key was written; nil for a Config not read from a file
}

// RetentionConfig is the retention section: how long the bulky payloads
// of closed escalations are kept in the audit log (store.DB.Compact).
type RetentionConfig struct {
	// ClosedDays is how many days after an escalation's last event, once
	// it is closed, its bulky events are compacted; 0 = never (the default).
	ClosedDays int
}

// minRetentionClosedDays is the least retention.closed_days accepted.
const minRetentionClosedDays = 30

// Closed is how long a closed escalation keeps its bulky payloads; 0
// when compaction is off (no section or closed_days 0).
func (r *RetentionConfig) Closed() time.Duration {
	if r == nil || r.ClosedDays <= 0 {
		return 0
	}
	return time.Duration(r.ClosedDays) * 24 * time.Hour
}

// GitLabConfig is the gitlab section.
type GitLabConfig struct {
	URL                 string // API base such as https://gitlab.example.com; "" = dry run (log what would be done)
	TokenEnv, TokenFile string // the API token
	WebhookSecretEnv    string // the secret token of the project's webhook
	WebhookSecretFile   string
	StatusName          string // name of the commit status that gates MRs
	Gate                string // GateStatus or GateExternalStatusCheck
	// Mode is ModeEnforce (the default: the gate is set in GitLab) or
	// ModeDryRun (GitLab is read, nothing is written; see DryRun).
	Mode                  string
	StatusCheckName       string // name of the external status check; defaults to StatusName
	StatusCheckSecretEnv  string // HMAC secret of the external status check
	StatusCheckSecretFile string
	ReconcileEvery        time.Duration // how often open MRs are compared with the store
	// ReconcileFullEvery is how often reconcile lists every open MR of a
	// project, not only those updated since its watermark (0: the
	// default; see FullEvery).
	ReconcileFullEvery time.Duration
	// Projects are reconciled even before threatgate has seen a webhook
	// or an escalation of theirs (path with namespace, "shop/api"):
	// reconcile also lists the projects of escalations and those it has
	// seen an MR of, so this is for a project whose webhook never reached
	// threatgate at all.
	Projects []string
	// MaxRequestsPerMinute is the API request rate the client keeps
	// under (0: the default; see RequestsPerMinute).
	MaxRequestsPerMinute int
	Timeout              time.Duration // per API request
}

// Values of GitLabConfig.Gate.
const (
	GateStatus              = "status"                // a commit status, made required by the project's settings
	GateExternalStatusCheck = "external_status_check" // GitLab's external status checks (Ultimate)
)

// Values of GitLabConfig.Mode.
const (
	ModeEnforce = "enforce" // statuses, notes and labels are written to GitLab
	ModeDryRun  = "dry_run" // MRs, diffs and commits are read; nothing is written
)

// RequestsPerMinute returns gitlab.max_requests_per_minute, or its
// default (600) when unset.
func (g *GitLabConfig) RequestsPerMinute() int {
	if g.MaxRequestsPerMinute <= 0 {
		return defaultMaxRequestsPerMinute
	}
	return g.MaxRequestsPerMinute
}

// FullEvery returns gitlab.reconcile_full_every, or its default (1h, but
// never less than reconcile_every) when unset.
func (g *GitLabConfig) FullEvery() time.Duration {
	if g.ReconcileFullEvery <= 0 {
		return max(defaultReconcileFullEvery, g.ReconcileEvery)
	}
	return g.ReconcileFullEvery
}

// DryRun reports whether threatgate writes nothing to GitLab: mode
// dry_run, or no url (then it cannot even read: the webhook is all it
// sees).
func (g *GitLabConfig) DryRun() bool { return g.URL == "" || g.Mode == ModeDryRun }

// SlackConfig is the slack section: the Slack app threatgate works
// escalations through (adapters/slack).
type SlackConfig struct {
	BotTokenEnv, BotTokenFile           string
	SigningSecretEnv, SigningSecretFile string // HTTP mode: verifies Slack's requests
	// AppTokenEnv/AppTokenFile name the app-level token (xapp-…) of Socket
	// Mode. Socket Mode is on when the file is set or the variable is
	// set and not empty; then no public URL is needed and the signing
	// secret is optional.
	AppTokenEnv, AppTokenFile string
	APIURL                    string // Web API base; always ends in "/" once loaded
	TeamID                    string // the workspace (T…); requests from any other are refused
	Channel                   string // where escalation threads open (a channel id)
	SecurityChannel           string // bypasses, forged statuses and lapses are posted here too (a channel id; "" for none)
}

// DiscordConfig is the discord section. Accepted and validated; the
// Discord integration is not wired yet.
type DiscordConfig struct {
	BotTokenEnv, BotTokenFile string
	PublicKey                 string // the application's Ed25519 public key, hex; not a secret
	APIURL                    string
	ChannelID                 string
	SecurityChannelID         string
	ApplicationID             string
}

// PagerDutyConfig is the pagerduty section. Accepted and validated; the
// PagerDuty integration is not wired yet.
type PagerDutyConfig struct {
	RoutingKeyEnv, RoutingKeyFile string
	EventsURL                     string // Events API v2 base; the client appends /v2/enqueue
}

// WebConfig is the web section: the dashboard, its JSON API and the local
// chat console.
type WebConfig struct {
	PublicURL          string // base URL people reach threatgate at; "" = derived from Listen (see Config.PublicURL)
	DashboardTokenEnv  string // when this or DashboardTokenFile is set, the dashboard and /api need this bearer token
	DashboardTokenFile string
	Console            bool // the local chat console, which lets anyone act as anyone
	// MetricsPublic serves /metrics to anyone who reaches the listener:
	// no dashboard token and no Host check. Off: /metrics needs the
	// dashboard token when there is one, and the Host check otherwise.
	MetricsPublic bool
	// TrustedProxies are the reverse proxies (addresses or CIDR prefixes,
	// as written) whose X-Forwarded-For names the client. Empty: the TCP
	// peer is the client.
	TrustedProxies []string
}

// Defaults.
const (
	defaultListen       = "127.0.0.1:8080"
	defaultDataDir      = "./threatgate-data"
	defaultMaxBodyBytes = 10 << 20

	defaultStatusName     = "threatgate/security-review"
	defaultReconcileEvery = 10 * time.Minute
	// defaultReconcileFullEvery is gitlab.DefaultFullEvery.
	defaultReconcileFullEvery = time.Hour
	// defaultMaxRequestsPerMinute is gitlab.DefaultMaxRequestsPerMinute:
	// under a third of GitLab.com's 2,000 a minute per user.
	defaultMaxRequestsPerMinute = 600
	defaultGitLabTimeout        = 10 * time.Second
	defaultSlackAPIURL          = "https://slack.com/api/"
	defaultDiscordAPIURL        = "https://discord.com/api/v10"
	defaultPagerDutyURL         = "https://events.pagerduty.com"

	envGitLabToken             = "THREATGATE_GITLAB_TOKEN"
	envGitLabWebhookSecret     = "THREATGATE_GITLAB_WEBHOOK_SECRET"
	envGitLabStatusCheckSecret = "THREATGATE_GITLAB_STATUS_CHECK_SECRET"
	envSlackBotToken           = "THREATGATE_SLACK_BOT_TOKEN"
	envSlackSigningSecret      = "THREATGATE_SLACK_SIGNING_SECRET"
	envSlackAppToken           = "THREATGATE_SLACK_APP_TOKEN"
	envDiscordBotToken         = "THREATGATE_DISCORD_BOT_TOKEN"
	envPagerDutyRoutingKey     = "THREATGATE_PAGERDUTY_ROUTING_KEY"
)

// Limits.
const (
	maxConfigSize     = 1 << 20
	maxSecretFileSize = 64 << 10
	minMaxBodyBytes   = 1 << 10
	maxMaxBodyBytes   = 1 << 30
	minReconcileEvery = time.Minute
	// maxMaxRequestsPerMinute bounds gitlab.max_requests_per_minute: no
	// GitLab allows more to one user.
	maxMaxRequestsPerMinute = 100_000
	maxGitLabTimeout        = 2 * time.Minute
)

// DefaultConfig returns the configuration used when the file sets
// nothing: every integration off.
func DefaultConfig() Config {
	return Config{Listen: defaultListen, DataDir: defaultDataDir, MaxBodyBytes: defaultMaxBodyBytes}
}

func defaultGitLab() *GitLabConfig {
	return &GitLabConfig{StatusName: defaultStatusName, Gate: GateStatus, Mode: ModeEnforce, ReconcileEvery: defaultReconcileEvery, Timeout: defaultGitLabTimeout}
}

// LoadConfig reads the config file at path. It does not call Validate:
// the caller does, once it has applied any command-line overrides
// (loadChecked does both, and loads the secrets, reporting the
// problems of all three together).
//
// The config is returned even with problems: a key that could not be
// decoded keeps its default. Every mistake is reported at once, each a *policies.Problem naming the
// file, line and column, joined with errors.Join (see policies.Problems).
// Unknown keys are refused; a key that would hold a secret is refused
// with a message saying where secrets go. An empty file means
// DefaultConfig; a section present but empty turns its integration on
// with defaults. Relative paths written in the file (policy, data_dir,
// *_file) are made relative to the file's directory.
func LoadConfig(path string) (Config, error) {
	f, err := os.Open(path)
	if err != nil {
		return Config{}, &policies.Problem{File: path, Msg: "cannot read the config: " + osErr(err)}
	}
	defer f.Close()
	data, err := io.ReadAll(io.LimitReader(f, maxConfigSize+1))
	if err != nil {
		return Config{}, &policies.Problem{File: path, Msg: "cannot read the config: " + osErr(err)}
	}
	return parseConfig(path, data)
}

// parseConfig decodes data, the contents of the config file at path.
func parseConfig(path string, data []byte) (Config, error) {
	c := DefaultConfig()
	if len(data) > maxConfigSize {
		return Config{}, &policies.Problem{File: path, Msg: fmt.Sprintf("the config is larger than %d MiB", maxConfigSize>>20)}
	}
	var doc yaml.Node
	if err := yaml.Unmarshal(data, &doc); err != nil {
		return Config{}, yamlConfigProblem(path, err)
	}
	d := &configDecoder{file: path, dir: filepath.Dir(path), src: &configSource{file: path, at: map[string]yaml.Node{}, key: map[string]yaml.Node{}}}
	c.src = d.src
	if len(doc.Content) == 0 || isNull(doc.Content[0]) {
		return c, nil
	}
	d.config(doc.Content[0], &c)
	// The config goes back with its problems: what could not be decoded
	// kept its default, so that Validate can still look at the rest.
	return c, joinConfigProblems(d.probs)
}

// loadChecked reads the config file at path ("" for the defaults),
// validates it and, unless getenv is nil, loads its secrets through
// getenv, and reports every problem of the three at once, in line order (see placeSecretProblems
// for where a secret's problem is placed). A problem of Validate or of a
// secret about a key that could not be decoded is left out: the decoding
// problem says it. Only a file that cannot be read, or is not YAML, stops
// before validation. The warnings are those of LoadSecrets.
func loadChecked(path string, getenv func(string) string) (Config, Secrets, []string, error) {
	cfg := DefaultConfig()
	var decodeErr error
	if path != "" {
		cfg, decodeErr = LoadConfig(path)
		if decodeErr != nil && cfg.src == nil {
			return cfg, Secrets{}, nil, decodeErr // unreadable, too large or not YAML
		}
	}
	decoded := policies.Problems(decodeErr)
	bad := map[string]bool{}
	for _, p := range decoded {
		bad[p.Field] = true
	}
	all := slices.Clone(decoded)
	for _, p := range policies.Problems(cfg.Validate()) {
		if !bad[p.Field] {
			all = append(all, p)
			bad[p.Field] = true
		}
	}
	if getenv == nil {
		return cfg, Secrets{}, nil, joinConfigProblems(all)
	}
	sec, warnings, serr := cfg.LoadSecrets(getenv)
	for _, p := range cfg.placeSecretProblems(policies.Problems(serr)) {
		if !bad[p.Field] {
			all = append(all, p)
		}
	}
	return cfg, sec, warnings, joinConfigProblems(all)
}

// placeSecretProblems points each problem of LoadSecrets at the line that
// names the secret's source (its *_env or *_file key), else at its
// section, when the config came from a file.
func (c *Config) placeSecretProblems(ps []*policies.Problem) []*policies.Problem {
	if c.src == nil {
		return ps
	}
	out := make([]*policies.Problem, 0, len(ps))
	for _, p := range ps {
		q := *p
		if q.Line == 0 {
			section, _, _ := strings.Cut(q.Field, ".")
			if n, ok := c.src.at[q.Field]; ok {
				q.File, q.Line, q.Col = c.src.file, n.Line, n.Column
			} else if n, ok := c.src.key[section]; ok {
				q.File, q.Line, q.Col = c.src.file, n.Line, n.Column
			}
		}
		out = append(out, &q)
	}
	return out
}

// configSource remembers where each key was written, so that Validate can
// point at the line.
type configSource struct {
	file string
	at   map[string]yaml.Node // field ("gitlab.gate") → its value node, Content dropped
	key  map[string]yaml.Node // field → its key node
}

// problem returns a Problem for field, placed where the field was written
// when it was.
func (s *configSource) problem(field, format string, args ...any) *policies.Problem {
	p := &policies.Problem{Field: field, Msg: fmt.Sprintf(format, args...)}
	if s != nil {
		if n, ok := s.at[field]; ok {
			p.File, p.Line, p.Col = s.file, n.Line, n.Column
		}
	}
	return p
}

type configDecoder struct {
	file, dir string
	src       *configSource
	probs     []*policies.Problem
}

func (d *configDecoder) fail(n *yaml.Node, field, format string, args ...any) {
	p := &policies.Problem{File: d.file, Field: field, Msg: fmt.Sprintf(format, args...)}
	if n != nil {
		p.Line, p.Col = n.Line, n.Column
	}
	d.probs = append(d.probs, p)
}

var (
	topKeys       = []string{"listen", "data_dir", "policy", "max_body_bytes", "gitlab", "slack", "discord", "pagerduty", "web", "retention"}
	gitlabKeys    = []string{"url", "mode", "token_env", "token_file", "webhook_secret_env", "webhook_secret_file", "status_name", "gate", "status_check_name", "status_check_secret_env", "status_check_secret_file", "reconcile_every", "reconcile_full_every", "projects", "max_requests_per_minute", "timeout"}
	slackKeys     = []string{"bot_token_env", "bot_token_file", "signing_secret_env", "signing_secret_file", "app_token_env", "app_token_file", "api_url", "team_id", "channel", "security_channel"}
	discordKeys   = []string{"bot_token_env", "bot_token_file", "public_key", "api_url", "channel_id", "security_channel_id", "application_id"}
	pagerdutyKeys = []string{"routing_key_env", "routing_key_file", "events_url"}
	retentionKeys = []string{"closed_days"}
	webKeys       = []string{"public_url", "dashboard_token_env", "dashboard_token_file", "console", "metrics_public", "trusted_proxies"}
)

func (d *configDecoder) config(root *yaml.Node, c *Config) {
	d.mapping(root, "", topKeys, func(key string, v *yaml.Node, f string) {
		switch key {
		case "listen":
			d.str(v, f, &c.Listen)
		case "data_dir":
			d.path(v, f, &c.DataDir)
		case "policy":
			d.path(v, f, &c.Policy)
		case "max_body_bytes":
			d.size(v, f, &c.MaxBodyBytes)
		case "gitlab":
			c.GitLab = d.gitlab(v, f)
		case "slack":
			c.Slack = d.slack(v, f)
		case "discord":
			c.Discord = d.discord(v, f)
		case "pagerduty":
			c.PagerDuty = d.pagerduty(v, f)
		case "web":
			c.Web = d.web(v, f)
		case "retention":
			c.Retention = d.retention(v, f)
		}
	})
}

func (d *configDecoder) gitlab(n *yaml.Node, section string) *GitLabConfig {
	g := defaultGitLab()
	d.mapping(n, section, gitlabKeys, func(key string, v *yaml.Node, f string) {
		switch key {
		case "url":
			d.str(v, f, &g.URL)
		case "mode":
			d.str(v, f, &g.Mode)
		case "token_env":
			d.str(v, f, &g.TokenEnv)
		case "token_file":
			d.path(v, f, &g.TokenFile)
		case "webhook_secret_env":
			d.str(v, f, &g.WebhookSecretEnv)
		case "webhook_secret_file":
			d.path(v, f, &g.WebhookSecretFile)
		case "status_name":
			d.str(v, f, &g.StatusName)
		case "gate":
			d.str(v, f, &g.Gate)
		case "status_check_name":
			d.str(v, f, &g.StatusCheckName)
		case "status_check_secret_env":
			d.str(v, f, &g.StatusCheckSecretEnv)
		case "status_check_secret_file":
			d.path(v, f, &g.StatusCheckSecretFile)
		case "reconcile_every":
			d.dur(v, f, &g.ReconcileEvery)
		case "reconcile_full_every":
			d.dur(v, f, &g.ReconcileFullEvery)
		case "projects":
			d.strs(v, f, &g.Projects)
		case "max_requests_per_minute":
			d.rate(v, f, &g.MaxRequestsPerMinute)
		case "timeout":
			d.dur(v, f, &g.Timeout)
		}
	})
	defaultEnv(&g.TokenEnv, g.TokenFile, envGitLabToken)
	defaultEnv(&g.WebhookSecretEnv, g.WebhookSecretFile, envGitLabWebhookSecret)
	defaultEnv(&g.StatusCheckSecretEnv, g.StatusCheckSecretFile, envGitLabStatusCheckSecret)
	if g.StatusCheckName == "" {
		g.StatusCheckName = g.StatusName
	}
	return g
}

func (d *configDecoder) slack(n *yaml.Node, section string) *SlackConfig {
	s := &SlackConfig{APIURL: defaultSlackAPIURL}
	d.mapping(n, section, slackKeys, func(key string, v *yaml.Node, f string) {
		switch key {
		case "bot_token_env":
			d.str(v, f, &s.BotTokenEnv)
		case "bot_token_file":
			d.path(v, f, &s.BotTokenFile)
		case "signing_secret_env":
			d.str(v, f, &s.SigningSecretEnv)
		case "signing_secret_file":
			d.path(v, f, &s.SigningSecretFile)
		case "app_token_env":
			d.str(v, f, &s.AppTokenEnv)
		case "app_token_file":
			d.path(v, f, &s.AppTokenFile)
		case "api_url":
			d.str(v, f, &s.APIURL)
		case "team_id":
			d.str(v, f, &s.TeamID)
		case "channel":
			d.str(v, f, &s.Channel)
		case "security_channel":
			d.str(v, f, &s.SecurityChannel)
		}
	})
	defaultEnv(&s.BotTokenEnv, s.BotTokenFile, envSlackBotToken)
	defaultEnv(&s.SigningSecretEnv, s.SigningSecretFile, envSlackSigningSecret)
	defaultEnv(&s.AppTokenEnv, s.AppTokenFile, envSlackAppToken)
	// slack-go builds request URLs by appending the method name.
	if s.APIURL != "" && !strings.HasSuffix(s.APIURL, "/") {
		s.APIURL += "/"
	}
	return s
}

func (d *configDecoder) discord(n *yaml.Node, section string) *DiscordConfig {
	dc := &DiscordConfig{APIURL: defaultDiscordAPIURL}
	d.mapping(n, section, discordKeys, func(key string, v *yaml.Node, f string) {
		switch key {
		case "bot_token_env":
			d.str(v, f, &dc.BotTokenEnv)
		case "bot_token_file":
			d.path(v, f, &dc.BotTokenFile)
		case "public_key":
			d.str(v, f, &dc.PublicKey)
		case "api_url":
			d.str(v, f, &dc.APIURL)
		case "channel_id":
			d.str(v, f, &dc.ChannelID)
		case "security_channel_id":
			d.str(v, f, &dc.SecurityChannelID)
		case "application_id":
			d.str(v, f, &dc.ApplicationID)
		}
	})
	defaultEnv(&dc.BotTokenEnv, dc.BotTokenFile, envDiscordBotToken)
	return dc
}

func (d *configDecoder) pagerduty(n *yaml.Node, section string) *PagerDutyConfig {
	p := &PagerDutyConfig{EventsURL: defaultPagerDutyURL}
	d.mapping(n, section, pagerdutyKeys, func(key string, v *yaml.Node, f string) {
		switch key {
		case "routing_key_env":
			d.str(v, f, &p.RoutingKeyEnv)
		case "routing_key_file":
			d.path(v, f, &p.RoutingKeyFile)
		case "events_url":
			d.str(v, f, &p.EventsURL)
		}
	})
	defaultEnv(&p.RoutingKeyEnv, p.RoutingKeyFile, envPagerDutyRoutingKey)
	return p
}

func (d *configDecoder) web(n *yaml.Node, section string) *WebConfig {
	w := &WebConfig{}
	d.mapping(n, section, webKeys, func(key string, v *yaml.Node, f string) {
		switch key {
		case "public_url":
			d.str(v, f, &w.PublicURL)
		case "dashboard_token_env":
			d.str(v, f, &w.DashboardTokenEnv)
		case "dashboard_token_file":
			d.path(v, f, &w.DashboardTokenFile)
		case "console":
			d.flag(v, f, &w.Console)
		case "metrics_public":
			d.flag(v, f, &w.MetricsPublic)
		case "trusted_proxies":
			d.strs(v, f, &w.TrustedProxies)
		}
	})
	return w
}

func (d *configDecoder) retention(n *yaml.Node, section string) *RetentionConfig {
	r := &RetentionConfig{}
	d.mapping(n, section, retentionKeys, func(key string, v *yaml.Node, f string) {
		switch key {
		case "closed_days":
			d.count(v, f, &r.ClosedDays)
		}
	})
	return r
}

// count reads a whole number from 0 to 100000.
func (d *configDecoder) count(n *yaml.Node, f string, dst *int) {
	const want = "a whole number of days such as 365"
	n, ok := d.scalar(n, f, want)
	if !ok {
		return
	}
	v, err := strconv.Atoi(strings.ReplaceAll(n.Value, "_", ""))
	if err != nil || v < 0 || v > 100000 {
		d.fail(n, f, "want %s, got %q", want, n.Value)
		return
	}
	*dst = v
}

// rate reads a positive whole number of requests a minute.
func (d *configDecoder) rate(n *yaml.Node, f string, dst *int) {
	const want = "a whole number of requests a minute such as 600"
	n, ok := d.scalar(n, f, want)
	if !ok {
		return
	}
	v, err := strconv.Atoi(strings.ReplaceAll(n.Value, "_", ""))
	if err != nil || v < 1 || v > maxMaxRequestsPerMinute {
		d.fail(n, f, "want %s, from 1 to %d, got %q", want, maxMaxRequestsPerMinute, n.Value)
		return
	}
	*dst = v
}

// defaultEnv names the default environment variable for a secret unless
// the file set its *_env or *_file key.
func defaultEnv(env *string, file, def string) {
	if *env == "" && file == "" {
		*env = def
	}
}

// mapping walks the mapping n, calling fn for each allowed key in order of
// appearance. A null n (a section with nothing under it) is an empty
// mapping. Unknown and duplicate keys are problems.
func (d *configDecoder) mapping(n *yaml.Node, section string, allowed []string, fn func(key string, v *yaml.Node, field string)) {
	n = resolveNode(n)
	if isNull(n) {
		return
	}
	if n.Kind != yaml.MappingNode {
		msg := fmt.Sprintf("want a mapping with keys %s, got %s", strings.Join(allowed, ", "), describeNode(n))
		if section != "" {
			msg += "; to turn the integration off, remove the section"
		}
		d.fail(n, section, "%s", msg)
		return
	}
	fail := func(n *yaml.Node, field, msg string) { d.fail(n, field, "%s", msg) }
	secret := func(key string) (string, string, bool) {
		f := key
		if section != "" {
			f = section + "." + key
		}
		msg, ok := secretKeyMsg(section, key, allowed)
		return f, msg, ok
	}
	// Keys are walked with their key nodes at hand, to point at the key
	// when the value is missing.
	keys := map[*yaml.Node]*yaml.Node{}
	for i := 0; i+1 < len(n.Content); i += 2 {
		keys[n.Content[i+1]] = n.Content[i]
	}
	yamlnode.Each(n, section, allowed, fail, secret, func(key string, v *yaml.Node, f string) {
		at := *resolveNode(v)
		if isNull(&at) {
			at = *keys[v] // point at the key when the value is missing
		}
		at.Content = nil
		d.src.at[f] = at
		if k := keys[v]; k != nil {
			d.src.key[f] = *k
		}
		fn(key, v, f)
	})
}

// primarySecret is each section's main secret, named when someone writes
// a secret under a key that the section does not have.
var primarySecret = map[string]string{
	"gitlab":    "token",
	"slack":     "bot_token",
	"discord":   "bot_token",
	"pagerduty": "routing_key",
	"web":       "dashboard_token",
}

// secretAliases maps keys people may write for a secret to the secret
// they most likely mean, per section.
var secretAliases = map[string]map[string]string{
	"gitlab": {
		"secret": "webhook_secret", "webhook_token": "webhook_secret", "secret_token": "webhook_secret",
		"hmac_secret": "status_check_secret", "status_check_hmac_secret": "status_check_secret",
	},
	"slack": {"signing_key": "signing_secret", "secret": "signing_secret"},
}

// secretKeyMsg returns the message for an unknown key that looks like it
// holds a secret, and whether it does.
func secretKeyMsg(section, key string, allowed []string) (string, bool) {
	k := strings.ToLower(key)
	name := ""
	switch {
	case slices.Contains(allowed, k+"_env"):
		name = k
	case secretAliases[section][k] != "":
		name = secretAliases[section][k]
	case looksSecret(k):
		name = primarySecret[section]
	default:
		return "", false
	}
	const msg = "secrets are not read from the config file; "
	if name == "" { // top level
		return msg + "put each in the environment variable or the file named by its section's *_env or *_file key, such as gitlab.token_env or gitlab.token_file", true
	}
	return fmt.Sprintf(msg+"put it in the environment variable named by %s_env or a file named by %s_file", name, name), true
}

func looksSecret(k string) bool {
	if k == "public_key" || strings.HasSuffix(k, "_env") || strings.HasSuffix(k, "_file") {
		return false
	}
	switch k {
	case "token", "secret", "password", "passwd", "key", "apikey", "credentials":
		return true
	}
	for _, s := range []string{"_token", "_secret", "_password", "_key"} {
		if strings.HasSuffix(k, s) {
			return true
		}
	}
	return false
}

// scalar returns the scalar n, or false when n is null (the key keeps its
// default) or not a scalar (a problem).
func (d *configDecoder) scalar(n *yaml.Node, f, want string) (*yaml.Node, bool) {
	n = resolveNode(n)
	if isNull(n) {
		return n, false
	}
	if n.Kind != yaml.ScalarNode {
		d.fail(n, f, "want %s, got %s", want, describeNode(n))
		return n, false
	}
	return n, true
}

func (d *configDecoder) str(n *yaml.Node, f string, dst *string) {
	if n, ok := d.scalar(n, f, "a string"); ok {
		*dst = n.Value
	}
}

// path reads a path; a relative one is made relative to the config
// file's directory.
func (d *configDecoder) path(n *yaml.Node, f string, dst *string) {
	n, ok := d.scalar(n, f, "a path")
	if !ok {
		return
	}
	p := n.Value
	if p != "" && !filepath.IsAbs(p) {
		p = filepath.Join(d.dir, p)
	}
	*dst = p
}

func (d *configDecoder) dur(n *yaml.Node, f string, dst *time.Duration) {
	const want = `a duration such as "90s", "10m" or "1h"`
	n, ok := d.scalar(n, f, want)
	if !ok {
		return
	}
	v, err := policies.ParseDuration(n.Value)
	if err != nil {
		d.fail(n, f, "want %s, got %q", want, n.Value)
		return
	}
	*dst = v
}

var sizeRE = regexp.MustCompile(`^([0-9]+)\s*(KiB|MiB|GiB)?$`)

func (d *configDecoder) size(n *yaml.Node, f string, dst *int64) {
	const want = `a number of bytes such as 10485760 or "10MiB"`
	n, ok := d.scalar(n, f, want)
	if !ok {
		return
	}
	m := sizeRE.FindStringSubmatch(strings.ReplaceAll(n.Value, "_", ""))
	if m == nil {
		d.fail(n, f, "want %s, got %q", want, n.Value)
		return
	}
	shift := map[string]uint{"": 0, "KiB": 10, "MiB": 20, "GiB": 30}[m[2]]
	v, err := strconv.ParseInt(m[1], 10, 64)
	if err != nil || v > maxMaxBodyBytes>>shift {
		d.fail(n, f, "want at most 1 GiB (%d), got %q", maxMaxBodyBytes, n.Value)
		return
	}
	*dst = v << shift
}

// strs reads a list of strings; each item's place is remembered as
// field[i] for Validate.
func (d *configDecoder) strs(n *yaml.Node, f string, dst *[]string) {
	n = resolveNode(n)
	if isNull(n) {
		return
	}
	if n.Kind != yaml.SequenceNode {
		d.fail(n, f, "want a list, got %s", describeNode(n))
		return
	}
	out := []string{}
	for i, item := range n.Content {
		field := fmt.Sprintf("%s[%d]", f, i)
		it := resolveNode(item)
		switch {
		case isNull(it):
			d.fail(item, field, "want a string, got nothing")
		case it.Kind != yaml.ScalarNode:
			d.fail(it, field, "want a string, got %s", describeNode(it))
		default:
			at := *it
			d.src.at[field] = at
			out = append(out, it.Value)
		}
	}
	*dst = out
}

func (d *configDecoder) flag(n *yaml.Node, f string, dst *bool) {
	n, ok := d.scalar(n, f, "true or false")
	if !ok {
		return
	}
	switch n.Value {
	case "true", "True", "TRUE", "yes", "on":
		*dst = true
	case "false", "False", "FALSE", "no", "off":
		*dst = false
	default:
		d.fail(n, f, "want true or false, got %q", n.Value)
	}
}

func resolveNode(n *yaml.Node) *yaml.Node { return yamlnode.Resolve(n) }

func isNull(n *yaml.Node) bool { return yamlnode.IsNull(n) }

func describeNode(n *yaml.Node) string { return yamlnode.Describe(n) }

// yamlConfigProblem turns a YAML syntax error into a Problem with its line.
func yamlConfigProblem(file string, err error) *policies.Problem {
	msg := strings.TrimPrefix(err.Error(), "yaml: ")
	p := &policies.Problem{File: file}
	if rest, ok := strings.CutPrefix(msg, "line "); ok {
		if i := strings.IndexByte(rest, ':'); i > 0 {
			if n, err := strconv.Atoi(rest[:i]); err == nil {
				p.Line, p.Col = n, 1
				msg = strings.TrimSpace(rest[i+1:])
			}
		}
	}
	p.Msg = "not valid YAML: " + msg
	return p
}

func joinConfigProblems(ps []*policies.Problem) error {
	if len(ps) == 0 {
		return nil
	}
	slices.SortStableFunc(ps, func(a, b *policies.Problem) int {
		return cmp.Or(cmp.Compare(a.File, b.File), cmp.Compare(a.Line, b.Line), cmp.Compare(a.Col, b.Col))
	})
	errs := make([]error, len(ps))
	for i, p := range ps {
		errs[i] = p
	}
	return errors.Join(errs...)
}

// osErr returns the reason in an *os.PathError without the path, which
// the caller names itself.
func osErr(err error) string {
	var pe *os.PathError
	if errors.As(err, &pe) {
		return pe.Err.Error()
	}
	return err.Error()
}

// Validate checks the values. It reports every problem at once, each a
// *policies.Problem whose Field names the key ("gitlab.gate") and, when
// the Config came from LoadConfig and the key was written in the file,
// whose File, Line and Col point at it. No message contains the value of
// a *_env key or the user info or query of a URL, in case a secret was
// written there by mistake.
func (c *Config) Validate() error {
	v := &validator{src: c.src}
	if host, port, err := net.SplitHostPort(c.Listen); err != nil || !validPort(port) || strings.ContainsAny(host, " /") {
		v.fail("listen", `want host:port such as "127.0.0.1:8080" or ":8080", got %q`, c.Listen)
	}
	if c.DataDir == "" {
		v.fail("data_dir", "want a directory for the database")
	}
	if c.MaxBodyBytes < minMaxBodyBytes || c.MaxBodyBytes > maxMaxBodyBytes {
		v.fail("max_body_bytes", "want from 1 KiB (%d) to 1 GiB (%d), got %d", minMaxBodyBytes, maxMaxBodyBytes, c.MaxBodyBytes)
	}
	if g := c.GitLab; g != nil {
		if g.URL != "" {
			v.url("gitlab.url", g.URL)
			if c.Web != nil && c.Web.Console {
				// The console lets anyone act as anyone: with a real GitLab
				// behind the gate, that is anyone approving anything.
				v.fail("web.console", "the console lets anyone act as anyone, so it cannot be on while threatgate gates a real GitLab (gitlab.url is set); try it with `threatgate demo`, or against a dry run (no gitlab.url)")
			}
		}
		v.secret("gitlab", "token", g.TokenEnv, g.TokenFile)
		v.secret("gitlab", "webhook_secret", g.WebhookSecretEnv, g.WebhookSecretFile)
		v.secret("gitlab", "status_check_secret", g.StatusCheckSecretEnv, g.StatusCheckSecretFile)
		if strings.TrimSpace(g.StatusName) == "" {
			v.fail("gitlab.status_name", "want the name of the commit status, such as %q", defaultStatusName)
		}
		switch g.Mode {
		case ModeEnforce, "": // "": a Config made in code
		case ModeDryRun:
			if g.URL == "" {
				v.fail("gitlab.mode", "%s reads merge requests, diffs and commits through the API: want gitlab.url too (and a token with read_api); without a url, threatgate sees only the webhooks, which carry no diff", ModeDryRun)
			}
		default:
			v.fail("gitlab.mode", "want %q or %q, got %q", ModeEnforce, ModeDryRun, g.Mode)
		}
		switch g.Gate {
		case GateStatus:
		case GateExternalStatusCheck:
			if strings.TrimSpace(g.StatusCheckName) == "" {
				v.fail("gitlab.status_check_name", "want the name of the external status check")
			}
		default:
			v.fail("gitlab.gate", "want %q or %q, got %q", GateStatus, GateExternalStatusCheck, g.Gate)
		}
		if g.ReconcileEvery < minReconcileEvery {
			v.fail("gitlab.reconcile_every", "want at least %s, got %s", fmtDur(minReconcileEvery), fmtDur(g.ReconcileEvery))
		}
		if g.ReconcileFullEvery != 0 && g.ReconcileFullEvery < g.ReconcileEvery {
			v.fail("gitlab.reconcile_full_every", "want at least reconcile_every (%s), got %s", fmtDur(g.ReconcileEvery), fmtDur(g.ReconcileFullEvery))
		}
		seenProject := map[string]bool{}
		for i, p := range g.Projects {
			field := fmt.Sprintf("gitlab.projects[%d]", i)
			switch {
			case !strings.Contains(p, "/") || strings.HasPrefix(p, "/") || strings.HasSuffix(p, "/") || strings.ContainsAny(p, " \t\n?#"):
				v.fail(field, "want a project path with its namespace such as \"shop/api\", got %q", p)
			case seenProject[p]:
				v.fail(field, "%q is listed twice", p)
			}
			seenProject[p] = true
		}
		if g.MaxRequestsPerMinute < 0 || g.MaxRequestsPerMinute > maxMaxRequestsPerMinute {
			v.fail("gitlab.max_requests_per_minute", "want from 1 to %d, got %d", maxMaxRequestsPerMinute, g.MaxRequestsPerMinute)
		}
		if g.Timeout <= 0 || g.Timeout > maxGitLabTimeout {
			v.fail("gitlab.timeout", "want more than 0s and at most %s, got %s", fmtDur(maxGitLabTimeout), fmtDur(g.Timeout))
		}
	}
	if s := c.Slack; s != nil {
		v.secret("slack", "bot_token", s.BotTokenEnv, s.BotTokenFile)
		v.secret("slack", "signing_secret", s.SigningSecretEnv, s.SigningSecretFile)
		if s.AppTokenEnv != "" && s.AppTokenFile != "" {
			v.fail("slack.app_token_file", "set one of app_token_env and app_token_file")
		}
		if s.AppTokenEnv != "" && !envNameRE.MatchString(s.AppTokenEnv) {
			v.fail("slack.app_token_env", "want the name of an environment variable (letters, digits and _, such as THREATGATE_SLACK_APP_TOKEN); "+
				"secrets are not read from the config file, so put the token in that variable or in a file named by app_token_file")
		}
		v.url("slack.api_url", s.APIURL)
		if !slackTeamRE.MatchString(s.TeamID) {
			v.fail("slack.team_id", "want the workspace id, such as T0123ABCD (the T… in the workspace's URL or in auth.test), got %q", s.TeamID)
		}
		if !policies.SlackChannelID(s.Channel) {
			v.fail("slack.channel", "want the id of the channel where escalation threads open, such as C0123ABCD (channel details, at the bottom), got %q", s.Channel)
		}
		if s.SecurityChannel != "" && !policies.SlackChannelID(s.SecurityChannel) {
			v.fail("slack.security_channel", "want a channel id such as C0123ABCD, got %q", s.SecurityChannel)
		}
	}
	if dc := c.Discord; dc != nil {
		v.secret("discord", "bot_token", dc.BotTokenEnv, dc.BotTokenFile)
		v.url("discord.api_url", dc.APIURL)
		if dc.PublicKey != "" && !hexKeyRE.MatchString(dc.PublicKey) {
			v.fail("discord.public_key", "want the application's public key from the Discord developer portal: 64 hexadecimal characters, got %q", dc.PublicKey)
		}
		for _, id := range []struct{ field, v string }{
			{"discord.channel_id", dc.ChannelID},
			{"discord.security_channel_id", dc.SecurityChannelID},
			{"discord.application_id", dc.ApplicationID},
		} {
			if id.v != "" && !snowflakeRE.MatchString(id.v) {
				v.fail(id.field, "want a Discord id (digits only), got %q", id.v)
			}
		}
	}
	if p := c.PagerDuty; p != nil {
		v.secret("pagerduty", "routing_key", p.RoutingKeyEnv, p.RoutingKeyFile)
		v.url("pagerduty.events_url", p.EventsURL)
	}
	if w := c.Web; w != nil {
		if w.PublicURL != "" {
			v.url("web.public_url", w.PublicURL)
		}
		if w.DashboardTokenEnv != "" || w.DashboardTokenFile != "" {
			v.secret("web", "dashboard_token", w.DashboardTokenEnv, w.DashboardTokenFile)
		}
		for i, p := range w.TrustedProxies {
			if _, err := parseProxy(p); err != nil {
				v.fail(fmt.Sprintf("web.trusted_proxies[%d]", i), `want an IP address or a CIDR prefix such as "10.0.0.0/8" or "::1", got %q`, p)
			}
		}
	}
	if r := c.Retention; r != nil && r.ClosedDays != 0 && r.ClosedDays < minRetentionClosedDays {
		v.fail("retention.closed_days", "want 0 (keep everything) or at least %d days, got %d: payloads are evidence, and a closed escalation may still be audited or reopened", minRetentionClosedDays, r.ClosedDays)
	}
	return joinConfigProblems(v.probs)
}

var (
	envNameRE   = regexp.MustCompile(`^[A-Za-z_][A-Za-z0-9_]{0,127}$`)
	hexKeyRE    = regexp.MustCompile(`^[0-9a-fA-F]{64}$`)
	slackTeamRE = regexp.MustCompile(`^[TE][A-Z0-9]{2,31}$`)
	snowflakeRE = regexp.MustCompile(`^[0-9]{1,20}$`)
)

type validator struct {
	src   *configSource
	probs []*policies.Problem
}

func (v *validator) fail(field, format string, args ...any) {
	v.probs = append(v.probs, v.src.problem(field, format, args...))
}

// secret checks one *_env / *_file pair of section.
func (v *validator) secret(section, name, env, file string) {
	envKey, fileKey := section+"."+name+"_env", section+"."+name+"_file"
	switch {
	case env != "" && file != "":
		v.fail(fileKey, "set one of %s_env and %s_file", name, name)
	case env == "" && file == "":
		v.fail(envKey, "set %s_env or %s_file", name, name)
	}
	if env != "" && !envNameRE.MatchString(env) {
		// The value is not shown: it may be the secret itself.
		v.fail(envKey, "want the name of an environment variable (letters, digits and _, such as THREATGATE_%s); "+
			"secrets are not read from the config file, so put the secret in that variable or in a file named by %s_file",
			strings.ToUpper(section+"_"+name), name)
	}
}

// url checks an http(s) base URL.
func (v *validator) url(field, s string) {
	u, err := url.Parse(s)
	switch {
	case err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" || u.Opaque != "":
		got := ""
		if err == nil && u.User == nil && u.RawQuery == "" {
			got = fmt.Sprintf(", got %q", s)
		}
		v.fail(field, "want an absolute http or https URL such as %q%s", exampleURL[field], got)
	case u.User != nil:
		v.fail(field, "want a URL without a user name or password; secrets are not read from the config file")
	case u.RawQuery != "" || u.ForceQuery || u.Fragment != "":
		v.fail(field, "want a URL without a query (?…) or fragment (#…)")
	}
}

var exampleURL = map[string]string{
	"gitlab.url":           "https://gitlab.example.com",
	"web.public_url":       "https://threatgate.example.com",
	"slack.api_url":        defaultSlackAPIURL,
	"discord.api_url":      defaultDiscordAPIURL,
	"pagerduty.events_url": defaultPagerDutyURL,
}

func validPort(p string) bool {
	n, err := strconv.Atoi(p)
	return err == nil && n >= 0 && n <= 65535 && p == strconv.Itoa(n)
}

// fmtDur prints a duration as a config or policy file would: "10m", "2h", "3d".
func fmtDur(d time.Duration) string { return fmtDuration(d) }

// PublicURL returns the base URL for links to threatgate, without a
// trailing slash: web.public_url when set, else "http://" + Listen with an
// unspecified host (":8080", "0.0.0.0:8080") replaced by localhost.
func (c Config) PublicURL() string {
	if c.Web != nil && c.Web.PublicURL != "" {
		return strings.TrimRight(c.Web.PublicURL, "/")
	}
	host, port, err := net.SplitHostPort(c.Listen)
	if err != nil {
		return "http://" + c.Listen
	}
	if ip := net.ParseIP(host); host == "" || (ip != nil && ip.IsUnspecified()) {
		host = "localhost"
	}
	return "http://" + net.JoinHostPort(host, port)
}

// parseProxy parses one item of web.trusted_proxies: an address (a
// prefix of its full length) or a CIDR prefix.
func parseProxy(s string) (netip.Prefix, error) {
	if strings.Contains(s, "/") {
		p, err := netip.ParsePrefix(s)
		if err != nil {
			return netip.Prefix{}, err
		}
		return p.Masked(), nil
	}
	a, err := netip.ParseAddr(s)
	if err != nil {
		return netip.Prefix{}, err
	}
	if a.Zone() != "" {
		return netip.Prefix{}, fmt.Errorf("zoned address %s", s)
	}
	a = a.Unmap()
	return netip.PrefixFrom(a, a.BitLen()), nil
}

// Proxies returns web.trusted_proxies parsed; items that do not parse
// (Validate reports them) are left out.
func (w *WebConfig) Proxies() []netip.Prefix {
	var out []netip.Prefix
	for _, s := range w.TrustedProxies {
		if p, err := parseProxy(s); err == nil {
			out = append(out, p)
		}
	}
	return out
}

// Warnings returns what an operator should hear about a valid config:
// things that work but are probably not meant. serve logs them.
func (c Config) Warnings() []string {
	var w []string
	if g := c.GitLab; g != nil && g.URL == "" {
		w = append(w, "gitlab.url is empty: dry run from the webhooks alone; they carry no diff, so signals on paths and added lines never fire, and nothing is written to GitLab. For a trial that classifies like the gate, set gitlab.url, gitlab.mode: dry_run and a token with read_api")
	} else if g != nil && g.Mode == ModeDryRun {
		w = append(w, "gitlab.mode is dry_run: threatgate reads merge requests from GitLab and writes nothing there (no status, note or label); merges are not gated")
	}
	if c.Web != nil && !loopback(c.Listen) {
		if c.Web.Console {
			w = append(w, "web.console is on and listen is not a loopback address: anyone who can reach "+c.Listen+" can act as anyone in the console")
		}
		if c.Web.DashboardTokenEnv == "" && c.Web.DashboardTokenFile == "" {
			w = append(w, "web has no dashboard_token_env or dashboard_token_file and listen is not a loopback address: anyone who can reach "+c.Listen+" can read the dashboard and /api")
		}
	}
	if c.Web != nil {
		for _, p := range c.Web.Proxies() {
			if p.Bits() == 0 {
				w = append(w, "web.trusted_proxies holds "+p.String()+", which trusts every address: any client can name the address its wrong dashboard tokens count against in X-Forwarded-For; list only your reverse proxies")
			}
		}
	}
	return w
}

func loopback(listen string) bool {
	host, _, err := net.SplitHostPort(listen)
	if err != nil {
		return false
	}
	if host == "localhost" {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}

// Secrets are the secrets of the integrations that are on. An empty one
// was not needed.
type Secrets struct {
	GitLabToken             bot.Secret // empty in dry run (gitlab.url "")
	GitLabWebhookSecret     bot.Secret
	GitLabStatusCheckSecret bot.Secret // empty unless gitlab.gate is external_status_check
	SlackBotToken           bot.Secret
	SlackSigningSecret      bot.Secret // empty in Socket Mode when none is set
	SlackAppToken           bot.Secret // set: Socket Mode
	DiscordBotToken         bot.Secret
	PagerDutyRoutingKey     bot.Secret
	DashboardToken          bot.Secret // empty when the dashboard needs no token
}

// LoadSecrets loads every secret that the integrations that are on need,
// through getenv (os.Getenv in serve) and the files named in the config.
// It reports every missing secret at once, as *policies.Problem values
// joined with errors.Join, and returns the warnings to log (secret files
// that others can read). See loadSecret for what is required of each.
func (c *Config) LoadSecrets(getenv func(string) string) (Secrets, []string, error) {
	var s Secrets
	var warnings []string
	var errs []error
	load := func(dst *bot.Secret, fn func(func(string) string) (bot.Secret, string, error)) {
		v, w, err := fn(getenv)
		*dst = v
		if w != "" {
			warnings = append(warnings, w)
		}
		if err != nil {
			errs = append(errs, err)
		}
	}
	if g := c.GitLab; g != nil {
		if g.URL != "" {
			load(&s.GitLabToken, g.Token)
		}
		load(&s.GitLabWebhookSecret, g.WebhookSecret)
		if g.Gate == GateExternalStatusCheck {
			load(&s.GitLabStatusCheckSecret, g.StatusCheckSecret)
		}
	}
	if sl := c.Slack; sl != nil {
		load(&s.SlackBotToken, sl.BotToken)
		if sl.AppTokenFile != "" || sl.AppTokenEnv != "" && strings.TrimSpace(getenv(sl.AppTokenEnv)) != "" {
			load(&s.SlackAppToken, sl.AppToken)
			// Over the socket, Slack's requests need no signature; a
			// signing secret, when there is one, still guards HTTP. A
			// file named for it must be readable all the same.
			if sl.SigningSecretFile != "" || strings.TrimSpace(getenv(sl.SigningSecretEnv)) != "" {
				load(&s.SlackSigningSecret, sl.SigningSecret)
			}
		} else {
			load(&s.SlackSigningSecret, sl.SigningSecret)
		}
	}
	if d := c.Discord; d != nil {
		load(&s.DiscordBotToken, d.BotToken)
	}
	if p := c.PagerDuty; p != nil {
		load(&s.PagerDutyRoutingKey, p.RoutingKey)
	}
	if w := c.Web; w != nil {
		load(&s.DashboardToken, w.DashboardToken)
	}
	return s, warnings, errors.Join(errs...)
}

// Token returns the GitLab API token. See loadSecret.
func (g *GitLabConfig) Token(getenv func(string) string) (bot.Secret, string, error) {
	return loadSecret("gitlab.token", g.TokenEnv, g.TokenFile, envGitLabToken, getenv)
}

// WebhookSecret returns the secret token GitLab sends with webhooks
// (X-Gitlab-Token). See loadSecret.
func (g *GitLabConfig) WebhookSecret(getenv func(string) string) (bot.Secret, string, error) {
	return loadSecret("gitlab.webhook_secret", g.WebhookSecretEnv, g.WebhookSecretFile, envGitLabWebhookSecret, getenv)
}

// StatusCheckSecret returns the HMAC secret of the external status check.
// See loadSecret.
func (g *GitLabConfig) StatusCheckSecret(getenv func(string) string) (bot.Secret, string, error) {
	return loadSecret("gitlab.status_check_secret", g.StatusCheckSecretEnv, g.StatusCheckSecretFile, envGitLabStatusCheckSecret, getenv)
}

// BotToken returns the Slack bot token (xoxb-…). See loadSecret.
func (s *SlackConfig) BotToken(getenv func(string) string) (bot.Secret, string, error) {
	return loadSecret("slack.bot_token", s.BotTokenEnv, s.BotTokenFile, envSlackBotToken, getenv)
}

// SigningSecret returns the Slack app's signing secret. See loadSecret.
func (s *SlackConfig) SigningSecret(getenv func(string) string) (bot.Secret, string, error) {
	return loadSecret("slack.signing_secret", s.SigningSecretEnv, s.SigningSecretFile, envSlackSigningSecret, getenv)
}

// AppToken returns the Slack app-level token (xapp-…) of Socket Mode. See
// loadSecret.
func (s *SlackConfig) AppToken(getenv func(string) string) (bot.Secret, string, error) {
	return loadSecret("slack.app_token", s.AppTokenEnv, s.AppTokenFile, envSlackAppToken, getenv)
}

// BotToken returns the Discord bot token. See loadSecret.
func (d *DiscordConfig) BotToken(getenv func(string) string) (bot.Secret, string, error) {
	return loadSecret("discord.bot_token", d.BotTokenEnv, d.BotTokenFile, envDiscordBotToken, getenv)
}

// RoutingKey returns the PagerDuty Events API v2 routing key. See
// loadSecret.
func (p *PagerDutyConfig) RoutingKey(getenv func(string) string) (bot.Secret, string, error) {
	return loadSecret("pagerduty.routing_key", p.RoutingKeyEnv, p.RoutingKeyFile, envPagerDutyRoutingKey, getenv)
}

// DashboardToken returns the bearer token of the dashboard and /api, or
// an empty Secret and no error when neither dashboard_token_env nor
// dashboard_token_file is set (the dashboard is open). See loadSecret.
func (w *WebConfig) DashboardToken(getenv func(string) string) (bot.Secret, string, error) {
	if w.DashboardTokenEnv == "" && w.DashboardTokenFile == "" {
		return "", "", nil
	}
	return loadSecret("web.dashboard_token", w.DashboardTokenEnv, w.DashboardTokenFile, "", getenv)
}

// loadSecret reads the secret named by key (such as "gitlab.token") from
// the environment variable envName through getenv, or from the file
// fileName; when both are empty, from the environment variable defEnv.
// Surrounding whitespace is trimmed.
//
// It returns the secret, a warning ("" if none) when the file can be read
// by its group or others, and a *policies.Problem when the variable is
// unset or empty, or the file is unreadable or empty. Neither the warning
// nor the error contains the secret.
func loadSecret(key, envName, fileName, defEnv string, getenv func(string) string) (bot.Secret, string, error) {
	if envName == "" && fileName == "" {
		envName = defEnv
	}
	if fileName == "" {
		if envName == "" {
			return "", "", &policies.Problem{Field: key + "_env", Msg: fmt.Sprintf("set %s_env or %s_file", lastPart(key), lastPart(key))}
		}
		v := strings.TrimSpace(getenv(envName))
		if v == "" {
			return "", "", &policies.Problem{Field: key + "_env", Msg: fmt.Sprintf("the environment variable %s is not set or is empty; put the secret in it, or in a file named by %s_file", envName, lastPart(key))}
		}
		return bot.Secret(v), "", nil
	}
	fail := func(format string, args ...any) (bot.Secret, string, error) {
		return "", "", &policies.Problem{Field: key + "_file", Msg: fmt.Sprintf(format, args...)}
	}
	f, err := os.Open(fileName)
	if err != nil {
		return fail("cannot read the secret file %s: %s", fileName, osErr(err))
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return fail("cannot read the secret file %s: %s", fileName, osErr(err))
	}
	if !fi.Mode().IsRegular() {
		return fail("the secret file %s is not a regular file", fileName)
	}
	data, err := io.ReadAll(io.LimitReader(f, maxSecretFileSize+1))
	if err != nil {
		return fail("cannot read the secret file %s: %s", fileName, osErr(err))
	}
	if len(data) > maxSecretFileSize {
		return fail("the secret file %s is larger than %d KiB; it should hold only the secret", fileName, maxSecretFileSize>>10)
	}
	v := string(bytes.TrimSpace(data))
	if v == "" {
		return fail("the secret file %s is empty", fileName)
	}
	warning := ""
	if perm := fi.Mode().Perm(); perm&0o077 != 0 && runtime.GOOS != "windows" {
		warning = fmt.Sprintf("the secret file %s (%s_file) can be read by its group or others (mode %04o); chmod 600 it", fileName, key, perm)
	}
	return bot.Secret(v), warning, nil
}

func lastPart(key string) string {
	_, after, _ := strings.Cut(key, ".")
	return after
}

// LogValue lists the settings for slog. There are no secrets in a Config;
// URLs are printed without user info, query or fragment all the same.
func (c Config) LogValue() slog.Value {
	return slog.GroupValue(c.attrs()...)
}

// String prints the settings as key=value pairs, like LogValue.
func (c Config) String() string {
	var b strings.Builder
	var walk func(prefix string, as []slog.Attr)
	walk = func(prefix string, as []slog.Attr) {
		for _, a := range as {
			if a.Value.Kind() == slog.KindGroup {
				walk(prefix+a.Key+".", a.Value.Group())
				continue
			}
			if b.Len() > 0 {
				b.WriteByte(' ')
			}
			fmt.Fprintf(&b, "%s%s=%s", prefix, a.Key, strconv.Quote(a.Value.String()))
		}
	}
	walk("", c.attrs())
	return b.String()
}

// GoString is String, so that %#v shows no more than %v.
func (c Config) GoString() string { return c.String() }

func (c Config) attrs() []slog.Attr {
	as := []slog.Attr{
		slog.String("listen", c.Listen),
		slog.String("data_dir", c.DataDir),
		slog.String("policy", c.Policy),
		slog.Int64("max_body_bytes", c.MaxBodyBytes),
	}
	if g := c.GitLab; g != nil {
		as = append(as, slog.Group("gitlab",
			"url", redactURL(g.URL),
			"token_env", g.TokenEnv, "token_file", g.TokenFile,
			"webhook_secret_env", g.WebhookSecretEnv, "webhook_secret_file", g.WebhookSecretFile,
			"mode", g.Mode, "status_name", g.StatusName, "gate", g.Gate, "status_check_name", g.StatusCheckName,
			"status_check_secret_env", g.StatusCheckSecretEnv, "status_check_secret_file", g.StatusCheckSecretFile,
			"reconcile_every", g.ReconcileEvery.String(), "reconcile_full_every", g.FullEvery().String(),
			"max_requests_per_minute", g.RequestsPerMinute(), "timeout", g.Timeout.String()))
	}
	if s := c.Slack; s != nil {
		as = append(as, slog.Group("slack",
			"bot_token_env", s.BotTokenEnv, "bot_token_file", s.BotTokenFile,
			"signing_secret_env", s.SigningSecretEnv, "signing_secret_file", s.SigningSecretFile,
			"app_token_env", s.AppTokenEnv, "app_token_file", s.AppTokenFile,
			"api_url", redactURL(s.APIURL), "team_id", s.TeamID, "channel", s.Channel, "security_channel", s.SecurityChannel))
	}
	if d := c.Discord; d != nil {
		as = append(as, slog.Group("discord",
			"bot_token_env", d.BotTokenEnv, "bot_token_file", d.BotTokenFile, "public_key", d.PublicKey,
			"api_url", redactURL(d.APIURL), "channel_id", d.ChannelID, "security_channel_id", d.SecurityChannelID,
			"application_id", d.ApplicationID))
	}
	if p := c.PagerDuty; p != nil {
		as = append(as, slog.Group("pagerduty",
			"routing_key_env", p.RoutingKeyEnv, "routing_key_file", p.RoutingKeyFile, "events_url", redactURL(p.EventsURL)))
	}
	if w := c.Web; w != nil {
		as = append(as, slog.Group("web",
			"public_url", redactURL(w.PublicURL),
			"dashboard_token_env", w.DashboardTokenEnv, "dashboard_token_file", w.DashboardTokenFile,
			"console", w.Console, "metrics_public", w.MetricsPublic,
			"trusted_proxies", strings.Join(w.TrustedProxies, ",")))
	}
	return as
}

// redactURL hides the user info, query and fragment of a URL, where a
// credential could hide; a URL that does not parse is hidden whole.
func redactURL(s string) string {
	if s == "" {
		return ""
	}
	u, err := url.Parse(s)
	if err != nil {
		return "[redacted]"
	}
	if u.User != nil {
		u.User = url.User("redacted")
	}
	if u.RawQuery != "" {
		u.RawQuery = "redacted"
	}
	if u.Fragment != "" {
		u.Fragment, u.RawFragment = "redacted", ""
	}
	return u.String()
}
