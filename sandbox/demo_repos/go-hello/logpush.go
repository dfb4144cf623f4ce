// logpush.go: with LOG_REDIS_URL set, every JSON line go-hello writes to stdout is also pushed with
// `RPUSH <LOG_REDIS_KEY> <line>` to a Redis-protocol server: the company's log proxy in front of Kafka, or a
// plain redis-server. Logging must never slow or break a request, so the stdout writer only appends to a
// bounded in-memory queue (the oldest line is dropped when it is full) and one background goroutine sends
// pipelined batches over one connection, reconnecting with backoff.
//
// Delivery is at-least-once while the connection holds: lines whose replies were lost with a broken
// connection are sent again after reconnecting. A line answered `-ERR` is given up, not retried: the proxy's
// `-ERR` means "unknown" (its producer may still deliver the line), so a retry could duplicate it.
package main

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"net"
	"net/url"
	"os"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

const (
	logPushTimeout    = 2 * time.Second // connect, and each write or reply; below common client timeouts
	logPushBatchLines = 256
	logPushBackoffMin = 100 * time.Millisecond
	logPushBackoffMax = 5 * time.Second
	logFlushTimeout   = 2 * time.Second // what SIGTERM waits for the queue to drain
)

// lineQueue is a ring of lines with a fixed capacity.
type lineQueue struct {
	buf  []string
	head int
	n    int
}

// push appends a line; when the ring is full it drops the oldest first and says so.
func (q *lineQueue) push(line string) (dropped bool) {
	if q.n == len(q.buf) {
		q.head = (q.head + 1) % len(q.buf)
		q.n--
		dropped = true
	}
	q.buf[(q.head+q.n)%len(q.buf)] = line
	q.n++
	return dropped
}

func (q *lineQueue) take(max int) []string {
	count := min(max, q.n)
	out := make([]string, count)
	for i := range out {
		out[i] = q.buf[q.head]
		q.buf[q.head] = ""
		q.head = (q.head + 1) % len(q.buf)
	}
	q.n -= count
	return out
}

// unshift puts unsent lines back in front of the queue. Newer lines may have filled it meanwhile: the
// oldest of the unsent ones are then the ones dropped, as they would have been had they never left it.
func (q *lineQueue) unshift(lines []string) (dropped int) {
	room := len(q.buf) - q.n
	if len(lines) > room {
		dropped = len(lines) - room
		lines = lines[dropped:]
	}
	for i := len(lines) - 1; i >= 0; i-- {
		q.head = (q.head - 1 + len(q.buf)) % len(q.buf)
		q.buf[q.head] = lines[i]
		q.n++
	}
	return dropped
}

type logPusher struct {
	addr, username, password string
	db                       int
	key                      string

	mu       sync.Mutex
	queue    lineQueue
	wake     chan struct{}
	closing  chan struct{}
	deadline atomic.Int64 // unix nanoseconds by which a flush gives up; 0 while running
	done     chan struct{}
	closed   sync.Once

	pushed, dropped, failures atomic.Int64

	conn    net.Conn
	reader  *bufio.Reader
	failing bool // the last attempt failed: say so on stderr once, not for every retry
}

// parseRedisURL reads redis://[[user]:password@]host:port[/db].
func parseRedisURL(raw string) (addr, username, password string, db int, err error) {
	u, err := url.Parse(raw)
	if err != nil {
		return "", "", "", 0, err
	}
	if u.Scheme != "redis" || u.Hostname() == "" {
		return "", "", "", 0, fmt.Errorf("want redis://[:password@]host:port[/db], got scheme %q host %q", u.Scheme, u.Host)
	}
	port := u.Port()
	if port == "" {
		port = "6379"
	}
	if u.User != nil {
		username = u.User.Username()
		password, _ = u.User.Password()
	}
	if path := strings.Trim(u.Path, "/"); path != "" {
		if db, err = strconv.Atoi(path); err != nil || db < 0 {
			return "", "", "", 0, fmt.Errorf("the database in %q is not a number", u.Path)
		}
	}
	return net.JoinHostPort(u.Hostname(), port), username, password, db, nil
}

