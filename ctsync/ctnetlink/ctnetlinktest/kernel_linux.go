package ctnetlinktest

import (
	"context"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/fwpair/fwpair/ctsync/ctnetlink"
	"github.com/fwpair/fwpair/testenv"
)

// OpenKernel opens a LinuxKernel bound to a fresh lab namespace (opts.NetNS is
// set to it), closed when the test ends. The test must have called
// testenv.RequirePrivileged.
func OpenKernel(t testing.TB, opts ctnetlink.KernelOptions) (*ctnetlink.LinuxKernel, *testenv.NS) {
	t.Helper()
	ns := testenv.NewNS(t, "fwk")
	opts.NetNS = ns.FD()
	k, err := ctnetlink.NewKernel(opts)
	if err != nil {
		t.Fatalf("NewKernel: %v", err)
	}
	t.Cleanup(func() { k.Close() })
	return k, ns
}

// Ctx is a context bounded by a deadline for one test step.
func Ctx(t testing.TB, d time.Duration) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), d)
	t.Cleanup(cancel)
	return ctx
}

// Entry is one line of `conntrack -L -o extended`, parsed by the oracle.
type Entry struct {
	Line    string
	Proto   string
	Timeout int
	State   string
	Orig    map[string]string // src dst sport dport type code id
	Reply   map[string]string
	Mark    string
	Zone    string
}

var kv = regexp.MustCompile(`(\w+)=(\S+)`)

// List reads the namespace's table with the conntrack tool, both families,
// as an oracle independent of ctnetlink's decoder.
func List(t testing.TB, ns *testenv.NS) []Entry {
	t.Helper()
	var out []Entry
	for _, fam := range []string{"ipv4", "ipv6"} {
		s, err := ns.Run(Ctx(t, 10*time.Second), "conntrack", "-L", "-f", fam, "-o", "extended")
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
			e := Entry{Line: line, Proto: fields[2], Orig: map[string]string{}, Reply: map[string]string{}, Zone: "0"}
			e.Timeout, _ = strconv.Atoi(fields[4])
			if !strings.Contains(fields[5], "=") {
				e.State = fields[5]
			}
			inReply := false
			for _, m := range kv.FindAllStringSubmatch(line, -1) {
				k, v := m[1], m[2]
				switch k {
				case "mark":
					e.Mark = v
				case "zone":
					e.Zone = v
				case "use":
				default:
					if k == "src" && e.Orig["src"] != "" {
						inReply = true
					}
					if inReply {
						e.Reply[k] = v
					} else {
						e.Orig[k] = v
					}
				}
			}
			out = append(out, e)
		}
	}
	return out
}

// Find returns the oracle entry with f's original src/dst and zone (and
// source port or ICMP id), or fails.
func Find(t testing.TB, es []Entry, f *ctnetlink.Flow) Entry {
	t.Helper()
	for _, e := range es {
		if e.Orig["src"] != f.Src.String() || e.Orig["dst"] != f.Dst.String() || e.Zone != strconv.Itoa(int(f.Zone)) {
			continue
		}
		switch f.Proto {
		case ctnetlink.ProtoTCP, ctnetlink.ProtoUDP, ctnetlink.ProtoUDPLite, ctnetlink.ProtoSCTP, ctnetlink.ProtoDCCP:
			if e.Orig["sport"] != strconv.Itoa(int(f.SrcPort)) {
				continue
			}
		}
		if (f.Proto == ctnetlink.ProtoICMP || f.Proto == ctnetlink.ProtoICMPv6) && e.Orig["id"] != strconv.Itoa(int(f.ICMPID)) {
			continue
		}
		return e
	}
	t.Fatalf("conntrack -L has no entry for %v:%d -> %v:%d proto %d zone %d", f.Src, f.SrcPort, f.Dst, f.DstPort, f.Proto, f.Zone)
	return Entry{}
}

// Events collects what a LinuxKernel's Events delivers.
type Events struct {
	mu     sync.Mutex
	evs    []ctnetlink.Event
	notify chan struct{}
}

// Listen runs k.Events until the test ends (then checks it returned
// cleanly) and collects the events.
func Listen(t testing.TB, k *ctnetlink.LinuxKernel) *Events {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	c := &Events{notify: make(chan struct{}, 1)}
	done := make(chan error, 1)
	go func() {
		done <- k.Events(ctx, func(evs []ctnetlink.Event) {
			c.mu.Lock()
			c.evs = append(c.evs, evs...)
			c.mu.Unlock()
			select {
			case c.notify <- struct{}{}:
			default:
			}
		})
	}()
	t.Cleanup(func() {
		cancel()
		select {
		case err := <-done:
			if err != nil {
				t.Errorf("Events: %v", err)
			}
		case <-time.After(5 * time.Second):
			t.Errorf("Events did not return after cancel")
		}
	})
	return c
}

// Wait removes and returns the first collected event matching pred,
// failing after d.
func (c *Events) Wait(t testing.TB, d time.Duration, what string, pred func(*ctnetlink.Event) bool) ctnetlink.Event {
	t.Helper()
	deadline := time.NewTimer(d)
	defer deadline.Stop()
	for {
		c.mu.Lock()
		for i := range c.evs {
			if pred(&c.evs[i]) {
				ev := c.evs[i]
				c.evs = append(c.evs[:i], c.evs[i+1:]...)
				c.mu.Unlock()
				return ev
			}
		}
		c.mu.Unlock()
		select {
		case <-c.notify:
		case <-deadline.C:
			t.Fatalf("no %s event within %v", what, d)
		}
	}
}

// Seen returns a copy of the collected events, leaving them collected.
func (c *Events) Seen() []ctnetlink.Event {
	c.mu.Lock()
	defer c.mu.Unlock()
	return slices.Clone(c.evs)
}

// Notify is signalled, without blocking (so signals coalesce), whenever
// events are collected.
func (c *Events) Notify() <-chan struct{} { return c.notify }

// Take removes and returns every collected event.
func (c *Events) Take() []ctnetlink.Event {
	c.mu.Lock()
	defer c.mu.Unlock()
	evs := c.evs
	c.evs = nil
	return evs
}

// Ready commits and deletes probe flows until a DESTROY event shows the
// listener has joined its groups (own DESTROY events always pass the
// kernel-side filter), then forgets every event seen so far.
func (c *Events) Ready(t testing.TB, k *ctnetlink.LinuxKernel) {
	t.Helper()
	for i := range 50 {
		probe := UDP("127.0.0.9", "127.0.0.8", uint16(1000+i), 9)
		if _, err := k.Commit(Ctx(t, 5*time.Second), []ctnetlink.Flow{probe}); err != nil {
			t.Fatalf("Commit probe: %v", err)
		}
		if _, err := k.Delete(Ctx(t, 5*time.Second), []ctnetlink.Key{probe.Key}); err != nil {
			t.Fatalf("Delete probe: %v", err)
		}
		select {
		case <-c.notify:
		case <-time.After(100 * time.Millisecond):
			continue
		}
		c.mu.Lock()
		ok := slices.ContainsFunc(c.evs, func(e ctnetlink.Event) bool {
			return e.Type == ctnetlink.EventDestroy && e.Flow.Key == probe.Key
		})
		if ok {
			c.evs = nil
		}
		c.mu.Unlock()
		if ok {
			return
		}
	}
	t.Fatalf("event listener never became ready")
}
