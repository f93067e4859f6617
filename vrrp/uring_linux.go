package vrrp

// A minimal io_uring (no liburing, no cgo) for the advert pacer: it
// queues each periodic advert as an absolute CLOCK_MONOTONIC timeout
// linked to a sendmsg, so the kernel sends it on time by itself. See
// pacer_uring_linux.go for why.

import (
	"errors"
	"fmt"
	"runtime"
	"sync/atomic"
	"time"
	"unsafe"

	"golang.org/x/sys/unix"
)

// The io_uring ABI (include/uapi/linux/io_uring.h).
const (
	sysIOURingSetup = 425
	sysIOURingEnter = 426

	uringOffSQRing = 0
	uringOffCQRing = 0x8000000
	uringOffSQEs   = 0x10000000

	uringFeatSingleMmap = 1 << 0
	uringFeatExtArg     = 1 << 8

	uringOpNop           = 0
	uringOpPollAdd       = 6
	uringOpSendmsg       = 9
	uringOpTimeout       = 11
	uringOpTimeoutRemove = 12

	uringSQEIOLink = 1 << 2

	uringTimeoutAbs         = 1 << 0
	uringTimeoutETimeSucces = 1 << 5 // a timeout that expires does not break its link

	uringEnterGetEvents = 1 << 0
	uringEnterExtArg    = 1 << 3
)

type uringSQOffsets struct {
	head, tail, ringMask, ringEntries, flags, dropped, array, resv1 uint32
	userAddr                                                        uint64
}

type uringCQOffsets struct {
	head, tail, ringMask, ringEntries, overflow, cqes, flags, resv1 uint32
	userAddr                                                        uint64
}

type uringParams struct {
	sqEntries, cqEntries, flags, sqThreadCPU, sqThreadIdle, features, wqFD uint32
	resv                                                                   [3]uint32
	sqOff                                                                  uringSQOffsets
	cqOff                                                                  uringCQOffsets
}

// uringSQE is struct io_uring_sqe (64 bytes).
type uringSQE struct {
	opcode      uint8
	flags       uint8
	ioprio      uint16
	fd          int32
	off         uint64
	addr        uint64
	len         uint32
	opFlags     uint32
	userData    uint64
	bufIndex    uint16
	personality uint16
	spliceFDIn  int32
	addr3       uint64
	pad         uint64
}

// uringCQE is struct io_uring_cqe (16 bytes).
type uringCQE struct {
	userData uint64
	res      int32
	flags    uint32
}

// uringGetEventsArg is struct io_uring_getevents_arg.
type uringGetEventsArg struct {
	sigmask   uint64
	sigmaskSz uint32
	minWait   uint32
	ts        uint64
}

// uring is one io_uring instance. It is not safe for concurrent use:
// the pacer serialises every call but wait under its mutex.
type uring struct {
	fd             int
	sqMem, cqMem   []byte
	sqeMem         []byte
	sqHead, sqTail *uint32
	sqMask         uint32
	sqEntries      uint32
	sqArray        []uint32
	sqes           []uringSQE
	cqHead, cqTail *uint32
	cqMask         uint32
	cqes           []uringCQE
	tail           uint32 // local SQ tail, published by submit
	pending        uint32 // SQEs queued, not yet submitted
}

func newURing(entries uint32) (*uring, error) {
	var p uringParams
	fd, _, errno := unix.Syscall(sysIOURingSetup, uintptr(entries), uintptr(unsafe.Pointer(&p)), 0)
	if errno != 0 {
		return nil, fmt.Errorf("io_uring_setup: %w", errno)
	}
	r := &uring{fd: int(fd)}
	fail := func(err error) (*uring, error) {
		r.close()
		return nil, err
	}
	if p.features&uringFeatSingleMmap == 0 || p.features&uringFeatExtArg == 0 {
		return fail(errors.New("io_uring: kernel without IORING_FEAT_SINGLE_MMAP or IORING_FEAT_EXT_ARG (Linux 5.11)"))
	}
	sqSize := int(p.sqOff.array + p.sqEntries*4)
	cqSize := int(p.cqOff.cqes + p.cqEntries*uint32(unsafe.Sizeof(uringCQE{})))
	size := max(sqSize, cqSize)
	mem, err := unix.Mmap(r.fd, uringOffSQRing, size, unix.PROT_READ|unix.PROT_WRITE, unix.MAP_SHARED|unix.MAP_POPULATE)
	if err != nil {
		return fail(fmt.Errorf("io_uring: mmap rings: %w", err))
	}
	r.sqMem, r.cqMem = mem, mem
	sqes, err := unix.Mmap(r.fd, uringOffSQEs, int(p.sqEntries)*int(unsafe.Sizeof(uringSQE{})), unix.PROT_READ|unix.PROT_WRITE, unix.MAP_SHARED|unix.MAP_POPULATE)
	if err != nil {
		return fail(fmt.Errorf("io_uring: mmap SQEs: %w", err))
	}
	r.sqeMem = sqes
	at := func(off uint32) *uint32 { return (*uint32)(unsafe.Pointer(&mem[off])) }
	r.sqHead, r.sqTail = at(p.sqOff.head), at(p.sqOff.tail)
	r.sqMask, r.sqEntries = *at(p.sqOff.ringMask), p.sqEntries
	r.sqArray = unsafe.Slice(at(p.sqOff.array), p.sqEntries)
	r.sqes = unsafe.Slice((*uringSQE)(unsafe.Pointer(&sqes[0])), p.sqEntries)
	r.cqHead, r.cqTail = at(p.cqOff.head), at(p.cqOff.tail)
	r.cqMask = *at(p.cqOff.ringMask)
	r.cqes = unsafe.Slice((*uringCQE)(unsafe.Pointer(&mem[p.cqOff.cqes])), p.cqEntries)
	r.tail = atomic.LoadUint32(r.sqTail)
	if err := r.probeLinkedTimeout(); err != nil {
		return fail(err)
	}
	return r, nil
}

