package appliance

import (
	"strings"
	"testing"
	"time"

	"github.com/fwpair/fwpair/vrrp"
)

func TestConfigVRRPv3(t *testing.T) {
	const head = "[vrrp]\nversion = 3\n[[vrrp.instance]]\ninterface = \"eth0\"\nvrid = 51\nvips = [\"192.168.0.100/24\"]\n"
	cfg, err := ParseConfig("x.toml", []byte(head+"advert_interval = \"50ms\"\n"))
	if err != nil {
		t.Fatal(err)
	}
	vc := cfg.VRRP.Config
	if in := vc.Instances[0]; in.Version != vrrp.Version3 || in.AdvertInterval != 50*time.Millisecond {
		t.Fatalf("instance %+v", in)
	}
	if err := vc.Validate(); err != nil {
		t.Fatalf("engine refuses the parsed config: %v", err)
	}
	// The default interval (1s) is valid in v3 too.
	if _, err := ParseConfig("x.toml", []byte(head)); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct{ body, want string }{
		{"advert_interval = \"5ms\"\n", `x.toml:7: vrrp.instance[0].advert_interval: 5ms: VRRPv3 needs a multiple of 10ms from 10ms to 40.95s`},
		{"advert_interval = \"15ms\"\n", `x.toml:7: vrrp.instance[0].advert_interval: 15ms: VRRPv3 needs`},
		{"advert_interval = \"41s\"\n", `x.toml:7: vrrp.instance[0].advert_interval: 41s: VRRPv3 needs`},
		{"auth_password = \"secret\"\n", `x.toml:7: vrrp.instance[0].auth_password: VRRPv3 has no authentication`},
	} {
		_, err := ParseConfig("x.toml", []byte(head+tc.body))
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%q: error %v, want %q", tc.body, err, tc.want)
		}
	}
	// v2 keeps whole seconds and says how to get sub-second adverts.
	_, err = ParseConfig("x.toml", []byte(strings.Replace(head, "version = 3", "version = 2", 1)+"advert_interval = \"50ms\"\n"))
	if err == nil || !strings.Contains(err.Error(), "x.toml:7: vrrp.instance[0].advert_interval: 50ms: VRRPv2 needs whole seconds from 1s to 255s (sub-second adverts need version = 3)") {
		t.Errorf("v2 50ms: %v", err)
	}
}

func TestConfigVRRPv3IPv6(t *testing.T) {
	const head = "[vrrp]\nversion = 3\n[[vrrp.instance]]\ninterface = \"eth0\"\nvrid = 61\n"
	cfg, err := ParseConfig("x.toml", []byte(head+"vips = [\"fe80::61/64\", \"fd00::100/64\"]\n"))
	if err != nil {
		t.Fatal(err)
	}
	if err := cfg.VRRP.Config.Validate(); err != nil {
		t.Fatalf("engine refuses the parsed config: %v", err)
	}
	for _, tc := range []struct{ body, want string }{
		{"vips = [\"fd00::100/64\"]\n", `x.toml:6: vrrp.instance[0].vips[0]: "fd00::100/64": the first IPv6 VIP must be the virtual router's link-local address`},
		{"vips = [\"fe80::61/64\", \"192.168.0.100/24\"]\n", `x.toml:6: vrrp.instance[0].vips[1]: "192.168.0.100/24": one address family per instance`},
		{"vips = [\"192.168.0.100/24\", \"fd00::100/64\"]\n", `x.toml:6: vrrp.instance[0].vips[1]: "fd00::100/64": one address family per instance`},
		{"vips = [\"fe80::61/64\"]\nvip_label = \"eth0:v6\"\n", `x.toml:7: vrrp.instance[0].vip_label: Linux labels only IPv4 addresses`},
	} {
		_, err := ParseConfig("x.toml", []byte(head+tc.body))
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%q: error %v, want %q", tc.body, err, tc.want)
		}
	}
	_, err = ParseConfig("x.toml", []byte(strings.Replace(head, "version = 3", "version = 2", 1)+"vips = [\"fe80::61/64\"]\n"))
	if err == nil || !strings.Contains(err.Error(), `x.toml:6: vrrp.instance[0].vips[0]: "fe80::61/64": IPv6 virtual addresses need vrrp.version = 3`) {
		t.Errorf("v2 IPv6: %v", err)
	}
}

func TestConfigRealtimePriority(t *testing.T) {
	const inst = "[[vrrp.instance]]\ninterface = \"eth0\"\nvrid = 51\nvips = [\"192.168.0.100/24\"]\n"
	cfg, err := ParseConfig("x.toml", []byte("[vrrp]\nrealtime_priority = 50\n"+inst))
	if err != nil || cfg.VRRP.RealtimePriority != 50 {
		t.Fatalf("realtime_priority = 50: %+v, %v", cfg, err)
	}
	_, err = ParseConfig("x.toml", []byte("[vrrp]\nrealtime_priority = 100\n"+inst))
	if err == nil || !strings.Contains(err.Error(), "x.toml:2: vrrp.realtime_priority: 100 is outside 0..99") {
		t.Errorf("realtime_priority = 100: %v", err)
	}
}
