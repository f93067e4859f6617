package ctnetlink

import (
	"bytes"
	"encoding/hex"
	"net/netip"
	"strings"
	"testing"
)

// TCP_CONNTRACK_* values used by the tests.
const (
	ktTCPSynSent     = 1
	ktTCPEstablished = 3
)

// ktTCP builds an established, assured TCP flow. ktTCP, ktUDP and ktPing
// are ctnetlinktest's TCP, UDP and Ping, which the package's own tests
// cannot import (ctnetlinktest imports ctnetlink).
func ktTCP(src, dst string, sport, dport uint16) Flow {
	return Flow{
		Key: Key{Tuple: Tuple{
			Src: netip.MustParseAddr(src), Dst: netip.MustParseAddr(dst),
			SrcPort: sport, DstPort: dport, Proto: ProtoTCP,
		}},
		Status:        IPSSeenReply | IPSAssured | IPSConfirmed,
		Timeout:       3600,
		ProtoState:    ktTCPEstablished,
		HasProtoState: true,
	}
}

// ktUDP builds a UDP flow that has seen replies.
func ktUDP(src, dst string, sport, dport uint16) Flow {
	return Flow{
		Key: Key{Tuple: Tuple{
			Src: netip.MustParseAddr(src), Dst: netip.MustParseAddr(dst),
			SrcPort: sport, DstPort: dport, Proto: ProtoUDP,
		}},
		Status:  IPSSeenReply | IPSConfirmed,
		Timeout: 120,
	}
}

// ktPing builds an ICMP or ICMPv6 echo flow.
func ktPing(src, dst string, id uint16) Flow {
	f := Flow{
		Key: Key{Tuple: Tuple{
			Src: netip.MustParseAddr(src), Dst: netip.MustParseAddr(dst),
			ICMPID: id, ICMPType: 8, Proto: ProtoICMP,
		}},
		Status:  IPSSeenReply,
		Timeout: 25,
	}
	if f.Src.Is6() {
		f.Proto, f.ICMPType = ProtoICMPv6, 128
	}
	return f
}

