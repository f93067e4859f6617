package appliance

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"
)

// metricsServer serves /metrics on metrics.listen; a task of Daemon.Run,
// which opens its listener before any engine starts (a taken port fails
// the start) and closes it after the engines have stopped.
type metricsServer struct {
	ln  net.Listener
	srv *http.Server
	log *slog.Logger
}

func newMetricsServer(addr string, g prometheus.Gatherer, log *slog.Logger) (*metricsServer, error) {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("metrics listener: %w", err)
	}
	mux := http.NewServeMux()
	opts := promhttp.HandlerOpts{}
	if r, ok := g.(prometheus.Registerer); ok {
		opts.Registry = r // the handler's own error counter
	}
	mux.Handle("/metrics", promhttp.HandlerFor(g, opts))
	log.Info("metrics listening", "addr", ln.Addr().String())
	return &metricsServer{ln: ln, srv: &http.Server{Handler: mux, ReadHeaderTimeout: 5 * time.Second}, log: log}, nil
}

// Run serves until ctx ends.
func (m *metricsServer) Run(ctx context.Context) error {
	errc := make(chan error, 1)
	go func() { errc <- m.srv.Serve(m.ln) }()
	select {
	case <-ctx.Done():
		sctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		defer cancel()
		m.srv.Shutdown(sctx)
		<-errc
		return nil
	case err := <-errc:
		if errors.Is(err, http.ErrServerClosed) {
			return nil
		}
		return fmt.Errorf("metrics server: %w", err)
	}
}
