// go-hello is the sandbox's Go demo service: /healthz, Prometheus metrics (requests by code, a latency
// histogram), one JSON log line per request, and a graceful stop on SIGTERM. Standard library only, so a
// cold build needs nothing from the module proxy. With LOG_REDIS_URL set its JSON lines also go to the log
// proxy (logpush.go).
//
// Fault injection, for releasing a "bad" version: ERROR_RATIO (0..1) of the requests to / answer 500 and
// EXTRA_LATENCY_MS delays each of them. A release swaps the image, not the environment, so when the
// variables are unset the defaults below apply: a commit that changes them makes a bad release.
package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/signal"
	"sort"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"
)

// The defaults of ERROR_RATIO and EXTRA_LATENCY_MS (see above).
const (
	defaultErrorRatio     = "0"
	defaultExtraLatencyMs = "0"
)

var buckets = []float64{0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10}

type metrics struct {
	mu       sync.Mutex
	started  time.Time
	requests map[string]int64 // `method="GET",code="200"` -> count
	counts   []int64          // per bucket, cumulative
	total    int64
	sum      float64
}

func newMetrics() *metrics {
	return &metrics{started: time.Now(), requests: map[string]int64{}, counts: make([]int64, len(buckets))}
}

func (m *metrics) observe(method string, code int, seconds float64) {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.requests[fmt.Sprintf("method=%q,code=\"%d\"", method, code)]++
	for i, le := range buckets {
		if seconds <= le {
			m.counts[i]++
		}
	}
	m.total++
	m.sum += seconds
}

func (m *metrics) render(version string, pusher *logPusher) string {
	m.mu.Lock()
	defer m.mu.Unlock()
	var b strings.Builder
	b.WriteString("# HELP http_requests_total HTTP requests served, by method and status code.\n")
	b.WriteString("# TYPE http_requests_total counter\n")
	labels := make([]string, 0, len(m.requests))
	for l := range m.requests {
		labels = append(labels, l)
	}
	sort.Strings(labels)
	for _, l := range labels {
		fmt.Fprintf(&b, "http_requests_total{%s} %d\n", l, m.requests[l])
	}
	b.WriteString("# HELP http_request_duration_seconds Time to serve a request.\n")
	b.WriteString("# TYPE http_request_duration_seconds histogram\n")
	for i, le := range buckets {
		fmt.Fprintf(&b, "http_request_duration_seconds_bucket{le=\"%g\"} %d\n", le, m.counts[i])
	}
	fmt.Fprintf(&b, "http_request_duration_seconds_bucket{le=\"+Inf\"} %d\n", m.total)
	fmt.Fprintf(&b, "http_request_duration_seconds_sum %.6f\n", m.sum)
	fmt.Fprintf(&b, "http_request_duration_seconds_count %d\n", m.total)
	b.WriteString("# HELP process_uptime_seconds Seconds since start.\n# TYPE process_uptime_seconds gauge\n")
	fmt.Fprintf(&b, "process_uptime_seconds %.3f\n", time.Since(m.started).Seconds())
	b.WriteString("# HELP app_info Build information.\n# TYPE app_info gauge\n")
	fmt.Fprintf(&b, "app_info{version=%q} 1\n", version)
	pushed, dropped, failures, queued := pusher.counts()
	b.WriteString("# HELP log_lines_pushed_total Log lines the log server acknowledged.\n")
	fmt.Fprintf(&b, "# TYPE log_lines_pushed_total counter\nlog_lines_pushed_total %d\n", pushed)
	b.WriteString("# HELP log_lines_dropped_total Log lines given up: queue full, answered -ERR, or unsent at exit.\n")
	fmt.Fprintf(&b, "# TYPE log_lines_dropped_total counter\nlog_lines_dropped_total %d\n", dropped)
	b.WriteString("# HELP log_push_errors_total Failed pushes: -ERR replies and connection errors.\n")
	fmt.Fprintf(&b, "# TYPE log_push_errors_total counter\nlog_push_errors_total %d\n", failures)
	b.WriteString("# HELP log_queue_lines Log lines waiting to be pushed.\n")
	fmt.Fprintf(&b, "# TYPE log_queue_lines gauge\nlog_queue_lines %d\n", queued)
	return b.String()
}

// statusRecorder keeps the status code a handler wrote, for the log line and the counter.
type statusRecorder struct {
	http.ResponseWriter
	code int
}

func (r *statusRecorder) WriteHeader(code int) {
	r.code = code
	r.ResponseWriter.WriteHeader(code)
}

func envOr(name, fallback string) string {
	if v := os.Getenv(name); v != "" {
		return v
	}
	return fallback
}

