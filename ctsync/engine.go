package ctsync

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"golang.org/x/sync/errgroup"
)

// CacheID selects a cache.
type CacheID uint8

// Caches.
const (
	CacheInternal CacheID = 1 << iota
	CacheExternal
	CacheAll = CacheInternal | CacheExternal
)

// ErrCommitInProgress is returned by Commit while another one runs.
var ErrCommitInProgress = errors.New("ctsync: commit already in progress")

// Engine replicates the local conntrack table to the peer and keeps the
// peer's table in the external cache, wire-compatible with conntrackd 1.4.7.
//
// Owners (see "Goroutines and owners" in doc.go): Run starts and waits for
// every goroutine; the state below the line "guarded by mu" is shared by
// them under e.mu, each hold bounded (walks yield, walk.go); the rest is
// immutable after New, atomic, or owned by the one goroutine named.
type Engine struct {
	// Immutable after New.
	cfg Config
	// injectHigh is the inject queue's high-water mark for back-pressure
	// (limits.go); 0: none (NOTRACK).
	injectHigh int
	log        *slog.Logger
	kernel     Kernel
	links      []Channel
	// Wake-ups (buffered 1, sent without blocking): kick wakes txLoop,
	// injectCh injectLoop, bulkCh bulkLoop, injectRoom the receivers
	// waiting for room in the inject queue (limits.go). ready is closed
	// by Run's start-up goroutine.
	kick, injectCh, bulkCh, injectRoom chan struct{}
	ready                              chan struct{}

	active  atomic.Int32 // the link sent on (recvLoop, sendAll, failover)
	running atomic.Bool  // Run was called

	commitMu sync.Mutex // one Commit at a time (held across the kernel write, never with mu)
	resyncMu sync.Mutex // one kernel dump at a time (resync, refresh)

	// maintLoop only.
	lastRejectLog time.Time
	linkRejects   []uint64

	// walkYield, when set (tests, before Run), is called between two
	// chunks of every walk, without e.mu, with the entries walked so far.
	walkYield func(done int)

	mu sync.Mutex // guarded by mu: everything below
	// filter is replaced by SetFilter.
	filter    interface{ Accept(*Flow) bool }
	internal  *Cache
	external  *Cache
	sess      *Session
	st        counters
	malformed map[string]uint64
	lastPeer  time.Time
	resyncAt  time.Time // pending overrun resync (zero: none)
	// resyncAsked is when the pending resync was first asked for: later
	// gaps push resyncAt back, but not past resyncDeferFactor delays after.
	resyncAsked time.Time
	purgeAt     time.Time // pending purge (zero: none)
	injectQ     injectQueue
	lastComm    CommitResult
	// clears counts Cache.Clear calls (Flush, SetMaster): a walk that
	// yielded compares it to notice its table was replaced (walk.go).
	clears uint64
	// holdInject is set while this node is MASTER: in direct-inject mode
	// the peer's states then go to the external cache instead of the
	// kernel, so a backup's stale view never overwrites live entries.
	holdInject bool
	// quietInjectMin is the inject batch from which the injector writes
	// out of the event groups (quietInjectMin, commitquiet.go); tests
	// lower it.
	quietInjectMin int
	// txArmed is the deadline txLoop's timer waits for (the last Poll's);
	// a receiver wakes txLoop only for work due before it.
	txArmed time.Time
	// touched records the keys of kernel events received while a Resync
	// dump runs: their event state is newer than the dump's.
	touched map[ckey]struct{}
	// Bounds (limits.go): a peer-requested bulk is pending; a bound
	// dropped a received state and a resync is due.
	bulkWanted     bool
	lossResync     bool
	lastLossResync time.Time

	filterScratch Flow // acceptLocked's copy for the filter

	// converge is the open round of a returning node (converge.go).
	converge *convergeRound
	ds       digestState
	exp      expState // expectation replication (expect.go)
	// readiness and split-brain adoption (readiness.go, adopt.go)
	askedAt, lastData, adoptedAt, adoptUntil time.Time
	answerSeen                               map[ckey]struct{}
}

type counters struct {
	bytesSent, bytesRecv, dgSent, dgRecv uint64
	sendErrors, recvErrors               uint64
	resyncs, resyncErrors, overruns      uint64
	bulkSends, resyncRequests            uint64
	failovers, purges, purged            uint64
	evNew, evUpdate, evDestroy, evOwn    uint64
	evFiltered                           uint64
	commits                              uint64
	injected, injectFailed, quietInjects uint64
	applied                              uint64
	refreshed, refreshPasses             uint64
	converged                            uint64
}

