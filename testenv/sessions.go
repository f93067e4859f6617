package testenv

import (
	"context"
	"encoding/binary"

	"fmt"
	"io"
	"net"
	"net/netip"
	"sync"
	"sync/atomic"
	"time"
)

// EchoServer accepts TCP connections inside a namespace and echoes every
// byte back. It is the far end of the long-lived sessions used to judge a
// failover.
type EchoServer struct {
	ln   net.Listener
	wg   sync.WaitGroup
	mu   sync.Mutex
	conn map[net.Conn]struct{}
}

// StartEchoServer listens on addr inside ns. Stop it with Close.
func StartEchoServer(ns *NS, addr netip.AddrPort) (*EchoServer, error) {
	var ln net.Listener
	err := ns.Do(func() error {
		var err error
		ln, err = net.Listen("tcp", addr.String())
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("echo server in %s: %w", ns.Name, err)
	}
	s := &EchoServer{ln: ln, conn: map[net.Conn]struct{}{}}
	s.wg.Add(1)
	go s.accept()
	return s, nil
}

func (s *EchoServer) accept() {
	defer s.wg.Done()
	for {
		c, err := s.ln.Accept()
		if err != nil {
			return
		}
		s.mu.Lock()
		s.conn[c] = struct{}{}
		s.mu.Unlock()
		s.wg.Add(1)
		go func() {
			defer s.wg.Done()
			_, _ = io.Copy(c, c)
			c.Close()
			s.mu.Lock()
			delete(s.conn, c)
			s.mu.Unlock()
		}()
	}
}

// Close stops the server and every connection it holds.
func (s *EchoServer) Close() {
	s.ln.Close()
	s.mu.Lock()
	for c := range s.conn {
		c.Close()
	}
	s.mu.Unlock()
	s.wg.Wait()
}

// Session is one long-lived TCP connection that sends a sequence number
// every interval and reads it back from the echo server.
type Session struct {
	conn     net.Conn
	lastEcho atomic.Int64 // unix nanoseconds of the last echo received
	maxStall atomic.Int64 // longest gap between two echoes, nanoseconds
	err      atomic.Pointer[error]
}

// Sessions is a set of long-lived sessions from the client to the server.
type Sessions struct {
	list   []*Session
	cancel context.CancelFunc
	wg     sync.WaitGroup
}

// OpenSessions dials n sessions from ns to addr and keeps data flowing on
// each every interval until Close.
func OpenSessions(ns *NS, addr netip.AddrPort, n int, interval time.Duration) (*Sessions, error) {
	ctx, cancel := context.WithCancel(context.Background())
	ss := &Sessions{cancel: cancel}
	for i := 0; i < n; i++ {
		var c net.Conn
		err := ns.Do(func() error {
			var err error
			d := net.Dialer{Timeout: 5 * time.Second}
			c, err = d.DialContext(ctx, "tcp", addr.String())
			return err
		})
		if err != nil {
			ss.Close()
			return nil, fmt.Errorf("session %d to %s from %s: %w", i, addr, ns.Name, err)
		}
		s := &Session{conn: c}
		s.lastEcho.Store(time.Now().UnixNano())
		ss.list = append(ss.list, s)
		ss.wg.Add(2)
		go ss.writeLoop(ctx, s, interval)
		go ss.readLoop(s)
	}
	return ss, nil
}

func (ss *Sessions) writeLoop(ctx context.Context, s *Session, interval time.Duration) {
	defer ss.wg.Done()
	t := time.NewTicker(interval)
	defer t.Stop()
	var buf [8]byte
	for seq := uint64(0); ; seq++ {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		binary.BigEndian.PutUint64(buf[:], seq)
		s.conn.SetWriteDeadline(time.Now().Add(2 * time.Second))
		if _, err := s.conn.Write(buf[:]); err != nil {
			if ne, ok := err.(net.Error); ok && ne.Timeout() {
				continue // a full send buffer during a stall is not a reset
			}
			s.setErr(err)
			return
		}
	}
}

func (ss *Sessions) readLoop(s *Session) {
	defer ss.wg.Done()
	var buf [8]byte
	for {
		if _, err := io.ReadFull(s.conn, buf[:]); err != nil {
			s.setErr(err)
			return
		}
		now := time.Now().UnixNano()
		if gap := now - s.lastEcho.Swap(now); gap > s.maxStall.Load() {
			s.maxStall.Store(gap)
		}
	}
}

func (s *Session) setErr(err error) {
	s.err.CompareAndSwap(nil, &err)
}

// Err is the error that ended the session (a reset), nil while alive.
func (s *Session) Err() error {
	if p := s.err.Load(); p != nil {
		return *p
	}
	return nil
}

// Verdict sums up the sessions at one moment.
type Verdict struct {
	Total int
	// Kept sessions received an echo after the reference time.
	Kept int
	// Reset sessions ended with an error (RST, closed).
	Reset int
	// Stalled sessions are alive but got no echo since the reference time.
	Stalled  int
	MaxStall time.Duration
}

func (v Verdict) String() string {
	return fmt.Sprintf("sessions kept: %d/%d, reset: %d, stalled: %d, longest stall: %s",
		v.Kept, v.Total, v.Reset, v.Stalled, v.MaxStall.Round(time.Millisecond))
}

// Check counts the sessions that got data back after since.
func (ss *Sessions) Check(since time.Time) Verdict {
	v := Verdict{Total: len(ss.list)}
	for _, s := range ss.list {
		stall := time.Duration(s.maxStall.Load())
		if stall > v.MaxStall {
			v.MaxStall = stall
		}
		switch {
		case s.Err() != nil:
			v.Reset++
		case s.lastEcho.Load() > since.UnixNano():
			v.Kept++
		default:
			v.Stalled++
		}
	}
	return v
}

// WaitKept polls until every session has had data back after since, or
// until the deadline; it returns the last verdict.
func (ss *Sessions) WaitKept(since time.Time, deadline time.Duration) Verdict {
	end := time.Now().Add(deadline)
	for {
		v := ss.Check(since)
		if v.Kept == v.Total || v.Reset > 0 && v.Kept+v.Reset == v.Total || time.Now().After(end) {
			return v
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// ResetStalls forgets the longest stall seen so far.
func (ss *Sessions) ResetStalls() {
	for _, s := range ss.list {
		s.maxStall.Store(0)
	}
}

// Close ends every session.
func (ss *Sessions) Close() {
	ss.cancel()
	for _, s := range ss.list {
		s.conn.Close()
	}
	ss.wg.Wait()
}
