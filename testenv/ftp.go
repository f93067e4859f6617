package testenv

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"net"
	"net/netip"
	"strconv"
	"strings"
	"sync"
	"time"
)

// A minimal FTP server and client, enough for the kernel's ftp helper to
// create real expectations (it reads the 227 reply of PASV and the PORT
// command) and to open the data connections they announce. Passive: the
// client opens the data connection to the port of the 227 reply. Active:
// the server connects to the address of the PORT command it received
// (rewritten to the outside VIP by the firewall's FTP NAT).

// ftpTimeout bounds every read, accept and dial of the FTP helpers.
const ftpTimeout = 10 * time.Second

// Data sent on the data connections.
const (
	FTPPassiveData = "passive-data\n"
	FTPActiveData  = "active-data\n"
)

// FTPServer is the fake FTP server.
type FTPServer struct {
	ns   *NS
	addr netip.Addr
	ln   net.Listener
	wg   sync.WaitGroup
	mu   sync.Mutex
	live map[io.Closer]struct{}
	done bool
}

// StartFTPServer listens on addr:21 inside ns.
func StartFTPServer(ns *NS, addr netip.Addr) (*FTPServer, error) {
	s := &FTPServer{ns: ns, addr: addr, live: map[io.Closer]struct{}{}}
	err := ns.Do(func() error {
		var err error
		s.ln, err = net.Listen("tcp", netip.AddrPortFrom(addr, 21).String())
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("ftp server in %s: %w", ns.Name, err)
	}
	s.wg.Add(1)
	go s.accept()
	return s, nil
}

func (s *FTPServer) track(c io.Closer) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.done {
		c.Close()
		return false
	}
	s.live[c] = struct{}{}
	return true
}

func (s *FTPServer) untrack(c io.Closer) {
	s.mu.Lock()
	delete(s.live, c)
	s.mu.Unlock()
	c.Close()
}

func (s *FTPServer) accept() {
	defer s.wg.Done()
	for {
		c, err := s.ln.Accept()
		if err != nil {
			return
		}
		if !s.track(c) {
			return
		}
		s.wg.Add(1)
		go func() {
			defer s.wg.Done()
			defer s.untrack(c)
			s.serve(c)
		}()
	}
}

// serve answers PASV, PORT, RETR, NOOP and QUIT on one control connection.
func (s *FTPServer) serve(c net.Conn) {
	r := bufio.NewReader(c)
	reply := func(line string) bool {
		_, err := io.WriteString(c, line+"\r\n")
		return err == nil
	}
	if !reply("220 fwpair test server") {
		return
	}
	var port netip.AddrPort
	for {
		line, err := r.ReadString('\n')
		if err != nil {
			return
		}
		cmd, arg, _ := strings.Cut(strings.TrimSpace(line), " ")
		switch strings.ToUpper(cmd) {
		case "PASV":
			var ln net.Listener
			err := s.ns.Do(func() error {
				var err error
				ln, err = net.Listen("tcp", netip.AddrPortFrom(s.addr, 0).String())
				return err
			})
			if err != nil || !s.track(ln) {
				reply("425 cannot listen")
				continue
			}
			p := ln.Addr().(*net.TCPAddr).Port
			a := s.addr.As4()
			s.wg.Add(1)
			go func() {
				defer s.wg.Done()
				defer s.untrack(ln)
				ln.(*net.TCPListener).SetDeadline(time.Now().Add(5 * time.Minute))
				d, err := ln.Accept()
				if err != nil {
					return
				}
				io.WriteString(d, FTPPassiveData)
				d.Close()
			}()
			if !reply(fmt.Sprintf("227 Entering Passive Mode (%d,%d,%d,%d,%d,%d).", a[0], a[1], a[2], a[3], p>>8, p&0xff)) {
				return
			}
		case "PORT":
			ap, err := parseFTPHostPort(arg)
			if err != nil {
				reply("501 " + err.Error())
				continue
			}
			port = ap
			if !reply("200 PORT " + ap.String()) {
				return
			}
		case "RETR":
			if !port.IsValid() || !reply("150 connecting to "+port.String()) {
				reply("425 no PORT")
				continue
			}
			var d net.Conn
			err := s.ns.Do(func() error {
				var err error
				d, err = net.DialTimeout("tcp", port.String(), ftpTimeout)
				return err
			})
			if err != nil {
				reply("425 " + err.Error())
				continue
			}
			io.WriteString(d, FTPActiveData)
			d.Close()
			if !reply("226 sent") {
				return
			}
		case "USER":
			if !reply("230 logged in") {
				return
			}
		case "NOOP":
			if !reply("200 NOOP") {
				return
			}
		case "QUIT":
			reply("221 bye")
			return
		default:
			reply(fmt.Sprintf("502 not implemented: %q", line))
		}
	}
}

// parseFTPHostPort parses "h1,h2,h3,h4,p1,p2".
func parseFTPHostPort(s string) (netip.AddrPort, error) {
	f := strings.Split(strings.Trim(strings.TrimSpace(s), "()."), ",")
	if len(f) != 6 {
		return netip.AddrPort{}, fmt.Errorf("bad host-port %q", s)
	}
	var b [6]byte
	for i, x := range f {
		n, err := strconv.Atoi(strings.TrimSpace(x))
		if err != nil || n < 0 || n > 255 {
			return netip.AddrPort{}, fmt.Errorf("bad host-port %q", s)
		}
		b[i] = byte(n)
	}
	return netip.AddrPortFrom(netip.AddrFrom4([4]byte(b[:4])), uint16(b[4])<<8|uint16(b[5])), nil
}

