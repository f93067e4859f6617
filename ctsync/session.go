package ctsync

import (
	"sort"
	"time"
)

// Mode is the replication protocol.
type Mode string

// Replication protocols, as in conntrackd.
const (
	// ModeFTFW is conntrackd's reliable protocol: sequence numbers, ACK
	// windows, NACK-driven retransmission, HELLO handshake.
	ModeFTFW Mode = "ftfw"
	// ModeNotrack sends each state once, with no recovery.
	ModeNotrack Mode = "notrack"
)

// Protocol defaults (conntrackd's).
const (
	DefaultACKWindow     = 300
	DefaultResendQueue   = 131072
	DefaultAliveInterval = time.Second
)

// Flow control (FTFW). conntrackd sends as fast as events come and drops
// the oldest un-ACKed states when its resend queue is full; a NACK for
// them can then only be answered with the whole table. When the receiver
// is slower than the sender (a BACKUP writing a burst into its kernel,
// which holds back its reading: limits.go), that turns one burst into
// bulk after bulk. So the sender keeps at most sendWindow states un-ACKed
// while the peer is acknowledging: it waits for ACKs instead of
// overrunning the peer's socket and its own resend queue, and the states
// waiting meanwhile coalesce by key in the TX queue. A peer that stops
// acknowledging altogether (gone, or a one-way link) does not stall the
// sender: after windowStall without an ACK or NACK it sends as before.
const (
	// defaultSendWindow fits the default 4 MiB receive buffer of the
	// peer's sync socket (about 20 states per datagram), so a receiver
	// that stops reading loses nothing, and is far above what a LAN's
	// round trip needs (ACKs come every ACKWindow messages).
	defaultSendWindow = 32768
	windowStall       = 3 * time.Second
)

// SessionConfig configures the pure replication session.
type SessionConfig struct {
	Mode Mode // "" means FTFW
	// ACKWindow is the number of in-order messages acknowledged at once.
	ACKWindow int
	// ResendQueue bounds the FTFW resend queue (messages); the oldest entry
	// is dropped when it is full.
	ResendQueue int
	// AliveInterval is the TX idle time after which ALIVE (or a pending ACK)
	// is sent.
	AliveInterval time.Duration
	// MaxDatagram is the largest UDP payload (MTU - 28); messages are
	// packed strictly below it.
	MaxDatagram int
	Wire        WireOptions
}

func (c *SessionConfig) defaults() {
	if c.Mode == "" {
		c.Mode = ModeFTFW
	}
	if c.ACKWindow <= 0 {
		c.ACKWindow = DefaultACKWindow
	}
	if c.ResendQueue <= 0 {
		c.ResendQueue = DefaultResendQueue
	}
	if c.AliveInterval <= 0 {
		c.AliveInterval = DefaultAliveInterval
	}
	if c.MaxDatagram <= 0 {
		c.MaxDatagram = 1500 - 28
	}
}

// lostKeysMin is the least number of keys of dropped resend-queue states
// remembered for retransmission (about 100 bytes each).
const lostKeysMin = 1 << 16

// keepQueueMem is the most keys a drained map of the session (the hint
// map, the lost keys) may have held and still be kept for reuse. A Go map
// never shrinks: a flush's million deletions would otherwise hold the
// hint map's 60-90 MB for the life of the process.
const keepQueueMem = 4096

type helloState uint8

const (
	helloInit helloState = iota
	helloSay
	helloDone
)

// SessionStats are the protocol counters of a session.
type SessionStats struct {
	MsgsSent, MsgsRecv      uint64
	DataSent                uint64
	Retransmits             uint64 // items queued again because of a NACK
	NACKsSent, NACKsRecv    uint64
	Renacks                 uint64 // NACKs repeated for a gap (see renack)
	ACKsSent, ACKsRecv      uint64
	AlivesSent              uint64
	ResyncsSent, ResyncsRcv uint64
	Lost                    uint64 // sequence numbers missing in the peer's stream
	Before                  uint64 // old or duplicate messages dropped
	ResendOverflow          uint64 // resend-queue entries dropped because it was full
	HellosRecv              uint64
	// SeqImplausible counts messages dropped because their sequence
	// number was far outside the peer's live window (see seqsanity.go);
	// SeqAdopted counts the times a far sequence became the new baseline
	// after the live stream fell silent.
	SeqImplausible, SeqAdopted uint64
	// RenackOverflow counts open gaps dropped from the full re-NACK list.
	RenackOverflow uint64
	// WindowWaits counts the Polls that stopped sending states to wait
	// for the peer's ACKs (flow control).
	WindowWaits uint64
}

