package ctsynctest

import (
	"context"
	"sync"
	"time"

	"github.com/fwpair/fwpair/ctsync/ctnetlink"
)

type (
	flow   = ctnetlink.Flow
	key    = ctnetlink.Key
	event  = ctnetlink.Event
	result = ctnetlink.CommitResult
)

// eventBatch is how many events one call of the sink gets at most.
const eventBatch = 256

// Kernel is an in-memory conntrack table with the methods of ctsync.Kernel.
// Changes made through Create, Touch and Remove look like traffic (events
// not Own); Commit and Delete report Own events, as the Linux adapter
// reports the daemon's writes.
//
// A Kernel from NewAgingKernel keeps a deadline per entry, as the kernel
// does: Dump reports the remaining timeout, Touch (a packet) pushes the
// deadline out without an event, and an entry past its deadline is
// removed with a DESTROY event (checked every second of the clock, which
// is synctest's in a bubble). A Kernel from NewKernel keeps each entry's
// timeout as written and never expires it.
type Kernel struct {
	mu      sync.Mutex
	table   map[key]*entry
	pending []event
	notify  chan struct{}
	aging   bool
	silent  bool
	commits int
	// dumpHook runs after Dump took its snapshot, before it returns.
	dumpHook func()
}

type entry struct {
	f       flow
	expires time.Time
}

// NewKernel returns an empty table whose entries do not age.
func NewKernel() *Kernel {
	return &Kernel{table: make(map[key]*entry), notify: make(chan struct{}, 1)}
}

// NewAgingKernel returns an empty table whose entries expire like the
// kernel's.
func NewAgingKernel() *Kernel {
	k := NewKernel()
	k.aging = true
	return k
}

func (k *Kernel) emitLocked(evs ...event) {
	if k.silent {
		return
	}
	k.pending = append(k.pending, evs...)
	k.wakeLocked()
}

func (k *Kernel) wakeLocked() {
	select {
	case k.notify <- struct{}{}:
	default:
	}
}

func (k *Kernel) putLocked(f *flow, now time.Time) (created bool) {
	_, ok := k.table[f.Key]
	k.table[f.Key] = &entry{f: *f, expires: now.Add(time.Duration(f.Timeout) * time.Second)}
	return !ok
}

func (k *Kernel) expireLocked(now time.Time) {
	if !k.aging {
		return
	}
	for kk, en := range k.table {
		if !now.Before(en.expires) {
			delete(k.table, kk)
			k.emitLocked(event{Type: ctnetlink.EventDestroy, Flow: en.f})
		}
	}
}

// Create adds or replaces a flow as traffic would (a NEW or UPDATE event).
func (k *Kernel) Create(f ctnetlink.Flow) {
	k.mu.Lock()
	defer k.mu.Unlock()
	t := ctnetlink.EventUpdate
	if k.putLocked(&f, time.Now()) {
		t = ctnetlink.EventNew
	}
	k.emitLocked(event{Type: t, Flow: f})
}

// CreateBatch creates flows as traffic would, all under one hold of the
// table's lock, and returns how many events wait to be read (a socket
// buffer's backlog, to pace a generator).
func (k *Kernel) CreateBatch(flows []ctnetlink.Flow) (backlog int) {
	k.mu.Lock()
	defer k.mu.Unlock()
	now := time.Now()
	for i := range flows {
		t := ctnetlink.EventUpdate
		if k.putLocked(&flows[i], now) {
			t = ctnetlink.EventNew
		}
		k.emitLocked(event{Type: t, Flow: flows[i]})
	}
	return len(k.pending)
}

// Touch is a packet of the flow: its timeout starts again at timeout
// seconds, without an event (aging tables only change).
func (k *Kernel) Touch(kk ctnetlink.Key, timeout uint32) {
	k.mu.Lock()
	defer k.mu.Unlock()
	if en, ok := k.table[kk]; ok {
		en.expires = time.Now().Add(time.Duration(timeout) * time.Second)
	}
}

// Remove destroys a flow as traffic would (a DESTROY event).
func (k *Kernel) Remove(kk ctnetlink.Key) {
	k.mu.Lock()
	defer k.mu.Unlock()
	if en, ok := k.table[kk]; ok {
		delete(k.table, kk)
		k.emitLocked(event{Type: ctnetlink.EventDestroy, Flow: en.f})
	}
}

