package appliance

import (
	"sort"
	"strings"

	"github.com/prometheus/client_golang/prometheus"
)

// Metric names, shared with the tests, the alerting rules in
// etc/fwpair-alerts.yml and docs/metrics.md.
const (
	metricGroupState       = "fwpair_vrrp_group_state"
	metricInstanceState    = "fwpair_vrrp_instance_state"
	metricAdvertsSent      = "fwpair_vrrp_adverts_sent_total"
	metricAdvertsReceived  = "fwpair_vrrp_adverts_received_total"
	metricAdvertsDiscarded = "fwpair_vrrp_adverts_discarded_total"
	metricTransitions      = "fwpair_transitions_total"
	metricReady            = "fwpair_ready"
	metricCacheEntries     = "fwpair_sync_cache_entries"
	metricPeerAlive        = "fwpair_sync_peer_alive"
	metricLastCleanCheck   = "fwpair_sync_consistency_last_clean_timestamp_seconds"
	metricCommitSeconds    = "fwpair_commit_duration_seconds"
	metricPendingMessages  = "fwpair_sync_pending_messages"
	metricLastPeerMessage  = "fwpair_sync_last_peer_message_timestamp_seconds"
	metricMalformed        = "fwpair_sync_malformed_messages_total"
	// metricSyncOther carries a sync counter that syncCounters does not
	// map yet; TestSyncCountersMapped fails until it is mapped.
	metricSyncOther = "fwpair_sync_other_events_total"
)

var stateNames = []string{"INIT", "BACKUP", "MASTER", "FAULT"}

// syncMetric is one counter family fed from the sync engine's Stats():
// its name, help and label names.
type syncMetric struct {
	name   string
	help   string
	labels []string
}

// syncCounter maps one key of the sync engine's Stats() to a family of
// syncMetrics and the label values this key takes. A new engine counter
// is one row here (and a new family, if none fits, one row above).
type syncCounter struct {
	key    string
	metric string
	labels []string
}

// syncMetrics are the counter families fed from the sync engine's Stats().
var syncMetrics = []syncMetric{
	{"fwpair_sync_messages_total", "Sync protocol messages, by direction.", []string{"direction"}},
	{"fwpair_sync_datagrams_total", "Sync UDP datagrams, by direction.", []string{"direction"}},
	{"fwpair_sync_bytes_total", "Sync payload bytes, by direction.", []string{"direction"}},
	{"fwpair_sync_socket_errors_total", "Errors sending or receiving on the sync sockets, by direction.", []string{"direction"}},
	{"fwpair_sync_retransmits_total", "Messages queued again because the peer reported them missing (FTFW NACK).", nil},
	{"fwpair_sync_nacks_total", "FTFW NACKs, by direction.", []string{"direction"}},
	{"fwpair_sync_renacks_total", "NACKs repeated for a gap still open.", nil},
	{"fwpair_sync_window_waits_total", "Times the sender waited for the peer's ACKs before sending more states (flow control).", nil},
	{"fwpair_sync_acks_total", "FTFW ACKs, by direction.", []string{"direction"}},
	{"fwpair_sync_lost_messages_total", "Sequence numbers missing in the peer's stream.", nil},
	{"fwpair_sync_stale_messages_total", "Old or duplicate messages from the peer, dropped.", nil},
	{"fwpair_sync_resend_queue_overflows_total", "Resend-queue entries dropped because the queue was full.", nil},
	{"fwpair_sync_resyncs_total", "Dumps of the kernel table into the internal cache.", nil},
	{"fwpair_sync_resync_errors_total", "Failed dumps of the kernel table.", nil},
	{"fwpair_sync_resync_requests_total", "Requests for the peer's whole state, by direction.", []string{"direction"}},
	{"fwpair_sync_bulk_sends_total", "Sends of the whole internal cache to the peer.", nil},
	{"fwpair_sync_netlink_overruns_total", "Conntrack event socket overruns (events lost in the kernel; each triggers a resync).", nil},
	{"fwpair_sync_kernel_events_total", "Conntrack events read from the kernel, by type.", []string{"type"}},
	{"fwpair_sync_kernel_events_ignored_total", "Conntrack events not replicated, by reason.", []string{"reason"}},
	{"fwpair_sync_states_applied_total", "Peer states applied to the external cache or the kernel.", nil},
	{"fwpair_sync_implausible_sequence_total", "Peer messages dropped because their sequence number was far outside any plausible window.", nil},
	{"fwpair_sync_sequence_adoptions_total", "Times the receiver adopted a new sequence baseline after the peer's stream stalled (a resync follows).", nil},
	{"fwpair_sync_renack_overflows_total", "Open gaps dropped from the full re-NACK list (a resync follows).", nil},
	{"fwpair_sync_states_injected_total", "Peer states written straight into the kernel (direct inject).", nil},
	{"fwpair_sync_inject_failures_total", "Peer states the kernel refused in direct inject.", nil},
	{"fwpair_sync_quiet_inject_writes_total", "Inject writes of a returning node's backlog made out of the kernel's event groups.", nil},
	{"fwpair_sync_commits_total", "Commits of the external cache into the kernel.", nil},
	{"fwpair_sync_link_failovers_total", "Switches to another sync link.", nil},
	{"fwpair_sync_purges_total", "Purges of entries the new MASTER does not know.", nil},
	{"fwpair_sync_purged_entries_total", "Kernel entries deleted by purges.", nil},
	{"fwpair_sync_refreshed_states_total", "States re-sent because the peer's copy was half-way to expiry while the local entry lived on (long-lived flows).", nil},
	{"fwpair_sync_refresh_passes_total", "Kernel dumps taken to refresh long-lived flows on the peer.", nil},
	{"fwpair_sync_converged_entries_total", "Kernel entries a returning node removed because the peer no longer had them.", nil},
	{"fwpair_sync_consistency_checks_total", "Peer digests compared by the consistency check.", nil},
	{"fwpair_sync_consistency_repaired_entries_total", "Entries added, corrected or removed by the consistency check.", nil},
	{"fwpair_sync_consistency_resent_states_total", "States re-sent on the peer's consistency repair requests.", nil},
	{"fwpair_sync_expectations_total", "Conntrack expectations (FTP and other helpers) replicated: sent, received from the peer, created in the kernel, failed kernel writes.", []string{"what"}},
	{metricMalformed, "Sync input rejected, by reason.", []string{"reason"}},
	{metricSyncOther, "Sync engine counters not mapped to a metric of their own yet, by counter.", []string{"counter"}},
}