// probeLinkedTimeout checks that an expired timeout lets its linked
// request run (IORING_TIMEOUT_ETIME_SUCCESS, Linux 5.16): without it
// every queued advert would be cancelled.
func (r *uring) probeLinkedTimeout() error {
	ts := new(unix.Timespec) // relative, already expired
	to := r.queue()
	to.opcode = uringOpTimeout
	to.flags = uringSQEIOLink
	to.addr = uint64(uintptr(unsafe.Pointer(ts)))
	to.len = 1
	to.opFlags = uringTimeoutETimeSucces
	to.userData = 1
	nop := r.queue()
	nop.opcode = uringOpNop
	nop.userData = 2
	err := r.submit()
	runtime.KeepAlive(ts)
	if err != nil {
		return fmt.Errorf("io_uring probe: %w", err)
	}
	w := new(uringWait)
	nopRes, done := int32(0), false
	for range 100 {
		r.reap(func(ud uint64, res int32) {
			if ud == 2 {
				nopRes, done = res, true
			}
		})
		if done {
			break
		}
		r.wait(w, int64(time.Millisecond))
	}
	switch {
	case !done:
		return errors.New("io_uring probe: no completion within 100 ms")
	case nopRes != 0:
		return fmt.Errorf("io_uring: a request linked to an expired timeout does not run (%v): kernel without IORING_TIMEOUT_ETIME_SUCCESS (Linux 5.16)", unix.Errno(-nopRes))
	}
	return nil
}

func (r *uring) close() {
	if r.sqeMem != nil {
		_ = unix.Munmap(r.sqeMem)
	}
	if r.sqMem != nil {
		_ = unix.Munmap(r.sqMem)
	}
	_ = unix.Close(r.fd)
}

// free is the number of SQEs that can be queued now.
func (r *uring) free() uint32 {
	return r.sqEntries - (r.tail - atomic.LoadUint32(r.sqHead))
}

// queue reserves the next SQE and returns it zeroed; nil if the ring is
// full.
func (r *uring) queue() *uringSQE {
	if r.free() == 0 {
		return nil
	}
	i := r.tail & r.sqMask
	s := &r.sqes[i]
	*s = uringSQE{}
	r.sqArray[i] = i
	r.tail++
	r.pending++
	return s
}

// submit hands the queued SQEs to the kernel.
func (r *uring) submit() error {
	if r.pending == 0 {
		return nil
	}
	atomic.StoreUint32(r.sqTail, r.tail)
	for r.pending > 0 {
		n, _, errno := unix.Syscall6(sysIOURingEnter, uintptr(r.fd), uintptr(r.pending), 0, 0, 0, 0)
		if errno == unix.EINTR {
			continue
		}
		if errno != 0 {
			return fmt.Errorf("io_uring_enter: %w", errno)
		}
		r.pending -= uint32(n)
		if n == 0 {
			return errors.New("io_uring_enter submitted nothing")
		}
	}
	return nil
}

// wait blocks until a completion is available or timeoutNS passes. It
// may be called without the pacer's mutex: it only reads the rings.
func (r *uring) wait(w *uringWait, timeoutNS int64) {
	w.ts = unix.NsecToTimespec(timeoutNS)
	w.arg = uringGetEventsArg{ts: uint64(uintptr(unsafe.Pointer(&w.ts)))}
	_, _, _ = unix.Syscall6(sysIOURingEnter, uintptr(r.fd), 0, 1, uringEnterGetEvents|uringEnterExtArg,
		uintptr(unsafe.Pointer(&w.arg)), unsafe.Sizeof(w.arg))
	runtime.KeepAlive(w)
}

// uringWait is the memory a wait hands the kernel: allocated once on the
// heap (a pointer the kernel follows must not be into a goroutine stack,
// which may move), one per waiting goroutine.
type uringWait struct {
	ts  unix.Timespec
	arg uringGetEventsArg
}

// reap calls fn for every completion available and consumes them.
func (r *uring) reap(fn func(userData uint64, res int32)) {
	head := atomic.LoadUint32(r.cqHead)
	tail := atomic.LoadUint32(r.cqTail)
	for ; head != tail; head++ {
		c := r.cqes[head&r.cqMask]
		fn(c.userData, c.res)
	}
	atomic.StoreUint32(r.cqHead, head)
}
