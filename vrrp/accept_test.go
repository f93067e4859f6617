package vrrp_test

import (
	"context"
	"errors"
	"net/netip"
	"slices"
	"strings"
	"sync"
	"testing"
	"testing/synctest"
	"time"

	"github.com/fwpair/fwpair/vrrp"
	"github.com/fwpair/fwpair/vrrp/vrrptest"
)

// filterAddresser is a vrrptest node's Addresser that also records the
// accept filter it is given, in order with the VIP changes.
type filterAddresser struct {
	*vrrptest.Node
	mu  sync.Mutex
	log []string
}

func (f *filterAddresser) record(s string) {
	f.mu.Lock()
	f.log = append(f.log, s)
	f.mu.Unlock()
}

func (f *filterAddresser) events() []string {
	f.mu.Lock()
	defer f.mu.Unlock()
	return slices.Clone(f.log)
}

func (f *filterAddresser) RefuseLocal(_ context.Context, addrs []netip.Addr) error {
	s := "refuse"
	for _, a := range addrs {
		s += " " + a.String()
	}
	f.record(s)
	return nil
}

func (f *filterAddresser) RefusingLocal(context.Context) (bool, error) { return true, nil }

func (f *filterAddresser) AddVIPs(ctx context.Context, ifname string, vips []vrrp.VIP) error {
	f.record("add " + ifname)
	return f.Node.AddVIPs(ctx, ifname, vips)
}

// With NoAccept the filter is installed when Run starts, before any VIP
// is added, stays while MASTER, and is removed on a graceful stop after
// the VIPs; after Kill it stays, like the VIPs.
func TestEngineAcceptModeFilterLifecycle(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		lab := newSimLab()
		cfg := pairConfigV3(150, 50*time.Millisecond)
		cfg.Instances[0].NoAccept = true
		for _, graceful := range []bool{true, false} {
			f := &filterAddresser{Node: lab.fw1}
			opts := lab.fw1.Options()
			opts.Addresser = f
			g, err := vrrp.New(cfg, opts)
			if err != nil {
				t.Fatal(err)
			}
			r := newRunning(g, t.Context())
			<-g.Ready()
			waitFor(t, time.Second, "MASTER", func() bool { return groupState(g) == vrrp.StateMaster && holdsBoth(lab.fw1) })
			want := []string{"refuse " + vip0.String(), "add eth0", "add eth1"}
			if got := f.events(); !slices.Equal(got, want) {
				t.Fatalf("as MASTER: %q, want %q", got, want)
			}
			if graceful {
				if err := r.stop(); err != nil {
					t.Fatal(err)
				}
				want = append(want, "refuse")
			} else if err := r.kill(); !errors.Is(err, vrrp.ErrKilled) {
				t.Fatal(err)
			}
			if got := f.events(); !slices.Equal(got, want) {
				t.Errorf("graceful=%v after stop: %q, want %q", graceful, got, want)
			}
		}
	})
}

// An Addresser that cannot filter makes Run fail with NoAccept rather
// than accept silently what it must refuse; without NoAccept it runs.
func TestEngineAcceptModeNeedsFilter(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		lab := newSimLab()
		cfg := pairConfigV3(150, 50*time.Millisecond)
		cfg.Instances[1].NoAccept = true
		g, err := vrrp.New(cfg, lab.fw1.Options())
		if err != nil {
			t.Fatal(err)
		}
		err = g.Run(t.Context())
		if err == nil || !strings.Contains(err.Error(), "accept mode") {
			t.Fatalf("Run = %v, want an accept mode error", err)
		}
	})
}
