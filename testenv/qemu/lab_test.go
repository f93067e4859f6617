package qemu

import (
	"slices"
	"strings"
	"testing"
	"time"
)

// TestVMArgs guards the lab's network hygiene: no default devices, every NIC
// declared with a fixed MAC, every netdev bound to loopback.
func TestVMArgs(t *testing.T) {
	l := NewLab("/k", "/i", "/run/x", time.Minute, nil)
	var syncEnds []string
	for _, v := range l.VMs() {
		a := v.args()
		for _, want := range []string{"-nodefaults", "tcg"} {
			if !slices.Contains(a, want) {
				t.Errorf("%s: no %s in %q", v.Name, want, a)
			}
		}
		nics, netdevs := 0, 0
		for i, arg := range a {
			if i == 0 {
				continue
			}
			switch a[i-1] {
			case "-netdev":
				netdevs++
				if !strings.HasPrefix(arg, "socket,") || !strings.Contains(arg, "localaddr=127.0.0.1") {
					t.Errorf("%s: netdev %q is not a loopback socket", v.Name, arg)
				}
				if strings.Contains(arg, "udp=") {
					if !strings.Contains(arg, "udp=127.0.0.1:") {
						t.Errorf("%s: UDP peer of %q is not on loopback", v.Name, arg)
					}
					syncEnds = append(syncEnds, arg)
				} else if !strings.Contains(arg, "mcast=230.0.") {
					t.Errorf("%s: %q is neither the sync link nor a LAN segment", v.Name, arg)
				}
			case "-device":
				if strings.HasPrefix(arg, "virtio-net-pci,") {
					nics++
					if !strings.Contains(arg, "mac=52:54:00:") {
						t.Errorf("%s: NIC %q has no fixed MAC", v.Name, arg)
					}
				}
			case "-net", "-nic":
				t.Errorf("%s: implicit NIC %s %s", v.Name, a[i-1], arg)
			}
		}
		if nics != len(v.NICs) || netdevs != len(v.NICs) {
			t.Errorf("%s: %d NICs, %d netdevs, want %d", v.Name, nics, netdevs, len(v.NICs))
		}
	}
	if len(syncEnds) != 2 {
		t.Fatalf("sync link ends: %q", syncEnds)
	}
	// fw1 sends to the port fw2 listens on and the other way round.
	port := func(s, key string) string {
		for _, f := range strings.Split(s, ",") {
			if v, ok := strings.CutPrefix(f, key+"="); ok {
				return v
			}
		}
		return ""
	}
	if port(syncEnds[0], "udp") != port(syncEnds[1], "localaddr") || port(syncEnds[1], "udp") != port(syncEnds[0], "localaddr") {
		t.Errorf("sync link ends do not match: %q", syncEnds)
	}
}

func TestKV(t *testing.T) {
	m := kv(`ok=12 maxgap_ms=250 alive=0 age_ms=900 err="read tcp: connection reset by peer"`)
	if m["ok"] != "12" || m["alive"] != "0" || m["err"] != `"read tcp: connection reset by peer"` {
		t.Errorf("kv = %q", m)
	}
}
