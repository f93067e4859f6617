package testenv

import (
	"context"
	"encoding/json"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/fwpair/fwpair/appliance/api"
)

// notifyListener is a fake systemd: it records every sd_notify datagram
// and, for READY=1, whether the control socket answered at that moment.
type notifyListener struct {
	conn *net.UnixConn
	mu   sync.Mutex
	msgs []string
	// readyWithSocket is set when READY=1 arrived while the control
	// socket already answered.
	readyWithSocket bool
	socket          string
}

func listenNotify(t *testing.T, dir, socket string) *notifyListener {
	t.Helper()
	path := filepath.Join(dir, "notify.sock")
	c, err := net.ListenUnixgram("unixgram", &net.UnixAddr{Name: path, Net: "unixgram"})
	if err != nil {
		t.Fatal(err)
	}
	n := &notifyListener{conn: c, socket: socket}
	go func() {
		buf := make([]byte, 4096)
		for {
			k, err := c.Read(buf)
			if err != nil {
				return
			}
			msg := string(buf[:k])
			ready := false
			if strings.Contains(msg, "READY=1") {
				if cc, err := net.Dial("unix", socket); err == nil {
					cc.Close()
					ready = true
				}
			}
			n.mu.Lock()
			n.msgs = append(n.msgs, msg)
			if ready {
				n.readyWithSocket = true
			}
			n.mu.Unlock()
		}
	}()
	t.Cleanup(func() { c.Close() })
	return n
}

func (n *notifyListener) wait(t *testing.T, substr string, timeout time.Duration) {
	t.Helper()
	end := time.Now().Add(timeout)
	for time.Now().Before(end) {
		n.mu.Lock()
		for _, m := range n.msgs {
			if strings.Contains(m, substr) {
				n.mu.Unlock()
				return
			}
		}
		n.mu.Unlock()
		time.Sleep(10 * time.Millisecond)
	}
	n.mu.Lock()
	defer n.mu.Unlock()
	t.Fatalf("no %q notification within %s; got %q", substr, timeout, n.msgs)
}