type ctlItem struct {
	flags    uint8
	from, to uint32
}

type rsItem struct {
	seq  uint32
	dead bool
	ctl  bool
	c    ctlItem
	key  ckey
}

// RecvResult tells the engine what to do with a received message.
type RecvResult struct {
	// Apply: a data message to apply to the external cache.
	Apply bool
	// SendAll: queue the whole internal cache (the peer asked for a resync,
	// or retransmission needs entries the bounded resend queue dropped).
	SendAll bool
	// Reject is non-zero when the message is invalid in this mode.
	Reject Reason
	// Implausible: the message was dropped because its sequence number is
	// far outside the peer's live window.
	Implausible bool
}

// Session is the pure replication protocol of one node towards its peer
// (FTFW or NOTRACK): it numbers outgoing messages, keeps the resend queue,
// tracks the peer's sequence and schedules ACK, NACK and ALIVE. It takes the
// current time and returns datagrams and the next deadline; it owns no
// goroutine, timer or socket.
type Session struct {
	cfg SessionConfig

	seq     uint32 // next sequence number to use
	hello   helloState
	sayBack bool
	lastTx  time.Time
	txCtl   []ctlItem
	txKeys  keyQueue
	txHint  map[ckey]MsgType
	// hintPeak is the most keys txHint held since it was last replaced.
	hintPeak int
	rs       []rsItem
	rsHead   int
	rsLive   int
	rsObj    int // live object items (not control) in the resend queue
	// sendWindow is the most messages sent after the newest one the peer
	// ACKed (ackedTo) before Poll waits for an ACK; lastProgress is when
	// the peer last ACKed or NACKed (zero: never, no flow control yet).
	// Counting from the newest ACK, not the live resend items, keeps the
	// items whose own ACK was lost (they stay until the queue drops them)
	// from closing the window for good.
	sendWindow   int
	ackedTo      uint32
	lastProgress time.Time
	overflow     bool   // the resend queue dropped an entry
	ovSeq        uint32 // the newest sequence number dropped from it
	// lost holds the keys of states dropped from the full resend queue,
	// so a NACK for them can still be answered (with the current state);
	// lostAll means even that set overflowed: answer with everything.
	lost    map[ckey]struct{}
	lostAll bool

	// renacks are gaps already NACKed, to be NACKed again a few times
	// (see renack); conntrackd sends each NACK once.
	renacks []renack

	rxInit     bool
	peerHello  bool // the previous message from the peer carried HELLO
	lastRecv   uint32
	ackPending bool
	ackFrom    uint32
	window     int
	// lastLive is when a message within the plausible window of the
	// peer's sequence last arrived (see seqsanity.go).
	lastLive time.Time
	// lastLossResync rate-limits RESYNC requests queued after giving up
	// on a gap.
	lastLossResync time.Time

	stats SessionStats

	// expLookup returns the state of an expectation key (expect.go).
	expLookup func(ck *ckey) (x Expect, alive, ok bool)
	// marks, when set, keeps the TX queue's per-key state in the slots of
	// the cache Poll's lookup reads (queueMarks); keys without a slot use
	// txHint.
	marks queueMarks
}

// queueMarks keeps which keys wait in the TX queue, and whether as new
// flows, in the flow cache's own slots (Cache.markQueued), instead of a
// map beside it. The map cost about 100 bytes and two hashed lookups of
// the 44-byte key per waiting state, a tenth of a sender's CPU in a burst
// and most of its memory above the cache itself at a million flows. A key
// the cache does not hold (a deletion, an expectation) is kept in txHint
// as before. The cache must not keep a mark when the key leaves the
// queue's view (DropQueues clears them); losing one (the slot deleted or
// the cache cleared) only lets the key be queued twice, and the second
// copy is sent as the cache holds it then, like the first.
type queueMarks interface {
	// markQueued marks ck as queued, as a new flow if isNew or already
	// marked so. slot is false when ck has no slot; queued reports that
	// it was marked already.
	markQueued(ck *ckey, isNew bool) (slot, queued bool)
	// unmarkQueued clears ck's mark and says whether it had one and
	// whether it was as a new flow.
	unmarkQueued(ck *ckey) (queued, isNew bool)
}

