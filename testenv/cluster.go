package testenv

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"time"
)

// ClusterOptions tunes a two-node fwpaird cluster in the lab.
type ClusterOptions struct {
	// Bin holds fwpaird and fwpairctl.
	Bin string
	// Dir receives sockets, logs and generated configs.
	Dir string
	// Configs are the node configs; empty means etc/node1.toml and
	// etc/node2.toml.
	Configs [2]string
	// NoSync starts the nodes from copies of the configs without [sync]
	// (the control run that must lose sessions).
	NoSync bool
	// Sessions is the number of long-lived TCP sessions (default 200).
	Sessions int
	// DirectInject, when set, overrides sync.direct_inject in copies of
	// the configs (false: external cache committed on takeover).
	DirectInject *bool
}

// Cluster is fwpaird running on both firewalls of a lab, with sessions and
// a probe through the VIPs.
type Cluster struct {
	Lab      *Lab
	Nodes    [2]*Daemon
	Sessions *Sessions
	Probe    *Probe

	opts  ClusterOptions
	echo  *EchoServer
	udp   *UDPEcho
	extra [2][]string
}

// StartCluster starts fwpaird on fw1 then fw2 and waits for the election
// (fw1 MASTER, fw2 BACKUP), then opens the sessions and the probe.
func StartCluster(l *Lab, opts ClusterOptions) (*Cluster, error) {
	if opts.Sessions == 0 {
		opts.Sessions = 200
	}
	c := &Cluster{Lab: l, opts: opts}
	for i := range 2 {
		cfg := opts.Configs[i]
		if cfg == "" {
			p, err := RepoFile(fmt.Sprintf("etc/node%d.toml", i+1))
			if err != nil {
				return nil, err
			}
			cfg = p
		}
		if opts.NoSync {
			stripped, err := withoutSync(cfg, opts.Dir, i+1)
			if err != nil {
				return nil, err
			}
			cfg = stripped
		} else if opts.DirectInject != nil {
			set, err := withDirectInject(cfg, opts.Dir, i+1, *opts.DirectInject)
			if err != nil {
				return nil, err
			}
			cfg = set
		}
		d, err := StartDaemon(l.FW(i+1), opts.Bin, fmt.Sprintf("fw%d", i+1), cfg, opts.Dir)
		if err != nil {
			c.Close()
			return nil, err
		}
		c.Nodes[i] = d
	}
	if _, err := c.Nodes[0].WaitGroupState("MASTER", 10*time.Second); err != nil {
		c.Close()
		return nil, fmt.Errorf("election: %w\n%s", err, c.Nodes[0].LogTail(3000))
	}
	if _, err := c.Nodes[1].WaitGroupState("BACKUP", 5*time.Second); err != nil {
		c.Close()
		return nil, fmt.Errorf("election: %w\n%s", err, c.Nodes[1].LogTail(3000))
	}
	var err error
	if c.echo, err = StartEchoServer(l.Server, netip.AddrPortFrom(ServerAddr.Addr(), EchoPort)); err != nil {
		c.Close()
		return nil, err
	}
	if c.udp, err = StartUDPEcho(l.Server, netip.AddrPortFrom(ServerAddr.Addr(), ProbePort)); err != nil {
		c.Close()
		return nil, err
	}
	if c.Probe, err = StartProbe(l.Client, netip.AddrPortFrom(ServerAddr.Addr(), ProbePort), 10*time.Millisecond); err != nil {
		c.Close()
		return nil, err
	}
	if !c.Probe.WaitReply(time.Now(), 5*time.Second) {
		c.Close()
		return nil, errors.New("probe gets no answer through the VIPs after the election")
	}
	if c.Sessions, err = OpenSessions(l.Client, netip.AddrPortFrom(ServerAddr.Addr(), EchoPort), opts.Sessions, 100*time.Millisecond); err != nil {
		c.Close()
		return nil, err
	}
	if v := c.Sessions.WaitKept(time.Now(), 10*time.Second); v.Kept != v.Total {
		diag := c.Diagnose()
		c.Close()
		return nil, fmt.Errorf("sessions not flowing before any failover: %v\n%s", v, diag)
	}
	return c, nil
}