// New builds an engine. Sync sockets from cfg.Channels are opened here, in
// the calling goroutine's network namespace.
func New(cfg Config, opts Options) (*Engine, error) {
	if err := cfg.validate(len(opts.Channels) > 0); err != nil {
		return nil, err
	}
	if opts.Kernel == nil {
		return nil, errors.New("ctsync: Options.Kernel is required")
	}
	log := opts.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	links := opts.Channels
	if len(links) == 0 {
		for _, cc := range cfg.Channels {
			ch, err := OpenChannel(cc)
			if err == nil && cfg.Auth != nil {
				ch, err = NewAuthChannel(ch, *cfg.Auth, cc.Local, cc.acceptSet())
			}
			if err != nil {
				for _, l := range links {
					l.Close()
				}
				return nil, err
			}
			links = append(links, ch)
		}
	}
	if len(links) > MaxChannels {
		return nil, fmt.Errorf("ctsync: %d channels, at most %d", len(links), MaxChannels)
	}
	maxDg := links[0].MaxPayload()
	for _, l := range links[1:] {
		maxDg = min(maxDg, l.MaxPayload())
	}
	e := &Engine{
		cfg: cfg, log: log, kernel: opts.Kernel, filter: opts.Filter, links: links,
		kick: make(chan struct{}, 1), injectCh: make(chan struct{}, 1), injectRoom: make(chan struct{}, 1), ready: make(chan struct{}),
		internal: NewCache(), external: NewCache(), malformed: make(map[string]uint64),
		bulkCh: make(chan struct{}, 1), linkRejects: make([]uint64, len(links)),
		quietInjectMin: quietInjectMin,
	}
	e.injectHigh = injectHighWater(&cfg)
	e.exp.init(opts.Expect)
	if cfg.ConsistencyInterval > 0 {
		e.internal.dig, e.external.dig = &cacheDigest{}, &cacheDigest{}
	}
	e.sess = NewSession(SessionConfig{
		Mode: cfg.Mode, ACKWindow: cfg.ACKWindow, ResendQueue: cfg.ResendQueueSize,
		MaxDatagram: maxDg, Wire: cfg.Wire,
	}, time.Now())
	e.sess.expLookup = e.expLookupLocked
	e.sess.marks = e.internal // Poll looks keys up there (lookupLocked)
	return e, nil
}

// Ready is closed once Run has loaded the kernel table and started.
func (e *Engine) Ready() <-chan struct{} { return e.ready }

// Close closes the sync channels. Call it after Run has returned.
func (e *Engine) Close() error {
	var errs []error
	for _, l := range e.links {
		errs = append(errs, l.Close())
	}
	return errors.Join(errs...)
}

func (e *Engine) wake(ch chan struct{}) {
	select {
	case ch <- struct{}{}:
	default:
	}
}

// Run replicates until ctx ends: it listens to kernel events, receives from
// every link, sends, and runs the timers (overrun resync, purge, link
// failover). It returns nil when ctx ends, or the first fatal error.
func (e *Engine) Run(ctx context.Context) error {
	if !e.running.CompareAndSwap(false, true) {
		return errors.New("ctsync: Run called twice")
	}
	g, ctx := errgroup.WithContext(ctx)
	evStarted := make(chan struct{})
	g.Go(func() error {
		close(evStarted)
		err := e.kernel.Events(ctx, e.onEvents)
		if ctx.Err() != nil {
			return nil
		}
		if err == nil {
			err = errors.New("kernel event listener stopped")
		}
		return fmt.Errorf("ctsync: %w", err)
	})
	for i, l := range e.links {
		g.Go(func() error { return e.recvLoop(ctx, i, l) })
	}
	g.Go(func() error { return e.txLoop(ctx) })
	g.Go(func() error { return e.maintLoop(ctx) })
	g.Go(func() error { return e.injectLoop(ctx) })
	g.Go(func() error { return e.bulkLoop(ctx) })
	g.Go(func() error { return e.refreshLoop(ctx) })
	g.Go(func() error { return e.digestLoop(ctx) })
	if e.exp.kernel != nil {
		g.Go(func() error { return e.expEventsLoop(ctx) })
	}
	g.Go(func() error {
		<-evStarted
		// The start-up dump must not run before the event subscription:
		// a flow created between the two would be neither in the dump nor
		// reported, and never replicated until it changed.
		if s, ok := e.kernel.(subscriber); ok {
			select {
			case <-s.Subscribed():
			case <-ctx.Done():
				return nil
			}
		}
		res, err := e.resync(ctx, false)
		if err != nil && ctx.Err() == nil {
			e.log.Warn("initial kernel dump failed; retrying as overrun resync", "err", err)
			e.scheduleResync(time.Now())
		}
		if !e.cfg.NoStartupResync {
			e.RequestResync()
		}
		close(e.ready)
		e.log.Info("conntrack sync running", "mode", string(e.cfg.Mode), "links", len(e.links),
			"internal_entries", res.Entries)
		return nil
	})
	return g.Wait()
}

// subscriber is a Kernel whose Events joins the event groups some time
// after it is called (ctnetlink.LinuxKernel); Subscribed is closed once it
// has. A Kernel without it reports every change made after Events is
// called.
type subscriber interface{ Subscribed() <-chan struct{} }

func (e *Engine) onEvents(evs []Event) {
	now := time.Now()
	e.mu.Lock()
	queued := false
	for i := range evs {
		ev := &evs[i]
		switch ev.Type {
		case EventOverrun, EventGap:
			if ev.Type == EventOverrun {
				e.st.overruns++
			}
			e.deferResyncLocked(now)
			continue
		case EventNew:
			e.st.evNew++
		case EventUpdate:
			e.st.evUpdate++
		case EventDestroy:
			e.st.evDestroy++
		default:
			continue
		}
		if ev.Own {
			e.st.evOwn++
		}
		f := &ev.Flow
		if e.touched != nil {
			e.touched[compactKey(&f.Key)] = struct{}{}
		}
		if ev.Type == EventDestroy {
			if ev.Own && e.isInjectedLocked(&f.Key) {
				continue // the writer updated the cache (eventfilter.go)
			}
			if e.internal.Delete(f.Key) && !ev.Own {
				e.sess.Enqueue(f.Key, MsgCTDel)
				queued = true
			}
			continue
		}
		if e.filter != nil && !e.filter.Accept(f) {
			e.st.evFiltered++
			if e.internal.Delete(f.Key) && !ev.Own {
				e.sess.Enqueue(f.Key, MsgCTDel)
				queued = true
			}
			continue
		}
		ck := compactKey(&f.Key)
		if ev.Type == EventUpdate {
			if old, ok := e.internal.getCK(&ck); ok {
				mergeUpdate(f, &old)
			}
		}
		created := e.internal.putCK(&ck, f, now)
		if ev.Own {
			e.internal.markInjected(&f.Key)
			continue
		}
		t := MsgCTUpd
		if created {
			t = MsgCTNew
		}
		e.sess.enqueueCompact(ck, t)
		queued = true
	}
	e.mu.Unlock()
	if queued {
		e.wake(e.kick)
	}
}

