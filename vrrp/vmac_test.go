package vrrp

import (
	"net/netip"
	"testing"
	"time"
)

func TestVirtualMAC(t *testing.T) {
	if got := VirtualMAC(51, false).String(); got != "00:00:5e:00:01:33" {
		t.Errorf("IPv4 VRID 51: %s", got)
	}
	if got := VirtualMAC(255, true).String(); got != "00:00:5e:00:02:ff" {
		t.Errorf("IPv6 VRID 255: %s", got)
	}
	v4 := InstanceConfig{Interface: "eth0", VRID: 51, UseVMAC: true, VIPs: []VIP{{Prefix: netip.MustParsePrefix("192.168.0.100/24")}}}
	v6 := InstanceConfig{Interface: "eth0", VRID: 255, Version: Version3, UseVMAC: true, VIPs: []VIP{{Prefix: netip.MustParsePrefix("fe80::1/64")}}}
	if v4.VMACInterface() != "vrrp.51" || v4.vipInterface() != "vrrp.51" || v6.VMACInterface() != "vrrp6.255" {
		t.Errorf("names %q %q %q", v4.VMACInterface(), v4.vipInterface(), v6.VMACInterface())
	}
	v4.UseVMAC = false
	if v4.vipInterface() != "eth0" {
		t.Errorf("without use_vmac the VIPs go on %q", v4.vipInterface())
	}
	// A label names the interface an address is on: not with use_vmac.
	cfg := Config{Instances: []InstanceConfig{{Name: "a", Interface: "eth0", VRID: 51, UseVMAC: true, AdvertInterval: time.Second,
		VIPs: []VIP{{Prefix: netip.MustParsePrefix("192.168.0.100/24"), Label: "eth0:vip"}}}}}
	if err := cfg.Validate(); err == nil {
		t.Error("label with use_vmac accepted")
	}
}
