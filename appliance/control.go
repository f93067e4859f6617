package appliance

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"github.com/fwpair/fwpair/appliance/api"
)

// Errors the control API maps to answers.
var (
	// ErrBadRequest is a malformed or invalid control request.
	ErrBadRequest = errors.New("bad request")
	// ErrUnavailable means the request needs an engine that is not
	// configured (e.g. a cache command without [sync]).
	ErrUnavailable = errors.New("not available")
)

// controller is what the control API drives; Daemon implements it.
type controller interface {
	Status() api.Status
	Stats() api.Stats
	Cache(which string) (api.Cache, error)
	Commit(ctx context.Context) (api.CommitResult, error)
	Resync(ctx context.Context) error
	Flush(which string) error
	Bulk() error
	RequestResync() error
	SetLogLevel(level string) error
}

// controlServer serves the control API on a UNIX socket.
type controlServer struct {
	path string
	log  *slog.Logger
	ctl  controller
	ln   net.Listener
	srv  *http.Server
}

// listenControl opens the control socket: parent directory created 0750,
// socket mode 0660. A socket file left by a dead daemon is replaced; one a
// live daemon still answers on is an error, so two daemons never share it.
func listenControl(path string) (net.Listener, error) {
	if err := os.MkdirAll(filepath.Dir(path), 0o750); err != nil {
		return nil, fmt.Errorf("control socket: %w", err)
	}
	if fi, err := os.Lstat(path); err == nil {
		if fi.Mode()&os.ModeSocket == 0 {
			// connect(2) to a regular file fails like a dead socket: never
			// take an operator's file for a stale socket and delete it.
			return nil, fmt.Errorf("control socket %s exists and is not a socket (%s): refusing to replace it", path, fi.Mode().Type())
		}
		c, err := net.DialTimeout("unix", path, time.Second)
		if err == nil {
			c.Close()
			return nil, fmt.Errorf("control socket %s: another fwpaird is running and answering on it", path)
		}
		if !errors.Is(err, syscall.ECONNREFUSED) && !errors.Is(err, syscall.ENOENT) {
			return nil, fmt.Errorf("control socket %s exists and is not a stale socket: %w", path, err)
		}
		if err := os.Remove(path); err != nil {
			return nil, fmt.Errorf("remove stale control socket: %w", err)
		}
	}
	ln, err := net.Listen("unix", path)
	if err != nil {
		return nil, fmt.Errorf("control socket: %w", err)
	}
	if err := os.Chmod(path, 0o660); err != nil {
		ln.Close()
		return nil, fmt.Errorf("control socket: %w", err)
	}
	return ln, nil
}

func newControlServer(path string, log *slog.Logger, ctl controller) (*controlServer, error) {
	ln, err := listenControl(path)
	if err != nil {
		return nil, err
	}
	cs := &controlServer{path: path, log: log, ctl: ctl, ln: ln}
	cs.srv = &http.Server{Handler: cs.handler(), ReadHeaderTimeout: 5 * time.Second}
	return cs, nil
}

// close releases a control server that will never Run.
func (cs *controlServer) close() {
	cs.ln.Close()
	os.Remove(cs.path)
}

// Run serves until ctx ends, then removes the socket.
func (cs *controlServer) Run(ctx context.Context) error {
	errc := make(chan error, 1)
	go func() { errc <- cs.srv.Serve(cs.ln) }()
	select {
	case <-ctx.Done():
		sctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		defer cancel()
		cs.srv.Shutdown(sctx)
		<-errc
		os.Remove(cs.path)
		return nil
	case err := <-errc:
		os.Remove(cs.path)
		return fmt.Errorf("control server: %w", err)
	}
}

func (cs *controlServer) handler() http.Handler {
	mux := http.NewServeMux()
	get := func(path string, fn func(r *http.Request) (any, error)) {
		mux.HandleFunc(path, cs.wrap(http.MethodGet, fn))
	}
	post := func(path string, fn func(r *http.Request) (any, error)) {
		mux.HandleFunc(path, cs.wrap(http.MethodPost, fn))
	}
	get(api.PathStatus, func(*http.Request) (any, error) { return cs.ctl.Status(), nil })
	get(api.PathStats, func(*http.Request) (any, error) { return cs.ctl.Stats(), nil })
	get(api.PathCache, func(r *http.Request) (any, error) {
		return cs.ctl.Cache(strings.TrimPrefix(r.URL.Path, api.PathCache))
	})
	post(api.PathCommit, func(r *http.Request) (any, error) { return cs.ctl.Commit(r.Context()) })
	post(api.PathResync, func(r *http.Request) (any, error) {
		return done("internal cache resynced from the kernel"), cs.ctl.Resync(r.Context())
	})
	post(api.PathFlush, func(r *http.Request) (any, error) {
		which := r.URL.Query().Get("cache")
		if which == "" {
			which = "all"
		}
		return done("flushed " + which), cs.ctl.Flush(which)
	})
	post(api.PathBulk, func(*http.Request) (any, error) {
		return done("bulk send of the internal cache queued"), cs.ctl.Bulk()
	})
	post(api.PathRequestResync, func(*http.Request) (any, error) {
		return done("resync requested from the peer"), cs.ctl.RequestResync()
	})
	post(api.PathLogLevel, func(r *http.Request) (any, error) {
		level := r.URL.Query().Get("level")
		return done("log level " + level), cs.ctl.SetLogLevel(level)
	})
	mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		writeError(w, http.StatusNotFound, "not_found", fmt.Sprintf("no such endpoint %s", r.URL.Path))
	})
	return mux
}

func done(msg string) api.Result { return api.Result{OK: true, Message: msg} }

func (cs *controlServer) wrap(method string, fn func(r *http.Request) (any, error)) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		if r.Method != method {
			w.Header().Set("Allow", method)
			writeError(w, http.StatusMethodNotAllowed, "bad_request", fmt.Sprintf("%s needs %s", r.URL.Path, method))
			return
		}
		out, err := fn(r)
		if err != nil {
			switch {
			case errors.Is(err, ErrBadRequest):
				writeError(w, http.StatusBadRequest, "bad_request", err.Error())
			case errors.Is(err, ErrUnavailable):
				writeError(w, http.StatusConflict, "unavailable", err.Error())
			default:
				cs.log.Warn("control request failed", "path", r.URL.Path, "err", err)
				writeError(w, http.StatusInternalServerError, "internal", err.Error())
			}
			return
		}
		w.Header().Set("Content-Type", "application/json")
		json.NewEncoder(w).Encode(out)
	}
}

func writeError(w http.ResponseWriter, status int, code, msg string) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	json.NewEncoder(w).Encode(api.Error{Error: msg, Code: code})
}
