package main

import (
	"slices"
	"strings"
	"testing"
)

// TestConfigGitLabProjects: gitlab.projects names projects reconcile
// lists before any webhook or escalation of theirs; each is a path with
// its namespace, listed once.
func TestConfigGitLabProjects(t *testing.T) {
	c := mustLoad(t, "gitlab:\n  projects: [shop/api, grp/sub/web]\n")
	if want := []string{"shop/api", "grp/sub/web"}; !slices.Equal(c.GitLab.Projects, want) {
		t.Errorf("gitlab.projects = %v, want %v", c.GitLab.Projects, want)
	}
	for src, want := range map[string]string{
		"gitlab:\n  projects: [api]\n":                `2:14: gitlab.projects[0]: want a project path with its namespace such as "shop/api", got "api"`,
		"gitlab:\n  projects: [shop/api, shop/api]\n": `2:24: gitlab.projects[1]: "shop/api" is listed twice`,
		"gitlab:\n  projects: shop/api\n":             "2:13: gitlab.projects: want a list",
	} {
		c, err := LoadConfig(writeConfig(t, src))
		if err == nil {
			err = c.Validate()
		}
		got := problemTexts(t, err)
		if len(got) != 1 || !strings.HasPrefix(got[0], want) {
			t.Errorf("%q: problems %q, want %q", src, got, want)
		}
	}
}
