package testenv

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"sync"

	"github.com/vishvananda/netlink"
	"github.com/vishvananda/netns"
	"golang.org/x/sys/unix"
)

// netnsDir is where iproute2 looks for named namespaces.
const netnsDir = "/run/netns"

// NS is a named network namespace owned by a test or by the lab.
type NS struct {
	// Name is the namespace's name under /run/netns (unique per run).
	Name string

	handle netns.NsHandle
	nl     *netlink.Handle

	closeOnce sync.Once
	closeErr  error
}

// runID makes namespace names unique across concurrent runs and records
// the creating process ("p<pid>-<random>"), so that leftovers of a run that
// was killed before its cleanup can be recognised and removed.
func runID() string {
	var b [2]byte
	rand.Read(b[:])
	return fmt.Sprintf("p%d-%s", os.Getpid(), hex.EncodeToString(b[:]))
}

// CreateNS makes a new named namespace "<prefix>-<random>" with its
// loopback up. The caller must Close it. Names are kept short because
// interface names derived from them must fit in 15 bytes elsewhere.
func CreateNS(prefix string) (*NS, error) {
	name := prefix + "-" + runID()
	if len(name) > 40 {
		return nil, fmt.Errorf("testenv: namespace name %q too long", name)
	}
	if err := os.MkdirAll(netnsDir, 0o755); err != nil {
		return nil, fmt.Errorf("testenv: %w", err)
	}
	var (
		h   netns.NsHandle
		err error
	)
	done := make(chan struct{})
	go func() {
		defer close(done)
		// netns.NewNamed moves the calling thread into the new namespace:
		// keep the thread locked and let it die with this goroutine.
		runtime.LockOSThread()
		h, err = netns.NewNamed(name)
	}()
	<-done
	if err != nil {
		return nil, fmt.Errorf("testenv: create namespace %s: %w", name, err)
	}
	ns := &NS{Name: name, handle: h}
	ns.nl, err = netlink.NewHandleAt(h)
	if err != nil {
		ns.Close()
		return nil, fmt.Errorf("testenv: netlink handle for %s: %w", name, err)
	}
	lo, err := ns.nl.LinkByName("lo")
	if err == nil {
		err = ns.nl.LinkSetUp(lo)
	}
	if err != nil {
		ns.Close()
		return nil, fmt.Errorf("testenv: %s: loopback up: %w", name, err)
	}
	return ns, nil
}

// TB is the part of testing.TB the helpers use.
type TB interface {
	Helper()
	Cleanup(func())
	Fatalf(format string, args ...any)
	Logf(format string, args ...any)
	Failed() bool
}

// NewNS creates a namespace for a test and removes it when the test ends.
func NewNS(t TB, prefix string) *NS {
	t.Helper()
	ns, err := CreateNS(prefix)
	if err != nil {
		t.Fatalf("%v", err)
	}
	t.Cleanup(func() {
		if err := ns.Close(); err != nil {
			t.Logf("testenv: %v", err)
		}
	})
	return ns
}

// FD is the namespace's file descriptor, e.g. for netlink.Config.NetNS.
func (ns *NS) FD() int { return int(ns.handle) }

// Handle is a netlink handle bound to the namespace. It is closed with ns.
func (ns *NS) Handle() *netlink.Handle { return ns.nl }

// NetNSHandle is the vishvananda/netns handle of the namespace.
func (ns *NS) NetNSHandle() netns.NsHandle { return ns.handle }

// Do runs fn on a fresh goroutine locked to an OS thread that has entered
// the namespace. Sockets opened by fn stay in the namespace. The thread is
// discarded afterwards (never unlocked), so it cannot leak into the Go
// scheduler's pool while in the namespace.
func (ns *NS) Do(fn func() error) error {
	errc := make(chan error, 1)
	go func() {
		runtime.LockOSThread()
		if err := netns.Set(ns.handle); err != nil {
			errc <- fmt.Errorf("testenv: enter %s: %w", ns.Name, err)
			return
		}
		errc <- fn()
	}()
	return <-errc
}

// Cmd returns a command that runs prog inside the namespace.
func (ns *NS) Cmd(ctx context.Context, prog string, args ...string) *exec.Cmd {
	return exec.CommandContext(ctx, "ip", append([]string{"netns", "exec", ns.Name, prog}, args...)...)
}

// Run runs prog inside the namespace and returns its combined output;
// the error includes that output.
func (ns *NS) Run(ctx context.Context, prog string, args ...string) (string, error) {
	out, err := ns.Cmd(ctx, prog, args...).CombinedOutput()
	if err != nil {
		return string(out), fmt.Errorf("%s: %s %s: %w: %s", ns.Name, prog, strings.Join(args, " "), err, strings.TrimSpace(string(out)))
	}
	return string(out), nil
}

// Sysctl writes a value under /proc/sys from inside the namespace, e.g.
// Sysctl("net/ipv4/ip_forward", "1"). /proc/sys/net follows the namespace
// of the thread that opens the file.
func (ns *NS) Sysctl(key, value string) error {
	return ns.Do(func() error {
		path := filepath.Join("/proc/sys", key)
		if err := os.WriteFile(path, []byte(value), 0o644); err != nil {
			return fmt.Errorf("testenv: %s: sysctl %s=%s: %w", ns.Name, key, value, err)
		}
		return nil
	})
}

// Close deletes the namespace: every process started in it should have
// been stopped first. The namespace disappears once its last user is gone.
func (ns *NS) Close() error {
	ns.closeOnce.Do(func() {
		if ns.nl != nil {
			ns.nl.Close()
		}
		var errs []error
		if err := ns.handle.Close(); err != nil {
			errs = append(errs, err)
		}
		path := filepath.Join(netnsDir, ns.Name)
		if err := unix.Unmount(path, unix.MNT_DETACH); err != nil && !errors.Is(err, unix.EINVAL) && !errors.Is(err, unix.ENOENT) {
			errs = append(errs, fmt.Errorf("unmount %s: %w", path, err))
		}
		if err := os.Remove(path); err != nil && !errors.Is(err, os.ErrNotExist) {
			errs = append(errs, err)
		}
		ns.closeErr = errors.Join(errs...)
	})
	return ns.closeErr
}

// RemoveStale deletes namespaces whose name starts with prefix (every
// namespace of ours when prefix is "") and whose creating process is gone:
// leftovers of a run killed before it could clean up (a test timeout, an
// interrupted lab). Namespaces of live runs are never touched. Returns the
// names removed.
func RemoveStale(prefix string) []string {
	entries, err := os.ReadDir(netnsDir)
	if err != nil {
		return nil
	}
	var removed []string
	for _, e := range entries {
		pid, ok := creatorPID(e.Name())
		if !ok || !strings.HasPrefix(e.Name(), prefix) || processAlive(pid) {
			continue
		}
		path := filepath.Join(netnsDir, e.Name())
		_ = unix.Unmount(path, unix.MNT_DETACH)
		if os.Remove(path) == nil {
			removed = append(removed, e.Name())
		}
	}
	return removed
}

// creatorPID extracts the pid from a name made by runID.
func creatorPID(name string) (int, bool) {
	i := strings.Index(name, "-p")
	if i < 0 {
		return 0, false
	}
	rest := name[i+2:]
	j := strings.IndexByte(rest, '-')
	if j <= 0 {
		return 0, false
	}
	pid, err := strconv.Atoi(rest[:j])
	return pid, err == nil && pid > 0
}

func processAlive(pid int) bool {
	err := unix.Kill(pid, 0)
	return err == nil || errors.Is(err, unix.EPERM)
}
