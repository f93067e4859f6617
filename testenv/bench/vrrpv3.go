package bench

import (
	"fmt"
	"os"
	"strings"
	"time"

	"github.com/fwpair/fwpair/testenv"
)

// VRRPv3 scenarios (issue #13): the crash failover with both stacks in
// VRRPv3 at 50 ms adverts, and "no false failover": both cores saturated
// by CPU hogs in the firewalls' namespaces while flows replicate, with
// every VRRP transition counted and the MASTER's adverts timed on the
// wire. Both stacks run their VRRP threads under SCHED_RR at the same
// priority (fwpaird's vrrp.realtime_priority, keepalived's
// vrrp_rt_priority).
const (
	// FWPairV3 is fwpaird as in etc/, with vrrp.version = 3 at V3Interval.
	FWPairV3 = "fwpair-v3"
	// ReferenceV3 is keepalived (vrrp_version 3, V3Interval) and conntrackd.
	ReferenceV3 = "reference-v3"
	// V3Interval is the advert interval of both v3 stacks.
	V3Interval   = 50 * time.Millisecond
	v3RTPriority = 50
	// hogsPerFW busy processes run in each firewall's namespace: four for
	// the two cores of the reference machine.
	hogsPerFW = 2
)

// v3Interval is the VRRPv3 interval stack name runs at, 0 for VRRPv2.
func v3Interval(name string) time.Duration {
	if name == FWPairV3 || name == ReferenceV3 {
		return V3Interval
	}
	return 0
}

// hogWindow is how long the no-false-failover scenario loads the
// firewalls, per stack: 10 minutes in the full run, 20 s in the small
// one (which runs in make test, where the time is counted).
func hogWindow(sc Scale) time.Duration {
	if sc.Name == Small.Name {
		return 20 * time.Second
	}
	return 10 * time.Minute
}

// HogRun is one stack under the CPU hogs.
type HogRun struct {
	Stack      string  `json:"stack"`
	HogSeconds float64 `json:"hog_seconds"`
	// Flows were created in fw1's kernel (and replicated) under the hogs.
	Flows int `json:"flows"`
	// Transitions counts the VRRP group transitions of both nodes during
	// the window: every one is spurious (nothing failed).
	Transitions int `json:"spurious_transitions"`
	// Advert intervals of fw1 on eth0, seen on the client's LAN with
	// kernel receive timestamps.
	Adverts     int     `json:"adverts"`
	AdvertP50MS float64 `json:"advert_p50_ms"`
	AdvertP99MS float64 `json:"advert_p99_ms"`
	AdvertMaxMS float64 `json:"advert_max_ms"`
	Seconds     float64 `json:"seconds"`
	Error       string  `json:"error,omitempty"`
}

// v3Globals is the keepalived global_defs lines of a v3 reference stack.
func v3Globals(iv time.Duration) []string {
	if iv == 0 {
		return nil
	}
	// The default RLIMIT_RTTIME keepalived sets with vrrp_rt_priority
	// (10 ms of CPU without sleeping) kills it during its GARP bursts on
	// a loaded machine.
	return []string{"vrrp_version 3", fmt.Sprintf("vrrp_rt_priority %d", v3RTPriority), "vrrp_rlimit_rttime 500000"}
}

// advertInt is keepalived's advert_int for interval iv (0: VRRPv2's 1 s).
func advertInt(iv time.Duration) string {
	if iv == 0 {
		return "1"
	}
	return fmt.Sprintf("%g", iv.Seconds())
}

// transitions counts the group transitions both nodes of s logged so far.
func transitions(s stack) int {
	n := 0
	switch s := s.(type) {
	case *fwpairStack:
		for _, d := range s.nodes {
			if d == nil {
				continue
			}
			b, _ := os.ReadFile(d.Log)
			n += strings.Count(string(b), `msg="vrrp group transition"`)
		}
	case *refStack:
		for _, nd := range s.nodes {
			if nd == nil {
				continue
			}
			b, _ := os.ReadFile(nd.states)
			n += len(strings.Split(strings.TrimSpace(string(b)), "\n"))
			if strings.TrimSpace(string(b)) == "" {
				n--
			}
		}
	}
	return n
}

// hogRun runs stack name under the CPU hogs for hogWindow.
func (e *env) hogRun(name string) (run HogRun) {
	run = HogRun{Stack: name}
	began := time.Now()
	mark := e.jan.mark()
	defer func() { e.jan.popTo(mark); run.Seconds = time.Since(began).Seconds() }()
	err := func() error {
		r, err := e.startStack(name, Strict, nil)
		if err != nil {
			return err
		}
		rec, err := testenv.RecordAdverts(r.lab.Client, "eth0")
		if err != nil {
			return err
		}
		e.jan.push(func() { rec.Close() })
		before := transitions(r.stack)
		for _, ns := range []*testenv.NS{r.lab.FW1, r.lab.FW2} {
			h, err := testenv.StartCPUHog(ns, hogsPerFW)
			if err != nil {
				return err
			}
			e.jan.push(h.Stop)
		}
		from := time.Now()
		// Replication under the hogs: the flows are created in the
		// MASTER's kernel and the sync engine sends them to fw2.
		flows := syntheticFlows(e.scale.Flows, false)
		if _, err := commitFlows(r.lab.FW1, flows); err != nil {
			return fmt.Errorf("flows under the hogs: %w", err)
		}
		run.Flows = len(flows)
		window := hogWindow(e.scale)
		for time.Since(from) < window && !e.jan.isClosed() {
			time.Sleep(100 * time.Millisecond) // a fixed window of load, polled for an interrupt
		}
		to := time.Now()
		run.HogSeconds = to.Sub(from).Seconds()
		run.Transitions = transitions(r.stack) - before
		iv := testenv.Intervals(rec.Adverts(), testenv.FWAddrs[0][0].Addr(), 51, from, to)
		run.Adverts = len(iv) + 1
		if len(iv) == 0 {
			return fmt.Errorf("no advert intervals of fw1 seen under the hogs")
		}
		ms := func(p float64) float64 {
			d, _ := testenv.Percentile(iv, p)
			return float64(d) / float64(time.Millisecond)
		}
		run.AdvertP50MS, run.AdvertP99MS, run.AdvertMaxMS = ms(50), ms(99), ms(100)
		return nil
	}()
	if err != nil {
		run.Error = err.Error()
	}
	return run
}

