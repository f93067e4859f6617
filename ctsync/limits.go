package ctsync

import (
	"context"
	"maps"
	"time"
)

// Bounds on everything the peer can make the engine hold or do. The sync
// segment is not trusted: a peer (or whoever speaks for it) must not grow
// memory without limit or hold the engine lock for long.
const (
	// DefaultExternalLimit bounds the external cache (conntrackd's
	// HashLimit default). A new state beyond it is dropped, counted
	// ("external_full") and a resync is requested once there is room.
	DefaultExternalLimit = 262144
	// DefaultInjectQueueLimit bounds the states waiting to be written into
	// the kernel in direct-inject mode. Receivers stop reading the sync
	// socket while the queue is near it (waitInjectRoom), so a burst
	// faster than the kernel takes it is held back by the socket and
	// recovered by FTFW, not dropped; "inject_queue_full" counts what
	// still overflows.
	DefaultInjectQueueLimit = 65536
	// maxStatesPerDatagram is the most states one received datagram can
	// queue: 64 KiB of the smallest messages (8-byte headers).
	maxStatesPerDatagram = 65536 / 8
	// bulkMinInterval rate-limits bulk sends the peer asks for (RESYNC, or
	// a NACK reaching into states the resend queue dropped): requests in
	// between are coalesced into one bulk at the end of the interval.
	bulkMinInterval = time.Second
	// lossResyncEvery rate-limits the RESYNC requests sent because a bound
	// dropped a received state.
	lossResyncEvery = 10 * time.Second
)

// Rejection reasons counted by the engine besides the codec's (Reason).
const (
	ReasonForeignSource   = "foreign_source"
	ReasonSeqImplausible  = "seq_implausible"
	ReasonFiltered        = "filtered"
	ReasonExternalFull    = "external_full"
	ReasonInjectQueueFull = "inject_queue_full"
)

func (e *Engine) rejectName(r string) { e.malformed[r]++ }

// acceptLocked validates one decoded, in-sequence state and applies it
// (external cache) or queues it (direct inject). It reports whether the
// injector must be woken.
//
// payload is f's wire encoding, which the inject queue keeps (injectqueue.go).
func (e *Engine) acceptLocked(now time.Time, del bool, f *Flow, payload []byte) bool {
	var err error
	if del {
		err = validateKey(&f.Key)
	} else {
		err = validateFlow(f, &e.cfg.MaxTimeouts)
	}
	if err != nil {
		e.rejectName(err.(*InvalidStateError).Reason)
		return false
	}
	// The filter gets a copy held by the engine: passing f itself through
	// the interface would move every received state to the heap.
	e.filterScratch = *f
	if !del && e.filter != nil && !e.filter.Accept(&e.filterScratch) {
		// The configured filter holds on the receive side too: a state
		// this node would not replicate is not taken from the peer.
		e.rejectName(ReasonFiltered)
		return false
	}
	e.st.applied++
	e.convergeSeenLocked(&f.Key, now)
	e.digestSeenLocked(f, del)
	// adoptUntil: a healed split brain's late states go in too (adopt.go).
	if e.cfg.DirectInject && !e.holdInject || now.Before(e.adoptUntil) {
		if e.injectQ.len() >= e.cfg.InjectQueueLimit {
			e.rejectName(ReasonInjectQueueFull)
			e.lossResync = true
			return true
		}
		e.injectQ.push(payload, del)
		return true
	}
	if del {
		e.external.Delete(f.Key)
		return false
	}
	if e.external.Len() >= e.cfg.ExternalLimit && !e.external.Has(f.Key) {
		e.rejectName(ReasonExternalFull)
		e.lossResync = true
		return false
	}
	e.external.Put(f, now)
	return false
}

// Back-pressure: a receiver that has just queued states past the inject
// queue's high-water mark waits, before it takes the next datagram, until
// the injector has taken the queue. Meanwhile the sync socket fills and
// the kernel drops what does not fit; FTFW notices the gap and the peer
// sends those states again once the injector has caught up. The mark
// leaves room under the bound for the states one datagram can carry.
// NOTRACK has no retransmission and would not even notice the socket's
// loss, so there a full queue keeps dropping, counted, and the resync it
// schedules recovers.

