package vrrp

import (
	"testing"
	"time"
	"unsafe"

	"golang.org/x/sys/unix"
)

// The ring runs a request linked to an absolute timeout when it expires,
// not before, and a removed timeout cancels its linked request.
func TestURingLinkedTimeout(t *testing.T) {
	r, err := newURing(16)
	if err != nil {
		t.Skipf("no io_uring here: %v", err)
	}
	defer r.close()
	w := new(uringWait)
	queue := func(at *unix.Timespec, id uint64) {
		to := r.queue()
		to.opcode = uringOpTimeout
		to.flags = uringSQEIOLink
		to.addr = uint64(uintptr(unsafe.Pointer(at)))
		to.len = 1
		to.opFlags = uringTimeoutAbs | uringTimeoutETimeSucces
		to.userData = id
		nop := r.queue()
		nop.opcode = uringOpNop
		nop.userData = id + 1
	}
	at1, at2 := new(unix.Timespec), new(unix.Timespec)
	start := time.Now()
	*at1 = unix.NsecToTimespec(monotonic(start.Add(30*time.Millisecond), start))
	*at2 = unix.NsecToTimespec(monotonic(start.Add(time.Hour), start))
	queue(at1, 10)
	queue(at2, 20)
	if err := r.submit(); err != nil {
		t.Fatal(err)
	}
	rm := r.queue()
	rm.opcode = uringOpTimeoutRemove
	rm.addr = 20
	rm.userData = 30
	if err := r.submit(); err != nil {
		t.Fatal(err)
	}
	res := map[uint64]int32{}
	ran := time.Duration(0)
	for time.Since(start) < 2*time.Second && (len(res) < 5) {
		r.reap(func(ud uint64, v int32) {
			res[ud] = v
			if ud == 11 {
				ran = time.Since(start)
			}
		})
		r.wait(w, int64(10*time.Millisecond))
	}
	if v, ok := res[11]; !ok || v != 0 {
		t.Errorf("request linked to the expired timeout: %v, %v; want run (0)", v, ok)
	}
	if ran < 30*time.Millisecond {
		t.Errorf("linked request ran after %v, before its timeout (30ms)", ran)
	}
	if v, ok := res[21]; !ok || v != -int32(unix.ECANCELED) {
		t.Errorf("request linked to the removed timeout: %v, %v; want ECANCELED", v, ok)
	}
}
