// Package metrics exports a process's counters and gauges to Prometheus:
// each Metric is read from the component's own statistics at every scrape,
// so nothing is double-counted and nothing is kept here.
package metrics

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
)

// Metric is one exported value.
type Metric struct {
	Name    string // e.g. kura_ft_mount_records_total
	Help    string
	Counter bool // a counter (only goes up); otherwise a gauge
	Value   func() float64
}

// validName tells whether name is a classic Prometheus metric name (the
// library accepts any UTF-8 since 1.20; scrapers of older formats do not).
func validName(name string) bool {
	if name == "" {
		return false
	}
	for i, r := range name {
		ok := r == '_' || r == ':' || (r >= 'a' && r <= 'z') || (r >= 'A' && r <= 'Z') || (i > 0 && r >= '0' && r <= '9')
		if !ok {
			return false
		}
	}
	return true
}

// Serve listens on addr and serves /metrics (Prometheus text format) for
// ms until ctx ends. It returns the address it listens on.
func Serve(ctx context.Context, addr string, log *slog.Logger, ms []Metric) (net.Addr, error) {
	reg := prometheus.NewRegistry()
	for _, m := range ms {
		if !validName(m.Name) {
			return nil, fmt.Errorf("metric %q: not a valid Prometheus metric name ([a-zA-Z_:][a-zA-Z0-9_:]*)", m.Name)
		}
		opts := prometheus.GaugeOpts{Name: m.Name, Help: m.Help}
		var c prometheus.Collector
		if m.Counter {
			c = prometheus.NewCounterFunc(prometheus.CounterOpts(opts), m.Value)
		} else {
			c = prometheus.NewGaugeFunc(opts, m.Value)
		}
		if err := reg.Register(c); err != nil {
			return nil, fmt.Errorf("metric %s: %w", m.Name, err)
		}
	}
	reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("metrics: %w", err)
	}
	mux := http.NewServeMux()
	mux.Handle("/metrics", promhttp.HandlerFor(reg, promhttp.HandlerOpts{}))
	srv := &http.Server{Handler: mux, ReadHeaderTimeout: 10 * time.Second}
	go func() {
		<-ctx.Done()
		sctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		defer cancel()
		srv.Shutdown(sctx)
	}()
	go func() {
		if err := srv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
			log.Error("metrics server stopped", "addr", ln.Addr().String(), "err", err)
		}
	}()
	return ln.Addr(), nil
}
