package ctsync

import (
	"context"
	"net/netip"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/fwpair/fwpair/testenv"
)

// TCP_CONNTRACK_* values used by the tests.
const (
	ktTCPSynSent     = 1
	ktTCPEstablished = 3
)

// ktKernel opens a LinuxKernel bound to a fresh lab namespace.
func ktKernel(t testing.TB, opts KernelOptions) (*LinuxKernel, *testenv.NS) {
	t.Helper()
	ns := testenv.NewNS(t, "fwk")
	opts.NetNS = ns.FD()
	k, err := NewKernel(opts)
	if err != nil {
		t.Fatalf("NewKernel: %v", err)
	}
	t.Cleanup(func() { k.Close() })
	return k, ns
}

// ktCtx is a context bounded by a deadline for one test step.
func ktCtx(t testing.TB, d time.Duration) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), d)
	t.Cleanup(cancel)
	return ctx
}

// ktEntry is one line of `conntrack -L -o extended`, parsed by the oracle.
type ktEntry struct {
	line    string
	proto   string
	timeout int
	state   string
	orig    map[string]string // src dst sport dport type code id
	reply   map[string]string
	mark    string
	zone    string
}

var ktKV = regexp.MustCompile(`(\w+)=(\S+)`)

// ktList reads the namespace's table with the conntrack tool, both
// families, as an oracle independent of our decoder.
func ktList(t testing.TB, ns *testenv.NS) []ktEntry {
	t.Helper()
	var out []ktEntry
	for _, fam := range []string{"ipv4", "ipv6"} {
		s, err := ns.Run(ktCtx(t, 10*time.Second), "conntrack", "-L", "-f", fam, "-o", "extended")
		if err != nil {
			t.Fatalf("conntrack -L: %v", err)
		}
		for _, line := range strings.Split(s, "\n") {
			if !strings.HasPrefix(line, "ipv") {
				continue
			}
			fields := strings.Fields(line)
			if len(fields) < 6 {
				continue
			}
			e := ktEntry{line: line, proto: fields[2], orig: map[string]string{}, reply: map[string]string{}, zone: "0"}
			e.timeout, _ = strconv.Atoi(fields[4])
			if !strings.Contains(fields[5], "=") {
				e.state = fields[5]
			}
			inReply := false
			for _, m := range ktKV.FindAllStringSubmatch(line, -1) {
				k, v := m[1], m[2]
				switch k {
				case "mark":
					e.mark = v
				case "zone":
					e.zone = v
				case "use":
				default:
					if k == "src" && e.orig["src"] != "" {
						inReply = true
					}
					if inReply {
						e.reply[k] = v
					} else {
						e.orig[k] = v
					}
				}
			}
			out = append(out, e)
		}
	}
	return out
}

// ktFind returns the oracle entry with the given original src/dst (and
// source port or ICMP id when not empty), or fails.
func ktFind(t testing.TB, es []ktEntry, f *Flow) ktEntry {
	t.Helper()
	for _, e := range es {
		if e.orig["src"] != f.Src.String() || e.orig["dst"] != f.Dst.String() || e.zone != strconv.Itoa(int(f.Zone)) {
			continue
		}
		if nlHasPorts(f.Proto) && e.orig["sport"] != strconv.Itoa(int(f.SrcPort)) {
			continue
		}
		if (f.Proto == nlProtoICMP || f.Proto == nlProtoICMPv6) && e.orig["id"] != strconv.Itoa(int(f.ICMPID)) {
			continue
		}
		return e
	}
	t.Fatalf("conntrack -L has no entry for %v:%d -> %v:%d proto %d zone %d", f.Src, f.SrcPort, f.Dst, f.DstPort, f.Proto, f.Zone)
	return ktEntry{}
}

// ktTCP builds an established, assured TCP flow.
func ktTCP(src, dst string, sport, dport uint16) Flow {
	return Flow{
		Key: Key{Tuple: Tuple{
			Src: netip.MustParseAddr(src), Dst: netip.MustParseAddr(dst),
			SrcPort: sport, DstPort: dport, Proto: nlProtoTCP,
		}},
		Status:        nlIPSSeenReply | nlIPSAssured | nlIPSConfirmed,
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
			SrcPort: sport, DstPort: dport, Proto: nlProtoUDP,
		}},
		Status:  nlIPSSeenReply | nlIPSConfirmed,
		Timeout: 120,
	}
}

