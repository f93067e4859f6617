package vrrp

import (
	"net/netip"
	"testing"
)

// One row per configuration-dependent rule of RFC 3768 §7.1; the
// structural rules are in TestParseAdvertisementErrors.
func TestReceivePolicy(t *testing.T) {
	peer := netip.MustParseAddr("192.168.0.9")
	vips := addrs("192.168.0.100")
	mcast := RecvMeta{Src: peer, Dst: GroupAddress, TTL: 255}
	base := func() receivePolicy { return receivePolicy{interval: 1, vips: vips} }
	advert := func(f ...func(*Advertisement)) *Advertisement {
		a := &Advertisement{VRID: 51, Priority: 100, AdvertInterval: 1, Addresses: vips}
		for _, fn := range f {
			fn(a)
		}
		return a
	}
	tests := []struct {
		name     string
		policy   func(*receivePolicy)
		advert   *Advertisement
		meta     RecvMeta
		want     DiscardReason
		mismatch bool
	}{
		{name: "valid", advert: advert(), meta: mcast},
		{name: "TTL 254", advert: advert(), meta: RecvMeta{Src: peer, Dst: GroupAddress, TTL: 254}, want: DiscardTTL},
		{name: "local owner discards", policy: func(p *receivePolicy) { p.owner = true }, advert: advert(), meta: mcast, want: DiscardLocalOwner},
		{name: "auth type 1 vs 0", advert: advert(func(a *Advertisement) { a.AuthType = AuthSimple }), meta: mcast, want: DiscardAuthType},
		{name: "auth type 0 vs 1", policy: func(p *receivePolicy) { p.authType = AuthSimple; p.authData = SimplePassword("pw") },
			advert: advert(), meta: mcast, want: DiscardAuthType},
		{name: "auth type 2 unsupported", advert: advert(func(a *Advertisement) { a.AuthType = AuthIPAH }), meta: mcast, want: DiscardAuthType},
		{name: "password matches", policy: func(p *receivePolicy) { p.authType = AuthSimple; p.authData = SimplePassword("pw") },
			advert: advert(func(a *Advertisement) { a.AuthType = AuthSimple; a.AuthData = SimplePassword("pw") }), meta: mcast},
		{name: "password differs", policy: func(p *receivePolicy) { p.authType = AuthSimple; p.authData = SimplePassword("pw") },
			advert: advert(func(a *Advertisement) { a.AuthType = AuthSimple; a.AuthData = SimplePassword("px") }), meta: mcast, want: DiscardAuthFailure},
		{name: "auth data ignored without auth", advert: advert(func(a *Advertisement) { a.AuthData = SimplePassword("junk") }), meta: mcast},
		{name: "interval 2 vs 1", advert: advert(func(a *Advertisement) { a.AdvertInterval = 2 }), meta: mcast, want: DiscardInterval},
		{name: "address list differs: discarded", advert: advert(func(a *Advertisement) { a.Addresses = addrs("192.168.0.101") }), meta: mcast, want: DiscardAddressList, mismatch: true},
		{name: "address count differs: discarded", advert: advert(func(a *Advertisement) { a.Addresses = addrs("192.168.0.100", "192.168.0.101") }), meta: mcast, want: DiscardAddressList, mismatch: true},
		{name: "address list differs at priority 254: discarded", advert: advert(func(a *Advertisement) { a.Priority = 254; a.Addresses = addrs("192.168.0.101") }), meta: mcast, want: DiscardAddressList, mismatch: true},
		{name: "address list differs at priority 0: discarded", advert: advert(func(a *Advertisement) { a.Priority = 0; a.Addresses = addrs("192.168.0.101") }), meta: mcast, want: DiscardAddressList, mismatch: true},
		{name: "address list differs from owner: accepted, flagged", advert: advert(func(a *Advertisement) { a.Priority = 255; a.Addresses = nil }), meta: mcast, mismatch: true},
		{name: "address order does not matter", policy: func(p *receivePolicy) { p.vips = addrs("10.0.0.1", "10.0.0.2") },
			advert: advert(func(a *Advertisement) { a.Addresses = addrs("10.0.0.2", "10.0.0.1") }), meta: mcast},
		{name: "unicast from peer, any TTL", policy: func(p *receivePolicy) { p.unicast = true; p.peers = []netip.Addr{peer} },
			advert: advert(), meta: RecvMeta{Src: peer, Dst: netip.MustParseAddr("192.168.0.2"), TTL: 60}},
		{name: "unicast from stranger", policy: func(p *receivePolicy) { p.unicast = true; p.peers = []netip.Addr{peer} },
			advert: advert(), meta: RecvMeta{Src: netip.MustParseAddr("192.168.0.66"), Dst: netip.MustParseAddr("192.168.0.2"), TTL: 255}, want: DiscardUnknownPeer},
		{name: "multicast to a unicast instance", policy: func(p *receivePolicy) { p.unicast = true; p.peers = []netip.Addr{peer} },
			advert: advert(), meta: mcast, want: DiscardDestination},
		{name: "unicast to a multicast instance", advert: advert(), meta: RecvMeta{Src: peer, Dst: netip.MustParseAddr("192.168.0.2"), TTL: 255}, want: DiscardDestination},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			p := base()
			if tc.policy != nil {
				tc.policy(&p)
			}
			got, mismatch := p.check(tc.advert, tc.meta)
			if got != tc.want || mismatch != tc.mismatch {
				t.Errorf("check = %v, mismatch %v; want %v, %v", got, mismatch, tc.want, tc.mismatch)
			}
		})
	}
}

func TestDiscardReasonNames(t *testing.T) {
	seen := map[string]bool{}
	for _, r := range DiscardReasons() {
		name := r.String()
		if name == "" || name == "unknown" || name == "none" || seen[name] {
			t.Errorf("reason %d has a bad or duplicate name %q", r, name)
		}
		seen[name] = true
	}
	if DiscardReason(200).String() != "unknown" {
		t.Error("out-of-range reason")
	}
}
