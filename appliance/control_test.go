package appliance

import (
	"context"
	"errors"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/fwpair/fwpair/appliance/api"
	"github.com/fwpair/fwpair/appliance/client"
)

// stubController answers the control API from fixed data, so the server
// and client are tested without engines.
type stubController struct{ level string }

func (s *stubController) Status() api.Status {
	return api.Status{Node: "fw1", VRRP: &api.VRRPStatus{GroupState: "MASTER"}}
}
func (s *stubController) Stats() api.Stats { return api.Stats{Sync: map[string]uint64{"acks_sent": 3}} }
func (s *stubController) Cache(which string) (api.Cache, error) {
	if which != "internal" && which != "external" {
		return api.Cache{}, errors.Join(ErrBadRequest, errors.New("bad cache"))
	}
	return api.Cache{Which: which, Entries: []api.CacheEntry{{Proto: "tcp", Src: "192.168.0.10", Dst: "192.168.1.10", DstPort: 80}}}, nil
}
func (s *stubController) Commit(context.Context) (api.CommitResult, error) {
	return api.CommitResult{Created: 7}, nil
}
func (s *stubController) Resync(context.Context) error { return nil }
func (s *stubController) Flush(which string) error {
	if which == "bogus" {
		return errors.Join(ErrBadRequest, errors.New("bogus cache"))
	}
	return nil
}
func (s *stubController) Bulk() error          { return errors.Join(ErrUnavailable, errors.New("no sync")) }
func (s *stubController) RequestResync() error { return nil }
func (s *stubController) SetLogLevel(level string) error {
	if _, err := ParseLevel(level); err != nil {
		return err
	}
	s.level = level
	return nil
}

func startControl(t *testing.T, ctl controller) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), "run", "fwpaird.sock")
	cs, err := newControlServer(path, slog.New(slog.DiscardHandler), ctl)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- cs.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Error(err)
		}
	})
	return path
}

func TestControlAPI(t *testing.T) {
	stub := &stubController{}
	path := startControl(t, stub)
	fi, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	if fi.Mode().Perm() != 0o660 {
		t.Errorf("socket mode %v, want 0660", fi.Mode().Perm())
	}
	c := client.New(path)
	ctx := context.Background()
	st, err := c.Status(ctx)
	if err != nil || st.Node != "fw1" || st.VRRP.GroupState != "MASTER" {
		t.Fatalf("status %+v %v", st, err)
	}
	cache, err := c.Cache(ctx, "external")
	if err != nil || len(cache.Entries) != 1 {
		t.Fatalf("cache %+v %v", cache, err)
	}
	if res, err := c.Commit(ctx); err != nil || res.Created != 7 {
		t.Fatalf("commit %+v %v", res, err)
	}
	var re *client.RefusedError
	if _, err := c.Cache(ctx, "sideways"); !errors.As(err, &re) || re.Status != 400 || re.Body.Code != "bad_request" {
		t.Errorf("bad cache name: %v", err)
	}
	if _, err := c.Flush(ctx, "bogus"); !errors.As(err, &re) || re.Status != 400 {
		t.Errorf("bad flush: %v", err)
	}
	if _, err := c.Bulk(ctx); !errors.As(err, &re) || re.Status != 409 || re.Body.Code != "unavailable" {
		t.Errorf("unavailable bulk: %v", err)
	}
	if _, err := c.SetLogLevel(ctx, "loud"); !errors.As(err, &re) || !strings.Contains(re.Body.Error, "loud") {
		t.Errorf("bad level: %v", err)
	}
	if _, err := c.SetLogLevel(ctx, "debug"); err != nil || stub.level != "debug" {
		t.Errorf("log level: %v %q", err, stub.level)
	}
	// Wrong method and unknown endpoint.
	hc := client.New(path)
	if _, err := hc.Resync(ctx); err != nil {
		t.Errorf("resync: %v", err)
	}
}

func TestControlSocketStaleAndBusy(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "fwpaird.sock")
	// A stale socket file (no listener) is replaced.
	ln, err := net.Listen("unix", path)
	if err != nil {
		t.Fatal(err)
	}
	ln.(*net.UnixListener).SetUnlinkOnClose(false)
	ln.Close()
	ln2, err := listenControl(path)
	if err != nil {
		t.Fatalf("stale socket not replaced: %v", err)
	}
	defer ln2.Close()
	// A live one is refused.
	if _, err := listenControl(path); err == nil || !strings.Contains(err.Error(), "another fwpaird") {
		t.Fatalf("second daemon on a live socket: %v", err)
	}
}

func TestClientUnreachable(t *testing.T) {
	c := client.New(filepath.Join(t.TempDir(), "nobody.sock"))
	if _, err := c.Status(context.Background()); !errors.Is(err, client.ErrUnreachable) {
		t.Fatalf("got %v, want ErrUnreachable", err)
	}
}