// renack is a NACKed gap waiting for its next repetition.
type renack struct {
	from, to uint32
	at       time.Time
	left     int
}

// Re-NACKing: conntrackd NACKs a gap once and never waits for it. If that
// NACK is lost and nothing later reveals it, the missing states stay in
// the peer's resend queue, never NACKed again, and the caches diverge for
// good (seen against conntrackd 1.4.7 with 10% loss). Repeating the NACK
// is harmless: the peer retransmits with new sequence numbers, so a
// repeated range matches nothing once the first NACK got through.
const (
	renackInterval = time.Second
	renackRepeats  = 3
)

// NewSession returns a session whose sequence is seeded from now (Unix
// seconds, as conntrackd does).
func NewSession(cfg SessionConfig, now time.Time) *Session {
	cfg.defaults()
	return &Session{
		cfg:        cfg,
		seq:        uint32(now.Unix()),
		txHint:     make(map[ckey]MsgType),
		lost:       make(map[ckey]struct{}),
		window:     cfg.ACKWindow,
		sendWindow: sendWindowFor(cfg),
	}
}

// sendWindowFor is the send window of cfg: at least a few of the peer's
// ACK windows (ours as the guess), at most what the resend queue holds.
// A resend queue too small for that turns flow control off (0): the peer
// would ACK only when idle, once a second, and the window would throttle
// the sender to a window per second.
func sendWindowFor(cfg SessionConfig) int {
	if cfg.ResendQueue < 4*cfg.ACKWindow {
		return 0
	}
	return min(cfg.ResendQueue, max(defaultSendWindow, 4*cfg.ACKWindow))
}

// windowFull reports whether Poll must wait for the peer's ACKs before it
// sends more states (see "Flow control").
func (s *Session) windowFull(now time.Time) bool {
	return s.waitingForACKs() && now.Sub(s.lastProgress) < windowStall
}

// recentlySent reports whether seq is one of the last messages this
// session sent (within twice the resend queue): only an ACK or NACK of
// those is progress. A restarted peer, or a forged message, may name
// numbers of another stream; they must not open or close the window.
func (s *Session) recentlySent(seq uint32) bool {
	d := int64(int32(s.seq - 1 - seq))
	return d >= 0 && d < 2*int64(s.cfg.ResendQueue)
}

// waitingForACKs reports whether the messages sent since the newest ACKed
// one fill the send window (flow control on, the peer has ACKed before).
func (s *Session) waitingForACKs() bool {
	if s.cfg.Mode != ModeFTFW || s.sendWindow == 0 || s.lastProgress.IsZero() {
		return false
	}
	inflight := int32(s.seq - 1 - s.ackedTo) // negative for an ACK from the future: no wait
	return int(inflight) >= s.sendWindow
}

// Stats returns the counters.
func (s *Session) Stats() SessionStats { return s.stats }

// Mode returns the protocol.
func (s *Session) Mode() Mode { return s.cfg.Mode }

// Enqueue queues the state of k for transmission. t is CT_NEW for a new
// flow, CT_UPD or CT_DEL otherwise; the message actually sent is built from
// the internal cache at transmit time (absent = CT_DEL), so several changes
// before one transmission collapse into one message.
func (s *Session) Enqueue(k Key, t MsgType) { s.enqueueCompact(compactKey(&k), t) }

func (s *Session) enqueueCompact(ck ckey, t MsgType) {
	if s.marks != nil && ck.fam&famExpect == 0 {
		if slot, queued := s.marks.markQueued(&ck, t == MsgCTNew); slot {
			if !queued {
				s.txKeys.push(ck)
			}
			return
		}
	}
	if old, ok := s.txHint[ck]; ok {
		if old != MsgCTNew {
			s.txHint[ck] = t
		}
		return
	}
	s.txHint[ck] = t
	s.hintPeak = max(s.hintPeak, len(s.txHint))
	s.txKeys.push(ck)
}

