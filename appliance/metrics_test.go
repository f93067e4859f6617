package appliance

import (
	"testing"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/fwpair/fwpair/vrrp/vrrptest"
)

func TestMetricsGather(t *testing.T) {
	n := vrrptest.NewNetwork()
	node := n.Node("fw1")
	fs := newFakeSync(0)
	reg := prometheus.NewPedanticRegistry()
	opts := simOptions(node, fs)
	opts.Registry = reg
	d, err := New(simConfig(t, "fw1", 150), opts)
	if err != nil {
		t.Fatal(err)
	}
	d.metrics.countTransition("MASTER", "test")
	d.metrics.observeCommit(0.01)
	families, err := reg.Gather()
	if err != nil {
		t.Fatalf("gather: %v", err)
	}
	seen := map[string]bool{}
	for _, f := range families {
		seen[f.GetName()] = true
	}
	for _, name := range []string{metricGroupState, metricInstanceState, metricAdvertsSent, metricAdvertsReceived,
		metricTransitions, metricSyncCounter, metricCacheEntries, metricPeerAlive, metricCommitSeconds} {
		if !seen[name] {
			t.Errorf("metric %s missing", name)
		}
	}
}
