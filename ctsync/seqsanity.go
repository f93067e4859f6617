package ctsync

import "time"

// Sequence sanity (FTFW receive side).
//
// conntrackd moves its expected sequence number to whatever a message
// carries when it is "after" the expected one, so a single message with a
// sequence number far ahead (forged, spoofed or a bit flip) makes every
// genuine message "before" and dropped, for good. fwpair instead keeps a
// plausible window around the peer's live sequence:
//
//   - A message within seqWindow of the expected number (ahead or behind)
//     is handled as before: in order, a gap to NACK, or a duplicate.
//   - A message farther away is dropped and counted (SeqImplausible) while
//     the live stream is alive, i.e. while some message advanced the
//     session in the last liveSilence (three alive intervals: the peer
//     sends at least an ALIVE every second).
//   - Once nothing has advanced the session for that long, the next far
//     or "old" message is adopted as the new baseline (SeqAdopted): a peer
//     that restarted with a distant seed, a link that came back after
//     losing more than the window, or the peer's real stream after an
//     injected in-window sequence number moved the session ahead of it.
//     Whatever the dropped messages carried is recovered by a RESYNC
//     request and a bulk send of this node's cache (both directions may
//     have lost messages while they were dropped).
//
// A HELLO whose sequence number is within the window is a restart as
// conntrackd knows it and moves the session at once; a far HELLO waits for
// the old stream's silence like any far message. A far-ahead sequence
// injected while the peer is alive therefore never moves the session, and
// one injected while the peer is silent is replaced by the peer's own
// stream liveSilence after the injection stops.

// seqWindowMin is the least plausible distance from the expected sequence
// number; the window is the resend queue size when that is larger (a gap
// longer than the peer's resend queue cannot be repaired by NACK anyway).
const seqWindowMin = 1 << 16

// renackMax bounds the list of open gaps waiting to be NACKed again. A gap
// stays in it about renackRepeats*renackInterval (3 s); 1024 gaps cover a
// lossy link at full rate (a 64-gap list overflowed under 10% loss and
// left states to a single RESYNC request that the same loss could eat) and
// cost 24 KiB.
const renackMax = 1024

// resyncAfterLossEvery rate-limits the RESYNC requests the session queues
// because it gave up tracking states (re-NACK list overflow).
const resyncAfterLossEvery = 5 * time.Second

type seqVerdict uint8

const (
	seqOK seqVerdict = iota
	seqDrop
	seqAdopt
)

func (s *Session) seqWindow() int64 { return int64(max(s.cfg.ResendQueue, seqWindowMin)) }

func (s *Session) liveSilence() time.Duration { return 3 * s.cfg.AliveInterval }

// checkSeq classifies m's sequence number against the live window. The
// live stream is alive while messages keep advancing the session
// (lastLive is set where Receive accepts a message).
func (s *Session) checkSeq(now time.Time, m *Message) seqVerdict {
	if !s.rxInit {
		return seqOK
	}
	d := int64(int32(m.Seq - (s.lastRecv + 1)))
	w := s.seqWindow()
	inWindow := d >= -w && d <= w
	silent := now.Sub(s.lastLive) >= s.liveSilence()
	switch {
	case inWindow && (d >= 0 || !silent || m.Flags&FlagHello != 0):
		// In order, a gap, an old duplicate (dropped by Receive), or a
		// restart as conntrackd knows it (HELLO, handled by Receive).
		return seqOK
	case !silent:
		return seqDrop
	}
	// Nothing has advanced the session for liveSilence, yet messages
	// arrive: far away, or "old" because something moved the session
	// ahead of the peer's real stream (an injected in-window sequence
	// number). Adopt this one; forget the pending ACK and gaps, they
	// belong to a sequence space the peer no longer uses.
	s.ackPending = false
	s.window = s.cfg.ACKWindow
	s.renacks = nil
	return seqAdopt
}

// afterAdopt recovers what the dropped messages carried: ask the peer for
// its whole cache and send ours.
func (s *Session) afterAdopt(_ *Message, res *RecvResult) {
	s.txCtl = append(s.txCtl, ctlItem{flags: FlagResync})
	res.SendAll = true
}

// addRenack records an open gap for repeated NACKs. The list is bounded:
// when full, the oldest gap is given up, counted, and a RESYNC request
// (rate-limited) replaces what it would have repaired.
func (s *Session) addRenack(now time.Time, r renack) {
	if len(s.renacks) >= renackMax {
		n := copy(s.renacks, s.renacks[1:])
		s.renacks = s.renacks[:n]
		s.stats.RenackOverflow++
		if s.lastLossResync.IsZero() || now.Sub(s.lastLossResync) >= resyncAfterLossEvery {
			s.lastLossResync = now
			s.txCtl = append(s.txCtl, ctlItem{flags: FlagResync})
		}
	}
	s.renacks = append(s.renacks, r)
}
