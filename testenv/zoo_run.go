package testenv

import (
	"context"
	"fmt"
	"net/netip"
	"strings"
	"time"
)

// ZooOptions tunes RunZoo.
type ZooOptions struct {
	// Bin holds fwpaird and fwpairctl; Dir receives sockets and logs.
	Bin, Dir string
	// DirectInject selects the mode (false: external cache committed on
	// takeover).
	DirectInject bool
	// Logf, when set, receives progress lines.
	Logf func(format string, args ...any)
}

// ZooReport is what RunZoo saw. Problems lists every broken promise;
// empty means every connection survived every failover.
type ZooReport struct {
	// Flows is how many zoo flows fw1 held before the first failover,
	// Missing those of them fw2 lacked (table to table, IPv6 included).
	Flows   int
	Missing []string
	// Repair is how long the consistency check took to bring back an
	// entry deleted on fw2 (direct inject only; 0 when not measured).
	Repair time.Duration
	// Table is the kinds × failovers table (kept/opened per kind, invalid
	// drops per firewall).
	Table    string
	Problems []string
	Duration time.Duration
}

// zooKind is one kind of connection and how to tell it survived.
type zooKind struct {
	name   string
	opened int
	// kept waits for traffic after since and returns how many flows of
	// the kind got some, and how many ended with an error.
	kept func(since time.Time) (kept, reset int)
}

