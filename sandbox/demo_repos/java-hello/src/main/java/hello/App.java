package hello;

import com.sun.net.httpserver.HttpExchange;
import com.sun.net.httpserver.HttpServer;
import java.io.IOException;
import java.io.InputStream;
import java.io.OutputStream;
import java.net.InetSocketAddress;
import java.nio.charset.StandardCharsets;
import java.time.Instant;
import java.util.Locale;
import java.util.Map;
import java.util.TreeMap;
import java.util.concurrent.ExecutorService;
import java.util.concurrent.Executors;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.atomic.AtomicBoolean;
import java.util.concurrent.atomic.AtomicInteger;
import java.util.concurrent.atomic.AtomicLong;
import java.util.regex.Matcher;
import java.util.regex.Pattern;

/**
 * java-hello: the sandbox's Java demo service, shaped like the company's Spring Boot services without Spring.
 *
 * <p>It does not listen until STARTUP_DELAY_SECONDS (default 40) have passed, as a Spring Boot service took that
 * long to start; that is what makes a startupProbe necessary. SLOW_HEALTH=true (or POST
 * /admin/slow-health?enabled=true) makes the health endpoints answer after 1.5 s, which a 1 s probe timeout
 * fails. It prints its maximum heap and CPU count at start, so a test can see whether the JVM sized them from
 * the container's limits.
 *
 * <p>Fault injection, for releasing a "bad" version: ERROR_RATIO (0..1) of the requests to / answer 500 and
 * EXTRA_LATENCY_MS delays each of them. A release swaps the image, not the environment, so when the variables
 * are unset the defaults below apply: a commit that changes them makes a bad release.
 *
 * <p>Eureka (see Eureka.java): with EUREKA_URL set it registers once it listens and renews its lease. Like
 * Spring Cloud's actuator, GET /actuator/serviceregistry answers {"status":…,"overriddenStatus":…} as the
 * server has it, and POST /actuator/serviceregistry {"status":"OUT_OF_SERVICE"|"UP"} sets or removes the
 * status override on the server; without EUREKA_URL both work on a local status only. On SIGTERM it logs
 * the moment, marks itself DOWN and de-registers, stops accepting connections, lets requests in flight finish
 * (up to 5 s), pushes the log lines still queued for LOG_REDIS_URL (up to 2 s) and exits.
 *
 * <p>With LOG_REDIS_URL set, every JSON line it writes to stdout also goes to the log proxy (LogPush.java).
 */
public final class App {
    static final double[] BUCKETS = {0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10};
    static final long SLOW_HEALTH_MILLIS = 1500;
    static final String DEFAULT_ERROR_RATIO = "0";
    static final String DEFAULT_EXTRA_LATENCY_MS = "0";
    static final int SHUTDOWN_GRACE_SECONDS = 5;
    static final String SERVICE_REGISTRY = "/actuator/serviceregistry";
    // Null unless LOG_REDIS_URL is set; set before the first line is logged.
    private static volatile LogPush logPush;
    private static final Pattern WANTED_STATUS = Pattern.compile("\"status\"\\s*:\\s*\"([A-Za-z_]+)\"");

    private final double errorRatio = Math.min(Math.max(Double.parseDouble(
            System.getenv().getOrDefault("ERROR_RATIO", DEFAULT_ERROR_RATIO).trim()), 0), 1);
    private final long extraLatencyMillis = Math.max(intEnv("EXTRA_LATENCY_MS",
            Integer.parseInt(DEFAULT_EXTRA_LATENCY_MS)), 0);
    private final AtomicLong rootServed = new AtomicLong();

    private final AtomicBoolean slowHealth;
    // Set once the server listens (with EUREKA_URL); null without Eureka.
    private volatile Eureka eureka;
    // Without Eureka the registry endpoint keeps the status here.
    private volatile String localStatus = "UP";
    private volatile String localOverride = "UNKNOWN";
    private final AtomicInteger inFlight = new AtomicInteger();
    private final long startedNanos = System.nanoTime();
    // Keyed by method and code; one lock guards all of it (a demo's request rate needs nothing finer).
    private final Map<String, Long> requests = new TreeMap<>();
    private final long[] bucketCounts = new long[BUCKETS.length];
    private long durationCount;
    private double durationSum;

    App(boolean slowHealth) {
        this.slowHealth = new AtomicBoolean(slowHealth);
    }

