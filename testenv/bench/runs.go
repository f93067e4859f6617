package bench

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"time"

	"github.com/fwpair/fwpair/ctsync"
	"github.com/fwpair/fwpair/ctsync/ctnetlink"
	"github.com/fwpair/fwpair/testenv"
	"github.com/vishvananda/netlink"
)

// Mode is the lab's ruleset flavour.
type Mode string

// The two rulesets every failover scenario runs under.
const (
	// Strict: nf_conntrack_tcp_loose=0, plain forwarding: a mid-stream
	// packet without state is INVALID and dropped.
	Strict Mode = "strict"
	// Typical: kernel defaults (loose TCP pickup) and the client LAN
	// masqueraded behind the eth1 VIP.
	Typical Mode = "typical"
)

// Prefix starts the name of every namespace the benchmark creates.
const Prefix = "fwb"

// RemoveStale deletes namespaces an interrupted run left behind: the lab
// names them Prefix plus a role ("fwbf1-…"), the kernel-limit run too.
func RemoveStale() []string {
	var out []string
	for _, role := range []string{"", "sw", "cl", "f1", "f2", "sv"} {
		out = append(out, testenv.RemoveStale(Prefix+role)...)
	}
	return out
}

func labOptions(m Mode) testenv.LabOptions {
	return testenv.LabOptions{Prefix: Prefix, Masquerade: m == Typical, LooseTCP: m == Typical}
}

// FailoverRun is one failover of one stack.
type FailoverRun struct {
	Stack string `json:"stack"`
	Mode  Mode   `json:"mode"`
	Fault Fault  `json:"fault"`
	Rep   int    `json:"rep"`
	// SyncedFlows is the peer's external cache size when the fault hit.
	SyncedFlows int `json:"synced_flows"`
	// TakeoverMS: fault until the other node holds both VIPs.
	TakeoverMS float64 `json:"takeover_ms"`
	// AfterAdvertMS: fw1's last VRRP advert seen on fw2 until fw2 holds
	// both VIPs; unlike TakeoverMS it does not depend on where in the
	// advert interval the fault hit.
	AfterAdvertMS float64 `json:"after_last_advert_ms"`
	// Seconds is how long the whole run took, lab included.
	Seconds float64 `json:"seconds"`
	// GapMS: the longest time without a probe echo after the fault.
	GapMS    float64 `json:"gap_ms"`
	Sessions int     `json:"sessions"`
	Kept     int     `json:"kept"`
	Reset    int     `json:"reset"`
	Stalled  int     `json:"stalled"`
	// MaxStallMS is the longest time any session went without an echo.
	MaxStallMS    float64 `json:"max_stall_ms"`
	CommitEntries int     `json:"commit_entries"`
	CommitFailed  int     `json:"commit_failed"`
	CommitMS      float64 `json:"commit_ms"`
	// CommitVsVIPsMS is when the commit finished relative to the VIPs
	// being up: negative means the state was in the kernel before any
	// traffic was attracted.
	CommitVsVIPsMS float64 `json:"commit_vs_vips_ms"`
	// Split: the failed node still held a VIP on an up link at the end.
	Split bool `json:"split,omitempty"`
	// Probe is the echo arrival times in ms relative to the fault, from
	// one second before it.
	Probe []float64 `json:"probe_ms,omitempty"`
	// ProbeEndMS is where the probe record ends, relative to the fault.
	ProbeEndMS float64 `json:"probe_end_ms,omitempty"`
	Error      string  `json:"error,omitempty"`
	// SetupRetry is the error of a first attempt that failed before the
	// fault (with the daemons' log tails), when this run is the second.
	SetupRetry string `json:"setup_retry,omitempty"`
}

