package appliance

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/vishvananda/netlink"

	"github.com/fwpair/fwpair/ctsync"
	"github.com/fwpair/fwpair/vrrp"
)

// TestCheckHost: -check names every interface the node lacks and a
// control socket path that holds something other than a socket.
func TestCheckHost(t *testing.T) {
	dir := t.TempDir()
	regular := filepath.Join(dir, "not-a-socket")
	if err := os.WriteFile(regular, []byte("keep me"), 0o600); err != nil {
		t.Fatal(err)
	}
	cfg := &Config{
		File:    "fw.toml",
		Control: ControlConfig{Socket: regular},
		VRRP: &VRRPConfig{
			// The group's track_interfaces come first in every instance's.
			Config:          vrrp.Config{Instances: []vrrp.InstanceConfig{{Name: "inside", Interface: "eth0", TrackInterfaces: []string{"eth1", "wan9"}}}},
			TrackInterfaces: []string{"eth1"},
		},
		Sync: &SyncConfig{Config: ctsync.Config{Channels: []ctsync.ChannelConfig{{Interface: "sync7"}}}},
	}
	present := map[string]bool{"eth0": true, "eth1": true}
	err := checkHost(cfg, func(name string) error {
		if present[name] {
			return nil
		}
		return netlink.LinkNotFoundError{}
	})
	if err == nil {
		t.Fatal("no error")
	}
	for _, want := range []string{
		`fw.toml: vrrp.instance[0].track_interfaces[0]: interface "wan9" does not exist on this node`,
		`fw.toml: sync.link[0].interface: interface "sync7" does not exist on this node`,
		"fw.toml: control.socket: " + regular + " exists and is not a socket",
	} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("missing %q in:\n%v", want, err)
		}
	}
	if strings.Contains(err.Error(), `"eth0"`) || strings.Contains(err.Error(), `"eth1"`) {
		t.Errorf("present interfaces reported: %v", err)
	}
	cfg.Control.Socket = filepath.Join(dir, "absent.sock")
	cfg.Sync = nil
	cfg.VRRP.Instances[0].TrackInterfaces = []string{"eth1"}
	if err := checkHost(cfg, func(name string) error {
		if present[name] {
			return nil
		}
		return netlink.LinkNotFoundError{}
	}); err != nil {
		t.Errorf("a valid node: %v", err)
	}
}

// TestControlSocketRefusesRegularFile: pointing control.socket at a
// regular file is an error, and the file is left alone (it used to be
// taken for a stale socket and deleted).
func TestControlSocketRefusesRegularFile(t *testing.T) {
	p := filepath.Join(t.TempDir(), "fwpair.toml")
	if err := os.WriteFile(p, []byte("precious"), 0o600); err != nil {
		t.Fatal(err)
	}
	ln, err := listenControl(p)
	if err == nil {
		ln.Close()
		t.Fatal("listened on a regular file's path")
	}
	if !strings.Contains(err.Error(), "is not a socket") {
		t.Errorf("error %q", err)
	}
	if b, err := os.ReadFile(p); err != nil || string(b) != "precious" {
		t.Errorf("file after the refusal: %q, %v", b, err)
	}
}
