package ctnetlink

// LinuxKernel: the Kernel interface over ctnetlink, with raw netlink sockets
// for the hot paths (docs/kernel-notes.md gives the reasons; make bench measures them).
//
// Sockets. Three NETLINK_NETFILTER sockets are opened by NewKernel, in the
// current namespace or, with KernelOptions.NetNS, inside the given one: a
// goroutine locks its OS thread, setns(2)s into the namespace, opens the
// sockets and ends without unlocking, so the runtime discards that thread
// and no other goroutine ever runs in the wrong namespace. A socket keeps
// the namespace it was created in for its whole life.
//
//   - writer: Commit, Delete, Flush. Requests are batched (1024 per write)
//     in errors-only mode: only the last request of a batch has NLM_F_ACK,
//     and the kernel, which handles the whole write inside sendmsg, queues
//     an error reply (NETLINK_CAP_ACK: header only) for each failure before
//     that final ACK. Buffers are raised with SO_SNDBUFFORCE/SO_RCVBUFFORCE.
//   - dump: Dump (IPCTNL_MSG_CT_GET|NLM_F_DUMP, all families and zones).
//   - events: joins NFNLGRP_CONNTRACK_NEW/UPDATE/DESTROY only while Events
//     runs; 64 MiB receive buffer; drained with recvmmsg(2) 128 datagrams at
//     a time by a blocking read outside Go's poller, pausing after a read
//     that emptied the queue (socket_linux.go, nlOpenEvents, says why).
//
// Own writes. ctnetlink puts the netlink port id of the socket whose request
// caused an event into the event's nlmsghdr (conntrack -E shows it as
// "[USERSPACE] portid=N"); events caused by traffic or timeouts carry 0.
// An event whose port id equals the writer socket's (PortID) is therefore
// marked Event.Own: entries we committed, updated, replaced, deleted or
// flushed are not echoed to the peer (conntrackd's origin tracking does the
// same). A later traffic-driven update of such an entry is not Own. Unless
// KernelOptions.OwnUpdateEvents is set, the own NEW and UPDATE events are
// dropped in the kernel by a socket filter on the event socket
// (ownfilter_linux.go), so only own DESTROY events arrive marked Own.

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"os"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"golang.org/x/net/bpf"
	"golang.org/x/sys/unix"
)

// KernelOptions configure NewKernel. The zero value is usable.
type KernelOptions struct {
	// NetNS is a network namespace file descriptor (e.g. an open
	// /run/netns/<name> or /proc/<pid>/ns/net); 0 means the current one.
	// The sockets are created inside it by a throwaway locked thread and
	// stay there; the caller may close the fd after NewKernel returns.
	NetNS int
	// BatchSize is the number of requests per write (default 1024, at
	// most 8192 so that one batch's error replies fit the receive buffer).
	BatchSize int
	// SocketBuffer is the send and receive buffer of the writer and dump
	// sockets, set with SO_SNDBUFFORCE/SO_RCVBUFFORCE (default 16 MiB).
	SocketBuffer int
	// EventBuffer is the initial receive buffer of the event socket
	// (default 64 MiB); on ENOBUFS it doubles up to MaxEventBuffer
	// (default 4 × EventBuffer).
	EventBuffer, MaxEventBuffer int
	// TCPWindowTracking sends the TCP window scale factors on commit and
	// lets the kernel track windows. Off (conntrackd's default), committed
	// TCP entries are marked IP_CT_TCP_FLAG_BE_LIBERAL in both directions
	// since the replicated state has no window data.
	TCPWindowTracking bool
	// DefaultTimeout is given to committed flows whose Timeout is 0
	// (default 60 s, conntrackd's fallback for an expired estimate).
	DefaultTimeout uint32
	// OwnUpdateEvents delivers the NEW and UPDATE events caused by this
	// adapter's own writes (marked Own). Off, a socket filter drops them
	// in the kernel (see ownfilter_linux.go); own DESTROY events are
	// always delivered.
	OwnUpdateEvents bool
}

