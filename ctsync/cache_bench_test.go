package ctsync

import (
	"net/netip"
	"runtime"
	"testing"
	"time"

	"github.com/fwpair/fwpair/ctsync/ctnetlink"
	"github.com/fwpair/fwpair/ctsync/ctnetlink/ctnetlinktest"
)

// realisticFlows makes n distinct flows shaped like a busy firewall's
// table: mostly established IPv4 TCP, some UDP and IPv6, every fourth
// masqueraded (SNAT with a translated port), one in 50 with connlabels,
// one in 200 with a helper and sequence adjustment.
func realisticFlows(n int) []Flow {
	flows := make([]Flow, n)
	vip := netip.AddrFrom4([4]byte{203, 0, 113, 1})
	for i := range flows {
		f := Flow{
			Key: Key{Tuple: Tuple{
				Src:     netip.AddrFrom4([4]byte{10, byte(i >> 16), byte(i >> 8), byte(i)}),
				Dst:     netip.AddrFrom4([4]byte{192, 0, 2, byte(i % 200)}),
				SrcPort: uint16(1024 + i%60000), DstPort: 443, Proto: ctnetlink.ProtoTCP,
			}},
			Status:  ctnetlink.IPSSeenReply | ctnetlink.IPSAssured | ctnetlink.IPSConfirmed,
			Timeout: 432000, ProtoState: ctnetlinktest.TCPEstablished, HasProtoState: true,
			TCPWScaleOrig: 7, TCPWScaleReply: 7, HasTCPWScale: true,
		}
		switch {
		case i%10 == 7:
			f.Proto, f.DstPort, f.HasProtoState, f.HasTCPWScale, f.ProtoState, f.TCPWScaleOrig, f.TCPWScaleReply, f.Timeout = 17, 53, false, false, 0, 0, 0, 120
		case i%10 == 9:
			a := [16]byte{0x20, 0x01, 0x0d, 0xb8, 12: byte(i >> 24), 13: byte(i >> 16), 14: byte(i >> 8), 15: byte(i)}
			f.Src = netip.AddrFrom16(a)
			a[15] ^= 0xff
			a[3] = 0xb9
			f.Dst = netip.AddrFrom16(a)
		}
		if i%4 == 0 && f.Src.Is4() {
			f.SNAT = NAT{Addr: vip, Port: uint16(1024 + i%50000)}
		}
		if i%50 == 3 {
			f.Labels = []byte{1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, byte(i)}
		}
		if i%200 == 5 {
			f.Helper = "ftp"
			f.HasSeqAdj = true
			f.SeqAdjOrig = SeqAdj{CorrectionPos: uint32(i), OffsetBefore: 1, OffsetAfter: 3}
		}
		if i%3 == 0 {
			f.Mark = uint32(i % 7)
		}
		flows[i] = f
	}
	return flows
}

func heapInUse() uint64 {
	runtime.GC()
	runtime.GC()
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	return ms.HeapAlloc
}

// benchmarkCacheFill fills a cache with n realistic flows per iteration
// and reports the live heap it holds per entry (after a GC, the flows
// themselves not counted).
func benchmarkCacheFill(b *testing.B, n int) {
	flows := realisticFlows(n)
	now := time.Now()
	var perEntry float64
	b.ResetTimer()
	for range b.N {
		b.StopTimer()
		before := heapInUse()
		b.StartTimer()
		c := NewCache()
		c.dig = &cacheDigest{}
		for i := range flows {
			c.Put(&flows[i], now)
		}
		b.StopTimer()
		perEntry = float64(heapInUse()-before) / float64(n)
		runtime.KeepAlive(c)
		b.StartTimer()
	}
	b.ReportMetric(perEntry, "B/entry")
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*n), "ns/put")
}

func BenchmarkCacheFill100k(b *testing.B) { benchmarkCacheFill(b, 100_000) }
func BenchmarkCacheFill1M(b *testing.B)   { benchmarkCacheFill(b, 1_000_000) }

// BenchmarkCacheGet measures a lookup of a present key (the hot path of
// every event and every transmitted state).
func BenchmarkCacheGet(b *testing.B) {
	flows := realisticFlows(100_000)
	c := NewCache()
	now := time.Now()
	for i := range flows {
		c.Put(&flows[i], now)
	}
	b.ResetTimer()
	i := 0
	for b.Loop() {
		if _, ok := c.Get(flows[i].Key); !ok {
			b.Fatal("missing")
		}
		i++
		if i == len(flows) {
			i = 0
		}
	}
}
