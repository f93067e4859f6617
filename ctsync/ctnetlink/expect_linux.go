package ctnetlink

// LinuxExpect: the ExpectKernel interface over ctnetlink's expectation
// subsystem (NFNL_SUBSYS_CTNETLINK_EXP). Requests are encoded here (the
// kernel wants NUL-terminated helper and function names, which
// ti-mo/conntrack's CreateExpect does not send); events are decoded with
// ti-mo/conntrack.

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"net/netip"
	"sync"
	"sync/atomic"
	"time"

	"github.com/mdlayher/netlink"
	"github.com/ti-mo/conntrack"
	"golang.org/x/sys/unix"
)

// ctnetlink expectation constants (linux/netfilter/nfnetlink_conntrack.h;
// the tuple attributes are netlink.go's).
const (
	nfnlSubsysCTExp = 2 // NFNL_SUBSYS_CTNETLINK_EXP
	ipctnlExpNew    = 0
	ipctnlExpDelete = 2

	nfnlGrpExpNew     = 4 // NFNLGRP_CONNTRACK_EXP_NEW
	nfnlGrpExpDestroy = 6 // NFNLGRP_CONNTRACK_EXP_DESTROY

	ctaExpMaster   = 1
	ctaExpTuple    = 2
	ctaExpMask     = 3
	ctaExpTimeout  = 4
	ctaExpHelpName = 6
	ctaExpFlags    = 8
	ctaExpClass    = 9
	ctaExpNAT      = 10
	ctaExpFn       = 11
	ctaExpNATDir   = 1
	ctaExpNATTuple = 2

	// expDefaultTimeout is sent when a received expectation carries no
	// timeout (a sender with CommitTimeout); the kernel uses the helper's
	// policy timeout on create anyway.
	expDefaultTimeout = 300

	// expGetTimeout bounds the read of a master conntrack.
	expGetTimeout = 2 * time.Second
)

// LinuxExpect implements ExpectKernel over ctnetlink.
type LinuxExpect struct {
	netns int
	wmu   sync.Mutex // writer
	w     *netlink.Conn
	gmu   sync.Mutex // master reads
	g     *netlink.Conn

	events, overruns, decodeErrs atomic.Uint64
}

// NewExpectKernel opens the writer socket in the current namespace or in
// netns (a namespace fd, 0: current). It needs CAP_NET_ADMIN there.
func NewExpectKernel(netns int) (*LinuxExpect, error) {
	w, err := netlink.Dial(unix.NETLINK_NETFILTER, &netlink.Config{NetNS: netns})
	if err != nil {
		return nil, fmt.Errorf("ctnetlink expectations: %w", err)
	}
	g, err := netlink.Dial(unix.NETLINK_NETFILTER, &netlink.Config{NetNS: netns})
	if err != nil {
		w.Close()
		return nil, fmt.Errorf("ctnetlink: %w", err)
	}
	return &LinuxExpect{netns: netns, w: w, g: g}, nil
}

// Close closes the sockets.
func (k *LinuxExpect) Close() error {
	k.g.Close()
	return k.w.Close()
}

func nfFamily(x *Expect) uint8 {
	if x.Tuple.Src.Is4() {
		return unix.AF_INET
	}
	return unix.AF_INET6
}

func expRequest(typ uint8, flags netlink.HeaderFlags, family uint8, attrs []byte) netlink.Message {
	data := append([]byte{family, 0, 0, 0}, attrs...) // nfgenmsg
	return netlink.Message{
		Header: netlink.Header{Type: netlink.HeaderType(nfnlSubsysCTExp<<8 | uint16(typ)), Flags: flags},
		Data:   data,
	}
}

// encodeTuple puts a tuple (addresses, protocol, both ports) as the kernel
// parses it.
func encodeTuple(ae *netlink.AttributeEncoder, typ uint16, t *Tuple, v4 bool) {
	ae.Nested(typ, func(ae *netlink.AttributeEncoder) error {
		ae.Nested(ctaTupleIP, func(ae *netlink.AttributeEncoder) error {
			if v4 {
				s, d := expAddr4(t.Src), expAddr4(t.Dst)
				ae.Bytes(ctaIPv4Src, s[:])
				ae.Bytes(ctaIPv4Dst, d[:])
			} else {
				s, d := expAddr16(t.Src), expAddr16(t.Dst)
				ae.Bytes(ctaIPv6Src, s[:])
				ae.Bytes(ctaIPv6Dst, d[:])
			}
			return nil
		})
		ae.Nested(ctaTupleProto, func(ae *netlink.AttributeEncoder) error {
			ae.Uint8(ctaProtoNum, t.Proto)
			// As the sync wire codec does: GRE keys are not sent.
			if t.Proto != ProtoGRE && nlHasPorts(t.Proto) {
				ae.Uint16(ctaProtoSrcPort, t.SrcPort)
				ae.Uint16(ctaProtoDstPort, t.DstPort)
			}
			return nil
		})
		return nil
	})
}