// Overrun reports lost events (EventOverrun), as a full socket buffer does.
func (k *Kernel) Overrun() { k.report(ctnetlink.EventOverrun) }

// Gap reports events missed on purpose (EventGap), as after a quiet commit.
func (k *Kernel) Gap() { k.report(ctnetlink.EventGap) }

func (k *Kernel) report(t ctnetlink.EventType) {
	k.mu.Lock()
	defer k.mu.Unlock()
	k.pending = append(k.pending, event{Type: t})
	k.wakeLocked()
}

// SetSilent makes the changes that follow emit no event while on (lost
// events, or a listener out of the groups).
func (k *Kernel) SetSilent(on bool) {
	k.mu.Lock()
	k.silent = on
	k.mu.Unlock()
}

// SetDumpHook sets a function Dump runs after it took its snapshot and
// before it returns (nil: none).
func (k *Kernel) SetDumpHook(fn func()) {
	k.mu.Lock()
	k.dumpHook = fn
	k.mu.Unlock()
}

// Commits returns how many times Commit was called.
func (k *Kernel) Commits() int {
	k.mu.Lock()
	defer k.mu.Unlock()
	return k.commits
}

// Snapshot returns a copy of the table (as written: timeouts not aged).
func (k *Kernel) Snapshot() map[ctnetlink.Key]ctnetlink.Flow {
	k.mu.Lock()
	defer k.mu.Unlock()
	k.expireLocked(time.Now())
	out := make(map[key]flow, len(k.table))
	for kk, en := range k.table {
		out[kk] = en.f
	}
	return out
}

// Alive lists the keys of the live entries with their remaining seconds
// (aging tables).
func (k *Kernel) Alive() map[ctnetlink.Key]uint32 {
	k.mu.Lock()
	defer k.mu.Unlock()
	now := time.Now()
	k.expireLocked(now)
	out := make(map[key]uint32, len(k.table))
	for kk, en := range k.table {
		out[kk] = remaining(en, now)
	}
	return out
}

func remaining(en *entry, now time.Time) uint32 {
	return uint32((en.expires.Sub(now) + time.Second - 1) / time.Second)
}

// Dump returns every entry; an aging table reports the remaining timeout.
func (k *Kernel) Dump(ctx context.Context) ([]ctnetlink.Flow, error) {
	k.mu.Lock()
	now := time.Now()
	k.expireLocked(now)
	out := make([]flow, 0, len(k.table))
	for _, en := range k.table {
		f := en.f
		if k.aging {
			f.Timeout = remaining(en, now)
		}
		out = append(out, f)
	}
	hook := k.dumpHook
	k.mu.Unlock()
	if hook != nil {
		hook()
	}
	return out, nil
}

// dumpBatch is how many entries DumpEach hands over at a time, about what
// one read of a real dump socket holds.
const dumpBatch = 1000

// DumpEach is Dump handed over in batches, as the Linux adapter does: the
// table is read at once (the snapshot of a real dump is as of its reads),
// the dump hook runs, then fn gets the entries dumpBatch at a time; an
// error from fn ends it.
func (k *Kernel) DumpEach(ctx context.Context, fn func([]ctnetlink.Flow) error) error {
	all, err := k.Dump(ctx)
	if err != nil {
		return err
	}
	batch := make([]flow, 0, dumpBatch)
	for len(all) > 0 {
		n := min(len(all), dumpBatch)
		batch = append(batch[:0], all[:n]...)
		all = all[n:]
		if err := fn(batch); err != nil {
			return err
		}
		clear(batch) // fn must not keep the slice: a test that does sees zeroes
	}
	return nil
}

// Commit creates or updates flows, each with an Own event.
func (k *Kernel) Commit(ctx context.Context, flows []ctnetlink.Flow) (ctnetlink.CommitResult, error) {
	start := time.Now()
	k.mu.Lock()
	defer k.mu.Unlock()
	k.commits++
	var res result
	for i := range flows {
		t := ctnetlink.EventUpdate
		if k.putLocked(&flows[i], start) {
			res.Created++
			t = ctnetlink.EventNew
		} else {
			res.Updated++
		}
		k.emitLocked(event{Type: t, Flow: flows[i], Own: true})
	}
	res.Duration = time.Since(start)
	return res, nil
}