// faults makes a fixed share of requests fail: request n fails when floor(n*ratio) grows, so 0.3 is exactly
// 3 in every 10 requests, not 30% on average.
type faults struct {
	ratio   float64
	latency time.Duration
	served  atomic.Int64
}

func newFaults() *faults {
	ratio, err := strconv.ParseFloat(envOr("ERROR_RATIO", defaultErrorRatio), 64)
	if err != nil || ratio < 0 {
		ratio = 0
	}
	ms, err := strconv.Atoi(envOr("EXTRA_LATENCY_MS", defaultExtraLatencyMs))
	if err != nil || ms < 0 {
		ms = 0
	}
	return &faults{ratio: min(ratio, 1), latency: time.Duration(ms) * time.Millisecond}
}

func (f *faults) fail() bool {
	n := f.served.Add(1)
	return int64(float64(n)*f.ratio) > int64(float64(n-1)*f.ratio)
}

func newHandler(m *metrics, logger *slog.Logger, version string, f *faults, pusher *logPusher) http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("/{$}", func(w http.ResponseWriter, r *http.Request) {
		if f.latency > 0 {
			time.Sleep(f.latency)
		}
		if f.fail() {
			http.Error(w, "injected error", http.StatusInternalServerError)
			return
		}
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		fmt.Fprintf(w, "hello from go-hello %s\n", version)
	})
	mux.HandleFunc("/healthz", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		fmt.Fprint(w, `{"status":"UP"}`)
	})
	// Also under /actuator/prometheus, so Spring-style scrape configs work unchanged.
	serveMetrics := func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/plain; version=0.0.4; charset=utf-8")
		fmt.Fprint(w, m.render(version, pusher))
	}
	mux.HandleFunc("/metrics", serveMetrics)
	mux.HandleFunc("/actuator/prometheus", serveMetrics)
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		start := time.Now()
		rec := &statusRecorder{ResponseWriter: w, code: http.StatusOK}
		mux.ServeHTTP(rec, r)
		elapsed := time.Since(start)
		m.observe(r.Method, rec.code, elapsed.Seconds())
		remote, _, _ := net.SplitHostPort(r.RemoteAddr)
		logger.Info("request", "method", r.Method, "path", r.URL.Path, "status", rec.code,
			"duration_ms", float64(elapsed.Microseconds())/1000, "remote", remote)
	})
}

func main() {
	pusher, pushErr := newLogPusherFromEnv("go-hello")
	var out io.Writer = os.Stdout
	if pusher != nil {
		out = teeWriter{out: os.Stdout, pusher: pusher}
	}
	logger := slog.New(slog.NewJSONHandler(out, nil)).With("logger", "go-hello")
	if pushErr != nil {
		// A bad setting must not take the service down: it runs, logging to stdout only.
		logger.Error("log push disabled", "error", pushErr.Error())
	}
	version := envOr("APP_VERSION", "dev")
	addr := net.JoinHostPort("0.0.0.0", envOr("PORT", "8080"))
	handler := newHandler(newMetrics(), logger, version, newFaults(), pusher)
	server := &http.Server{Addr: addr, Handler: handler, ReadHeaderTimeout: 10 * time.Second}

	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, os.Interrupt)
	defer stop()
	listener, err := net.Listen("tcp", addr)
	if err != nil {
		logger.Error("listen failed", "addr", addr, "error", err.Error())
		pusher.Close(logFlushTimeout)
		os.Exit(1)
	}
	logger.Info("listening", "addr", addr, "version", version)
	served := make(chan error, 1)
	go func() { served <- server.Serve(listener) }()
	select {
	case err := <-served:
		logger.Error("server failed", "error", err.Error())
		pusher.Close(logFlushTimeout)
		os.Exit(1)
	case <-ctx.Done():
	}
	// Requests in flight get up to 10 s; new connections are refused from now on.
	logger.Info("shutting down", "signal", "TERM")
	shutdownCtx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := server.Shutdown(shutdownCtx); err != nil && !errors.Is(err, http.ErrServerClosed) {
		logger.Error("shutdown incomplete", "error", err.Error())
		flushLogs(pusher)
		os.Exit(1)
	}
	logger.Info("stopped")
	flushLogs(pusher)
}

// flushLogs pushes what is still queued, "stopped" included, for up to logFlushTimeout.
func flushLogs(pusher *logPusher) {
	if left := pusher.Close(logFlushTimeout); left > 0 {
		fmt.Fprintf(os.Stderr, "go-hello: %d log lines not pushed at exit\n", left)
	}
}
