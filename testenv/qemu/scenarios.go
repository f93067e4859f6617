package qemu

import (
	"encoding/json"
	"fmt"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/fwpair/fwpair/appliance/api"
)

// Bounds are the failover time limits the checks enforce. Detection is the
// host-side time from the fault until the peer reports MASTER (VRRP's
// master-down interval with 1 s adverts is 3.6 s); the gap is what the
// client's 20 ms UDP probe saw, measured in the guest.
type Bounds struct {
	Election time.Duration // fwpaird start to fw1 MASTER
	Graceful time.Duration // SIGTERM on the MASTER
	Crash    time.Duration // VM frozen or powered off
	Cable    time.Duration // link down on a tracked interface
	Failback time.Duration // fault cleared to fw1 MASTER again
	Reboot   time.Duration // relaunched VM ready
}

// DefaultBounds fit a 2-core machine running four TCG guests.
var DefaultBounds = Bounds{
	Election: 20 * time.Second,
	Graceful: 3 * time.Second,
	Crash:    7 * time.Second,
	Cable:    6 * time.Second,
	Failback: 10 * time.Second,
	Reboot:   60 * time.Second,
}

const ctlSocket = "/run/fwpair/fwpaird.sock"

// status is `fwpairctl status --json` as the control API defines it, with
// the optional parts present (zero when the node did not report them), so
// the checks can read them directly.
type status = api.Status

// emptyStatus has every optional part present and zero.
func emptyStatus() status {
	return status{VRRP: &api.VRRPStatus{}, Sync: &api.SyncStatus{}, LastTransition: &api.Transition{}}
}

func getStatus(fw *VM) (status, error) {
	st := emptyStatus()
	out, err := sh(fw, "fwpairctl -socket "+ctlSocket+" status --json", 3*time.Second)
	if err != nil {
		return st, err
	}
	if err := json.Unmarshal([]byte(out), &st); err != nil {
		return emptyStatus(), fmt.Errorf("%s: status: %v: %.200s", fw.Name, err, out)
	}
	if st.VRRP == nil {
		st.VRRP = &api.VRRPStatus{}
	}
	if st.Sync == nil {
		st.Sync = &api.SyncStatus{}
	}
	if st.LastTransition == nil {
		st.LastTransition = &api.Transition{}
	}
	return st, nil
}

// state returns fw's group state, or a short error text in its place.
func state(fw *VM) string {
	st, err := getStatus(fw)
	if err != nil {
		return "unreachable"
	}
	return st.VRRP.GroupState
}

// waitState polls fw until its group state is want or d passes; it returns
// the time it took.
func waitState(fw *VM, want string, d time.Duration) (time.Duration, string) {
	start := time.Now()
	last := ""
	for time.Since(start) < d {
		if last = state(fw); last == want {
			return time.Since(start), last
		}
		time.Sleep(150 * time.Millisecond)
	}
	return time.Since(start), last
}

// vips counts the VIPs configured on fw.
func vips(fw *VM) (int, error) {
	out, err := sh(fw, "ip -4 -o addr show", 3*time.Second)
	if err != nil {
		return -1, err
	}
	return strings.Count(out, "192.168.0.100/") + strings.Count(out, "192.168.1.100/"), nil
}

// forwarded returns how many packets each reachable firewall sent on eth1
// (towards the server) in one second: the forwarding node sends the
// client's probe stream (50 packets/s), the other next to nothing.
func (l *Lab) forwarded(fws ...*VM) map[string]int {
	res := map[string]int{}
	var mu sync.Mutex
	var wg sync.WaitGroup
	for _, fw := range fws {
		wg.Go(func() {
			out, err := sh(fw, "f=/sys/class/net/eth1/statistics/tx_packets; a=$(cat $f); sleep 1; b=$(cat $f); echo $((b-a))", 5*time.Second)
			n := -1
			if err == nil {
				n, _ = strconv.Atoi(out)
			}
			mu.Lock()
			res[fw.Name] = n
			mu.Unlock()
		})
	}
	wg.Wait()
	return res
}

// kv parses "a=1 b=2 err=..." status lines.
func kv(s string) map[string]string {
	m := map[string]string{}
	for _, f := range strings.Fields(s) {
		if k, v, ok := strings.Cut(f, "="); ok {
			m[k] = v
		}
	}
	if i := strings.Index(s, "err="); i >= 0 {
		m["err"] = s[i+4:]
	}
	return m
}

