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
// With quiet (commitquiet.go) it writes them out of the event groups when
// the kernel can.
func (e *Engine) injectCommit(ctx context.Context, ups []Flow, quiet bool) (CommitResult, error) {
	res, failed, record, err := e.injectWrite(ctx, ups, quiet)
	if record {
		e.recordInjected(ups, failed)
	}
	return res, err
}

// injectWrite is injectCommit's write. record says whether the caller must
// then record the accepted states (recordInjected): the kernel filters the
// own events and the write went through (after an error it is unknown
// which were written: the consistency check repairs what is missing).
func (e *Engine) injectWrite(ctx context.Context, ups []Flow, quiet bool) (res CommitResult, failed []bool, record bool, err error) {
	r, ok := e.kernel.(ownRecorder)
	if !ok || !r.FiltersOwnUpdates() {
		res, err = e.kernel.Commit(ctx, ups)
		return res, nil, false, err
	}
	if q, ok := r.(quietRecorder); ok && quiet {
		res, failed, err = q.CommitReportQuiet(ctx, ups)
		e.mu.Lock()
		e.st.quietInjects++
		e.mu.Unlock()
	} else {
		res, failed, err = r.CommitReport(ctx, ups)
	}
	return res, failed, err == nil, err
}

// recordInjected puts the states of ups the kernel accepted (not failed)
// into the internal cache, flagged cfInjected. It yields (walk.go): a
// batch can hold InjectQueueLimit states.
func (e *Engine) recordInjected(ups []Flow, failed []bool) {
	now := time.Now()
	e.mu.Lock()
	defer e.mu.Unlock()
	w := e.newWalker()
	for i := range ups {
		w.step()
		if failed[i] {
			continue
		}
		f := &ups[i]
		ck := compactKey(&f.Key)
		if e.touched != nil {
			e.touched[ck] = struct{}{}
		}
		if e.filter != nil && !e.filter.Accept(f) {
			e.internal.deleteCK(ck)
			continue
		}
		e.internal.putFlagged(&ck, f, now, cfInjected)
	}
}

// injectRecorder records a written chunk (recordInjected) while the
// injector writes the next one. A returning node loading the peer's table
// is bound by its injector, one thread (the kernel serialises ctnetlink
// writes), and the recording was an eighth of that thread's time in the
// 1,000,000-flow reboot. One chunk at most is being recorded, in the order
// written; its buffer comes back for a later chunk. The goroutine belongs
// to the inject call that started it, which waits for it (wait) before it
// returns and before it records deletions (ordered after the writes).
type injectRecorder struct {
	e    *Engine
	done chan []Flow // the buffer of the chunk being recorded, once it is
}

// record starts recording ups and returns an empty buffer for the next
// chunk: the one the previous record used, once that is done.
func (r *injectRecorder) record(ups []Flow, failed []bool) []Flow {
	next := r.wait()
	if next == nil {
		next = make([]Flow, 0, cap(ups))
	}
	done := make(chan []Flow, 1)
	r.done = done
	go func() {
		r.e.recordInjected(ups, failed)
		clear(ups) // no Labels or Helper kept alive
		done <- ups[:0]
	}()
	return next
}

// wait waits until the chunk being recorded, if any, is, and returns its
// buffer.
func (r *injectRecorder) wait() []Flow {
	if r.done == nil {
		return nil
	}
	b := <-r.done
	r.done = nil
	return b
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