// RequestResync queues a RESYNC request: the peer answers with its whole
// internal cache.
func (s *Session) RequestResync() {
	s.txCtl = append(s.txCtl, ctlItem{flags: FlagResync})
}

// Pending returns the number of messages waiting for transmission and of
// states (not control messages) sent but not yet acknowledged.
func (s *Session) Pending() (tx, unacked int) {
	return len(s.txCtl) + s.txKeys.len(), s.rsObj
}

// DropQueues forgets everything queued or waiting for an ACK (flush).
func (s *Session) DropQueues() {
	s.txCtl = nil
	if s.marks != nil {
		s.txKeys.each(func(ck *ckey) { s.marks.unmarkQueued(ck) })
	}
	s.txKeys.reset()
	s.txHint = make(map[ckey]MsgType)
	s.hintPeak = 0
	s.resetResend()
	s.renacks = nil
}

// requeueResend moves every un-ACKed message (and the states dropped by
// an overflow) back to the TX queue.
func (s *Session) requeueResend() {
	for i := s.rsHead; i < len(s.rs); i++ {
		it := &s.rs[i]
		switch {
		case it.dead:
		case it.ctl:
			s.txCtl = append(s.txCtl, it.c)
		default:
			s.enqueueCompact(it.key, MsgCTUpd)
		}
	}
	for k := range s.lost {
		s.enqueueCompact(k, MsgCTUpd)
	}
	s.resetResend()
}

func (s *Session) resetResend() {
	s.rs, s.rsHead, s.rsLive, s.rsObj = nil, 0, 0, 0
	s.overflow, s.lostAll = false, false
	if len(s.lost) > keepQueueMem {
		s.lost = make(map[ckey]struct{}) // a cleared map keeps its size
	} else {
		clear(s.lost)
	}
}

// Deadline returns when Poll must next be called if nothing else happens.
func (s *Session) Deadline() time.Time {
	next := s.lastTx.Add(s.cfg.AliveInterval)
	if s.txKeys.len() > 0 && s.waitingForACKs() {
		// Waiting for ACKs: send anyway once the wait is over.
		if at := s.lastProgress.Add(windowStall); at.Before(next) {
			next = at
		}
	}
	for _, r := range s.renacks {
		if r.at.Before(next) {
			next = r.at
		}
	}
	return next
}

// dueBefore reports whether Poll has something to send now (control
// messages, data the send window lets out) or at a deadline before armed,
// the one the caller's timer waits for: whether a change (a received
// datagram) needs the transmitter woken.
func (s *Session) dueBefore(now, armed time.Time) bool {
	return s.sendableNow(now) || s.Deadline().Before(armed)
}

// sendableNow reports whether Poll would send something right away:
// queued control messages, or data the send window lets out.
func (s *Session) sendableNow(now time.Time) bool {
	return len(s.txCtl) > 0 || s.txKeys.len() > 0 && !s.windowFull(now)
}

// Lookup returns the current state of a flow of the internal cache.
type Lookup func(ck *ckey) (Flow, bool)

// Poll builds up to maxMsgs queued messages (<= 0: all) into datagrams. It
// sends ALIVE (or the pending ACK) when TX has been idle for the alive
// interval. It returns the datagrams and the next deadline.
func (s *Session) Poll(now time.Time, lookup Lookup, maxMsgs int) ([][]byte, time.Time) {
	p := packer{max: s.cfg.MaxDatagram}
	n := 0
	budget := func() bool { return maxMsgs <= 0 || n < maxMsgs }
	if s.cfg.Mode == ModeFTFW {
		s.queueRenacks(now)
	}
	for len(s.txCtl) > 0 && budget() {
		c := s.txCtl[0]
		s.txCtl = s.txCtl[1:]
		s.sendCtl(&p, c)
		n++
	}
	if len(s.txCtl) == 0 {
		s.txCtl = nil
	}
	for s.txKeys.len() > 0 && budget() {
		if s.windowFull(now) {
			s.stats.WindowWaits++
			break
		}
		ck := s.txKeys.pop()
		hint := s.takeHint(&ck)
		if s.sendObject(&p, &ck, hint, lookup) {
			n++
		}
	}
	if s.txKeys.len() == 0 && s.hintPeak > keepQueueMem {
		// A Go map never shrinks: the hint map once held many keys (a
		// flush's deletions) and is empty now: give its memory back.
		s.txHint = make(map[ckey]MsgType)
		s.hintPeak = 0
	}
	if n == 0 && !now.Before(s.lastTx.Add(s.cfg.AliveInterval)) {
		if s.cfg.Mode == ModeFTFW && s.ackPending {
			s.ackPending = false
			s.sendCtl(&p, ctlItem{flags: FlagACK, from: s.ackFrom, to: s.lastRecv})
		} else {
			s.sendCtl(&p, ctlItem{flags: FlagAlive})
		}
		n++
	}
	p.flush()
	if n > 0 {
		s.lastTx = now
	}
	next := s.Deadline()
	if s.sendableNow(now) {
		next = now
	}
	return p.out, next
}