// expAddr4 and expAddr16 return the raw bytes of a (zero for an invalid
// address: an unset mask).
func expAddr4(a netip.Addr) [4]byte {
	if a.Is4() {
		return a.As4()
	}
	return [4]byte{}
}

func expAddr16(a netip.Addr) [16]byte {
	if a.IsValid() {
		return a.As16()
	}
	return [16]byte{}
}

// encodeExpect builds the attributes of an IPCTNL_MSG_EXP_NEW request.
func encodeExpect(x *Expect) ([]byte, error) {
	ae := netlink.NewAttributeEncoder()
	ae.ByteOrder = binary.BigEndian
	v4 := x.Tuple.Src.Is4()
	encodeTuple(ae, ctaExpMaster, &x.Master, v4)
	encodeTuple(ae, ctaExpTuple, &x.Tuple, v4)
	mask := x.Mask
	if mask.Proto == 0 {
		mask.Proto = x.Tuple.Proto
	}
	encodeTuple(ae, ctaExpMask, &mask, v4)
	to := x.Timeout
	if to == 0 {
		to = expDefaultTimeout
	}
	ae.Uint32(ctaExpTimeout, to)
	if x.Helper != "" {
		ae.String(ctaExpHelpName, x.Helper) // NUL-terminated
	}
	// NF_CT_EXPECT_USERSPACE is the kernel's to set.
	ae.Uint32(ctaExpFlags, x.Flags&^4)
	if x.HasClass {
		ae.Uint32(ctaExpClass, x.Class)
	}
	if x.NAT.Addr.IsValid() {
		nat := Tuple{Src: x.NAT.Addr, Dst: x.NAT.Addr, SrcPort: x.NAT.Port, Proto: x.NAT.Proto}
		if nat.Proto == 0 {
			nat.Proto = x.Master.Proto
		}
		if v4 {
			nat.Dst = netip.IPv4Unspecified()
		}
		ae.Nested(ctaExpNAT, func(ae *netlink.AttributeEncoder) error {
			ae.Uint32(ctaExpNATDir, x.NAT.Direction)
			encodeTuple(ae, ctaExpNATTuple, &nat, nat.Src.Is4())
			return nil
		})
	}
	if x.Fn != "" {
		ae.String(ctaExpFn, x.Fn)
	}
	return ae.Encode()
}

// encodeExpectKey builds the attributes of an IPCTNL_MSG_EXP_DELETE
// request: the expected tuple.
func encodeExpectKey(x *Expect) ([]byte, error) {
	ae := netlink.NewAttributeEncoder()
	ae.ByteOrder = binary.BigEndian
	encodeTuple(ae, ctaExpTuple, &x.Tuple, x.Tuple.Src.Is4())
	return ae.Encode()
}

func errnoName(err error) string {
	var errno unix.Errno
	if errors.As(err, &errno) {
		return unix.ErrnoName(errno)
	}
	var oe *netlink.OpError
	if errors.As(err, &oe) {
		return errnoName(oe.Err)
	}
	return "other"
}

func isErrno(err error, e unix.Errno) bool { return errors.Is(err, e) }

func fail(res *CommitResult, err error) {
	if res.Failed == nil {
		res.Failed = make(map[string]int)
	}
	res.Failed[errnoName(err)]++
}