// KernelStats are the adapter's counters.
type KernelStats struct {
	// Events is the number of events delivered to the sink.
	Events uint64
	// Overruns counts ENOBUFS on the event socket (each delivered as an
	// EventOverrun).
	Overruns uint64
	// DecodeErrors counts kernel messages that could not be decoded and
	// were skipped (events and dumps).
	DecodeErrors uint64
	// EventBuffer is the event socket's current receive buffer in bytes as
	// the kernel reports it (0 before Events).
	EventBuffer int
}

// LinuxKernel implements Kernel over ctnetlink with raw netlink sockets:
// one writer socket (commit, delete, flush), one dump socket and one event
// socket. Commit and Delete are serialised with each other; Dump and Events
// may run concurrently with them.
type LinuxKernel struct {
	opts KernelOptions
	enc  nlEncodeOptions

	wmu  sync.Mutex // writer socket, wbuf, seq
	w    *nlSocket
	wbuf []byte
	wrx  *nlMmsg
	seq  uint32

	dmu  sync.Mutex // dump socket, dbuf, dseq
	d    *nlSocket
	dbuf []byte
	dseq uint32
	// dumpPending is the sequence number of a dump abandoned by a
	// cancelled Dump: the kernel will not start another one on the socket
	// (EBUSY) until its rest has been read.
	dumpPending uint32
	// dflows is DumpEach's batch, kept for the next dump.
	dflows []Flow

	ev        *nlSocket
	listening atomic.Bool
	// subscribed is closed once the first Events has joined the event
	// groups (Subscribed).
	subscribed     chan struct{}
	subscribedOnce sync.Once
	evBufSize      int // guarded by listening
	// gap is set by CommitQuiet after it has joined the NEW and UPDATE
	// groups again; the event loop turns it into an EventGap.
	gap atomic.Bool

	events, overruns, decodeErrs atomic.Uint64
	evBufNow                     atomic.Int64

	closeOnce sync.Once
	closeErr  error
}

// Event socket geometry: 128 datagrams per recvmmsg, each one event
// (a conntrack event is a few hundred bytes).
const (
	nlEventVlen     = 128
	nlEventSlot     = 8192
	nlBatchDeadline = 10 * time.Second
	// nlEventPoll bounds a blocking event read: how soon Events sees the
	// end of its context or a gap.
	nlEventPoll = 100 * time.Millisecond
	// nlEventPause is the reader's sleep after a read that emptied the
	// queue, so the next read takes a batch instead of one event: the
	// added latency of an event is at most this.
	nlEventPause = time.Millisecond
)

// NewKernel opens the ctnetlink sockets in the current namespace or in
// opts.NetNS. It needs CAP_NET_ADMIN in that namespace.
func NewKernel(opts KernelOptions) (*LinuxKernel, error) {
	if opts.BatchSize <= 0 {
		opts.BatchSize = 1024
	}
	opts.BatchSize = min(opts.BatchSize, 8192)
	if opts.SocketBuffer <= 0 {
		opts.SocketBuffer = 16 << 20
	}
	if opts.EventBuffer <= 0 {
		opts.EventBuffer = 64 << 20
	}
	if opts.MaxEventBuffer < opts.EventBuffer {
		opts.MaxEventBuffer = 4 * opts.EventBuffer
	}
	if opts.DefaultTimeout == 0 {
		opts.DefaultTimeout = 60
	}
	k := &LinuxKernel{
		opts:       opts,
		subscribed: make(chan struct{}),
		enc: nlEncodeOptions{
			tcpWindowTracking: opts.TCPWindowTracking,
			defaultTimeout:    opts.DefaultTimeout,
		},
		evBufSize: opts.EventBuffer,
	}
	err := nlInNetNS(opts.NetNS, func() error {
		var err error
		if k.w, err = nlOpen(opts.SocketBuffer, opts.SocketBuffer); err != nil {
			return err
		}
		if k.d, err = nlOpen(0, opts.SocketBuffer); err != nil {
			return err
		}
		// The event socket joins its groups only while Events runs, so
		// nothing piles up in its buffer before.
		k.ev, err = nlOpenEvents(nlEventPoll)
		return err
	})
	if err == nil && !opts.OwnUpdateEvents {
		var prog []bpf.RawInstruction
		if prog, err = nlOwnEventFilter(k.w.portID); err == nil {
			err = k.ev.attachFilter(prog)
		}
	}
	if err != nil {
		k.Close()
		return nil, err
	}
	k.wrx = newNLMmsg(64, 4096)
	return k, nil
}

