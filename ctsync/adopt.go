package ctsync

import (
	"context"
	"fmt"
	"time"

	"github.com/fwpair/fwpair/ctsync/ctnetlink"
)

// AdoptResult counts what AdoptPeer did.
type AdoptResult struct {
	// Adopted entries were written into the kernel with the peer's state.
	Adopted int `json:"adopted"`
	// Kept entries were left alone: this node's TCP state is further
	// along (e.g. FIN_WAIT against the peer's ESTABLISHED).
	Kept     int            `json:"kept"`
	Failed   map[string]int `json:"failed,omitempty"`
	Duration time.Duration  `json:"duration"`
}

// AdoptPeer writes the peer's held-aside states into the kernel. Call it
// on the MASTER when a split brain heals (it heard the other MASTER): while
// both were MASTER the peer forwarded some connections, so this kernel's
// entries for them are stale (TCP window tracking behind the real
// sequence numbers) and their packets would be dropped as INVALID once the
// traffic comes back. The peer's states received since the last adoption
// (from the external cache: held aside in direct-inject mode, or the
// commit store) are committed like an injection, which brings the entries
// to the replicated state and, as for every replicated TCP entry (see
// ctnetlink.KernelOptions.TCPWindowTracking), marks them liberal in window tracking
// so the stale window data no longer drops their packets. An entry whose
// TCP state is further along here than the peer's is kept.
//
// The peer's backlog may still be on its way (a node that was frozen reads
// it from its socket buffer when it wakes): AdoptPeer first waits until
// nothing has been received for adoptSettle (at most adoptSettleMax), and
// for AdoptWindow afterwards the states the peer sends go straight into
// the kernel, as on a BACKUP in direct-inject mode.
func (e *Engine) AdoptPeer(ctx context.Context) (AdoptResult, error) {
	e.waitReceiveQuiet(ctx)
	start := time.Now()
	var flows []Flow
	res := AdoptResult{Failed: map[string]int{}}
	e.mu.Lock()
	since := e.adoptedAt
	e.adoptedAt = start
	e.adoptUntil = start.Add(AdoptWindow)
	// A walk in chunks (walk.go); a Flush meanwhile ends it.
	e.walkLocked(e.external, func(k *ckey, v *centry) bool {
		// Direct inject removes what it adopted; the commit store keeps it,
		// so only what arrived since the last adoption counts.
		if !e.cfg.DirectInject && !since.IsZero() && time.Unix(int64(v.stamp), 0).Before(since) {
			return true
		}
		f := e.external.flowOf(k, v)
		if f.Proto == ctnetlink.ProtoTCP && f.HasProtoState {
			if own, ok := e.internal.Get(f.Key); ok && own.HasProtoState && laterTCPState(own.ProtoState, f.ProtoState) {
				res.Kept++
				return true
			}
		}
		f.Status &^= ipsExpected
		flows = append(flows, f)
		return true
	})
	if e.cfg.DirectInject {
		// A holding area only: what was adopted is in the kernel now.
		// (A state the peer sent again while the walk yielded is written
		// by the adoption window, see below.)
		w := e.newWalker()
		for i := range flows {
			w.step()
			e.external.Delete(flows[i].Key)
		}
	}
	e.mu.Unlock()

	var err error
	if len(flows) > 0 {
		// Written like an injection, so that a kernel that filters the
		// daemon's own events has the adopted states recorded in the
		// internal cache (eventfilter.go): the own DESTROY of a NAT
		// entry's replace would otherwise remove them from it, and the
		// MASTER would lose them from its digest and its sends while its
		// kernel still forwards them.
		var r CommitResult
		r, err = e.injectCommit(ctx, flows, false)
		res.Adopted = r.Created + r.Updated
		for k, n := range r.Failed {
			res.Failed[k] += n
		}
	}
	res.Duration = time.Since(start)
	e.log.Info("adopted the peer's connection states (split brain healed)", "adopted", res.Adopted,
		"kept", res.Kept, "failed", res.Failed, "duration", res.Duration, "err", err)
	if err != nil {
		return res, fmt.Errorf("ctsync: adopt peer states: %w", err)
	}
	return res, nil
}

// AdoptWindow is how long after AdoptPeer the peer's states are written
// into the kernel as they arrive, whatever the MASTER gate says.
const AdoptWindow = 5 * time.Second

const (
	adoptSettle     = 100 * time.Millisecond
	adoptSettlePoll = 10 * time.Millisecond
	adoptSettleMax  = time.Second
)

// waitReceiveQuiet returns once a datagram received after the call shows
// that the receive path has caught up (the peer sends at least one per
// alive interval), and then nothing more arrived for adoptSettle; or after
// adoptSettleMax, or when ctx ends. A node that was frozen reads the
// peer's backlog from its socket buffer first: its states must be in the
// cache before they are adopted.
func (e *Engine) waitReceiveQuiet(ctx context.Context) {
	start := time.Now()
	end := start.Add(adoptSettleMax)
	for time.Now().Before(end) {
		e.mu.Lock()
		last := e.lastPeer
		e.mu.Unlock()
		if last.After(start) && time.Since(last) >= adoptSettle {
			return
		}
		select {
		case <-ctx.Done():
			return
		case <-time.After(adoptSettlePoll):
		}
	}
}

// TCP conntrack states in the order a connection goes through them (the
// kernel's TCP_CONNTRACK_* values from SYN_SENT to CLOSE are already in
// that order).
const (
	tcpSynSent = 1
	tcpClose   = 8
)

// laterTCPState reports whether state a is further along than b.
func laterTCPState(a, b uint8) bool {
	if a < tcpSynSent || a > tcpClose || b < tcpSynSent || b > tcpClose {
		return false
	}
	return a > b
}
