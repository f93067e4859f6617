package appliance

import (
	"log/slog"
	"net/netip"
	"slices"
	"testing"
	"time"

	"github.com/fwpair/fwpair/vrrp/vrrptest"
)

func TestReload(t *testing.T) {
	n := vrrptest.NewNetwork()
	node := n.Node("fw1").
		Attach("eth0", "lan0", netip.MustParseAddr("192.168.0.1")).
		Attach("eth1", "lan1", netip.MustParseAddr("192.168.1.1"))
	fs := newFakeSync(0)
	opts := simOptions(node, fs)
	opts.Level = new(slog.LevelVar)
	cur := simConfig(t, "fw1", 150)
	d, err := New(cur, opts)
	if err != nil {
		t.Fatal(err)
	}
	next := simConfig(t, "fw1", 120)
	next.Log.Level = "debug"
	next.Sync.Filter.AcceptProtos = []uint8{6} // tcp
	next.VRRP.GARP.Count = 2
	next.Sync.Channels[0].Port = 4000
	next.VRRP.StartupDelay = 5 * time.Second
	next.VRRP.RealtimePriority = 10
	next.VRRP.Group = "other"
	applied, restart, err := d.Reload(next)
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"log.level", "vrrp.instance[0].priority", "vrrp.instance[1].priority", "sync.filter", "vrrp.garp_*"} {
		if !slices.Contains(applied, want) {
			t.Errorf("applied %v lacks %s", applied, want)
		}
	}
	for _, want := range []string{"sync", "vrrp.group", "vrrp.startup_delay", "vrrp.realtime_priority"} {
		if !slices.Contains(restart, want) {
			t.Errorf("needs restart %v lacks %s", restart, want)
		}
	}
	if opts.Level.Level() != slog.LevelDebug {
		t.Errorf("log level not applied")
	}
	if got := d.Status().VRRP.Instances[0].Priority; got != 120 {
		t.Errorf("priority %d after reload", got)
	}
	if len(fs.callsNamed("filter")) != 1 {
		t.Errorf("filter not applied: %v", fs.names())
	}
	// The running config keeps what needs a restart.
	if got := d.config(); got.Sync.Channels[0].Port != 3780 || got.VRRP.GARP.Count != 2 || got.VRRP.Instances[0].Priority != 120 {
		t.Errorf("running config after reload: port %d garp %d prio %d", got.Sync.Channels[0].Port, got.VRRP.GARP.Count, got.VRRP.Instances[0].Priority)
	}
}