// ktEncodeCases are the encoder's golden cases. The expected bytes were
// produced by this encoder, checked attribute by attribute against the
// kernel's uapi layout and against what conntrack(8) 1.4.7 sends for the
// same entry (strace), and accepted by the kernel in the privileged tests.
func ktEncodeCases() []struct {
	name  string
	kind  nlReqKind
	opts  nlEncodeOptions
	flow  Flow
	flags uint16
	hex   string
} {
	tcpSNAT := ktTCP("1.1.1.1", "2.2.2.2", 10, 20)
	tcpSNAT.Timeout = 100
	tcpSNAT.SNAT = NAT{Addr: netip.MustParseAddr("9.9.9.9"), Port: 61000}
	tcpSNAT.Status |= IPSSrcNAT | nlIPSSrcNATDone | nlIPSExpected // stripped

	udp6 := ktUDP("2001:db8::10", "2001:db8:1::20", 5000, 53)
	udp6.Zone, udp6.Mark, udp6.Timeout = 7, 0xdeadbeef, 0 // default timeout
	udp6.DNAT = NAT{Addr: netip.MustParseAddr("2001:db8:2::1")}

	ping := ktPing("10.0.0.1", "10.0.0.2", 0x1234)
	ping.Zone = 2

	sctp := Flow{
		Key:    Key{Tuple: Tuple{Src: netip.MustParseAddr("10.0.0.1"), Dst: netip.MustParseAddr("10.0.0.2"), SrcPort: 5000, DstPort: 6000, Proto: ProtoSCTP}},
		Status: IPSSeenReply | IPSAssured, Timeout: 200,
		ProtoState: 3, HasProtoState: true, SCTPVTagOrig: 0x01020304, SCTPVTagReply: 0x0a0b0c0d,
	}
	dccp := Flow{
		Key:    Key{Tuple: Tuple{Src: netip.MustParseAddr("10.0.0.1"), Dst: netip.MustParseAddr("10.0.0.2"), SrcPort: 1, DstPort: 2, Proto: ProtoDCCP}},
		Status: IPSSeenReply, Timeout: 50, ProtoState: 4, HasProtoState: true, DCCPRole: 1,
	}
	extras := ktTCP("10.0.0.1", "10.0.0.2", 3000, 21)
	extras.Helper = "ftp"
	extras.Labels = []byte{1, 0, 0, 0, 0, 0, 0, 0x80}
	extras.HasSeqAdj = true
	extras.SeqAdjOrig = SeqAdj{CorrectionPos: 1, OffsetBefore: 2, OffsetAfter: 3}
	extras.SeqAdjReply = SeqAdj{CorrectionPos: 4, OffsetBefore: 5, OffsetAfter: 6}
	wscale := ktTCP("10.0.0.1", "10.0.0.2", 3000, 22)
	wscale.HasTCPWScale, wscale.TCPWScaleOrig, wscale.TCPWScaleReply = true, 7, 9
	dport := ktUDP("10.0.0.1", "10.0.0.2", 1000, 53)
	dport.DNAT.Port = 5353 // port only: the address stays the original one

	def := nlEncodeOptions{defaultTimeout: 60}
	track := nlEncodeOptions{defaultTimeout: 60, tcpWindowTracking: true}
	return []struct {
		name  string
		kind  nlReqKind
		opts  nlEncodeOptions
		flow  Flow
		flags uint16
		hex   string
	}{
		{"tcp4 create snat", nlReqCreate, def, tcpSNAT, 0, `
			dc000000000101060403020100000000020000003400018014000180080001000101010108000200
			020202021c000280050001000600000006000200000a000006000300001400003400028014000180
			080001000202020208000200010101011c0002800500010006000000060002000014000006000300
			000a0000080003000000000e08000700000000640800080000000000200004801c00018005000100
			03000000060004000808000006000500080800002800068008000100090909090800020009090909
			1400038006000100ee48000006000200ee480000`},
		{"tcp4 update strips nat", nlReqUpdate, def, tcpSNAT, nlmFAck, `
			80000000000105000403020100000000020000003400018014000180080001000101010108000200
			020202021c000280050001000600000006000200000a00000600030000140000080003000000000e
			08000700000000640800080000000000200004801c00018005000100030000000600040008080000
			0600050008080000`},
		{"tcp4 delete", nlReqDelete, def, tcpSNAT, 0, `
			48000000020101000403020100000000020000003400018014000180080001000101010108000200
			020202021c000280050001000600000006000200000a00000600030000140000`},
		{"udp6 create dnat zone mark", nlReqCreate, def, udp6, 0, `
			f80000000001010604030201000000000a0000004c0001802c0001801400030020010db800000000
			00000000000000101400040020010db80001000000000000000000201c0002800500010011000000
			0600020013880000060003000035000006001200000700004c0002802c0001801400030020010db8
			0001000000000000000000201400040020010db80000000000000000000000101c00028005000100
			1100000006000200003500000600030013880000080003000000000a080007000000003c08000800
			deadbeef2c000d801400040020010db80002000000000000000000011400050020010db800020000
			0000000000000001`},
		{"icmp create", nlReqCreate, def, ping, 0, `
			ac000000000101060403020100000000020000003c00018014000180080001000a00000108000200
			0a000002240002800500010001000000060004001234000005000500080000000500060000000000
			06001200000200003c00028014000180080001000a000002080002000a0000012400028005000100
			01000000060004001234000005000500000000000500060000000000080003000000000a08000700
			000000190800080000000000`},
		{"icmp delete zone", nlReqDelete, def, ping, 0, `
			58000000020101000403020100000000020000003c00018014000180080001000a00000108000200
			0a000002240002800500010001000000060004001234000005000500080000000500060000000000
			0600120000020000`},
		{"icmpv6 create", nlReqCreate, def, ktPing("2001:db8::1", "2001:db8::2", 77), 0, `
			d40000000001010604030201000000000a000000540001802c0001801400030020010db800000000
			00000000000000011400040020010db800000000000000000000000224000280050001003a000000
			06000700004d000005000800800000000500090000000000540002802c0001801400030020010db8
			0000000000000000000000021400040020010db80000000000000000000000012400028005000100
			3a00000006000700004d000005000800810000000500090000000000080003000000000a08000700
			000000190800080000000000`},
		{"sctp create", nlReqCreate, def, sctp, 0, `
			b4000000000101060403020100000000020000003400018014000180080001000a00000108000200
			0a0000021c0002800500010084000000060002001388000006000300177000003400028014000180
			080001000a000002080002000a0000011c0002800500010084000000060002001770000006000300
			13880000080003000000000e08000700000000c80800080000000000200004801c00038005000100
			030000000800020001020304080003000a0b0c0d`},
		{"dccp create", nlReqCreate, def, dccp, 0, `
			ac000000000101060403020100000000020000003400018014000180080001000a00000108000200
			0a0000021c0002800500010021000000060002000001000006000300000200003400028014000180
			080001000a000002080002000a0000011c0002800500010021000000060002000002000006000300
			00010000080003000000000a08000700000000320800080000000000180004801400028005000100
			040000000500020001000000`},
		{"helper labels seqadj", nlReqCreate, def, extras, 0, `
			04010000000101060403020100000000020000003400018014000180080001000a00000108000200
			0a0000021c0002800500010006000000060002000bb8000006000300001500003400028014000180
			080001000a000002080002000a0000011c0002800500010006000000060002000015000006000300
			0bb80000080003000000000e0800070000000e100800080000000000200004801c00018005000100
			03000000060004000808000006000500080800000c00058008000100667470001c000f8008000100
			00000001080002000000000208000300000000031c00108008000100000000040800020000000005
			08000300000000060c0016000100000000000080`},
		{"update keeps labels seqadj, no helper", nlReqUpdate, def, extras, 0, `
			c4000000000101000403020100000000020000003400018014000180080001000a00000108000200
			0a0000021c0002800500010006000000060002000bb800000600030000150000080003000000000e
			0800070000000e100800080000000000200004801c00018005000100030000000600040008080000
			06000500080800001c000f800800010000000001080002000000000208000300000000031c001080
			0800010000000004080002000000000508000300000000060c0016000100000000000080`},
		{"window tracking", nlReqCreate, track, wscale, 0, `
			c4000000000101060403020100000000020000003400018014000180080001000a00000108000200
			0a0000021c0002800500010006000000060002000bb8000006000300001600003400028014000180
			080001000a000002080002000a0000011c0002800500010006000000060002000016000006000300
			0bb80000080003000000000e0800070000000e100800080000000000300004802c00018005000100
			030000000500020007000000050003000900000006000400010100000600050001010000`},
		{"dnat port only", nlReqCreate, def, dport, 0, `
			bc000000000101060403020100000000020000003400018014000180080001000a00000108000200
			0a0000021c00028005000100110000000600020003e8000006000300003500003400028014000180
			080001000a000002080002000a0000011c0002800500010011000000060002000035000006000300
			03e80000080003000000000a0800070000000078080008000000000028000d80080001000a000002
			080002000a000002140003800600010014e900000600020014e90000`},
	}
}

