package main

import (
	"bytes"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"reflect"
	"regexp"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/threatgate/threatgate/policies"
)

const exampleConfig = "../../examples/threatgate.yaml"

// writeConfig writes a config file into a fresh directory and returns its
// path.
func writeConfig(t testing.TB, src string) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), "threatgate.yaml")
	if err := os.WriteFile(p, []byte(src), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

// problemTexts returns the problems in err as "line:col: field: msg", the
// file name dropped, in order; it fails the test when err holds anything
// but Problems.
func problemTexts(t testing.TB, err error) []string {
	t.Helper()
	ps := policies.Problems(err)
	if err != nil && len(ps) == 0 {
		t.Fatalf("err = %v (%T), want *policies.Problem values", err, err)
	}
	var out []string
	for _, p := range ps {
		q := *p
		q.File = ""
		out = append(out, q.Error())
	}
	return out
}

func mustLoad(t testing.TB, src string) Config {
	t.Helper()
	c, err := LoadConfig(writeConfig(t, src))
	if err != nil {
		t.Fatalf("LoadConfig = %v", err)
	}
	return c
}

func TestDefaultConfig(t *testing.T) {
	c := DefaultConfig()
	if c.Listen != "127.0.0.1:8080" || c.DataDir != "./threatgate-data" || c.Policy != "" || c.MaxBodyBytes != 10<<20 {
		t.Errorf("DefaultConfig = %v", c)
	}
	if c.GitLab != nil || c.Slack != nil || c.Discord != nil || c.PagerDuty != nil || c.Web != nil {
		t.Errorf("DefaultConfig turns an integration on: %v", c)
	}
	if err := c.Validate(); err != nil {
		t.Errorf("DefaultConfig().Validate() = %v", err)
	}
	if got, want := c.PublicURL(), "http://127.0.0.1:8080"; got != want {
		t.Errorf("PublicURL = %q, want %q", got, want)
	}
}

func TestConfigEmptyFileIsDefault(t *testing.T) {
	for _, src := range []string{"", "\n", "# nothing yet\n", "~\n", "---\n"} {
		c := mustLoad(t, src)
		c.src = nil
		if c != DefaultConfig() {
			t.Errorf("LoadConfig(%q) = %v, want the defaults", src, c)
		}
	}
}

func TestConfigExampleLoadsAndValidates(t *testing.T) {
	c, err := LoadConfig(exampleConfig)
	if err != nil {
		t.Fatalf("LoadConfig(example) = %v", err)
	}
	if err := c.Validate(); err != nil {
		t.Fatalf("Validate(example) = %v", err)
	}
	if c.GitLab == nil || c.GitLab.URL != "https://gitlab.example.com" || c.GitLab.Gate != GateStatus {
		t.Errorf("example gitlab = %+v", c.GitLab)
	}
	if c.MaxBodyBytes != 10<<20 {
		t.Errorf("MaxBodyBytes = %d, want %d", c.MaxBodyBytes, 10<<20)
	}
	if got, want := c.PublicURL(), "https://threatgate.example.com"; got != want {
		t.Errorf("PublicURL = %q, want %q", got, want)
	}
	// serve refuses the sections that are not wired yet, so the example
	// keeps them commented out; they must be valid all the same.
	if c.Slack != nil || c.Discord != nil || c.PagerDuty != nil {
		t.Errorf("the example turns on an integration that is not wired yet: %v", c)
	}
	data, err := os.ReadFile(exampleConfig)
	if err != nil {
		t.Fatal(err)
	}
	uncommented := regexp.MustCompile(`(?m)^# ((slack|discord|pagerduty):|  \S)`).ReplaceAllString(string(data), "$1")
	full, err := parseConfig(exampleConfig, []byte(uncommented))
	if err != nil {
		t.Fatalf("example with every section: %v", err)
	}
	if err := full.Validate(); err != nil {
		t.Fatalf("example with every section: Validate = %v", err)
	}
	if full.Slack == nil || full.Discord == nil || full.PagerDuty == nil || full.Slack.Channel == "" || full.Discord.PublicKey == "" {
		t.Errorf("uncommenting the example did not turn on every section: %v", full)
	}

	doc, err := os.ReadFile("../../docs/CONFIG.md")
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(doc), "```yaml\n"+string(data)+"```\n") {
		t.Errorf("docs/CONFIG.md does not hold examples/threatgate.yaml verbatim in a yaml block")
	}
}

