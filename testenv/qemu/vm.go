package qemu

import (
	"bufio"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"
)

// NIC is one virtio-net-pci NIC of a VM.
type NIC struct {
	ID     string // netdev id, also used by set_link (e.g. "eth1")
	MAC    string
	Netdev string // the -netdev options after "socket," or "dgram," (type included)
}

// VM is one QEMU guest of the lab.
type VM struct {
	Name     string
	Kernel   string
	Initrd   string
	MemMB    int
	NICs     []NIC
	RunDir   string        // sockets, console log, pid file
	Limit    time.Duration // the VM's time limit (timeout(1))
	Cmdline  string
	ExtraArg []string

	cmd     *exec.Cmd
	done    chan struct{}
	started time.Time

	mu  sync.Mutex
	ctl *Ctl
}

func (v *VM) sock(kind string) string { return filepath.Join(v.RunDir, v.Name+"."+kind) }

// ConsoleLog is the file the guest's ttyS0 writes to.
func (v *VM) ConsoleLog() string { return v.sock("console") }

func (v *VM) args() []string {
	a := []string{
		"-name", v.Name,
		"-nodefaults", "-no-user-config",
		"-machine", "pc", "-accel", "tcg", "-cpu", "max", "-smp", "1", "-m", strconv.Itoa(v.MemMB),
		"-display", "none", "-no-reboot",
		"-kernel", v.Kernel, "-initrd", v.Initrd, "-append", v.Cmdline,
		"-chardev", "file,id=con,append=on,path=" + v.ConsoleLog(),
		"-serial", "chardev:con",
		"-qmp", "unix:" + v.sock("qmp") + ",server=on,wait=off",
		"-device", "virtio-serial-pci,id=vser",
		"-chardev", "socket,id=ctl,path=" + v.sock("ctl") + ",server=on,wait=off",
		"-device", "virtserialport,bus=vser.0,chardev=ctl,name=fwpair.ctl",
		"-fw_cfg", "name=opt/fwpair/role,string=" + v.Name,
		"-pidfile", v.sock("pid"),
	}
	for i, n := range v.NICs {
		a = append(a,
			"-netdev", n.Netdev+",id="+n.ID,
			"-device", fmt.Sprintf("virtio-net-pci,netdev=%s,mac=%s,id=nic%d,addr=0x%x", n.ID, n.MAC, i, 0x10+i),
		)
	}
	return append(a, v.ExtraArg...)
}

// Start launches the VM under timeout(1) with the VM's time limit. When this
// process dies, timeout gets SIGTERM (parent-death signal) and passes it on
// to QEMU.
func (v *VM) Start() error {
	for _, k := range []string{"qmp", "ctl", "pid"} {
		_ = os.Remove(v.sock(k))
	}
	secs := int(v.Limit.Seconds())
	if secs <= 0 {
		secs = 600
	}
	args := append([]string{"-k", "5", strconv.Itoa(secs), "qemu-system-x86_64"}, v.args()...)
	cmd := exec.Command("timeout", args...)
	log, err := os.Create(v.sock("qemu.log"))
	if err != nil {
		return err
	}
	cmd.Stdout = log
	cmd.Stderr = log
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGTERM}
	if err := cmd.Start(); err != nil {
		log.Close()
		return err
	}
	log.Close()
	v.cmd = cmd
	v.started = time.Now()
	v.done = make(chan struct{})
	go func() {
		_ = cmd.Wait()
		close(v.done)
	}()
	return nil
}

// Running reports whether the VM's process is still there.
func (v *VM) Running() bool {
	if v.done == nil {
		return false
	}
	select {
	case <-v.done:
		return false
	default:
		return true
	}
}

// Wait waits up to d for the VM's process to end.
func (v *VM) Wait(d time.Duration) bool {
	if v.done == nil {
		return true
	}
	select {
	case <-v.done:
		return true
	case <-time.After(d):
		return false
	}
}

// Stop ends the VM: QMP quit, then SIGTERM and SIGKILL by PID.
func (v *VM) Stop() {
	v.closeCtl()
	if !v.Running() {
		return
	}
	_, _ = v.QMP("quit", nil)
	if v.Wait(3 * time.Second) {
		return
	}
	_ = syscall.Kill(v.cmd.Process.Pid, syscall.SIGTERM)
	if v.Wait(3 * time.Second) {
		return
	}
	// The whole process group: timeout and QEMU.
	_ = syscall.Kill(-v.cmd.Process.Pid, syscall.SIGKILL)
	v.Wait(3 * time.Second)
}

func (v *VM) closeCtl() {
	v.mu.Lock()
	defer v.mu.Unlock()
	if v.ctl != nil {
		v.ctl.Close()
		v.ctl = nil
	}
}