// PortID is the netlink port id of the writer socket: kernel events caused
// by Commit, Delete and Flush carry it in their header (Event.Own).
func (k *LinuxKernel) PortID() uint32 { return k.w.portID }

// Stats returns the adapter's counters.
func (k *LinuxKernel) Stats() KernelStats {
	return KernelStats{
		Events:       k.events.Load(),
		Overruns:     k.overruns.Load(),
		DecodeErrors: k.decodeErrs.Load(),
		EventBuffer:  int(k.evBufNow.Load()),
	}
}

// Close closes the sockets. A running Events returns.
func (k *LinuxKernel) Close() error {
	k.closeOnce.Do(func() {
		var errs []error
		for _, s := range []*nlSocket{k.w, k.d, k.ev} {
			if s != nil {
				errs = append(errs, s.close())
			}
		}
		k.closeErr = errors.Join(errs...)
	})
	return k.closeErr
}

// batchEncoder appends the request for item i with the given sequence
// number and extra flags.
type batchEncoder func(b []byte, i int, seq uint32, flags uint16) ([]byte, error)

// runBatches sends n requests in batches of opts.BatchSize per write in
// errors-only mode: only the last request of each batch asks for an ACK,
// which marks the end of the batch's replies (the kernel handles requests
// in order inside the write). It returns the errno of every request, 0 for
// success. Requests that cannot be encoded get EINVAL without being sent.
// Callers hold wmu.
func (k *LinuxKernel) runBatches(ctx context.Context, n int, enc batchEncoder) ([]unix.Errno, error) {
	errnos := make([]unix.Errno, n)
	for start := 0; start < n; start += k.opts.BatchSize {
		if err := ctx.Err(); err != nil {
			return errnos, err
		}
		end := min(start+k.opts.BatchSize, n)
		base := k.seq + 1
		k.seq += uint32(end - start)
		b := k.wbuf[:0]
		last := -1
		for i := start; i < end; i++ {
			off := len(b)
			var err error
			b, err = enc(b, i, base+uint32(i-start), 0)
			if err != nil {
				errnos[i] = unix.EINVAL
				continue
			}
			last = off
		}
		k.wbuf = b
		if last < 0 {
			continue
		}
		// Ask for an ACK on the last message: its reply ends the batch.
		flags := binary.NativeEndian.Uint16(b[last+6:])
		binary.NativeEndian.PutUint16(b[last+6:], flags|nlmFAck)
		lastSeq := binary.NativeEndian.Uint32(b[last+8:])
		if err := k.w.send(b); err != nil {
			return errnos, fmt.Errorf("ctnetlink: send batch: %w", err)
		}
		if err := k.collect(ctx, base, errnos[start:end], lastSeq); err != nil {
			return errnos, err
		}
	}
	return errnos, nil
}

// collect reads the replies of one batch until the ACK of lastSeq.
func (k *LinuxKernel) collect(ctx context.Context, base uint32, errnos []unix.Errno, lastSeq uint32) error {
	done := k.w.withDeadline(ctx, nlBatchDeadline)
	defer done()
	for {
		cnt, err := k.w.recvmmsg(k.wrx)
		if err != nil {
			if ctx.Err() != nil {
				return ctx.Err()
			}
			if errors.Is(err, os.ErrDeadlineExceeded) {
				return fmt.Errorf("ctnetlink: no reply to batch within %v", nlBatchDeadline)
			}
			return fmt.Errorf("ctnetlink: receive replies: %w", err)
		}
		for i := range cnt {
			b, _ := k.wrx.msg(i)
			for len(b) > 0 {
				h, payload, rest, ok := nlNextMessage(b)
				if !ok {
					break
				}
				b = rest
				if h.Type != nlmsgError || len(payload) < nlmsgErrLen {
					continue
				}
				code := int32(binary.NativeEndian.Uint32(payload))
				if idx := h.Seq - base; idx < uint32(len(errnos)) && code < 0 {
					errnos[idx] = unix.Errno(-code)
				}
				if h.Seq == lastSeq {
					return nil
				}
			}
		}
	}
}