func TestConfigEmptySectionsTurnIntegrationsOn(t *testing.T) {
	c := mustLoad(t, "gitlab:\nslack: {team_id: T0TEAM, channel: C0ESC}\ndiscord: {}\npagerduty:\nweb:\n")
	if err := c.Validate(); err != nil {
		t.Fatalf("Validate = %v", err)
	}
	g := c.GitLab
	if g == nil || c.Slack == nil || c.Discord == nil || c.PagerDuty == nil || c.Web == nil {
		t.Fatalf("empty sections left an integration off: %v", c)
	}
	want := GitLabConfig{
		TokenEnv: "THREATGATE_GITLAB_TOKEN", WebhookSecretEnv: "THREATGATE_GITLAB_WEBHOOK_SECRET",
		StatusName: "threatgate/security-review", Gate: "status", Mode: "enforce", StatusCheckName: "threatgate/security-review",
		StatusCheckSecretEnv: "THREATGATE_GITLAB_STATUS_CHECK_SECRET", ReconcileEvery: 10 * time.Minute, Timeout: 10 * time.Second,
	}
	if !reflect.DeepEqual(*g, want) {
		t.Errorf("gitlab = %+v\nwant %+v", *g, want)
	}
	if *c.Slack != (SlackConfig{BotTokenEnv: "THREATGATE_SLACK_BOT_TOKEN", SigningSecretEnv: "THREATGATE_SLACK_SIGNING_SECRET", AppTokenEnv: "THREATGATE_SLACK_APP_TOKEN", APIURL: "https://slack.com/api/", TeamID: "T0TEAM", Channel: "C0ESC"}) {
		t.Errorf("slack = %+v", *c.Slack)
	}
	if *c.Discord != (DiscordConfig{BotTokenEnv: "THREATGATE_DISCORD_BOT_TOKEN", APIURL: "https://discord.com/api/v10"}) {
		t.Errorf("discord = %+v", *c.Discord)
	}
	if *c.PagerDuty != (PagerDutyConfig{RoutingKeyEnv: "THREATGATE_PAGERDUTY_ROUTING_KEY", EventsURL: "https://events.pagerduty.com"}) {
		t.Errorf("pagerduty = %+v", *c.PagerDuty)
	}
	if !reflect.DeepEqual(*c.Web, WebConfig{}) {
		t.Errorf("web = %+v", *c.Web)
	}
}

func TestConfigDefaultsAndDerivedValues(t *testing.T) {
	c := mustLoad(t, `gitlab:
  token_file: /run/secrets/token
  status_name: sec/review
slack:
  api_url: http://127.0.0.1:9999/api
  bot_token_file: /run/secrets/slack
  team_id: T0TEAM
  channel: C0ESC
max_body_bytes: 64KiB
`)
	if c.GitLab.TokenEnv != "" {
		t.Errorf("TokenEnv = %q with token_file set, want \"\"", c.GitLab.TokenEnv)
	}
	if c.GitLab.WebhookSecretEnv != "THREATGATE_GITLAB_WEBHOOK_SECRET" {
		t.Errorf("WebhookSecretEnv = %q, want the default", c.GitLab.WebhookSecretEnv)
	}
	if c.GitLab.StatusCheckName != "sec/review" {
		t.Errorf("StatusCheckName = %q, want status_name %q", c.GitLab.StatusCheckName, "sec/review")
	}
	if c.Slack.APIURL != "http://127.0.0.1:9999/api/" {
		t.Errorf("slack APIURL = %q, want a trailing /", c.Slack.APIURL)
	}
	if c.Slack.BotTokenEnv != "" || c.Slack.SigningSecretEnv != "THREATGATE_SLACK_SIGNING_SECRET" {
		t.Errorf("slack = %+v", *c.Slack)
	}
	if c.MaxBodyBytes != 64<<10 {
		t.Errorf("MaxBodyBytes = %d, want %d", c.MaxBodyBytes, 64<<10)
	}
	if err := c.Validate(); err != nil {
		t.Errorf("Validate = %v", err)
	}
}

