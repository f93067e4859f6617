package vrrp

import "slices"

// checkV3 is check for VRRPv3 adverts (RFC 9568 §7.1). The transport
// rules are v2's (TTL or hop limit 255 for multicast, unicast peers);
// there is no authentication; and the interval is not compared with ours:
// a backup adopts the master's (the Router does), so only a zero interval,
// which would make Master_Down_Interval vanish, is discarded.
func (p *receivePolicy) checkV3(a *AdvertisementV3, m RecvMeta) (reason DiscardReason, addrMismatch bool) {
	if p.unicast {
		if m.Dst.IsMulticast() {
			return DiscardDestination, false
		}
		if !slices.Contains(p.peers, m.Src) {
			return DiscardUnknownPeer, false
		}
	} else {
		if !m.Dst.IsMulticast() {
			return DiscardDestination, false
		}
		if m.TTL != RequiredTTL {
			return DiscardTTL, false
		}
	}
	if p.owner {
		return DiscardLocalOwner, false
	}
	if a.MaxAdvertInterval == 0 {
		return DiscardInterval, false
	}
	return DiscardNone, !sameAddresses(a.Addresses, p.vips)
}