// v3Rows are the table rows of the VRRPv3 scenarios.
func v3Rows(res *Results) []Row {
	var rows []Row
	by := func(stack string) (ok []FailoverRun, failed int) {
		for _, f := range res.Failover {
			if f.Stack != stack || f.Fault != Crash {
				continue
			}
			if f.Error != "" {
				failed++
				continue
			}
			ok = append(ok, f)
		}
		return ok, failed
	}
	pick := func(runs []FailoverRun, get func(FailoverRun) float64) []float64 {
		var out []float64
		for _, r := range runs {
			out = append(out, get(r))
		}
		return out
	}
	fw, f1 := by(FWPairV3)
	ref, f2 := by(ReferenceV3)
	if len(fw)+len(ref)+f1+f2 > 0 {
		g := fmt.Sprintf("failover: crash (SIGKILL + links down), VRRPv3 at %v, strict", V3Interval)
		failed := f1 + f2
		gapTarget := &target{"≤ 250 ms and ≤ keepalived v3", func(f, r Stat) (bool, string) {
			lim := 250.0
			if r.N > 0 {
				lim = min(lim, r.Median)
			}
			return f.Median <= lim, fmt.Sprintf("by %.0f ms", f.Median-lim)
		}}
		rows = append(rows,
			newRow(g, "takeover (fault → VIPs on fw2)", "ms", true, fmtMS, pick(fw, func(r FailoverRun) float64 { return r.TakeoverMS }), pick(ref, func(r FailoverRun) float64 { return r.TakeoverMS }), failed, nil),
			newRow(g, "takeover after fw1's last advert", "ms", true, fmtMS, pick(fw, func(r FailoverRun) float64 { return r.AfterAdvertMS }), pick(ref, func(r FailoverRun) float64 { return r.AfterAdvertMS }), failed, nil),
			newRow(g, "probe gap (10 ms UDP)", "ms", true, fmtMS, pick(fw, func(r FailoverRun) float64 { return r.GapMS }), pick(ref, func(r FailoverRun) float64 { return r.GapMS }), failed, gapTarget),
			newRow(g, fmt.Sprintf("sessions kept of %d", res.Scale.Sessions), "", false, fmtCount,
				pick(fw, func(r FailoverRun) float64 { return float64(r.Kept) }), pick(ref, func(r FailoverRun) float64 { return float64(r.Kept) }), failed,
				&target{"100%", func(f, _ Stat) (bool, string) {
					return f.Min == float64(res.Scale.Sessions), fmt.Sprintf("(worst run kept %.0f)", f.Min)
				}}),
			newRow(g, "longest session stall", "ms", true, fmtMS, pick(fw, func(r FailoverRun) float64 { return r.MaxStallMS }), pick(ref, func(r FailoverRun) float64 { return r.MaxStallMS }), failed, nil),
		)
	}
	hog := func(stack string, get func(HogRun) float64) (vs []float64, failed int) {
		for _, h := range res.Hog {
			if h.Stack != stack {
				continue
			}
			if h.Error != "" {
				failed++
				continue
			}
			vs = append(vs, get(h))
		}
		return vs, failed
	}
	hogRow := func(g, metric string, format func(float64) string, get func(HogRun) float64, tg *target) Row {
		fw, f1 := hog(FWPairV3, get)
		ref, f2 := hog(ReferenceV3, get)
		return newRow(g, metric, "", true, format, fw, ref, f1+f2, tg)
	}
	if len(res.Hog) > 0 {
		g := fmt.Sprintf("no false failover: VRRPv3 at %v, %d CPU hogs per firewall for %v while %d flows replicate",
			V3Interval, hogsPerFW, hogWindow(res.Scale), res.Scale.Flows)
		p99Limit := float64(V3Interval+V3Interval/10) / float64(time.Millisecond)
		fmt1 := func(v float64) string { return fmt.Sprintf("%.1f ms", v) }
		rows = append(rows,
			hogRow(g, "spurious VRRP transitions (both nodes)", fmtCount, func(h HogRun) float64 { return float64(h.Transitions) },
				&target{"0", func(f, _ Stat) (bool, string) { return f.Max == 0, fmt.Sprintf("(up to %.0f)", f.Max) }}),
			hogRow(g, "advert interval p50 on the wire", fmt1, func(h HogRun) float64 { return h.AdvertP50MS }, nil),
			hogRow(g, "advert interval p99 on the wire", fmt1, func(h HogRun) float64 { return h.AdvertP99MS },
				&target{fmt.Sprintf("≤ %.0f ms (interval + 10%%)", p99Limit), func(f, _ Stat) (bool, string) {
					return f.Max <= p99Limit, fmt.Sprintf("by %.1f ms (worst run)", f.Max-p99Limit)
				}}),
			hogRow(g, "advert interval max on the wire", fmt1, func(h HogRun) float64 { return h.AdvertMaxMS }, nil),
		)
	}
	return rows
}