func TestConfigLoadProblems(t *testing.T) {
	const secretsMsg = "secrets are not read from the config file; put it in the environment variable named by token_env or a file named by token_file"
	for _, tt := range []struct {
		name string
		src  string
		want []string // every problem, in order
	}{
		{"unknown top-level key", "listen: :8080\nlisten_addr: x\n",
			[]string{`2:1: unknown key "listen_addr"; want one of listen, data_dir, policy, max_body_bytes, gitlab, slack, discord, pagerduty, web, retention`}},
		{"retention days not a number", "retention:\n  closed_days: a year\n", []string{`2:16: retention.closed_days: want a whole number of days such as 365, got "a year"`}},
		{"retention days negative", "retention:\n  closed_days: -1\n", []string{`2:16: retention.closed_days: want a whole number of days`}},
		{"retention unknown key", "retention:\n  days: 365\n", []string{`2:3: retention: unknown key "days"; want one of closed_days`}},
		{"unknown key in a section", "gitlab:\n  url: https://gitlab.example.com\n  gate: status\n  project: 7\n",
			[]string{`4:3: gitlab: unknown key "project"; want one of url, mode, token_env`}},
		{"wrong type", "listen: [1]\n", []string{`1:9: listen: want a string, got a list`}},
		{"bad duration", "gitlab:\n  reconcile_every: soon\n", []string{`2:20: gitlab.reconcile_every: want a duration such as "90s", "10m" or "1h", got "soon"`}},
		{"bad bool", "web:\n  console: maybe\n", []string{`2:12: web.console: want true or false, got "maybe"`}},
		{"bad size", "max_body_bytes: lots\n", []string{`1:17: max_body_bytes: want a number of bytes`}},
		{"size too large", "max_body_bytes: 2GiB\n", []string{`1:17: max_body_bytes: want at most 1 GiB`}},
		{"token in the yaml", "gitlab:\n  token: abc\n", []string{"2:3: gitlab.token: " + secretsMsg}},
		{"private_token in the yaml", "gitlab:\n  private_token: abc\n", []string{"2:3: gitlab.private_token: " + secretsMsg}},
		{"webhook secret in the yaml", "gitlab:\n  webhook_secret: abc\n",
			[]string{"2:3: gitlab.webhook_secret: secrets are not read from the config file; put it in the environment variable named by webhook_secret_env or a file named by webhook_secret_file"}},
		{"signing secret in the yaml", "slack:\n  signing_secret: abc\n",
			[]string{"2:3: slack.signing_secret: secrets are not read from the config file; put it in the environment variable named by signing_secret_env or a file named by signing_secret_file"}},
		{"slack token in the yaml", "slack:\n  token: xoxb-abc\n",
			[]string{"2:3: slack.token: secrets are not read from the config file; put it in the environment variable named by bot_token_env"}},
		{"routing key in the yaml", "pagerduty:\n  routing_key: abc\n",
			[]string{"2:3: pagerduty.routing_key: secrets are not read from the config file; put it in the environment variable named by routing_key_env or a file named by routing_key_file"}},
		{"dashboard token in the yaml", "web:\n  dashboard_token: abc\n",
			[]string{"2:3: web.dashboard_token: secrets are not read from the config file; put it in the environment variable named by dashboard_token_env"}},
		{"secret at the top level", "gitlab_token: abc\n",
			[]string{"1:1: gitlab_token: secrets are not read from the config file; put each in the environment variable or the file named by its section's *_env or *_file key"}},
		{"duplicate key", "listen: :1\nlisten: :2\n", []string{"2:1: listen: duplicate key"}},
		{"section not a mapping", "gitlab: yes\n", []string{`1:9: gitlab: want a mapping with keys url, `, `; to turn the integration off, remove the section`}},
		{"top level not a mapping", "- a\n", []string{"1:1: want a mapping with keys listen"}},
		{"merge key", "base: &b {url: x}\n", []string{`1:1: unknown key "base"`}},
		{"not yaml", "listen: :8080\n  data_dir: x\n", []string{"2:1: not valid YAML: mapping values are not allowed in this context"}},
		{"every problem at once", "listen: [1]\ngitlab:\n  token: abc\n  timeout: soon\n  colour: red\nweb:\n  console: 3\n", []string{
			"1:9: listen: want a string",
			"3:3: gitlab.token: secrets are not read",
			"4:12: gitlab.timeout: want a duration",
			`5:3: gitlab: unknown key "colour"`,
			`7:12: web.console: want true or false, got "3"`,
		}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			path := writeConfig(t, tt.src)
			_, err := LoadConfig(path)
			if err == nil {
				t.Fatalf("LoadConfig = nil, want problems")
			}
			for _, p := range policies.Problems(err) {
				if p.File != path {
					t.Errorf("Problem.File = %q, want %q", p.File, path)
				}
			}
			got := problemTexts(t, err)
			if tt.name == "section not a mapping" {
				if len(got) != 1 || !strings.HasPrefix(got[0], tt.want[0]) || !strings.HasSuffix(got[0], tt.want[1]) {
					t.Errorf("problems = %q, want %q…%q", got, tt.want[0], tt.want[1])
				}
				return
			}
			if len(got) != len(tt.want) {
				t.Fatalf("problems = %q\nwant %q", got, tt.want)
			}
			for i := range got {
				if !strings.HasPrefix(got[i], tt.want[i]) {
					t.Errorf("problem %d = %q, want it to start %q", i, got[i], tt.want[i])
				}
			}
			if strings.Contains(err.Error(), "abc") {
				t.Errorf("the error repeats the secret: %v", err)
			}
		})
	}
}

func TestLoadConfigFileProblems(t *testing.T) {
	missing := filepath.Join(t.TempDir(), "nope.yaml")
	_, err := LoadConfig(missing)
	if got := problemTexts(t, err); len(got) != 1 || !strings.Contains(got[0], "cannot read the config") {
		t.Errorf("missing file: problems = %q", got)
	}

	big := writeConfig(t, "# "+strings.Repeat("x", 1<<20)+"\n")
	_, err = LoadConfig(big)
	if got := problemTexts(t, err); len(got) != 1 || !strings.Contains(got[0], "larger than 1 MiB") {
		t.Errorf("big file: problems = %q", got)
	}
}

