package vrrp_test

import (
	"context"
	"runtime"
	"sync"
	"testing"
	"time"

	"github.com/fwpair/fwpair/testenv"
	"github.com/fwpair/fwpair/vrrp"
)

// churn keeps n goroutines allocating (and the GC busy) until ctx ends:
// the Go runtime of a fwpaird whose sync engine replicates flows.
func churn(ctx context.Context, n int) *sync.WaitGroup {
	var wg sync.WaitGroup
	for range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			keep := make([][]byte, 1024)
			for i := 0; ctx.Err() == nil; i++ {
				keep[i%len(keep)] = make([]byte, 4096)
			}
		}()
	}
	return &wg
}

// The MASTER's adverts at 50 ms with the firewalls' cores saturated by
// CPU hogs AND the daemon's own Go runtime busy (every P running
// allocating goroutines, the GC cycling), as when the sync engine
// replicates 100,000 flows: the pacer must still send on time.
func TestPrivilegedV3PacerJitterBusyRuntime(t *testing.T) {
	testenv.RequirePrivileged(t)
	lab := testenv.NewLab(t, testenv.LabOptions{Prefix: "fwv"})
	var transitions int
	var mu sync.Mutex
	count := func(o *vrrp.Options) {
		o.RealtimePriority = testRTPriority
		o.Callbacks.AfterTransition = func(vrrp.Transition) { mu.Lock(); transitions++; mu.Unlock() }
	}
	fw1 := startInNS(t, "fw1", lab.FW1, labConfigV3(150, hogInterval), count)
	eventually(t, 3*time.Second, "fw1 MASTER", holders(lab, 1))
	rec, err := testenv.RecordAdverts(lab.Client, "eth0")
	if err != nil {
		t.Fatal(err)
	}
	defer rec.Close()
	mu.Lock()
	before := transitions
	mu.Unlock()
	for _, ns := range []*testenv.NS{lab.FW1, lab.FW2} {
		h, err := testenv.StartCPUHog(ns, hogsPerNS)
		if err != nil {
			t.Fatal(err)
		}
		defer h.Stop()
	}
	load := loadAverage(t)
	ctx, cancel := context.WithCancel(t.Context())
	wg := churn(ctx, runtime.NumCPU())
	from := time.Now()
	for time.Since(from) < hogWindow {
		time.Sleep(50 * time.Millisecond)
	}
	to := time.Now()
	cancel()
	wg.Wait()
	iv := testenv.Intervals(rec.Adverts(), testenv.FWAddrs[0][0].Addr(), 51, from, to)
	if len(iv) < 2 {
		t.Fatalf("only %d advert intervals", len(iv))
	}
	p50, _ := testenv.Percentile(iv, 50)
	p99, _ := testenv.Percentile(iv, 99)
	pmax, _ := testenv.Percentile(iv, 100)
	mu.Lock()
	spurious := transitions - before
	mu.Unlock()
	t.Logf("MEASURED v3 %v pacer, busy Go runtime + CPU hogs, host load %.1f: advert interval p50 %v p99 %v max %v (%d intervals); transitions %d; fw1 %v",
		hogInterval, load, p50.Round(time.Microsecond), p99.Round(time.Microsecond), pmax.Round(time.Microsecond), len(iv), spurious, fw1.Status().State)
	// As in TestPrivilegedKeepalivedV3UnderCPUHog, a host already
	// running more than one task per core measures its own contention
	// (other real-time threads at the same priority, RT throttling): the
	// figures are only logged there.
	if load > float64(runtime.NumCPU()) {
		t.Logf("host load %.1f exceeds 1 task per core before the hogs: figures logged, not asserted", load)
		return
	}
	// Three intervals without an advert is a false takeover at the
	// BACKUP. Before the adverts were timed by the kernel, this measured
	// max 357-580 ms.
	if pmax >= 3*hogInterval {
		t.Errorf("an advert interval of %v: a BACKUP would have taken over", pmax)
	}
	// Issue #13's target (p99 within 10% of the interval) is make
	// bench's verdict, measured with nothing else running; here, beside
	// the other test packages, a p99 of twice the interval is what only a
	// regression to Go-timed adverts produces (p99 of 100-400 ms then).
	if p99 >= 2*hogInterval {
		t.Errorf("advert interval p99 %v, want below %v", p99, 2*hogInterval)
	}
}

// Adverts queued ahead in the kernel never outlive what they announce: a
// priority change cancels those at the old priority (none follows the
// first at the new one), a graceful stop cancels the rest (none follows
// priority 0), and every advert sent is counted.
func TestPrivilegedV3PacerCancelsQueuedAdverts(t *testing.T) {
	testenv.RequirePrivileged(t)
	lab := testenv.NewLab(t, testenv.LabOptions{Prefix: "fwv"})
	rec, err := testenv.RecordAdverts(lab.Client, "eth0")
	if err != nil {
		t.Fatal(err)
	}
	defer rec.Close()
	fw1 := startInNS(t, "fw1", lab.FW1, labConfigV3(150, hogInterval), realtime)
	eventually(t, 3*time.Second, "fw1 MASTER", holders(lab, 1))
	src := testenv.FWAddrs[0][0].Addr()
	fw1Adverts := func() []testenv.WireAdvert {
		var out []testenv.WireAdvert
		for _, a := range rec.Adverts() {
			if a.Src == src && a.VRID == 51 {
				out = append(out, a)
			}
		}
		return out
	}
	// Twenty adverts at 150: the queue (pacerHorizon ahead) is full.
	eventually(t, 3*time.Second, "twenty adverts at priority 150", func() (bool, error) {
		return len(fw1Adverts()) >= 20, nil
	})
	if err := fw1.SetPriority("vi_lan0", 120); err != nil {
		t.Fatal(err)
	}
	if err := fw1.SetPriority("vi_lan1", 120); err != nil {
		t.Fatal(err)
	}
	eventually(t, 2*time.Second, "ten adverts at priority 120", func() (bool, error) {
		n := 0
		for _, a := range fw1Adverts() {
			if a.Priority == 120 {
				n++
			}
		}
		return n >= 10, nil
	})
	if err := fw1.stop(); err != nil {
		t.Fatal(err)
	}
	// Anything still queued would leave within pacerHorizon (1 s):
	// watch the wire 1.2 s for it.
	consistently(t, 1200*time.Millisecond, "no advert after priority 0", func() (bool, error) {
		ads := fw1Adverts()
		for i, a := range ads {
			if a.Priority == 0 {
				return i == len(ads)-1 || allZero(ads[i:]), nil
			}
		}
		return true, nil
	})
	seen120, seen0 := false, false
	var sent uint64
	for _, in := range fw1.Status().Instances {
		if in.Name == "vi_lan0" {
			sent = in.Counters.AdvertsSent
		}
	}
	ads := fw1Adverts()
	for _, a := range ads {
		switch {
		case a.Priority == 0:
			seen0 = true
		case seen0:
			t.Fatalf("advert at priority %d after the priority-0 one", a.Priority)
		case a.Priority == 120:
			seen120 = true
		case seen120 && a.Priority == 150:
			t.Fatalf("advert at the old priority 150 after one at 120")
		}
	}
	if !seen0 {
		t.Fatal("no priority-0 advert on the wire")
	}
	if got := uint64(len(ads)); sent != got {
		t.Errorf("vi_lan0 counted %d adverts sent, %d seen on the wire", sent, got)
	}
}

func allZero(ads []testenv.WireAdvert) bool {
	for _, a := range ads {
		if a.Priority != 0 {
			return false
		}
	}
	return true
}
