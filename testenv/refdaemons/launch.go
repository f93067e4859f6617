package refdaemons

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/fwpair/fwpair/testenv"
)

// Proc is a started reference daemon and its exit.
type Proc struct {
	cmd  *exec.Cmd
	done chan struct{}
}

// start runs cmd with its output appended to logPath.
func start(cmd *exec.Cmd, logPath string) (*Proc, error) {
	logf, err := os.OpenFile(logPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return nil, err
	}
	defer logf.Close()
	cmd.Stdout, cmd.Stderr = logf, logf
	if err := cmd.Start(); err != nil {
		return nil, err
	}
	p := &Proc{cmd: cmd, done: make(chan struct{})}
	go func() { _ = cmd.Wait(); close(p.done) }()
	return p, nil
}

// Pid is the daemon's process id.
func (p *Proc) Pid() int { return p.cmd.Process.Pid }

// Running tells whether the process has not exited yet.
func (p *Proc) Running() bool {
	select {
	case <-p.done:
		return false
	default:
		return true
	}
}

// Signal sends sig and waits up to timeout for the exit, then SIGKILLs.
func (p *Proc) Signal(sig syscall.Signal, timeout time.Duration) error {
	if p == nil || !p.Running() {
		return nil
	}
	_ = p.cmd.Process.Signal(sig)
	select {
	case <-p.done:
		return nil
	case <-time.After(timeout):
		_ = p.cmd.Process.Kill()
		<-p.done
		return fmt.Errorf("pid %d did not exit within %s after %v", p.Pid(), timeout, sig)
	}
}

// StartConntrackd runs `conntrackd -C conf` in ns, its output appended to
// logPath, and returns once it answers on its UNIX socket (`conntrackd
// -s`), within 10 s.
func StartConntrackd(ns *testenv.NS, conf, logPath string) (*Proc, error) {
	if _, err := exec.LookPath("conntrackd"); err != nil {
		return nil, fmt.Errorf("conntrackd: %w (make deps installs it)", err)
	}
	p, err := start(ns.Cmd(context.Background(), "conntrackd", "-C", conf), logPath)
	if err != nil {
		return nil, fmt.Errorf("start conntrackd in %s: %w", ns.Name, err)
	}
	end := time.Now().Add(10 * time.Second)
	for {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		_, err := ns.Run(ctx, "conntrackd", "-C", conf, "-s")
		cancel()
		if err == nil {
			return p, nil
		}
		if !p.Running() || time.Now().After(end) {
			_ = p.Signal(syscall.SIGKILL, 5*time.Second)
			out, _ := os.ReadFile(logPath)
			return nil, fmt.Errorf("conntrackd in %s not answering on its socket: %v\n%s", ns.Name, err, out)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// Keepalived is a running keepalived: the parent and, in dir, the pid
// file of its VRRP child.
type Keepalived struct {
	*Proc
	dir string
}

// StartKeepalived runs keepalived in ns in the foreground with conf, its
// pid files in dir and its output appended to logPath.
func StartKeepalived(ns *testenv.NS, dir, conf, logPath string) (*Keepalived, error) {
	if _, err := exec.LookPath("keepalived"); err != nil {
		return nil, fmt.Errorf("keepalived: %w (make deps installs it)", err)
	}
	p, err := start(ns.Cmd(context.Background(), "keepalived", "-n", "-l", "-D", "-P",
		"-f", conf, "-p", filepath.Join(dir, "keepalived.pid"), "-r", filepath.Join(dir, "vrrp.pid")), logPath)
	if err != nil {
		return nil, fmt.Errorf("start keepalived in %s: %w", ns.Name, err)
	}
	return &Keepalived{Proc: p, dir: dir}, nil
}

// VRRPPid is the pid of keepalived's VRRP child, once it has written it.
func (k *Keepalived) VRRPPid() (int, bool) {
	b, err := os.ReadFile(filepath.Join(k.dir, "vrrp.pid"))
	if err != nil {
		return 0, false
	}
	pid, err := strconv.Atoi(strings.TrimSpace(string(b)))
	return pid, err == nil && pid > 1
}

// Kill SIGKILLs the VRRP child, then the parent: no priority-0 advert,
// VIPs left behind, as in a crash.
func (k *Keepalived) Kill() {
	if !k.Running() {
		return
	}
	if pid, ok := k.VRRPPid(); ok {
		_ = syscall.Kill(pid, syscall.SIGKILL)
	}
	_ = k.Signal(syscall.SIGKILL, 5*time.Second)
}
