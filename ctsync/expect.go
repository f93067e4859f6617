package ctsync

import (
	"context"
	"errors"
	"fmt"
	"time"
)

// Expectation replication (conntrackd's ExpectationSync).
//
// A helper (ftp, sip, ...) creates an expectation in the MASTER's kernel
// when it sees the control connection announce a data connection; the data
// connection that matches it is set up as RELATED (with the NAT binding the
// helper saved). For a data connection opened after a failover to be
// accepted, the new MASTER must hold the expectation too. The engine:
//
//   - listens to the kernel's expectation events (ExpectKernel) and keeps
//     the live expectations whose master conntrack it replicates in its
//     own map, sending EXP_NEW on creation and EXP_DEL (built from the last
//     known state, kept as a tombstone) when the kernel destroys one;
//   - on the peer, applies received expectations as conntracks are applied:
//     created in the kernel at once in direct-inject mode (after the
//     conntracks of the same batch, so the master exists), held in an
//     expectation cache and created by Commit otherwise, or while this node
//     is MASTER in direct-inject mode;
//   - sends expectations in the same sequenced stream as conntracks (FTFW
//     recovers them like any state), keyed in the session by their expected
//     tuple with famExpect set (the kernel allows one expectation per
//     expected tuple and mask).
//
// Expectations are short-lived (the ftp helper's last five minutes), so
// they are not part of bulk sends, resyncs or the consistency digest.

// ExpectKernel is the engine's view of the local expectation table.
type ExpectKernel interface {
	// CreateExpect creates expectations; an existing one is replaced.
	CreateExpect(ctx context.Context, xs []Expect) (CommitResult, error)
	// DeleteExpect removes expectations by expected tuple; missing ones
	// are not an error.
	DeleteExpect(ctx context.Context, xs []Expect) (CommitResult, error)
	// ExpectEvents delivers expectation NEW and DESTROY events until ctx
	// ends.
	ExpectEvents(ctx context.Context, sink func([]ExpectEvent)) error
}

// famExpect marks a session key as an expectation's (see expKey).
const famExpect = 1 << 4

// expTombstoneTTL is how long the last state of a destroyed expectation is
// kept so its EXP_DEL can be built (and rebuilt on a NACK).
const expTombstoneTTL = 60 * time.Second

// expMax bounds each expectation map (the kernel's own default limit,
// nf_conntrack_expect_max, is a few thousand).
const expMax = 1 << 16

// ExpectStats are the expectation counters.
type ExpectStats struct {
	Local, Held              int    // live local expectations; peer's held in the cache
	EventsNew, EventsDestroy uint64 // kernel events (own excluded)
	Skipped                  uint64 // local expectations whose master is not replicated
	Received                 uint64 // EXP messages applied
	Created, Deleted, Failed uint64 // kernel writes (inject and commit)
	Rejected                 uint64 // malformed or over the bound
}

type expEntry struct {
	x    Expect
	dead time.Time // zero: live
}

type expState struct {
	kernel   ExpectKernel // nil: replication off
	local    map[ckey]*expEntry
	held     map[ckey]Expect
	injectQ  []injectExp
	lastScan time.Time
	st       ExpectStats
}

type injectExp struct {
	x   Expect
	del bool
}

func (s *expState) init(k ExpectKernel) {
	s.kernel = k
	s.local = make(map[ckey]*expEntry)
	s.held = make(map[ckey]Expect)
}

// expKey is the session and cache key of an expectation.
func expKey(x *Expect) ckey {
	k := Key{Tuple: x.Tuple}
	ck := compactKey(&k)
	ck.fam |= famExpect
	return ck
}

// expLookupLocked returns the state to send for an expectation key: the
// live expectation (alive true) or its tombstone.
func (e *Engine) expLookupLocked(ck *ckey) (x Expect, alive, ok bool) {
	en, ok := e.exp.local[*ck]
	if !ok {
		return Expect{}, false, false
	}
	return en.x, en.dead.IsZero(), true
}

// sendExpect builds the message of an expectation key (the session's
// counterpart of sendObject).
func (s *Session) sendExpect(p *packer, ck *ckey, hint MsgType) bool {
	if s.expLookup == nil {
		return false
	}
	x, alive, ok := s.expLookup(ck)
	if !ok {
		return false // tombstone gone: nothing left to say
	}
	t := MsgExpDel
	if alive {
		t = MsgExpUpd
		if hint == MsgCTNew {
			t = MsgExpNew
		}
	}
	var buf [256]byte
	msg, err := s.cfg.Wire.AppendExp(buf[:0], t, 0, 0, &x)
	if err != nil {
		return false
	}
	s.sendData(p, msg, ck)
	return true
}

// expEventsLoop runs the expectation event listener.
func (e *Engine) expEventsLoop(ctx context.Context) error {
	err := e.exp.kernel.ExpectEvents(ctx, e.onExpectEvents)
	if ctx.Err() != nil {
		return nil
	}
	if err == nil {
		err = errors.New("expectation event listener stopped")
	}
	return fmt.Errorf("ctsync: %w", err)
}

