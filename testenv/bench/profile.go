package bench

// CPU profiles of the replication burst (BENCH_PROFILE=1, or `make
// profile`): perf(1) samples the sender's and the receiver's sync process
// from just before the flows are created until the last one has arrived,
// kernel stacks included, since much of the cost of a sync daemon is the
// kernel's (netlink, conntrack, event building, UDP). Each profile is
// one system-wide recording, results/profile/<stack>-rep<N>.perf.data,
// with a text breakdown per process next to it (<stack>-rep<N>-sender.txt,
// -receiver.txt: self time by area, kernel time by the Go function that
// entered the kernel, self time by symbol). The files are not committed
// (results/ is ignored).

import (
	"context"
	"debug/elf"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/fwpair/fwpair/testenv"
)

// profileDir is where profiles go, "" when BENCH_PROFILE is not set.
func profileDir() (string, error) {
	if v := os.Getenv("BENCH_PROFILE"); v == "" || v == "0" {
		return "", nil
	}
	gomod, err := testenv.RepoFile("go.mod")
	if err != nil {
		return "", err
	}
	dir := filepath.Join(filepath.Dir(gomod), "results", "profile")
	return dir, os.MkdirAll(dir, 0o755)
}

// profiler is the perf recording of one replication burst.
type profiler struct {
	cmd  *exec.Cmd
	file string
	pids [2]int
	bin  string
	log  func(string, ...any)
}

// startProfiles starts a system-wide perf recording (so threads the
// daemons start later and the kernel work done on their behalf are in it)
// when profiling is on; the result's stop is safe to call when it is off.
func (e *env) startProfiles(stack string, rep int, pids [2]int) *profiler {
	p := &profiler{log: e.logf, pids: pids}
	dir, err := profileDir()
	if err != nil {
		e.logf("profile: %v", err)
		return p
	}
	if dir == "" {
		return p
	}
	if exe, err := os.Readlink(fmt.Sprintf("/proc/%d/exe", pids[0])); err == nil {
		p.bin = exe
	}
	p.file = filepath.Join(dir, fmt.Sprintf("%s-rep%d.perf.data", stack, rep))
	cmd := exec.Command("perf", "record", "-q", "-a", "-g", "-F", "997", "-o", p.file)
	if err := cmd.Start(); err != nil {
		e.logf("profile: perf record: %v", err)
		return p
	}
	e.jan.push(func() {
		if cmd.ProcessState == nil {
			_ = cmd.Process.Kill()
			_ = cmd.Wait()
		}
	})
	p.cmd = cmd
	// perf attaches asynchronously; give it its first sample periods.
	time.Sleep(200 * time.Millisecond)
	return p
}

// stop ends the recording and writes one text report per process.
func (p *profiler) stop() {
	if p.cmd == nil {
		return
	}
	_ = p.cmd.Process.Signal(syscall.SIGINT)
	done := make(chan error, 1)
	go func() { done <- p.cmd.Wait() }()
	select {
	case <-done:
	case <-time.After(30 * time.Second):
		_ = p.cmd.Process.Kill()
		<-done
	}
	for i, role := range []string{"sender", "receiver"} {
		out := strings.TrimSuffix(p.file, ".perf.data") + "-" + role + ".txt"
		if err := perfReport(p.file, p.pids[i], p.bin, out); err != nil {
			p.log("profile: %s: %v", out, err)
			continue
		}
		p.log("profile: %s", out)
	}
}

