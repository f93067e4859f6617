package testenv

import (
	"context"
	"fmt"
	"net"
	"net/netip"
	"os"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/vishvananda/netlink"
)

// Faults between the two nodes, applied where a real network would have
// them: on the switch (the LAN bridges) or on the sync link, never by
// taking links down, so both nodes keep seeing their links up.

// nodePorts are the switch ports of fw1 and fw2 on lan0 and lan1.
var nodePorts = [2][2]string{{"f1e0", "f2e0"}, {"f1e1", "f2e1"}}

// Cut describes what the switch and the sync link drop between the nodes.
type Cut struct {
	// LAN[i] drops everything between fw1 and fw2 on lan i (a switch
	// port, VLAN or ACL fault between the nodes); client and server still
	// reach both nodes.
	LAN [2]bool
	// VRRP drops only VRRP between the nodes, on both LANs (split brain).
	VRRP bool
	// Sync drops everything on the dedicated sync link (at fw1's eth2).
	Sync bool
}

// SetCut applies c, replacing the previous cut (the zero Cut heals all).
func (l *Lab) SetCut(c Cut) error {
	var b strings.Builder
	b.WriteString("table bridge fwpair-cut {\n\tchain forward {\n\t\ttype filter hook forward priority -200; policy accept;\n")
	for lan, cut := range c.LAN {
		if cut {
			p := nodePorts[lan]
			fmt.Fprintf(&b, "\t\tiifname %q oifname %q drop\n\t\tiifname %q oifname %q drop\n", p[0], p[1], p[1], p[0])
		}
	}
	if c.VRRP {
		for _, p := range nodePorts {
			fmt.Fprintf(&b, "\t\tiifname { %q, %q } oifname { %q, %q } ip protocol 112 drop\n", p[0], p[1], p[0], p[1])
		}
	}
	b.WriteString("\t}\n}\n")
	if err := l.Switch.LoadRuleset("table bridge fwpair-cut {}\ndelete table bridge fwpair-cut\n" + b.String()); err != nil {
		return fmt.Errorf("switch cut: %w", err)
	}
	sync := "table inet fwpair-cut {}\ndelete table inet fwpair-cut\n"
	if c.Sync {
		sync += `table inet fwpair-cut {
	chain in {
		type filter hook prerouting priority -400; policy accept;
		iifname "eth2" drop
	}
	chain out {
		type filter hook output priority -400; policy accept;
		oifname "eth2" drop
	}
}
`
	}
	if err := l.FW1.LoadRuleset(sync); err != nil {
		return fmt.Errorf("sync link cut: %w", err)
	}
	return nil
}

// garpRules counts, on the switch, the gratuitous ARPs each node sends
// for the VIP of each LAN (counted once per frame, where it enters).
func (l *Lab) startGARPCount() error {
	var b strings.Builder
	b.WriteString("table bridge fwpair-garp {\n")
	vips := [2]netip.Addr{VIP0.Addr(), VIP1.Addr()}
	for lan := range 2 {
		for n := range 2 {
			fmt.Fprintf(&b, "\tcounter fw%d_lan%d {}\n", n+1, lan)
		}
	}
	b.WriteString("\tchain pre {\n\t\ttype filter hook prerouting priority -300; policy accept;\n")
	for lan := range 2 {
		for n := range 2 {
			fmt.Fprintf(&b, "\t\tiifname %q ether type arp arp operation request arp saddr ip %s arp daddr ip %s counter name \"fw%d_lan%d\"\n",
				nodePorts[lan][n], vips[lan], vips[lan], n+1, lan)
		}
	}
	b.WriteString("\t}\n}\n")
	return l.Switch.LoadRuleset(b.String())
}

var packetsRE = regexp.MustCompile(`packets (\d+)`)

