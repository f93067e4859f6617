package importer

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/fwpair/fwpair/appliance"
	"github.com/fwpair/fwpair/ctsync"
)

func write(t *testing.T, dir, name, body string) string {
	t.Helper()
	p := filepath.Join(dir, name)
	if err := os.WriteFile(p, []byte(body), 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}

// A keepalived + conntrackd pair as the classic stack (and the bench's
// reference stack) configures it: every setting must land in the result.
const refKeepalived = `# fw2
global_defs {
	router_id fw2
	script_user root
}
vrrp_sync_group fw {
	group {
		inside
		outside
	}
	notify_master "/etc/conntrackd/primary-backup.sh primary"
	notify_backup "/etc/conntrackd/primary-backup.sh backup"
	notify_fault "/etc/conntrackd/primary-backup.sh fault"
}
vrrp_instance inside {
	state BACKUP
	interface eth0
	virtual_router_id 51
	priority 100
	advert_int 1
	nopreempt
	preempt_delay 5
	unicast_src_ip 10.1.0.2
	unicast_peer {
		10.1.0.1
	}
	authentication {
		auth_type PASS
		auth_pass secret12345
	}
	track_interface {
		eth0
		eth2 weight 10
	}
	virtual_ipaddress {
		192.168.0.100/24 dev eth0 label eth0:vip
	}
}
vrrp_instance outside {
	state BACKUP
	interface eth1
	virtual_router_id 52
	priority 100
	advert_int 1
	virtual_ipaddress {
		192.168.1.100/24 dev eth1
		2001:db8::1/64
	}
}
`

const refConntrackd = `Sync {
	Mode FTFW {
		DisableExternalCache on
		ResendQueueSize 262144
		ACKWindowSize 500
		PurgeTimeout 30
	}
	UDP Default {
		IPv4_address 10.0.0.2
		IPv4_Destination_Address 10.0.0.1
		Port 3780
		Interface eth2
		SndSocketBuffer 1249280
		RcvSocketBuffer 1249280
		Checksum on
	}
	Options {
		ExpectationSync on
	}
}
General {
	HashSize 32768
	HashLimit 524288
	LogFile /var/log/conntrackd.log
	LockFile /var/lock/conntrack.lock
	UNIX {
		Path /var/run/conntrackd.ctl
	}
	Filter From Userspace {
		Protocol Accept { TCP UDP }
		Address Ignore {
			IPv4_address 127.0.0.1
			IPv4_address 10.0.0.0/24
		}
		State Accept {
			ESTABLISHED CLOSED TIME_WAIT CLOSE_WAIT for TCP
		}
	}
}
`

func TestImportReference(t *testing.T) {
	dir := t.TempDir()
	res, err := Import(Input{
		Keepalived: write(t, dir, "keepalived.conf", refKeepalived),
		Conntrackd: write(t, dir, "conntrackd.conf", refConntrackd),
	})
	if err != nil {
		t.Fatalf("%v\n%s", err, res.TOML)
	}
	cfg, err := appliance.ParseConfig("out.toml", res.TOML)
	if err != nil {
		t.Fatalf("%v\n%s", err, res.TOML)
	}
	if cfg.Node != "fw2" || cfg.VRRP.Group != "fw" || len(cfg.VRRP.Instances) != 2 {
		t.Fatalf("node/group/instances wrong:\n%s", res.TOML)
	}
	in := cfg.VRRP.Instances[0]
	if in.Name != "inside" || in.Interface != "eth0" || in.VRID != 51 || in.Priority != 100 || in.Preempt ||
		in.PreemptDelay.Seconds() != 5 || in.AuthPassword != "secret12" ||
		len(in.VIPs) != 1 || in.VIPs[0].Label != "eth0:vip" || in.VIPs[0].Prefix.String() != "192.168.0.100/24" || len(in.UnicastPeers) != 1 ||
		in.UnicastSource.String() != "10.1.0.2" || strings.Join(in.TrackInterfaces, ",") != "eth0,eth2" {
		t.Errorf("instance inside: %+v", in)
	}
	if out := cfg.VRRP.Instances[1]; len(out.VIPs) != 1 || !out.Preempt {
		t.Errorf("instance outside: %+v", out)
	}
	s := cfg.Sync
	if s.Mode != "ftfw" || !s.DirectInject || s.ResendQueueSize != 262144 || s.ACKWindow != 500 || s.PurgeDelay.Seconds() != 30 ||
		s.ExternalLimit != 524288 || !s.Expectations {
		t.Errorf("sync: %+v", s)
	}
	if l := s.Channels[0]; l.Interface != "eth2" || l.Local.String() != "10.0.0.2" || l.Peer.String() != "10.0.0.1" || l.Port != 3780 || l.SendBuffer != 1249280 {
		t.Errorf("link: %+v", l)
	}
	var protos, states []string
	for _, p := range s.Filter.AcceptProtos {
		protos = append(protos, ctsync.ProtoName(p))
	}
	for _, st := range s.Filter.AcceptTCPStates {
		states = append(states, ctsync.TCPStateName(st))
	}
	if strings.Join(protos, ",") != "tcp,udp" || len(s.Filter.IgnoreAddrs) != 2 ||
		strings.Join(states, ",") != "ESTABLISHED,CLOSE,TIME_WAIT,CLOSE_WAIT" {
		t.Errorf("filter: %+v", s.Filter)
	}
	// What could not be carried is listed, in the file and in Notes.
	for _, want := range []string{"2001:db8::1/64: refused", "eth2 weight 10: approximated",
		"auth_pass <secret>: approximated"} {
		if !strings.Contains(string(res.TOML), want) {
			t.Errorf("result does not list %q:\n%s", want, res.TOML)
		}
	}
	if strings.Contains(string(res.TOML), "secret12345") {
		t.Error("the full password leaked into a comment")
	}
	for _, n := range res.Notes {
		if strings.Contains(n.Detail, "unknown to the importer") {
			t.Errorf("reference directive not handled: %s", n)
		}
	}
}

// TestImportDebianExamples converts the examples Debian ships with
// conntrackd and keepalived. (The bench's reference-stack files are
// converted by testenv/bench's TestImportReferenceStack.)
func TestImportDebianExamples(t *testing.T) {
	const ka = "/usr/share/doc/keepalived/samples"
	const ct = "/usr/share/doc/conntrackd/examples/sync"
	if _, err := os.Stat(ct); err != nil {
		t.Skip("conntrackd's examples are not installed (make deps installs conntrackd)")
	}
	// The conntrackd primary-backup pair as Debian ships it.
	for _, mode := range []string{"ftfw", "notrack"} {
		res, err := Import(Input{Keepalived: filepath.Join(ct, "keepalived.conf"), Conntrackd: filepath.Join(ct, mode, "conntrackd.conf"), SyncPeers: []string{"192.168.100.101"}})
		if err != nil {
			t.Errorf("%s: %v", mode, err)
			continue
		}
		cfg, err := appliance.ParseConfig(mode, res.TOML)
		if err != nil {
			t.Errorf("%s: %v", mode, err)
			continue
		}
		if string(cfg.Sync.Mode) != mode || len(cfg.VRRP.Instances) != 2 || cfg.Sync.Channels[0].Group.String() != "225.0.0.50" {
			t.Errorf("%s: %+v %+v", mode, cfg.Sync, cfg.VRRP)
		}
	}
	// Every keepalived sample: parsed without error; those with VRRP
	// instances convert to a valid file; the others say why not.
	files, _ := filepath.Glob(filepath.Join(ka, "keepalived.conf.*"))
	if len(files) == 0 {
		t.Skip("keepalived's samples are not installed")
	}
	converted := 0
	for _, f := range files {
		data, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		res, err := Import(Input{Keepalived: f})
		var pe *ParseError
		switch {
		case errors.As(err, &pe):
			t.Errorf("%s: %v", filepath.Base(f), err)
		case err != nil && strings.Contains(string(data), "vrrp_instance"):
			t.Errorf("%s has VRRP instances but does not convert: %v", filepath.Base(f), err)
		case err != nil && !strings.Contains(err.Error(), "nothing for fwpair to run"):
			t.Errorf("%s: %v", filepath.Base(f), err)
		case err == nil:
			converted++
			if _, err := appliance.ParseConfig(f, res.TOML); err != nil {
				t.Errorf("%s: %v", filepath.Base(f), err)
			}
		}
	}
	t.Logf("%d of %d keepalived samples converted (the others hold only LVS)", converted, len(files))
}

func TestImportMalformed(t *testing.T) {
	dir := t.TempDir()
	cases := []struct {
		name, ka, ct, want string
	}{
		{"unclosed", "vrrp_instance a {\n interface eth0\n", "", "keepalived.conf:1: block not closed"},
		{"stray brace", "global_defs {\n}\n}\n", "", "keepalived.conf:3: unexpected \"}\""},
		{"quote", "global_defs {\n router_id \"fw1\n}\n", "", "keepalived.conf:2: unterminated quoted string"},
		{"vrid", "vrrp_instance a {\n interface eth0\n virtual_router_id 300\n virtual_ipaddress {\n 10.0.0.1/24\n }\n}\n", "", "keepalived.conf:3: virtual_router_id \"300\" is not 1..255"},
		{"vip", "vrrp_instance a {\n interface eth0\n virtual_router_id 3\n virtual_ipaddress {\n 10.0.0.x\n }\n}\n", "", "keepalived.conf:5: virtual_ipaddress \"10.0.0.x\""},
		{"no interface", "vrrp_instance a {\n virtual_router_id 3\n virtual_ipaddress {\n 10.0.0.1\n }\n}\n", "", "keepalived.conf:1: vrrp_instance a has no interface"},
		{"ct mode", "", "Sync {\n Mode FOO {\n }\n}\n", "conntrackd.conf:2: Mode \"FOO\""},
		{"ct unclosed", "", "Sync {\n Mode FTFW {\n}\n", "conntrackd.conf:1: block not closed"},
		{"ct port", "", "Sync {\n Mode FTFW {\n }\n UDP {\n IPv4_address 10.0.0.1\n IPv4_Destination_Address 10.0.0.2\n Interface eth2\n Port 99999\n }\n}\n", "conntrackd.conf:8: Port \"99999\" is not a port"},
		{"ct no channel", "", "Sync {\n Mode FTFW {\n }\n}\n", "no UDP or Multicast channel"},
		{"empty", "# nothing\n", "", "nothing for fwpair to run"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			in := Input{}
			if c.ka != "" {
				in.Keepalived = write(t, dir, "keepalived.conf", c.ka)
			}
			if c.ct != "" {
				in.Conntrackd = write(t, dir, "conntrackd.conf", c.ct)
			}
			_, err := Import(in)
			if err == nil || !strings.Contains(err.Error(), c.want) {
				t.Errorf("got %v, want an error containing %q", err, c.want)
			}
		})
	}
}

