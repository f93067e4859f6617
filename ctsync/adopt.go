package ctsync

import (
	"context"
	"fmt"
	"time"
)

// AdoptResult counts what AdoptPeer did.
type AdoptResult struct {
	// Replaced entries were deleted from the kernel and created again from
	// the peer's state, so the kernel re-learns their TCP windows from the
	// next packets.
	Replaced int `json:"replaced"`
	// Updated entries (not TCP) were written with the peer's state.
	Updated int `json:"updated"`
	// Kept entries were left alone: this node's TCP state is further
	// along (e.g. FIN_WAIT against the peer's ESTABLISHED).
	Kept     int            `json:"kept"`
	Failed   map[string]int `json:"failed,omitempty"`
	Duration time.Duration  `json:"duration"`
}

// adoptBatch bounds how many entries are between their deletion and their
// re-creation at any time: a packet of such a flow arriving in that window
// finds no entry.
const adoptBatch = 64

// AdoptPeer writes the peer's held-aside states into the kernel. Call it
// on the MASTER when a split brain heals (it heard the other MASTER): while
// both were MASTER the peer forwarded some connections, so this kernel's
// entries for them are stale (TCP window tracking behind the real
// sequence numbers) and their packets would be dropped as INVALID once the
// traffic comes back. The peer's states received since the last adoption
// (from the external cache: held aside in direct-inject mode, or the
// commit store) replace the kernel's: TCP entries are deleted and created
// again, which resets window tracking, unless this node's state is
// further in the TCP state sequence; other entries are updated.
func (e *Engine) AdoptPeer(ctx context.Context) (AdoptResult, error) {
	start := time.Now()
	var flows []Flow
	var tcpKeys []Key
	res := AdoptResult{Failed: map[string]int{}}
	e.mu.Lock()
	since := e.adoptedAt
	e.adoptedAt = start
	e.external.Range(func(f *Flow, updated time.Time) bool {
		// Direct inject removes what it adopted; the commit store keeps it,
		// so only what arrived since the last adoption counts.
		if !e.cfg.DisableExternalCache && !since.IsZero() && updated.Before(since) {
			return true
		}
		if f.Proto == nlProtoTCP && f.HasProtoState {
			if own, ok := e.internal.Get(f.Key); ok && own.HasProtoState && laterTCPState(own.ProtoState, f.ProtoState) {
				res.Kept++
				return true
			}
			tcpKeys = append(tcpKeys, f.Key)
		}
		f.Status &^= ipsExpected
		flows = append(flows, *f)
		return true
	})
	if e.cfg.DisableExternalCache {
		// A holding area only: what was adopted is in the kernel now.
		for i := range flows {
			e.external.Delete(flows[i].Key)
		}
	}
	e.mu.Unlock()

	var errs []error
	count := func(r CommitResult, err error) {
		for k, n := range r.Failed {
			res.Failed[k] += n
		}
		if err != nil {
			errs = append(errs, err)
		}
	}
	isTCP := make(map[ckey]bool, len(tcpKeys))
	for i := range tcpKeys {
		isTCP[compactKey(&tcpKeys[i])] = true
	}
	for len(flows) > 0 && ctx.Err() == nil {
		n := min(adoptBatch, len(flows))
		batch := flows[:n]
		flows = flows[n:]
		var dels []Key
		for i := range batch {
			if isTCP[compactKey(&batch[i].Key)] {
				dels = append(dels, batch[i].Key)
			}
		}
		if len(dels) > 0 {
			r, err := e.kernel.Delete(ctx, dels)
			count(r, err)
		}
		r, err := e.kernel.Commit(ctx, batch)
		count(r, err)
		res.Replaced += len(dels)
		res.Updated += len(batch) - len(dels)
	}
	if ctx.Err() != nil {
		errs = append(errs, ctx.Err())
	}
	res.Duration = time.Since(start)
	e.log.Info("adopted the peer's connection states (split brain healed)", "replaced", res.Replaced,
		"updated", res.Updated, "kept", res.Kept, "failed", res.Failed, "duration", res.Duration)
	if len(errs) > 0 {
		return res, fmt.Errorf("ctsync: adopt peer states: %w", errs[0])
	}
	return res, nil
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
