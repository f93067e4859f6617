package ctnetlink

import (
	"encoding/binary"
	"testing"

	"golang.org/x/net/bpf"
)

// TestOwnEventFilterProgram runs the filter in x/net/bpf's interpreter
// (the kernel's semantics for classic BPF) on messages as ctnetlink queues
// them: own NEW and UPDATE are dropped, everything else is kept whole.
func TestOwnEventFilterProgram(t *testing.T) {
	const own = 0x8000_1234
	raw, err := nlOwnEventFilter(own)
	if err != nil {
		t.Fatal(err)
	}
	ins, ok := bpf.Disassemble(raw)
	if !ok {
		t.Fatal("program does not disassemble")
	}
	vm, err := bpf.NewVM(ins)
	if err != nil {
		t.Fatal(err)
	}
	msg := func(typ, flags uint16, pid uint32) []byte {
		b := make([]byte, 40)
		binary.NativeEndian.PutUint32(b[0:], uint32(len(b)))
		binary.NativeEndian.PutUint16(b[4:], typ)
		binary.NativeEndian.PutUint16(b[6:], flags)
		binary.NativeEndian.PutUint32(b[8:], 7)
		binary.NativeEndian.PutUint32(b[12:], pid)
		return b
	}
	ctNew := uint16(nfnlSubsysCtnetlink<<8 | ipctnlMsgCtNew)
	ctDel := uint16(nfnlSubsysCtnetlink<<8 | ipctnlMsgCtDelete)
	for _, tt := range []struct {
		name string
		msg  []byte
		keep bool
	}{
		{"own NEW", msg(ctNew, nlmFCreate|nlmFExcl, own), false},
		{"own UPDATE", msg(ctNew, 0, own), false},
		{"own DESTROY", msg(ctDel, 0, own), true},
		{"traffic NEW (port id 0)", msg(ctNew, nlmFCreate|nlmFExcl, 0), true},
		{"traffic UPDATE", msg(ctNew, 0, 0), true},
		{"traffic DESTROY", msg(ctDel, 0, 0), true},
		{"other writer's NEW", msg(ctNew, nlmFCreate, own+1), true},
		{"port id with the bytes swapped", msg(ctNew, nlmFCreate, 0x3412_0080), true},
		{"other subsystem, own port id", msg(2<<8|ipctnlMsgCtNew, 0, own), true},
	} {
		n, err := vm.Run(tt.msg)
		if err != nil {
			t.Fatalf("%s: %v", tt.name, err)
		}
		// The kernel keeps min(n, len) bytes; 0 drops the message.
		if keep := n >= len(tt.msg); keep != tt.keep || (n != 0 && !keep) {
			t.Errorf("%s: filter returned %d of %d bytes, want keep=%v", tt.name, n, len(tt.msg), tt.keep)
		}
	}
	if _, err := nlOwnEventFilter(0); err == nil {
		t.Error("a filter for port id 0 (traffic) was built")
	}
}