func TestConfigValidate(t *testing.T) {
	for _, tt := range []struct {
		name string
		src  string
		want []string // "line:col: field: start of the message"; nil = valid
	}{
		{"defaults", "", nil},
		{"retention a year", "retention:\n  closed_days: 365\n", nil},
		{"retention off", "retention:\n  closed_days: 0\n", nil},
		{"retention at the least", "retention:\n  closed_days: 30\n", nil},
		{"retention too short", "retention:\n  closed_days: 29\n", []string{"2:16: retention.closed_days: want 0 (keep everything) or at least 30 days, got 29"}},
		{"listen without a port", "listen: localhost\n", []string{`1:9: listen: want host:port such as "127.0.0.1:8080" or ":8080", got "localhost"`}},
		{"listen with a bad port", "listen: ':http'\n", []string{`1:9: listen: want host:port`}},
		{"listen on every interface", "listen: ':0'\n", nil},
		{"listen on ipv6", "listen: '[::1]:8080'\n", nil},
		{"empty data dir", "data_dir: ''\n", []string{"1:11: data_dir: want a directory"}},
		{"body limit too small", "max_body_bytes: 100\n", []string{"1:17: max_body_bytes: want from 1 KiB (1024) to 1 GiB (1073741824), got 100"}},
		{"body limit at the top", "max_body_bytes: 1GiB\n", nil},
		{"gate", "gitlab:\n  gate: required\n", []string{`2:9: gitlab.gate: want "status" or "external_status_check", got "required"`}},
		{"external status check", "gitlab:\n  gate: external_status_check\n", nil},
		{"empty status name", "gitlab:\n  status_name: ''\n", []string{"2:16: gitlab.status_name: want the name"}},
		{"gitlab url not http", "gitlab:\n  url: ftp://gitlab.example.com\n", []string{`2:8: gitlab.url: want an absolute http or https URL such as "https://gitlab.example.com", got "ftp://gitlab.example.com"`}},
		{"gitlab url without host", "gitlab:\n  url: gitlab.example.com\n", []string{`2:8: gitlab.url: want an absolute http or https URL`}},
		{"gitlab url with user info", "gitlab:\n  url: https://bot:glpat-abc@gitlab.example.com\n", []string{"2:8: gitlab.url: want a URL without a user name or password"}},
		{"gitlab url with a query", "gitlab:\n  url: https://gitlab.example.com/?private_token=glpat-abc\n", []string{"2:8: gitlab.url: want a URL without a query"}},
		{"gitlab url with a fragment", "gitlab:\n  url: https://gitlab.example.com/#x\n", []string{"2:8: gitlab.url: want a URL without a query"}},
		{"gitlab url with a path", "gitlab:\n  url: http://127.0.0.1:8929/gitlab\n", nil},
		{"reconcile too often", "gitlab:\n  reconcile_every: 30s\n", []string{"2:20: gitlab.reconcile_every: want at least 1m, got 30s"}},
		{"reconcile every minute", "gitlab:\n  reconcile_every: 1m\n", nil},
		{"zero timeout", "gitlab:\n  timeout: 0s\n", []string{"2:12: gitlab.timeout: want more than 0s and at most 2m, got 0s"}},
		{"timeout too long", "gitlab:\n  timeout: 3m\n", []string{"2:12: gitlab.timeout: want more than 0s and at most 2m, got 3m"}},
		{"timeout of two minutes", "gitlab:\n  timeout: 2m\n", nil},
		{"token env and file", "gitlab:\n  token_env: GL_TOKEN\n  token_file: /run/secrets/gl\n", []string{"3:15: gitlab.token_file: set one of token_env and token_file"}},
		{"webhook secret env and file", "gitlab:\n  webhook_secret_file: s\n  webhook_secret_env: X\n", []string{"2:24: gitlab.webhook_secret_file: set one of webhook_secret_env and webhook_secret_file"}},
		{"slack env and file", "slack:\n  team_id: T0TEAM\n  channel: C0ESC\n  signing_secret_env: X\n  signing_secret_file: s\n", []string{"5:24: slack.signing_secret_file: set one of signing_secret_env and signing_secret_file"}},
		{"pagerduty env and file", "pagerduty:\n  routing_key_env: X\n  routing_key_file: s\n", []string{"3:21: pagerduty.routing_key_file: set one of routing_key_env and routing_key_file"}},
		{"dashboard env and file", "web:\n  dashboard_token_env: X\n  dashboard_token_file: s\n", []string{"3:25: web.dashboard_token_file: set one of dashboard_token_env and dashboard_token_file"}},
		{"env name that is a secret", "gitlab:\n  token_env: glpat-abc\n", []string{"2:14: gitlab.token_env: want the name of an environment variable (letters, digits and _, such as THREATGATE_GITLAB_TOKEN); secrets are not read from the config file"}},
		{"env name with a space", "discord:\n  bot_token_env: MY TOKEN\n", []string{"2:18: discord.bot_token_env: want the name of an environment variable"}},
		{"public url relative", "web:\n  public_url: /threatgate\n", []string{`2:15: web.public_url: want an absolute http or https URL such as "https://threatgate.example.com", got "/threatgate"`}},
		{"public url", "web:\n  public_url: https://sec.example.com/threatgate/\n", nil},
		{"slack api url", "slack:\n  api_url: slack.com\n  team_id: T0TEAM\n  channel: C0ESC\n", []string{"2:12: slack.api_url: want an absolute http or https URL"}},
		{"discord api url", "discord:\n  api_url: ''\n", []string{"2:12: discord.api_url: want an absolute http or https URL"}},
		{"pagerduty events url", "pagerduty:\n  events_url: mailto:oncall@example.com\n", []string{"2:15: pagerduty.events_url: want an absolute http or https URL"}},
		{"discord public key", "discord:\n  public_key: abc\n", []string{"2:15: discord.public_key: want the application's public key"}},
		{"discord ids", "discord:\n  channel_id: general\n  application_id: 12\n", []string{`2:15: discord.channel_id: want a Discord id (digits only), got "general"`}},
		{"every problem at once", "listen: x\ngitlab:\n  gate: g\n  timeout: 0s\nweb:\n  public_url: x\n", []string{
			"1:9: listen:", "3:9: gitlab.gate:", "4:12: gitlab.timeout:", "6:15: web.public_url:",
		}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			path := writeConfig(t, tt.src)
			c, err := LoadConfig(path)
			if err != nil {
				t.Fatalf("LoadConfig = %v", err)
			}
			err = c.Validate()
			got := problemTexts(t, err)
			if len(got) != len(tt.want) {
				t.Fatalf("Validate problems = %q\nwant %q", got, tt.want)
			}
			for i := range got {
				if !strings.HasPrefix(got[i], tt.want[i]) {
					t.Errorf("problem %d = %q\nwant it to start %q", i, got[i], tt.want[i])
				}
			}
			for _, p := range policies.Problems(err) {
				if p.File != path {
					t.Errorf("Problem.File = %q, want %q", p.File, path)
				}
			}
			if err != nil && strings.Contains(err.Error(), "glpat-abc") {
				t.Errorf("the error repeats the secret: %v", err)
			}
		})
	}
}