// syncCounters maps the keys of syncEngine.Stats() (see ctsyncStats).
var syncCounters = []syncCounter{
	{"messages_sent", "fwpair_sync_messages_total", []string{"sent"}},
	{"messages_received", "fwpair_sync_messages_total", []string{"received"}},
	{"datagrams_sent", "fwpair_sync_datagrams_total", []string{"sent"}},
	{"datagrams_received", "fwpair_sync_datagrams_total", []string{"received"}},
	{"bytes_sent", "fwpair_sync_bytes_total", []string{"sent"}},
	{"bytes_received", "fwpair_sync_bytes_total", []string{"received"}},
	{"send_errors", "fwpair_sync_socket_errors_total", []string{"sent"}},
	{"receive_errors", "fwpair_sync_socket_errors_total", []string{"received"}},
	{"retransmits", "fwpair_sync_retransmits_total", nil},
	{"nacks_sent", "fwpair_sync_nacks_total", []string{"sent"}},
	{"nacks_received", "fwpair_sync_nacks_total", []string{"received"}},
	{"renacks", "fwpair_sync_renacks_total", nil},
	{"window_waits", "fwpair_sync_window_waits_total", nil},
	{"acks_sent", "fwpair_sync_acks_total", []string{"sent"}},
	{"acks_received", "fwpair_sync_acks_total", []string{"received"}},
	{"lost", "fwpair_sync_lost_messages_total", nil},
	{"before", "fwpair_sync_stale_messages_total", nil},
	{"resend_overflow", "fwpair_sync_resend_queue_overflows_total", nil},
	{"resyncs", "fwpair_sync_resyncs_total", nil},
	{"resync_errors", "fwpair_sync_resync_errors_total", nil},
	{"resync_requests_sent", "fwpair_sync_resync_requests_total", []string{"sent"}},
	{"resync_requests_received", "fwpair_sync_resync_requests_total", []string{"received"}},
	{"bulk_sends", "fwpair_sync_bulk_sends_total", nil},
	{"netlink_overruns", "fwpair_sync_netlink_overruns_total", nil},
	{"events_new", "fwpair_sync_kernel_events_total", []string{"new"}},
	{"events_update", "fwpair_sync_kernel_events_total", []string{"update"}},
	{"events_destroy", "fwpair_sync_kernel_events_total", []string{"destroy"}},
	{"events_own", "fwpair_sync_kernel_events_ignored_total", []string{"own_address"}},
	{"events_filtered", "fwpair_sync_kernel_events_ignored_total", []string{"filtered"}},
	{"applied", "fwpair_sync_states_applied_total", nil},
	{"injected", "fwpair_sync_states_injected_total", nil},
	{"inject_failed", "fwpair_sync_inject_failures_total", nil},
	{"quiet_injects", "fwpair_sync_quiet_inject_writes_total", nil},
	{"commits", "fwpair_sync_commits_total", nil},
	{"link_failovers", "fwpair_sync_link_failovers_total", nil},
	{"purges", "fwpair_sync_purges_total", nil},
	{"purged", "fwpair_sync_purged_entries_total", nil},
	{"seq_implausible", "fwpair_sync_implausible_sequence_total", nil},
	{"seq_adopted", "fwpair_sync_sequence_adoptions_total", nil},
	{"renack_overflow", "fwpair_sync_renack_overflows_total", nil},
	{"refreshed", "fwpair_sync_refreshed_states_total", nil},
	{"refresh_passes", "fwpair_sync_refresh_passes_total", nil},
	{"converged", "fwpair_sync_converged_entries_total", nil},
	{"consistency_checks", "fwpair_sync_consistency_checks_total", nil},
	{"consistency_repaired", "fwpair_sync_consistency_repaired_entries_total", nil},
	{"consistency_resent", "fwpair_sync_consistency_resent_states_total", nil},
	{"expectations_sent", "fwpair_sync_expectations_total", []string{"sent"}},
	{"expectations_received", "fwpair_sync_expectations_total", []string{"received"}},
	{"expectations_created", "fwpair_sync_expectations_total", []string{"created"}},
	{"expectations_failed", "fwpair_sync_expectations_total", []string{"failed"}},
}