// queueRenacks queues the NACKs that are due again.
func (s *Session) queueRenacks(now time.Time) {
	keep := s.renacks[:0]
	for _, r := range s.renacks {
		if !now.Before(r.at) {
			if s.ackPending {
				// As on a gap: ACK what arrived, then NACK what did not.
				s.ackPending = false
				s.txCtl = append(s.txCtl, ctlItem{flags: FlagACK, from: s.ackFrom, to: s.lastRecv})
			}
			s.txCtl = append(s.txCtl, ctlItem{flags: FlagNACK, from: r.from, to: r.to})
			s.stats.Renacks++
			r.left--
			r.at = now.Add(renackInterval)
		}
		if r.left > 0 {
			keep = append(keep, r)
		}
	}
	s.renacks = keep
}

func (s *Session) nextSeq() uint32 {
	seq := s.seq
	s.seq++
	return seq
}

// flags returns the hello flags for the next outgoing message.
func (s *Session) helloFlags() uint8 {
	if s.cfg.Mode != ModeFTFW {
		return 0
	}
	var f uint8
	if s.hello == helloInit {
		s.hello = helloSay
	}
	if s.hello == helloSay {
		f |= FlagHello
	}
	if s.sayBack {
		f |= FlagHelloBack
		s.sayBack = false
	}
	return f
}

func (s *Session) sendCtl(p *packer, c ctlItem) {
	seq := s.nextSeq()
	var buf [headerAckLen]byte
	msg := AppendCtl(buf[:0], c.flags|s.helloFlags(), seq, c.from, c.to)
	p.add(msg)
	s.stats.MsgsSent++
	switch {
	case c.flags&FlagACK != 0:
		s.stats.ACKsSent++
	case c.flags&FlagNACK != 0:
		s.stats.NACKsSent++
	case c.flags&FlagResync != 0:
		s.stats.ResyncsSent++
	case c.flags&FlagAlive != 0:
		s.stats.AlivesSent++
	}
	if s.cfg.Mode == ModeFTFW && c.flags&FlagAlive == 0 {
		s.pushResend(rsItem{seq: seq, ctl: true, c: c})
	}
}

// takeHint returns the type ck was queued with and forgets it: CT_NEW if
// either its mark or txHint says so (a key can be in both after its slot
// was deleted and created again while it waited).
func (s *Session) takeHint(ck *ckey) MsgType {
	t, ok := s.txHint[*ck]
	if ok {
		delete(s.txHint, *ck)
	}
	if s.marks != nil && ck.fam&famExpect == 0 {
		if queued, isNew := s.marks.unmarkQueued(ck); queued && (isNew || !ok) {
			t = MsgCTUpd
			if isNew {
				t = MsgCTNew
			}
		}
	}
	return t
}

func (s *Session) sendObject(p *packer, ck *ckey, hint MsgType, lookup Lookup) bool {
	if ck.fam&famExpect != 0 {
		return s.sendExpect(p, ck, hint)
	}
	f, ok := lookup(ck)
	t := MsgCTDel
	if ok {
		t = MsgCTUpd
		if hint == MsgCTNew {
			t = MsgCTNew
		}
	} else {
		f = Flow{Key: ck.key()}
	}
	var buf [256]byte
	// Encode with a placeholder seq first so a flow the codec refuses
	// consumes no sequence number (the peer would NACK it forever).
	msg, err := s.cfg.Wire.AppendCT(buf[:0], t, 0, 0, &f)
	if err != nil {
		return false
	}
	s.sendData(p, msg, ck)
	return true
}