func atoi(s string) int { n, _ := strconv.Atoi(s); return n }

func (l *Lab) probeReset() {
	_, _ = sh(l.Client, "touch /tmp/probe.reset; sleep 0.15", 3*time.Second)
}

// probeGap waits until the probe gets answers again (no silence longer than
// 300 ms) and returns the largest gap since the last reset.
func (l *Lab) probeGap(d time.Duration) (time.Duration, bool) {
	end := time.Now().Add(d)
	var gap int
	for time.Now().Before(end) {
		out, err := sh(l.Client, "cat /tmp/probe.status", 3*time.Second)
		if err == nil {
			m := kv(out)
			gap = atoi(m["maxgap_ms"])
			if atoi(m["since_ms"]) < 300 && atoi(m["recv"]) > 0 {
				return time.Duration(gap) * time.Millisecond, true
			}
		}
		time.Sleep(200 * time.Millisecond)
	}
	return time.Duration(gap) * time.Millisecond, false
}

// master checks that fw is the only MASTER, holds both VIPs alone and
// forwards the traffic. other may be nil when it cannot be asked (frozen,
// powered off).
func (l *Lab) master(tag string, fw, other *VM) {
	var parts []string
	ok := true
	if s := state(fw); s != "MASTER" {
		ok = false
		parts = append(parts, fw.Name+" "+s)
	}
	n, err := vips(fw)
	if n != 2 {
		ok = false
	}
	parts = append(parts, fmt.Sprintf("%s VIPs %d%s", fw.Name, n, errText(err)))
	fws := []*VM{fw}
	if other != nil {
		s := state(other)
		if s == "MASTER" {
			ok = false
		}
		on, err := vips(other)
		if on != 0 {
			ok = false
		}
		parts = append(parts, fmt.Sprintf("%s %s VIPs %d%s", other.Name, s, on, errText(err)))
		fws = append(fws, other)
	}
	l.Check(ok, tag+": "+fw.Name+" alone MASTER with both VIPs", "%s", strings.Join(parts, ", "))
	fwd := l.forwarded(fws...)
	fok := fwd[fw.Name] >= 20
	desc := fmt.Sprintf("eth1 tx/s %s=%d", fw.Name, fwd[fw.Name])
	if other != nil {
		fok = fok && fwd[other.Name] >= 0 && fwd[other.Name] <= 5
		desc += fmt.Sprintf(" %s=%d", other.Name, fwd[other.Name])
	}
	l.Check(fok, tag+": "+fw.Name+" forwards the client's traffic", "%s", desc)
}

// settled checks, twice a second apart, that exactly one node is MASTER.
func (l *Lab) settled(tag string) {
	ok := true
	var seen []string
	for range 2 {
		s1, s2 := "", ""
		var wg sync.WaitGroup
		wg.Go(func() { s1 = state(l.FW1) })
		wg.Go(func() { s2 = state(l.FW2) })
		wg.Wait()
		seen = append(seen, "fw1 "+s1+"/fw2 "+s2)
		if (s1 == "MASTER") == (s2 == "MASTER") {
			ok = false
		}
		time.Sleep(time.Second)
	}
	l.Check(ok, tag+": exactly one MASTER after settling", "%s", strings.Join(seen, ", "))
}

// Times are the measured times, for the summary.
type Times struct {
	Election  time.Duration
	Detect    map[string]time.Duration
	Gap       map[string]time.Duration
	Failback  map[string]time.Duration
	FailGap   map[string]time.Duration
	Rebooted  time.Duration
	Transfers []string
}