// syncCounterPrefixes map families of keys whose suffix is the label
// value ("malformed_bad_length" -> reason="bad_length").
var syncCounterPrefixes = []struct{ prefix, metric string }{
	{"malformed_", metricMalformed},
}

// syncGauges is what the metrics read of the sync engine beyond Status():
// optional, implemented by the ctsync adapter (sync_metrics.go).
type syncGauges interface {
	// PendingMessages: messages queued for sending, and messages sent
	// but not yet acknowledged by the peer (FTFW).
	PendingMessages() (queued, unacked int)
	// LastPeerMessage is the Unix time of the last message from the
	// peer, 0 when none was received.
	LastPeerMessage() float64
}

// metrics is a Prometheus collector that reads the engines' status at
// scrape time (nothing is updated on the hot paths), plus the transition
// counter and commit histogram the daemon feeds.
type metrics struct {
	d *Daemon

	groupState, instanceState, sent, received, discarded *prometheus.Desc
	cacheEntries, peerAlive, ready, pending, lastPeer    *prometheus.Desc
	lastClean                                            *prometheus.Desc
	syncDescs                                            map[string]*prometheus.Desc
	syncByKey                                            map[string]syncCounter

	transitions *prometheus.CounterVec
	commit      prometheus.Histogram
}

func newMetrics(d *Daemon) *metrics {
	m := &metrics{
		d:             d,
		groupState:    prometheus.NewDesc(metricGroupState, "1 for the current state of the VRRP sync group.", []string{"group", "state"}, nil),
		instanceState: prometheus.NewDesc(metricInstanceState, "1 for the current state of each VRRP instance.", []string{"vrrp_instance", "state"}, nil),
		sent:          prometheus.NewDesc(metricAdvertsSent, "VRRP adverts sent.", []string{"vrrp_instance"}, nil),
		received:      prometheus.NewDesc(metricAdvertsReceived, "VRRP adverts received and accepted.", []string{"vrrp_instance"}, nil),
		discarded:     prometheus.NewDesc(metricAdvertsDiscarded, "VRRP adverts discarded, by scope (instance:NAME or interface:NAME) and reason.", []string{"scope", "reason"}, nil),
		cacheEntries:  prometheus.NewDesc(metricCacheEntries, "Entries in the sync caches (internal: this node's connections, external: the peer's).", []string{"cache"}, nil),
		peerAlive:     prometheus.NewDesc(metricPeerAlive, "1 when the sync peer was heard from recently.", nil, nil),
		ready:         prometheus.NewDesc(metricReady, "1 when this node's state is complete enough to take over (see Daemon.readyForTakeover).", nil, nil),
		pending:       prometheus.NewDesc(metricPendingMessages, "Sync messages queued for sending (queue=tx) or sent and not yet acknowledged by the peer (queue=unacked): the replication backlog.", []string{"queue"}, nil),
		lastPeer:      prometheus.NewDesc(metricLastPeerMessage, "Unix time of the last sync message from the peer (0: none yet).", nil, nil),
		lastClean:     prometheus.NewDesc(metricLastCleanCheck, "Unix time of the last consistency check that found this node's view equal to the peer's digest.", nil, nil),
		syncDescs:     map[string]*prometheus.Desc{},
		syncByKey:     map[string]syncCounter{},
		transitions: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: metricTransitions, Help: "Group transitions by new state and reason.",
		}, []string{"to", "reason"}),
		commit: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name: metricCommitSeconds, Help: "Time to commit the external cache into the kernel on becoming MASTER.",
			Buckets: []float64{.001, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5},
		}),
	}
	for _, sm := range syncMetrics {
		m.syncDescs[sm.name] = prometheus.NewDesc(sm.name, sm.help, sm.labels, nil)
	}
	for _, c := range syncCounters {
		m.syncByKey[c.key] = c
	}
	return m
}