func TestImportInclude(t *testing.T) {
	dir := t.TempDir()
	write(t, dir, "inside.conf", "vrrp_instance inside {\n interface eth0\n virtual_router_id 51\n virtual_ipaddress {\n 192.168.0.100/24\n }\n}\n")
	main := write(t, dir, "keepalived.conf", "global_defs {\n router_id fw1\n}\ninclude inside.conf\ninclude missing-*.conf\n")
	res, err := Import(Input{Keepalived: main})
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(res.TOML), `vrid = 51  # inside.conf:3`) {
		t.Errorf("included instance missing or without its source:\n%s", res.TOML)
	}
	loop := write(t, dir, "loop.conf", "include loop.conf\n")
	if _, err := Import(Input{Keepalived: loop}); err == nil || !strings.Contains(err.Error(), "nested deeper") {
		t.Errorf("include loop: %v", err)
	}
}

// FuzzParse: any input parses or fails with a file:line error, never a
// panic, and the importer never panics on what parses.
func FuzzParse(f *testing.F) {
	f.Add(refKeepalived, true)
	f.Add(refConntrackd, false)
	f.Add("a { b { c } } }", true)
	f.Add("x \"y", true)
	f.Fuzz(func(t *testing.T, data string, keepalived bool) {
		syn := conntrackdSyntax
		if keepalived {
			syn = keepalivedSyntax
		}
		p := &parser{syn: syn, read: func(string) ([]byte, error) { return nil, os.ErrNotExist },
			glob: func(string) ([]string, error) { return nil, nil }}
		sts, err := p.parse("f", []byte(data), 0)
		if err != nil {
			var pe *ParseError
			if !errors.As(err, &pe) || pe.Line < 1 {
				t.Fatalf("error without a line: %v", err)
			}
			return
		}
		im := newImporter()
		if keepalived {
			im.keepalived(sts)
		} else {
			im.conntrackd(sts)
		}
		res, err := im.finish(Input{Keepalived: "f"})
		if err == nil {
			if _, err := appliance.ParseConfig("f", res.TOML); err != nil {
				t.Fatalf("accepted but invalid: %v", err)
			}
		}
	})
}