// perfReport writes a text breakdown of pid's samples in a perf.data:
// self time by symbol (Go symbols resolved from bin's symbol table, which
// perf itself may fail to read), by Go package, and the kernel time by
// the Go function that entered the kernel.
func perfReport(file string, pid int, bin, out string) error {
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	script, err := exec.CommandContext(ctx, "perf", "script", "-i", file, "--pid", strconv.Itoa(pid),
		"-F", "ip,sym,dso").Output()
	if err != nil {
		return fmt.Errorf("perf script: %w", err)
	}
	res, err := newSymbolizer(bin)
	if err != nil {
		return err
	}
	self := map[string]int{}
	pkgs := map[string]int{}
	entry := map[string]int{}
	incl := map[string]int{}
	total := 0
	for _, block := range strings.Split(string(script), "\n\n") {
		var frames []string
		var goFrames []bool
		for _, line := range strings.Split(strings.TrimSpace(block), "\n") {
			f := strings.Fields(line)
			if len(f) < 3 {
				continue
			}
			dso := strings.Trim(f[len(f)-1], "()")
			name := strings.Join(f[1:len(f)-1], " ")
			isGo := bin != "" && dso == bin
			if isGo {
				name = res.lookup(f[0])
			} else if dso == "[kernel.kallsyms]" {
				name = "[k] " + name
			} else {
				name = "[" + filepath.Base(dso) + "] " + name
			}
			frames = append(frames, name)
			goFrames = append(goFrames, isGo)
		}
		if len(frames) == 0 {
			continue
		}
		total++
		seen := map[string]bool{}
		for i, name := range frames {
			if goFrames[i] && !seen[name] {
				seen[name] = true
				incl[name]++
			}
		}
		self[frames[0]]++
		pkgs[category(frames[0])]++
		if strings.HasPrefix(frames[0], "[k] ") {
			caller := "(no Go frame)"
			for i, name := range frames {
				if goFrames[i] && !plumbing(name) {
					caller = name
					break
				}
			}
			entry[caller]++
		}
	}
	var b strings.Builder
	fmt.Fprintf(&b, "# %s, pid %d: %d samples at 997 Hz (~%.2f s CPU)\n", filepath.Base(file), pid, total, float64(total)/997)
	section := func(title string, m map[string]int, limit int) {
		fmt.Fprintf(&b, "\n## %s\n", title)
		type kv struct {
			k string
			v int
		}
		var l []kv
		for k, v := range m {
			l = append(l, kv{k, v})
		}
		sort.Slice(l, func(i, j int) bool { return l[i].v > l[j].v || (l[i].v == l[j].v && l[i].k < l[j].k) })
		for i, e := range l {
			if i == limit {
				break
			}
			fmt.Fprintf(&b, "%6.2f%%  %s\n", 100*float64(e.v)/float64(max(total, 1)), e.k)
		}
	}
	section("self time by category (kernel: where it runs; Go: package)", pkgs, 40)
	section("kernel self time by the Go function that made the system call", entry, 25)
	section("self time by symbol", self, 60)
	section("time including callees (kernel too) by Go function", incl, 60)
	return os.WriteFile(out, []byte(b.String()), 0o644)
}

// plumbing is a Go frame between the caller and the kernel (system call
// wrappers, the poller, the scheduler), skipped when naming the caller.
func plumbing(name string) bool {
	for _, p := range []string{"runtime.", "syscall.", "golang.org/x/sys/unix.", "internal/poll.", "os.", "internal/runtime/"} {
		if strings.HasPrefix(name, p) {
			return true
		}
	}
	return strings.Contains(name, ".(*nlSocket).") || strings.Contains(name, "nlSocket.") ||
		strings.HasPrefix(name, "net.") || strings.HasPrefix(name, "(unresolved")
}