// GARPs returns the gratuitous ARPs fw n sent for both VIPs so far, as
// counted by the switch (StartFaultWatch installs the counters).
func (l *Lab) GARPs(n int) (uint64, error) {
	var total uint64
	for lan := range 2 {
		out, err := l.Switch.Run(context.Background(), "nft", "list", "counter", "bridge", "fwpair-garp", fmt.Sprintf("fw%d_lan%d", n, lan))
		if err != nil {
			return 0, err
		}
		m := packetsRE.FindStringSubmatch(out)
		if m == nil {
			return 0, fmt.Errorf("no counter in %q", out)
		}
		v, _ := strconv.ParseUint(m[1], 10, 64)
		total += v
	}
	return total, nil
}

// InvalidDrops returns the packets fw n's forward chain dropped as
// INVALID (the `ct state invalid counter drop` rule of etc/fwpair.nft).
func (l *Lab) InvalidDrops(n int) (uint64, error) {
	out, err := l.FW(n).Run(context.Background(), "nft", "list", "chain", "inet", "fwpair", "forward")
	if err != nil {
		return 0, err
	}
	for _, line := range strings.Split(out, "\n") {
		if strings.Contains(line, "ct state invalid") {
			if m := packetsRE.FindStringSubmatch(line); m != nil {
				return strconv.ParseUint(m[1], 10, 64)
			}
		}
	}
	return 0, fmt.Errorf("fw%d: no invalid counter in the forward chain", n)
}

// VIPWatch samples which nodes hold each VIP every 10 ms, on handles of
// its own, to measure how long the VIPs were on both nodes or on neither.
type VIPWatch struct {
	cancel context.CancelFunc
	done   chan struct{}
	hs     [2]*netlink.Handle

	mu      sync.Mutex
	samples []vipSample
}

type vipSample struct {
	at      time.Time
	both    bool // some VIP on both nodes
	neither bool // some VIP on no node
	err     error
}

// StartFaultWatch installs the switch's GARP counters and starts a
// VIPWatch; Stop it when done.
func (l *Lab) StartFaultWatch() (*VIPWatch, error) {
	if err := l.startGARPCount(); err != nil {
		return nil, fmt.Errorf("GARP counters: %w", err)
	}
	w := &VIPWatch{done: make(chan struct{})}
	for i := range 2 {
		h, err := netlink.NewHandleAt(l.FW(i + 1).NetNSHandle())
		if err != nil {
			w.closeHandles()
			return nil, err
		}
		w.hs[i] = h
	}
	ctx, cancel := context.WithCancel(context.Background())
	w.cancel = cancel
	go w.run(ctx)
	return w, nil
}

func (w *VIPWatch) closeHandles() {
	for _, h := range w.hs {
		if h != nil {
			h.Close()
		}
	}
}

func (w *VIPWatch) run(ctx context.Context) {
	defer close(w.done)
	defer w.closeHandles()
	t := time.NewTicker(10 * time.Millisecond)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		s := vipSample{at: time.Now()}
		for lan, vip := range []netip.Addr{VIP0.Addr(), VIP1.Addr()} {
			holders := 0
			for n := range 2 {
				ok, err := holdsVIP(w.hs[n], []string{"eth0", "eth1"}[lan], vip)
				if err != nil {
					s.err = err
				}
				if ok {
					holders++
				}
			}
			s.both = s.both || holders == 2
			s.neither = s.neither || holders == 0
		}
		w.mu.Lock()
		w.samples = append(w.samples, s)
		w.mu.Unlock()
	}
}

func holdsVIP(h *netlink.Handle, ifname string, vip netip.Addr) (bool, error) {
	link, err := h.LinkByName(ifname)
	if err != nil {
		return false, err
	}
	if link.Attrs().Flags&net.FlagUp == 0 {
		return false, nil
	}
	addrs, err := h.AddrList(link, netlink.FAMILY_V4)
	if err != nil {
		return false, err
	}
	for _, a := range addrs {
		if ip, ok := netip.AddrFromSlice(a.IP); ok && ip.Unmap() == vip {
			return true, nil
		}
	}
	return false, nil
}

