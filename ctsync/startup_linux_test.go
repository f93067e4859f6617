package ctsync

import (
	"context"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/fwpair/fwpair/ctsync/ctnetlink"
	"github.com/fwpair/fwpair/ctsync/ctnetlink/ctnetlinktest"
	"github.com/fwpair/fwpair/testenv"
)

// gatedEvents is a LinuxKernel whose Events subscribes only once gate is
// closed: an event reader slow to start, as under load, made
// deterministic. reached is closed when the engine's start-up either asks
// for the subscription or has dumped the table, whichever comes first.
type gatedEvents struct {
	*ctnetlink.LinuxKernel
	gate    chan struct{}
	reached chan struct{}
	once    *sync.Once
}

func (k gatedEvents) Events(ctx context.Context, sink func([]Event)) error {
	select {
	case <-k.gate:
	case <-ctx.Done():
		return nil
	}
	return k.LinuxKernel.Events(ctx, sink)
}

func (k gatedEvents) Subscribed() <-chan struct{} {
	k.once.Do(func() { close(k.reached) })
	return k.LinuxKernel.Subscribed()
}

func (k gatedEvents) DumpEach(ctx context.Context, fn func([]Flow) error) error {
	err := k.LinuxKernel.DumpEach(ctx, fn)
	k.once.Do(func() { close(k.reached) })
	return err
}

// TestPrivilegedStartupDumpAfterSubscription: a flow created while the
// event reader is still starting is replicated. The start-up dump used to
// run as soon as the reader's goroutine had started, and under load that
// could be before it had joined the event groups: a flow created in
// between was in neither and was never sent (seen once as
// TestPrivilegedConntrackdLabels failing in a full make check).
func TestPrivilegedStartupDumpAfterSubscription(t *testing.T) {
	testenv.RequirePrivileged(t)
	ns := testenv.NewNS(t, "fwsub")
	k := gatedEvents{LinuxKernel: labKernel(t, ns), gate: make(chan struct{}), reached: make(chan struct{}), once: new(sync.Once)}
	var net MemNetwork
	_, y := net.NewMemLink("sub", 1472)
	var e *Engine
	err := ns.Do(func() error {
		var err error
		e, err = New(Config{}, Options{Kernel: k, Channels: []Channel{y}})
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- e.Run(ctx) }()
	defer func() { cancel(); <-done }()

	select {
	case <-k.reached:
	case err := <-done:
		t.Fatalf("Run: %v", err)
	case <-time.After(10 * time.Second):
		t.Fatal("the engine neither dumped nor asked for the subscription")
	}
	f := ctnetlinktest.TCP("192.168.0.10", "192.168.1.20", 40100, 443)
	if _, err := labKernel(t, ns).Commit(labCtx(t, 10*time.Second), []Flow{f}); err != nil {
		t.Fatal(err)
	}
	close(k.gate)
	waitFor(t, 10*time.Second, "the flow created during start-up in the internal cache", func() error {
		for _, g := range e.Entries(CacheInternal) {
			if g.Key == f.Key {
				return nil
			}
		}
		return fmt.Errorf("not there (%d entries)", e.Status().InternalEntries)
	})
	select {
	case <-e.Ready():
	case <-time.After(10 * time.Second):
		t.Fatal("not ready after the subscription")
	}
}