func TestConfigValidateWithoutFile(t *testing.T) {
	c := DefaultConfig()
	c.GitLab = &GitLabConfig{Gate: "status"}
	err := c.Validate()
	got := problemTexts(t, err)
	want := []string{
		"gitlab.token_env: set token_env or token_file",
		"gitlab.webhook_secret_env: set webhook_secret_env or webhook_secret_file",
		"gitlab.status_check_secret_env: set status_check_secret_env or status_check_secret_file",
		"gitlab.status_name: want the name of the commit status",
		"gitlab.reconcile_every: want at least 1m, got 0s",
		"gitlab.timeout: want more than 0s and at most 2m, got 0s",
	}
	if len(got) != len(want) {
		t.Fatalf("problems = %q\nwant %q", got, want)
	}
	for i := range want {
		if !strings.HasPrefix(got[i], want[i]) {
			t.Errorf("problem %d = %q, want it to start %q", i, got[i], want[i])
		}
	}
	for _, p := range policies.Problems(err) {
		if p.File != "" || p.Line != 0 {
			t.Errorf("a problem of a Config built in code points into a file: %v", p)
		}
	}

	c = mustLoad(t, "gitlab:\n  gate: external_status_check\n")
	c.GitLab.StatusCheckName = ""
	if got := problemTexts(t, c.Validate()); len(got) != 1 || !strings.HasPrefix(got[0], "gitlab.status_check_name: want the name") {
		t.Errorf("external status check without a name: problems = %q", got)
	}
}

func TestConfigRelativePaths(t *testing.T) {
	path := writeConfig(t, "policy: policy.yaml\ndata_dir: data\ngitlab:\n  token_file: secrets/token\n  webhook_secret_file: /run/secrets/hook\n")
	dir := filepath.Dir(path)
	c, err := LoadConfig(path)
	if err != nil {
		t.Fatal(err)
	}
	for _, tt := range []struct{ name, got, want string }{
		{"Policy", c.Policy, filepath.Join(dir, "policy.yaml")},
		{"DataDir", c.DataDir, filepath.Join(dir, "data")},
		{"TokenFile", c.GitLab.TokenFile, filepath.Join(dir, "secrets", "token")},
		{"WebhookSecretFile", c.GitLab.WebhookSecretFile, "/run/secrets/hook"},
	} {
		if tt.got != tt.want {
			t.Errorf("%s = %q, want %q", tt.name, tt.got, tt.want)
		}
	}
	// Defaults not written in the file stay as they are.
	c = mustLoad(t, "listen: ':8080'\n")
	if c.DataDir != "./threatgate-data" || c.Policy != "" {
		t.Errorf("DataDir, Policy = %q, %q, want the defaults", c.DataDir, c.Policy)
	}
}