// category names a leaf frame's area: the kernel subsystem for kernel
// symbols (by name), the package for Go symbols.
func category(name string) string {
	if k, ok := strings.CutPrefix(name, "[k] "); ok {
		for _, c := range []struct{ sub, cat string }{
			{"nf_conntrack", "kernel: conntrack"}, {"nf_ct_", "kernel: conntrack"}, {"ctnetlink", "kernel: ctnetlink"},
			{"nfnetlink", "kernel: ctnetlink"}, {"netlink", "kernel: netlink"}, {"nla_", "kernel: netlink"},
			{"udp", "kernel: udp/ip"}, {"ip_", "kernel: udp/ip"}, {"skb", "kernel: skb"}, {"kmem", "kernel: alloc"},
			{"slab", "kernel: alloc"}, {"kfree", "kernel: alloc"}, {"memcpy", "kernel: copy"}, {"copy_", "kernel: copy"},
			{"finish_task_switch", "kernel: scheduler"}, {"schedule", "kernel: scheduler"}, {"futex", "kernel: futex (lock waits, wakeups)"},
			{"ep_", "kernel: epoll"}, {"syscall", "kernel: syscall entry/exit"}, {"irqentry", "kernel: syscall entry/exit"},
			{"page_fault", "kernel: page faults"}, {"clear_page", "kernel: page faults"},
		} {
			if strings.Contains(k, c.sub) {
				return c.cat
			}
		}
		return "kernel: other"
	}
	if strings.HasPrefix(name, "[") {
		return "other DSO"
	}
	if strings.HasPrefix(name, "runtime.gcBgMarkWorker") || strings.HasPrefix(name, "runtime.scanobject") ||
		strings.HasPrefix(name, "runtime.gcDrain") || strings.HasPrefix(name, "runtime.markBits") ||
		strings.HasPrefix(name, "runtime.greyobject") || strings.HasPrefix(name, "runtime.findObject") {
		return "go: GC"
	}
	if strings.HasPrefix(name, "runtime.mallocgc") || strings.HasPrefix(name, "runtime.memclr") ||
		strings.HasPrefix(name, "runtime.nextFree") {
		return "go: allocation"
	}
	// The package is everything before the last "." ahead of the first "(" or
	// of the function name.
	fn := name
	if i := strings.Index(fn, ".("); i > 0 {
		return "go: " + fn[:i]
	}
	if i := strings.LastIndex(fn, "/"); i >= 0 {
		if j := strings.Index(fn[i:], "."); j > 0 {
			return "go: " + fn[:i+j]
		}
	}
	if j := strings.Index(fn, "."); j > 0 {
		return "go: " + fn[:j]
	}
	return "go: " + fn
}

// symbolizer maps the file offsets perf reports for an executable to
// function names through its ELF symbol table.
type symbolizer struct {
	progs []*elf.Prog
	syms  []elf.Symbol
}

func newSymbolizer(bin string) (*symbolizer, error) {
	s := &symbolizer{}
	if bin == "" {
		return s, nil
	}
	f, err := elf.Open(bin)
	if err != nil {
		return nil, fmt.Errorf("symbols of %s: %w", bin, err)
	}
	defer f.Close()
	syms, err := f.Symbols()
	if err != nil {
		return nil, fmt.Errorf("symbols of %s: %w", bin, err)
	}
	for _, sy := range syms {
		if elf.ST_TYPE(sy.Info) == elf.STT_FUNC && sy.Value != 0 {
			s.syms = append(s.syms, sy)
		}
	}
	sort.Slice(s.syms, func(i, j int) bool { return s.syms[i].Value < s.syms[j].Value })
	for _, p := range f.Progs {
		if p.Type == elf.PT_LOAD && p.Flags&elf.PF_X != 0 {
			s.progs = append(s.progs, p)
		}
	}
	return s, nil
}

// lookup resolves a hexadecimal file offset (perf's "[unknown]" address).
func (s *symbolizer) lookup(hex string) string {
	off, err := strconv.ParseUint(hex, 16, 64)
	if err != nil {
		return "(unresolved " + hex + ")"
	}
	addr := off
	for _, p := range s.progs {
		if off >= p.Off && off < p.Off+p.Filesz {
			addr = off - p.Off + p.Vaddr
			break
		}
	}
	i := sort.Search(len(s.syms), func(i int) bool { return s.syms[i].Value > addr }) - 1
	if i < 0 {
		return "(unresolved " + hex + ")"
	}
	return s.syms[i].Name
}
