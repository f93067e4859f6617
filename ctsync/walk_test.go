package ctsync

import (
	"context"
	"errors"
	"net/netip"
	"sync/atomic"
	"testing"
	"time"

	"github.com/fwpair/fwpair/ctsync/ctnetlink"
	"github.com/fwpair/fwpair/ctsync/ctsynctest"
)

// walkFlow is the i-th of a large set of distinct flows.
func walkFlow(i int) Flow {
	return Flow{Key: Key{Tuple: Tuple{
		Src: netip.AddrFrom4([4]byte{10, byte(i >> 16), byte(i >> 8), byte(i)}), Dst: netip.MustParseAddr("192.0.2.80"),
		SrcPort: uint16(1024 + i%50000), DstPort: 443, Proto: ctnetlink.ProtoTCP}},
		Status: 0xe, Timeout: 300, ProtoState: 3, HasProtoState: true}
}

// TestIntakeDuringWalks proves that a kernel event is taken in (cached
// and queued for the peer) while a whole-table walk over 100,000 entries
// is in its middle: the resync merge of a kernel dump, a bulk send and an
// Entries listing each let the event reader in between two chunks. With a
// walk that held the engine lock from start to end, the event would wait
// for the end of the walk and the test fails.
func TestIntakeDuringWalks(t *testing.T) {
	const n = 100_000
	k := ctsynctest.NewKernel()
	k.SetSilent(true)
	for i := range n {
		k.Create(walkFlow(i))
	}
	k.SetSilent(false)
	_, la, _ := memPair(ModeFTFW)
	e, err := New(Config{NoStartupResync: true}, Options{Kernel: k, Channels: la})
	if err != nil {
		t.Fatal(err)
	}
	var armed atomic.Pointer[func(done int)]
	e.walkYield = func(done int) {
		if h := armed.Swap(nil); h != nil {
			(*h)(done)
		}
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- e.Run(ctx) }()
	defer func() {
		cancel()
		if err := <-done; err != nil {
			t.Error(err)
		}
		e.Close()
	}()
	select {
	case <-e.Ready():
	case <-time.After(30 * time.Second):
		t.Fatal("engine not ready")
	}
	if got := e.Status().InternalEntries; got != n {
		t.Fatalf("internal cache holds %d entries, want %d", got, n)
	}

	cached := func(key Key) bool {
		e.mu.Lock()
		defer e.mu.Unlock()
		return e.internal.Has(key)
	}
	for i, w := range []struct {
		name string
		run  func()
	}{
		{"resync merge", func() {
			if _, err := e.Resync(ctx); err != nil {
				t.Fatal(err)
			}
		}},
		{"bulk send", e.BulkSend},
		{"entries listing", func() {
			if got := len(e.Entries(CacheInternal)); got < n {
				t.Errorf("Entries: %d, want at least %d", got, n)
			}
		}},
	} {
		f := walkFlow(n + i)
		at := -1
		hook := func(done int) {
			// Between two chunks of the walk: a new connection's event.
			k.Create(f)
			deadline := time.Now().Add(20 * time.Second)
			for !cached(f.Key) {
				if time.Now().After(deadline) {
					return
				}
				time.Sleep(time.Millisecond)
			}
			at = done
		}
		armed.Store(&hook)
		w.run()
		armed.Store(nil)
		if at < 0 || at >= n {
			t.Fatalf("%s: the event was not taken in during the walk (at entry %d of %d)", w.name, at, n)
		}
		if !cached(f.Key) {
			t.Fatalf("%s: the event's flow is not in the internal cache after the walk", w.name)
		}
		t.Logf("%s: event taken in after %d of %d entries", w.name, at, n)
	}
}

// TestResyncMergeAfterFlush: a Flush of the internal cache between two
// chunks of a resync merge restarts the merge, so the cache ends up with
// the whole dump (as if the flush had come first), not the part merged
// after the flush.
func TestResyncMergeAfterFlush(t *testing.T) {
	const n = 4 * walkChunk
	k := ctsynctest.NewKernel()
	for i := range n {
		k.Create(walkFlow(i))
	}
	_, la, _ := memPair(ModeFTFW)
	e, err := New(Config{NoStartupResync: true}, Options{Kernel: k, Channels: la})
	if err != nil {
		t.Fatal(err)
	}
	var armed atomic.Bool
	e.walkYield = func(int) {
		if armed.CompareAndSwap(true, false) {
			e.Flush(CacheInternal)
		}
	}
	runBuilt(t, e)
	ctx := t.Context()
	armed.Store(true)
	res, err := e.Resync(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if armed.Load() {
		t.Fatal("the merge did not yield")
	}
	if res.Entries != n || e.Status().InternalEntries != n {
		t.Errorf("after a flush during the merge: %+v, %d cached; want %d", res, e.Status().InternalEntries, n)
	}
}

// failingDump is a kernel whose next dump, once armed, fails after its
// first batch.
type failingDump struct {
	*ctsynctest.Kernel
	fail atomic.Bool
}

func (k *failingDump) DumpEach(ctx context.Context, fn func([]Flow) error) error {
	if !k.fail.Swap(false) {
		return k.Kernel.DumpEach(ctx, fn)
	}
	batches := 0
	return k.Kernel.DumpEach(ctx, func(b []Flow) error {
		if batches++; batches > 1 {
			return errors.New("the dump failed part-way")
		}
		return fn(b)
	})
}

// TestResyncAfterFailedResync: a resync whose dump fails part-way leaves
// no entry marked as found in the kernel (the merge marks entries in the
// cache's slots as the dump is read), so the next resync still removes
// every entry the kernel no longer has.
func TestResyncAfterFailedResync(t *testing.T) {
	const n = 3 * walkChunk
	k := &failingDump{Kernel: ctsynctest.NewKernel()}
	for i := range n {
		k.Create(walkFlow(i))
	}
	_, la, _ := memPair(ModeFTFW)
	e, err := New(Config{NoStartupResync: true}, Options{Kernel: k, Channels: la})
	if err != nil {
		t.Fatal(err)
	}
	runBuilt(t, e)
	ctx := t.Context()
	if res, err := e.Resync(ctx); err != nil || res.Entries != n {
		t.Fatalf("Resync = %+v, %v; want %d entries", res, err, n)
	}
	k.fail.Store(true)
	if _, err := e.Resync(ctx); err == nil {
		t.Fatal("Resync with a dump that fails part-way succeeded")
	}
	// Gone from the kernel without events, as after an overrun.
	k.SetSilent(true)
	for i := range n {
		k.Remove(walkFlow(i).Key)
	}
	k.SetSilent(false)
	res, err := e.Resync(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if res.Removed != n || e.Status().InternalEntries != 0 {
		t.Errorf("Resync after a failed one = %+v, %d cached; want all %d removed", res, e.Status().InternalEntries, n)
	}
}
