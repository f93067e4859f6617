package vrrp

import "slices"

// checkV3 is check for VRRPv3 adverts (RFC 9568 §7.1). The transport
// rules are v2's (TTL or hop limit 255 for multicast, unicast peers);
// there is no authentication; and the interval is not compared with ours:
// a backup adopts the master's (the Router does), so only a zero interval,
// which would make Master_Down_Interval vanish, is discarded. An address
// list that differs from ours is discarded unless the priority is 255,
// as for v2 (RFC 9568 §7.1 keeps RFC 3768's rule).
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
	if !sameAddresses(a.Addresses, p.vips) {
		if a.Priority != OwnerPriority {
			return DiscardAddressList, true
		}
		return DiscardNone, true
	}
	return DiscardNone, false
}