func (s *Session) pushResend(it rsItem) {
	s.rs = append(s.rs, it)
	s.rsLive++
	if !it.ctl {
		s.rsObj++
	}
	for s.rsLive > s.cfg.ResendQueue {
		h := &s.rs[s.rsHead]
		if !h.dead {
			s.kill(h)
			s.overflow = true
			s.ovSeq = h.seq
			s.stats.ResendOverflow++
			if !h.ctl {
				if len(s.lost) < max(s.cfg.ResendQueue, lostKeysMin) {
					s.lost[h.key] = struct{}{}
				} else {
					s.lostAll = true
				}
			}
		}
		s.rsHead++
	}
	s.compactResend()
}

func (s *Session) compactResend() {
	for s.rsHead < len(s.rs) && s.rs[s.rsHead].dead {
		s.rsHead++
	}
	if s.rsHead == len(s.rs) {
		s.rs, s.rsHead = s.rs[:0], 0
		return
	}
	if s.rsHead > 1024 && s.rsHead > len(s.rs)/2 {
		n := copy(s.rs, s.rs[s.rsHead:])
		clear(s.rs[n:])
		s.rs, s.rsHead = s.rs[:n], 0
	}
}

func (s *Session) kill(it *rsItem) {
	it.dead = true
	s.rsLive--
	if !it.ctl {
		s.rsObj--
	}
}

// before reports a < b in serial-number arithmetic.
func before(a, b uint32) bool { return int32(a-b) < 0 }

// resendRange returns the index range of live-or-dead resend items with
// seq in [from, to].
func (s *Session) resendRange(from, to uint32) (int, int) {
	live := s.rs[s.rsHead:]
	if len(live) == 0 {
		return s.rsHead, s.rsHead
	}
	base := live[0].seq
	lo := sort.Search(len(live), func(i int) bool { return int32(live[i].seq-base) >= int32(from-base) })
	hi := sort.Search(len(live), func(i int) bool { return int32(live[i].seq-base) > int32(to-base) })
	if hi < lo {
		hi = lo
	}
	return s.rsHead + lo, s.rsHead + hi
}

func (s *Session) handleACK(now time.Time, from, to uint32) {
	s.stats.ACKsRecv++
	if before(to, from) {
		return
	}
	if s.recentlySent(to) {
		if s.lastProgress.IsZero() || before(s.ackedTo, to) {
			s.ackedTo = to
		}
		s.lastProgress = now
	}
	lo, hi := s.resendRange(from, to)
	for i := lo; i < hi; i++ {
		if !s.rs[i].dead {
			s.kill(&s.rs[i])
		}
	}
	s.compactResend()
}

// handleNACK queues the items in [from, to] again. It reports whether the
// range reaches into entries the full resend queue had dropped.
func (s *Session) handleNACK(now time.Time, from, to uint32) bool {
	s.stats.NACKsRecv++
	if before(to, from) {
		return false
	}
	if s.recentlySent(to) {
		s.lastProgress = now
	}
	lo, hi := s.resendRange(from, to)
	for i := lo; i < hi; i++ {
		it := &s.rs[i]
		if it.dead {
			continue
		}
		s.kill(it)
		s.stats.Retransmits++
		if it.ctl {
			s.txCtl = append(s.txCtl, it.c)
		} else {
			s.enqueueCompact(it.key, MsgCTUpd)
		}
	}
	s.compactResend()
	if s.overflow && !before(s.ovSeq, from) {
		// The range reaches into states the full queue dropped: send
		// their current state again (absent ones as CT_DEL).
		for k := range s.lost {
			s.enqueueCompact(k, MsgCTUpd)
		}
		clear(s.lost)
		all := s.lostAll
		s.overflow, s.lostAll = false, false
		return all
	}
	return false
}

