package qemu

import (
	"fmt"
	"io"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"
)

// Lab is the four-VM topology of the reference lab (testenv/doc.go):
//
//	client --(lan0 192.168.0.0/24, VIP .100)-- fw1 eth0 / fw2 eth0
//	fw1 eth1 / fw2 eth1 --(lan1 192.168.1.0/24, VIP .100)-- server
//	fw1 eth2 <--sync link 10.0.0.0/30 (UDP pair)--> fw2 eth2
//
// lan0 and lan1 are QEMU multicast socket netdevs bound to 127.0.0.1; the
// sync link is a pair of UDP sockets on 127.0.0.1. Nothing leaves loopback.
type Lab struct {
	Kernel  string
	Initrd  string
	RunDir  string
	Limit   time.Duration // per VM
	MemMB   int
	Out     io.Writer
	Verbose bool

	FW1, FW2, Client, Server *VM

	// Systemd is set when the firewalls boot the systemd root disk.
	Systemd bool
	// Packages is set when fwpair is installed from its Debian package
	// (package.go): the scenarios then check and upgrade it.
	Packages *Packages

	passed, failed int
	mu             sync.Mutex
}

// NewLab wires the four VMs with a random multicast group and port range so
// that two labs on one machine never hear each other.
func NewLab(kernel, initrd, runDir string, limit time.Duration, out io.Writer) *Lab {
	l := &Lab{Kernel: kernel, Initrd: initrd, RunDir: runDir, Limit: limit, MemMB: 256, Out: out}
	group := fmt.Sprintf("230.0.%d.%d", 1+rand.IntN(250), 1+rand.IntN(250))
	port := 20000 + 4*rand.IntN(7000)
	lan := func(n int) string {
		return fmt.Sprintf("socket,mcast=%s:%d,localaddr=127.0.0.1", group, port+n)
	}
	udp := func(local, remote int) string {
		return fmt.Sprintf("socket,udp=127.0.0.1:%d,localaddr=127.0.0.1:%d", port+remote, port+local)
	}
	mac := func(vm, nic int) string { return fmt.Sprintf("52:54:00:%02x:00:%02x", vm, nic) }
	mk := func(name string, nics ...NIC) *VM {
		return &VM{
			Name: name, Kernel: kernel, Initrd: initrd, MemMB: l.MemMB, NICs: nics, RunDir: runDir, Limit: limit,
			Cmdline: "console=ttyS0 quiet panic=-1 mitigations=off 8250.nr_uarts=1",
		}
	}
	l.FW1 = mk("fw1",
		NIC{ID: "eth0", MAC: mac(1, 0), Netdev: lan(0)},
		NIC{ID: "eth1", MAC: mac(1, 1), Netdev: lan(1)},
		NIC{ID: "eth2", MAC: mac(1, 2), Netdev: udp(2, 3)})
	l.FW2 = mk("fw2",
		NIC{ID: "eth0", MAC: mac(2, 0), Netdev: lan(0)},
		NIC{ID: "eth1", MAC: mac(2, 1), Netdev: lan(1)},
		NIC{ID: "eth2", MAC: mac(2, 2), Netdev: udp(3, 2)})
	l.Client = mk("client", NIC{ID: "eth0", MAC: mac(3, 0), Netdev: lan(0)})
	l.Server = mk("server", NIC{ID: "eth0", MAC: mac(4, 0), Netdev: lan(1)})
	return l
}

// UseSystemd makes the firewalls boot img (the systemd root filesystem) from
// a virtio disk, writes going to a throw-away snapshot. The client and the
// server stay on the busybox initramfs.
func (l *Lab) UseSystemd(img string) {
	l.Systemd = true
	for _, fw := range []*VM{l.FW1, l.FW2} {
		fw.MemMB = 384
		fw.ExtraArg = append(fw.ExtraArg,
			"-drive", "file="+img+",format=raw,if=none,id=root,snapshot=on",
			"-device", "virtio-blk-pci,drive=root,addr=0x8",
			"-fw_cfg", "name=opt/fwpair/root,string=systemd")
	}
}

// VMs lists the lab's VMs.
func (l *Lab) VMs() []*VM { return []*VM{l.FW1, l.FW2, l.Client, l.Server} }

func (l *Lab) logf(format string, args ...any) {
	l.mu.Lock()
	defer l.mu.Unlock()
	fmt.Fprintf(l.Out, format+"\n", args...)
}