func TestConfigPublicURL(t *testing.T) {
	for _, tt := range []struct{ listen, public, want string }{
		{"127.0.0.1:8080", "", "http://127.0.0.1:8080"},
		{":8080", "", "http://localhost:8080"},
		{"0.0.0.0:9000", "", "http://localhost:9000"},
		{"[::]:9000", "", "http://localhost:9000"},
		{"[::1]:9000", "", "http://[::1]:9000"},
		{":8080", "https://sec.example.com/tg/", "https://sec.example.com/tg"},
	} {
		c := DefaultConfig()
		c.Listen = tt.listen
		if tt.public != "" {
			c.Web = &WebConfig{PublicURL: tt.public}
		}
		if got := c.PublicURL(); got != tt.want {
			t.Errorf("PublicURL(listen %q, public_url %q) = %q, want %q", tt.listen, tt.public, got, tt.want)
		}
	}
}

// TestConsoleRefusedWithARealGitLab: the console's "act as anyone" must
// never approve a real merge request.
func TestConsoleRefusedWithARealGitLab(t *testing.T) {
	c := mustLoad(t, "gitlab:\n  url: https://gitlab.example.com\nweb:\n  console: true\n")
	err := c.Validate()
	if err == nil || !strings.Contains(err.Error(), "web.console: the console lets anyone act as anyone") {
		t.Errorf("Validate = %v, want a problem at web.console", err)
	}
}

func TestConfigWarnings(t *testing.T) {
	c := mustLoad(t, "listen: ':8080'\ngitlab:\nweb:\n  console: true\n")
	got := strings.Join(c.Warnings(), "\n")
	for _, want := range []string{"dry run", "web.console is on", "can read the dashboard"} {
		if !strings.Contains(got, want) {
			t.Errorf("Warnings = %q, want one with %q", got, want)
		}
	}
	if w := mustLoad(t, "web:\n  console: true\n").Warnings(); len(w) != 0 {
		t.Errorf("Warnings on loopback = %q, want none", w)
	}
}

func envOf(m map[string]string) func(string) string {
	return func(k string) string { return m[k] }
}

func writeSecret(t *testing.T, content string, mode os.FileMode) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), "secret")
	if err := os.WriteFile(p, []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(p, mode); err != nil {
		t.Fatal(err)
	}
	return p
}

func TestConfigSecretFromEnv(t *testing.T) {
	c := mustLoad(t, "gitlab:\n  token_env: GL_TOKEN\n")
	tok, warn, err := c.GitLab.Token(envOf(map[string]string{"GL_TOKEN": "  glpat-s3cr3t\n"}))
	if err != nil || warn != "" {
		t.Fatalf("Token = _, %q, %v", warn, err)
	}
	if tok.Reveal() != "glpat-s3cr3t" {
		t.Errorf("Token = %q, want the trimmed value", tok.Reveal())
	}
	// The default variable when the file names none.
	s, _, err := mustLoad(t, "gitlab:\n").GitLab.WebhookSecret(envOf(map[string]string{"THREATGATE_GITLAB_WEBHOOK_SECRET": "hook"}))
	if err != nil || s.Reveal() != "hook" {
		t.Errorf("WebhookSecret = %q, %v, want %q", s.Reveal(), err, "hook")
	}
}

func TestConfigSecretFromFile(t *testing.T) {
	p := writeSecret(t, "xoxb-s3cr3t\n", 0o600)
	c := mustLoad(t, "slack:\n  bot_token_file: "+p+"\n")
	tok, warn, err := c.Slack.BotToken(envOf(map[string]string{"THREATGATE_SLACK_BOT_TOKEN": "from-env"}))
	if err != nil || warn != "" {
		t.Fatalf("BotToken = _, %q, %v", warn, err)
	}
	if tok.Reveal() != "xoxb-s3cr3t" {
		t.Errorf("BotToken = %q, want the file's content without the newline", tok.Reveal())
	}
}

