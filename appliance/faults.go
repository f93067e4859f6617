package appliance

import (
	"context"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/fwpair/fwpair/ctsync"
)

// This file holds what the daemon does about faults between the two
// nodes (issue 11), beyond what the VRRP sync group decides by itself:
//
//   - split brain healed: when this MASTER hears the other MASTER, it
//     adopts the connection states the peer held during the split before
//     re-announcing the VIPs (vrrp.Callbacks.BeforeReannounce);
//   - failback before the state is there: a node whose last resync request
//     is not answered in full does not preempt the peer (vrrp preemption
//     hold) until it is, or until sync.ready_timeout has passed; it reports
//     ready true/false in status and metrics and logs the wait it needed.

// faultSync is what the daemon needs of the sync engine for faults.
type faultSync interface {
	// AdoptPeer writes the peer's held states into the kernel.
	AdoptPeer(ctx context.Context) (ctsync.AdoptResult, error)
	// PeerState tells whether the last resync request was answered in full.
	PeerState(now time.Time) ctsync.PeerState
}

// readiness is the daemon's view of whether it holds the peer's state.
type readiness struct {
	mu      sync.Mutex
	ready   bool
	reason  string // why not ready, or how it became ready
	since   time.Time
	heals   uint64 // split brains healed with an adoption
	adopted uint64 // entries adopted in all
}

func (r *readiness) get() (bool, string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.ready, r.reason
}

func (r *readiness) set(ready bool, reason string, now time.Time) {
	r.mu.Lock()
	r.ready, r.reason, r.since = ready, reason, now
	r.mu.Unlock()
}

// readinessPoll is how often the readiness watcher looks at the sync engine.
const readinessPoll = 100 * time.Millisecond

// holdsPreemption tells whether this configuration holds preemption until
// the peer's state is there: only with both engines and a positive wait.
func holdsPreemption(cfg *Config) bool {
	return cfg.VRRP != nil && cfg.Sync != nil && cfg.Sync.ReadyTimeout > 0
}

// watchReadiness holds the VRRP group's preemption while this node does
// not hold the peer's full state (ctsync.PeerState), at most
// sync.ready_timeout after each new resync request, and publishes it.
// It runs until ctx ends.
func (d *Daemon) watchReadiness(ctx context.Context) {
	cfg := d.config()
	if !holdsPreemption(cfg) {
		d.ready.set(true, "no preemption hold configured", time.Now())
		return
	}
	timeout := cfg.Sync.ReadyTimeout
	holdStart := time.Now()
	var asked time.Time
	ready := false
	d.ready.set(false, "waiting for the peer's state", holdStart)
	t := time.NewTicker(readinessPoll)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		now := time.Now()
		ps := d.sync.PeerState(now)
		if !ps.Asked.Equal(asked) {
			// A new resync request (start, or back to BACKUP): the state
			// is complete again only once it is answered.
			asked = ps.Asked
			if ready {
				ready = false
				holdStart = now
				d.ready.set(false, "waiting for the answer to a new resync request", now)
				d.setHold(true)
			}
		}
		if ready {
			continue
		}
		waited := now.Sub(holdStart)
		switch {
		case ps.Complete:
			d.log.Info("ready: this node holds the peer's full state; preemption allowed",
				"waited", waited.Round(time.Millisecond), "entries_external", d.sync.Status().ExternalEntries)
			d.ready.set(true, "holds the peer's full state", now)
		case waited >= timeout:
			d.log.Warn("ready after the bounded wait, the peer's state may be incomplete; preemption allowed",
				"waited", waited.Round(time.Millisecond), "ready_timeout", timeout, "missing", ps.Reason)
			d.ready.set(true, "sync.ready_timeout passed: "+ps.Reason, now)
		default:
			d.ready.set(false, ps.Reason, holdStart)
			continue
		}
		ready = true
		d.setHold(false)
	}
}

func (d *Daemon) setHold(hold bool) {
	if err := d.vrrp.SetPreemptHold(hold); err != nil {
		d.log.Warn("cannot change the preemption hold", "hold", hold, "err", err)
	}
}

// beforeReannounce is vrrp.Callbacks.BeforeReannounce: this MASTER heard
// another MASTER, the split brain is healing and the traffic is about to
// come back. The peer's states of the connections it carried during the
// split replace this kernel's stale ones first.
func (d *Daemon) beforeReannounce(ctx context.Context) {
	if d.sync == nil {
		return
	}
	ctx, cancel := context.WithTimeout(ctx, d.config().Sync.CommitTimeout)
	defer cancel()
	res, err := d.sync.AdoptPeer(ctx)
	n := res.Adopted
	d.ready.mu.Lock()
	d.ready.heals++
	d.ready.adopted += uint64(n)
	d.ready.mu.Unlock()
	if err != nil {
		d.log.Warn("split brain healed: adopting the peer's connection states failed", "adopted", n, "err", err)
		return
	}
	d.log.Warn("split brain healed: another MASTER was heard; adopted the connection states it held",
		"adopted", res.Adopted, "kept", res.Kept, "seconds", res.Duration.Seconds())
}

// Metric names of the fault collector (fwpair_ready is in metrics.go, fed
// by readyForTakeover).
const (
	metricPartialPartition = "fwpair_vrrp_partial_partition"
	metricPartitions       = "fwpair_vrrp_partial_partitions_total"
	metricSplitBrainHeals  = "fwpair_split_brain_heals_total"
	metricAdopted          = "fwpair_split_brain_adopted_entries_total"
)

// faultMetricNames are the families faultMetrics exports.
var faultMetricNames = []string{metricPartialPartition, metricPartitions, metricSplitBrainHeals, metricAdopted}

// faultMetrics exports partial partitions and split-brain heals, read at
// scrape time.
type faultMetrics struct {
	d                               *Daemon
	partition, partitions, heals, n *prometheus.Desc
}

func newFaultMetrics(d *Daemon) *faultMetrics {
	return &faultMetrics{
		d:          d,
		partition:  prometheus.NewDesc(metricPartialPartition, "1 while a sync-group member hears no master but another member does.", nil, nil),
		partitions: prometheus.NewDesc(metricPartitions, "Partial partitions seen.", nil, nil),
		heals:      prometheus.NewDesc(metricSplitBrainHeals, "Split brains healed while MASTER (another MASTER heard).", nil, nil),
		n:          prometheus.NewDesc(metricAdopted, "Connection states adopted from the peer on split-brain heals.", nil, nil),
	}
}

func (m *faultMetrics) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{m.partition, m.partitions, m.heals, m.n} {
		ch <- d
	}
}

func (m *faultMetrics) Collect(ch chan<- prometheus.Metric) {
	if g := m.d.vrrp; g != nil {
		st := g.Status()
		ch <- prometheus.MustNewConstMetric(m.partition, prometheus.GaugeValue, b2f(st.Partition != ""))
		ch <- prometheus.MustNewConstMetric(m.partitions, prometheus.CounterValue, float64(st.Partitions))
	}
	m.d.ready.mu.Lock()
	heals, n := m.d.ready.heals, m.d.ready.adopted
	m.d.ready.mu.Unlock()
	ch <- prometheus.MustNewConstMetric(m.heals, prometheus.CounterValue, float64(heals))
	ch <- prometheus.MustNewConstMetric(m.n, prometheus.CounterValue, float64(n))
}
