package appliance

import (
	"context"
	"net/netip"
	"testing"
	"testing/synctest"
	"time"

	"github.com/fwpair/fwpair/vrrp/vrrptest"
)

// TestStartupDelay: with vrrp.startup_delay the node adds no VIP before
// the delay is over, even alone on the network; without it, it takes
// over after Master_Down_Interval.
func TestStartupDelay(t *testing.T) {
	for _, delay := range []time.Duration{0, 20 * time.Second} {
		synctest.Test(t, func(t *testing.T) {
			n := vrrptest.NewNetwork()
			node := n.Node("fw1").
				Attach("eth0", "lan0", netip.MustParseAddr("192.168.0.1")).
				Attach("eth1", "lan1", netip.MustParseAddr("192.168.1.1"))
			cfg := simConfig(t, "fw1", 150)
			cfg.VRRP.StartupDelay = delay
			cfg.Sync.ReadyTimeout = 0
			fs := newFakeSync(0)
			fs.direct = true
			d, err := New(cfg, simOptions(node, fs))
			if err != nil {
				t.Fatal(err)
			}
			start := time.Now()
			ctx, cancel := context.WithCancel(context.Background())
			done := make(chan error, 1)
			go func() { done <- d.Run(ctx) }()
			time.Sleep(delay + 10*time.Second)
			synctest.Wait()
			added, ok := firstAdd(node, start)
			if !ok {
				t.Fatalf("delay %v: no VIP added after %v", delay, delay+10*time.Second)
			}
			if got := added.Sub(start); got < delay {
				t.Errorf("delay %v: VIPs added %v after start", delay, got)
			}
			cancel()
			if err := <-done; err != nil {
				t.Errorf("Run: %v", err)
			}
		})
	}
}