func (e *Engine) lookupLocked(ck *ckey) (Flow, bool) { return e.internal.getCK(ck) }

func (e *Engine) txLoop(ctx context.Context) error {
	t := time.NewTimer(0)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-e.kick:
		case <-t.C:
		}
		var next time.Time
		for range 1024 { // bounded: yield to the timer after ~1M messages
			now := time.Now()
			e.mu.Lock()
			dgs, n := e.sess.Poll(now, e.lookupLocked, 512)
			e.txArmed = n
			e.mu.Unlock()
			next = n
			e.sendAll(dgs)
			if n.After(now) || ctx.Err() != nil {
				break
			}
		}
		d := max(time.Until(next), time.Millisecond)
		if !t.Stop() {
			select {
			case <-t.C:
			default:
			}
		}
		t.Reset(d)
	}
}

func (e *Engine) sendAll(dgs [][]byte) {
	if len(dgs) == 0 {
		return
	}
	var sent, bytes, errs uint64
	for _, d := range dgs {
		i := int(e.active.Load())
		err := e.links[i].Send(d)
		if err != nil && len(e.links) > 1 {
			if j := e.failover(i); j != i {
				err = e.links[j].Send(d)
			}
		}
		if err != nil {
			errs++
		} else {
			sent++
			bytes += uint64(len(d))
		}
	}
	// One hold for the counters of the whole batch, not one per datagram
	// (the event reader waits for the same lock).
	e.mu.Lock()
	e.st.sendErrors += errs
	e.st.dgSent += sent
	e.st.bytesSent += bytes
	e.mu.Unlock()
}

// failover makes the next link that is up active (round-robin after i)
// and returns it; i when no other link is up.
func (e *Engine) failover(i int) int {
	for k := 1; k < len(e.links); k++ {
		j := (i + k) % len(e.links)
		if e.links[j].Up() {
			if e.active.CompareAndSwap(int32(i), int32(j)) {
				e.mu.Lock()
				e.st.failovers++
				e.mu.Unlock()
				e.log.Warn("sync link failover", "from", e.links[i].String(), "to", e.links[j].String())
			}
			return int(e.active.Load())
		}
	}
	return i
}

func (e *Engine) recvLoop(ctx context.Context, i int, l Channel) error {
	buf := make([]byte, 65536)
	for errs := 0; ; {
		n, err := l.Recv(ctx, buf)
		if err != nil {
			if ctx.Err() != nil || errors.Is(err, ErrClosed) {
				return nil
			}
			e.mu.Lock()
			e.st.recvErrors++
			e.mu.Unlock()
			errs++
			if errs%100 == 1 {
				e.log.Warn("sync receive error", "link", l.String(), "err", err)
			}
			select { // do not spin on a persistent error
			case <-ctx.Done():
				return nil
			case <-time.After(10 * time.Millisecond):
			}
			continue
		}
		if isDigestDatagram(buf[:n]) {
			e.handleDigest(ctx, buf[:n])
			continue
		}
		if e.handleDatagram(i, buf[:n]) && !e.waitInjectRoom(ctx) { // limits.go
			return nil
		}
	}
}

func (e *Engine) reject(r Reason) { e.malformed[r.String()]++ }

// handleDatagram takes one received datagram. It reports whether the
// inject queue is past its high-water mark (limits.go, waitInjectRoom).
func (e *Engine) handleDatagram(link int, d []byte) (injectFull bool) {
	now := time.Now()
	inject := false
	e.mu.Lock()
	e.st.dgRecv++
	e.st.bytesRecv += uint64(len(d))
	valid := false
	for rest := d; len(rest) > 0; {
		m, r, err := NextMessage(rest)
		rest = r
		if err != nil {
			e.reject(ReasonOf(err))
			continue
		}
		valid = true
		res := e.sess.Receive(now, &m)
		if res.Reject != 0 {
			e.reject(res.Reject)
		}
		if res.Implausible {
			e.rejectName(ReasonSeqImplausible)
		}
		if res.SendAll {
			e.wantBulkLocked()
		}
		if !res.Apply {
			continue
		}
		if m.Type >= MsgExpNew {
			if e.applyExpLocked(&m) {
				inject = true
			}
			continue
		}
		f, err := e.cfg.Wire.DecodeFlow(m.Payload)
		if err != nil {
			e.reject(ReasonOf(err))
			continue
		}
		e.noteAnswerLocked(&f.Key, now)
		if e.acceptLocked(now, m.Type == MsgCTDel, &f, m.Payload) {
			inject = true
		}
	}
	if valid {
		e.lastPeer = now
	}
	injectFull = e.injectFullLocked()
	// Most datagrams of a burst give the transmitter nothing to do (an
	// ACK is due every ACKWindow messages): waking it for each cost a
	// goroutine switch and often a thread wake-up per datagram.
	kick := e.sess.dueBefore(now, e.txArmed)
	e.mu.Unlock()
	if valid && int(e.active.Load()) != link {
		old := e.active.Swap(int32(link))
		if int(old) != link {
			e.log.Info("sync link active (received on it)", "link", e.links[link].String())
		}
	}
	if inject {
		e.wake(e.injectCh)
	}
	if kick {
		e.wake(e.kick)
	}
	return injectFull
}

