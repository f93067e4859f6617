package testenv

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"sync"
	"syscall"
	"time"

	"github.com/fwpair/fwpair/appliance/api"
	"github.com/fwpair/fwpair/appliance/client"
)

// Binaries returns the directory holding fwpaird and fwpairctl: $FWPAIR_BIN
// when set (make test builds them there), else a build of the working
// tree into dir.
func Binaries(dir string) (string, error) {
	if bin := os.Getenv("FWPAIR_BIN"); bin != "" {
		if _, err := os.Stat(filepath.Join(bin, "fwpaird")); err != nil {
			return "", fmt.Errorf("FWPAIR_BIN=%s: %w", bin, err)
		}
		return bin, nil
	}
	root, err := RepoFile("go.mod")
	if err != nil {
		return "", err
	}
	for _, name := range []string{"fwpaird", "fwpairctl"} {
		cmd := exec.Command("go", "build", "-o", filepath.Join(dir, name), "./cmd/"+name)
		cmd.Dir = filepath.Dir(root)
		if out, err := cmd.CombinedOutput(); err != nil {
			return "", fmt.Errorf("build %s: %w\n%s", name, err, out)
		}
	}
	return dir, nil
}

// Daemon is an fwpaird process running inside a lab namespace.
type Daemon struct {
	NS     *NS
	Name   string
	Config string
	Socket string
	Log    string // path of its log file
	// Env is added to the process environment (e.g. NOTIFY_SOCKET).
	Env []string

	bin    string
	cmd    *exec.Cmd
	done   chan struct{}
	mu     sync.Mutex
	exit   error
	client *client.Client
}

// StartDaemon starts fwpaird in ns from config; its control socket and log
// go to dir. Extra arguments are appended.
func StartDaemon(ns *NS, bin, name, config, dir string, extra ...string) (*Daemon, error) {
	d := NewDaemon(ns, bin, name, config, dir)
	return d, d.Start(extra...)
}

// NewDaemon prepares a daemon without starting it (set Env, then Start).
func NewDaemon(ns *NS, bin, name, config, dir string) *Daemon {
	d := &Daemon{
		NS: ns, Name: name, Config: config, bin: bin,
		Socket: filepath.Join(dir, name+".sock"),
		Log:    filepath.Join(dir, name+".log"),
	}
	d.client = client.New(d.Socket)
	d.client.Timeout = 10 * time.Second
	return d
}

// Start (re)starts the process.
func (d *Daemon) Start(extra ...string) error {
	logf, err := os.OpenFile(d.Log, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return err
	}
	defer logf.Close()
	fmt.Fprintf(logf, "=== start %s\n", time.Now().Format(time.RFC3339Nano))
	args := append([]string{"netns", "exec", d.NS.Name, filepath.Join(d.bin, "fwpaird"), "-c", d.Config, "-socket", d.Socket}, extra...)
	cmd := exec.Command("ip", args...)
	cmd.Stdout, cmd.Stderr = logf, logf
	cmd.Env = append(os.Environ(), d.Env...)
	// ip netns exec replaces itself with fwpaird: the PID is the daemon's.
	if err := cmd.Start(); err != nil {
		return fmt.Errorf("start fwpaird in %s: %w", d.NS.Name, err)
	}
	d.mu.Lock()
	d.cmd, d.done, d.exit = cmd, make(chan struct{}), nil
	done := d.done
	d.mu.Unlock()
	go func() {
		err := cmd.Wait()
		d.mu.Lock()
		d.exit = err
		d.mu.Unlock()
		close(done)
	}()
	return nil
}

// PID returns the daemon's process id (0 when not started).
func (d *Daemon) PID() int {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.cmd == nil || d.cmd.Process == nil {
		return 0
	}
	return d.cmd.Process.Pid
}

// Client returns a control client for the daemon.
func (d *Daemon) Client() *client.Client { return d.client }

// Running reports whether the process is alive.
func (d *Daemon) Running() bool {
	d.mu.Lock()
	done := d.done
	d.mu.Unlock()
	if done == nil {
		return false
	}
	select {
	case <-done:
		return false
	default:
		return true
	}
}

// Signal sends sig and, for SIGKILL and SIGTERM, waits up to timeout for
// the process to exit. It returns the exit error (nil for a clean exit).
func (d *Daemon) Signal(sig syscall.Signal, timeout time.Duration) error {
	d.mu.Lock()
	cmd, done := d.cmd, d.done
	d.mu.Unlock()
	if cmd == nil || cmd.Process == nil {
		return errors.New("not started")
	}
	if err := cmd.Process.Signal(sig); err != nil && !errors.Is(err, os.ErrProcessDone) {
		return err
	}
	if sig == syscall.SIGHUP {
		return nil
	}
	select {
	case <-done:
	case <-time.After(timeout):
		cmd.Process.Kill()
		<-done
		return fmt.Errorf("%s did not exit within %s after %v", d.Name, timeout, sig)
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.exit
}

// Kill SIGKILLs the daemon (a crash: no priority-0 advert, VIPs left).
func (d *Daemon) Kill() { d.Signal(syscall.SIGKILL, 5*time.Second) }

// Stop SIGTERMs it (graceful) and waits for it to exit.
func (d *Daemon) Stop() error { return d.Signal(syscall.SIGTERM, 10*time.Second) }

// Status asks the daemon for its status.
func (d *Daemon) Status(ctx context.Context) (api.Status, error) {
	return d.client.Status(ctx)
}

// waitStatus polls the daemon's status until ok accepts it or the timeout
// ends; it returns the last status and error seen.
func (d *Daemon) waitStatus(timeout time.Duration, ok func(api.Status) bool) (api.Status, bool, error) {
	end := time.Now().Add(timeout)
	var last api.Status
	var lastErr error
	for time.Now().Before(end) {
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		st, err := d.client.Status(ctx)
		cancel()
		if err == nil && ok(st) {
			return st, true, nil
		}
		last, lastErr = st, err
		time.Sleep(20 * time.Millisecond)
	}
	return last, false, lastErr
}

// WaitGroupState polls until the group state is want or the timeout ends.
func (d *Daemon) WaitGroupState(want string, timeout time.Duration) (api.Status, error) {
	st, ok, err := d.waitStatus(timeout, func(st api.Status) bool {
		return st.VRRP != nil && st.VRRP.GroupState == want
	})
	if ok {
		return st, nil
	}
	state := "?"
	if st.VRRP != nil {
		state = st.VRRP.GroupState
	}
	return st, fmt.Errorf("%s: group state %s after %s, want %s (last error: %v)", d.Name, state, timeout, want, err)
}

// WaitTransition polls until the daemon reports a completed transition to
// state (VIPs handled) that happened after since.
func (d *Daemon) WaitTransition(state string, since time.Time, timeout time.Duration) (api.Status, error) {
	st, ok, err := d.waitStatus(timeout, func(st api.Status) bool {
		t := st.LastTransition
		return t != nil && t.To == state && t.At.After(since) && (state != "MASTER" || t.VIPsSeconds > 0)
	})
	if ok {
		return st, nil
	}
	return st, fmt.Errorf("%s: no completed transition to %s within %s (last: %+v, error: %v)", d.Name, state, timeout, st.LastTransition, err)
}

// LogTail returns the end of the daemon's log, for failure messages.
func (d *Daemon) LogTail(n int) string {
	b, err := os.ReadFile(d.Log)
	if err != nil {
		return err.Error()
	}
	if len(b) > n {
		b = b[len(b)-n:]
	}
	return string(b)
}