// Commit writes flows into the kernel table in batches. Each flow is first
// created (NLM_F_CREATE|NLM_F_EXCL, NAT and helper included). A flow that
// already exists (EEXIST) is then updated to the replicated state, without
// NAT attributes since the kernel cannot change a NAT binding (EOPNOTSUPP);
// an existing entry that must carry a NAT binding, or whose update fails
// otherwise (e.g. EBUSY), is deleted and created again, as conntrackd does,
// so the replicated state and binding win. An update that finds the entry
// gone (ENOENT) creates it. Created counts new entries, Updated existing
// entries brought to the replicated state; Failed counts the rest by errno.
func (k *LinuxKernel) Commit(ctx context.Context, flows []Flow) (res CommitResult, err error) {
	return k.commit(ctx, flows, nil)
}

// CommitReport is Commit that also says which flows failed (failed[i]),
// for a caller that records what it wrote instead of reading it back from
// the (filtered) own events.
func (k *LinuxKernel) CommitReport(ctx context.Context, flows []Flow) (CommitResult, []bool, error) {
	failed := make([]bool, len(flows))
	res, err := k.commit(ctx, flows, func(i int) { failed[i] = true })
	return res, failed, err
}

// FiltersOwnUpdates reports whether the own NEW and UPDATE events are
// dropped in the kernel (KernelOptions.OwnUpdateEvents off).
func (k *LinuxKernel) FiltersOwnUpdates() bool { return !k.opts.OwnUpdateEvents }

func (k *LinuxKernel) commit(ctx context.Context, flows []Flow, failedAt func(int)) (res CommitResult, err error) {
	start := time.Now()
	res.Failed = map[string]int{}
	k.wmu.Lock()
	defer k.wmu.Unlock()
	defer func() { res.Duration = time.Since(start) }()

	fail := func(i int, e unix.Errno) {
		res.Failed[unix.ErrnoName(e)]++
		if failedAt != nil {
			failedAt(i)
		}
	}

	// Pass 1: create everything.
	errnos, err := k.runBatches(ctx, len(flows), func(b []byte, i int, seq uint32, fl uint16) ([]byte, error) {
		return nlAppendRequest(b, nlReqCreate, &flows[i], seq, fl, &k.enc)
	})
	if err != nil {
		return res, err
	}
	var update, replace []int
	for i, e := range errnos {
		switch {
		case e == 0:
			res.Created++
		case e == unix.EEXIST && (flows[i].SNAT.Addr.IsValid() || flows[i].DNAT.Addr.IsValid() ||
			flows[i].SNAT.Port != 0 || flows[i].DNAT.Port != 0):
			replace = append(replace, i)
		case e == unix.EEXIST:
			update = append(update, i)
		default:
			fail(i, e)
		}
	}

	// Pass 2: update existing entries (no NAT).
	var recreate []int
	if len(update) > 0 {
		errnos, err = k.runBatches(ctx, len(update), func(b []byte, i int, seq uint32, fl uint16) ([]byte, error) {
			return nlAppendRequest(b, nlReqUpdate, &flows[update[i]], seq, fl, &k.enc)
		})
		if err != nil {
			return res, err
		}
		for j, e := range errnos {
			switch e {
			case 0:
				res.Updated++
			case unix.ENOENT:
				recreate = append(recreate, update[j])
			default:
				replace = append(replace, update[j])
			}
		}
	}

	// Pass 3: delete the entries to replace.
	if len(replace) > 0 {
		errnos, err = k.runBatches(ctx, len(replace), func(b []byte, i int, seq uint32, fl uint16) ([]byte, error) {
			return nlAppendRequest(b, nlReqDelete, &flows[replace[i]], seq, fl, &k.enc)
		})
		if err != nil {
			return res, err
		}
		kept := replace[:0]
		for j, e := range errnos {
			if e == 0 || e == unix.ENOENT {
				kept = append(kept, replace[j])
			} else {
				fail(replace[j], e)
			}
		}
		replace = kept
	}

	// Pass 4: create the replaced and vanished entries.
	nReplace := len(replace)
	again := append(replace, recreate...)
	if len(again) > 0 {
		errnos, err = k.runBatches(ctx, len(again), func(b []byte, i int, seq uint32, fl uint16) ([]byte, error) {
			return nlAppendRequest(b, nlReqCreate, &flows[again[i]], seq, fl, &k.enc)
		})
		if err != nil {
			return res, err
		}
		for j, e := range errnos {
			switch {
			case e != 0:
				fail(again[j], e)
			case j < nReplace:
				res.Updated++
			default:
				res.Created++
			}
		}
	}
	return res, nil
}