// newLogPusherFromEnv returns nil (no pushing) when LOG_REDIS_URL is unset, and an error for a bad URL.
func newLogPusherFromEnv(service string) (*logPusher, error) {
	raw := os.Getenv("LOG_REDIS_URL")
	if raw == "" {
		return nil, nil
	}
	addr, username, password, db, err := parseRedisURL(raw)
	if err != nil {
		return nil, fmt.Errorf("LOG_REDIS_URL: %w", err)
	}
	capacity, err := strconv.Atoi(envOr("LOG_QUEUE_LINES", "10000"))
	if err != nil || capacity < 1 {
		return nil, fmt.Errorf("LOG_QUEUE_LINES must be a positive number")
	}
	p := &logPusher{
		addr: addr, username: username, password: password, db: db,
		key:     envOr("LOG_REDIS_KEY", "logs:"+service),
		queue:   lineQueue{buf: make([]string, capacity)},
		wake:    make(chan struct{}, 1),
		closing: make(chan struct{}),
		done:    make(chan struct{}),
	}
	go p.run()
	return p, nil
}

// offer queues one line without ever blocking on the network.
func (p *logPusher) offer(line string) {
	p.mu.Lock()
	if p.queue.push(line) {
		p.dropped.Add(1)
	}
	p.mu.Unlock()
	select {
	case p.wake <- struct{}{}:
	default:
	}
}

// counts is nil-safe, so /metrics shows zeros when pushing is off.
func (p *logPusher) counts() (pushed, dropped, failures int64, queued int) {
	if p == nil {
		return 0, 0, 0, 0
	}
	p.mu.Lock()
	queued = p.queue.n
	p.mu.Unlock()
	return p.pushed.Load(), p.dropped.Load(), p.failures.Load(), queued
}

// Close sends what is queued for up to timeout and returns how many lines were left unsent (now dropped).
func (p *logPusher) Close(timeout time.Duration) int {
	if p == nil {
		return 0
	}
	p.closed.Do(func() {
		p.deadline.Store(time.Now().Add(timeout).UnixNano())
		close(p.closing)
	})
	select {
	case <-p.done:
	case <-time.After(timeout + 100*time.Millisecond): // a send stuck in its own I/O timeout
	}
	p.mu.Lock()
	left := p.queue.n
	p.queue.take(left)
	p.mu.Unlock()
	p.dropped.Add(int64(left))
	return left
}

func (p *logPusher) pastDeadline() bool {
	d := p.deadline.Load()
	return d != 0 && time.Now().UnixNano() >= d
}

// next waits for queued lines; nil once closing with nothing left, or once the flush deadline passed.
func (p *logPusher) next() []string {
	for {
		if p.pastDeadline() {
			return nil
		}
		p.mu.Lock()
		if p.queue.n > 0 {
			batch := p.queue.take(logPushBatchLines)
			p.mu.Unlock()
			return batch
		}
		p.mu.Unlock()
		select {
		case <-p.wake:
		case <-p.closing:
			p.mu.Lock()
			empty := p.queue.n == 0
			p.mu.Unlock()
			if empty {
				return nil
			}
		}
	}
}

func (p *logPusher) run() {
	defer close(p.done)
	defer p.disconnect()
	backoff := logPushBackoffMin
	for {
		batch := p.next()
		if batch == nil {
			return
		}
		sent, err := p.send(batch)
		if err == nil {
			backoff = logPushBackoffMin
			if p.failing {
				p.failing = false
				fmt.Fprintf(os.Stderr, "go-hello: log push to %s works again\n", p.addr)
			}
			continue
		}
		p.failures.Add(1)
		p.disconnect()
		p.mu.Lock()
		p.dropped.Add(int64(p.queue.unshift(batch[sent:])))
		p.mu.Unlock()
		if !p.failing {
			p.failing = true
			fmt.Fprintf(os.Stderr, "go-hello: log push to %s failed, retrying with backoff: %v\n", p.addr, err)
		}
		select {
		case <-time.After(backoff):
		case <-p.closing:
			// Flushing: retry at once while the deadline allows, but not in a tight loop.
			time.Sleep(min(backoff, logPushBackoffMin))
		}
		backoff = min(backoff*2, logPushBackoffMax)
	}
}