// ReplicationRun is one burst of new flows in the MASTER's kernel.
type ReplicationRun struct {
	Stack string `json:"stack"`
	Rep   int    `json:"rep"`
	Flows int    `json:"flows"`
	// InjectMS is how long the creation in fw1's kernel took.
	InjectMS float64 `json:"inject_ms"`
	Arrived  int     `json:"arrived"`
	Missing  int     `json:"missing"`
	Complete bool    `json:"complete"`
	// FlowsPerSec: flows arrived / (last arrival - start of creation).
	FlowsPerSec float64 `json:"flows_per_sec"`
	// LastLagMS: last arrival - end of creation.
	LastLagMS float64 `json:"last_lag_ms"`
	// WaitedMS is how long the benchmark watched the peer's cache; for
	// an incomplete run, LastLagMS is the watch after creation (a lower
	// bound).
	WaitedMS float64 `json:"waited_ms"`
	Seconds  float64 `json:"seconds"`
	// Sender is fw1's sync process, receiver fw2's.
	SenderCPUSec      float64 `json:"sender_cpu_s"`
	ReceiverCPUSec    float64 `json:"receiver_cpu_s"`
	SenderRSSBytes    int64   `json:"sender_rss_delta_bytes"`
	ReceiverRSSBytes  int64   `json:"receiver_rss_delta_bytes"`
	ReceiverPerEntry  float64 `json:"receiver_bytes_per_entry"`
	SenderPerEntry    float64 `json:"sender_bytes_per_entry"`
	SenderCPUPer100k  float64 `json:"sender_cpu_s_per_100k"`
	RecvCPUPer100k    float64 `json:"receiver_cpu_s_per_100k"`
	ReceiverRSSBefore int64   `json:"receiver_rss_before_bytes"`
	Error             string  `json:"error,omitempty"`
}

// KernelRun is one batched create of Flows entries into an empty table.
type KernelRun struct {
	Listener bool    `json:"listener"`
	Flows    int     `json:"flows"`
	Seconds  float64 `json:"seconds"`
	PerSec   float64 `json:"per_sec"`
	Error    string  `json:"error,omitempty"`
}

// poll calls cond every interval until it returns true, an error, or the
// timeout passes.
func poll(timeout, interval time.Duration, what string, cond func() (bool, error)) error {
	end := time.Now().Add(timeout)
	for {
		ok, err := cond()
		if err != nil {
			return fmt.Errorf("%s: %w", what, err)
		}
		if ok {
			return nil
		}
		if time.Now().After(end) {
			return fmt.Errorf("%s: not within %s", what, timeout)
		}
		time.Sleep(interval)
	}
}

// vipWatch reads VIP ownership through netlink handles of its own, so it
// can run while the fault uses the lab's handles.
type vipWatch struct {
	h [2]*netlink.Handle
}

func newVIPWatch(lab *testenv.Lab) (*vipWatch, error) {
	w := &vipWatch{}
	for i := range 2 {
		h, err := netlink.NewHandleAt(lab.FW(i + 1).NetNSHandle())
		if err != nil {
			w.close()
			return nil, err
		}
		w.h[i] = h
	}
	return w, nil
}

func (w *vipWatch) close() {
	for _, h := range w.h {
		if h != nil {
			h.Close()
		}
	}
}

// holds reports whether firewall n has both VIPs on links that are up,
// and whether it has any.
func (w *vipWatch) holds(n int) (both, anyVIP bool, err error) {
	h := w.h[n-1]
	count := 0
	for _, v := range []struct {
		ifname string
		vip    netip.Addr
	}{{"eth0", testenv.VIP0.Addr()}, {"eth1", testenv.VIP1.Addr()}} {
		link, err := h.LinkByName(v.ifname)
		if err != nil {
			return false, false, err
		}
		if link.Attrs().Flags&net.FlagUp == 0 {
			continue
		}
		addrs, err := h.AddrList(link, netlink.FAMILY_V4)
		if err != nil {
			return false, false, err
		}
		for _, a := range addrs {
			if ip, ok := netip.AddrFromSlice(a.IP); ok && ip.Unmap() == v.vip {
				count++
			}
		}
	}
	return count == 2, count > 0, nil
}

// commitFlows creates flows in ns's kernel through ctsync's batched
// netlink path.
func commitFlows(ns *testenv.NS, flows []ctsync.Flow) (time.Duration, error) {
	k, err := ctnetlink.NewKernel(ctnetlink.KernelOptions{NetNS: ns.FD()})
	if err != nil {
		return 0, err
	}
	defer k.Close()
	ctx, cancel := context.WithTimeout(context.Background(), commitTimeout(len(flows)))
	defer cancel()
	res, err := k.Commit(ctx, flows)
	if err != nil {
		return 0, err
	}
	if res.Created != len(flows) {
		return res.Duration, fmt.Errorf("created %d of %d flows in %s (failed: %v)", res.Created, len(flows), ns.Name, res.Failed)
	}
	return res.Duration, nil
}

// commitTimeout bounds a batched create of n flows: a minute, plus 100 µs
// a flow beyond 100,000 (a million flows with a slow listener attached
// took more than a minute on a loaded 2-core machine).
func commitTimeout(n int) time.Duration {
	return time.Minute + time.Duration(max(0, n-100_000))*100*time.Microsecond
}