// failover runs one fault: inject, fw2 takes over within bound, clear,
// fw1 fails back.
func (l *Lab) failover(name string, bound time.Duration, fw1Reachable bool, fw1Fault string, inject, clear func() error, t *Times) {
	l.logf("---- %s", name)
	l.probeReset()
	if err := inject(); !l.Check(err == nil, name+": fault injected", "%s", oneLine("", err)) {
		return
	}
	d, s := waitState(l.FW2, "MASTER", bound+2*time.Second)
	t.Detect[name] = d
	tr := ""
	if st, err := getStatus(l.FW2); err == nil {
		lt := st.LastTransition
		tr = fmt.Sprintf(", %s, committed %d entries in %.1fms", lt.Reason, lt.CommitEntries, lt.CommitSeconds*1000)
		if st.Sync.DirectInject {
			tr = fmt.Sprintf(", %s, states already in the kernel (direct inject)", lt.Reason)
		}
		t.Transfers = append(t.Transfers, fmt.Sprintf("%s: fw2 %s", name, strings.TrimPrefix(tr, ", ")))
	}
	l.Check(s == "MASTER" && d <= bound, name+": fw2 MASTER within "+bound.String(), "%.2fs%s", d.Seconds(), tr)
	gap, back := l.probeGap(bound + 3*time.Second)
	t.Gap[name] = gap
	l.Check(back && gap <= bound, name+": traffic back within "+bound.String(), "gap %dms", gap.Milliseconds())
	var other *VM
	if fw1Reachable {
		other = l.FW1
		if fw1Fault != "" {
			s := state(l.FW1)
			l.Check(s == fw1Fault, name+": fw1 "+fw1Fault, "%s", s)
		}
	}
	l.master(name, l.FW2, other)
	l.probeReset()
	if err := clear(); !l.Check(err == nil, name+": fault cleared", "%s", oneLine("", err)) {
		return
	}
	start := time.Now()
	_, s = waitState(l.FW1, "MASTER", DefaultBounds.Failback)
	t.Failback[name] = time.Since(start)
	l.Check(s == "MASTER", name+": fw1 fails back to MASTER", "%.2fs after the fault was cleared (%s)", t.Failback[name].Seconds(), s)
	_, s2 := waitState(l.FW2, "BACKUP", 5*time.Second)
	l.Check(s2 == "BACKUP", name+": fw2 back to BACKUP", "%s", s2)
	gap, back = l.probeGap(5 * time.Second)
	t.FailGap[name] = gap
	l.Check(back, name+": traffic after failback", "gap %dms", gap.Milliseconds())
	l.settled(name)
	l.master(name+" failback", l.FW1, l.FW2)
}

func (l *Lab) fwLog(fw *VM) string {
	out, _ := sh(fw, l.cmd("log"), 5*time.Second)
	return out
}

// cmd returns the guest command for op on the firewalls: the busybox root
// runs fwpaird from its helper scripts, the systemd root from
// etc/fwpaird.service.
func (l *Lab) cmd(op string) string {
	if l.Systemd {
		return map[string]string{
			// Type=notify: "active" only after READY=1.
			"running": "for i in $(seq 100); do systemctl is-active -q fwpaird && exit 0; sleep 0.1; done; systemctl status --no-pager fwpaird; exit 1",
			"log":     "journalctl -u fwpaird -n 15 --no-pager -o cat",
			"stop":    "systemctl stop fwpaird",
			"start":   "systemctl start fwpaird",
		}[op]
	}
	return map[string]string{
		"running": "sleep 1; kill -0 $(cat /run/fwpaird.pid)",
		"log":     "tail -n 15 /run/fwpaird.log",
		"stop":    "fwpair-stop",
		"start":   "fwpair-start",
	}[op]
}