// ktPing builds an ICMP or ICMPv6 echo flow.
func ktPing(src, dst string, id uint16) Flow {
	f := Flow{
		Key: Key{Tuple: Tuple{
			Src: netip.MustParseAddr(src), Dst: netip.MustParseAddr(dst),
			ICMPID: id, ICMPType: 8, Proto: nlProtoICMP,
		}},
		Status:  nlIPSSeenReply,
		Timeout: 25,
	}
	if f.Src.Is6() {
		f.Proto, f.ICMPType = nlProtoICMPv6, 128
	}
	return f
}

func ktCommitFlows() []Flow {
	tcp4 := ktTCP("192.168.0.10", "192.168.1.20", 40000, 80)
	tcp4.Mark = 0x2a
	udp4 := ktUDP("192.168.0.10", "192.168.1.20", 5353, 53)
	udp4.Zone = 7
	ping4 := ktPing("192.168.0.10", "192.168.1.20", 4242)
	tcp6 := ktTCP("2001:db8::10", "2001:db8:1::20", 40001, 443)
	tcp6.Timeout = 1000
	udp6 := ktUDP("2001:db8::10", "2001:db8:1::20", 5000, 53)
	ping6 := ktPing("2001:db8::10", "2001:db8:1::20", 77)
	snat := ktTCP("192.168.0.11", "192.168.1.20", 40002, 22)
	snat.SNAT = NAT{Addr: netip.MustParseAddr("192.168.1.100"), Port: 61000}
	snat.Mark = 9
	snat.Zone = 3
	dnat := ktTCP("192.168.0.12", "192.168.0.100", 40003, 8080)
	dnat.DNAT = NAT{Addr: netip.MustParseAddr("192.168.1.20"), Port: 80}
	snat6 := ktUDP("2001:db8::11", "2001:db8:1::20", 6000, 53)
	snat6.SNAT = NAT{Addr: netip.MustParseAddr("2001:db8:1::100")}
	return []Flow{tcp4, udp4, ping4, tcp6, udp6, ping6, snat, dnat, snat6}
}

