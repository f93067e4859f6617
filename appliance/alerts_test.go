package appliance

import (
	"os"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"go.yaml.in/yaml/v2"
)

// alertRules is the layout of a Prometheus rule file (the fields the
// example uses; strict decoding refuses anything else).
type alertRules struct {
	Groups []struct {
		Name  string `yaml:"name"`
		Rules []struct {
			Alert       string            `yaml:"alert"`
			Expr        string            `yaml:"expr"`
			For         string            `yaml:"for"`
			Labels      map[string]string `yaml:"labels"`
			Annotations map[string]string `yaml:"annotations"`
		} `yaml:"rules"`
	} `yaml:"groups"`
}

var metricRefRE = regexp.MustCompile(`\bfwpair_[a-z0-9_]+`)

// TestAlertRules loads etc/fwpair-alerts.yml strictly and checks that
// every metric its expressions use is one the daemon exports, and that
// the four alerts the issue asks for are there. (The Prometheus rule
// checker lives in the prometheus/prometheus module, too large a
// dependency for this.)
func TestAlertRules(t *testing.T) {
	b, err := os.ReadFile("../etc/fwpair-alerts.yml")
	if err != nil {
		t.Fatal(err)
	}
	var r alertRules
	if err := yaml.UnmarshalStrict(b, &r); err != nil {
		t.Fatalf("fwpair-alerts.yml: %v", err)
	}
	known := metricNames()
	for _, n := range []string{metricCommitSeconds} {
		known = append(known, n+"_bucket", n+"_sum", n+"_count")
	}
	var alerts []string
	for _, g := range r.Groups {
		if g.Name == "" || len(g.Rules) == 0 {
			t.Errorf("group %q: needs a name and rules", g.Name)
		}
		for _, rule := range g.Rules {
			alerts = append(alerts, rule.Alert)
			if rule.Alert == "" || strings.TrimSpace(rule.Expr) == "" {
				t.Errorf("rule %q: needs alert and expr", rule.Alert)
			}
			if rule.For != "" {
				if _, err := time.ParseDuration(rule.For); err != nil {
					t.Errorf("rule %s: for: %v", rule.Alert, err)
				}
			}
			if rule.Labels["severity"] == "" || rule.Annotations["summary"] == "" {
				t.Errorf("rule %s: needs labels.severity and annotations.summary", rule.Alert)
			}
			if strings.Count(rule.Expr, "(") != strings.Count(rule.Expr, ")") {
				t.Errorf("rule %s: unbalanced parentheses in %q", rule.Alert, rule.Expr)
			}
			refs := metricRefRE.FindAllString(rule.Expr, -1)
			if len(refs) == 0 {
				t.Errorf("rule %s: uses no fwpair metric", rule.Alert)
			}
			for _, m := range refs {
				if !slices.Contains(known, m) {
					t.Errorf("rule %s: metric %s is not exported by fwpaird", rule.Alert, m)
				}
			}
		}
	}
	for _, want := range []string{"FwpairSyncPeerDown", "FwpairReplicationStalled", "FwpairSplitBrain", "FwpairTransitionsFlapping"} {
		if !slices.Contains(alerts, want) {
			t.Errorf("alert %s missing", want)
		}
	}
}

// TestMetricsDocumented: docs/metrics.md names every metric.
func TestMetricsDocumented(t *testing.T) {
	b, err := os.ReadFile("../docs/metrics.md")
	if err != nil {
		t.Fatal(err)
	}
	for _, n := range metricNames() {
		if !strings.Contains(string(b), "`"+n+"`") {
			t.Errorf("docs/metrics.md does not document %s", n)
		}
	}
}
