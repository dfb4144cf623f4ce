// go-hello is the sandbox's demo service: a tiny HTTP server with a health probe and Prometheus metrics.
package main

import (
	"fmt"
	"log"
	"net/http"
	"os"
	"sync/atomic"
	"time"
)

var (
	requests atomic.Int64
	started  = time.Now()
)

func version() string {
	if v := os.Getenv("APP_VERSION"); v != "" {
		return v
	}
	return "dev"
}

func main() {
	port := os.Getenv("PORT")
	if port == "" {
		port = "8080"
	}
	mux := http.NewServeMux()
	mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		requests.Add(1)
		fmt.Fprintf(w, "hello from go-hello %s\n", version())
	})
	mux.HandleFunc("/healthz", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		fmt.Fprint(w, `{"status":"UP"}`)
	})
	// Served under both paths so Spring-style scrape configs (/actuator/prometheus) work unchanged.
	metrics := func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/plain; version=0.0.4")
		fmt.Fprintf(w, "# HELP http_requests_total Requests served by /.\n# TYPE http_requests_total counter\n")
		fmt.Fprintf(w, "http_requests_total %d\n", requests.Load())
		fmt.Fprintf(w, "# HELP process_uptime_seconds Seconds since start.\n# TYPE process_uptime_seconds gauge\n")
		fmt.Fprintf(w, "process_uptime_seconds %.3f\n", time.Since(started).Seconds())
		fmt.Fprintf(w, "# HELP app_info Build information.\n# TYPE app_info gauge\n")
		fmt.Fprintf(w, "app_info{version=%q} 1\n", version())
	}
	mux.HandleFunc("/metrics", metrics)
	mux.HandleFunc("/actuator/prometheus", metrics)
	addr := ":" + port
	log.Printf("go-hello %s listening on %s", version(), addr)
	log.Fatal(http.ListenAndServe(addr, mux))
}
