package main

import (
	"net/netip"
	"reflect"
	"strings"
	"testing"
)

func TestConfigMetricsPublicAndTrustedProxies(t *testing.T) {
	c := mustLoad(t, "web:\n  metrics_public: true\n  trusted_proxies: [10.0.0.0/8, 127.0.0.1, '::1', '2001:db8::/32', 192.168.1.7/24]\n")
	if err := c.Validate(); err != nil {
		t.Fatalf("Validate = %v", err)
	}
	if !c.Web.MetricsPublic {
		t.Error("MetricsPublic = false, want true")
	}
	want := []netip.Prefix{
		netip.MustParsePrefix("10.0.0.0/8"), netip.MustParsePrefix("127.0.0.1/32"), netip.MustParsePrefix("::1/128"),
		netip.MustParsePrefix("2001:db8::/32"), netip.MustParsePrefix("192.168.1.0/24"),
	}
	if got := c.Web.Proxies(); !reflect.DeepEqual(got, want) {
		t.Errorf("Proxies = %v, want %v", got, want)
	}
	if s := c.String(); !strings.Contains(s, `web.metrics_public="true"`) || !strings.Contains(s, "10.0.0.0/8,127.0.0.1") {
		t.Errorf("String leaves out the new keys: %s", s)
	}

	// Both off by default.
	c = mustLoad(t, "web:\n")
	if c.Web.MetricsPublic || len(c.Web.Proxies()) != 0 {
		t.Errorf("web defaults = %+v, want metrics_public off and no trusted proxies", *c.Web)
	}
}

func TestConfigMetricsPublicAndTrustedProxiesProblems(t *testing.T) {
	for _, tt := range []struct{ name, src, want string }{
		{"metrics_public not a bool", "web:\n  metrics_public: sometimes\n", `2:19: web.metrics_public: want true or false, got "sometimes"`},
		{"metrics_public a list", "web:\n  metrics_public: [yes]\n", `2:19: web.metrics_public: want true or false, got a list`},
		{"trusted_proxies not a list", "web:\n  trusted_proxies: 10.0.0.1\n", `2:20: web.trusted_proxies: want a list, got "10.0.0.1"`},
		{"trusted_proxies item not a string", "web:\n  trusted_proxies:\n    - {ip: 10.0.0.1}\n", `3:7: web.trusted_proxies[0]: want a string, got a mapping`},
	} {
		t.Run(tt.name, func(t *testing.T) {
			_, err := LoadConfig(writeConfig(t, tt.src))
			if got := problemTexts(t, err); len(got) != 1 || got[0] != tt.want {
				t.Errorf("problems = %q, want %q", got, tt.want)
			}
		})
	}
	c := mustLoad(t, "web:\n  trusted_proxies:\n    - 10.0.0.1\n    - proxy.internal\n    - 10.0.0.0/33\n    - 'fe80::1%eth0'\n")
	got := problemTexts(t, c.Validate())
	want := []string{
		`4:7: web.trusted_proxies[1]: want an IP address or a CIDR prefix such as "10.0.0.0/8" or "::1", got "proxy.internal"`,
		`5:7: web.trusted_proxies[2]: want an IP address or a CIDR prefix`,
		`6:7: web.trusted_proxies[3]: want an IP address or a CIDR prefix`,
	}
	if len(got) != len(want) {
		t.Fatalf("problems = %q\nwant %q", got, want)
	}
	for i := range want {
		if !strings.HasPrefix(got[i], want[i]) {
			t.Errorf("problem %d = %q, want it to start %q", i, got[i], want[i])
		}
	}
}

func TestConfigWarnsWhenEveryAddressIsAProxy(t *testing.T) {
	c := mustLoad(t, "web:\n  trusted_proxies: [0.0.0.0/0]\n")
	if w := strings.Join(c.Warnings(), "\n"); !strings.Contains(w, "trusts every address") {
		t.Errorf("Warnings = %q, want one about 0.0.0.0/0", w)
	}
	if w := mustLoad(t, "web:\n  trusted_proxies: [127.0.0.1]\n").Warnings(); len(w) != 0 {
		t.Errorf("Warnings = %q, want none", w)
	}
}