    public static void main(String[] args) throws Exception {
        String logPushError = null;
        try {
            logPush = LogPush.fromEnv("java-hello");
        } catch (IllegalArgumentException e) {
            logPushError = e.getMessage();
        }
        if (logPushError != null) {
            // A bad setting must not take the service down: it runs, logging to stdout only.
            log("log push disabled", "\"error\":" + json(logPushError));
        }
        int port = intEnv("PORT", 8080);
        int delay = intEnv("STARTUP_DELAY_SECONDS", 40);
        boolean slow = Boolean.parseBoolean(System.getenv().getOrDefault("SLOW_HEALTH", "false"));
        Runtime runtime = Runtime.getRuntime();
        log(
                "starting",
                "\"max_heap_bytes\":" + runtime.maxMemory()
                        + ",\"max_heap_mib\":" + runtime.maxMemory() / (1024 * 1024)
                        + ",\"available_processors\":" + runtime.availableProcessors()
                        + ",\"startup_delay_seconds\":" + delay
                        + ",\"slow_health\":" + slow
                        + ",\"java_version\":" + json(System.getProperty("java.version")));
        // A plain line too, for people reading `kubectl logs`.
        System.out.printf(
                "java-hello: max heap %d MiB, %d processors%n",
                runtime.maxMemory() / (1024 * 1024),
                runtime.availableProcessors());
        System.out.flush();
        Thread.sleep(delay * 1000L);

        App app = new App(slow);
        HttpServer server = HttpServer.create(new InetSocketAddress("0.0.0.0", port), 64);
        ExecutorService pool = Executors.newFixedThreadPool(8);
        server.setExecutor(pool);
        server.createContext("/", app::handle);
        server.start();
        log("listening", "\"port\":" + port);
        Eureka eureka = Eureka.fromEnv(port);
        if (eureka != null) {
            app.eureka = eureka;
            eureka.start();
        }

        Runtime.getRuntime().addShutdownHook(new Thread(() -> app.shutDown(server, pool), "shutdown"));
    }

    /**
     * On SIGTERM: log it (its time is what a test compares with the registry's), leave Eureka, stop accepting,
     * let requests in flight finish, stop. Spring Boot with server.shutdown=graceful does the same, in this order.
     */
    void shutDown(HttpServer server, ExecutorService pool) {
        log("shutting down", "\"signal\":\"SIGTERM\",\"in_flight\":" + inFlight.get());
        Eureka registered = eureka;
        if (registered != null) {
            registered.shutdown();
        }
        // HttpServer.stop closes the listening socket at once, then waits its whole delay even when idle (JDK 17):
        // on a thread of its own, so the exit only waits for the requests in flight.
        Thread stopper = new Thread(() -> server.stop(SHUTDOWN_GRACE_SECONDS), "http-stop");
        stopper.setDaemon(true);
        stopper.start();
        long deadline = System.nanoTime() + TimeUnit.SECONDS.toNanos(SHUTDOWN_GRACE_SECONDS);
        while (inFlight.get() > 0 && System.nanoTime() < deadline) {
            sleep(20);
        }
        pool.shutdown();
        try {
            pool.awaitTermination(SHUTDOWN_GRACE_SECONDS, TimeUnit.SECONDS);
        } catch (InterruptedException e) {
            Thread.currentThread().interrupt();
        }
        log("stopped", null);
        LogPush push = logPush;
        if (push != null) {
            int left = push.close(LogPush.FLUSH_MILLIS);
            if (left > 0) {
                System.err.println("java-hello: " + left + " log lines not pushed at exit");
            }
        }
    }

    void handle(HttpExchange exchange) throws IOException {
        inFlight.incrementAndGet();
        try {
            serve(exchange);
        } finally {
            inFlight.decrementAndGet();
        }
    }