// nlQuietGroups are the groups CommitQuiet leaves: the commit's own events
// go there. DESTROY stays joined.
var nlQuietGroups = []int{unix.NFNLGRP_CONNTRACK_NEW, unix.NFNLGRP_CONNTRACK_UPDATE}

// CommitQuiet is Commit with the event socket out of the NEW and UPDATE
// groups while it runs, so that the kernel does not build an event per
// entry when no other listener is subscribed (ctsync/commitquiet.go says
// why and how the engine reconciles). If Events
// is running, it delivers an EventGap once the groups are joined again:
// traffic events of the window may be missing and the caller reconciles
// with a dump. Without a running Events it is Commit.
func (k *LinuxKernel) CommitQuiet(ctx context.Context, flows []Flow) (res CommitResult, err error) {
	err = k.quietly(func() error {
		res, err = k.Commit(ctx, flows)
		return err
	})
	return res, err
}

// CommitReportQuiet is CommitReport out of the NEW and UPDATE groups, as
// CommitQuiet is Commit.
func (k *LinuxKernel) CommitReportQuiet(ctx context.Context, flows []Flow) (res CommitResult, failed []bool, err error) {
	err = k.quietly(func() error {
		res, failed, err = k.CommitReport(ctx, flows)
		return err
	})
	return res, failed, err
}

// quietly runs write with the event socket out of the NEW and UPDATE
// groups, and has the event loop report a gap afterwards. Without a
// running Events, or when the groups cannot be left, it just runs write.
func (k *LinuxKernel) quietly(write func() error) error {
	if !k.listening.Load() {
		return write()
	}
	if err := k.ev.setGroups(false, nlQuietGroups...); err != nil {
		// Still subscribed (or partly): write paying for the events.
		_ = k.ev.setGroups(true, nlQuietGroups...)
		return write()
	}
	err := write()
	if jerr := k.ev.setGroups(true, nlQuietGroups...); jerr != nil {
		err = errors.Join(err, fmt.Errorf("ctnetlink: join event groups after commit: %w", jerr))
	}
	// Whatever the outcome, events may have been missed: the event loop
	// reports the gap after its next read (within nlEventPoll).
	k.gap.Store(true)
	return err
}

// Delete removes entries by original tuple and zone in batches. Missing
// entries (ENOENT) are neither counted as deleted nor as failed.
func (k *LinuxKernel) Delete(ctx context.Context, keys []Key) (CommitResult, error) {
	start := time.Now()
	res := CommitResult{Failed: map[string]int{}}
	k.wmu.Lock()
	defer k.wmu.Unlock()
	var f Flow
	errnos, err := k.runBatches(ctx, len(keys), func(b []byte, i int, seq uint32, fl uint16) ([]byte, error) {
		f.Key = keys[i]
		return nlAppendRequest(b, nlReqDelete, &f, seq, fl, &k.enc)
	})
	if err == nil {
		for _, e := range errnos {
			switch e {
			case 0:
				res.Deleted++
			case unix.ENOENT:
			default:
				res.Failed[unix.ErrnoName(e)]++
			}
		}
	}
	res.Duration = time.Since(start)
	return res, err
}

// Flush empties the whole conntrack table of the namespace (every zone and
// family). The resulting DESTROY events are marked Own.
func (k *LinuxKernel) Flush(ctx context.Context) error {
	k.wmu.Lock()
	defer k.wmu.Unlock()
	errnos, err := k.runBatches(ctx, 1, func(b []byte, _ int, seq uint32, fl uint16) ([]byte, error) {
		return nlAppendFlush(b, seq, fl), nil
	})
	if err != nil {
		return err
	}
	if errnos[0] != 0 {
		return fmt.Errorf("ctnetlink: flush: %w", errnos[0])
	}
	return nil
}

