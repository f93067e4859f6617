package appliance

import (
	"log/slog"
	"reflect"
	"strconv"
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/fwpair/fwpair/ctsync"
	"github.com/fwpair/fwpair/vrrp/vrrptest"
)

// statsSync is a fake sync engine whose counters are the real adapter's
// flattening of a full ctsync.Stats, so the metrics see every key the
// product exposes.
type statsSync struct {
	*fakeSync
	stats map[string]uint64
}

func (s statsSync) Stats() map[string]uint64    { return s.stats }
func (s statsSync) PendingMessages() (int, int) { return 3, 7 }
func (s statsSync) LastPeerMessage() float64    { return 1.7e9 }

// fullStats returns a ctsync.Stats with every counter set to a distinct
// value and one malformed reason.
func fullStats(t *testing.T) (ctsync.Stats, int) {
	var s ctsync.Stats
	v := reflect.ValueOf(&s).Elem()
	n := 0
	for i := range v.NumField() {
		if f := v.Field(i); f.Kind() == reflect.Uint64 {
			n++
			f.SetUint(uint64(1000 + i))
		}
	}
	if n < 20 {
		t.Fatalf("ctsync.Stats has only %d counters: did its layout change?", n)
	}
	s.Malformed = map[string]uint64{"bad_length": 5}
	return s, n
}

func newMetricsDaemon(t *testing.T, reg prometheus.Registerer) *Daemon {
	t.Helper()
	s, _ := fullStats(t)
	fs := statsSync{fakeSync: newFakeSync(0), stats: ctsyncStats(s)}
	node := vrrptest.NewNetwork().Node("fw1")
	opts := simOptions(node, fs.fakeSync)
	opts.newSync = func(*SyncConfig, ownAddrs, *slog.Logger) (syncEngine, error) { return fs, nil }
	opts.Registry = reg
	d, err := New(simConfig(t, "fw1", 150), opts)
	if err != nil {
		t.Fatal(err)
	}
	d.metrics.countTransition("MASTER", "test")
	d.metrics.observeCommit(0.01)
	return d
}

// TestCtsyncStatsFlattened: every counter of ctsync.Stats reaches the
// map the metrics read (a new field must be added to ctsyncStats).
func TestCtsyncStatsFlattened(t *testing.T) {
	s, n := fullStats(t)
	m := ctsyncStats(s)
	seen := map[uint64]bool{}
	for _, val := range m {
		seen[val] = true
	}
	v := reflect.ValueOf(s)
	for i := range v.NumField() {
		if f := v.Field(i); f.Kind() == reflect.Uint64 && !seen[f.Uint()] {
			t.Errorf("ctsync.Stats.%s is not in ctsyncStats", v.Type().Field(i).Name)
		}
	}
	if len(m) < n {
		t.Errorf("%d keys for %d counters", len(m), n)
	}
}

// TestSyncCountersMapped: every key of the engine's counters has a metric
// of its own (not the catch-all), and the table names only real families.
func TestSyncCountersMapped(t *testing.T) {
	s, _ := fullStats(t)
	m := newMetrics(nil)
	for key := range ctsyncStats(s) {
		if metric, _ := m.syncMetricFor(key); metric == metricSyncOther {
			t.Errorf("sync counter %q has no row in syncCounters", key)
		}
	}
	families := map[string]syncMetric{}
	for _, sm := range syncMetrics {
		families[sm.name] = sm
	}
	for _, c := range syncCounters {
		sm, ok := families[c.metric]
		if !ok {
			t.Errorf("%s: metric %s is not in syncMetrics", c.key, c.metric)
			continue
		}
		if len(sm.labels) != len(c.labels) {
			t.Errorf("%s: %d label values for %s, which has labels %v", c.key, len(c.labels), c.metric, sm.labels)
		}
	}
}

// TestMetricsLint gathers everything through a pedantic registry and runs
// the client library's linter (Prometheus naming and type conventions).
func TestMetricsLint(t *testing.T) {
	reg := prometheus.NewPedanticRegistry()
	d := newMetricsDaemon(t, reg)
	problems, err := testutil.CollectAndLint(d.metrics)
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range problems {
		t.Errorf("lint: %s: %s", p.Metric, p.Text)
	}
	families, err := reg.Gather()
	if err != nil {
		t.Fatalf("gather: %v", err)
	}
	seen := map[string]bool{}
	for _, f := range families {
		seen[f.GetName()] = true
	}
	if seen[metricSyncOther] {
		t.Errorf("%s exported for a mapped counter", metricSyncOther)
	}
	for _, name := range metricNames() {
		if name == metricSyncOther || name == metricAdvertsDiscarded { // only once something was discarded
			continue
		}
		if !seen[name] {
			t.Errorf("metric %s missing", name)
		}
	}
}

func TestMetricsValues(t *testing.T) {
	reg := prometheus.NewPedanticRegistry()
	d := newMetricsDaemon(t, reg)
	s, _ := fullStats(t)
	want := `
# HELP fwpair_sync_bytes_total Sync payload bytes, by direction.
# TYPE fwpair_sync_bytes_total counter
fwpair_sync_bytes_total{direction="received"} ` + itoa(s.BytesReceived) + `
fwpair_sync_bytes_total{direction="sent"} ` + itoa(s.BytesSent) + `
# HELP fwpair_sync_malformed_messages_total Sync input rejected, by reason.
# TYPE fwpair_sync_malformed_messages_total counter
fwpair_sync_malformed_messages_total{reason="bad_length"} 5
# HELP fwpair_sync_pending_messages Sync messages queued for sending (queue=tx) or sent and not yet acknowledged by the peer (queue=unacked): the replication backlog.
# TYPE fwpair_sync_pending_messages gauge
fwpair_sync_pending_messages{queue="tx"} 3
fwpair_sync_pending_messages{queue="unacked"} 7
# HELP fwpair_ready 1 when this node's state is complete enough to take over (see Daemon.readyForTakeover).
# TYPE fwpair_ready gauge
fwpair_ready 0
`
	if err := testutil.GatherAndCompare(reg, strings.NewReader(want), "fwpair_sync_bytes_total",
		"fwpair_sync_malformed_messages_total", "fwpair_sync_pending_messages", metricReady); err != nil {
		t.Error(err)
	}
	_ = d
}

func itoa(v uint64) string { return strconv.FormatUint(v, 10) }