// RunZoo runs the traffic zoo on lab, which must have been built with
// ZooRuleset: it shortens the firewalls' conntrack timeouts (ZooTimeouts),
// adds IPv6, starts fwpaird on both firewalls, opens one of each kind of
// connection (TCP from the inside, TCP through the port forward, idle TCP,
// a long-lived UDP flow where only the outside talks, ICMP echo, IPv6
// TCP), ages them beyond their timeouts, compares the tables, times a
// consistency-check repair (direct inject), then runs crash, failback,
// cable pull, failback and graceful stop and checks every kind after
// each. It returns an error when the run could not be carried out.
func RunZoo(lab *Lab, opts ZooOptions) (rep *ZooReport, err error) {
	start := time.Now()
	rep = &ZooReport{}
	logf := opts.Logf
	if logf == nil {
		logf = func(string, ...any) {}
	}
	var closers []func()
	defer func() {
		for i := len(closers) - 1; i >= 0; i-- {
			closers[i]()
		}
		rep.Duration = time.Since(start)
	}()
	for _, fw := range []*NS{lab.FW1, lab.FW2} {
		for _, s := range ZooTimeouts {
			if err := fw.Sysctl(s[0], s[1]); err != nil {
				return rep, err
			}
		}
	}
	if err := lab.addIPv6ViaFW1(); err != nil {
		return rep, err
	}
	direct := opts.DirectInject
	c, err := StartCluster(lab, ClusterOptions{Bin: opts.Bin, Dir: opts.Dir, Sessions: 30, DirectInject: &direct})
	if err != nil {
		return rep, err
	}
	closers = append(closers, c.Close)

	inside, err := StartEchoServer(lab.Client, netip.AddrPortFrom(ClientAddr.Addr(), InsidePort))
	if err != nil {
		return rep, err
	}
	closers = append(closers, inside.Close)
	pf, err := OpenSessions(lab.Server, netip.AddrPortFrom(VIP1.Addr(), PortForwardPort), 20, 100*time.Millisecond)
	if err != nil {
		return rep, err
	}
	closers = append(closers, pf.Close)
	idle, err := OpenSessions(lab.Client, netip.AddrPortFrom(ServerAddr.Addr(), EchoPort), 5, 4*time.Second)
	if err != nil {
		return rep, err
	}
	closers = append(closers, idle.Close)
	stream, err := StartUDPStream(lab.Server, lab.Client, netip.AddrPortFrom(ServerAddr.Addr(), StreamPort), 250*time.Millisecond)
	if err != nil {
		return rep, err
	}
	closers = append(closers, stream.Close)
	const pingID = 0x4242
	ping, err := StartPinger(lab.Client, ServerAddr.Addr(), pingID, 200*time.Millisecond)
	if err != nil {
		return rep, err
	}
	closers = append(closers, ping.Close)
	echo6, err := StartEchoServer(lab.Server, netip.AddrPortFrom(ServerAddr6.Addr(), EchoPort))
	if err != nil {
		return rep, err
	}
	closers = append(closers, echo6.Close)
	v6, err := OpenSessions(lab.Client, netip.AddrPortFrom(ServerAddr6.Addr(), EchoPort), 5, 100*time.Millisecond)
	if err != nil {
		return rep, err
	}
	closers = append(closers, v6.Close)

	// The node's own traffic: SSH to fw1's address, which must not be
	// replicated (it terminates on fw1 and cannot move).
	ssh, err := StartEchoServer(lab.FW1, netip.AddrPortFrom(FWAddrs[0][0].Addr(), 22))
	if err != nil {
		return rep, err
	}
	closers = append(closers, ssh.Close)
	local, err := OpenSessions(lab.Client, netip.AddrPortFrom(FWAddrs[0][0].Addr(), 22), 2, 500*time.Millisecond)
	if err != nil {
		return rep, err
	}
	closers = append(closers, local.Close)

	sessionsKind := func(name string, ss *Sessions, wait time.Duration) zooKind {
		return zooKind{name: name, opened: len(ss.list), kept: func(since time.Time) (int, int) {
			v := ss.WaitKept(since, wait)
			return v.Kept, v.Reset
		}}
	}
	one := func(ok bool) int {
		if ok {
			return 1
		}
		return 0
	}
	kinds := []zooKind{
		sessionsKind("tcp-inside", c.Sessions, 10*time.Second),
		sessionsKind("tcp-portforward", pf, 10*time.Second),
		sessionsKind("tcp-idle", idle, 12*time.Second),
		{name: "udp-long", opened: 1, kept: func(since time.Time) (int, int) { return one(stream.WaitKept(since, 5*time.Second)), 0 }},
		{name: "icmp", opened: 1, kept: func(since time.Time) (int, int) { return one(ping.WaitKept(since, 5*time.Second)), 0 }},
	}

	// Age every flow beyond its (shortened) timeout, checking they live.
	logf("ageing the flows beyond their conntrack timeouts (25 s)")
	for aged := time.Now().Add(25 * time.Second); time.Now().Before(aged); time.Sleep(time.Second) {
		for _, k := range kinds {
			if n, r := k.kept(time.Now().Add(-5 * time.Second)); n != k.opened || r != 0 {
				return rep, fmt.Errorf("%s before any failover: %d/%d flowing, %d reset\n%s", k.name, n, k.opened, r, c.Diagnose())
			}
		}
	}
	if v := v6.Check(time.Now().Add(-time.Second)); v.Kept != v.Total {
		return rep, fmt.Errorf("tcp-ipv6 before any failover: %v", v)
	}

	// Table to table: every zoo flow of fw1 (the MASTER) is on fw2.
	zooFlow := func(tuple string) bool {
		return strings.Contains(tuple, fmt.Sprintf(" %d", EchoPort)) || strings.Contains(tuple, fmt.Sprintf(" %d", PortForwardPort)) ||
			strings.Contains(tuple, fmt.Sprintf(" %d", StreamPort)) || (direct && strings.Contains(tuple, fmt.Sprintf("id=%d", pingID)))
	}
	for deadline := time.Now().Add(5 * time.Second); ; time.Sleep(100 * time.Millisecond) {
		master, err := allTuples(lab.FW1)
		if err != nil {
			return rep, err
		}
		var peer map[string]bool
		if direct {
			peer, err = allTuples(lab.FW2)
		} else {
			peer, err = ExternalTuples(c.Nodes[1])
		}
		if err != nil {
			return rep, err
		}
		rep.Flows = len(Missing(master, nil, zooFlow))
		rep.Missing = Missing(master, peer, zooFlow)
		if len(rep.Missing) == 0 || time.Now().After(deadline) {
			break
		}
	}
	logf("table to table: %d zoo flows on fw1, %d missing on fw2", rep.Flows, len(rep.Missing))
	sshTo := fmt.Sprintf("%s 22", FWAddrs[0][0].Addr())
	ownOnPeer := func(tuple string) bool { return strings.HasSuffix(tuple, sshTo) }
	if master, err := allTuples(lab.FW1); err != nil {
		return rep, err
	} else if n := len(Missing(master, nil, ownOnPeer)); n != len(local.list) {
		return rep, fmt.Errorf("fw1 holds %d SSH sessions to itself, want %d", n, len(local.list))
	}
	var peer map[string]bool
	if direct {
		peer, err = allTuples(lab.FW2)
	} else {
		peer, err = ExternalTuples(c.Nodes[1])
	}
	if err != nil {
		return rep, err
	}
	if own := Missing(peer, nil, ownOnPeer); len(own) > 0 {
		rep.Problems = append(rep.Problems, fmt.Sprintf("SSH sessions to fw1 itself were replicated to fw2: %v", own))
	}
	local.Close()
	if len(rep.Missing) != 0 {
		rep.Problems = append(rep.Problems, fmt.Sprintf("flows of fw1 missing on fw2 before the first failover:\n%s\n%s", strings.Join(rep.Missing, "\n"), c.Diagnose()))
	}
	v6.Close() // routed through fw1 only: not part of the failovers

	if direct {
		took, err := deleteAndTimeRepair(lab, PortForwardPort)
		if err != nil {
			rep.Problems = append(rep.Problems, fmt.Sprintf("consistency check: %v\n%s", err, c.Diagnose()))
		} else {
			rep.Repair = took
			logf("consistency check: an entry deleted on fw2 was back after %s", took.Round(10*time.Millisecond))
		}
	}

	type step struct {
		name string
		run  func() error
	}
	result := func(f Fault, n int) func() error {
		return func() error { _, err := c.Run(f, n); return err }
	}
	steps := []step{
		{"crash fw1", result(Crash, 1)},
		{"failback: restart fw1", result(Restart, 1)},
		{"cable pull fw1 eth0", result(LinkDown, 1)},
		{"failback: cable back", func() error {
			at := time.Now()
			if err := lab.LinkUp(lab.FW1, "eth0"); err != nil {
				return err
			}
			if _, err := c.Nodes[0].WaitTransition("MASTER", at, 15*time.Second); err != nil {
				return err
			}
			return waitVIPs(lab, 1, 5*time.Second)
		}},
		{"graceful stop fw1", result(Graceful, 1)},
	}
	var table strings.Builder
	fmt.Fprintf(&table, "%-24s", "failover")
	for _, k := range kinds {
		fmt.Fprintf(&table, " %16s", k.name)
	}
	table.WriteString("  invalid drops fw1/fw2\n")
	for i, s := range steps {
		if i == 2 {
			// Let the flows outlive their timeouts again under the MASTER
			// that came back, before the next failover.
			logf("ageing the flows again under the returned MASTER (12 s)")
			for end := time.Now().Add(12 * time.Second); time.Now().Before(end); {
				time.Sleep(time.Second)
			}
		}
		logf("%s", s.name)
		if err := s.run(); err != nil {
			rep.Table = table.String()
			return rep, fmt.Errorf("%s: %w", s.name, err)
		}
		since := time.Now().Add(200 * time.Millisecond)
		fmt.Fprintf(&table, "%-24s", s.name)
		lost := false
		for _, k := range kinds {
			kept, reset := k.kept(since)
			fmt.Fprintf(&table, " %16s", fmt.Sprintf("%d/%d", kept, k.opened))
			if kept != k.opened || reset != 0 {
				lost = true
				rep.Problems = append(rep.Problems, fmt.Sprintf("%s: %s kept %d/%d, reset %d", s.name, k.name, kept, k.opened, reset))
			}
		}
		var drops [2]int
		for n := range 2 {
			if drops[n], err = InvalidDrops(lab.FW(n + 1)); err != nil {
				return rep, err
			}
		}
		fmt.Fprintf(&table, "  %d/%d\n", drops[0], drops[1])
		if drops[0]+drops[1] != 0 {
			lost = true
			rep.Problems = append(rep.Problems, fmt.Sprintf("%s: invalid drops fw1 %d, fw2 %d", s.name, drops[0], drops[1]))
		}
		if lost {
			rep.Problems = append(rep.Problems, c.Diagnose()+zooDiagnose(c))
		}
	}
	rep.Table = table.String()
	return rep, nil
}