// Dump reads every entry of the table (all families and zones) into one
// slice. Messages that cannot be decoded are skipped and counted in
// Stats.DecodeErrors. A large table is better read with DumpEach: as one
// slice, a 1,000,000-entry table is about 200 MB.
func (k *LinuxKernel) Dump(ctx context.Context) ([]Flow, error) {
	var flows []Flow
	err := k.DumpEach(ctx, func(batch []Flow) error {
		flows = append(flows, batch...)
		return nil
	})
	if err != nil {
		return nil, err
	}
	return flows, nil
}

// DumpEach reads every entry of the table (all families and zones) and
// hands them to fn in batches, one per read from the socket (a few
// thousand entries), so that a dump holds one batch in memory, not the
// table. fn must not keep the slice: the next batch is decoded into it.
// Messages that cannot be decoded are skipped and counted in
// Stats.DecodeErrors. An error from fn ends the dump and is returned as
// is; the rest of the kernel's answer is read and dropped by the next
// dump. Only one dump runs at a time.
func (k *LinuxKernel) DumpEach(ctx context.Context, fn func([]Flow) error) error {
	k.dmu.Lock()
	defer k.dmu.Unlock()
	if k.dbuf == nil {
		k.dbuf = make([]byte, 1<<20)
	}
	done := k.d.withDeadline(ctx, 0)
	defer done()
	if k.dumpPending != 0 {
		if err := k.drainDump(ctx); err != nil {
			return err
		}
	}
	k.dseq++
	seq := k.dseq
	req := nlAppendDumpRequest(make([]byte, 0, 32), seq)
	if err := k.d.send(req); err != nil {
		return fmt.Errorf("ctnetlink: dump request: %w", err)
	}
	batch := k.dflows[:0]
	defer func() {
		clear(batch) // no addresses, labels or helpers kept alive between dumps
		k.dflows = batch[:0]
	}()
	for {
		n, err := k.d.recv(k.dbuf)
		if err != nil {
			if ctx.Err() != nil {
				k.dumpPending = seq
				return ctx.Err()
			}
			return fmt.Errorf("ctnetlink: dump: %w", err)
		}
		clear(batch)
		batch = batch[:0]
		end, err := k.decodeDumpBatch(k.dbuf[:n], seq, &batch)
		if err != nil {
			return err
		}
		if len(batch) > 0 {
			if err := fn(batch); err != nil {
				if !end {
					k.dumpPending = seq
				}
				return err
			}
		}
		if end {
			return nil
		}
	}
}

// decodeDumpBatch appends the flows of one read of dump seq to batch. It
// reports whether the dump's last message (NLMSG_DONE) was in it, and the
// kernel's error when the dump failed.
func (k *LinuxKernel) decodeDumpBatch(b []byte, seq uint32, batch *[]Flow) (end bool, err error) {
	for len(b) > 0 {
		h, payload, rest, ok := nlNextMessage(b)
		if !ok {
			k.decodeErrs.Add(1)
			return false, nil
		}
		b = rest
		if h.Seq != seq {
			continue // a stale reply of an interrupted dump
		}
		switch h.Type {
		case nlmsgDone:
			return true, nil
		case nlmsgError:
			if len(payload) >= nlmsgErrLen {
				if code := int32(binary.NativeEndian.Uint32(payload)); code < 0 {
					return true, fmt.Errorf("ctnetlink: dump: %w", unix.Errno(-code))
				}
			}
			continue
		}
		fl := slices.Grow(*batch, 1)[:len(*batch)+1]
		if err := nlDecodeFlow(payload, &fl[len(fl)-1]); err != nil {
			fl[len(fl)-1] = Flow{}
			fl = fl[:len(fl)-1]
			k.decodeErrs.Add(1)
		}
		*batch = fl
	}
	return false, nil
}

// drainDump reads the rest of an abandoned dump. Callers hold dmu.
func (k *LinuxKernel) drainDump(ctx context.Context) error {
	for k.dumpPending != 0 {
		n, err := k.d.recv(k.dbuf)
		if err != nil {
			if ctx.Err() != nil {
				return ctx.Err()
			}
			return fmt.Errorf("ctnetlink: drain abandoned dump: %w", err)
		}
		for b := k.dbuf[:n]; len(b) > 0; {
			h, _, rest, ok := nlNextMessage(b)
			if !ok {
				break
			}
			b = rest
			if h.Seq == k.dumpPending && (h.Type == nlmsgDone || h.Type == nlmsgError) {
				k.dumpPending = 0
			}
		}
	}
	return nil
}