func (m *metrics) countTransition(to, reason string) {
	m.transitions.WithLabelValues(to, reason).Inc()
}

func (m *metrics) observeCommit(seconds float64) { m.commit.Observe(seconds) }

func (m *metrics) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{m.groupState, m.instanceState, m.sent, m.received, m.discarded,
		m.cacheEntries, m.peerAlive, m.ready, m.pending, m.lastPeer, m.lastClean} {
		ch <- d
	}
	for _, sm := range syncMetrics {
		ch <- m.syncDescs[sm.name]
	}
	m.transitions.Describe(ch)
	m.commit.Describe(ch)
}

func (m *metrics) Collect(ch chan<- prometheus.Metric) {
	m.transitions.Collect(ch)
	m.commit.Collect(ch)
	ch <- prometheus.MustNewConstMetric(m.ready, prometheus.GaugeValue, b2f(m.d.readyForTakeover()))
	if g := m.d.vrrp; g != nil {
		st := g.Status()
		group := ""
		if c := m.d.config(); c.VRRP != nil {
			group = c.VRRP.Group
		}
		for _, s := range stateNames {
			ch <- prometheus.MustNewConstMetric(m.groupState, prometheus.GaugeValue, b2f(st.State.String() == s), group, s)
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
				ch <- prometheus.MustNewConstMetric(m.discarded, prometheus.CounterValue, float64(n), "interface:"+ifc.Key(), reason)
			}
		}
	}
	if s := m.d.sync; s != nil {
		st := s.Status()
		ch <- prometheus.MustNewConstMetric(m.cacheEntries, prometheus.GaugeValue, float64(st.InternalEntries), "internal")
		ch <- prometheus.MustNewConstMetric(m.cacheEntries, prometheus.GaugeValue, float64(st.ExternalEntries), "external")
		ch <- prometheus.MustNewConstMetric(m.peerAlive, prometheus.GaugeValue, b2f(st.PeerAlive))
		if c := st.Consistency; c != nil && !c.LastClean.IsZero() {
			ch <- prometheus.MustNewConstMetric(m.lastClean, prometheus.GaugeValue, float64(c.LastClean.UnixNano())/1e9)
		}
		if sg, ok := s.(syncGauges); ok {
			q, un := sg.PendingMessages()
			ch <- prometheus.MustNewConstMetric(m.pending, prometheus.GaugeValue, float64(q), "tx")
			ch <- prometheus.MustNewConstMetric(m.pending, prometheus.GaugeValue, float64(un), "unacked")
			ch <- prometheus.MustNewConstMetric(m.lastPeer, prometheus.GaugeValue, sg.LastPeerMessage())
		}
		m.collectSyncCounters(ch, s.Stats())
	}
}

// collectSyncCounters turns the engine's counters into metrics through
// syncCounters; keys not mapped yet go to metricSyncOther so that nothing
// is hidden.
func (m *metrics) collectSyncCounters(ch chan<- prometheus.Metric, stats map[string]uint64) {
	keys := make([]string, 0, len(stats))
	for k := range stats {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		metric, labels := m.syncMetricFor(k)
		ch <- prometheus.MustNewConstMetric(m.syncDescs[metric], prometheus.CounterValue, float64(stats[k]), labels...)
	}
}

// syncMetricFor returns the metric and label values of an engine counter.
func (m *metrics) syncMetricFor(key string) (string, []string) {
	if c, ok := m.syncByKey[key]; ok {
		return c.metric, c.labels
	}
	for _, p := range syncCounterPrefixes {
		if reason, ok := strings.CutPrefix(key, p.prefix); ok && reason != "" {
			return p.metric, []string{reason}
		}
	}
	return metricSyncOther, []string{key}
}

// metricNames lists every metric family the daemon exports (docs, alert
// rules and tests check against it).
func metricNames() []string {
	names := []string{metricGroupState, metricInstanceState, metricAdvertsSent, metricAdvertsReceived,
		metricAdvertsDiscarded, metricTransitions, metricReady, metricCacheEntries, metricPeerAlive,
		metricCommitSeconds, metricPendingMessages, metricLastPeerMessage}
	names = append(names, faultMetricNames...)
	for _, sm := range syncMetrics {
		names = append(names, sm.name)
	}
	return names
}

func b2f(b bool) float64 {
	if b {
		return 1
	}
	return 0
}
