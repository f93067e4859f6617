package vrrp

import (
	"net/netip"
	"slices"
	"testing"
)

// The refused set: VIPs of the instances with NoAccept, never the
// address owner's, sorted, each once, both families.
func TestRefusedVIPs(t *testing.T) {
	vip := func(s string) VIP { return VIP{Prefix: netip.MustParsePrefix(s)} }
	cases := []struct {
		name string
		in   []InstanceConfig
		want []string
	}{
		{"accept by default", []InstanceConfig{{Priority: 100, VIPs: []VIP{vip("10.0.0.1/24")}}}, nil},
		{"no_accept", []InstanceConfig{{Priority: 100, NoAccept: true, VIPs: []VIP{vip("10.0.0.2/24"), vip("10.0.0.1/32")}}},
			[]string{"10.0.0.1", "10.0.0.2"}},
		{"owner accepts anyway", []InstanceConfig{{Priority: OwnerPriority, NoAccept: true, VIPs: []VIP{vip("10.0.0.1/24")}}}, nil},
		{"mixed instances and families", []InstanceConfig{
			{Priority: 100, NoAccept: true, VIPs: []VIP{vip("fe80::1/64"), vip("2001:db8::1/64")}},
			{Priority: 100, VIPs: []VIP{vip("10.0.1.1/24")}},
			{Priority: 100, NoAccept: true, VIPs: []VIP{vip("10.0.0.1/24")}},
			{Priority: 200, NoAccept: true, VIPs: []VIP{vip("10.0.0.1/32")}},
		}, []string{"10.0.0.1", "2001:db8::1", "fe80::1"}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			var got []string
			for _, a := range refusedVIPs(c.in) {
				got = append(got, a.String())
			}
			if !slices.Equal(got, c.want) {
				t.Errorf("refusedVIPs = %v, want %v", got, c.want)
			}
		})
	}
}