func (e *Engine) onExpectEvents(evs []ExpectEvent) {
	now := time.Now()
	queued := false
	e.mu.Lock()
	e.sweepExpLocked(now)
	for i := range evs {
		ev := &evs[i]
		ck := expKey(&ev.Expect)
		switch ev.Type {
		case EventNew, EventUpdate:
			if ev.Own {
				continue
			}
			e.exp.st.EventsNew++
			// Replicate the expectations of replicated conntracks only:
			// the filter has decided for the master.
			mk := Key{Tuple: ev.Expect.Master}
			old, ok := e.internal.Get(mk)
			if !ok {
				e.exp.st.Skipped++
				continue
			}
			if m := ev.Master; m != nil && m.Key == mk {
				mergeUpdate(m, &old)
				if !sameState(m, &old) {
					e.internal.Put(m, now)
					e.sess.Enqueue(mk, MsgCTUpd) // ahead of the expectation
				}
			}
			en, ok := e.exp.local[ck]
			if !ok && len(e.exp.local) >= expMax {
				e.exp.st.Rejected++
				continue
			}
			t := MsgCTUpd
			if !ok || !en.dead.IsZero() {
				t = MsgCTNew
			}
			e.exp.local[ck] = &expEntry{x: ev.Expect}
			e.sess.enqueueCompact(ck, t)
			queued = true
		case EventDestroy:
			en, ok := e.exp.local[ck]
			if !ok || !en.dead.IsZero() {
				continue
			}
			if ev.Own {
				delete(e.exp.local, ck)
				continue
			}
			e.exp.st.EventsDestroy++
			en.dead = now
			e.sess.enqueueCompact(ck, MsgCTDel)
			queued = true
		}
	}
	e.mu.Unlock()
	if queued {
		e.wake(e.kick)
	}
}

// sweepExpLocked drops old tombstones, at most once a second.
func (e *Engine) sweepExpLocked(now time.Time) {
	if now.Sub(e.exp.lastScan) < time.Second {
		return
	}
	e.exp.lastScan = now
	for k, en := range e.exp.local {
		if !en.dead.IsZero() && now.Sub(en.dead) > expTombstoneTTL {
			delete(e.exp.local, k)
		}
	}
}

// applyExpLocked applies a received expectation message. It reports
// whether the injector must run.
func (e *Engine) applyExpLocked(m *Message) bool {
	if e.exp.kernel == nil {
		e.reject(ReasonExpectation)
		return false
	}
	x, err := e.cfg.Wire.DecodeExpect(m.Payload)
	if err != nil {
		e.reject(ReasonOf(err))
		e.exp.st.Rejected++
		return false
	}
	del := m.Type == MsgExpDel
	e.exp.st.Received++
	if e.cfg.DirectInject && !e.holdInject {
		if len(e.exp.injectQ) >= e.cfg.InjectQueueLimit {
			e.exp.st.Rejected++
			return true
		}
		e.exp.injectQ = append(e.exp.injectQ, injectExp{x: x, del: del})
		return true
	}
	ck := expKey(&x)
	if del {
		delete(e.exp.held, ck)
		return false
	}
	if _, ok := e.exp.held[ck]; !ok && len(e.exp.held) >= expMax {
		e.exp.st.Rejected++
		return false
	}
	e.exp.held[ck] = x
	return false
}

// takeExpQueueLocked returns and clears the expectation inject queue.
func (e *Engine) takeExpQueueLocked() []injectExp {
	q := e.exp.injectQ
	e.exp.injectQ = nil
	return q
}

// injectExpects writes received expectations into the kernel, in order.
func (e *Engine) injectExpects(ctx context.Context, q []injectExp) {
	var ups, dels []Expect
	flush := func() {
		if len(ups) > 0 {
			res, err := e.exp.kernel.CreateExpect(ctx, ups)
			e.countExp(res, err)
		}
		if len(dels) > 0 {
			res, err := e.exp.kernel.DeleteExpect(ctx, dels)
			e.countExp(res, err)
		}
		ups, dels = ups[:0], dels[:0]
	}
	for i := range q {
		if q[i].del {
			if len(ups) > 0 {
				flush()
			}
			dels = append(dels, q[i].x)
		} else {
			if len(dels) > 0 {
				flush()
			}
			ups = append(ups, q[i].x)
		}
	}
	flush()
}

func (e *Engine) countExp(res CommitResult, err error) {
	e.mu.Lock()
	defer e.mu.Unlock()
	e.exp.st.Created += uint64(res.Created + res.Updated)
	e.exp.st.Deleted += uint64(res.Deleted)
	for _, n := range res.Failed {
		e.exp.st.Failed += uint64(n)
	}
	if err != nil {
		e.log.Warn("expectation write into kernel failed", "err", err)
	}
}

// commitExpects creates the held expectations in the kernel (after the
// conntracks: an expectation needs its master) and empties the cache.
func (e *Engine) commitExpects(ctx context.Context) {
	if e.exp.kernel == nil {
		return
	}
	e.mu.Lock()
	xs := make([]Expect, 0, len(e.exp.held))
	for _, x := range e.exp.held {
		xs = append(xs, x)
	}
	clear(e.exp.held)
	e.mu.Unlock()
	if len(xs) == 0 {
		return
	}
	res, err := e.exp.kernel.CreateExpect(ctx, xs)
	e.countExp(res, err)
	e.log.Info("committed expectations", "entries", len(xs), "created", res.Created, "err", err)
}

// ExpectStats returns the expectation counters.
func (e *Engine) ExpectStats() ExpectStats {
	e.mu.Lock()
	defer e.mu.Unlock()
	st := e.exp.st
	for _, en := range e.exp.local {
		if en.dead.IsZero() {
			st.Local++
		}
	}
	st.Held = len(e.exp.held)
	return st
}
