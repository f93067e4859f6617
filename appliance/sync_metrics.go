package appliance

import "time"

// PendingMessages implements syncGauges: the replication backlog.
func (e *ctsyncEngine) PendingMessages() (queued, unacked int) {
	s := e.Engine.Status()
	return s.TxQueue, s.Unacked
}

// LastPeerMessage implements syncGauges.
func (e *ctsyncEngine) LastPeerMessage() float64 {
	return unixSeconds(e.Engine.Status().LastPeerMessage)
}

func unixSeconds(t time.Time) float64 {
	if t.IsZero() {
		return 0
	}
	return float64(t.UnixNano()) / 1e9
}