// running is a lab with a stack started and elected.
type running struct {
	lab     *testenv.Lab
	stack   stack
	watch   *vipWatch
	adverts *advertLog
}

// startStack builds a lab, optionally preloads flows into fw1's kernel,
// starts the stack and waits until fw1 is MASTER holding both VIPs with
// its follow-up work done and fw2 is BACKUP.
func (e *env) startStack(name string, mode Mode, preload []ctsync.Flow) (*running, error) {
	if e.jan.isClosed() {
		return nil, errors.New("interrupted")
	}
	lab, err := testenv.BuildLab(labOptions(mode))
	if err != nil {
		return nil, err
	}
	r := &running{lab: lab}
	e.jan.push(func() { lab.Close() })
	if r.adverts, err = startAdvertLog(lab.FW2); err != nil {
		return r, err
	}
	e.jan.push(r.adverts.close)
	if len(preload) > 0 {
		if _, err := commitFlows(lab.FW1, preload); err != nil {
			return r, fmt.Errorf("preload: %w", err)
		}
	}
	switch name {
	case FWPair, FWPairCache, FWPairKeyed, FWPairV3:
		st := newFWPair(lab, e.bin, e.runDir(), name == FWPairCache)
		st.keyed = name == FWPairKeyed
		st.v3 = v3Interval(name)
		r.stack = st
	default:
		ref, err := newReference(lab, e.runDir())
		if err != nil {
			return r, err
		}
		ref.v3 = v3Interval(name)
		ref.flows = e.scale.Flows
		ref.inject = name == ReferenceInject
		r.stack = ref
	}
	e.jan.push(r.stack.close)
	if r.watch, err = newVIPWatch(lab); err != nil {
		return r, err
	}
	e.jan.push(r.watch.close)
	for n := 1; n <= 2; n++ {
		if err := r.stack.start(n); err != nil {
			return r, err
		}
	}
	err = poll(30*time.Second, 20*time.Millisecond, name+" election", func() (bool, error) {
		ok, err := r.stack.ready()
		if !ok || err != nil {
			return false, err
		}
		both1, _, err := r.watch.holds(1)
		if err != nil {
			return false, err
		}
		_, any2, err := r.watch.holds(2)
		return both1 && !any2, err
	})
	if err != nil {
		return r, fmt.Errorf("%w\n%s\n%s", err, r.stack.diag(1), r.stack.diag(2))
	}
	return r, nil
}

// waitSynced waits until node n's external cache holds want entries, or
// makes no progress for stall, or timeout passes (waitGrowth).
func waitSynced(s stack, n, want int, timeout, stall time.Duration) (count int, last time.Time, ok bool) {
	return waitGrowth(func() (int, error) { return s.held(n) }, want, timeout, stall, 10*time.Millisecond)
}

// waitGrowth polls read every poll until it counts want, or makes no
// progress for stall, or timeout passes. It returns the last count, the
// time it last grew and whether it got there.
func waitGrowth(read func() (int, error), want int, timeout, stall, poll time.Duration) (count int, last time.Time, ok bool) {
	start := time.Now()
	last = start
	for {
		c, err := read()
		now := time.Now()
		if err == nil && c > count {
			count, last = c, now
		}
		if count >= want {
			return count, last, true
		}
		if now.Sub(start) > timeout || now.Sub(last) > stall {
			return count, last, false
		}
		time.Sleep(poll)
	}
}

// failover runs one failover scenario on a fresh lab. A run that fails
// before the fault (a lab or election problem, a dial timing out on a
// loaded machine) is tried once more; the first error is kept.
func (e *env) failover(name string, mode Mode, fault Fault, rep int) FailoverRun {
	run, faulted := e.failoverOnce(name, mode, fault, rep)
	if run.Error == "" || faulted || e.jan.isClosed() {
		return run
	}
	e.logf("failover %s %s %s rep %d: setup failed, trying again: %s", name, mode, fault, rep, firstLine(run.Error))
	again, _ := e.failoverOnce(name, mode, fault, rep)
	again.SetupRetry = run.Error
	return again
}