func (p *logPusher) disconnect() {
	if p.conn != nil {
		p.conn.Close()
		p.conn, p.reader = nil, nil
	}
}

func bulk(w *bufio.Writer, parts ...string) {
	fmt.Fprintf(w, "*%d\r\n", len(parts))
	for _, part := range parts {
		fmt.Fprintf(w, "$%d\r\n%s\r\n", len(part), part)
	}
}

// reply reads one reply line: nil for `+…` and `:N`, a *serverError for `-…`, another error otherwise.
func (p *logPusher) reply() error {
	p.conn.SetReadDeadline(time.Now().Add(logPushTimeout))
	line, err := p.reader.ReadString('\n')
	if err != nil {
		return err
	}
	line = strings.TrimRight(line, "\r\n")
	switch {
	case strings.HasPrefix(line, ":"), strings.HasPrefix(line, "+"):
		return nil
	case strings.HasPrefix(line, "-"):
		return &serverError{line[1:]}
	default:
		return fmt.Errorf("unexpected reply %q", line)
	}
}

type serverError struct{ msg string }

func (e *serverError) Error() string { return e.msg }

func (p *logPusher) connect() error {
	conn, err := net.DialTimeout("tcp", p.addr, logPushTimeout)
	if err != nil {
		return err
	}
	p.conn, p.reader = conn, bufio.NewReader(conn)
	w := bufio.NewWriter(conn)
	expected := 0
	if p.password != "" {
		if p.username != "" {
			bulk(w, "AUTH", p.username, p.password)
		} else {
			bulk(w, "AUTH", p.password)
		}
		expected++
	}
	if p.db != 0 {
		bulk(w, "SELECT", strconv.Itoa(p.db))
		expected++
	}
	if expected == 0 {
		return nil
	}
	conn.SetWriteDeadline(time.Now().Add(logPushTimeout))
	if err := w.Flush(); err != nil {
		return err
	}
	for range expected {
		if err := p.reply(); err != nil {
			return fmt.Errorf("AUTH/SELECT: %w", err)
		}
	}
	return nil
}

// send pipelines one RPUSH per line and reads the replies in order. It returns how many lines got a reply
// (pushed, or given up after `-ERR`) and an error when the connection failed before the rest did.
func (p *logPusher) send(batch []string) (int, error) {
	if p.conn == nil {
		if err := p.connect(); err != nil {
			return 0, err
		}
	}
	w := bufio.NewWriterSize(p.conn, 64*1024)
	for _, line := range batch {
		bulk(w, "RPUSH", p.key, line)
	}
	p.conn.SetWriteDeadline(time.Now().Add(logPushTimeout))
	if err := w.Flush(); err != nil {
		return 0, err
	}
	for i := range batch {
		err := p.reply()
		var refused *serverError
		switch {
		case err == nil:
			p.pushed.Add(1)
		case errors.As(err, &refused):
			p.failures.Add(1)
			p.dropped.Add(1)
		default:
			return i, err
		}
	}
	return len(batch), nil
}

// teeWriter is the loggers' stdout: every line goes to stdout as before, and also to the pusher.
type teeWriter struct {
	out    io.Writer
	pusher *logPusher
}

func (t teeWriter) Write(b []byte) (int, error) {
	n, err := t.out.Write(b)
	// slog's handlers write one whole record per call; split anyway, so a line is never half-pushed.
	for _, line := range bytes.Split(bytes.TrimRight(b, "\n"), []byte("\n")) {
		if len(line) > 0 {
			t.pusher.offer(string(line))
		}
	}
	return n, err
}