// CreateExpect creates expectations one request at a time (they are few).
// A clashing one (EBUSY, EEXIST) is deleted and created again once, as
// conntrackd does with conntracks: the replica wins.
func (k *LinuxExpect) CreateExpect(ctx context.Context, xs []Expect) (CommitResult, error) {
	start := time.Now()
	var res CommitResult
	k.wmu.Lock()
	defer k.wmu.Unlock()
	for i := range xs {
		if ctx.Err() != nil {
			return res, ctx.Err()
		}
		x := &xs[i]
		attrs, err := encodeExpect(x)
		if err != nil {
			fail(&res, err)
			continue
		}
		req := expRequest(ipctnlExpNew, netlink.Request|netlink.Acknowledge|netlink.Create|netlink.Excl, nfFamily(x), attrs)
		_, err = k.w.Execute(req)
		if isErrno(err, unix.EBUSY) || isErrno(err, unix.EEXIST) {
			if err = k.deleteLocked(x); err == nil || isErrno(err, unix.ENOENT) {
				_, err = k.w.Execute(req)
			}
		}
		if err != nil {
			fail(&res, err)
			continue
		}
		res.Created++
	}
	res.Duration = time.Since(start)
	return res, nil
}

func (k *LinuxExpect) deleteLocked(x *Expect) error {
	attrs, err := encodeExpectKey(x)
	if err != nil {
		return err
	}
	_, err = k.w.Execute(expRequest(ipctnlExpDelete, netlink.Request|netlink.Acknowledge, nfFamily(x), attrs))
	return err
}

// DeleteExpect deletes expectations by expected tuple; missing ones are
// not an error.
func (k *LinuxExpect) DeleteExpect(ctx context.Context, xs []Expect) (CommitResult, error) {
	start := time.Now()
	var res CommitResult
	k.wmu.Lock()
	defer k.wmu.Unlock()
	for i := range xs {
		if ctx.Err() != nil {
			return res, ctx.Err()
		}
		switch err := k.deleteLocked(&xs[i]); {
		case err == nil:
			res.Deleted++
		case isErrno(err, unix.ENOENT):
		default:
			fail(&res, err)
		}
	}
	res.Duration = time.Since(start)
	return res, nil
}

// ExpectEvents listens to expectation NEW and DESTROY events until ctx
// ends. Events caused by this adapter's writer carry its port id (Own).
// An overrun (ENOBUFS) loses events; it is counted and listening goes on
// (expectations live minutes, a lost one costs one data connection).
func (k *LinuxExpect) ExpectEvents(ctx context.Context, sink func([]ExpectEvent)) error {
	c, err := netlink.Dial(unix.NETLINK_NETFILTER, &netlink.Config{NetNS: k.netns})
	if err != nil {
		return fmt.Errorf("ctnetlink expectation events: %w", err)
	}
	defer c.Close()
	for _, g := range []uint32{nfnlGrpExpNew, nfnlGrpExpDestroy} {
		if err := c.JoinGroup(g); err != nil {
			return fmt.Errorf("ctnetlink expectation events: join group %d: %w", g, err)
		}
	}
	stop := context.AfterFunc(ctx, func() { c.SetReadDeadline(time.Unix(1, 0)) })
	defer stop()
	own := k.w.PID()
	for {
		msgs, err := c.Receive()
		if ctx.Err() != nil {
			return nil
		}
		if err != nil {
			if isErrno(err, unix.ENOBUFS) {
				k.overruns.Add(1)
				continue
			}
			return fmt.Errorf("ctnetlink expectation events: %w", err)
		}
		evs := make([]ExpectEvent, 0, len(msgs))
		for _, m := range msgs {
			var ev conntrack.Event
			if err := ev.Unmarshal(m); err != nil || ev.Expect == nil {
				k.decodeErrs.Add(1)
				continue
			}
			x, ok := expectFromTiMo(ev.Expect)
			if !ok {
				k.decodeErrs.Add(1)
				continue
			}
			t := EventNew
			if ev.Type == conntrack.EventExpDestroy {
				t = EventDestroy
			}
			ev2 := ExpectEvent{Type: t, Expect: x, Own: m.Header.PID == own && own != 0}
			if t == EventNew && !ev2.Own {
				// The helper mangles the packet (FTP PORT rewritten to
				// the VIP) right after creating the expectation, and the
				// kernel reports no event for the sequence adjustment
				// that follows: read the master now, so its state goes
				// to the peer ahead of the expectation.
				if f, err := k.getMaster(&x.Master); err == nil {
					ev2.Master = &f
				}
			}
			evs = append(evs, ev2)
		}
		if len(evs) > 0 {
			k.events.Add(uint64(len(evs)))
			sink(evs)
		}
	}
}