// injectHighWater is cfg's high-water mark (0: no back-pressure).
func injectHighWater(cfg *Config) int {
	if cfg.Mode != ModeFTFW {
		return 0
	}
	return cfg.InjectQueueLimit - min(maxStatesPerDatagram, cfg.InjectQueueLimit/2)
}

// injectFullLocked reports whether the inject queue is past its
// high-water mark. Callers hold e.mu.
func (e *Engine) injectFullLocked() bool {
	return e.injectHigh > 0 && e.injectQ.len() > e.injectHigh
}

// waitInjectRoom waits until the inject queue is below its high-water
// mark again. It returns false when ctx ends.
func (e *Engine) waitInjectRoom(ctx context.Context) bool {
	for {
		e.wake(e.injectCh)
		select {
		case <-ctx.Done():
			return false
		case <-e.injectRoom:
		}
		e.mu.Lock()
		full := e.injectFullLocked()
		e.mu.Unlock()
		if !full {
			return true
		}
	}
}

// wantBulkLocked records a bulk send the peer asked for; bulkLoop runs it,
// at most once per bulkMinInterval.
func (e *Engine) wantBulkLocked() {
	e.bulkWanted = true
	e.wake(e.bulkCh)
}

// bulkLoop runs the peer-requested bulk sends, rate-limited.
func (e *Engine) bulkLoop(ctx context.Context) error {
	var last time.Time
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-e.bulkCh:
		}
		if wait := time.Until(last.Add(bulkMinInterval)); wait > 0 {
			t := time.NewTimer(wait)
			select {
			case <-ctx.Done():
				t.Stop()
				return nil
			case <-t.C:
			}
		}
		e.mu.Lock()
		want := e.bulkWanted
		e.bulkWanted = false
		e.mu.Unlock()
		if want {
			last = time.Now()
			e.bulkChunked()
		}
	}
}

// bulkChunked queues the whole internal cache for the peer, walking it in
// chunks (walk.go) and waking the transmitter after each, so the first
// states leave while the walk goes on. A key deleted after it was queued
// goes out as CT_DEL (the transmitter reads the current state), which is
// right; a key added meanwhile goes out with its own event.
func (e *Engine) bulkChunked() {
	e.mu.Lock()
	e.st.bulkSends++
	n := 0
	e.walkLocked(e.internal, func(k *ckey, _ *centry) bool {
		e.sess.enqueueCompact(*k, MsgCTUpd)
		if n++; n%walkChunk == 0 {
			e.wake(e.kick)
		}
		return true
	})
	e.mu.Unlock()
	e.wake(e.kick)
}

// maintainLimits runs from maintLoop: it logs datagrams the channels
// dropped (at most once a second) and requests a resync after a bound
// dropped a received state, once there is room again.
func (e *Engine) maintainLimits(now time.Time) {
	if now.Sub(e.lastRejectLog) >= time.Second {
		e.lastRejectLog = now
		for i, l := range e.links {
			rc, ok := l.(RejectCounter)
			if !ok {
				continue
			}
			counts, last := rc.Rejected()
			var total uint64
			for _, n := range counts {
				total += n
			}
			if total > e.linkRejects[i] {
				e.log.Warn("sync datagrams rejected", "link", l.String(), "new", total-e.linkRejects[i], "total", total, "last", last)
				e.linkRejects[i] = total
			}
		}
	}
	e.mu.Lock()
	want := e.lossResync && now.Sub(e.lastLossResync) >= lossResyncEvery &&
		e.external.Len() < e.cfg.ExternalLimit*9/10 && e.injectQ.len() < e.cfg.InjectQueueLimit/2
	if want {
		e.lossResync = false
		e.lastLossResync = now
	}
	e.mu.Unlock()
	if want {
		e.log.Warn("received states were dropped by a bound; asking the peer for a resync")
		e.RequestResync()
	}
}

// channelRejects sums the channels' rejection counts into m.
func (e *Engine) channelRejects(m map[string]uint64) {
	for _, l := range e.links {
		if rc, ok := l.(RejectCounter); ok {
			counts, _ := rc.Rejected()
			for r, n := range counts {
				m[r] += n
			}
		}
	}
}

// rejects returns every rejection count by reason, the channels' included.
func (e *Engine) rejects() map[string]uint64 {
	m := maps.Clone(e.malformed)
	e.channelRejects(m)
	return m
}