func TestConfigSecretFileReadableByOthersWarns(t *testing.T) {
	if runtime.GOOS == "windows" {
		t.Skip("needs Unix file permissions, which Windows does not have; threatgate's targets are Linux")
	}
	p := writeSecret(t, "R0UT1NG\n", 0o644)
	c := mustLoad(t, "pagerduty:\n  routing_key_file: "+p+"\n")
	key, warn, err := c.PagerDuty.RoutingKey(envOf(nil))
	if err != nil || key.Reveal() != "R0UT1NG" {
		t.Fatalf("RoutingKey = %q, %v", key.Reveal(), err)
	}
	if !strings.Contains(warn, p) || !strings.Contains(warn, "0644") || !strings.Contains(warn, "pagerduty.routing_key_file") {
		t.Errorf("warning = %q, want the file, its mode and the key", warn)
	}
	if strings.Contains(warn, "R0UT1NG") {
		t.Errorf("the warning contains the secret: %q", warn)
	}
}

func TestConfigSecretMissing(t *testing.T) {
	const secret = "glpat-must-not-leak"
	c := mustLoad(t, "gitlab:\n  token_env: GL_TOKEN\n  webhook_secret_file: nope\n")
	env := envOf(map[string]string{"THREATGATE_GITLAB_TOKEN": secret, "GL_TOKEN2": secret})

	var errs []error
	_, _, err := c.GitLab.Token(env)
	errs = append(errs, err)
	if got := problemTexts(t, err); len(got) != 1 || !strings.Contains(got[0], "gitlab.token_env: the environment variable GL_TOKEN is not set or is empty") {
		t.Errorf("Token problems = %q", got)
	}
	_, _, err = c.GitLab.WebhookSecret(env)
	errs = append(errs, err)
	if got := problemTexts(t, err); len(got) != 1 || !strings.Contains(got[0], "gitlab.webhook_secret_file: cannot read the secret file "+filepath.Join(filepath.Dir(c.src.file), "nope")) {
		t.Errorf("WebhookSecret problems = %q", got)
	}
	empty := writeSecret(t, " \n", 0o600)
	_, _, err = (&DiscordConfig{BotTokenFile: empty}).BotToken(env)
	errs = append(errs, err)
	if got := problemTexts(t, err); len(got) != 1 || !strings.Contains(got[0], "discord.bot_token_file: the secret file "+empty+" is empty") {
		t.Errorf("BotToken problems = %q", got)
	}
	_, _, err = (&SlackConfig{SigningSecretEnv: "EMPTY"}).SigningSecret(envOf(map[string]string{"EMPTY": "  "}))
	errs = append(errs, err)
	if got := problemTexts(t, err); len(got) != 1 || !strings.Contains(got[0], "EMPTY is not set or is empty") {
		t.Errorf("SigningSecret problems = %q", got)
	}
	for _, e := range errs {
		if e == nil || strings.Contains(e.Error(), secret) {
			t.Errorf("error = %v, want one without the secret", e)
		}
	}
}

func TestConfigLoadSecrets(t *testing.T) {
	const secret = "s3cr3t-value"
	c := mustLoad(t, "gitlab:\n  gate: external_status_check\nweb:\n")
	// Dry run: no token needed; the webhook and status check secrets are.
	s, warns, err := c.LoadSecrets(envOf(map[string]string{"THREATGATE_GITLAB_WEBHOOK_SECRET": secret}))
	got := problemTexts(t, err)
	if len(got) != 1 || !strings.Contains(got[0], "THREATGATE_GITLAB_STATUS_CHECK_SECRET is not set") {
		t.Errorf("LoadSecrets problems = %q, want only the status check secret", got)
	}
	if s.GitLabWebhookSecret.Reveal() != secret || s.GitLabToken != "" || s.DashboardToken != "" || len(warns) != 0 {
		t.Errorf("LoadSecrets = %+v, %q", s, warns)
	}
	if strings.Contains(fmt.Sprint(err), secret) {
		t.Errorf("error contains the secret: %v", err)
	}
	for _, out := range []string{fmt.Sprintf("%v", s), fmt.Sprintf("%+v", s), fmt.Sprintf("%#v", s)} {
		if strings.Contains(out, secret) {
			t.Errorf("Secrets prints the secret: %s", out)
		}
	}

	// Every missing secret at once.
	c = mustLoad(t, "gitlab:\n  url: https://gitlab.example.com\nslack:\ndiscord:\npagerduty:\nweb:\n  dashboard_token_env: DASH\n")
	_, _, err = c.LoadSecrets(envOf(nil))
	got = problemTexts(t, err)
	want := []string{"gitlab.token_env", "gitlab.webhook_secret_env", "slack.bot_token_env", "slack.signing_secret_env", "discord.bot_token_env", "pagerduty.routing_key_env", "web.dashboard_token_env"}
	if len(got) != len(want) {
		t.Fatalf("LoadSecrets problems = %q, want %d", got, len(want))
	}
	for i := range want {
		if !strings.HasPrefix(got[i], want[i]+":") {
			t.Errorf("problem %d = %q, want field %s", i, got[i], want[i])
		}
	}
}