func (e *env) failoverOnce(name string, mode Mode, fault Fault, rep int) (run FailoverRun, faulted bool) {
	run = FailoverRun{Stack: name, Mode: mode, Fault: fault, Rep: rep, Sessions: e.scale.Sessions}
	began := time.Now()
	mark := e.jan.mark()
	defer func() { e.jan.popTo(mark); run.Seconds = time.Since(began).Seconds() }()
	err := func() error {
		r, err := e.startStack(name, mode, syntheticFlows(e.scale.Flows, mode == Typical))
		if err != nil {
			return err
		}
		lab := r.lab
		adverts := r.adverts
		echo, err := testenv.StartEchoServer(lab.Server, netip.AddrPortFrom(testenv.ServerAddr.Addr(), testenv.EchoPort))
		if err != nil {
			return err
		}
		e.jan.push(echo.Close)
		udp, err := testenv.StartUDPEcho(lab.Server, netip.AddrPortFrom(testenv.ServerAddr.Addr(), testenv.ProbePort))
		if err != nil {
			return err
		}
		e.jan.push(udp.Close)
		pr, err := testenv.StartProbe(lab.Client, netip.AddrPortFrom(testenv.ServerAddr.Addr(), testenv.ProbePort), 10*time.Millisecond)
		if err != nil {
			return err
		}
		e.jan.push(pr.Close)
		if !pr.WaitReply(time.Now(), 5*time.Second) {
			return errors.New("the probe gets no echo through fw1")
		}
		ss, err := testenv.OpenSessions(lab.Client, netip.AddrPortFrom(testenv.ServerAddr.Addr(), testenv.EchoPort), e.scale.Sessions, 100*time.Millisecond)
		if err != nil {
			return err
		}
		e.jan.push(ss.Close)
		if v := ss.WaitKept(time.Now(), 15*time.Second); v.Kept != v.Total {
			return fmt.Errorf("sessions not flowing through fw1 before the fault: %v", v)
		}
		want := e.scale.Flows + e.scale.Sessions
		run.SyncedFlows, _, _ = waitSynced(r.stack, 2, want, e.scale.SyncWait, 3*time.Second)

		ss.ResetStalls()
		at := time.Now()
		var takeover time.Time
		watchErr := make(chan error, 1)
		go func() {
			watchErr <- poll(20*time.Second, 5*time.Millisecond, "takeover by fw2", func() (bool, error) {
				both, _, err := r.watch.holds(2)
				if both {
					takeover = time.Now()
				}
				return both, err
			})
		}()
		faulted = true
		if err := r.stack.fault(fault, 1); err != nil {
			return fmt.Errorf("fault %s on fw1: %w", fault, err)
		}
		if err := <-watchErr; err != nil {
			return fmt.Errorf("%w\n%s", err, r.stack.diag(2))
		}
		run.TakeoverMS = ms(takeover.Sub(at))
		if last, ok := adverts.last(takeover, testenv.FWAddrs[0][0].Addr().String(), testenv.FWAddrs[0][1].Addr().String()); ok {
			run.AfterAdvertMS = ms(takeover.Sub(last))
		}

		v := ss.WaitKept(takeover, e.scale.KeptWait)
		run.Kept, run.Reset, run.Stalled, run.MaxStallMS = v.Kept, v.Reset, v.Stalled, ms(v.MaxStall)
		pr.WaitReply(time.Now(), 3*time.Second)
		end := time.Now()
		offsets := trace(pr, at, at.Add(-time.Second), end)
		gap, _ := pr.Gap(at, end)
		run.GapMS = ms(gap)
		for _, o := range offsets {
			run.Probe = append(run.Probe, ms(o))
		}
		run.ProbeEndMS = ms(end.Sub(at))
		ci, err := r.stack.commit(2, at, 30*time.Second)
		if err != nil {
			return fmt.Errorf("%w\n%s", err, r.stack.diag(2))
		}
		run.CommitEntries, run.CommitFailed, run.CommitMS = ci.Entries, ci.Failed, ci.Seconds*1000
		run.CommitVsVIPsMS = ms(ci.Done.Sub(takeover))
		_, run.Split, _ = r.watch.holds(1)
		return nil
	}()
	if err != nil {
		run.Error = err.Error()
	}
	return run, faulted
}