// QMP runs one QMP command on a fresh connection to the VM's monitor.
func (v *VM) QMP(command string, args map[string]any) (json.RawMessage, error) {
	c, err := net.DialTimeout("unix", v.sock("qmp"), 2*time.Second)
	if err != nil {
		return nil, err
	}
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(5 * time.Second))
	r := bufio.NewReader(c)
	read := func() (map[string]json.RawMessage, error) {
		for {
			line, err := r.ReadBytes('\n')
			if err != nil {
				return nil, err
			}
			var m map[string]json.RawMessage
			if err := json.Unmarshal(line, &m); err != nil {
				return nil, err
			}
			if _, ok := m["event"]; ok {
				continue
			}
			return m, nil
		}
	}
	if _, err := read(); err != nil { // greeting
		return nil, err
	}
	send := func(cmd string, a map[string]any) (json.RawMessage, error) {
		req := map[string]any{"execute": cmd}
		if a != nil {
			req["arguments"] = a
		}
		b, _ := json.Marshal(req)
		if _, err := c.Write(append(b, '\n')); err != nil {
			return nil, err
		}
		m, err := read()
		if err != nil {
			if cmd == "quit" {
				return nil, nil // QEMU may close before answering
			}
			return nil, err
		}
		if e, ok := m["error"]; ok {
			return nil, fmt.Errorf("qmp %s: %s", cmd, e)
		}
		return m["return"], nil
	}
	if _, err := send("qmp_capabilities", nil); err != nil {
		return nil, err
	}
	return send(command, args)
}

// Ctl is a connection to the guest agent on the virtio-serial port.
type Ctl struct {
	c    net.Conn
	r    *bufio.Reader
	next int
}

// Close closes the connection.
func (c *Ctl) Close() { c.c.Close() }

var errTimeout = errors.New("timeout")

// Exec runs cmd in the guest with a timeout and returns its output and exit
// code. Stale answers from earlier requests are skipped by their id.
func (c *Ctl) Exec(cmd string, timeout time.Duration) (string, int, error) {
	c.next++
	id := strconv.Itoa(c.next)
	deadline := time.Now().Add(timeout + 3*time.Second)
	_ = c.c.SetDeadline(deadline)
	if _, err := fmt.Fprintf(c.c, "%s\t%d\t%s\n", id, timeout.Milliseconds(), cmd); err != nil {
		return "", -1, err
	}
	var out strings.Builder
	for {
		line, err := c.r.ReadString('\n')
		if err != nil {
			var ne net.Error
			if errors.As(err, &ne) && ne.Timeout() {
				return out.String(), -1, errTimeout
			}
			return out.String(), -1, err
		}
		if rest, ok := strings.CutPrefix(line, "@@END "); ok {
			f := strings.Fields(rest)
			if len(f) == 2 && f[0] == id {
				rc, _ := strconv.Atoi(f[1])
				return out.String(), rc, nil
			}
			out.Reset() // an older request's answer
			continue
		}
		out.WriteString(line)
	}
}

// Exec runs cmd in the VM through its control channel, connecting (and
// reconnecting after errors) as needed.
func (v *VM) Exec(cmd string, timeout time.Duration) (string, int, error) {
	v.mu.Lock()
	defer v.mu.Unlock()
	if v.ctl == nil {
		c, err := net.DialTimeout("unix", v.sock("ctl"), 2*time.Second)
		if err != nil {
			return "", -1, err
		}
		v.ctl = &Ctl{c: c, r: bufio.NewReader(c)}
	}
	out, rc, err := v.ctl.Exec(cmd, timeout)
	if err != nil {
		v.ctl.Close()
		v.ctl = nil
	}
	return out, rc, err
}

// WaitReady polls the agent until it answers, up to d; it returns the time
// from the VM's start.
func (v *VM) WaitReady(d time.Duration) (time.Duration, error) {
	end := time.Now().Add(d)
	var last error
	for time.Now().Before(end) {
		if !v.Running() {
			return 0, fmt.Errorf("%s: QEMU exited (see %s)", v.Name, v.sock("qemu.log"))
		}
		out, rc, err := v.Exec("echo up", 700*time.Millisecond)
		if err == nil && rc == 0 && strings.TrimSpace(out) == "up" {
			return time.Since(v.started), nil
		}
		last = err
		if err != nil {
			time.Sleep(200 * time.Millisecond)
		}
	}
	return 0, fmt.Errorf("%s: agent not ready after %v: %v (console: %s)", v.Name, d, last, v.ConsoleLog())
}

// KillStale stops the VMs an earlier, killed run left behind in runDir: it
// reads their pid files and sends SIGKILL to each PID whose command line
// still names runDir.
func KillStale(runDir string, logf func(string, ...any)) {
	pids, _ := filepath.Glob(filepath.Join(runDir, "*.pid"))
	for _, f := range pids {
		b, err := os.ReadFile(f)
		if err != nil {
			continue
		}
		pid, err := strconv.Atoi(strings.TrimSpace(string(b)))
		if err != nil || pid <= 1 {
			continue
		}
		cmdline, err := os.ReadFile(fmt.Sprintf("/proc/%d/cmdline", pid))
		if err != nil || !strings.Contains(string(cmdline), runDir) {
			continue
		}
		logf("stopping VM %d left over from an earlier run", pid)
		_ = syscall.Kill(pid, syscall.SIGKILL)
	}
}