// TestPrivilegedDaemonOperations drives a real fwpaird in the lab: systemd
// readiness through a fake NOTIFY_SOCKET, watchdog, every fwpairctl
// command and its error paths, SIGHUP reload (good and bad file), SIGTERM.
func TestPrivilegedDaemonOperations(t *testing.T) {
	RequirePrivileged(t)
	dir := t.TempDir()
	bin, err := Binaries(dir)
	if err != nil {
		t.Fatal(err)
	}
	lab := NewLab(t, LabOptions{Prefix: "fwo"})
	cfgPath := filepath.Join(dir, "node1.toml")
	orig, err := os.ReadFile(mustRepoFile(t, "etc/node1.toml"))
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(cfgPath, orig, 0o644); err != nil {
		t.Fatal(err)
	}
	d := NewDaemon(lab.FW1, bin, "fw1", cfgPath, dir)
	notify := listenNotify(t, dir, d.Socket)
	d.Env = []string{"NOTIFY_SOCKET=" + filepath.Join(dir, "notify.sock"), "WATCHDOG_USEC=1000000"}
	if err := d.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if d.Running() {
			d.Kill()
		}
	})
	notify.wait(t, "READY=1", 10*time.Second)
	notify.mu.Lock()
	readyOK := notify.readyWithSocket
	notify.mu.Unlock()
	if !readyOK {
		t.Errorf("READY=1 sent before the control socket answered")
	}
	notify.wait(t, "STATUS=vrrp", 5*time.Second)
	notify.wait(t, "WATCHDOG=1", 5*time.Second)
	if _, err := d.WaitGroupState("MASTER", 10*time.Second); err != nil {
		t.Fatal(err, d.LogTail(2000))
	}

	// fwpaird makes every conntrack entry report its events.
	if out, err := lab.FW1.Run(context.Background(), "sysctl", "-n", "net.netfilter.nf_conntrack_events"); err != nil || strings.TrimSpace(out) != "1" {
		t.Errorf("nf_conntrack_events = %q (%v), want 1", out, err)
	}

	ctl := func(args ...string) (string, string, int) {
		ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
		defer cancel()
		cmd := exec.CommandContext(ctx, filepath.Join(bin, "fwpairctl"), append([]string{"-socket", d.Socket}, args...)...)
		var out, errb strings.Builder
		cmd.Stdout, cmd.Stderr = &out, &errb
		err := cmd.Run()
		code := 0
		if ee, ok := err.(*exec.ExitError); ok {
			code = ee.ExitCode()
		} else if err != nil {
			t.Fatal(err)
		}
		return out.String(), errb.String(), code
	}
	out, stderr, code := ctl("status", "--json")
	if code != 0 {
		t.Fatalf("status: %d %s", code, stderr)
	}
	var st api.Status
	if err := json.Unmarshal([]byte(out), &st); err != nil {
		t.Fatalf("status --json: %v\n%s", err, out)
	}
	if st.Node != "fw1" || st.VRRP == nil || st.VRRP.GroupState != "MASTER" || len(st.VRRP.Instances) != 2 ||
		st.Sync == nil || st.Sync.Mode != "ftfw" || st.LastTransition == nil || st.LastTransition.To != "MASTER" {
		t.Errorf("status --json: %s", out)
	}
	for _, inst := range st.VRRP.Instances {
		if inst.Name == "" || inst.Interface == "" || inst.VRID == 0 || inst.State != "MASTER" || inst.Priority != 150 || len(inst.VIPs) != 1 {
			t.Errorf("instance %+v", inst)
		}
	}
	for _, args := range [][]string{
		{"status"}, {"stats"}, {"cache", "internal"}, {"cache", "external"}, {"commit"}, {"resync"},
		{"flush", "external"}, {"flush"}, {"bulk"}, {"request-resync"}, {"log-level", "debug"},
		{"-c"}, {"-f", "internal"}, {"-R"}, {"-B"}, {"-n"}, {"-i"}, {"-e"}, {"-s"},
	} {
		if out, stderr, code := ctl(args...); code != 0 {
			t.Errorf("fwpairctl %v: exit %d\n%s%s", args, code, out, stderr)
		}
	}
	if _, stderr, code := ctl("log-level", "loud"); code != 1 || !strings.Contains(stderr, "loud") {
		t.Errorf("bad log level: exit %d %q", code, stderr)
	}
	if _, stderr, code := ctl("cache", "sideways"); code != 2 {
		t.Errorf("bad cache: exit %d %q", code, stderr)
	}
	if _, stderr, code := ctl("-socket", filepath.Join(dir, "nobody.sock"), "status"); code != 3 || !strings.Contains(stderr, "not reachable") {
		t.Errorf("unreachable: exit %d %q", code, stderr)
	}

	// SIGHUP: a priority change applies live.
	if err := os.WriteFile(cfgPath, []byte(strings.ReplaceAll(string(orig), "priority = 150", "priority = 120")), 0o644); err != nil {
		t.Fatal(err)
	}
	d.Signal(syscall.SIGHUP, 0)
	waitFor(t, 5*time.Second, "priority 120 after reload", func() bool {
		st, err := d.Status(context.Background())
		return err == nil && st.VRRP != nil && st.VRRP.Instances[0].Priority == 120
	})
	// A broken file keeps the running configuration and says why.
	if err := os.WriteFile(cfgPath, []byte("[vrrp\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	d.Signal(syscall.SIGHUP, 0)
	waitFor(t, 5*time.Second, "reload refused in the log", func() bool {
		return strings.Contains(d.LogTail(4000), "reload refused")
	})
	if !d.Running() {
		t.Fatal("daemon died on a bad reload")
	}
	// SIGTERM: STOPPING=1, clean exit, VIPs gone, socket removed.
	if err := d.Stop(); err != nil {
		t.Errorf("SIGTERM exit: %v\n%s", err, d.LogTail(2000))
	}
	notify.wait(t, "STOPPING=1", time.Second)
	if e0, e1, _ := lab.VIPHolders(); len(e0)+len(e1) != 0 {
		t.Errorf("VIPs left after a graceful stop: %v %v", e0, e1)
	}
	if _, err := os.Stat(d.Socket); !os.IsNotExist(err) {
		t.Errorf("control socket left behind: %v", err)
	}
}

func waitFor(t testing.TB, timeout time.Duration, what string, cond func() bool) {
	t.Helper()
	end := time.Now().Add(timeout)
	for time.Now().Before(end) {
		if cond() {
			return
		}
		time.Sleep(20 * time.Millisecond)
	}
	t.Fatalf("timed out waiting for %s", what)
}

func mustRepoFile(t testing.TB, rel string) string {
	t.Helper()
	p, err := RepoFile(rel)
	if err != nil {
		t.Fatal(err)
	}
	return p
}
