package appliance

// readyForTakeover tells whether this node's state is complete enough to
// take over: the one place that decides the fwpair_ready gauge.
//
// Today it means every configured engine has started (the sync engine
// has loaded the kernel table and opened its links, the VRRP group its
// sockets). The VRRP-fault work (issue #11) refines it with the real
// readiness signal (initial state received from the peer, partitions);
// change it here and the metric follows.
func (d *Daemon) readyForTakeover() bool {
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