// Close stops the server and its connections.
func (s *FTPServer) Close() {
	s.ln.Close()
	s.mu.Lock()
	s.done = true
	for c := range s.live {
		c.Close()
	}
	s.mu.Unlock()
	s.wg.Wait()
}

// FTPClient is one control connection from a namespace.
type FTPClient struct {
	ns *NS
	c  net.Conn
	r  *bufio.Reader
	ln net.Listener // active mode: the data listener
}

// DialFTP opens a control connection from ns and reads the greeting.
func DialFTP(ns *NS, server netip.AddrPort) (*FTPClient, error) {
	var c net.Conn
	err := ns.Do(func() error {
		var err error
		c, err = net.DialTimeout("tcp", server.String(), ftpTimeout)
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("ftp control from %s: %w", ns.Name, err)
	}
	f := &FTPClient{ns: ns, c: c, r: bufio.NewReader(c)}
	if _, err := f.readReply("220"); err != nil {
		c.Close()
		return nil, err
	}
	// The helper reads commands only after a line end it has seen in the
	// same direction: log in first, as every client does.
	if _, err := f.Cmd("USER anonymous", "230"); err != nil {
		c.Close()
		return nil, err
	}
	return f, nil
}

func (f *FTPClient) readReply(code string) (string, error) {
	f.c.SetReadDeadline(time.Now().Add(ftpTimeout))
	line, err := f.r.ReadString('\n')
	if err != nil {
		return "", fmt.Errorf("ftp control: waiting for %s: %w", code, err)
	}
	line = strings.TrimSpace(line)
	if !strings.HasPrefix(line, code+" ") {
		return line, fmt.Errorf("ftp control: got %q, want %s", line, code)
	}
	return line, nil
}

// Cmd sends one command and reads its reply, which must carry code.
func (f *FTPClient) Cmd(cmd, code string) (string, error) {
	f.c.SetWriteDeadline(time.Now().Add(ftpTimeout))
	if _, err := io.WriteString(f.c, cmd+"\r\n"); err != nil {
		return "", fmt.Errorf("ftp control: %s: %w", cmd, err)
	}
	return f.readReply(code)
}

// Pasv asks for a passive data port; the firewall's helper sets up an
// expectation for it.
func (f *FTPClient) Pasv() (netip.AddrPort, error) {
	line, err := f.Cmd("PASV", "227")
	if err != nil {
		return netip.AddrPort{}, err
	}
	i, j := strings.IndexByte(line, '('), strings.IndexByte(line, ')')
	if i < 0 || j < i {
		return netip.AddrPort{}, fmt.Errorf("ftp: bad 227 reply %q", line)
	}
	return parseFTPHostPort(line[i+1 : j])
}

// PassiveGet opens the data connection to ap and reads it to the end.
func (f *FTPClient) PassiveGet(ap netip.AddrPort) (string, error) {
	var d net.Conn
	err := f.ns.Do(func() error {
		var err error
		d, err = net.DialTimeout("tcp", ap.String(), ftpTimeout)
		return err
	})
	if err != nil {
		return "", fmt.Errorf("ftp passive data connection: %w", err)
	}
	defer d.Close()
	d.SetReadDeadline(time.Now().Add(ftpTimeout))
	b, err := io.ReadAll(d)
	return string(b), err
}

// Port listens on local:0 in the client's namespace and announces it with
// PORT; the firewall's helper sets up an expectation for the server's
// connection to it.
func (f *FTPClient) Port(local netip.Addr) error {
	err := f.ns.Do(func() error {
		var err error
		f.ln, err = net.Listen("tcp", netip.AddrPortFrom(local, 0).String())
		return err
	})
	if err != nil {
		return err
	}
	p := f.ln.Addr().(*net.TCPAddr).Port
	a := local.As4()
	_, err = f.Cmd(fmt.Sprintf("PORT %d,%d,%d,%d,%d,%d", a[0], a[1], a[2], a[3], p>>8, p&0xff), "200")
	return err
}

// ActiveGet sends RETR and reads what the server sends on the data
// connection it opens to the PORT address.
func (f *FTPClient) ActiveGet() (string, error) {
	if f.ln == nil {
		return "", errors.New("ftp: ActiveGet without Port")
	}
	if _, err := f.Cmd("RETR x", "150"); err != nil {
		return "", err
	}
	f.ln.(*net.TCPListener).SetDeadline(time.Now().Add(ftpTimeout))
	d, err := f.ln.Accept()
	if err != nil {
		line, _ := f.readReply("226")
		return "", fmt.Errorf("ftp active data connection not received: %w (server: %s)", err, line)
	}
	defer d.Close()
	d.SetReadDeadline(time.Now().Add(ftpTimeout))
	b, err := io.ReadAll(d)
	if err != nil {
		return string(b), err
	}
	_, err = f.readReply("226")
	return string(b), err
}

// Close closes the control connection and the data listener.
func (f *FTPClient) Close() {
	f.c.Close()
	if f.ln != nil {
		f.ln.Close()
	}
}