// injectCoalesce is how long the injector lets received states pile up
// before writing them: a datagram carries about 20 states, and one netlink
// write per datagram costs several times the CPU of one write per 1024
// states (docs/kernel-notes.md). It bounds the added latency.
const injectCoalesce = 2 * time.Millisecond

func (e *Engine) injectLoop(ctx context.Context) error {
	var spare injectQueue // the last batch's memory, for the next
	coalesce := time.NewTimer(0)
	<-coalesce.C
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-e.injectCh:
		}
		coalesce.Reset(injectCoalesce)
		select {
		case <-ctx.Done():
			coalesce.Stop()
			return nil
		case <-coalesce.C:
		}
		for {
			e.mu.Lock()
			q := e.injectQ
			e.injectQ = spare
			xq := e.takeExpQueueLocked()
			quiet := e.quietInjectLocked(q.len())
			e.mu.Unlock()
			e.wake(e.injectRoom)
			idle := q.len() == 0 && len(xq) == 0
			e.inject(ctx, &q, quiet)
			spare = q.emptied()
			if idle {
				break
			}
			if len(xq) > 0 {
				e.injectExpects(ctx, xq) // after their masters
			}
		}
	}
}

// inject writes received states into the kernel, keeping their order per
// key by splitting the batch where a create/update and a delete alternate,
// and in chunks of injectChunk, so that only a chunk is ever decoded.
func (e *Engine) inject(ctx context.Context, q *injectQueue, quiet bool) {
	rec := injectRecorder{e: e} // eventfilter.go
	defer rec.wait()
	ups := make([]Flow, 0, min(q.len(), injectChunk))
	var dels []Key
	flush := func() {
		if len(ups) > 0 {
			res, failed, record, err := e.injectWrite(ctx, ups, quiet) // eventfilter.go
			e.countInject(res, err)
			if record {
				ups = rec.record(ups, failed) // while the next chunk is written
			} else {
				clear(ups) // no Labels or Helper kept alive until the next chunk
				ups = ups[:0]
			}
		}
		if len(dels) > 0 {
			res, err := e.kernel.Delete(ctx, dels)
			rec.wait() // the writes before are recorded first
			e.injectForget(dels)
			e.countInject(res, err)
			dels = dels[:0]
		}
	}
	for i := range q.items {
		f, err := e.cfg.Wire.DecodeFlow(q.payload(i))
		if err != nil {
			// Decoded once already when it arrived: cannot happen.
			e.log.Error("inject queue holds a state that does not decode", "err", err)
			continue
		}
		if q.items[i].del {
			if len(ups) > 0 {
				flush()
			}
			dels = append(dels, f.Key)
		} else {
			if len(dels) > 0 {
				flush()
			}
			ups = append(ups, f)
		}
		if len(ups)+len(dels) >= injectChunk {
			flush()
		}
	}
	flush()
}

func (e *Engine) countInject(res CommitResult, err error) {
	e.mu.Lock()
	defer e.mu.Unlock()
	e.st.injected += uint64(res.Created + res.Updated + res.Deleted)
	for _, n := range res.Failed {
		e.st.injectFailed += uint64(n)
	}
	if err != nil {
		e.log.Warn("inject into kernel failed", "err", err)
	}
}

func (e *Engine) maintLoop(ctx context.Context) error {
	t := time.NewTicker(100 * time.Millisecond)
	defer t.Stop()
	lastLinkCheck := time.Now()
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
		}
		now := time.Now()
		if len(e.links) > 1 && now.Sub(lastLinkCheck) >= time.Second {
			lastLinkCheck = now
			if i := int(e.active.Load()); !e.links[i].Up() {
				e.failover(i)
			}
		}
		e.mu.Lock()
		resync := !e.resyncAt.IsZero() && !now.Before(e.resyncAt)
		if resync {
			e.resyncAt = time.Time{}
		}
		purge := !e.purgeAt.IsZero() && !now.Before(e.purgeAt)
		if purge {
			e.purgeAt = time.Time{}
		}
		if e.answerSeen != nil {
			e.peerStateLocked(now) // drops the answer's keys once it is in
		}
		e.mu.Unlock()
		e.maintainLimits(now)
		if resync {
			if _, err := e.resync(ctx, true); err != nil && ctx.Err() == nil {
				e.log.Warn("overrun resync failed, retrying", "err", err)
				e.scheduleResync(now.Add(e.cfg.OverrunResyncDelay))
			}
		}
		if purge {
			e.purge(ctx)
		}
		e.convergeTick(ctx, now)
	}
}

// resyncDeferFactor bounds how long overruns or gaps in a row (a burst
// longer than the event socket's buffer, quiet commits one after another)
// can keep postponing their resync: to this many OverrunResyncDelays after
// the first. Before, a node overrunning more often than once per delay
// never dumped its table, and never sent the peer what it had missed.
const resyncDeferFactor = 10

