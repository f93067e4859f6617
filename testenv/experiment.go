package testenv

import (
	"context"
	"fmt"
	"net/netip"
	"strings"
	"time"
)

// EchoPort is the TCP port of the lab's echo server.
const EchoPort = 7000

// ExperimentResult is the outcome of one manual VIP move.
type ExperimentResult struct {
	CopiedState bool
	// Copied is the number of conntrack entries copied fw1 -> fw2.
	Copied  int
	Verdict Verdict
}

// MoveExperiment proves the lab is strict enough to judge a failover: it
// opens sessions client -> server through fw1, optionally copies fw1's
// conntrack entries into fw2 (CopyConntrack), moves both VIPs to fw2 and
// reports whether the sessions kept flowing. Without the state they must
// break (the strict ruleset drops mid-stream packets as INVALID); with it
// they must survive.
func MoveExperiment(l *Lab, sessions int, copyState bool, wait time.Duration) (ExperimentResult, error) {
	res := ExperimentResult{CopiedState: copyState}
	if err := l.PlaceVIPs(1); err != nil {
		return res, err
	}
	srv, err := StartEchoServer(l.Server, netip.AddrPortFrom(ServerAddr.Addr(), EchoPort))
	if err != nil {
		return res, err
	}
	defer srv.Close()
	ss, err := OpenSessions(l.Client, netip.AddrPortFrom(ServerAddr.Addr(), EchoPort), sessions, 20*time.Millisecond)
	if err != nil {
		return res, err
	}
	defer ss.Close()
	start := time.Now()
	if v := ss.WaitKept(start, 5*time.Second); v.Kept != v.Total {
		return res, fmt.Errorf("sessions not flowing through fw1 before the move: %v", v)
	}
	if copyState {
		n, err := CopyConntrack(l.FW1, l.FW2)
		if err != nil {
			return res, err
		}
		res.Copied = n
	}
	ss.ResetStalls()
	if err := l.PlaceVIPs(2); err != nil {
		return res, err
	}
	// Count only echoes clearly after the move: a packet already on its
	// way through fw1 while the neighbours were being repointed may still
	// come back, and would pass for a surviving session.
	moved := time.Now().Add(100 * time.Millisecond)
	res.Verdict = ss.WaitKept(moved, wait)
	return res, nil
}

// CopyConntrack copies every conntrack entry of src into dst, the way a
// sync daemon's commit would, with the conntrack tool as the independent
// oracle: `conntrack -L -o save` in src, each line created again with
// `conntrack -I` in dst. NATed flows are left out (their reply tuple
// would need the NAT bindings, which a plain create cannot carry), and
// the EXPECTED bit, which the kernel refuses on create, is dropped.
func CopyConntrack(src, dst *NS) (int, error) {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	out, err := src.Cmd(ctx, "conntrack", "-L", "-o", "save").Output()
	if err != nil {
		return 0, fmt.Errorf("conntrack -L in %s: %w", src.Name, err)
	}
	n := 0
	for line := range strings.Lines(string(out)) {
		args := strings.Fields(line)
		if len(args) == 0 || args[0] != "-A" {
			continue
		}
		args[0] = "-I"
		nat := false
		for i := 0; i+1 < len(args); i++ {
			if args[i] != "-u" {
				continue
			}
			var keep []string
			for st := range strings.SplitSeq(args[i+1], ",") {
				nat = nat || strings.HasSuffix(st, "NAT")
				if st != "EXPECTED" {
					keep = append(keep, st)
				}
			}
			args[i+1] = strings.Join(keep, ",")
		}
		if nat {
			continue
		}
		if out, err := dst.Run(ctx, "conntrack", args...); err != nil {
			return n, fmt.Errorf("conntrack %s in %s: %w: %s", strings.Join(args, " "), dst.Name, err, out)
		}
		n++
	}
	return n, nil
}
