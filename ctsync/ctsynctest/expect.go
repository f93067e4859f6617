package ctsynctest

import (
	"context"
	"sync"

	"github.com/fwpair/fwpair/ctsync/ctnetlink"
)

// ExpectKernel is an in-memory expectation table with the methods of
// ctsync.ExpectKernel. Like the kernel it refuses an expectation whose
// master conntrack is not in the conntrack table it was given.
type ExpectKernel struct {
	ct      *Kernel
	mu      sync.Mutex
	table   map[ctnetlink.Tuple]ctnetlink.Expect
	pending []ctnetlink.ExpectEvent
	notify  chan struct{}
}

// NewExpectKernel returns an empty expectation table beside ct.
func NewExpectKernel(ct *Kernel) *ExpectKernel {
	return &ExpectKernel{ct: ct, table: make(map[ctnetlink.Tuple]ctnetlink.Expect), notify: make(chan struct{}, 1)}
}

func (k *ExpectKernel) emitLocked(ev ctnetlink.ExpectEvent) {
	k.pending = append(k.pending, ev)
	select {
	case k.notify <- struct{}{}:
	default:
	}
}

// Helper is a conntrack helper creating an expectation (a NEW event).
func (k *ExpectKernel) Helper(x ctnetlink.Expect) { k.HelperWithMaster(x, nil) }

// HelperWithMaster is Helper with the master's state read after the event
// (ExpectEvent.Master), as the Linux adapter reports it.
func (k *ExpectKernel) HelperWithMaster(x ctnetlink.Expect, master *ctnetlink.Flow) {
	k.mu.Lock()
	defer k.mu.Unlock()
	k.table[x.Tuple] = x
	k.emitLocked(ctnetlink.ExpectEvent{Type: ctnetlink.EventNew, Expect: x, Master: master})
}

// Use is the expected connection arriving: the kernel removes the
// expectation (a DESTROY event).
func (k *ExpectKernel) Use(t ctnetlink.Tuple) {
	k.mu.Lock()
	defer k.mu.Unlock()
	if x, ok := k.table[t]; ok {
		delete(k.table, t)
		k.emitLocked(ctnetlink.ExpectEvent{Type: ctnetlink.EventDestroy, Expect: x})
	}
}

// Snapshot returns a copy of the table.
func (k *ExpectKernel) Snapshot() map[ctnetlink.Tuple]ctnetlink.Expect {
	k.mu.Lock()
	defer k.mu.Unlock()
	m := make(map[ctnetlink.Tuple]ctnetlink.Expect, len(k.table))
	for t, x := range k.table {
		m[t] = x
	}
	return m
}

// CreateExpect writes expectations (Own NEW events); one whose master is
// not in the conntrack table fails with ENOENT.
func (k *ExpectKernel) CreateExpect(ctx context.Context, xs []ctnetlink.Expect) (ctnetlink.CommitResult, error) {
	var res ctnetlink.CommitResult
	masters := k.ct.Snapshot()
	k.mu.Lock()
	defer k.mu.Unlock()
	for _, x := range xs {
		if _, ok := masters[ctnetlink.Key{Tuple: x.Master}]; !ok {
			if res.Failed == nil {
				res.Failed = map[string]int{}
			}
			res.Failed["ENOENT"]++
			continue
		}
		k.table[x.Tuple] = x
		res.Created++
		k.emitLocked(ctnetlink.ExpectEvent{Type: ctnetlink.EventNew, Expect: x, Own: true})
	}
	return res, nil
}

// DeleteExpect removes expectations (Own DESTROY events).
func (k *ExpectKernel) DeleteExpect(ctx context.Context, xs []ctnetlink.Expect) (ctnetlink.CommitResult, error) {
	var res ctnetlink.CommitResult
	k.mu.Lock()
	defer k.mu.Unlock()
	for _, x := range xs {
		if _, ok := k.table[x.Tuple]; ok {
			delete(k.table, x.Tuple)
			res.Deleted++
			k.emitLocked(ctnetlink.ExpectEvent{Type: ctnetlink.EventDestroy, Expect: x, Own: true})
		}
	}
	return res, nil
}

// ExpectEvents delivers the events in order until ctx ends.
func (k *ExpectKernel) ExpectEvents(ctx context.Context, sink func([]ctnetlink.ExpectEvent)) error {
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-k.notify:
		}
		k.mu.Lock()
		evs := k.pending
		k.pending = nil
		k.mu.Unlock()
		if len(evs) > 0 {
			sink(evs)
		}
	}
}
