package appliance

import (
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

const minimalVRRP = `
[node]
name = "fw1"

[[vrrp.instance]]
interface = "eth0"
vrid = 51
priority = 150
vips = ["192.168.0.100/24"]
`

func TestShippedConfigsParse(t *testing.T) {
	files, err := filepath.Glob("../etc/*.toml")
	if err != nil || len(files) < 3 {
		t.Fatalf("shipped configs: %v %v", files, err)
	}
	for _, f := range files {
		cfg, err := LoadConfig(f)
		if err != nil {
			t.Errorf("%v", err)
			continue
		}
		if cfg.VRRP == nil || cfg.Sync == nil {
			t.Errorf("%s: the shipped configs run both engines", f)
		}
	}
}

func TestReferenceNodes(t *testing.T) {
	for n, prio := range map[string]uint8{"node1": 150, "node2": 100} {
		cfg, err := LoadConfig("../etc/" + n + ".toml")
		if err != nil {
			t.Fatal(err)
		}
		if len(cfg.VRRP.Instances) != 2 {
			t.Fatalf("%s: %d instances", n, len(cfg.VRRP.Instances))
		}
		want := []netip.Prefix{netip.MustParsePrefix("192.168.0.100/24"), netip.MustParsePrefix("192.168.1.100/24")}
		for i, in := range cfg.VRRP.Instances {
			if in.Priority != prio || in.VIPs[0].Prefix != want[i] || in.Interface != []string{"eth0", "eth1"}[i] {
				t.Errorf("%s: instance %d = %+v", n, i, in)
			}
		}
		if l := cfg.Sync.Channels[0]; l.Interface != "eth2" || !l.Peer.IsValid() || l.Port != 3780 {
			t.Errorf("%s: sync link %+v", n, l)
		}
	}
}

func TestDefaults(t *testing.T) {
	cfg, err := ParseConfig("min.toml", []byte(minimalVRRP))
	if err != nil {
		t.Fatal(err)
	}
	in := cfg.VRRP.Instances[0]
	if in.AdvertInterval != time.Second || !in.Preempt || in.Name != "eth0-51" {
		t.Errorf("instance defaults: %+v", in)
	}
	if cfg.Sync != nil || cfg.Control.Socket != DefaultSocket || cfg.Log.Level != "info" || cfg.VRRP.GARP.Count != 5 {
		t.Errorf("config defaults: %+v", cfg)
	}
	sync, err := ParseConfig("sync.toml", []byte("[sync]\n[[sync.link]]\ninterface = \"eth2\"\nlocal = \"10.0.0.1\"\naccept_from = [\"10.0.0.2\"]\n"))
	if err != nil {
		t.Fatal(err)
	}
	if sync.VRRP != nil || sync.Sync.Mode != "ftfw" || sync.Sync.Channels[0].Group != netip.MustParseAddr("225.0.0.50") || sync.Sync.Channels[0].Port != 3780 {
		t.Errorf("sync defaults: %+v", sync.Sync)
	}
}

// TestConfigErrors covers every rule: each bad file must be refused with
// file:line: key: message.
func TestConfigErrors(t *testing.T) {
	inst := func(body string) string {
		return "[[vrrp.instance]]\n" + body
	}
	base := "interface = \"eth0\"\nvrid = 51\nvips = [\"192.168.0.100/24\"]\n"
	link := "[sync]\n[[sync.link]]\ninterface = \"eth2\"\nlocal = \"10.0.0.1\"\naccept_from = [\"10.0.0.2\"]\n"
	tests := []struct {
		name, file, want string
	}{
		{"unknown top key", "bogus = 1\n" + inst(base), `x.toml:1: bogus: unknown key`},
		{"unknown nested key", inst(base + "priorty = 10\n"), `x.toml:5: vrrp.instance.priorty: unknown key`},
		{"unknown table", "[vrp]\nx = 1\n", `x.toml:1: vrp: unknown key`},
		{"wrong type", inst("interface = \"eth0\"\nvrid = \"51\"\nvips = [\"192.168.0.100/24\"]\n"), `x.toml:3`},
		{"vrid zero", inst("interface = \"eth0\"\nvrid = 0\nvips = [\"192.168.0.100/24\"]\n"), `x.toml:3: vrrp.instance[0].vrid: 0 is outside 1..255`},
		{"vrid 256", inst("interface = \"eth0\"\nvrid = 256\nvips = [\"192.168.0.100/24\"]\n"), `vrrp.instance[0].vrid: 256 is outside 1..255`},
		{"vrid missing", inst("interface = \"eth0\"\nvips = [\"192.168.0.100/24\"]\n"), `vrrp.instance[0].vrid: missing`},
		{"priority 300", inst(base + "priority = 300\n"), `x.toml:5: vrrp.instance[0].priority: 300 is outside 1..255`},
		{"priority 0", inst(base + "priority = 0\n"), `vrrp.instance[0].priority: 0 is outside 1..255`},
		{"second instance priority", inst(base) + inst("interface = \"eth1\"\nvrid = 52\nvips = [\"192.168.1.100/24\"]\npriority = 300\n"), `x.toml:9: vrrp.instance[1].priority: 300 is outside 1..255`},
		{"duplicate vrid", inst(base) + inst(base), `x.toml:7: vrrp.instance[1].vrid: VRID 51 is already used on eth0`},
		{"vip without prefix", inst("interface = \"eth0\"\nvrid = 51\nvips = [\"192.168.0.100\"]\n"), `x.toml:4: vrrp.instance[0].vips[0]: "192.168.0.100" has no prefix length`},
		{"invalid cidr", inst("interface = \"eth0\"\nvrid = 51\nvips = [\"192.168.0.300/24\"]\n"), `vrrp.instance[0].vips[0]: "192.168.0.300/24" is not a valid CIDR`},
		{"no vips", inst("interface = \"eth0\"\nvrid = 51\n"), `vrrp.instance[0].vips: at least one virtual IP`},
		{"empty interface", inst("interface = \"\"\nvrid = 51\nvips = [\"192.168.0.100/24\"]\n"), `x.toml:2: vrrp.instance[0].interface: empty interface name`},
		{"missing interface", inst("vrid = 51\nvips = [\"192.168.0.100/24\"]\n"), `vrrp.instance[0].interface: missing`},
		{"long interface", inst("interface = \"abcdefghijklmnopq\"\nvrid = 51\nvips = [\"192.168.0.100/24\"]\n"), `longer than 15 bytes`},
		{"advert not whole seconds", inst(base + "advert_interval = \"1500ms\"\n"), `vrrp.instance[0].advert_interval: 1.5s: VRRPv2 needs whole seconds`},
		{"bad duration", inst(base + "preempt_delay = \"soon\"\n"), `x.toml:5`},
		{"long password", inst(base + "auth_password = \"123456789\"\n"), `vrrp.instance[0].auth_password: simple-password authentication holds at most 8`},
		{"bad unicast peer", inst(base + "unicast_peers = [\"10.0.0.x\"]\n"), `vrrp.instance[0].unicast_peers[0]: "10.0.0.x" is not an IP address`},
		{"vrrp version", "[vrrp]\nversion = 4\n" + inst(base), `x.toml:2: vrrp.version: 4 is not supported`},
		{"no instances", "[vrrp]\ngroup = \"g\"\n", `vrrp: no [[vrrp.instance]] configured`},
		{"nothing to run", "[node]\nname = \"x\"\n", `neither [vrrp] nor [sync]`},
		{"mode typo", link + "[sync.filter]\n", ""},
		{"mode typo real", "[sync]\nmode = \"ftwf\"\n[[sync.link]]\ninterface = \"eth2\"\nlocal = \"10.0.0.1\"\n", `x.toml:2: sync.mode: "ftwf" is not one of ftfw, notrack`},
		{"no links", "[sync]\nmode = \"ftfw\"\n", `sync: no [[sync.link]] configured`},
		{"sync empty interface", "[sync]\n[[sync.link]]\ninterface = \"\"\nlocal = \"10.0.0.1\"\n", `x.toml:3: sync.link[0].interface: empty interface name`},
		{"sync bad local", "[sync]\n[[sync.link]]\ninterface = \"eth2\"\nlocal = \"10.0.0\"\n", `x.toml:4: sync.link[0].local: "10.0.0" is not an IP address`},
		{"sync peer and group", link + "peer = \"10.0.0.2\"\nmulticast_group = \"225.0.0.50\"\n", `sync.link[0].peer: set either peer`},
		{"sync group not multicast", link + "multicast_group = \"10.1.1.1\"\n", `sync.link[0].multicast_group: 10.1.1.1 is not a multicast address`},
		{"sync port", link + "port = 70000\n", `x.toml:6: sync.link[0].port: 70000 is outside 1..65535`},
		{"sync family mismatch", link + "peer = \"fd00::2\"\n", `not the same address family`},
		{"filter cidr", link + "[sync.filter]\nignore_addresses = [\"10.0.0.0/33\"]\n", `x.toml:7: sync.filter.ignore_addresses[0]: "10.0.0.0/33" is not an address or CIDR`},
		{"filter proto", link + "[sync.filter]\nprotocols = [\"tpc\"]\n", `sync.filter.protocols[0]: "tpc" is not one of`},
		{"filter state", link + "[sync.filter]\ntcp_states = [\"OPEN\"]\n", `sync.filter.tcp_states[0]: "OPEN" is not one of`},
		{"log level", "[log]\nlevel = \"loud\"\n" + inst(base), `x.toml:2: log.level: "loud" is not one of`},
		{"metrics listen", "[metrics]\nlisten = \"9100\"\n" + inst(base), `metrics.listen: "9100" is not address:port`},
		{"socket relative", "[control]\nsocket = \"fw.sock\"\n" + inst(base), `control.socket: "fw.sock" must be an absolute path`},
		{"syntax error", "[vrrp\n", `to end table name`},
		{"too many links", "[sync]\n" + strings.Repeat("[[sync.link]]\ninterface = \"eth2\"\nlocal = \"10.0.0.1\"\n", 5), `sync.link: 5 links configured, at most 4`},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, err := ParseConfig("x.toml", []byte(tc.file))
			if tc.want == "" {
				if err != nil {
					t.Fatalf("unexpected error: %v", err)
				}
				return
			}
			if err == nil {
				t.Fatalf("accepted, want error containing %q", tc.want)
			}
			if !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("error %q does not contain %q", err, tc.want)
			}
			if !strings.HasPrefix(err.Error(), "x.toml") {
				t.Fatalf("error %q does not name the file", err)
			}
		})
	}
}

// TestConfigEngineRefusals: what an engine would refuse at start is
// refused when the file is read (so by -check), at its table.
func TestConfigEngineRefusals(t *testing.T) {
	file := "[node]\nname = \"fw1\"\n[[vrrp.instance]]\ninterface = \"eth0\"\nvrid = 51\nvips = [\"192.168.0.100/24\"]\nvip_label = \"lan:vip\"\n"
	_, err := ParseConfig("x.toml", []byte(file))
	want := `x.toml:3: vrrp: vrrp config: instance 0 ("eth0-51"): label "lan:vip" must start with the interface name "eth0"`
	if err == nil || err.Error() != want {
		t.Fatalf("error %v, want %s", err, want)
	}
}

func TestLoadConfigMissingFile(t *testing.T) {
	_, err := LoadConfig(filepath.Join(t.TempDir(), "nope.toml"))
	if err == nil || !os.IsNotExist(unwrapAll(err)) {
		t.Fatalf("missing file: %v", err)
	}
}

func unwrapAll(err error) error {
	for {
		u, ok := err.(interface{ Unwrap() error })
		if !ok {
			return err
		}
		err = u.Unwrap()
	}
}
