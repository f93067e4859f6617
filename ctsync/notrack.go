package ctsync

// receiveNotrack is NOTRACK's receive side: every data message is applied,
// sequence numbers only feed the loss counters, RESYNC triggers a bulk send
// and ACK/NACK (FTFW control) are rejected as conntrackd does.
func (s *Session) receiveNotrack(m *Message) RecvResult {
	if s.rxInit {
		expected := s.lastRecv + 1
		switch {
		case before(expected, m.Seq):
			s.stats.Lost += uint64(m.Seq - expected)
		case before(m.Seq, expected):
			s.stats.Before++
		}
	}
	s.rxInit = true
	s.lastRecv = m.Seq
	if m.IsData() {
		return RecvResult{Apply: true}
	}
	switch {
	case m.Flags&(FlagACK|FlagNACK) != 0:
		return RecvResult{Reject: ReasonUnexpectedCtl}
	case m.Flags&FlagResync != 0:
		s.stats.ResyncsRcv++
		return RecvResult{SendAll: true}
	}
	return RecvResult{}
}