// deferResyncLocked schedules the resync after an overrun or a gap
// OverrunResyncDelay from now, so that gaps in a row are answered with one
// dump after the last, but no later than resyncDeferFactor delays after
// the first. Callers hold e.mu.
func (e *Engine) deferResyncLocked(now time.Time) {
	at := now.Add(e.cfg.OverrunResyncDelay)
	e.setResyncLocked(now, at)
	if last := e.resyncAsked.Add(resyncDeferFactor * e.cfg.OverrunResyncDelay); at.After(last) {
		e.resyncAt = last
	}
}

func (e *Engine) scheduleResync(at time.Time) {
	e.mu.Lock()
	e.setResyncLocked(time.Now(), at)
	e.mu.Unlock()
}

// setResyncLocked sets the pending resync to at, noting now as when it was
// first asked for if none was pending. Callers hold e.mu.
func (e *Engine) setResyncLocked(now, at time.Time) {
	if e.resyncAt.IsZero() {
		e.resyncAsked = now
	}
	e.resyncAt = at
}

// ResyncResult counts what a resync from the kernel changed.
type ResyncResult struct {
	Entries, Added, Changed, Removed int
	Duration                         time.Duration
}

// Resync dumps the kernel table into the internal cache (conntrackd -R):
// entries are added or updated, entries gone from the kernel are removed,
// and nothing is sent (BulkSend does that). Events that arrive while the
// dump runs are newer than it: their keys keep the state the events gave.
func (e *Engine) Resync(ctx context.Context) (ResyncResult, error) { return e.resync(ctx, false) }

// resync is Resync; with send (the recovery after a netlink overrun, when
// events were lost) every difference is also queued for the peer: new and
// changed entries as updates, entries gone from the kernel as deletions.
func (e *Engine) resync(ctx context.Context, send bool) (ResyncResult, error) {
	e.resyncMu.Lock()
	defer e.resyncMu.Unlock()
	start := time.Now()
	var res ResyncResult
	for attempt := 1; ; attempt++ {
		var err error
		res, err = e.resyncOnce(ctx, send, attempt < resyncAttempts)
		if errors.Is(err, errCacheCleared) {
			continue
		}
		if err != nil {
			e.mu.Lock()
			e.st.resyncErrors++
			e.mu.Unlock()
			return ResyncResult{}, fmt.Errorf("ctsync: resync: %w", err)
		}
		break
	}
	e.mu.Lock()
	res.Entries = e.internal.Len()
	e.st.resyncs++
	e.mu.Unlock()
	res.Duration = time.Since(start)
	e.wake(e.kick)
	e.log.Info("resync from kernel", "send", send, "entries", res.Entries, "added", res.Added, "changed", res.Changed,
		"removed", res.Removed, "duration", res.Duration)
	return res, nil
}

// resyncAttempts bounds how many times a resync starts its dump again
// because the internal cache was cleared (Flush, SetMaster) while it ran;
// the last attempt stops merging at the clear and finishes with what the
// new table got from events since.
const resyncAttempts = 3

// errCacheCleared ends a dump whose merge saw the internal cache cleared.
var errCacheCleared = errors.New("the internal cache was cleared during the merge")

// resyncOnce merges a kernel dump into the internal cache as the dump is
// read, one batch per hold of e.mu (and it yields, walk.go), so a resync
// holds one batch of the table in memory, not the whole table. Each entry
// the dump has is marked cfSeen; the sweep after the dump removes the
// unmarked ones and clears the marks. Keys in e.touched (kernel events and
// injections since the dump began) keep the state those gave. With retry,
// a clear of the internal cache during the merge ends the attempt with
// errCacheCleared.
func (e *Engine) resyncOnce(ctx context.Context, send, retry bool) (ResyncResult, error) {
	var res ResyncResult
	e.mu.Lock()
	e.touched = make(map[ckey]struct{})
	w := e.newWalker()
	e.mu.Unlock()
	stopped := false // the cache was cleared on the last attempt
	err := e.kernel.DumpEach(ctx, func(flows []Flow) error {
		e.mu.Lock()
		defer e.mu.Unlock()
		now := time.Now()
		for i := range flows {
			if stopped {
				return nil
			}
			if !w.step() {
				if retry {
					return errCacheCleared
				}
				stopped = true
				return nil
			}
			e.mergeDumpedLocked(&flows[i], now, send, &res)
		}
		return nil
	})
	e.mu.Lock()
	defer e.mu.Unlock()
	switch {
	case errors.Is(err, errCacheCleared):
		// The table the marks were set in is gone.
	case err != nil:
		e.sweepSeenLocked(false, false, nil)
	default:
		if !e.sweepSeenLocked(true, send, &res) && retry {
			err = errCacheCleared
		}
	}
	e.touched = nil
	return res, err
}

// mergeDumpedLocked puts one flow of a kernel dump into the internal cache
// and marks it cfSeen; with send it queues a new or changed state for the
// peer. Callers hold e.mu.
func (e *Engine) mergeDumpedLocked(f *Flow, now time.Time, send bool, res *ResyncResult) {
	if e.filter != nil && !e.filter.Accept(f) {
		return
	}
	ck := compactKey(&f.Key)
	if _, ok := e.touched[ck]; ok {
		return
	}
	c := e.internal.at(&ck)
	if c != nil && c.flags&cfInjected != 0 && !e.holdInject {
		// On a BACKUP, the peer's state written here by the injector:
		// the dump shows it as the kernel keeps it (its own status
		// bits), which is no news to send back, and it stays flagged
		// for the consistency check's view. (On a MASTER the kernel's
		// entry is the live one.)
		c.flags |= cfSeen
		return
	}
	var old Flow
	if c != nil {
		old = e.internal.flowOf(&ck, c)
	}
	e.internal.putFlagged(&ck, f, now, cfSeen)
	switch {
	case c == nil:
		res.Added++
		if send {
			e.sess.enqueueCompact(ck, MsgCTNew)
		}
	case !sameState(&old, f):
		res.Changed++
		if send {
			e.sess.enqueueCompact(ck, MsgCTUpd)
		}
	}
}

