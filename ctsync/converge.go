package ctsync

// Convergence of a returning node (direct inject). A node whose daemon was
// stopped while the peer forwarded keeps its old kernel entries: flows the
// peer closed meanwhile would stay with their stale NAT bindings until
// their timeout, and, once this node is MASTER again, be bulk-sent back and
// resurrected on both nodes. So when a BACKUP asks the peer for its table
// (RESYNC), the entries of its internal cache at that moment are
// unconfirmed; every state the peer sends confirms its key; once the
// peer's answer is complete, the entries still unconfirmed are deleted
// from the kernel.
//
// conntrackd's protocol has no end-of-bulk marker, so "complete" is: the
// request is sent, the peer is alive, and no state has arrived for
// convergeQuiet (or for convergeEmpty when the peer sent nothing at all,
// i.e. has an empty table). Becoming MASTER first abandons the round: a
// MASTER keeps its entries (they may be the only copy). In commit mode the
// returning node's leftovers are removed by the BACKUP purge instead.

import (
	"context"
	"time"
)

const (
	convergeQuiet = 3 * time.Second
	convergeEmpty = 15 * time.Second
	// convergeGiveUp abandons a round the peer never answered.
	convergeGiveUp = 5 * time.Minute
)

type convergeRound struct {
	pending  map[ckey]struct{}
	started  time.Time
	lastData time.Time // zero until the peer sent a state
	// building: pending is still being filled (the walk yields); the
	// keys the peer confirms meanwhile are kept in early and taken out
	// of pending when it is complete.
	building bool
	early    map[ckey]struct{}
}

// startConvergeLocked opens a round if this node injects and is not
// MASTER. It yields (walk.go): the round is installed first, so the
// states that arrive while it fills in its pending set count. Callers
// hold e.mu.
func (e *Engine) startConvergeLocked(now time.Time) {
	if !e.cfg.DirectInject || e.holdInject || e.internal.Len() == 0 {
		return
	}
	r := &convergeRound{
		pending: make(map[ckey]struct{}, e.internal.Len()), started: now,
		building: true, early: make(map[ckey]struct{}),
	}
	e.converge = r
	complete := e.walkLocked(e.internal, func(k *ckey, _ *centry) bool {
		if e.converge != r {
			return false // replaced or abandoned meanwhile
		}
		r.pending[*k] = struct{}{}
		return true
	})
	if e.converge != r {
		return
	}
	if !complete {
		e.converge = nil // the cache was flushed: nothing to converge
		return
	}
	for k := range r.early {
		delete(r.pending, k)
	}
	r.building, r.early = false, nil
}

// convergeSeenLocked records a state received from the peer.
func (e *Engine) convergeSeenLocked(k *Key, now time.Time) {
	if r := e.converge; r != nil {
		ck := compactKey(k)
		if r.building {
			r.early[ck] = struct{}{}
		} else {
			delete(r.pending, ck)
		}
		r.lastData = now
	}
}

// convergeTick closes the round when the peer's answer is complete.
func (e *Engine) convergeTick(ctx context.Context, now time.Time) {
	e.mu.Lock()
	r := e.converge
	if r == nil || r.building {
		e.mu.Unlock()
		return
	}
	tx, _ := e.sess.Pending()
	peerAlive := !e.lastPeer.IsZero() && e.lastPeer.After(r.started) && now.Sub(e.lastPeer) < 2*DefaultAliveInterval
	var done bool
	switch {
	case e.holdInject || now.Sub(r.started) > convergeGiveUp:
		e.converge = nil
		e.mu.Unlock()
		return
	case tx > 0 || !peerAlive:
	case !r.lastData.IsZero():
		done = now.Sub(r.lastData) >= convergeQuiet
	default:
		done = now.Sub(r.started) >= convergeEmpty
	}
	if !done {
		e.mu.Unlock()
		return
	}
	// The round is closed: r.pending is this goroutine's now, ranged over
	// while the internal-cache lookups yield.
	e.converge = nil
	stale := make([]Key, 0, len(r.pending))
	w := e.newWalker()
	for k := range r.pending {
		w.step()
		if e.holdInject {
			e.mu.Unlock() // became MASTER meanwhile: keep everything
			return
		}
		if _, ok := e.internal.entry(k); ok {
			stale = append(stale, k.key())
		}
	}
	e.mu.Unlock()
	if len(stale) == 0 {
		return
	}
	res, err := e.kernel.Delete(ctx, stale)
	e.mu.Lock()
	e.deleteKeysLocked(e.internal, stale)
	e.st.converged += uint64(res.Deleted)
	e.mu.Unlock()
	e.log.Info("removed entries the peer no longer has", "entries", len(stale), "deleted", res.Deleted, "err", err)
}