// Scenarios runs the fwpaird checks: election, traffic, sync, the four
// failovers, the long-lived TCP session.
func (l *Lab) Scenarios() Times {
	t := Times{Detect: map[string]time.Duration{}, Gap: map[string]time.Duration{}, Failback: map[string]time.Duration{}, FailGap: map[string]time.Duration{}}
	b := DefaultBounds

	// Election.
	for _, fw := range []*VM{l.FW1, l.FW2} {
		if _, err := sh(fw, l.cmd("running"), 15*time.Second); err != nil {
			l.Check(false, fw.Name+": fwpaird running", "%s", l.fwLog(fw))
			return t
		}
	}
	d, s := waitState(l.FW1, "MASTER", b.Election)
	t.Election = d
	detail := fmt.Sprintf("%.1fs after the VMs were ready", d.Seconds())
	if st, err := getStatus(l.FW1); err == nil && !st.StartedAt.IsZero() && st.LastTransition.At.After(st.StartedAt) {
		t.Election = st.LastTransition.At.Sub(st.StartedAt)
		detail = fmt.Sprintf("%.2fs after fwpaird started (%s)", t.Election.Seconds(), st.LastTransition.Reason)
	}
	if !l.Check(s == "MASTER", "election: fw1 MASTER", "%s", detail) {
		l.logf("fw1 fwpaird log:\n%s\nfw2 fwpaird log:\n%s", l.fwLog(l.FW1), l.fwLog(l.FW2))
		return t
	}
	_, s = waitState(l.FW2, "BACKUP", 5*time.Second)
	l.Check(s == "BACKUP", "election: fw2 BACKUP", "%s", s)
	n1, _ := vips(l.FW1)
	n2, _ := vips(l.FW2)
	l.Check(n1 == 2 && n2 == 0, "election: both VIPs on fw1 only", "fw1 %d, fw2 %d", n1, n2)

	if l.Systemd {
		l.systemdChecks()
	}
	if l.Packages != nil {
		l.packageChecks()
	}

	// Traffic through the VIPs, then the long-lived flows.
	out, err := sh(l.Client, "ping -c 3 -W 2 192.168.1.10", 10*time.Second)
	l.Check(err == nil, "traffic: client pings server through the VIPs", "%s", oneLine(lastLines(out, 1), err))
	_, err = sh(l.Client, "setsid qemu-guest probe -addr 192.168.1.10:7001 >/run/probe.log 2>&1 </dev/null & setsid qemu-guest tcp-client -addr 192.168.1.10:7000 >/run/tcp.log 2>&1 </dev/null &", 3*time.Second)
	l.Check(err == nil, "traffic: UDP probe and long-lived TCP session started", "%s", oneLine("", err))
	gap, back := l.probeGap(5 * time.Second)
	l.Check(back, "traffic: probe answered", "max gap %dms", gap.Milliseconds())
	tcp0 := l.tcpStatus()
	l.Check(tcp0["alive"] == "1", "traffic: TCP session up", "%v", tcp0)
	l.master("steady", l.FW1, l.FW2)

	// Sync: the flows fw1 forwards reach fw2: its external cache, or with
	// direct inject (the default) its kernel's conntrack table, which only
	// fwpaird can have filled since fw2 forwards nothing.
	l.syncCheck()
	if l.Packages != nil {
		l.upgradeCheck(&t)
	}

	l.failover("graceful stop", b.Graceful, true, "",
		func() error { _, err := sh(l.FW1, l.cmd("stop"), 10*time.Second); return err },
		func() error { _, err := sh(l.FW1, l.cmd("start"), 15*time.Second); return err }, &t)

	l.failover("VM frozen", b.Crash, false, "",
		func() error { _, err := l.FW1.QMP("stop", nil); return err },
		func() error { _, err := l.FW1.QMP("cont", nil); return err }, &t)

	l.failover("VM powered off", b.Crash, false, "",
		func() error {
			l.FW1.closeCtl()
			_, err := l.FW1.QMP("quit", nil)
			if err == nil && !l.FW1.Wait(5*time.Second) {
				err = fmt.Errorf("fw1 still running after quit")
			}
			return err
		},
		func() error {
			if err := l.FW1.Start(); err != nil {
				return err
			}
			reboot := b.Reboot
			if l.Systemd {
				reboot *= 3
			}
			d, err := l.FW1.WaitReady(reboot)
			if err != nil {
				return err
			}
			// Failback is timed from fwpaird's start, not the VM's.
			if _, err := sh(l.FW1, l.cmd("running"), 30*time.Second); err != nil {
				return fmt.Errorf("fwpaird not running on the relaunched fw1: %v: %s", err, l.fwLog(l.FW1))
			}
			t.Rebooted = time.Since(l.FW1.started)
			l.logf("     fw1 relaunched, agent ready after %.1fs, fwpaird running after %.1fs", d.Seconds(), t.Rebooted.Seconds())
			return nil
		}, &t)

	l.failover("cable pull", b.Cable, true, "FAULT",
		func() error { _, err := l.FW1.QMP("set_link", map[string]any{"name": "eth1", "up": false}); return err },
		func() error { _, err := l.FW1.QMP("set_link", map[string]any{"name": "eth1", "up": true}); return err }, &t)

	tcp := l.tcpStatus()
	l.Check(tcp["alive"] == "1" && tcp["err"] == "" && atoi(tcp["ok"]) > atoi(tcp0["ok"]),
		"long-lived TCP session survived every failover", "%d lines echoed over %ss, longest wait %sms%s",
		atoi(tcp["ok"]), secs(tcp["age_ms"]), tcp["maxgap_ms"], errText(errIf(tcp["err"])))
	return t
}