// Check records one check's result.
func (l *Lab) Check(ok bool, name string, detailf string, args ...any) bool {
	detail := fmt.Sprintf(detailf, args...)
	l.mu.Lock()
	defer l.mu.Unlock()
	mark := "ok  "
	if ok {
		l.passed++
	} else {
		l.failed++
		mark = "FAIL"
	}
	if detail != "" {
		fmt.Fprintf(l.Out, "%s %s: %s\n", mark, name, detail)
	} else {
		fmt.Fprintf(l.Out, "%s %s\n", mark, name)
	}
	return ok
}

// Result is the passed and failed counts.
func (l *Lab) Result() (passed, failed int) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.passed, l.failed
}

// Boot starts every VM and waits for their agents; it returns the time until
// all were ready.
func (l *Lab) Boot(wait time.Duration) (time.Duration, error) {
	if err := os.MkdirAll(l.RunDir, 0o755); err != nil {
		return 0, err
	}
	start := time.Now()
	for _, v := range l.VMs() {
		if err := v.Start(); err != nil {
			return 0, fmt.Errorf("%s: %w", v.Name, err)
		}
	}
	var wg sync.WaitGroup
	errs := make([]error, 4)
	for i, v := range l.VMs() {
		wg.Go(func() {
			d, err := v.WaitReady(wait)
			errs[i] = err
			if err == nil {
				l.logf("     %s ready after %.1fs", v.Name, d.Seconds())
			}
		})
	}
	wg.Wait()
	for _, err := range errs {
		if err != nil {
			return 0, err
		}
	}
	return time.Since(start), nil
}

// Stop stops every VM by its PID (QMP quit first).
func (l *Lab) Stop() {
	var wg sync.WaitGroup
	for _, v := range l.VMs() {
		wg.Go(v.Stop)
	}
	wg.Wait()
}

// Console returns the tail of a VM's console log, for failure reports.
func (l *Lab) Console(v *VM, n int) string {
	b, _ := os.ReadFile(v.ConsoleLog())
	return lastLines(string(b), n)
}

// sh runs cmd on v and returns trimmed output; rc != 0 is an error.
func sh(v *VM, cmd string, timeout time.Duration) (string, error) {
	out, rc, err := v.Exec(cmd, timeout)
	out = strings.TrimSpace(out)
	if err != nil {
		return out, fmt.Errorf("%s: %q: %w", v.Name, cmd, err)
	}
	if rc != 0 {
		return out, fmt.Errorf("%s: %q: exit %d: %s", v.Name, cmd, rc, lastLines(out, 3))
	}
	return out, nil
}

// SmokeChecks verifies the lab without fwpaird: modules, ruleset, links.
func (l *Lab) SmokeChecks() {
	for _, fw := range []*VM{l.FW1, l.FW2} {
		out, err := sh(fw, "grep -c '^nf_conntrack ' /proc/modules; nft list tables; ip -o link show eth2", 5*time.Second)
		l.Check(err == nil && strings.Contains(out, "table inet fwpair"), fw.Name+": conntrack module and ruleset loaded", "%s", oneLine(out, err))
	}
	out, err := sh(l.FW1, "ping -c 2 -W 2 10.0.0.2", 10*time.Second)
	l.Check(err == nil, "sync link fw1 -> fw2", "%s", oneLine(lastLines(out, 1), err))
	out, err = sh(l.Client, "ping -c 2 -W 2 192.168.0.1 && ping -c 2 -W 2 192.168.0.2", 10*time.Second)
	l.Check(err == nil, "lan0 client -> fw1, fw2", "%s", oneLine(lastLines(out, 1), err))
	out, err = sh(l.Server, "ping -c 2 -W 2 192.168.1.1 && ping -c 2 -W 2 192.168.1.2", 10*time.Second)
	l.Check(err == nil, "lan1 server -> fw1, fw2", "%s", oneLine(lastLines(out, 1), err))
}

func oneLine(s string, err error) string {
	if err != nil {
		return err.Error()
	}
	return strings.Join(strings.Fields(s), " ")
}

// Artefacts lists the run folder's files, for a failure hint.
func (l *Lab) Artefacts() string {
	m, _ := filepath.Glob(filepath.Join(l.RunDir, "*.console"))
	return strings.Join(m, " ")
}