func TestPrivilegedCommit(t *testing.T) {
	testenv.RequirePrivileged(t)
	k, ns := ktKernel(t, KernelOptions{})
	flows := ktCommitFlows()
	res, err := k.Commit(ktCtx(t, 10*time.Second), flows)
	if err != nil {
		t.Fatalf("Commit: %v", err)
	}
	if res.Created != len(flows) || res.Updated != 0 || len(res.Failed) != 0 {
		t.Fatalf("Commit = %+v, want %d created", res, len(flows))
	}

	es := ktList(t, ns)
	if len(es) != len(flows) {
		t.Errorf("conntrack -L shows %d entries, want %d", len(es), len(flows))
	}
	for i := range flows {
		f := &flows[i]
		e := ktFind(t, es, f)
		if f.Proto == nlProtoTCP && e.state != "ESTABLISHED" {
			t.Errorf("%s: state %q, want ESTABLISHED", e.line, e.state)
		}
		if e.mark != strconv.Itoa(int(f.Mark)) {
			t.Errorf("%s: mark %s, want %d", e.line, e.mark, f.Mark)
		}
		if e.timeout > int(f.Timeout) || e.timeout < int(f.Timeout)-5 {
			t.Errorf("%s: timeout %d, want about %d", e.line, e.timeout, f.Timeout)
		}
		if f.Proto == nlProtoTCP && !strings.Contains(e.line, "[ASSURED]") {
			t.Errorf("%s: not ASSURED", e.line)
		}
		wantReplySrc, wantReplyDst := f.Dst.String(), f.Src.String()
		wantReplySport, wantReplyDport := strconv.Itoa(int(f.DstPort)), strconv.Itoa(int(f.SrcPort))
		if f.SNAT.Addr.IsValid() {
			wantReplyDst = f.SNAT.Addr.String()
			if f.SNAT.Port != 0 {
				wantReplyDport = strconv.Itoa(int(f.SNAT.Port))
			}
		}
		if f.DNAT.Addr.IsValid() {
			wantReplySrc = f.DNAT.Addr.String()
			if f.DNAT.Port != 0 {
				wantReplySport = strconv.Itoa(int(f.DNAT.Port))
			}
		}
		if e.reply["src"] != wantReplySrc || e.reply["dst"] != wantReplyDst {
			t.Errorf("%s: reply %s -> %s, want %s -> %s", e.line, e.reply["src"], e.reply["dst"], wantReplySrc, wantReplyDst)
		}
		if nlHasPorts(f.Proto) && (e.reply["sport"] != wantReplySport || e.reply["dport"] != wantReplyDport) {
			t.Errorf("%s: reply ports %s -> %s, want %s -> %s", e.line, e.reply["sport"], e.reply["dport"], wantReplySport, wantReplyDport)
		}
	}

	// Dump round trip: what we read back is what we wrote.
	got, err := k.Dump(ktCtx(t, 10*time.Second))
	if err != nil {
		t.Fatalf("Dump: %v", err)
	}
	if len(got) != len(flows) {
		t.Fatalf("Dump returned %d flows, want %d", len(got), len(flows))
	}
	byKey := map[Key]Flow{}
	for _, f := range got {
		byKey[f.Key] = f
	}
	for _, want := range flows {
		g, ok := byKey[want.Key]
		if !ok {
			t.Errorf("Dump lacks %+v", want.Key)
			continue
		}
		if g.Mark != want.Mark || g.SNAT != want.SNAT || g.DNAT != want.DNAT ||
			g.HasProtoState != want.HasProtoState || g.ProtoState != want.ProtoState {
			t.Errorf("Dump %+v\nwant %+v", g, want)
		}
		if g.Status&(nlIPSConfirmed|nlIPSSeenReply) != nlIPSConfirmed|nlIPSSeenReply {
			t.Errorf("Dump %v: status %#x lacks CONFIRMED|SEEN_REPLY", g.Key, g.Status)
		}
		if (want.SNAT.Addr.IsValid()) != (g.Status&nlIPSSrcNAT != 0) || (want.DNAT.Addr.IsValid()) != (g.Status&nlIPSDstNAT != 0) {
			t.Errorf("Dump %v: status %#x NAT bits do not match the bindings", g.Key, g.Status)
		}
		if g.Timeout > want.Timeout || g.Timeout+5 < want.Timeout {
			t.Errorf("Dump %v: timeout %d, want about %d", g.Key, g.Timeout, want.Timeout)
		}
	}
}

