// Command fwpair-lab builds the reference lab in network namespaces and
// runs the live failover demo (`make lab`): fwpaird on both firewalls, 200
// long-lived TCP sessions and a 10 ms probe through the VIPs, then a crash,
// a failback and a graceful stop; then the traffic zoo (one of each kind of
// connection through a NAT gateway pair, kept per kind and failover). It
// needs root.
package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/signal"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"github.com/fwpair/fwpair/testenv"
)

const prefix = "fwdemo"

func main() {
	if os.Geteuid() != 0 {
		fmt.Fprintln(os.Stderr, "fwpair-lab: needs root (network namespaces, nftables, conntrack)")
		os.Exit(2)
	}
	if stale := testenv.RemoveStale(prefix); len(stale) > 0 {
		fmt.Printf("removed %d namespaces left by an interrupted run\n", len(stale))
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	errc := make(chan error, 1)
	var cleanup []func()
	go func() { errc <- demo(&cleanup) }()
	var err error
	select {
	case err = <-errc:
	case <-ctx.Done():
		err = errors.New("interrupted")
	}
	for i := len(cleanup) - 1; i >= 0; i-- {
		cleanup[i]()
	}
	testenv.RemoveStale(prefix)
	if err != nil {
		fmt.Fprintln(os.Stderr, "fwpair-lab:", err)
		os.Exit(1)
	}
}

const topology = `topology (each box a network namespace, built for this run):

  client 192.168.0.10 ── lan0 ──┬── eth0 fw1 eth1 ──┬── lan1 ── server 192.168.1.10
   (gateway VIP .0.100)         └── eth0 fw2 eth1 ──┘       (gateway VIP .1.100)
                         fw1 eth2 10.0.0.1 ══ sync link ══ 10.0.0.2 fw2 eth2
  strict nftables ruleset (etc/fwpair.nft), nf_conntrack_tcp_loose=0
  fwpaird on fw1 (etc/node1.toml, priority 150) and fw2 (etc/node2.toml, priority 100)
`

func demo(cleanup *[]func()) error {
	start := time.Now()
	fmt.Print(topology)
	fmt.Println()

	// 1. Why state matters: a bare VIP move, without and with the state.
	fmt.Println("== 1. the lab is strict: moving the VIPs by hand")
	for _, copyState := range []bool{false, true} {
		lab, err := testenv.BuildLab(testenv.LabOptions{Prefix: prefix})
		if err != nil {
			return err
		}
		res, err := testenv.MoveExperiment(lab, 20, copyState, 2*time.Second)
		lab.Close()
		if err != nil {
			return err
		}
		label := "without conntrack state"
		if copyState {
			label = fmt.Sprintf("after copying %d entries", res.Copied)
		}
		fmt.Printf("   %-28s %v\n", label, res.Verdict)
	}
	fmt.Println()

	// 2. The product: fwpaird on both nodes.
	dir, err := os.MkdirTemp("", "fwpair-lab-")
	if err != nil {
		return err
	}
	*cleanup = append(*cleanup, func() { os.RemoveAll(dir) })
	bin, err := testenv.Binaries(dir)
	if err != nil {
		return err
	}
	lab, err := testenv.BuildLab(testenv.LabOptions{Prefix: prefix})
	if err != nil {
		return err
	}
	*cleanup = append(*cleanup, func() { lab.Close() })
	fmt.Println("== 2. fwpaird on fw1 and fw2: election, then 200 TCP sessions and a 10 ms probe through the VIPs")
	c, err := testenv.StartCluster(lab, testenv.ClusterOptions{Bin: bin, Dir: dir, Sessions: 200})
	if err != nil {
		return err
	}
	*cleanup = append(*cleanup, c.Close)
	fmt.Printf("   fw1 MASTER, fw2 BACKUP; %d sessions flowing\n\n", c.Sessions.Check(time.Now().Add(-time.Second)).Total)

	scenarios := []struct {
		title string
		fault testenv.Fault
		node  int
	}{
		{"fw1 dies: links down, fwpaird SIGKILLed (crash failover)", testenv.Crash, 1},
		{"fw1 comes back: links up, fwpaird restarted (failback with preemption)", testenv.Restart, 1},
		{"SIGTERM the MASTER fw1 (graceful failover)", testenv.Graceful, 1},
	}
	allKept := true
	for i, s := range scenarios {
		res, err := c.Run(s.fault, s.node)
		if err != nil {
			return err
		}
		fmt.Printf("== %d. %s\n", i+3, s.title)
		printResult(res)
		if res.Verdict.Kept != res.Verdict.Total || res.Verdict.Reset != 0 || res.Split {
			allKept = false
		}
	}
	c.Close() // the v3 crash and the zoo run on labs of their own
	lab.Close()
	// The same crash with VRRPv3 at 50 ms adverts, on a fresh pair.
	res, err := crashV3(cleanup, bin, dir)
	if err != nil {
		return err
	}
	fmt.Printf("== %d. VRRPv3, 50 ms adverts: fw1 dies (crash failover, compare with 3.)\n", len(scenarios)+3)
	printResult(res)
	if res.Verdict.Kept != res.Verdict.Total || res.Verdict.Reset != 0 || res.Split {
		allKept = false
	}
	zooOK, err := zoo(bin, dir, cleanup)
	if err != nil {
		return err
	}
	fmt.Printf("lab run took %s\n", time.Since(start).Round(time.Second))
	if !allKept || !zooOK {
		fmt.Println("verdict: FAIL: connections were lost in a failover (logs in", dir+")")
		return errors.New("connections lost")
	}
	fmt.Println("verdict: PASS: every connection survived every failover")
	return nil
}

// zoo runs the traffic zoo (testenv.RunZoo) on a lab of its own with the
// NAT gateway ruleset and prints the kinds table.
func zoo(bin, dir string, cleanup *[]func()) (bool, error) {
	fmt.Println("== 7. the traffic zoo: one of each kind of connection through a NAT gateway pair")
	fmt.Println("   etc/fwpair-nat.nft (masquerade to the outside VIP, port forward VIP:8080 -> inside host),")
	fmt.Println("   conntrack timeouts shortened in the firewalls (UDP stream 10 s, TCP established 20 s)")
	ruleset, err := testenv.ZooRuleset()
	if err != nil {
		return false, err
	}
	lab, err := testenv.BuildLab(testenv.LabOptions{Prefix: prefix, Ruleset: ruleset})
	if err != nil {
		return false, err
	}
	*cleanup = append(*cleanup, func() { lab.Close() })
	zdir, err := os.MkdirTemp(dir, "zoo-")
	if err != nil {
		return false, err
	}
	rep, err := testenv.RunZoo(lab, testenv.ZooOptions{Bin: bin, Dir: zdir, DirectInject: true,
		Logf: func(format string, args ...any) { fmt.Printf("   "+format+"\n", args...) }})
	if err != nil {
		return false, err
	}
	for _, line := range strings.Split(strings.TrimRight(rep.Table, "\n"), "\n") {
		fmt.Println("   " + line)
	}
	for _, p := range rep.Problems {
		fmt.Println("   problem:", p)
	}
	fmt.Println()
	return len(rep.Problems) == 0, nil
}

// crashV3 starts fwpaird with VRRPv3 at 50 ms adverts (real-time VRRP
// threads) on a lab of its own and crashes the MASTER.
func crashV3(cleanup *[]func(), bin, parent string) (testenv.ScenarioResult, error) {
	dir := filepath.Join(parent, "vrrpv3") // logs and sockets apart from the v2 pair's
	if err := os.Mkdir(dir, 0o755); err != nil {
		return testenv.ScenarioResult{}, err
	}
	var cfgs [2]string
	for i := range 2 {
		p, err := testenv.RepoFile(fmt.Sprintf("etc/node%d.toml", i+1))
		if err != nil {
			return testenv.ScenarioResult{}, err
		}
		if cfgs[i], err = testenv.WithVRRPv3(p, dir, i+1, 50*time.Millisecond, 50); err != nil {
			return testenv.ScenarioResult{}, err
		}
	}
	lab, err := testenv.BuildLab(testenv.LabOptions{Prefix: prefix})
	if err != nil {
		return testenv.ScenarioResult{}, err
	}
	*cleanup = append(*cleanup, func() { lab.Close() })
	c, err := testenv.StartCluster(lab, testenv.ClusterOptions{Bin: bin, Dir: dir, Sessions: 200, Configs: cfgs})
	if err != nil {
		return testenv.ScenarioResult{}, err
	}
	*cleanup = append(*cleanup, c.Close)
	return c.Run(testenv.Crash, 1)
}

func printResult(r testenv.ScenarioResult) {
	holder := "none"
	if r.Holder != 0 {
		holder = fmt.Sprintf("fw%d", r.Holder)
	}
	if r.Split {
		holder = "BOTH (split)"
	}
	rows := [][2]string{
		{"VIPs held by", holder},
		{"takeover (fault to VIPs up)", ms(r.Takeover)},
		{"decision to VIPs up", fmt.Sprintf("%.1f ms", r.VIPsSeconds*1000)},
		{"traffic gap (10 ms probe)", ms(r.Gap)},
		{"entries committed", committed(r)},
		{"longest session stall", ms(r.Verdict.MaxStall)},
	}
	for _, row := range rows {
		fmt.Printf("   %-30s %s\n", row[0], row[1])
	}
	fmt.Printf("   sessions kept: %d/%d, reset: %d\n", r.Verdict.Kept, r.Verdict.Total, r.Verdict.Reset)
	if r.Verdict.Stalled > 0 {
		fmt.Printf("   %s\n", strings.TrimSpace(fmt.Sprintf("stalled: %d", r.Verdict.Stalled)))
	}
	fmt.Println()
}

func committed(r testenv.ScenarioResult) string {
	if r.DirectInject {
		return "none needed: direct inject kept the states in the kernel"
	}
	return fmt.Sprintf("%d in %.1f ms", r.CommitEntries, r.CommitSeconds*1000)
}

func ms(d time.Duration) string { return fmt.Sprintf("%d ms", d.Milliseconds()) }