// TestImportVRRPv3: keepalived's vrrp_version 3 with a sub-second
// advert_int converts to vrrp.version = 3 with the interval in
// centiseconds, and mixing versions on one node is refused.
func TestImportVRRPv3(t *testing.T) {
	dir := t.TempDir()
	conf := write(t, dir, "keepalived.conf", "global_defs {\n router_id fw1\n vrrp_version 3\n}\n"+
		"vrrp_instance inside {\n interface eth0\n virtual_router_id 51\n advert_int 0.05\n virtual_ipaddress {\n 192.168.0.100/24\n }\n}\n"+
		"vrrp_instance outside {\n interface eth1\n virtual_router_id 52\n advert_int 0.123\n virtual_ipaddress {\n 192.168.1.100/24\n }\n}\n")
	res, err := Import(Input{Keepalived: conf})
	if err != nil {
		t.Fatal(err)
	}
	out := string(res.TOML)
	for _, want := range []string{"version = 3", `advert_interval = "50ms"`, `advert_interval = "120ms"`} {
		if !strings.Contains(out, want) {
			t.Errorf("missing %q in:\n%s", want, out)
		}
	}
	approx := false
	for _, n := range res.Problems() {
		if n.Outcome == Approximated && strings.Contains(n.Detail, "centiseconds") {
			approx = true
		}
	}
	if !approx {
		t.Errorf("0.123 s rounded to 120ms without an approximation note: %v", res.Problems())
	}
	mixed := write(t, dir, "mixed.conf", "global_defs {\n vrrp_version 3\n}\n"+
		"vrrp_instance inside {\n version 2\n interface eth0\n virtual_router_id 51\n virtual_ipaddress {\n 192.168.0.100/24\n }\n}\n")
	if _, err := Import(Input{Keepalived: mixed}); err == nil || !strings.Contains(err.Error(), "one VRRP version") {
		t.Errorf("mixed versions: %v", err)
	}
}
