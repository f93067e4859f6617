package appliance

import (
	"github.com/prometheus/client_golang/prometheus"
)

// Metric names, shared with the tests.
const (
	metricGroupState       = "fwpair_vrrp_group_state"
	metricInstanceState    = "fwpair_vrrp_instance_state"
	metricAdvertsSent      = "fwpair_vrrp_adverts_sent_total"
	metricAdvertsReceived  = "fwpair_vrrp_adverts_received_total"
	metricAdvertsDiscarded = "fwpair_vrrp_adverts_discarded_total"
	metricTransitions      = "fwpair_transitions_total"
	metricSyncCounter      = "fwpair_sync_events_total"
	metricCacheEntries     = "fwpair_sync_cache_entries"
	metricPeerAlive        = "fwpair_sync_peer_alive"
	metricCommitSeconds    = "fwpair_commit_duration_seconds"
)

var stateNames = []string{"INIT", "BACKUP", "MASTER", "FAULT"}

// metrics is a Prometheus collector that reads the engines' status at
// scrape time (nothing is updated on the hot paths), plus the transition
// counter and commit histogram the daemon feeds.
type metrics struct {
	d *Daemon

	groupState, instanceState, sent, received, discarded *prometheus.Desc
	syncCounter, cacheEntries, peerAlive                 *prometheus.Desc

	transitions *prometheus.CounterVec
	commit      prometheus.Histogram
}

func newMetrics(d *Daemon) *metrics {
	return &metrics{
		d:             d,
		groupState:    prometheus.NewDesc(metricGroupState, "1 for the current state of the VRRP sync group.", []string{"state"}, nil),
		instanceState: prometheus.NewDesc(metricInstanceState, "1 for the current state of each VRRP instance.", []string{"instance", "state"}, nil),
		sent:          prometheus.NewDesc(metricAdvertsSent, "VRRP adverts sent.", []string{"instance"}, nil),
		received:      prometheus.NewDesc(metricAdvertsReceived, "VRRP adverts received and accepted.", []string{"instance"}, nil),
		discarded:     prometheus.NewDesc(metricAdvertsDiscarded, "VRRP adverts discarded, by reason.", []string{"scope", "reason"}, nil),
		syncCounter:   prometheus.NewDesc(metricSyncCounter, "Sync engine counters (messages, bytes, retransmits, NACKs, resyncs, netlink overruns, ...).", []string{"counter"}, nil),
		cacheEntries:  prometheus.NewDesc(metricCacheEntries, "Entries in the sync caches.", []string{"cache"}, nil),
		peerAlive:     prometheus.NewDesc(metricPeerAlive, "1 when the sync peer was heard from recently.", nil, nil),
		transitions: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: metricTransitions, Help: "Group transitions by new state and reason.",
		}, []string{"to", "reason"}),
		commit: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name: metricCommitSeconds, Help: "Time to commit the external cache into the kernel on becoming MASTER.",
			Buckets: []float64{.001, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5},
		}),
	}
}

func (m *metrics) countTransition(to, reason string) {
	m.transitions.WithLabelValues(to, reason).Inc()
}

func (m *metrics) observeCommit(seconds float64) { m.commit.Observe(seconds) }

func (m *metrics) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{m.groupState, m.instanceState, m.sent, m.received, m.discarded, m.syncCounter, m.cacheEntries, m.peerAlive} {
		ch <- d
	}
	m.transitions.Describe(ch)
	m.commit.Describe(ch)
}

func (m *metrics) Collect(ch chan<- prometheus.Metric) {
	m.transitions.Collect(ch)
	m.commit.Collect(ch)
	if g := m.d.vrrp; g != nil {
		st := g.Status()
		for _, s := range stateNames {
			ch <- prometheus.MustNewConstMetric(m.groupState, prometheus.GaugeValue, b2f(st.State.String() == s), s)
		}
		for _, in := range st.Instances {
			for _, s := range stateNames {
				ch <- prometheus.MustNewConstMetric(m.instanceState, prometheus.GaugeValue, b2f(in.State.String() == s), in.Name, s)
			}
			ch <- prometheus.MustNewConstMetric(m.sent, prometheus.CounterValue, float64(in.Counters.AdvertsSent), in.Name)
			ch <- prometheus.MustNewConstMetric(m.received, prometheus.CounterValue, float64(in.Counters.AdvertsReceived), in.Name)
			for reason, n := range in.Counters.Discarded {
				ch <- prometheus.MustNewConstMetric(m.discarded, prometheus.CounterValue, float64(n), "instance:"+in.Name, reason)
			}
		}
		for _, ifc := range st.Interfaces {
			for reason, n := range ifc.Counters.Discarded {
				ch <- prometheus.MustNewConstMetric(m.discarded, prometheus.CounterValue, float64(n), "interface:"+ifc.Name, reason)
			}
		}
	}
	if s := m.d.sync; s != nil {
		st := s.Status()
		ch <- prometheus.MustNewConstMetric(m.cacheEntries, prometheus.GaugeValue, float64(st.InternalEntries), "internal")
		ch <- prometheus.MustNewConstMetric(m.cacheEntries, prometheus.GaugeValue, float64(st.ExternalEntries), "external")
		ch <- prometheus.MustNewConstMetric(m.peerAlive, prometheus.GaugeValue, b2f(st.PeerAlive))
		for name, n := range s.Stats() {
			ch <- prometheus.MustNewConstMetric(m.syncCounter, prometheus.CounterValue, float64(n), name)
		}
	}
}

func b2f(b bool) float64 {
	if b {
		return 1
	}
	return 0
}
