package appliance

import (
	"context"
	"sync"

	"github.com/fwpair/fwpair/appliance/api"
	"github.com/fwpair/fwpair/vrrp"
)

// The follow-up worker runs, in transition order and one at a time, the
// work that must not delay the VIPs: the sync steps after a transition
// (flush, resync, bulk send; purge, request resync) and the operator's
// transition hook. The VRRP actuator already calls afterTransition in
// order; this worker keeps that order for everything that runs after it,
// as the actuator does for the VIPs (vrrp/actuator.go).
//
// Superseding. Every transition (beforeMaster, the earliest sign of a
// MASTER transition, and afterTransition) starts a new generation. A
// follow-up whose generation is no longer the current one is superseded:
//
//   - its remaining sync steps are skipped, and the step running is
//     cancelled through its context. They were meant for a state the node
//     has already left: a bulk send or an external-cache flush of a MASTER
//     that is BACKUP again would push stale states to the new MASTER or
//     drop the states it is sending; a purge scheduled by a BACKUP that is
//     MASTER again would delete, after purge_delay, the entries it now
//     serves (the commit cancels only a purge already scheduled); a
//     resync request to a peer that is BACKUP again asks the wrong node.
//     The newest transition's own steps bring the sync engine to the state
//     the node is in now.
//   - its hook still runs, in order: the operator sees every transition,
//     as keepalived's notify scripts do, and never an older one after a
//     newer one.
//
// A sync step never starts after a newer transition has begun:
// supersede waits for the step in flight (cancelled if it takes a
// context) before it returns, so a BACKUP's purge cannot be scheduled
// after the next MASTER's commit.
//
// On stop the queue is drained, not dropped: the last transition (the
// graceful MASTER→INIT) runs its hook to completion, bounded by
// hooks.timeout, before the sync engine stops.

// followUp is the work queued by one transition.
type followUp struct {
	t   vrrp.Transition
	rec *api.Transition
	cfg *Config
	gen uint64
}

// followUpQueue is an unbounded FIFO (the VRRP actuator never blocks on
// it) with the current generation.
type followUpQueue struct {
	mu     sync.Mutex
	items  []followUp
	gen    uint64
	cancel context.CancelFunc // of the step in flight, if it takes a context
	signal chan struct{}
	closed bool
	stepMu sync.Mutex // held by the worker while a sync step runs
}

func newFollowUpQueue() *followUpQueue {
	return &followUpQueue{signal: make(chan struct{}, 1)}
}

// supersede starts a new generation: every queued or running follow-up
// is superseded. It returns once no sync step of an older generation runs.
func (q *followUpQueue) supersede() uint64 {
	q.mu.Lock()
	q.gen++
	gen := q.gen
	if q.cancel != nil {
		q.cancel()
	}
	q.mu.Unlock()
	q.stepMu.Lock()
	defer q.stepMu.Unlock()
	return gen
}

// push queues the follow-up of a transition, in a new generation.
func (q *followUpQueue) push(f followUp) {
	f.gen = q.supersede()
	q.mu.Lock()
	q.items = append(q.items, f)
	q.mu.Unlock()
	q.wake()
}

func (q *followUpQueue) wake() {
	select {
	case q.signal <- struct{}{}:
	default:
	}
}

// close makes the worker return once the queue is empty.
func (q *followUpQueue) close() {
	q.mu.Lock()
	q.closed = true
	q.mu.Unlock()
	q.wake()
}

// pop waits for the next follow-up; ok is false when the queue is closed
// and empty.
func (q *followUpQueue) pop() (followUp, bool) {
	for {
		q.mu.Lock()
		if len(q.items) > 0 {
			f := q.items[0]
			q.items = q.items[1:]
			q.mu.Unlock()
			return f, true
		}
		if q.closed {
			q.mu.Unlock()
			return followUp{}, false
		}
		q.mu.Unlock()
		<-q.signal
	}
}

// step runs fn unless gen is superseded; ctx is cancelled if a newer
// transition begins while fn runs. It reports whether fn ran.
func (q *followUpQueue) step(gen uint64, fn func(ctx context.Context)) bool {
	q.stepMu.Lock()
	defer q.stepMu.Unlock()
	q.mu.Lock()
	if gen != q.gen {
		q.mu.Unlock()
		return false
	}
	ctx, cancel := context.WithCancel(context.Background())
	q.cancel = cancel
	q.mu.Unlock()
	fn(ctx)
	q.mu.Lock()
	q.cancel = nil
	q.mu.Unlock()
	cancel()
	return true
}

// runFollowUps is the worker, a task of Daemon.Run: it returns when the
// queue is closed and drained.
func (d *Daemon) runFollowUps() {
	for {
		f, ok := d.followUps.pop()
		if !ok {
			return
		}
		d.followUp(f)
	}
}