// rewriteConfig writes edit(contents of path) to dir/name and returns
// that path: the node configs are varied on copies, never in etc/.
func rewriteConfig(path, dir, name string, edit func(string) (string, error)) (string, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return "", err
	}
	text, err := edit(string(b))
	if err != nil {
		return "", fmt.Errorf("%s: %w", path, err)
	}
	p := filepath.Join(dir, name)
	return p, os.WriteFile(p, []byte(text), 0o644)
}

// withoutSync writes a copy of a node config with the [sync] part removed.
func withoutSync(path, dir string, n int) (string, error) {
	return rewriteConfig(path, dir, fmt.Sprintf("node%d-nosync.toml", n), func(text string) (string, error) {
		var out []string
		skip := false
		for _, line := range strings.Split(text, "\n") {
			if t := strings.TrimSpace(line); strings.HasPrefix(t, "[") {
				skip = strings.HasPrefix(t, "[sync") || strings.HasPrefix(t, "[[sync")
			}
			if !skip {
				out = append(out, line)
			}
		}
		return strings.Join(out, "\n"), nil
	})
}

// withDirectInject writes a copy of a node config with sync.direct_inject set.
func withDirectInject(path, dir string, n int, on bool) (string, error) {
	return rewriteConfig(path, dir, fmt.Sprintf("node%d-inject-%v.toml", n, on), func(text string) (string, error) {
		if !strings.Contains(text, "\n[sync]\n") {
			return "", fmt.Errorf("no [sync] table")
		}
		return strings.Replace(text, "\n[sync]\n", fmt.Sprintf("\n[sync]\ndirect_inject = %v\n", on), 1), nil
	})
}

// Close stops everything the cluster started (not the lab).
func (c *Cluster) Close() {
	if c.Sessions != nil {
		c.Sessions.Close()
	}
	if c.Probe != nil {
		c.Probe.Close()
	}
	if c.echo != nil {
		c.echo.Close()
	}
	if c.udp != nil {
		c.udp.Close()
	}
	for _, d := range c.Nodes {
		if d != nil && d.Running() {
			d.Kill()
		}
	}
}

// ScenarioResult is what one failover did.
type ScenarioResult struct {
	Name string
	// Holder is the firewall (1 or 2) holding both VIPs after settling;
	// 0 if none or split.
	Holder int
	// Split is true if both firewalls held a VIP after settling.
	Split    bool
	Gap      time.Duration
	Verdict  Verdict
	Takeover time.Duration // event to new MASTER reporting its VIPs up
	// From the new MASTER's last transition.
	CommitEntries int
	CommitSeconds float64
	VIPsSeconds   float64
	// DirectInject: the new MASTER had the states in its kernel already.
	DirectInject bool
}

// Fault is a way to take the MASTER down.
type Fault string

// The scenarios of the demo and the end-to-end tests.
const (
	// Crash: the node's links go down and its fwpaird is SIGKILLed.
	Crash Fault = "crash"
	// Graceful: SIGTERM (priority-0 adverts, VIPs removed).
	Graceful Fault = "graceful"
	// Restart: the crashed node's links come back and its fwpaird is
	// restarted; with preemption it takes the VIPs back.
	Restart Fault = "restart"
	// LinkDown: only the MASTER's eth0 link goes down (interface
	// tracking); its fwpaird keeps running.
	LinkDown Fault = "link-down"
)

