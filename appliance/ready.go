package appliance

// readyForTakeover tells whether this node's state is complete enough to
// take over: the one place that decides the fwpair_ready gauge.
//
// It means every configured engine has started (the sync engine has
// loaded the kernel table and opened its links, the VRRP group its
// sockets) and this node holds the peer's full state, or the bounded wait
// (sync.ready_timeout) has passed: the same condition that lifts the
// preemption hold (faults.go).
func (d *Daemon) readyForTakeover() bool {
	if ok, _ := d.ready.get(); !ok {
		return false
	}
	if d.sync != nil && !closed(d.sync.Ready()) {
		return false
	}
	if d.vrrp != nil && !closed(d.vrrp.Ready()) {
		return false
	}
	return true
}

func closed(ch <-chan struct{}) bool {
	select {
	case <-ch:
		return true
	default:
		return false
	}
}