// allTuples lists the IPv4 and IPv6 tuples of a firewall's table.
func allTuples(ns *NS) (map[string]bool, error) {
	v4, err := ConntrackTuples(ns)
	if err != nil {
		return nil, err
	}
	v6, err := ConntrackTuples(ns, "-f", "ipv6")
	if err != nil {
		return nil, err
	}
	for k := range v6 {
		v4[k] = true
	}
	return v4, nil
}

// deleteAndTimeRepair deletes one replicated entry to dport from fw2's
// kernel (conntrack -D) and waits for the consistency check to bring it
// back.
func deleteAndTimeRepair(lab *Lab, dport int) (time.Duration, error) {
	peer, err := ConntrackTuples(lab.FW2, "-p", "tcp", "--dport", fmt.Sprint(dport))
	if err != nil {
		return 0, err
	}
	var victim []string
	for k := range peer {
		victim = strings.Fields(k) // proto src sport dst dport
		break
	}
	if len(victim) != 5 {
		return 0, fmt.Errorf("no entry to port %d on fw2", dport)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	at := time.Now()
	if out, err := lab.FW2.Run(ctx, "conntrack", "-D", "-p", "tcp", "-s", victim[1], "--sport", victim[2], "-d", victim[3], "--dport", victim[4]); err != nil {
		return 0, fmt.Errorf("conntrack -D: %v: %s", err, out)
	}
	key := strings.Join(victim, " ")
	for deadline := at.Add(30 * time.Second); time.Now().Before(deadline); time.Sleep(50 * time.Millisecond) {
		now, err := ConntrackTuples(lab.FW2, "-p", "tcp", "--dport", fmt.Sprint(dport))
		if err != nil {
			return 0, err
		}
		if now[key] {
			return time.Since(at), nil
		}
	}
	return 0, fmt.Errorf("entry %s deleted on fw2 not repaired within 30s", key)
}

// zooDiagnose adds what a lost zoo flow needs to be explained: each
// firewall's entries of the UDP stream and the end of each daemon's log.
func zooDiagnose(c *Cluster) string {
	var b strings.Builder
	for i, d := range c.Nodes {
		out, err := c.Lab.FW(i+1).Run(context.Background(), "conntrack", "-L", "-p", "udp")
		fmt.Fprintf(&b, "fw%d UDP entries (%v):\n", i+1, err)
		for line := range strings.Lines(out) {
			if strings.Contains(line, fmt.Sprintf("=%d ", StreamPort)) {
				b.WriteString("  " + line)
			}
		}
		fmt.Fprintf(&b, "fw%d log tail:\n%s\n", i+1, d.LogTail(8000))
	}
	return b.String()
}