func TestEncodeGolden(t *testing.T) {
	for _, c := range ktEncodeCases() {
		t.Run(c.name, func(t *testing.T) {
			prefix := []byte{0xaa, 0xbb} // appending keeps what is there
			b, err := nlAppendRequest(prefix, c.kind, &c.flow, 0x01020304, c.flags, &c.opts)
			if err != nil {
				t.Fatalf("nlAppendRequest: %v", err)
			}
			if !bytes.Equal(b[:2], []byte{0xaa, 0xbb}) {
				t.Fatalf("prefix overwritten")
			}
			want, err := hex.DecodeString(strings.Join(strings.Fields(c.hex), ""))
			if err != nil {
				t.Fatalf("bad golden hex: %v", err)
			}
			if got := b[2:]; !bytes.Equal(got, want) {
				t.Errorf("encoded\n%x\nwant\n%x", got, want)
			}
		})
	}
}

func TestEncodeErrors(t *testing.T) {
	def := nlEncodeOptions{defaultTimeout: 60}
	mixed := ktTCP("10.0.0.1", "2001:db8::1", 1, 2)
	noAddr := Flow{Key: Key{Tuple: Tuple{Proto: ProtoUDP}}}
	badICMP := ktPing("10.0.0.1", "10.0.0.2", 1)
	badICMP.ICMPType = 3
	badICMP6 := ktPing("2001:db8::1", "2001:db8::2", 1)
	badICMP6.ICMPType = 1
	natFam := ktTCP("10.0.0.1", "10.0.0.2", 1, 2)
	natFam.SNAT.Addr = netip.MustParseAddr("2001:db8::1")
	labels := ktTCP("10.0.0.1", "10.0.0.2", 1, 2)
	labels.Labels = []byte{1, 2, 3}
	bigLabels := ktTCP("10.0.0.1", "10.0.0.2", 1, 2)
	bigLabels.Labels = make([]byte, 20)
	helper := ktTCP("10.0.0.1", "10.0.0.2", 1, 2)
	helper.Helper = "a-very-long-helper-name"
	for _, c := range []struct {
		name string
		kind nlReqKind
		flow Flow
		err  error
	}{
		{"mixed families", nlReqCreate, mixed, errNLFamily},
		{"no addresses", nlReqDelete, noAddr, errNLFamily},
		{"icmp type", nlReqCreate, badICMP, errNLICMPType},
		{"icmpv6 type", nlReqDelete, badICMP6, errNLICMPType},
		{"nat family", nlReqCreate, natFam, errNLNATFamily},
		{"labels size", nlReqUpdate, labels, errNLLabelsSize},
		{"labels too big", nlReqCreate, bigLabels, errNLLabelsSize},
		{"helper name", nlReqCreate, helper, errNLHelperName},
	} {
		in := []byte{1, 2, 3}
		b, err := nlAppendRequest(in, c.kind, &c.flow, 1, 0, &def)
		if err != c.err {
			t.Errorf("%s: err = %v, want %v", c.name, err, c.err)
		}
		if !bytes.Equal(b, []byte{1, 2, 3}) {
			t.Errorf("%s: buffer changed on error", c.name)
		}
	}
	// What an update or delete does not send cannot make it fail.
	if _, err := nlAppendRequest(nil, nlReqUpdate, &natFam, 1, 0, &def); err != nil {
		t.Errorf("update with a bad NAT family: %v", err)
	}
	if _, err := nlAppendRequest(nil, nlReqDelete, &labels, 1, 0, &def); err != nil {
		t.Errorf("delete with bad labels: %v", err)
	}
}

func TestEncodeFlushDump(t *testing.T) {
	got := hex.EncodeToString(nlAppendFlush(nil, 5, nlmFAck))
	if want := "1400000002010500050000000000000000000000"; got != want {
		t.Errorf("flush = %s, want %s", got, want)
	}
	got = hex.EncodeToString(nlAppendDumpRequest(nil, 6))
	if want := "1400000001010103060000000000000000000000"; got != want {
		t.Errorf("dump request = %s, want %s", got, want)
	}
}

func BenchmarkEncodeCreate(b *testing.B) {
	f := ktTCP("192.168.0.10", "192.168.1.20", 40000, 80)
	f.SNAT = NAT{Addr: netip.MustParseAddr("192.168.1.100"), Port: 61000}
	opts := nlEncodeOptions{defaultTimeout: 60}
	buf := make([]byte, 0, 4096)
	b.ReportAllocs()
	for b.Loop() {
		var err error
		if buf, err = nlAppendRequest(buf[:0], nlReqCreate, &f, 1, 0, &opts); err != nil {
			b.Fatal(err)
		}
	}
}