// Subscribed returns a channel that is closed once Events has joined the
// event groups: a change made after that is reported. A caller that dumps
// the table to start from waits for it, so that nothing created between
// its dump and the subscription goes unseen.
func (k *LinuxKernel) Subscribed() <-chan struct{} { return k.subscribed }

// Events subscribes to conntrack NEW, UPDATE and DESTROY events and hands
// them to sink in batches (one batch per recvmmsg, up to 128 events) until
// ctx ends, then returns nil. The slice is valid only during the call: the
// reader decodes the next batch into it (a fresh slice per batch was a
// fifth of the sender's allocation at 100,000 events). Only one Events
// may run at a time. On ENOBUFS (events lost) the receive buffer is doubled
// up to MaxEventBuffer, the overrun is counted and an EventOverrun event is
// delivered so the engine can resync. Events caused by this LinuxKernel's
// own writes carry its writer socket's port id and are marked Own.
func (k *LinuxKernel) Events(ctx context.Context, sink func([]Event)) error {
	if !k.listening.CompareAndSwap(false, true) {
		return errors.New("ctnetlink: Events already running")
	}
	defer k.listening.Store(false)
	k.gap.Store(false) // the caller dumps at start anyway

	// A Close racing with the start is a clean stop, as it is once running.
	if err := k.ev.setRcvBuf(k.evBufSize); errors.Is(err, os.ErrClosed) {
		return nil
	} else if err != nil {
		return fmt.Errorf("ctnetlink: event buffer: %w", err)
	}
	k.evBufNow.Store(int64(k.ev.rcvBuf()))
	groups := []int{unix.NFNLGRP_CONNTRACK_NEW, unix.NFNLGRP_CONNTRACK_UPDATE, unix.NFNLGRP_CONNTRACK_DESTROY}
	// Events left queued by an earlier listener are stale: drop them.
	m := newNLMmsg(nlEventVlen, nlEventSlot)
	k.ev.discard(m)
	if err := k.ev.setGroups(true, groups...); errors.Is(err, os.ErrClosed) {
		return nil
	} else if err != nil {
		return fmt.Errorf("ctnetlink: join event groups: %w", err)
	}
	defer func() { _ = k.ev.setGroups(false, groups...) }()
	k.subscribedOnce.Do(func() { close(k.subscribed) })

	own := k.w.portID
	evs := make([]Event, 0, nlEventVlen)
	for {
		if ctx.Err() != nil {
			return nil
		}
		n, err := k.ev.recvmmsgBlocking(m)
		if k.gap.Swap(false) {
			sink([]Event{{Type: EventGap}})
		}
		switch {
		case err == nil:
		case ctx.Err() != nil:
			return nil
		case errors.Is(err, unix.EAGAIN), errors.Is(err, unix.EINTR):
			// The receive timeout (nlEventPoll): look at ctx again.
			continue
		case errors.Is(err, unix.ENOBUFS):
			k.overruns.Add(1)
			if k.evBufSize < k.opts.MaxEventBuffer {
				k.evBufSize = min(2*k.evBufSize, k.opts.MaxEventBuffer)
				if err := k.ev.setRcvBuf(k.evBufSize); err != nil {
					return fmt.Errorf("ctnetlink: grow event buffer: %w", err)
				}
				k.evBufNow.Store(int64(k.ev.rcvBuf()))
			}
			sink([]Event{{Type: EventOverrun}})
			continue
		case errors.Is(err, os.ErrClosed):
			return nil
		default:
			return fmt.Errorf("ctnetlink: receive events: %w", err)
		}
		evs = evs[:0]
		bad := 0
		for i := range n {
			b, trunc := m.msg(i)
			if trunc {
				bad++
				continue
			}
			var nb int
			evs, nb = nlAppendEvents(evs, b, own)
			bad += nb
		}
		if bad > 0 {
			k.decodeErrs.Add(uint64(bad))
		}
		if len(evs) > 0 {
			k.events.Add(uint64(len(evs)))
			sink(evs)
		}
		if n < nlEventVlen {
			// The queue is empty: let events gather instead of being
			// woken for each (nlOpenEvents).
			time.Sleep(nlEventPause)
		}
	}
}