func tupleFromTiMo(t *conntrack.Tuple) Tuple {
	return Tuple{
		Src: t.IP.SourceAddress.Unmap(), Dst: t.IP.DestinationAddress.Unmap(),
		SrcPort: t.Proto.SourcePort, DstPort: t.Proto.DestinationPort, Proto: t.Proto.Protocol,
	}
}

// expectFromTiMo converts a decoded kernel expectation; ok is false when
// it lacks a tuple.
func expectFromTiMo(e *conntrack.Expect) (Expect, bool) {
	x := Expect{
		ExpectKey: ExpectKey{Master: tupleFromTiMo(&e.TupleMaster), Tuple: tupleFromTiMo(&e.Tuple)},
		Mask:      tupleFromTiMo(&e.Mask),
		Timeout:   e.Timeout, Flags: e.Flags, Class: e.Class, HasClass: true,
		Helper: e.HelpName, Fn: e.Function,
	}
	if !x.Master.Valid() || !x.Tuple.Valid() {
		return Expect{}, false
	}
	// The ftp helper saves only the port (the address is 0.0.0.0: the
	// expectation function takes the master's); CTA_EXPECT_NAT is there
	// whenever the tuple has a protocol.
	if n := e.NAT.Tuple.IP.SourceAddress; n.IsValid() && e.NAT.Tuple.Proto.Protocol != 0 {
		x.NAT = ExpectNAT{Addr: n.Unmap(), Port: e.NAT.Tuple.Proto.SourcePort, Proto: e.NAT.Tuple.Proto.Protocol}
		if e.NAT.Direction {
			x.NAT.Direction = 1
		}
	}
	return x, true
}

// CTA_FILTER of a filtered dump (kernel 5.8+): the tuple fields of
// CTA_TUPLE_ORIG that must match.
const (
	ctaFilter          = 25
	ctaFilterOrigFlags = 1
	ctaFilterReplFlags = 2
	// CTA_FILTER_FLAG_CTA_IP_SRC | IP_DST | PROTO_NUM | PROTO_SRC_PORT |
	// PROTO_DST_PORT
	ctaFilterTupleFlags = 1<<0 | 1<<1 | 1<<3 | 1<<4 | 1<<5
)

// getMaster reads a master conntrack by original tuple with a dump the
// kernel filters (a plain IPCTNL_MSG_CT_GET got no answer on the kernels
// tried, through either netlink library).
func (k *LinuxExpect) getMaster(t *Tuple) (Flow, error) {
	fam := nlTupleFamily(t)
	b := append([]byte{fam, 0, 0, 0}, nlAppendTuple(nil, ctaTupleOrig, t, fam, false)...)
	b, n := nlBeginNest(b)
	// NLA_U32 in host byte order, unlike the CTA_* values.
	b = nlAppendBytesAttr(b, ctaFilterOrigFlags, binary.NativeEndian.AppendUint32(nil, ctaFilterTupleFlags))
	b = nlAppendBytesAttr(b, ctaFilterReplFlags, binary.NativeEndian.AppendUint32(nil, 0))
	b = nlEndNest(b, n, ctaFilter)
	k.gmu.Lock()
	// Bounded: this runs in the event loop.
	k.g.SetReadDeadline(time.Now().Add(expGetTimeout))
	msgs, err := k.g.Execute(netlink.Message{
		Header: netlink.Header{Type: netlink.HeaderType(nfnlSubsysCtnetlink<<8 | ipctnlMsgCtGet), Flags: netlink.Request | netlink.Dump},
		Data:   b,
	})
	k.gmu.Unlock()
	if err != nil {
		return Flow{}, err
	}
	for _, m := range msgs {
		var f Flow
		if err := nlDecodeFlow(m.Data, &f); err == nil && f.Tuple == *t {
			return f, nil
		}
	}
	return Flow{}, fmt.Errorf("ctnetlink: master %v not found", *t)
}

// ExpectKernelStats are the adapter's counters.
type ExpectKernelStats struct {
	Events, Overruns, DecodeErrors uint64
}

// Stats returns the adapter's counters.
func (k *LinuxExpect) Stats() ExpectKernelStats {
	return ExpectKernelStats{Events: k.events.Load(), Overruns: k.overruns.Load(), DecodeErrors: k.decodeErrs.Load()}
}
