package testenv

import (
	"fmt"
	"net/netip"
	"time"

	"github.com/mdlayher/netlink"
	"github.com/ti-mo/conntrack"
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
// conntrack entries into fw2 through ctnetlink, moves both VIPs to fw2 and
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

// CopyConntrack copies every conntrack entry of src into dst through
// ctnetlink (dump, then create), the way a sync daemon's commit would.
func CopyConntrack(src, dst *NS) (int, error) {
	sc, err := conntrack.Dial(&netlink.Config{NetNS: src.FD()})
	if err != nil {
		return 0, fmt.Errorf("ctnetlink in %s: %w", src.Name, err)
	}
	defer sc.Close()
	dc, err := conntrack.Dial(&netlink.Config{NetNS: dst.FD()})
	if err != nil {
		return 0, fmt.Errorf("ctnetlink in %s: %w", dst.Name, err)
	}
	defer dc.Close()
	flows, err := sc.Dump(nil)
	if err != nil {
		return 0, fmt.Errorf("dump %s: %w", src.Name, err)
	}
	n := 0
	for _, f := range flows {
		// The kernel refuses EXPECTED and ignores NAT bits on create; the
		// reply tuple of a NATed flow would need CTA_NAT_*, which the
		// library cannot send, so NATed flows are left out here.
		if f.Status&conntrack.StatusNATMask != 0 {
			continue
		}
		c := conntrack.Flow{
			TupleOrig:  f.TupleOrig,
			TupleReply: f.TupleReply,
			Timeout:    f.Timeout,
			Status:     f.Status &^ conntrack.StatusExpected,
			ProtoInfo:  f.ProtoInfo,
			Mark:       f.Mark,
			Zone:       f.Zone,
		}
		if err := dc.Create(c); err != nil {
			return n, fmt.Errorf("create %v in %s: %w", f.TupleOrig, dst.Name, err)
		}
		n++
	}
	return n, nil
}