func TestConfigPrintsNoSecrets(t *testing.T) {
	c := mustLoad(t, `gitlab:
  url: https://bot:hunter2@gitlab.example.com/?private_token=hunter3#hunter4
web:
  public_url: https://threatgate.example.com
`)
	var buf bytes.Buffer
	slog.New(slog.NewTextHandler(&buf, nil)).Info("config", "config", c)
	for _, out := range []string{c.String(), fmt.Sprintf("%v", c), fmt.Sprintf("%+v", c), fmt.Sprintf("%#v", c), buf.String()} {
		for _, s := range []string{"hunter2", "hunter3", "hunter4"} {
			if strings.Contains(out, s) {
				t.Errorf("printing the config shows %q: %s", s, out)
			}
		}
		if !strings.Contains(out, "gitlab.example.com") || !strings.Contains(out, "THREATGATE_GITLAB_TOKEN") {
			t.Errorf("printing the config leaves out settings: %s", out)
		}
	}
	if err := c.Validate(); err == nil || strings.Contains(err.Error(), "hunter") {
		t.Errorf("Validate = %v, want a problem that does not show the credentials", err)
	}
}

// FuzzParseConfig: any input gives a Config or Problems, never a panic,
// and Validate copes with whatever was decoded.
func FuzzParseConfig(f *testing.F) {
	data, err := os.ReadFile(exampleConfig)
	if err != nil {
		f.Fatal(err)
	}
	f.Add(data)
	f.Add([]byte(""))
	f.Add([]byte("gitlab:\nslack:\ndiscord:\npagerduty:\nweb:\n"))
	f.Add([]byte("gitlab:\n  token: abc\n  timeout: soon\nlisten: [1]\n"))
	f.Add([]byte("a: &a [*a]\ngitlab: *a\n"))
	f.Add([]byte("max_body_bytes: 99999999999999999999GiB\n"))
	f.Fuzz(func(t *testing.T, data []byte) {
		c, err := parseConfig("fuzz.yaml", data)
		if err != nil {
			var p *policies.Problem
			if !errors.As(err, &p) {
				t.Fatalf("err = %v (%T), want Problems", err, err)
			}
			return
		}
		_ = c.Validate()
		_ = c.String()
		_ = c.Warnings()
	})
}

// TestConfigSlackSocketModeSecrets: with an app-level token Slack runs
// over Socket Mode and needs no signing secret; a signing secret file that
// is named but unreadable is reported all the same.
func TestConfigSlackSocketModeSecrets(t *testing.T) {
	c := mustLoad(t, "slack: {team_id: T0TEAM, channel: C0ESC}\n")
	env := map[string]string{"THREATGATE_SLACK_BOT_TOKEN": "xoxb-1", "THREATGATE_SLACK_APP_TOKEN": "xapp-1"}
	s, _, err := c.LoadSecrets(envOf(env))
	if err != nil || s.SlackAppToken.Reveal() != "xapp-1" || s.SlackSigningSecret != "" {
		t.Errorf("socket mode without a signing secret: %+v, %v", s, err)
	}
	env["THREATGATE_SLACK_SIGNING_SECRET"] = "sign"
	if s, _, err = c.LoadSecrets(envOf(env)); err != nil || s.SlackSigningSecret.Reveal() != "sign" {
		t.Errorf("socket mode with a signing secret: %v", err)
	}
	// Without the app token: HTTP mode, the signing secret is required.
	if _, _, err = c.LoadSecrets(envOf(map[string]string{"THREATGATE_SLACK_BOT_TOKEN": "xoxb-1"})); err == nil || !strings.Contains(err.Error(), "slack.signing_secret_env") {
		t.Errorf("HTTP mode without a signing secret: %v", err)
	}
	c = mustLoad(t, "slack: {team_id: T0TEAM, channel: C0ESC, signing_secret_file: /nonexistent/secret}\n")
	if _, _, err = c.LoadSecrets(envOf(map[string]string{"THREATGATE_SLACK_BOT_TOKEN": "xoxb-1", "THREATGATE_SLACK_APP_TOKEN": "xapp-1"})); err == nil || !strings.Contains(err.Error(), "slack.signing_secret_file") {
		t.Errorf("an unreadable signing secret file in socket mode: %v", err)
	}
}

func TestConfigRetention(t *testing.T) {
	c, err := LoadConfig(writeConfig(t, "retention:\n  closed_days: 365\n"))
	if err != nil {
		t.Fatal(err)
	}
	if c.Retention == nil || c.Retention.ClosedDays != 365 || c.Retention.Closed() != 365*24*time.Hour {
		t.Errorf("Retention = %+v", c.Retention)
	}
	if d := DefaultConfig().Retention.Closed(); d != 0 {
		t.Errorf("default retention = %s, want 0 (off)", d)
	}
}
