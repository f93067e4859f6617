package ctsync

// What the engine does when the kernel adapter filters the NEW and UPDATE
// events of its own writes (ctnetlink/ownfilter_linux.go): it records what it
// injected itself instead of learning it from the echo.
//
// In direct-inject mode the internal cache keeps, flagged cfInjected, the
// entries the daemon wrote for the peer: digest.go's BACKUP view of the
// peer's table. They used to arrive as own NEW/UPDATE events, received,
// decoded and cached after the kernel had built them. Now the injector
// puts every flow the kernel accepted into the internal cache after the
// write (failed ones are left out, so the consistency check still sees
// and repairs them), and removes the keys it deleted. Own DESTROY events
// still arrive; for an entry flagged cfInjected they are ignored: every
// writer that deletes such an entry (inject, convergence, the consistency
// check's extras) updates the cache itself, and the DESTROY half of a
// replace (delete and create of a NAT entry) may be read after the
// injector has recorded the new state, which it must not remove.

import (
	"context"
	"time"
)

// ownRecorder is a Kernel that filters its own NEW/UPDATE events and can
// say which flows of a commit failed.
type ownRecorder interface {
	FiltersOwnUpdates() bool
	CommitReport(ctx context.Context, flows []Flow) (CommitResult, []bool, error)
}

// quietRecorder is an ownRecorder that can also write with its event
// socket out of the NEW and UPDATE groups (commitquiet.go).
type quietRecorder interface {
	CommitReportQuiet(ctx context.Context, flows []Flow) (CommitResult, []bool, error)
}

// injectCommit writes injected states and, when the kernel filters its own
// events, records the accepted ones in the internal cache as the echo did.
// With quiet (a backlog, commitquiet.go) it writes them out of the event
// groups when the kernel can.
func (e *Engine) injectCommit(ctx context.Context, ups []Flow, quiet bool) (CommitResult, error) {
	r, ok := e.kernel.(ownRecorder)
	if !ok || !r.FiltersOwnUpdates() {
		return e.kernel.Commit(ctx, ups)
	}
	var res CommitResult
	var failed []bool
	var err error
	if q, ok := r.(quietRecorder); ok && quiet {
		res, failed, err = q.CommitReportQuiet(ctx, ups)
		e.mu.Lock()
		e.st.quietInjects++
		e.mu.Unlock()
	} else {
		res, failed, err = r.CommitReport(ctx, ups)
	}
	if err != nil {
		// Unknown which of the rest were written: the consistency check
		// repairs what is missing.
		return res, err
	}
	now := time.Now()
	e.mu.Lock()
	w := e.newWalker() // a batch can hold InjectQueueLimit states: yield (walk.go)
	for i := range ups {
		w.step()
		if failed[i] {
			continue
		}
		f := &ups[i]
		if e.touched != nil {
			e.touched[compactKey(&f.Key)] = struct{}{}
		}
		if e.filter != nil && !e.filter.Accept(f) {
			e.internal.Delete(f.Key)
			continue
		}
		e.internal.Put(f, now)
		e.internal.markInjected(&f.Key)
	}
	e.mu.Unlock()
	return res, nil
}

// injectForget removes deleted keys from the internal cache.
func (e *Engine) injectForget(keys []Key) {
	e.mu.Lock()
	w := e.newWalker()
	for _, k := range keys {
		w.step()
		if e.touched != nil {
			e.touched[compactKey(&k)] = struct{}{}
		}
		e.internal.Delete(k)
	}
	e.mu.Unlock()
}

// isInjectedLocked reports whether k's internal entry is flagged cfInjected.
// Callers hold e.mu.
func (e *Engine) isInjectedLocked(k *Key) bool {
	c, ok := e.internal.entry(compactKey(k))
	return ok && c.flags&cfInjected != 0
}