// sweepSeenLocked ends a resync's merge: it clears every entry's cfSeen
// mark and, with remove, deletes the entries the dump did not have and no
// event or injection touched since it began (with send, queuing their
// deletion for the peer). It yields; it reports false when the internal
// cache was cleared meanwhile (the new table has no marks). Callers hold
// e.mu.
func (e *Engine) sweepSeenLocked(remove, send bool, res *ResyncResult) bool {
	clears := e.clears
	n := 0
	e.internal.each(func(k *ckey, c *centry) bool {
		if c.flags&cfSeen != 0 {
			c.flags &^= cfSeen
		} else if _, ok := e.touched[*k]; remove && !ok {
			ck := *k
			if e.internal.deleteCK(ck) {
				if send {
					e.sess.enqueueCompact(ck, MsgCTDel)
				}
				res.Removed++
			}
		}
		// Yield after the entry, not before it: while the lock is
		// released, a slot may be reused by another key.
		if n++; n%walkChunk == 0 {
			e.yieldLocked(n)
		}
		return e.clears == clears
	})
	return e.clears == clears
}

// Commit writes the external cache into the kernel in one batched call
// (conntrackd -c), bounded by CommitTimeout. Each entry gets its remaining
// timeout (cached timeout minus the time since it was received; 60 s when
// that is not positive). It cancels a pending purge. With
// DirectInject it does nothing.
func (e *Engine) Commit(ctx context.Context) (CommitResult, error) {
	if e.cfg.DirectInject {
		return CommitResult{}, nil
	}
	if !e.commitMu.TryLock() {
		return CommitResult{}, ErrCommitInProgress
	}
	defer e.commitMu.Unlock()
	start := time.Now()
	e.mu.Lock()
	e.purgeAt = time.Time{}
	// A walk in chunks (walk.go); a Flush of the external cache meanwhile
	// ends it: what was read so far is committed.
	flows := make([]Flow, 0, e.external.Len())
	e.walkLocked(e.external, func(k *ckey, v *centry) bool {
		f := e.external.flowOf(k, v)
		if f.Timeout != 0 {
			age := uint32(max(0, start.Sub(time.Unix(int64(v.stamp), 0))/time.Second))
			if f.Timeout > age {
				f.Timeout -= age
			} else {
				f.Timeout = 60
			}
		}
		f.Status &^= ipsExpected
		flows = append(flows, f)
		return true
	})
	e.mu.Unlock()
	ctx, cancel := context.WithTimeout(ctx, e.cfg.CommitTimeout)
	defer cancel()
	res, err := commitQuiet(ctx, e.kernel, flows)
	e.commitExpects(ctx) // after their masters
	if res.Duration == 0 {
		res.Duration = time.Since(start)
	}
	e.mu.Lock()
	e.st.commits++
	e.lastComm = res
	e.mu.Unlock()
	failed := 0
	for _, n := range res.Failed {
		failed += n
	}
	e.log.Info("committed external cache", "entries", len(flows), "created", res.Created,
		"updated", res.Updated, "failed", failed, "duration", res.Duration, "err", err)
	if err != nil {
		return res, fmt.Errorf("ctsync: commit: %w", err)
	}
	return res, nil
}

const ipsExpected = 1 << 0

// SetFilter replaces the replication filter (nil accepts everything), e.g.
// on a configuration reload. It applies to the next events and resyncs;
// entries already replicated stay until they change.
func (e *Engine) SetFilter(f interface{ Accept(*Flow) bool }) {
	e.mu.Lock()
	e.filter = f
	e.mu.Unlock()
}

// SetMaster tells the engine whether this node is the MASTER. In
// direct-inject mode a MASTER keeps what the peer sends in the external
// cache instead of writing it into the kernel: the kernel's own entries are
// the live ones, and a backup's stale view (for instance after a restart,
// or echoes of a split brain) must not overwrite them. Leaving MASTER drops
// that holding cache; the new MASTER's states then arrive through the
// resync the caller requests. Without direct inject it changes nothing.
func (e *Engine) SetMaster(master bool) {
	e.mu.Lock()
	defer e.mu.Unlock()
	if !master && e.holdInject && e.cfg.DirectInject {
		// Only in direct-inject mode is this cache a holding area; in
		// external-cache mode it is the store the next commit needs.
		e.external.Clear()
		e.clears++
		clear(e.exp.held)
	}
	e.holdInject = master
}

// Flush empties caches (conntrackd -f). Flushing the internal cache
// cancels a pending purge.
func (e *Engine) Flush(which CacheID) {
	e.mu.Lock()
	defer e.mu.Unlock()
	if which&CacheInternal != 0 {
		e.internal.Clear()
		e.purgeAt = time.Time{}
		// A resync under way keeps, for the keys events touched since
		// its dump, the state the events gave; the flush has removed
		// that state, so the dump's is the one to take.
		clear(e.touched)
	}
	if which&CacheExternal != 0 {
		e.external.Clear()
	}
	e.clears++
}