    private void serve(HttpExchange exchange) throws IOException {
        long start = System.nanoTime();
        String path = exchange.getRequestURI().getPath();
        String method = exchange.getRequestMethod();
        int status = 200;
        String type = "application/json";
        String body;
        String requestBody;
        try (InputStream in = exchange.getRequestBody()) {
            requestBody = new String(in.readAllBytes(), StandardCharsets.UTF_8);
        }
        switch (path) {
            case "/actuator/health", "/healthz" -> {
                if (slowHealth.get()) {
                    sleep(SLOW_HEALTH_MILLIS);
                }
                body = "{\"status\":\"UP\"}";
            }
            case "/actuator/prometheus", "/metrics" -> {
                type = "text/plain; version=0.0.4; charset=utf-8";
                body = metrics();
            }
            case "/admin/slow-health" -> {
                String query = exchange.getRequestURI().getQuery();
                if ("POST".equals(method) && query != null && query.matches("enabled=(true|false)")) {
                    slowHealth.set(query.endsWith("true"));
                } else if (!"GET".equals(method)) {
                    status = 400;
                }
                body = status == 400
                        ? "{\"error\":\"POST ?enabled=true|false, or GET\"}"
                        : "{\"slow_health\":" + slowHealth.get() + "}";
            }
            case SERVICE_REGISTRY -> {
                String[] answer = serviceRegistry(method, requestBody);
                status = Integer.parseInt(answer[0]);
                body = answer[1];
            }
            case "/" -> {
                type = "text/plain; charset=utf-8";
                if (extraLatencyMillis > 0) {
                    sleep(extraLatencyMillis);
                }
                // Request n fails when floor(n * ratio) grows, so 0.3 is exactly 3 in every 10 requests.
                long n = rootServed.incrementAndGet();
                if ((long) Math.floor(n * errorRatio) > (long) Math.floor((n - 1) * errorRatio)) {
                    status = 500;
                    body = "injected error\n";
                } else {
                    body = "hello from java-hello " + System.getenv().getOrDefault("APP_VERSION", "dev") + "\n";
                }
            }
            default -> {
                status = 404;
                body = "{\"error\":\"not found\"}";
            }
        }
        byte[] bytes = body.getBytes(StandardCharsets.UTF_8);
        double seconds = (System.nanoTime() - start) / 1e9;
        // Counted before the client has the answer, so a scrape right after a request always includes it.
        record(method, status, seconds);
        exchange.getResponseHeaders().set("Content-Type", type);
        exchange.sendResponseHeaders(status, bytes.length);
        try (OutputStream out = exchange.getResponseBody()) {
            out.write(bytes);
        }
        log(
                "request",
                "\"method\":" + json(method)
                        + ",\"path\":" + json(path)
                        + ",\"status\":" + status
                        + ",\"duration_ms\":" + String.format(Locale.ROOT, "%.3f", seconds * 1000)
                        + ",\"remote\":" + json(exchange.getRemoteAddress().getAddress().getHostAddress()));
    }

    /** {status code, JSON body} of GET or POST /actuator/serviceregistry. */
    String[] serviceRegistry(String method, String requestBody) {
        Eureka registered = eureka;
        if ("GET".equals(method)) {
            if (registered == null) {
                return new String[] {"200", Eureka.statusJson(localStatus, localOverride)};
            }
            try {
                return new String[] {"200", registered.statusJson()};
            } catch (IOException e) {
                return new String[] {"503", "{\"error\":" + json(String.valueOf(e)) + "}"};
            }
        }
        if (!"POST".equals(method)) {
            return new String[] {"405", "{\"error\":\"GET, or POST a status\"}"};
        }
        Matcher wanted = WANTED_STATUS.matcher(requestBody);
        String value = wanted.find() ? wanted.group(1) : "";
        if (!"OUT_OF_SERVICE".equals(value) && !"UP".equals(value)) {
            return new String[] {"400", "{\"error\":\"status must be OUT_OF_SERVICE or UP\"}"};
        }
        if (registered == null) {
            localStatus = value;
            localOverride = "UP".equals(value) ? "UNKNOWN" : value;
            log("status override", "\"status\":" + json(value) + ",\"eureka\":false");
            return new String[] {"200", Eureka.statusJson(localStatus, localOverride)};
        }
        try {
            int code = registered.override(value);
            log("eureka status override", "\"status\":" + json(value) + ",\"http_status\":" + code);
            if (code != 200) {
                // The preStop hook must see that the override did not land.
                return new String[] {"503", "{\"error\":\"Eureka answered " + code + "\"}"};
            }
            return new String[] {"200", Eureka.statusJson(value, "UP".equals(value) ? "UNKNOWN" : value)};
        } catch (IOException e) {
            log("eureka status override failed",
                    "\"status\":" + json(value) + ",\"error\":" + json(String.valueOf(e)));
            return new String[] {"503", "{\"error\":" + json(String.valueOf(e)) + "}"};
        }
    }

