package testenv

import (
	"context"
	"fmt"
	"net/netip"
	"testing"
	"time"

	"github.com/fwpair/fwpair/ctsync"
	"github.com/fwpair/fwpair/ctsync/ctnetlink"
)

// syntheticFlows returns n established TCP flows client LAN -> server LAN,
// as the MASTER's kernel would hold them.
func syntheticFlows(n int) []ctsync.Flow {
	flows := make([]ctsync.Flow, n)
	for i := range flows {
		flows[i] = ctsync.Flow{
			Key: ctsync.Key{Tuple: ctsync.Tuple{
				Src:     netip.AddrFrom4([4]byte{172, 16, byte(i >> 16), byte(i >> 8)}),
				Dst:     netip.AddrFrom4([4]byte{172, 17, 0, byte(i)}),
				SrcPort: uint16(10000 + i%50000),
				DstPort: 443,
				Proto:   6,
			}},
			Status:        0x8 | 0x4 | 0x2, // CONFIRMED | ASSURED | SEEN_REPLY
			Timeout:       3600,
			ProtoState:    3, // ESTABLISHED
			HasProtoState: true,
		}
	}
	return flows
}

// BenchmarkPrivilegedTakeover measures, with the real binaries in the lab,
// the time from fw2 deciding to become MASTER (fw1 stopped gracefully) to
// its VIPs being up, with 0 and 100,000 replicated flows held, for the
// external-cache (commit on takeover) and direct-inject modes. Run with
//
//	FWPAIR_PRIVILEGED_TESTS=1 go test -run '^$' -bench Takeover -benchtime 1x ./testenv/
func BenchmarkPrivilegedTakeover(b *testing.B) {
	RequirePrivileged(b)
	bin, err := Binaries(b.TempDir())
	if err != nil {
		b.Fatal(err)
	}
	for _, mode := range []string{"commit", "inject"} {
		for _, n := range []int{0, 100000} {
			b.Run(fmt.Sprintf("%s/flows=%d", mode, n), func(b *testing.B) {
				for range b.N {
					vips, commit := takeoverOnce(b, bin, mode == "inject", n)
					b.ReportMetric(vips*1000, "vips-ms")
					b.ReportMetric(commit*1000, "commit-ms")
				}
			})
		}
	}
}

func takeoverOnce(b *testing.B, bin string, inject bool, n int) (vipsSeconds, commitSeconds float64) {
	b.StopTimer()
	lab := NewLab(b, LabOptions{Prefix: "fwt"})
	dir := b.TempDir()
	var cfgs [2]string
	for i := range 2 {
		var err error
		cfgs[i], err = withDirectInject(mustRepoFile(b, fmt.Sprintf("etc/node%d.toml", i+1)), dir, i+1, inject)
		if err != nil {
			b.Fatal(err)
		}
	}
	var nodes [2]*Daemon
	for i := range 2 {
		d, err := StartDaemon(lab.FW(i+1), bin, fmt.Sprintf("fw%d", i+1), cfgs[i], dir)
		if err != nil {
			b.Fatal(err)
		}
		nodes[i] = d
		b.Cleanup(func() {
			if d.Running() {
				d.Kill()
			}
		})
	}
	if _, err := nodes[0].WaitGroupState("MASTER", 10*time.Second); err != nil {
		b.Fatal(err)
	}
	if _, err := nodes[1].WaitGroupState("BACKUP", 5*time.Second); err != nil {
		b.Fatal(err)
	}
	if n > 0 {
		k, err := ctnetlink.NewKernel(ctnetlink.KernelOptions{NetNS: lab.FW1.FD()})
		if err != nil {
			b.Fatal(err)
		}
		flows := syntheticFlows(n)
		t0 := time.Now()
		res, err := k.Commit(context.Background(), flows)
		b.Logf("created %d flows in fw1's kernel (listener attached) in %s", n, time.Since(t0))
		k.Close()
		if err != nil || res.Created != n {
			b.Fatalf("create %d flows in fw1: %+v %v", n, res, err)
		}
		// Wait until fw2 holds them (external cache, or its kernel when
		// injecting).
		waitFor(b, 60*time.Second, "replication to fw2", func() bool {
			st, err := nodes[1].Status(context.Background())
			if err != nil || st.Sync == nil {
				return false
			}
			if inject {
				return countKernel(b, lab.FW2) >= n
			}
			return st.Sync.ExternalEntries >= n
		})
	}
	stopAt := time.Now()
	if err := nodes[0].Stop(); err != nil {
		b.Fatal(err)
	}
	st, err := nodes[1].WaitTransition("MASTER", stopAt, 15*time.Second)
	if err != nil {
		b.Fatal(err)
	}
	return st.LastTransition.VIPsSeconds, st.LastTransition.CommitSeconds
}

func countKernel(tb testing.TB, ns *NS) int {
	k, err := ctnetlink.NewKernel(ctnetlink.KernelOptions{NetNS: ns.FD()})
	if err != nil {
		tb.Fatal(err)
	}
	defer k.Close()
	flows, err := k.Dump(context.Background())
	if err != nil {
		tb.Fatal(err)
	}
	return len(flows)
}
