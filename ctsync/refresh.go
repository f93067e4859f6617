package ctsync

// Freshness: a connection alive in this node's kernel stays alive in the
// peer's copy (kernel in direct-inject mode, external cache otherwise), at
// any age. See "Freshness of long-lived flows" in doc.go for the design
// and its cost.

import (
	"context"
	"errors"
	"time"
)

const (
	// DefaultRefreshInterval is the longest time between two refresh
	// passes (Config.RefreshInterval).
	DefaultRefreshInterval = 5 * time.Second
	// minRefreshInterval bounds how often the kernel is dumped for
	// refreshing, whatever the timeouts.
	minRefreshInterval = time.Second
	// refreshSlack is how much longer than the peer's copy the local entry
	// must live to be worth re-sending: it keeps entries whose timeout the
	// kernel did not extend (no traffic, or the peer's injected copies on
	// a backup) off the wire.
	refreshSlack = 2
	// DefaultRefreshBurst caps the states one pass re-sends
	// (Config.RefreshBurst); the rest wait for the next pass.
	DefaultRefreshBurst = 20000
)

// refreshDue reports whether the peer's copy of a cached entry, sent with
// timeout seconds left at stamp (unix seconds), has used up half of its
// life at now (or reached the later check time refreshAt), and when it
// will.
func refreshDue(c *centry, now int64) (due bool, at int64) {
	if c.timeout == 0 {
		return false, 0
	}
	at = int64(c.stamp) + int64(c.timeout)/2
	if c.refreshAt != 0 {
		at = int64(c.refreshAt)
	}
	return now >= at, at
}

// refreshScanLocked counts the internal-cache entries due for a refresh
// at now and returns the earliest time another one becomes due (0: none).
// It yields (walk.go). Callers hold e.mu.
func (e *Engine) refreshScanLocked(now int64) (due int, next int64) {
	e.walkLocked(e.internal, func(_ *ckey, c *centry) bool {
		d, at := refreshDue(c, now)
		switch {
		case d:
			due++
		case next == 0 || at < next:
			next = at
		}
		return true
	})
	return due, next
}

// refreshLoop runs refresh passes until ctx ends: a pass runs when an
// entry is due, at most every minRefreshInterval and at least every
// RefreshInterval (to notice entries added meanwhile).
func (e *Engine) refreshLoop(ctx context.Context) error {
	if e.cfg.RefreshInterval < 0 {
		return nil
	}
	t := time.NewTimer(e.cfg.RefreshInterval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
		}
		next, err := e.refresh(ctx)
		if err != nil && ctx.Err() == nil {
			e.log.Warn("refresh of long-lived flows failed", "err", err)
		}
		now := time.Now()
		d := e.cfg.RefreshInterval
		if !next.IsZero() {
			d = min(d, next.Sub(now))
		}
		t.Reset(max(d, minRefreshInterval))
	}
}

// refresh is one pass: when some cached entry's peer copy is half-way to
// expiry, the kernel table is dumped, and every such entry that the kernel
// still holds with a longer life than the peer's copy is re-sent with its
// current state and timeout (at most RefreshBurst per pass). It returns
// when the next entry becomes due.
func (e *Engine) refresh(ctx context.Context) (time.Time, error) {
	start := time.Now()
	now := start.Unix()
	e.mu.Lock()
	due, next := e.refreshScanLocked(now)
	e.mu.Unlock()
	if due == 0 {
		return unixTime(next), nil
	}
	sent := 0
	e.mu.Lock()
	w := e.newWalker() // the pass yields (walk.go)
	e.mu.Unlock()
	e.resyncMu.Lock()
	// The dump is merged as it is read, one batch per hold of e.mu, so a
	// pass holds one batch of the kernel's table in memory, not all of it.
	err := e.kernel.DumpEach(ctx, func(flows []Flow) error {
		e.mu.Lock()
		defer e.mu.Unlock()
		for i := range flows {
			if sent >= e.cfg.RefreshBurst || !w.step() {
				return errRefreshDone // the burst is spent, or a Flush emptied the cache
			}
			if e.refreshOneLocked(&flows[i], start) {
				sent++
			}
		}
		return nil
	})
	e.resyncMu.Unlock()
	if err != nil && !errors.Is(err, errRefreshDone) {
		return start.Add(minRefreshInterval), err
	}
	e.mu.Lock()
	// One more walk: due entries the dump did not have (destroyed, the
	// event not yet read) are looked at again later, not at every pass;
	// and the next due time is taken.
	postpone := sent < e.cfg.RefreshBurst
	next = 0
	e.walkLocked(e.internal, func(ck *ckey, c *centry) bool {
		if d, _ := refreshDue(c, now); d && postpone && int64(c.stamp) < now {
			left := int64(c.stamp) + int64(c.timeout) - now
			c.refreshAt = uint32(now + max(left/2, int64(minRefreshInterval/time.Second)))
			e.internal.setRefreshAt(*ck, c.refreshAt)
		}
		if d, at := refreshDue(c, now); !d && (next == 0 || at < next) {
			next = at
		}
		return true
	})
	e.st.refreshed += uint64(sent)
	e.st.refreshPasses++
	e.mu.Unlock()
	if sent > 0 {
		e.wake(e.kick)
	}
	if sent >= e.cfg.RefreshBurst {
		return start.Add(minRefreshInterval), nil
	}
	return unixTime(next), nil
}

// errRefreshDone ends a refresh pass's dump early.
var errRefreshDone = errors.New("refresh pass done")

// refreshOneLocked re-sends f, the kernel's current state of a flow, when
// the peer's copy is due (half-way to expiry) and the kernel's entry
// outlives it; it reports whether it did. An entry whose kernel state is
// no fresher is looked at again half-way to its copy's end. start is when
// the pass began. Callers hold e.mu.
func (e *Engine) refreshOneLocked(f *Flow, start time.Time) bool {
	now := start.Unix()
	ck := compactKey(&f.Key)
	c, ok := e.internal.entry(ck)
	if !ok || int64(c.stamp) >= now {
		// Gone, or changed by an event since the pass started: the
		// event's state is the newer one and is being sent.
		return false
	}
	if d, _ := refreshDue(&c, now); !d {
		return false
	}
	left := int64(c.stamp) + int64(c.timeout) - now // the peer copy's life
	if int64(f.Timeout) <= left+refreshSlack || (e.filter != nil && !e.filter.Accept(f)) {
		// The kernel's entry does not outlive the peer's copy (no
		// traffic since, or the peer's own injected state): look
		// again half-way to the copy's end, so that an entry costs
		// a logarithmic number of looks, not one per pass.
		e.internal.setRefreshAt(ck, uint32(now+max(left/2, int64(minRefreshInterval/time.Second))))
		return false
	}
	e.internal.putCK(&ck, f, start)
	e.sess.enqueueCompact(ck, MsgCTUpd)
	return true
}

func unixTime(s int64) time.Time {
	if s == 0 {
		return time.Time{}
	}
	return time.Unix(s, 0)
}