// Receive runs the protocol for one received message (already split off
// its datagram by NextMessage) and says what to do with it.
func (s *Session) Receive(now time.Time, m *Message) RecvResult {
	s.stats.MsgsRecv++
	if s.cfg.Mode == ModeNotrack {
		return s.receiveNotrack(m)
	}
	var res RecvResult
	inSync := false
	adopted := false
	switch s.checkSeq(now, m) {
	case seqDrop:
		s.stats.SeqImplausible++
		return RecvResult{Implausible: true}
	case seqAdopt:
		s.stats.SeqAdopted++
		adopted, inSync = true, true
	}
	hello := m.Flags&FlagHello != 0
	if hello && s.peerHello && s.rxInit && before(m.Seq, s.lastRecv+1) {
		// An old or duplicate message of the peer's current HELLO period,
		// not a new restart: plain sequence tracking drops it.
		hello = false
	}
	if hello {
		s.stats.HellosRecv++
		s.sayBack = true
		if s.ackPending && before(m.Seq, s.ackFrom) {
			s.window = s.cfg.ACKWindow - 1
			s.ackFrom = m.Seq
		}
		// The peer (re)started and will never ACK or NACK what we sent
		// before. conntrackd flushes its resend queue on every HELLO
		// message. We do it only when a HELLO period begins, and queue the
		// flushed messages again instead of dropping them: a delayed
		// duplicate of an old HELLO (reordering) then costs a few
		// retransmissions instead of losing un-ACKed states.
		if !s.peerHello {
			s.requeueResend()
			s.renacks = nil // the gaps were in the old sequence space
		}
		inSync = true
	}
	s.peerHello = m.Flags&FlagHello != 0
	if m.Flags&FlagHelloBack != 0 && s.hello == helloSay {
		s.hello = helloDone
	}
	expected := s.lastRecv + 1
	switch {
	case inSync || !s.rxInit || m.Seq == expected:
		res = s.process(now, m)
		if !s.ackPending {
			s.ackFrom = m.Seq
			s.ackPending = true
		}
		s.window--
		if s.window <= 0 {
			s.txCtl = append(s.txCtl, ctlItem{flags: FlagACK, from: s.ackFrom, to: m.Seq})
			s.window = s.cfg.ACKWindow
			s.ackPending = false
		}
	case before(expected, m.Seq):
		res = s.process(now, m)
		if s.ackPending {
			s.txCtl = append(s.txCtl, ctlItem{flags: FlagACK, from: s.ackFrom, to: expected - 1})
		}
		s.txCtl = append(s.txCtl, ctlItem{flags: FlagNACK, from: expected, to: m.Seq - 1})
		s.addRenack(now, renack{from: expected, to: m.Seq - 1, at: now.Add(renackInterval), left: renackRepeats})
		s.stats.Lost += uint64(m.Seq - expected)
		s.window = s.cfg.ACKWindow - 1
		s.ackFrom = m.Seq
		s.ackPending = true
	default:
		s.stats.Before++
		return RecvResult{}
	}
	s.rxInit = true
	s.lastRecv = m.Seq
	s.lastLive = now
	if adopted {
		s.afterAdopt(m, &res)
	}
	return res
}

func (s *Session) process(now time.Time, m *Message) RecvResult {
	if m.IsData() {
		return RecvResult{Apply: true}
	}
	switch {
	case m.Flags&FlagACK != 0:
		s.handleACK(now, m.From, m.To)
	case m.Flags&FlagNACK != 0:
		return RecvResult{SendAll: s.handleNACK(now, m.From, m.To)}
	case m.Flags&FlagResync != 0:
		s.stats.ResyncsRcv++
		return RecvResult{SendAll: true}
	}
	return RecvResult{}
}

// sendData stamps an encoded data message (a conntrack or an expectation)
// with the next sequence number and the HELLO flags, packs it, and keeps
// its key for retransmission in FTFW mode.
func (s *Session) sendData(p *packer, msg []byte, ck *ckey) {
	seq := s.nextSeq()
	msg[1] = s.helloFlags()
	msg[4], msg[5], msg[6], msg[7] = byte(seq>>24), byte(seq>>16), byte(seq>>8), byte(seq)
	p.add(msg)
	s.stats.MsgsSent++
	s.stats.DataSent++
	if s.cfg.Mode == ModeFTFW {
		s.pushResend(rsItem{seq: seq, key: *ck})
	}
}
