package bench

import (
	"bytes"
	"math"
	"os"
	"strings"
	"testing"
	"time"
)

func TestStat(t *testing.T) {
	for _, tc := range []struct {
		in   []float64
		want Stat
	}{
		{nil, Stat{}},
		{[]float64{5}, Stat{N: 1, Min: 5, Median: 5, Max: 5}},
		{[]float64{3, 1, 2}, Stat{N: 3, Min: 1, Median: 2, Max: 3}},
		{[]float64{4, 1, 2, 3}, Stat{N: 4, Min: 1, Median: 2.5, Max: 4}},
	} {
		if got := stat(tc.in); got != tc.want {
			t.Errorf("stat(%v) = %+v, want %+v", tc.in, got, tc.want)
		}
	}
}

// The shape of conntrackd 1.4.7's -s answer in sync mode.
const ctdStatsOutput = `cache internal:
current active connections:	        1532
connections created:		        9876	failed:	           0

cache external:
current active connections:	      100042
connections created:		      100042	failed:	           0
`

func TestParseCacheCount(t *testing.T) {
	for cache, want := range map[string]int{"internal": 1532, "external": 100042} {
		got, err := parseCacheCount(ctdStatsOutput, cache)
		if err != nil || got != want {
			t.Errorf("%s: got %d, %v; want %d", cache, got, err, want)
		}
	}
	if _, err := parseCacheCount("garbage", "external"); err == nil {
		t.Error("garbage parsed")
	}
}

func TestAdaptScript(t *testing.T) {
	in := "#!/bin/sh\nCONNTRACKD_BIN=/usr/sbin/conntrackd\nCONNTRACKD_LOCK=/var/lock/conntrack.lock\nCONNTRACKD_CONFIG=/etc/conntrackd/conntrackd.conf\n$CONNTRACKD_BIN -C $CONNTRACKD_CONFIG -c\n"
	out, err := adaptScript(in, "/t/wrap", "/t/lock", "/t/conf")
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"CONNTRACKD_BIN=/t/wrap\n", "CONNTRACKD_LOCK=/t/lock\n", "CONNTRACKD_CONFIG=/t/conf\n", "$CONNTRACKD_BIN -C $CONNTRACKD_CONFIG -c"} {
		if !strings.Contains(out, want) {
			t.Errorf("adapted script lacks %q:\n%s", want, out)
		}
	}
	if _, err := adaptScript("#!/bin/sh\nexit 0\n", "a", "b", "c"); err == nil {
		t.Error("a script without the settings was accepted")
	}
}

func TestTimings(t *testing.T) {
	dir := t.TempDir()
	path := dir + "/timing"
	body := "start 1700000000.100000000 -C /c -c\nstart 1700000000.200000000 -C /c -s\nend 1700000000.250000000 rc=0 -C /c -s\nend 1700000001.600000000 rc=0 -C /c -c\nstart 1700000002.000000000 -C /c -B\n"
	if err := writeFile(path, body); err != nil {
		t.Fatal(err)
	}
	ts := timings(path)
	if len(ts) != 3 {
		t.Fatalf("got %d entries: %+v", len(ts), ts)
	}
	if d := ts[0].end.Sub(ts[0].start); d != 1500*time.Millisecond || ts[0].rc != "0" {
		t.Errorf("commit: %v rc %q", d, ts[0].rc)
	}
	if !finished(ts, "-s") || !finished(ts, "-c") || finished(ts, "-B") {
		t.Error("finished() wrong")
	}
}

func TestSyntheticFlowsUnique(t *testing.T) {
	for _, snat := range []bool{false, true} {
		flows := syntheticFlows(100_000, snat)
		orig := map[[4]uint64]bool{}
		reply := map[[3]uint64]bool{}
		for _, f := range flows {
			s, d := f.Src.As4(), f.Dst.As4()
			k := [4]uint64{uint64(s[3]), uint64(d[3]), uint64(f.SrcPort), uint64(f.DstPort)}
			if orig[k] {
				t.Fatalf("snat=%v: duplicate original tuple %v", snat, f.Tuple)
			}
			orig[k] = true
			if snat {
				r := [3]uint64{uint64(d[3]), uint64(f.DstPort), uint64(f.SNAT.Port)}
				if reply[r] {
					t.Fatalf("duplicate reply tuple %v", f.Tuple)
				}
				reply[r] = true
			}
		}
	}
}

// fakeResults is a complete run's worth of made-up figures.
func fakeResults() *Results {
	res := &Results{Scale: Small}
	res.Scale.Modes = []Mode{Strict, Typical}
	for _, st := range []string{FWPair, Reference} {
		for _, m := range res.Scale.Modes {
			for _, f := range res.Scale.Faults {
				run := FailoverRun{Stack: st, Mode: m, Fault: f, Rep: 1, Sessions: 100, Kept: 100,
					TakeoverMS: 3000, AfterAdvertMS: 3600, GapMS: 2900, MaxStallMS: 3300,
					CommitEntries: 10100, CommitMS: 100, CommitVsVIPsMS: 300,
					Probe: []float64{-1000, -990, -980, 2500, 2510, 2520}}
				if st == FWPair {
					run.CommitVsVIPsMS = -2
				}
				res.Failover = append(res.Failover, run)
			}
		}
	}
	res.Failover = append(res.Failover, FailoverRun{Stack: FWPairCache, Mode: Strict, Fault: Term, CommitEntries: 10100, CommitMS: 20, CommitVsVIPsMS: -1, Sessions: 100, Kept: 100},
		FailoverRun{Stack: FWPair, Mode: Strict, Fault: Crash, Rep: 2, Error: "boom\ndetails"})
	for _, st := range []string{FWPair, FWPairCache, Reference} {
		res.Replication = append(res.Replication, ReplicationRun{Stack: st, Flows: 10000, Arrived: 10000, Complete: true,
			FlowsPerSec: 50000, LastLagMS: 40, ReceiverPerEntry: 250, SenderPerEntry: 300, SenderCPUPer100k: 1, RecvCPUPer100k: 0.5})
	}
	res.Kernel = []KernelRun{{Flows: 10000, PerSec: 500000}, {Listener: true, Flows: 10000, PerSec: 300000}}
	res.Rows = buildRows(res)
	return res
}

func TestTableAndChart(t *testing.T) {
	res := fakeResults()
	var b bytes.Buffer
	res.Table(&b)
	out := b.String()
	for _, want := range []string{"| measure | fwpair | reference | ratio | verdict |", "takeover after fw1's last advert", "commit rate", "kernel limit, no listener", "boom", "target 100%: met"} {
		if !strings.Contains(out, want) {
			t.Errorf("table lacks %q:\n%s", want, out)
		}
	}
	for _, r := range res.Rows {
		if math.IsNaN(r.Ratio) || math.IsInf(r.Ratio, 0) {
			t.Errorf("row %q: ratio %v", r.Metric, r.Ratio)
		}
	}
	var svg bytes.Buffer
	res.svg(&svg)
	s := svg.String()
	if !strings.HasPrefix(s, "<svg") || !strings.HasSuffix(s, "</svg>\n") || !strings.Contains(s, "fwpair · crash · strict") {
		t.Errorf("bad SVG:\n%.500s", s)
	}
	if res.Errors() != 1 {
		t.Errorf("Errors() = %d, want 1", res.Errors())
	}
}

func writeFile(path, body string) error { return os.WriteFile(path, []byte(body), 0o644) }
