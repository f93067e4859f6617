package vrrp_test

import (
	"os"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/fwpair/fwpair/testenv"
	"github.com/fwpair/fwpair/vrrp"
)

// VRRPv3 at 50 ms with both cores saturated by CPU hogs in the firewalls'
// namespaces: the MASTER's adverts are timed on the wire (kernel receive
// timestamps on the client's LAN) and every transition counted, for
// fwpair and keepalived 2.2.7 side by side, each with and without
// real-time scheduling of its VRRP threads. For fwpair with real-time
// scheduling a spurious transition, or an advert interval p99 of twice
// the configured one, fails the test (make bench holds the 110% target);
// the other figures are logged (MEASURED lines) for comparison.

const (
	hogInterval = 50 * time.Millisecond
	hogWindow   = 6 * time.Second
	hogsPerNS   = 2 // two busy processes per firewall: four for two cores
)

type loadCase struct {
	name   string
	rt     int
	strict bool // spurious transitions fail the test
	setup  func(t *testing.T, lab *testenv.Lab) (transitions func() int)
}

func TestPrivilegedKeepalivedV3UnderCPUHog(t *testing.T) {
	testenv.RequirePrivileged(t)
	fwpairSetup := func(rt int) func(t *testing.T, lab *testenv.Lab) func() int {
		return func(t *testing.T, lab *testenv.Lab) func() int {
			var n atomic.Int64
			count := func(o *vrrp.Options) {
				o.RealtimePriority = rt
				o.Callbacks.AfterTransition = func(vrrp.Transition) { n.Add(1) }
			}
			fw1 := startInNS(t, "fw1", lab.FW1, labConfigV3(150, hogInterval), count)
			eventually(t, 3*time.Second, "fw1 MASTER", holders(lab, 1))
			fw2 := startInNS(t, "fw2", lab.FW2, labConfigV3(100, hogInterval), count)
			eventually(t, 2*time.Second, "fw2 BACKUP", state(fw2, vrrp.StateBackup))
			if fw1.Status().State != vrrp.StateMaster {
				t.Fatalf("fw1 %v", fw1.Status().State)
			}
			return func() int { return int(n.Load()) }
		}
	}
	keepalivedSetup := func(rt int) func(t *testing.T, lab *testenv.Lab) func() int {
		return func(t *testing.T, lab *testenv.Lab) func() int {
			k1 := startKeepalivedV3RT(t, lab.FW1, 150, hogInterval, rt)
			eventually(t, 3*time.Second, "keepalived fw1 MASTER", func() (bool, error) {
				ok, err := holders(lab, 1)()
				return ok && k1.lastState() == "MASTER", err
			})
			k2 := startKeepalivedV3RT(t, lab.FW2, 100, hogInterval, rt)
			eventually(t, 3*time.Second, "keepalived fw2 BACKUP", k2.inState("BACKUP"))
			return func() int { return k1.transitions() + k2.transitions() }
		}
	}
	for _, c := range []loadCase{
		{"fwpair/rt", testRTPriority, true, fwpairSetup(testRTPriority)},
		{"keepalived/rt", testRTPriority, false, keepalivedSetup(testRTPriority)},
		{"fwpair/normal", 0, false, fwpairSetup(0)},
		{"keepalived/normal", 0, false, keepalivedSetup(0)},
	} {
		// Sequential: the cases must not load each other.
		t.Run(c.name, func(t *testing.T) {
			lab := testenv.NewLab(t, testenv.LabOptions{Prefix: "fwv"})
			transitions := c.setup(t, lab)
			rec, err := testenv.RecordAdverts(lab.Client, "eth0")
			if err != nil {
				t.Fatal(err)
			}
			defer rec.Close()
			before := transitions()
			// The assertions are about our hogs; a host already running
			// more than one task per core (other jobs, e.g. the other test
			// packages go test runs beside this one) measures its own
			// contention, so it only logs. make bench measures the same
			// target with nothing else running.
			load := loadAverage(t)
			busyHost := load > float64(runtime.NumCPU())
			var hogs []*testenv.CPUHog
			for _, ns := range []*testenv.NS{lab.FW1, lab.FW2} {
				h, err := testenv.StartCPUHog(ns, hogsPerNS)
				if err != nil {
					t.Fatal(err)
				}
				defer h.Stop()
				hogs = append(hogs, h)
			}
			from := time.Now()
			// Watch the whole window; a transition is counted, not waited for.
			for time.Since(from) < hogWindow {
				time.Sleep(50 * time.Millisecond)
			}
			to := time.Now()
			for _, h := range hogs {
				h.Stop()
			}
			spurious := transitions() - before
			iv := testenv.Intervals(rec.Adverts(), testenv.FWAddrs[0][0].Addr(), 51, from, to)
			if len(iv) < 2 {
				t.Fatalf("only %d advert intervals of fw1 seen in %v", len(iv), hogWindow)
			}
			p50, _ := testenv.Percentile(iv, 50)
			p99, _ := testenv.Percentile(iv, 99)
			pmax, _ := testenv.Percentile(iv, 100)
			t.Logf("MEASURED v3 %v under CPU hog (%d busy processes per firewall, %v, rt priority %d, host load %.1f before the hogs): %s advert interval p50 %v p99 %v max %v (%d intervals); spurious transitions %d",
				hogInterval, hogsPerNS, hogWindow, c.rt, load, c.name, p50.Round(time.Microsecond), p99.Round(time.Microsecond), pmax.Round(time.Microsecond), len(iv), spurious)
			if busyHost {
				t.Logf("host load %.1f exceeds 1 task per core before the hogs: figures logged, not asserted", load)
				return
			}
			if c.strict && spurious > 0 {
				t.Errorf("%d spurious transitions under load (a late advert made the BACKUP take over)", spurious)
			}
			// Issue #13's target (p99 within 10% of the interval) is make
			// bench's verdict, measured alone; make test runs beside
			// other packages and guards against a regression to
			// Go-timed adverts (p99 of 100-400 ms) instead.
			if c.strict && p99 >= 2*hogInterval {
				t.Errorf("advert interval p99 %v under load, want below %v", p99, 2*hogInterval)
			}
		})
	}
}

// loadAverage is the host's one-minute load average.
func loadAverage(t *testing.T) float64 {
	b, err := os.ReadFile("/proc/loadavg")
	if err != nil {
		t.Fatal(err)
	}
	f, err := strconv.ParseFloat(strings.Fields(string(b))[0], 64)
	if err != nil {
		t.Fatal(err)
	}
	return f
}

// transitions counts the group states keepalived's notify script wrote.
func (k *keepalived) transitions() int {
	b, _ := os.ReadFile(filepath.Join(k.dir, "states"))
	return len(strings.Fields(string(b)))
}
