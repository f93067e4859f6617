// Command qemu-guest runs inside the QEMU lab's VMs (it is built static and
// put into the initramfs as /bin/qemu-guest). It has four modes:
//
//	qemu-guest agent [-port NAME]           the control channel: runs each line it reads
//	                                        on the virtio-serial port with /bin/sh and
//	                                        answers with the output and an end marker
//	qemu-guest echo [-tcp ADDR] [-udp ADDR] TCP line echo and UDP datagram echo (server)
//	qemu-guest tcp-client -addr A -status F one long-lived TCP session, a line every interval
//	qemu-guest probe -addr A -status F      UDP probe every interval, measures traffic gaps
//
// The agent protocol: the host writes "ID<TAB>TIMEOUT_MS<TAB>COMMAND\n"; the
// agent runs COMMAND with sh -c (stdin from /dev/null, stdout and stderr
// combined), then writes the output followed by "\n@@END ID RC\n". RC is the
// exit code, 124 when the timeout killed the command, 127 when it could not
// start.
package main

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
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

func main() {
	if len(os.Args) < 2 {
		fmt.Fprintln(os.Stderr, "usage: qemu-guest agent|echo|tcp-client|probe [flags]")
		os.Exit(2)
	}
	var err error
	switch os.Args[1] {
	case "agent":
		err = agent(os.Args[2:])
	case "echo":
		err = echo(os.Args[2:])
	case "tcp-client":
		err = tcpClient(os.Args[2:])
	case "probe":
		err = probe(os.Args[2:])
	default:
		err = fmt.Errorf("unknown mode %q", os.Args[1])
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "qemu-guest:", err)
		os.Exit(1)
	}
}

// findPort returns the device node of the virtio-serial port called name.
func findPort(name string) (string, error) {
	dirs, _ := filepath.Glob("/sys/class/virtio-ports/*")
	for _, d := range dirs {
		b, err := os.ReadFile(filepath.Join(d, "name"))
		if err == nil && strings.TrimSpace(string(b)) == name {
			return "/dev/" + filepath.Base(d), nil
		}
	}
	return "", fmt.Errorf("no virtio-serial port named %q", name)
}

func agent(args []string) error {
	fs := flag.NewFlagSet("agent", flag.ExitOnError)
	port := fs.String("port", "fwpair.ctl", "virtio-serial port name")
	_ = fs.Parse(args)
	var dev string
	for {
		var err error
		if dev, err = findPort(*port); err == nil {
			break
		}
		time.Sleep(100 * time.Millisecond)
	}
	f, err := os.OpenFile(dev, os.O_RDWR, 0)
	if err != nil {
		return err
	}
	defer f.Close()
	var wmu sync.Mutex
	reply := func(b []byte) {
		wmu.Lock()
		defer wmu.Unlock()
		for len(b) > 0 {
			n, err := f.Write(b)
			if err != nil {
				// The host is not connected: drop the answer, it will ask again.
				return
			}
			b = b[n:]
		}
	}
	var line []byte
	buf := make([]byte, 4096)
	for {
		n, err := f.Read(buf)
		if n == 0 || err != nil {
			// EOF means the host side is not connected yet (or went away).
			time.Sleep(100 * time.Millisecond)
			continue
		}
		line = append(line, buf[:n]...)
		for {
			i := bytes.IndexByte(line, '\n')
			if i < 0 {
				break
			}
			req := string(line[:i])
			line = line[i+1:]
			go func() { reply(runRequest(req)) }()
		}
	}
}

// runRequest runs one "ID\tTIMEOUT_MS\tCOMMAND" request and returns the answer.
func runRequest(req string) []byte {
	parts := strings.SplitN(req, "\t", 3)
	if len(parts) != 3 {
		return nil
	}
	id := parts[0]
	ms, err := strconv.Atoi(parts[1])
	if err != nil || ms <= 0 {
		ms = 10000
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Duration(ms)*time.Millisecond)
	defer cancel()
	cmd := exec.CommandContext(ctx, "/bin/sh", "-c", parts[2])
	var out bytes.Buffer
	cmd.Stdout = &out
	cmd.Stderr = &out
	// A command that leaves a background child holding the output open
	// must not hang the answer.
	cmd.WaitDelay = time.Second
	// On timeout, kill the command's whole process group, not only sh.
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	cmd.Cancel = func() error { return syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL) }
	rc := 0
	if err := cmd.Run(); err != nil {
		var ee *exec.ExitError
		switch {
		case ctx.Err() != nil:
			rc = 124
		case errors.As(err, &ee) && ee.ExitCode() >= 0:
			rc = ee.ExitCode()
		case errors.As(err, &ee):
			rc = 128
		default:
			fmt.Fprintln(&out, err)
			rc = 127
		}
	}
	b := out.Bytes()
	if len(b) > 0 && b[len(b)-1] != '\n' {
		b = append(b, '\n')
	}
	return append(b, fmt.Sprintf("@@END %s %d\n", id, rc)...)
}