// Run applies fault to node n (1 or 2), waits for the other node (or, for
// Restart, node n) to be MASTER, and measures the probe gap and sessions.
func (c *Cluster) Run(fault Fault, n int) (ScenarioResult, error) {
	res := ScenarioResult{Name: fmt.Sprintf("%s fw%d", fault, n)}
	node := c.Nodes[n-1]
	winner := c.Nodes[2-n]
	if fault == Restart {
		winner = node
	}
	c.Sessions.ResetStalls()
	at := time.Now()
	switch fault {
	case Crash:
		// Killed first, so it cannot react to its links going down.
		node.Kill()
		for _, ifname := range []string{"eth0", "eth1", "eth2"} {
			if err := c.Lab.LinkDown(node.NS, ifname); err != nil {
				return res, err
			}
		}
	case Graceful:
		if err := node.Stop(); err != nil {
			return res, fmt.Errorf("SIGTERM fw%d: %w\n%s", n, err, node.LogTail(2000))
		}
	case LinkDown:
		if err := c.Lab.LinkDown(node.NS, "eth0"); err != nil {
			return res, err
		}
	case Restart:
		for _, ifname := range []string{"eth0", "eth1", "eth2"} {
			if err := c.Lab.LinkUp(node.NS, ifname); err != nil {
				return res, err
			}
		}
		if node.Running() {
			return res, fmt.Errorf("fw%d is still running", n)
		}
		if err := node.Start(c.extra[n-1]...); err != nil {
			return res, err
		}
	default:
		return res, fmt.Errorf("unknown fault %q", fault)
	}
	st, err := winner.WaitTransition("MASTER", at, 15*time.Second)
	if err != nil {
		return res, fmt.Errorf("%s: %w\n%s", res.Name, err, winner.LogTail(3000))
	}
	if err := waitVIPs(c.Lab, winnerIndex(c, winner), 5*time.Second); err != nil {
		return res, fmt.Errorf("%s: %w", res.Name, err)
	}
	res.Takeover = time.Since(at)
	if t := st.LastTransition; t != nil {
		res.CommitEntries, res.CommitSeconds, res.VIPsSeconds = t.CommitEntries, t.CommitSeconds, t.VIPsSeconds
	}
	res.DirectInject = st.Sync != nil && st.Sync.DirectInject
	// Every session must echo after the takeover, counting only echoes
	// that come once the first gratuitous ARP has moved the neighbours
	// (not a packet still passing through the old MASTER).
	res.Verdict = c.Sessions.WaitKept(time.Now().Add(200*time.Millisecond), 10*time.Second)
	c.Probe.WaitReply(time.Now(), 3*time.Second)
	res.Gap, _ = c.Probe.Gap(at, time.Now())
	e0, e1, err := c.Lab.VIPHolders()
	if err != nil {
		return res, err
	}
	res.Split = len(e0) > 1 || len(e1) > 1
	if len(e0) == 1 && len(e1) == 1 && e0[0] == e1[0] {
		res.Holder = e0[0]
	}
	return res, nil
}

// Diagnose describes both nodes for a failure message: sync counters
// that matter, and how many of the sessions' flows each kernel holds.
func (c *Cluster) Diagnose() string {
	var b strings.Builder
	for i, d := range c.Nodes {
		fmt.Fprintf(&b, "fw%d: ", i+1)
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		st, err := d.Client().Stats(ctx)
		cancel()
		if err != nil {
			fmt.Fprintf(&b, "stats: %v; ", err)
		} else {
			for _, k := range []string{"injected", "inject_failed", "applied", "events_new", "events_update", "events_destroy", "events_own", "events_filtered", "netlink_overruns", "lost", "retransmits"} {
				fmt.Fprintf(&b, "%s=%d ", k, st.Sync[k])
			}
			for k, v := range st.Sync {
				if strings.HasPrefix(k, "malformed_") || strings.HasPrefix(k, "inject_failed_") {
					fmt.Fprintf(&b, "%s=%d ", k, v)
				}
			}
		}
		out, err := c.Lab.FW(i+1).Run(context.Background(), "conntrack", "-L", "-p", "tcp", "--dport", fmt.Sprint(EchoPort))
		fmt.Fprintf(&b, "kernel sessions=%d (%v)\n", strings.Count(out, "\n"), err)
	}
	return b.String()
}

func winnerIndex(c *Cluster, d *Daemon) int {
	if c.Nodes[0] == d {
		return 1
	}
	return 2
}

// waitVIPs waits until firewall n holds both VIPs and the other holds none.
func waitVIPs(l *Lab, n int, timeout time.Duration) error {
	end := time.Now().Add(timeout)
	var e0, e1 []int
	var err error
	for time.Now().Before(end) {
		e0, e1, err = l.VIPHolders()
		if err == nil && len(e0) == 1 && len(e1) == 1 && e0[0] == n && e1[0] == n {
			return nil
		}
		time.Sleep(10 * time.Millisecond)
	}
	return fmt.Errorf("VIPs not settled on fw%d: eth0 VIP on %v, eth1 VIP on %v (%v)", n, e0, e1, err)
}
