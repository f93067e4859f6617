package vrrp

import (
	"net/netip"
	"testing"
)

// RFC 3768 and RFC 9568 §7.1: an advert whose address list differs from
// ours is discarded unless it comes from the address owner (255).
func TestReceivePolicyV3AddressList(t *testing.T) {
	p := receivePolicy{vips: addrs("192.168.0.100")}
	meta := RecvMeta{Src: netip.MustParseAddr("192.168.0.9"), Dst: GroupAddress, TTL: RequiredTTL}
	for _, tc := range []struct {
		prio     uint8
		list     []netip.Addr
		want     DiscardReason
		mismatch bool
	}{
		{254, addrs("192.168.0.100"), DiscardNone, false},
		{254, addrs("192.168.0.101"), DiscardAddressList, true},
		{0, addrs("192.168.0.101"), DiscardAddressList, true},
		{255, addrs("192.168.0.101"), DiscardNone, true},
	} {
		a := &AdvertisementV3{VRID: 51, Priority: tc.prio, MaxAdvertInterval: 100, Addresses: tc.list}
		got, mismatch := p.checkV3(a, meta)
		if got != tc.want || mismatch != tc.mismatch {
			t.Errorf("priority %d, %v: %v, %v; want %v, %v", tc.prio, tc.list, got, mismatch, tc.want, tc.mismatch)
		}
	}
}