func secs(ms string) string { return fmt.Sprintf("%.0f", float64(atoi(ms))/1000) }

func errIf(s string) error {
	if s == "" {
		return nil
	}
	return fmt.Errorf("%s", s)
}

func errText(err error) string {
	if err != nil {
		return ": " + err.Error()
	}
	return ""
}

func (l *Lab) tcpStatus() map[string]string {
	out, err := sh(l.Client, "cat /tmp/tcp.status", 3*time.Second)
	if err != nil {
		return map[string]string{"err": err.Error()}
	}
	return kv(out)
}

// systemdChecks verifies etc/fwpaird.service on a real systemd: Type=notify
// readiness with a STATUS= text, the masked serial getty, and that
// `systemctl reload` (SIGHUP) keeps the same process and its mastership.
func (l *Lab) systemdChecks() {
	for _, fw := range []*VM{l.FW1, l.FW2} {
		out, err := sh(fw, "systemctl show fwpaird -p Type -p ActiveState -p SubState -p StatusText -p MainPID; systemctl is-enabled serial-getty@ttyS0.service; systemctl is-system-running; systemd-analyze time | head -1", 10*time.Second)
		m := map[string]string{}
		for _, line := range strings.Split(out, "\n") {
			if k, v, ok := strings.Cut(line, "="); ok {
				m[k] = v
			}
		}
		l.Check(m["Type"] == "notify" && m["ActiveState"] == "active" && m["StatusText"] != "",
			fw.Name+": systemd: fwpaird.service active after READY=1", "Type=%s ActiveState=%s SubState=%s STATUS=%q%s", m["Type"], m["ActiveState"], m["SubState"], m["StatusText"], errText(err))
		l.Check(strings.Contains(out, "masked"), fw.Name+": systemd: serial getty masked", "%s", oneLine(lastLines(out, 2), nil))
	}
	before, _ := sh(l.FW1, "systemctl show fwpaird -p MainPID --value", 5*time.Second)
	_, err := sh(l.FW1, "systemctl reload fwpaird", 10*time.Second)
	time.Sleep(time.Second)
	after, _ := sh(l.FW1, "systemctl show fwpaird -p MainPID --value; systemctl is-active fwpaird", 5*time.Second)
	s := state(l.FW1)
	l.Check(err == nil && strings.HasPrefix(after, before+"\n") && strings.HasSuffix(after, "active") && s == "MASTER",
		"fw1: systemd: systemctl reload keeps fwpaird and its mastership", "MainPID %s -> %s, %s%s", before, oneLine(after, nil), s, errText(err))
}

func (l *Lab) syncCheck() {
	st := emptyStatus()
	var err error
	var detail string
	ok := false
	for end := time.Now().Add(8 * time.Second); time.Now().Before(end) && !ok; time.Sleep(300 * time.Millisecond) {
		if st, err = getStatus(l.FW2); err != nil {
			detail = err.Error()
			continue
		}
		if st.Sync.DirectInject {
			out, _ := sh(l.FW2, "conntrack -L -p tcp --dport 7000 2>/dev/null | grep -c 192.168.1.10; conntrack -L -p udp --dport 7001 2>/dev/null | grep -c 192.168.1.10", 5*time.Second)
			f := strings.Fields(out)
			ok = len(f) == 2 && atoi(f[0]) >= 1 && atoi(f[1]) >= 1
			detail = fmt.Sprintf("direct inject: fw2 kernel holds TCP %v, UDP %v", len(f) == 2 && atoi(f[0]) >= 1, len(f) == 2 && atoi(f[1]) >= 1)
		} else {
			cache, _ := sh(l.FW2, "fwpairctl -socket "+ctlSocket+" --json cache external", 5*time.Second)
			tcp := strings.Contains(cache, "192.168.1.10") && strings.Contains(cache, "7000")
			ok = st.Sync.ExternalEntries >= 2 && tcp
			detail = fmt.Sprintf("external cache: %d entries, TCP flow present %v", st.Sync.ExternalEntries, tcp)
		}
	}
	l.Check(ok, "sync: fw1's flows replicated to fw2", "%s, mode %s, peer_alive %v", detail, st.Sync.Mode, st.Sync.PeerAlive)
}
