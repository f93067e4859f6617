package ctnetlink

// The kernel-side filter of the event socket: a classic BPF program that
// drops the NEW and UPDATE events caused by this adapter's own writer socket
// before they are queued, so a node that injects what its peer sends (or
// commits its external cache) does not receive, decode and cache every entry
// it has just written (issue #14: "stop paying twice").
//
// Why it is sound. ctnetlink stamps an event with the netlink port id of the
// socket whose request caused it (nlmsg_pid; 0 for traffic and timeouts;
// TestPrivilegedEventFilter checks it on the running kernel). Every write of
// the daemon goes through the one writer socket, so "nlmsg_pid == writer's
// port id and nlmsg_type == CT_NEW" is exactly "a NEW or UPDATE event of our
// own write". What the engine did with those events, and does now:
//
//   - in direct-inject mode it put the entry into the internal cache,
//     flagged injected, and sent nothing (Own): the consistency check's
//     BACKUP view of the peer's table (ctsync/digest.go). The injector now records
//     the flows the kernel accepted itself, right after the write
//     (ctsync/eventfilter.go, through CommitReport), which costs a cache insert instead of the kernel's
//     copy to user space, the decode and the insert.
//   - after a commit (external-cache mode) it put the committed entries
//     into the internal cache. The MASTER transition resyncs the internal
//     cache from a kernel dump before its BulkSend (appliance/
//     transitions.go), and the commit itself reconciles with a dump
//     (ctsync/commitquiet.go), so nothing needs the echo.
//   - a later traffic-driven update of a written entry carries port id 0,
//     passes the filter and is replicated as before.
//
// DESTROY events always pass: an own DESTROY (a delete, the delete half of a
// replace, a flush, a purge) removes a not-injected entry from the internal
// cache without being sent (an injected entry is left to the writer that
// deleted it, ctsync/eventfilter.go says why), and the DESTROY events of the
// node's own flows (timeouts, traffic, foreign tools) arrive as before.
//
// The kernel still builds every event while the socket is in the group (a
// filter runs after that): for the engine's Commit the socket leaves the
// NEW and UPDATE groups instead (CommitQuiet); for direct inject, which
// runs all the time, it cannot without losing traffic events, so that
// cost (about a fifth of the receiver's CPU per injected flow, profiled in
// the bench) remains the kernel's.
//
// The program, on the message as the kernel queues it (struct nlmsghdr at
// offset 0; one event per datagram):
//
//	ld  [12]                  ; nlmsg_pid
//	jne #own, accept
//	ldh [4]                   ; nlmsg_type
//	jne #CT_NEW, accept
//	ret #0                    ; drop
//	accept: ret #0xffffffff   ; keep the whole message
//
// Classic BPF loads are big-endian while nlmsghdr is in host order, so the
// constants are the host-order bytes read as big-endian.

import (
	"encoding/binary"
	"errors"
	"fmt"

	"golang.org/x/net/bpf"
	"golang.org/x/sys/unix"
)

// nlOwnEventFilter returns the program that drops CT_NEW messages (NEW and
// UPDATE events) stamped with portID.
func nlOwnEventFilter(portID uint32) ([]bpf.RawInstruction, error) {
	if portID == 0 {
		return nil, errors.New("ctnetlink: event filter: port id 0 would drop traffic events")
	}
	var pid [4]byte
	binary.NativeEndian.PutUint32(pid[:], portID)
	var typ [2]byte
	binary.NativeEndian.PutUint16(typ[:], nfnlSubsysCtnetlink<<8|ipctnlMsgCtNew)
	return bpf.Assemble([]bpf.Instruction{
		bpf.LoadAbsolute{Off: 12, Size: 4},
		bpf.JumpIf{Cond: bpf.JumpNotEqual, Val: binary.BigEndian.Uint32(pid[:]), SkipTrue: 3},
		bpf.LoadAbsolute{Off: 4, Size: 2},
		bpf.JumpIf{Cond: bpf.JumpNotEqual, Val: uint32(binary.BigEndian.Uint16(typ[:])), SkipTrue: 1},
		bpf.RetConstant{Val: 0},
		bpf.RetConstant{Val: 0xffffffff},
	})
}

// attachFilter installs a classic BPF program on the socket
// (SO_ATTACH_FILTER), replacing any earlier one.
func (s *nlSocket) attachFilter(prog []bpf.RawInstruction) error {
	if len(prog) == 0 {
		return errors.New("ctnetlink: empty socket filter")
	}
	ins := make([]unix.SockFilter, len(prog))
	for i, r := range prog {
		ins[i] = unix.SockFilter{Code: r.Op, Jt: r.Jt, Jf: r.Jf, K: r.K}
	}
	fprog := unix.SockFprog{Len: uint16(len(ins)), Filter: &ins[0]}
	var err error
	cerr := s.rc.Control(func(fd uintptr) {
		err = unix.SetsockoptSockFprog(int(fd), unix.SOL_SOCKET, unix.SO_ATTACH_FILTER, &fprog)
	})
	if err = errors.Join(cerr, err); err != nil {
		return fmt.Errorf("ctnetlink: attach event filter: %w", err)
	}
	return nil
}