// BulkSend queues the whole internal cache for the peer (conntrackd -B),
// a slice at a time (see bulkChunked).
func (e *Engine) BulkSend() { e.bulkChunked() }

// RequestResync asks the peer for its whole internal cache (conntrackd -n).
func (e *Engine) RequestResync() {
	e.mu.Lock()
	e.st.resyncRequests++
	e.askedAt = time.Now()
	e.answerSeen = make(map[ckey]struct{})
	e.sess.RequestResync()
	e.wake(e.kick)
	// The round is open before the first yield of its walk, so before
	// the request leaves: every state of the answer counts.
	e.startConvergeLocked(e.askedAt)
	e.mu.Unlock()
}

// SchedulePurge arms the purge (conntrackd -t): after delay (Config
// PurgeDelay when <= 0) the entries of the internal cache, i.e. the local
// flows this node replicated, are deleted from the kernel and the internal
// cache is emptied. Commit and Flush of the internal cache cancel it; a
// pending purge is not re-armed.
func (e *Engine) SchedulePurge(delay time.Duration) {
	if delay <= 0 {
		delay = e.cfg.PurgeDelay
	}
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.purgeAt.IsZero() {
		e.purgeAt = time.Now().Add(delay)
		e.log.Info("purge scheduled", "delay", delay)
	}
}

func (e *Engine) purge(ctx context.Context) {
	e.mu.Lock()
	keys := e.keysLocked(e.internal)
	e.mu.Unlock()
	res, err := e.kernel.Delete(ctx, keys)
	e.mu.Lock()
	e.deleteKeysLocked(e.internal, keys)
	e.st.purges++
	e.st.purged += uint64(res.Deleted)
	e.mu.Unlock()
	e.log.Info("purged local entries", "entries", len(keys), "deleted", res.Deleted, "err", err)
}

// LinkStatus is the state of one sync link.
type LinkStatus struct {
	Name   string `json:"name"`
	Up     bool   `json:"up"`
	Active bool   `json:"active"`
}

// Status is the engine's state for `fwpairctl status`.
type Status struct {
	Mode            Mode         `json:"mode"`
	Ready           bool         `json:"ready"`
	PeerAlive       bool         `json:"peer_alive"`
	LastPeerMessage time.Time    `json:"last_peer_message"`
	Links           []LinkStatus `json:"links"`
	InternalEntries int          `json:"internal_entries"`
	ExternalEntries int          `json:"external_entries"`
	DirectInject    bool         `json:"direct_inject"`
	PurgePending    bool         `json:"purge_pending"`
	TxQueue         int          `json:"tx_queue"`
	Unacked         int          `json:"unacked"`
}

// Status returns the current state.
func (e *Engine) Status() Status {
	active := int(e.active.Load())
	links := make([]LinkStatus, len(e.links))
	for i, l := range e.links {
		links[i] = LinkStatus{Name: l.String(), Up: l.Up(), Active: i == active}
	}
	ready := false
	select {
	case <-e.ready:
		ready = true
	default:
	}
	e.mu.Lock()
	defer e.mu.Unlock()
	tx, un := e.sess.Pending()
	return Status{
		Mode: e.cfg.Mode, Ready: ready,
		PeerAlive:       !e.lastPeer.IsZero() && time.Since(e.lastPeer) < 3*DefaultAliveInterval,
		LastPeerMessage: e.lastPeer, Links: links,
		InternalEntries: e.internal.Len(), ExternalEntries: e.external.Len(),
		DirectInject: e.cfg.DirectInject, PurgePending: !e.purgeAt.IsZero(),
		TxQueue: tx, Unacked: un,
	}
}

