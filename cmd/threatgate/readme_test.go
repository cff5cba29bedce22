package main

import (
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
)

// readmeSection returns the text of README.md's section headed title.
func readmeSection(t *testing.T, title string) string {
	t.Helper()
	data, err := os.ReadFile("../../README.md")
	if err != nil {
		t.Fatal(err)
	}
	s := string(data)
	i := strings.Index(s, "\n## "+title+"\n")
	if i < 0 {
		t.Fatalf("README.md has no section %q", title)
	}
	s = s[i+len(title)+5:]
	if j := strings.Index(s, "\n## "); j >= 0 {
		s = s[:j]
	}
	return s
}

// yamlBlocks returns the ```yaml blocks of s, their indentation removed.
func yamlBlocks(s string) []string {
	var out []string
	for _, m := range regexp.MustCompile("(?s)\n( *)```yaml\n(.*?)\n *```").FindAllStringSubmatch(s, -1) {
		lines := strings.Split(m[2], "\n")
		for i, l := range lines {
			lines[i] = strings.TrimPrefix(l, m[1])
		}
		out = append(out, strings.Join(lines, "\n")+"\n")
	}
	return out
}

// TestReadmeGitLabRecipe walks README's GitLab recipe as written: its
// config, with exactly the variables it exports, loads, validates and has
// every secret serve needs; and the command it runs names that file.
func TestReadmeGitLabRecipe(t *testing.T) {
	sec := readmeSection(t, "Running the server against GitLab")
	blocks := yamlBlocks(sec)
	if len(blocks) != 1 {
		t.Fatalf("the recipe has %d yaml blocks, want 1", len(blocks))
	}
	env := map[string]string{}
	for _, m := range regexp.MustCompile(`(?m)^\s*export ([A-Z_]+)=`).FindAllStringSubmatch(sec, -1) {
		env[m[1]] = "value-of-" + m[1]
	}
	if len(env) == 0 {
		t.Fatal("the recipe exports no variable")
	}
	if !strings.Contains(sec, "serve --config threatgate.yaml") || !strings.Contains(sec, "Write `threatgate.yaml`") {
		t.Error("the recipe's command does not run the file it writes")
	}
	path := filepath.Join(t.TempDir(), "threatgate.yaml")
	if err := os.WriteFile(path, []byte(blocks[0]), 0o600); err != nil {
		t.Fatal(err)
	}
	cfg, s, _, err := loadChecked(path, envOf(env))
	if err != nil {
		t.Fatalf("the recipe's config, with the variables it exports:\n%v", err)
	}
	if cfg.GitLab == nil || cfg.GitLab.URL == "" || s.GitLabToken == "" || s.GitLabWebhookSecret == "" || s.DashboardToken == "" {
		t.Errorf("the recipe does not set up GitLab with its token, webhook secret and a dashboard token: %v", cfg)
	}
	// Every variable it exports is used: none is a leftover.
	for name := range env {
		if !strings.Contains(blocks[0], name) && name != envGitLabToken && name != envGitLabWebhookSecret {
			t.Errorf("the recipe exports %s, which its config does not read", name)
		}
	}
}

// TestReadmeDockerConfig: the config of "Running in Docker" loads and
// validates with its secret files in place, listens on every interface
// and keeps its data in the image's volume.
func TestReadmeDockerConfig(t *testing.T) {
	sec := readmeSection(t, "Running in Docker")
	blocks := yamlBlocks(sec)
	if len(blocks) != 1 {
		t.Fatalf("the Docker section has %d yaml blocks, want 1", len(blocks))
	}
	dir := t.TempDir()
	src := strings.ReplaceAll(blocks[0], "/run/secrets/", dir+"/")
	for _, f := range []string{"gitlab-token", "gitlab-webhook-secret", "dashboard-token"} {
		if !strings.Contains(src, dir+"/"+f) {
			t.Errorf("the Docker config does not read %s", f)
		}
		if err := os.WriteFile(filepath.Join(dir, f), []byte("secret-"+f+"\n"), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	path := filepath.Join(dir, "threatgate.yaml")
	if err := os.WriteFile(path, []byte(src), 0o600); err != nil {
		t.Fatal(err)
	}
	cfg, _, warnings, err := loadChecked(path, envOf(nil))
	if err != nil {
		t.Fatalf("the Docker config: %v", err)
	}
	if cfg.Listen != "0.0.0.0:8080" || cfg.DataDir != "/data" || len(warnings) != 0 || len(cfg.Warnings()) != 0 {
		t.Errorf("the Docker config: listen %q, data_dir %q, warnings %q %q", cfg.Listen, cfg.DataDir, warnings, cfg.Warnings())
	}
	df, err := os.ReadFile("../../Dockerfile")
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"EXPOSE 8080", `VOLUME ["/data"]`, "--chown=65532:65532 /out/data /data"} {
		if !strings.Contains(string(df), want) {
			t.Errorf("the Dockerfile lacks %q", want)
		}
	}
}