    synchronized void record(String method, int status, double seconds) {
        requests.merge("method=\"" + method + "\",code=\"" + status + "\"", 1L, Long::sum);
        for (int i = 0; i < BUCKETS.length; i++) {
            if (seconds <= BUCKETS[i]) {
                bucketCounts[i]++;
            }
        }
        durationCount++;
        durationSum += seconds;
    }

    synchronized String metrics() {
        StringBuilder out = new StringBuilder();
        out.append("# HELP http_requests_total HTTP requests served, by method and status code.\n");
        out.append("# TYPE http_requests_total counter\n");
        requests.forEach((labels, count) -> out.append("http_requests_total{").append(labels).append("} ")
                .append(count).append('\n'));
        out.append("# HELP http_request_duration_seconds Time to serve a request.\n");
        out.append("# TYPE http_request_duration_seconds histogram\n");
        for (int i = 0; i < BUCKETS.length; i++) {
            out.append("http_request_duration_seconds_bucket{le=\"").append(BUCKETS[i]).append("\"} ")
                    .append(bucketCounts[i]).append('\n');
        }
        out.append("http_request_duration_seconds_bucket{le=\"+Inf\"} ").append(durationCount).append('\n');
        out.append("http_request_duration_seconds_sum ").append(String.format(Locale.ROOT, "%.6f", durationSum))
                .append('\n');
        out.append("http_request_duration_seconds_count ").append(durationCount).append('\n');
        out.append("# HELP jvm_memory_max_bytes The JVM's maximum heap.\n# TYPE jvm_memory_max_bytes gauge\n");
        out.append("jvm_memory_max_bytes{area=\"heap\"} ").append(Runtime.getRuntime().maxMemory()).append('\n');
        out.append("# HELP process_uptime_seconds Seconds since the JVM started.\n");
        out.append("# TYPE process_uptime_seconds gauge\n");
        out.append("process_uptime_seconds ")
                .append(String.format(Locale.ROOT, "%.3f", (System.nanoTime() - startedNanos) / 1e9)).append('\n');
        LogPush push = logPush;
        long[] pushCounts = push == null
                ? new long[4]
                : new long[] {push.pushed.get(), push.dropped.get(), push.failures.get(), push.queued()};
        out.append("# HELP log_lines_pushed_total Log lines the log server acknowledged.\n");
        out.append("# TYPE log_lines_pushed_total counter\nlog_lines_pushed_total ").append(pushCounts[0])
                .append('\n');
        out.append("# HELP log_lines_dropped_total Log lines given up: queue full, answered -ERR, or unsent at exit.\n");
        out.append("# TYPE log_lines_dropped_total counter\nlog_lines_dropped_total ").append(pushCounts[1])
                .append('\n');
        out.append("# HELP log_push_errors_total Failed pushes: -ERR replies and connection errors.\n");
        out.append("# TYPE log_push_errors_total counter\nlog_push_errors_total ").append(pushCounts[2])
                .append('\n');
        out.append("# HELP log_queue_lines Log lines waiting to be pushed.\n");
        out.append("# TYPE log_queue_lines gauge\nlog_queue_lines ").append(pushCounts[3]).append('\n');
        return out.toString();
    }

    static void log(String message, String fields) {
        String line = "{\"ts\":\"" + Instant.now() + "\",\"level\":\"INFO\",\"logger\":\"java-hello\",\"msg\":"
                + json(message) + (fields == null ? "" : "," + fields) + "}";
        synchronized (System.out) {
            System.out.println(line);
            System.out.flush();
            // Under the same lock, so the pushed lines keep stdout's order.
            LogPush push = logPush;
            if (push != null) {
                push.offer(line);
            }
        }
    }

    static String json(String value) {
        StringBuilder out = new StringBuilder("\"");
        for (char c : value.toCharArray()) {
            switch (c) {
                case '"' -> out.append("\\\"");
                case '\\' -> out.append("\\\\");
                case '\n' -> out.append("\\n");
                case '\r' -> out.append("\\r");
                case '\t' -> out.append("\\t");
                default -> {
                    if (c < 0x20) {
                        out.append(String.format("\\u%04x", (int) c));
                    } else {
                        out.append(c);
                    }
                }
            }
        }
        return out.append('"').toString();
    }

    static int intEnv(String name, int fallback) {
        String value = System.getenv(name);
        return value == null || value.isBlank() ? fallback : Integer.parseInt(value.trim());
    }

    static void sleep(long millis) {
        try {
            Thread.sleep(millis);
        } catch (InterruptedException e) {
            Thread.currentThread().interrupt();
        }
    }
}
