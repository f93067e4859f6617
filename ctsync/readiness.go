package ctsync

import "time"

// PeerState says whether this node holds the peer's full state, which a
// returning node must before it takes the VIPs back (preemption).
type PeerState struct {
	// Complete: the peer answered the last resync request and went quiet
	// (no state of a flow not yet received since the request for
	// QuietPeriod) and no sequence gap is open.
	Complete bool `json:"complete"`
	// Reason says what is missing when not Complete.
	Reason string `json:"reason,omitempty"`
	// Asked is when the last resync was requested (zero: never).
	Asked time.Time `json:"asked"`
}

// QuietPeriod is how long the peer must send no state after answering a
// resync request before its answer counts as complete. The peer sends the
// whole answer at once, so a pause of two alive intervals means it is
// done; conntrackd behaves the same (ALIVE only when its queue is empty).
// A peer whose table churns without pause never looks complete: callers
// bound the wait.
const QuietPeriod = 2 * DefaultAliveInterval

// PeerState reports whether the resync requested last (RequestResync, and
// at start unless Config.NoStartupResync) has been answered in full: the
// peer has been heard since the request, no state of a flow not received
// before since the request arrived for QuietPeriod (updates and refreshes
// of flows already received do not hold it back: the answer sends each
// flow once), and the FTFW session has no gap still being NACKed.
func (e *Engine) PeerState(now time.Time) PeerState {
	e.mu.Lock()
	defer e.mu.Unlock()
	return e.peerStateLocked(now)
}

// peerStateLocked is PeerState; once the answer is complete it stops
// tracking the answer's keys. maintLoop calls it too, so the set is
// dropped when the answer is in even on a node nobody asks (no
// preemption hold configured), instead of growing with every flow the
// peer ever sends up to the external cache's limit. Callers hold e.mu.
func (e *Engine) peerStateLocked(now time.Time) PeerState {
	ps := PeerState{Asked: e.askedAt}
	switch {
	case e.askedAt.IsZero():
		ps.Reason = "no resync requested from the peer yet"
	case !e.lastPeer.After(e.askedAt):
		ps.Reason = "the peer has not answered since the resync request"
	case now.Sub(e.askedAt) < QuietPeriod || now.Sub(e.lastData) < QuietPeriod:
		ps.Reason = "the peer is still sending states"
	case e.sess.openGaps():
		ps.Reason = "a sequence gap is open (states missing, NACKed)"
	default:
		ps.Complete = true
		e.answerSeen = nil // the answer is in; stop tracking its keys
	}
	return ps
}

// noteAnswerLocked records a received state while a resync answer is
// awaited: a flow received for the first time since the request is part
// of the answer. The set is bounded by the external cache's limit; beyond
// it every state counts as new (the answer then looks longer, never
// shorter).
func (e *Engine) noteAnswerLocked(k *Key, now time.Time) {
	if e.answerSeen == nil {
		return
	}
	ck := compactKey(k)
	if _, ok := e.answerSeen[ck]; ok {
		return
	}
	if len(e.answerSeen) < max(e.cfg.ExternalLimit, 1) {
		e.answerSeen[ck] = struct{}{}
	}
	e.lastData = now
}

// openGaps reports whether a gap NACKed recently may still be open.
func (s *Session) openGaps() bool { return len(s.renacks) > 0 }