func echo(args []string) error {
	fs := flag.NewFlagSet("echo", flag.ExitOnError)
	tcpAddr := fs.String("tcp", ":7000", "TCP listen address (line echo)")
	udpAddr := fs.String("udp", ":7001", "UDP listen address (datagram echo)")
	_ = fs.Parse(args)
	ln, err := net.Listen("tcp", *tcpAddr)
	if err != nil {
		return err
	}
	pc, err := net.ListenPacket("udp", *udpAddr)
	if err != nil {
		return err
	}
	go func() {
		buf := make([]byte, 2048)
		for {
			n, from, err := pc.ReadFrom(buf)
			if err != nil {
				continue
			}
			_, _ = pc.WriteTo(buf[:n], from)
		}
	}()
	for {
		c, err := ln.Accept()
		if err != nil {
			continue
		}
		go func() {
			defer c.Close()
			_, _ = io.Copy(c, c)
		}()
	}
}

// writeStatus replaces file with the key=value line atomically.
func writeStatus(file, line string) {
	tmp := file + ".tmp"
	if os.WriteFile(tmp, []byte(line+"\n"), 0o644) == nil {
		_ = os.Rename(tmp, file)
	}
}

// tcpClient keeps one TCP session open, sends a numbered line every interval
// and expects it echoed. It never reconnects: a reset or a timeout ends the
// session and is reported as err=... in the status file.
func tcpClient(args []string) error {
	fs := flag.NewFlagSet("tcp-client", flag.ExitOnError)
	addr := fs.String("addr", "192.168.1.10:7000", "server address")
	interval := fs.Duration("interval", 100*time.Millisecond, "time between lines")
	timeout := fs.Duration("timeout", 30*time.Second, "how long one line may take")
	status := fs.String("status", "/tmp/tcp.status", "status file")
	_ = fs.Parse(args)
	start := time.Now()
	c, err := net.DialTimeout("tcp", *addr, 5*time.Second)
	if err != nil {
		writeStatus(*status, fmt.Sprintf("ok=0 maxgap_ms=0 alive=0 err=%q", err.Error()))
		return err
	}
	defer c.Close()
	r := bufio.NewReader(c)
	var ok int
	var maxGap time.Duration
	last := time.Now()
	for seq := 1; ; seq++ {
		_ = c.SetDeadline(time.Now().Add(*timeout))
		want := fmt.Sprintf("line %d", seq)
		_, err := fmt.Fprintln(c, want)
		var got string
		if err == nil {
			got, err = r.ReadString('\n')
		}
		if err == nil && strings.TrimSpace(got) != want {
			err = fmt.Errorf("got %q, want %q", strings.TrimSpace(got), want)
		}
		now := time.Now()
		if err != nil {
			writeStatus(*status, fmt.Sprintf("ok=%d maxgap_ms=%d alive=0 age_ms=%d err=%q", ok, maxGap.Milliseconds(), now.Sub(start).Milliseconds(), err.Error()))
			return err
		}
		ok++
		if g := now.Sub(last); g > maxGap {
			maxGap = g
		}
		last = now
		writeStatus(*status, fmt.Sprintf("ok=%d maxgap_ms=%d alive=1 age_ms=%d", ok, maxGap.Milliseconds(), now.Sub(start).Milliseconds()))
		time.Sleep(*interval)
	}
}

// probe sends a numbered UDP datagram every interval and records the gaps
// between answers. The status file holds the largest gap since the last
// reset (touch RESETFILE to reset) and the time since the last answer.
func probe(args []string) error {
	fs := flag.NewFlagSet("probe", flag.ExitOnError)
	addr := fs.String("addr", "192.168.1.10:7001", "echo server address")
	interval := fs.Duration("interval", 20*time.Millisecond, "time between datagrams")
	status := fs.String("status", "/tmp/probe.status", "status file")
	reset := fs.String("reset", "/tmp/probe.reset", "reset the gap when this file appears")
	_ = fs.Parse(args)
	c, err := net.Dial("udp", *addr)
	if err != nil {
		return err
	}
	var mu sync.Mutex
	var sent, recv int
	last := time.Now()
	var maxGap time.Duration
	go func() {
		buf := make([]byte, 64)
		for {
			if _, err := c.Read(buf); err != nil {
				// ICMP errors (unreachable during a failover) show up here.
				time.Sleep(*interval)
				continue
			}
			now := time.Now()
			mu.Lock()
			recv++
			if g := now.Sub(last); g > maxGap {
				maxGap = g
			}
			last = now
			mu.Unlock()
		}
	}()
	tick := time.NewTicker(*interval)
	defer tick.Stop()
	for n := 0; ; n++ {
		<-tick.C
		_, _ = fmt.Fprintf(c, "probe %d", n)
		now := time.Now()
		mu.Lock()
		sent++
		if _, err := os.Stat(*reset); err == nil {
			_ = os.Remove(*reset)
			maxGap = 0
		}
		cur := now.Sub(last)
		gap := max(maxGap, cur)
		line := fmt.Sprintf("sent=%d recv=%d maxgap_ms=%d since_ms=%d", sent, recv, gap.Milliseconds(), cur.Milliseconds())
		mu.Unlock()
		if n%5 == 0 {
			writeStatus(*status, line)
		}
	}
}