// Stats are the engine's counters (monotonic unless noted).
type Stats struct {
	MessagesSent     uint64 `json:"messages_sent"`
	MessagesReceived uint64 `json:"messages_received"`
	DatagramsSent    uint64 `json:"datagrams_sent"`
	DatagramsRecv    uint64 `json:"datagrams_received"`
	BytesSent        uint64 `json:"bytes_sent"`
	BytesReceived    uint64 `json:"bytes_received"`
	SendErrors       uint64 `json:"send_errors"`
	RecvErrors       uint64 `json:"receive_errors"`
	Retransmits      uint64 `json:"retransmits"`
	NACKsSent        uint64 `json:"nacks_sent"`
	NACKsReceived    uint64 `json:"nacks_received"`
	// Renacks counts NACKs repeated for a gap still open.
	Renacks uint64 `json:"renacks"`
	// WindowWaits counts the times the sender waited for the peer's ACKs
	// before sending more states (flow control, session.go).
	WindowWaits    uint64 `json:"window_waits"`
	ACKsSent       uint64 `json:"acks_sent"`
	ACKsReceived   uint64 `json:"acks_received"`
	Lost           uint64 `json:"lost"`
	Before         uint64 `json:"before"`
	ResendOverflow uint64 `json:"resend_overflow"`
	// SeqImplausible counts messages dropped for a sequence number far
	// outside the peer's live window; SeqAdopted the far sequence numbers
	// taken as the new baseline after the live stream fell silent;
	// RenackOverflow the gaps given up because the re-NACK list was full.
	SeqImplausible uint64 `json:"seq_implausible"`
	SeqAdopted     uint64 `json:"seq_adopted"`
	RenackOverflow uint64 `json:"renack_overflow"`
	// Resyncs counts dumps of the kernel table into the internal cache.
	Resyncs      uint64 `json:"resyncs"`
	ResyncErrors uint64 `json:"resync_errors"`
	// ResyncRequestsSent/Received count RESYNC control messages.
	ResyncRequestsSent     uint64 `json:"resync_requests_sent"`
	ResyncRequestsReceived uint64 `json:"resync_requests_received"`
	BulkSends              uint64 `json:"bulk_sends"`
	Overruns               uint64 `json:"overruns"`
	// Malformed counts rejected input by reason: the codec's (see Reason),
	// the channels' (foreign_source, auth_*), received-state validation
	// (invalid_*, filtered) and the bounds (external_full, ...).
	Malformed      map[string]uint64 `json:"malformed"`
	EventsNew      uint64            `json:"events_new"`
	EventsUpdate   uint64            `json:"events_update"`
	EventsDestroy  uint64            `json:"events_destroy"`
	EventsOwn      uint64            `json:"events_own"`
	EventsFiltered uint64            `json:"events_filtered"`
	Applied        uint64            `json:"applied"`
	Injected       uint64            `json:"injected"`
	InjectFailed   uint64            `json:"inject_failed"`
	// QuietInjects counts inject writes of a backlog made out of the
	// event groups (commitquiet.go).
	QuietInjects uint64       `json:"quiet_injects"`
	Commits      uint64       `json:"commits"`
	LastCommit   CommitResult `json:"last_commit"`
	Failovers    uint64       `json:"failovers"`
	Purges       uint64       `json:"purges"`
	Purged       uint64       `json:"purged"`
	// Refreshed counts states re-sent because the peer's copy was
	// half-way to expiry while the local entry lived on; RefreshPasses
	// the kernel dumps taken for that.
	Refreshed     uint64 `json:"refreshed"`
	RefreshPasses uint64 `json:"refresh_passes"`
	// Converged counts kernel entries a returning node removed because
	// the peer no longer had them (converge.go).
	Converged uint64 `json:"converged"`
	// Consistency check (digest.go): digests compared, entries repaired,
	// states re-sent on the peer's requests.
	ConsistencyChecks   uint64 `json:"consistency_checks"`
	ConsistencyRepaired uint64 `json:"consistency_repaired"`
	ConsistencyResent   uint64 `json:"consistency_resent"`
	// Expectations (expect.go): local ones sent to the peer, the peer's
	// applied, written into the kernel, failed writes.
	ExpectationsSent     uint64 `json:"expectations_sent"`
	ExpectationsReceived uint64 `json:"expectations_received"`
	ExpectationsCreated  uint64 `json:"expectations_created"`
	ExpectationsFailed   uint64 `json:"expectations_failed"`
}

// Stats returns a snapshot of the counters.
func (e *Engine) Stats() Stats {
	e.mu.Lock()
	defer e.mu.Unlock()
	ss := e.sess.Stats()
	return Stats{
		MessagesSent: ss.MsgsSent, MessagesReceived: ss.MsgsRecv,
		DatagramsSent: e.st.dgSent, DatagramsRecv: e.st.dgRecv,
		BytesSent: e.st.bytesSent, BytesReceived: e.st.bytesRecv,
		SendErrors: e.st.sendErrors, RecvErrors: e.st.recvErrors,
		Retransmits: ss.Retransmits, NACKsSent: ss.NACKsSent, NACKsReceived: ss.NACKsRecv, Renacks: ss.Renacks, WindowWaits: ss.WindowWaits,
		ACKsSent: ss.ACKsSent, ACKsReceived: ss.ACKsRecv, Lost: ss.Lost, Before: ss.Before,
		ResendOverflow: ss.ResendOverflow,
		Resyncs:        e.st.resyncs, ResyncErrors: e.st.resyncErrors,
		ResyncRequestsSent: ss.ResyncsSent, ResyncRequestsReceived: ss.ResyncsRcv,
		BulkSends: e.st.bulkSends, Overruns: e.st.overruns,
		Malformed:      e.rejects(),
		SeqImplausible: ss.SeqImplausible, SeqAdopted: ss.SeqAdopted, RenackOverflow: ss.RenackOverflow,
		EventsNew: e.st.evNew, EventsUpdate: e.st.evUpdate, EventsDestroy: e.st.evDestroy,
		EventsOwn: e.st.evOwn, EventsFiltered: e.st.evFiltered,
		Applied: e.st.applied, Injected: e.st.injected, InjectFailed: e.st.injectFailed, QuietInjects: e.st.quietInjects,
		Commits: e.st.commits, LastCommit: e.lastComm,
		Failovers: e.st.failovers, Purges: e.st.purges, Purged: e.st.purged,
		Refreshed: e.st.refreshed, RefreshPasses: e.st.refreshPasses,
		Converged:         e.st.converged,
		ConsistencyChecks: e.ds.checks, ConsistencyRepaired: e.ds.repaired, ConsistencyResent: e.ds.resent,
		ExpectationsSent: e.exp.st.EventsNew - e.exp.st.Skipped - e.exp.st.Rejected, ExpectationsReceived: e.exp.st.Received,
		ExpectationsCreated: e.exp.st.Created, ExpectationsFailed: e.exp.st.Failed,
	}
}

// Entries lists a cache (`fwpairctl cache internal|external`).
func (e *Engine) Entries(which CacheID) []Flow {
	e.mu.Lock()
	defer e.mu.Unlock()
	var out []Flow
	if which&CacheInternal != 0 {
		out = e.flowsLocked(e.internal, out)
	}
	if which&CacheExternal != 0 {
		out = e.flowsLocked(e.external, out)
	}
	return out
}
