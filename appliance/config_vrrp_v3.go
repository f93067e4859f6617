package appliance

import (
	"net/netip"
	"time"

	"github.com/fwpair/fwpair/vrrp"
)

// advertInterval checks an instance's advert_interval against the VRRP
// version: whole seconds 1s..255s for v2, multiples of 10ms from 10ms to
// 40.95s for v3 (the engine's bounds).
func (v *validator) advertInterval(key string, version int, d time.Duration) {
	switch version {
	case int(vrrp.Version3):
		if _, ok := vrrp.CentisecondsV3(d); !ok {
			v.errorf(key, "%s: VRRPv3 needs a multiple of 10ms from 10ms to 40.95s", d)
		}
	default:
		if d < time.Second || d%time.Second != 0 || d > vrrp.MaxAdvertIntervalV2 {
			v.errorf(key, "%s: VRRPv2 needs whole seconds from 1s to 255s (sub-second adverts need version = 3)", d)
		}
	}
}

// vipFamily checks the j-th VIP p of an instance against the VRRP version
// and the VIPs before it (prev): IPv6 needs VRRPv3, one family per
// instance, and an IPv6 instance's first VIP is its link-local address
// (RFC 9568 §5.2.9).
func (v *validator) vipFamily(key string, version, j int, p netip.Prefix, prev []vrrp.VIP) bool {
	a := p.Addr()
	switch {
	case a.Zone() != "" || a.Is4In6():
		v.errorf(key, "%q: write a plain IPv4 or IPv6 prefix", p)
	case a.Is6() && version != int(vrrp.Version3):
		v.errorf(key, "%q: IPv6 virtual addresses need vrrp.version = 3", p)
	case len(prev) > 0 && a.Is6() != prev[0].Prefix.Addr().Is6():
		v.errorf(key, "%q: one address family per instance (RFC 9568); put IPv4 and IPv6 VIPs in separate instances", p)
	case j == 0 && a.Is6() && !a.IsLinkLocalUnicast():
		v.errorf(key, "%q: the first IPv6 VIP must be the virtual router's link-local address (fe80::/10, RFC 9568)", p)
	default:
		return true
	}
	return false
}