// Delete removes entries by key, each with an Own DESTROY event.
func (k *Kernel) Delete(ctx context.Context, keys []ctnetlink.Key) (ctnetlink.CommitResult, error) {
	k.mu.Lock()
	defer k.mu.Unlock()
	var res result
	for _, kk := range keys {
		if en, ok := k.table[kk]; ok {
			delete(k.table, kk)
			res.Deleted++
			k.emitLocked(event{Type: ctnetlink.EventDestroy, Flow: en.f, Own: true})
		}
	}
	return res, nil
}

// Events delivers the events in order, at most eventBatch per call of
// sink, until ctx ends. An aging table expires entries every second.
func (k *Kernel) Events(ctx context.Context, sink func([]ctnetlink.Event)) error {
	var tick <-chan time.Time
	if k.aging {
		t := time.NewTicker(time.Second) // the kernel's GC walks the table
		defer t.Stop()
		tick = t.C
	}
	for {
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-k.notify:
		case <-tick:
			k.mu.Lock()
			k.expireLocked(time.Now())
			k.mu.Unlock()
		}
		k.mu.Lock()
		evs := k.pending
		k.pending = nil
		k.mu.Unlock()
		for len(evs) > 0 {
			n := min(len(evs), eventBatch)
			sink(evs[:n])
			evs = evs[n:]
		}
	}
}

// Close does nothing.
func (k *Kernel) Close() error { return nil }

// QuietKernel is a Kernel with CommitQuiet (ctsync's commit without its
// own events): the commit emits no events, and neither do the changes
// During makes inside the window (traffic whose events the unsubscribed
// listener misses); then an EventGap is delivered, as the Linux adapter
// does.
type QuietKernel struct {
	*Kernel
	// During, when set, runs inside the window, after the writes.
	During func()
	quiet  int
}

// CommitQuiet commits without events and reports the window's gap.
func (k *QuietKernel) CommitQuiet(ctx context.Context, flows []ctnetlink.Flow) (ctnetlink.CommitResult, error) {
	k.SetSilent(true)
	res, err := k.Kernel.Commit(ctx, flows)
	if k.During != nil {
		k.During()
	}
	k.mu.Lock()
	k.silent = false
	k.quiet++
	k.mu.Unlock()
	k.Gap()
	return res, err
}

// Quiet returns how many times CommitQuiet was called.
func (k *QuietKernel) Quiet() int {
	k.mu.Lock()
	defer k.mu.Unlock()
	return k.quiet
}

// RecordingKernel is a Kernel that filters its own NEW and UPDATE events
// as the Linux adapter does by default (FiltersOwnUpdates, CommitReport);
// a commit over an existing entry is a replace whose own DESTROY event is
// held until Release, so a test decides that it reaches the engine after
// the injector recorded the new state.
type RecordingKernel struct {
	*Kernel
	held []event
}

// FiltersOwnUpdates reports true.
func (k *RecordingKernel) FiltersOwnUpdates() bool { return true }

// Commit writes like CommitReport: the filter drops the own NEW and UPDATE
// events of every write, whichever call made it.
func (k *RecordingKernel) Commit(ctx context.Context, flows []ctnetlink.Flow) (ctnetlink.CommitResult, error) {
	res, _, err := k.CommitReport(ctx, flows)
	return res, err
}

// CommitReport commits without NEW/UPDATE events; every flow succeeds.
func (k *RecordingKernel) CommitReport(ctx context.Context, flows []ctnetlink.Flow) (ctnetlink.CommitResult, []bool, error) {
	k.mu.Lock()
	for i := range flows {
		if en, ok := k.table[flows[i].Key]; ok {
			k.held = append(k.held, event{Type: ctnetlink.EventDestroy, Flow: en.f, Own: true})
		}
	}
	k.silent = true
	k.mu.Unlock()
	res, err := k.Kernel.Commit(ctx, flows)
	k.SetSilent(false)
	return res, make([]bool, len(flows)), err
}

// Release delivers the held DESTROY events of replaces.
func (k *RecordingKernel) Release() {
	k.mu.Lock()
	defer k.mu.Unlock()
	k.emitLocked(k.held...)
	k.held = nil
}