// replication creates Flows new connections in the MASTER's kernel in
// one batched burst and watches them arrive in the BACKUP's cache.
func (e *env) replication(name string, rep int) (run ReplicationRun) {
	run = ReplicationRun{Stack: name, Rep: rep, Flows: e.scale.Flows}
	began := time.Now()
	mark := e.jan.mark()
	defer func() { e.jan.popTo(mark); run.Seconds = time.Since(began).Seconds() }()
	err := func() error {
		r, err := e.startStack(name, Strict, nil)
		if err != nil {
			return err
		}
		base, err := r.stack.held(2)
		if err != nil {
			return err
		}
		var pids [2]int
		var before, after [2]usage
		for i := range 2 {
			if pids[i], err = r.stack.syncPID(i + 1); err != nil {
				return err
			}
			if before[i], err = readUsage(pids[i]); err != nil {
				return err
			}
		}
		flows := syntheticFlows(e.scale.Flows, false)
		prof := e.startProfiles(name, rep, pids) // BENCH_PROFILE (profile.go)
		start := time.Now()
		took, err := commitFlows(r.lab.FW1, flows)
		if err != nil {
			prof.stop()
			return err
		}
		created := start.Add(took)
		run.InjectMS = ms(took)
		count, last, ok := waitSynced(r.stack, 2, base+len(flows), e.scale.ReplWait, e.scale.ReplStall)
		prof.stop()
		watchEnd := time.Now()
		run.WaitedMS = ms(watchEnd.Sub(start))
		for i := range 2 {
			if after[i], err = readUsage(pids[i]); err != nil {
				return err
			}
		}
		run.Arrived = count - base
		run.Missing = len(flows) - run.Arrived
		run.Complete = ok
		if run.Arrived > 0 {
			run.FlowsPerSec = float64(run.Arrived) / last.Sub(start).Seconds()
			run.LastLagMS = ms(last.Sub(created))
			if !ok {
				run.LastLagMS = ms(watchEnd.Sub(created))
			}
			f := float64(run.Arrived)
			run.SenderRSSBytes = after[0].RSS - before[0].RSS
			run.ReceiverRSSBytes = after[1].RSS - before[1].RSS
			run.ReceiverRSSBefore = before[1].RSS
			run.SenderPerEntry = float64(run.SenderRSSBytes) / f
			run.ReceiverPerEntry = float64(run.ReceiverRSSBytes) / f
			run.SenderCPUSec = (after[0].CPU - before[0].CPU).Seconds()
			run.ReceiverCPUSec = (after[1].CPU - before[1].CPU).Seconds()
			run.SenderCPUPer100k = run.SenderCPUSec * 100000 / f
			run.RecvCPUPer100k = run.ReceiverCPUSec * 100000 / f
		}
		return nil
	}()
	if err != nil {
		run.Error = err.Error()
	}
	return run
}

// kernelLimit measures the kernel's batched create rate in an empty
// namespace, alone and with one ctnetlink event listener attached (as a
// sync daemon's own listener is during its commit).
func (e *env) kernelLimit(listener bool) (run KernelRun) {
	run = KernelRun{Listener: listener, Flows: e.scale.Flows}
	err := func() error {
		if e.jan.isClosed() {
			return errors.New("interrupted")
		}
		// A lab firewall, so the namespace has conntrack and NAT hooks
		// exactly like the nodes.
		lab, err := testenv.BuildLab(labOptions(Strict))
		if err != nil {
			return err
		}
		mark := e.jan.mark()
		defer e.jan.popTo(mark)
		e.jan.push(func() { lab.Close() })
		k, err := ctnetlink.NewKernel(ctnetlink.KernelOptions{NetNS: lab.FW1.FD()})
		if err != nil {
			return err
		}
		e.jan.push(func() { k.Close() })
		if listener {
			l, err := ctnetlink.NewKernel(ctnetlink.KernelOptions{NetNS: lab.FW1.FD()})
			if err != nil {
				return err
			}
			ctx, cancel := context.WithCancel(context.Background())
			done := make(chan struct{})
			go func() { defer close(done); _ = l.Events(ctx, func([]ctnetlink.Event) {}) }()
			e.jan.push(func() { cancel(); <-done; l.Close() })
		}
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		flows := syntheticFlows(e.scale.Flows, false)
		res, err := k.Commit(ctx, flows)
		if err != nil {
			return err
		}
		if res.Created != len(flows) {
			return fmt.Errorf("created %d of %d (failed: %v)", res.Created, len(flows), res.Failed)
		}
		run.Seconds = res.Duration.Seconds()
		run.PerSec = float64(len(flows)) / run.Seconds
		return nil
	}()
	if err != nil {
		run.Error = err.Error()
	}
	return run
}

func ms(d time.Duration) float64 { return float64(d.Microseconds()) / 1000 }