// Longest returns the longest continuous time in [from, to] during which
// some VIP was on both nodes, and during which some VIP was on neither,
// and the number of samples that failed.
func (w *VIPWatch) Longest(from, to time.Time) (both, neither time.Duration, errs int) {
	w.mu.Lock()
	defer w.mu.Unlock()
	var bothStart, neitherStart time.Time
	for _, s := range w.samples {
		if s.at.Before(from) || s.at.After(to) {
			continue
		}
		if s.err != nil {
			errs++
			continue
		}
		both = max(both, run(&bothStart, s.both, s.at))
		neither = max(neither, run(&neitherStart, s.neither, s.at))
	}
	return both, neither, errs
}

// run extends or ends a run of true samples and returns its length so far.
func run(start *time.Time, on bool, at time.Time) time.Duration {
	if !on {
		*start = time.Time{}
		return 0
	}
	if start.IsZero() {
		*start = at
		return 0
	}
	return at.Sub(*start)
}

// Stop ends the sampling.
func (w *VIPWatch) Stop() {
	w.cancel()
	<-w.done
}

// LogSize is the current size of the daemon's log, a mark for Transitions.
func (d *Daemon) LogSize() int64 {
	fi, err := os.Stat(d.Log)
	if err != nil {
		return 0
	}
	return fi.Size()
}

// Transitions counts the group transitions the daemon logged after the
// log mark (LogSize), and lists them ("BACKUP->MASTER").
func (d *Daemon) Transitions(mark int64) (int, []string) {
	b, err := os.ReadFile(d.Log)
	if err != nil || int64(len(b)) < mark {
		return 0, nil
	}
	var list []string
	for _, line := range strings.Split(string(b[mark:]), "\n") {
		if !strings.Contains(line, " msg=transition ") {
			continue
		}
		from, to := field(line, "from"), field(line, "to")
		list = append(list, from+"->"+to)
	}
	return len(list), list
}

// MasterReasons lists, after the log mark, why the VRRP instance named
// instance became MASTER each time (the engine's transition reasons, e.g.
// "master down timer expired" or "sync group: inside became MASTER").
func (d *Daemon) MasterReasons(mark int64, instance string) []string {
	b, err := os.ReadFile(d.Log)
	if err != nil || int64(len(b)) < mark {
		return nil
	}
	var out []string
	for _, line := range strings.Split(string(b[mark:]), "\n") {
		if strings.Contains(line, ` msg="vrrp instance transition" `) && field(line, "instance") == instance &&
			field(line, "to_state") == "MASTER" {
			out = append(out, field(line, "reason"))
		}
	}
	return out
}

// field returns the value of key=value in a text log line (unquoted).
func field(line, key string) string {
	i := strings.Index(line, " "+key+"=")
	if i < 0 {
		return ""
	}
	v := line[i+len(key)+2:]
	if strings.HasPrefix(v, `"`) {
		if j := strings.IndexByte(v[1:], '"'); j >= 0 {
			return v[1 : j+1]
		}
	}
	if j := strings.IndexByte(v, ' '); j >= 0 {
		v = v[:j]
	}
	return v
}

// Freeze stops (SIGSTOP) or resumes (SIGCONT) the daemon's process, as a
// node stalled by its hypervisor or a storage hang would be.
func (d *Daemon) Freeze(stop bool) error {
	d.mu.Lock()
	cmd := d.cmd
	d.mu.Unlock()
	if cmd == nil || cmd.Process == nil {
		return fmt.Errorf("%s: not started", d.Name)
	}
	sig := syscall.SIGCONT
	if stop {
		sig = syscall.SIGSTOP
	}
	return cmd.Process.Signal(sig)
}

// SlowSync limits what fw n sends on its sync link to rate bytes per
// second (excess dropped, as a congested or lossy link would; FTFW must
// recover it); rate 0 lifts the limit.
func (l *Lab) SlowSync(n int, rate int) error {
	rs := "table inet fwpair-slow {}\ndelete table inet fwpair-slow\n"
	if rate > 0 {
		rs += fmt.Sprintf(`table inet fwpair-slow {
	chain out {
		type filter hook output priority -400; policy accept;
		oifname "eth2" limit rate over %d bytes/second drop
	}
}
`, rate)
	}
	return l.FW(n).LoadRuleset(rs)
}
