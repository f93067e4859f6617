package vrrp

// checkV3 is check for VRRPv3 adverts (RFC 9568 §7.1). The transport
// rules are v2's (TTL or hop limit 255 for multicast, unicast peers);
// there is no authentication; and the interval is not compared with ours:
// a backup adopts the master's (the Router does), so only a zero interval,
// which would make Master_Down_Interval vanish, is discarded. An address
// list that differs from ours is discarded unless the priority is 255,
// as for v2 (RFC 9568 §7.1 keeps RFC 3768's rule).
func (p *receivePolicy) checkV3(a *AdvertisementV3, m RecvMeta) (reason DiscardReason, addrMismatch bool) {
	if r := p.checkTransport(m); r != DiscardNone {
		return r, false
	}
	if a.MaxAdvertInterval == 0 {
		return DiscardInterval, false
	}
	return p.checkAddresses(a.Addresses, a.Priority)
}