func TestPrivilegedCommitExisting(t *testing.T) {
	testenv.RequirePrivileged(t)
	k, ns := ktKernel(t, KernelOptions{})
	ctx := ktCtx(t, 20*time.Second)
	// Two entries created by someone else: one plain, one that the
	// replicated state says is SNATed.
	if _, err := ns.Run(ctx, "conntrack", "-I", "-p", "tcp", "-s", "10.1.0.1", "-d", "10.2.0.1",
		"--sport", "1000", "--dport", "80", "--state", "SYN_SENT", "-u", "SEEN_REPLY", "-t", "50", "-m", "1"); err != nil {
		t.Fatal(err)
	}
	if _, err := ns.Run(ctx, "conntrack", "-I", "-p", "tcp", "-s", "10.1.0.2", "-d", "10.2.0.1",
		"--sport", "1001", "--dport", "80", "--state", "ESTABLISHED", "-u", "SEEN_REPLY,ASSURED", "-t", "50"); err != nil {
		t.Fatal(err)
	}
	plain := ktTCP("10.1.0.1", "10.2.0.1", 1000, 80)
	plain.Mark, plain.Timeout = 99, 500
	nat := ktTCP("10.1.0.2", "10.2.0.1", 1001, 80)
	nat.SNAT = NAT{Addr: netip.MustParseAddr("10.2.0.100")}
	nat.Timeout = 700
	fresh := ktUDP("10.1.0.3", "10.2.0.1", 53, 53)
	res, err := k.Commit(ctx, []Flow{plain, nat, fresh})
	if err != nil {
		t.Fatalf("Commit: %v", err)
	}
	if res.Created != 1 || res.Updated != 2 || len(res.Failed) != 0 {
		t.Fatalf("Commit = %+v, want 1 created, 2 updated", res)
	}
	es := ktList(t, ns)
	if len(es) != 3 {
		t.Fatalf("conntrack -L shows %d entries, want 3", len(es))
	}
	e := ktFind(t, es, &plain)
	if e.mark != "99" || e.state != "ESTABLISHED" || e.timeout < 490 || !strings.Contains(e.line, "[ASSURED]") {
		t.Errorf("updated entry %q: want mark 99, ESTABLISHED, ASSURED, timeout ~500", e.line)
	}
	e = ktFind(t, es, &nat)
	if e.reply["dst"] != "10.2.0.100" || e.timeout < 690 {
		t.Errorf("replaced entry %q: want reply dst 10.2.0.100, timeout ~700", e.line)
	}

	// Committing the same state again updates everything in place.
	res, err = k.Commit(ctx, []Flow{plain, nat, fresh})
	if err != nil {
		t.Fatalf("Commit again: %v", err)
	}
	if res.Created != 0 || res.Updated != 3 || len(res.Failed) != 0 {
		t.Fatalf("Commit again = %+v, want 3 updated", res)
	}
}

func TestPrivilegedCommitInvalid(t *testing.T) {
	testenv.RequirePrivileged(t)
	k, _ := ktKernel(t, KernelOptions{})
	bad := ktTCP("10.0.0.1", "2001:db8::1", 1, 2) // mixed families
	badICMP := ktPing("10.0.0.1", "10.0.0.2", 1)
	badICMP.ICMPType = 3 // not trackable as a query
	good := ktUDP("10.0.0.1", "10.0.0.2", 1, 2)
	res, err := k.Commit(ktCtx(t, 10*time.Second), []Flow{bad, good, badICMP})
	if err != nil {
		t.Fatalf("Commit: %v", err)
	}
	if res.Created != 1 || res.Failed["EINVAL"] != 2 {
		t.Fatalf("Commit = %+v, want 1 created, 2 EINVAL", res)
	}
}

func TestPrivilegedDelete(t *testing.T) {
	testenv.RequirePrivileged(t)
	k, ns := ktKernel(t, KernelOptions{})
	ctx := ktCtx(t, 10*time.Second)
	flows := ktCommitFlows()
	if res, err := k.Commit(ctx, flows); err != nil || res.Created != len(flows) {
		t.Fatalf("Commit = %+v, %v", res, err)
	}
	keys := []Key{flows[0].Key, flows[1].Key, flows[6].Key, ktUDP("10.9.9.9", "10.9.9.8", 1, 1).Key}
	res, err := k.Delete(ctx, keys)
	if err != nil {
		t.Fatalf("Delete: %v", err)
	}
	if res.Deleted != 3 || len(res.Failed) != 0 {
		t.Fatalf("Delete = %+v, want 3 deleted, missing one ignored", res)
	}
	es := ktList(t, ns)
	if len(es) != len(flows)-3 {
		t.Fatalf("conntrack -L shows %d entries after delete, want %d", len(es), len(flows)-3)
	}
	for _, e := range es {
		for _, key := range keys[:3] {
			if e.orig["src"] == key.Src.String() && e.orig["sport"] == strconv.Itoa(int(key.SrcPort)) && e.zone == strconv.Itoa(int(key.Zone)) {
				t.Errorf("deleted entry still there: %s", e.line)
			}
		}
	}
	if err := k.Flush(ctx); err != nil {
		t.Fatalf("Flush: %v", err)
	}
	if got, err := k.Dump(ctx); err != nil || len(got) != 0 {
		t.Fatalf("Dump after flush = %d flows, %v", len(got), err)
	}
}
