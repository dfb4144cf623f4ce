package hello;

import java.io.BufferedInputStream;
import java.io.BufferedOutputStream;
import java.io.ByteArrayOutputStream;
import java.io.EOFException;
import java.io.IOException;
import java.io.InputStream;
import java.io.OutputStream;
import java.net.InetSocketAddress;
import java.net.Socket;
import java.net.URI;
import java.net.URISyntaxException;
import java.nio.charset.StandardCharsets;
import java.util.ArrayDeque;
import java.util.ArrayList;
import java.util.List;
import java.util.concurrent.CountDownLatch;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.atomic.AtomicLong;

/**
 * With LOG_REDIS_URL set, every JSON line java-hello writes to stdout is also pushed with {@code RPUSH
 * <LOG_REDIS_KEY> <line>} to a Redis-protocol server: the company's log proxy in front of Kafka, or a plain
 * redis-server (the way the company's Redis log appenders worked). Logging must never slow or break a request,
 * so {@link #offer} only appends to a bounded queue (dropping the oldest line when it is full) and one daemon
 * thread sends pipelined batches over one connection, reconnecting with backoff.
 *
 * <p>Delivery is at-least-once while the connection holds: lines whose replies were lost with a broken
 * connection are sent again after reconnecting. A line answered {@code -ERR} is given up, not retried: the
 * proxy's {@code -ERR} means "unknown" (its producer may still deliver it), so a retry could duplicate it.
 */
final class LogPush {
    static final int TIMEOUT_MILLIS = 2000; // connect, and each write or reply; below common client timeouts
    static final long FLUSH_MILLIS = 2000; // what SIGTERM waits for the queue to drain
    private static final int BATCH_LINES = 256;
    private static final long BACKOFF_MIN_MILLIS = 100;
    private static final long BACKOFF_MAX_MILLIS = 5000;

    private final String host;
    private final int port;
    private final String username;
    private final String password;
    private final int db;
    private final byte[] key;
    private final int capacity;

    private final Object lock = new Object();
    private final ArrayDeque<String> queue = new ArrayDeque<>();
    private boolean closing;
    private long flushDeadlineNanos;
    private final CountDownLatch closingSignal = new CountDownLatch(1);

    final AtomicLong pushed = new AtomicLong();
    final AtomicLong dropped = new AtomicLong();
    final AtomicLong failures = new AtomicLong();

    private final Thread sender = new Thread(this::run, "log-push");
    // Used by the sender thread only.
    private Socket socket;
    private InputStream in;
    private OutputStream out;
    private boolean failing;

    private LogPush(URI uri, String key, int capacity) {
        this.host = uri.getHost();
        this.port = uri.getPort() == -1 ? 6379 : uri.getPort();
        String user = "";
        String pass = "";
        if (uri.getUserInfo() != null) {
            int colon = uri.getUserInfo().indexOf(':');
            user = colon < 0 ? uri.getUserInfo() : uri.getUserInfo().substring(0, colon);
            pass = colon < 0 ? "" : uri.getUserInfo().substring(colon + 1);
        }
        this.username = user;
        this.password = pass;
        String path = uri.getPath() == null ? "" : uri.getPath().replace("/", "");
        try {
            this.db = path.isEmpty() ? 0 : Integer.parseInt(path);
        } catch (NumberFormatException e) {
            throw new IllegalArgumentException("LOG_REDIS_URL: the database " + json(path) + " is not a number");
        }
        this.key = key.getBytes(StandardCharsets.UTF_8);
        this.capacity = capacity;
        sender.setDaemon(true);
    }

    private static String json(String value) {
        return App.json(value);
    }

    /** Null when LOG_REDIS_URL is unset; IllegalArgumentException for a bad setting. */
    static LogPush fromEnv(String service) {
        String raw = System.getenv("LOG_REDIS_URL");
        if (raw == null || raw.isBlank()) {
            return null;
        }
        URI uri;
        try {
            uri = new URI(raw.trim());
        } catch (URISyntaxException e) {
            throw new IllegalArgumentException("LOG_REDIS_URL: " + e.getMessage());
        }
        if (!"redis".equals(uri.getScheme()) || uri.getHost() == null) {
            throw new IllegalArgumentException("LOG_REDIS_URL: want redis://[:password@]host:port[/db]");
        }
        int capacity;
        try {
            capacity = Integer.parseInt(System.getenv().getOrDefault("LOG_QUEUE_LINES", "10000").trim());
        } catch (NumberFormatException e) {
            capacity = 0;
        }
        if (capacity < 1) {
            throw new IllegalArgumentException("LOG_QUEUE_LINES must be a positive number");
        }
        String key = System.getenv().getOrDefault("LOG_REDIS_KEY", "");
        LogPush push = new LogPush(uri, key.isBlank() ? "logs:" + service : key.trim(), capacity);
        push.sender.start();
        return push;
    }

    /** Queues one line without ever blocking on the network. */
    void offer(String line) {
        synchronized (lock) {
            if (queue.size() >= capacity) {
                queue.pollFirst();
                dropped.incrementAndGet();
            }
            queue.addLast(line);
            lock.notifyAll();
        }
    }

    int queued() {
        synchronized (lock) {
            return queue.size();
        }
    }

    /** Sends what is queued for up to {@code millis}; returns how many lines were left unsent (now dropped). */
    int close(long millis) {
        synchronized (lock) {
            if (!closing) {
                closing = true;
                flushDeadlineNanos = System.nanoTime() + TimeUnit.MILLISECONDS.toNanos(millis);
            }
            lock.notifyAll();
        }
        closingSignal.countDown();
        try {
            // Beyond the deadline only while a send is stuck in its own socket timeout.
            sender.join(millis + 100);
        } catch (InterruptedException e) {
            Thread.currentThread().interrupt();
        }
        synchronized (lock) {
            int left = queue.size();
            queue.clear();
            dropped.addAndGet(left);
            return left;
        }
    }

    private boolean pastDeadline() {
        return closing && System.nanoTime() - flushDeadlineNanos >= 0;
    }

    /** The next batch; null once closing with nothing left or past the flush deadline. */
    private List<String> next() throws InterruptedException {
        synchronized (lock) {
            while (queue.isEmpty() && !closing) {
                lock.wait();
            }
            if (queue.isEmpty() || pastDeadline()) {
                return null;
            }
            List<String> batch = new ArrayList<>(Math.min(queue.size(), BATCH_LINES));
            while (!queue.isEmpty() && batch.size() < BATCH_LINES) {
                batch.add(queue.pollFirst());
            }
            return batch;
        }
    }

    private void run() {
        long backoff = BACKOFF_MIN_MILLIS;
        try {
            while (true) {
                List<String> batch = next();
                if (batch == null) {
                    return;
                }
                int[] sent = {0};
                try {
                    send(batch, sent);
                    backoff = BACKOFF_MIN_MILLIS;
                    if (failing) {
                        failing = false;
                        System.err.println("java-hello: log push to " + host + ":" + port + " works again");
                    }
                    continue;
                } catch (IOException | RuntimeException e) {
                    failures.incrementAndGet();
                    disconnect();
                    requeue(batch.subList(sent[0], batch.size()));
                    if (!failing) {
                        failing = true;
                        System.err.println("java-hello: log push to " + host + ":" + port
                                + " failed, retrying with backoff: " + e);
                    }
                }
                // A flush retries at once while its deadline allows, but not in a tight loop.
                if (closingSignal.await(backoff, TimeUnit.MILLISECONDS)) {
                    Thread.sleep(Math.min(backoff, BACKOFF_MIN_MILLIS));
                }
                backoff = Math.min(backoff * 2, BACKOFF_MAX_MILLIS);
            }
        } catch (InterruptedException e) {
            Thread.currentThread().interrupt();
        } finally {
            disconnect();
        }
    }

    /**
     * Puts unsent lines back in front. Newer lines may have filled the queue meanwhile: the oldest of the unsent
     * ones are then dropped, as they would have been had they never left it.
     */
    private void requeue(List<String> unsent) {
        synchronized (lock) {
            int room = Math.max(capacity - queue.size(), 0);
            int drop = Math.max(unsent.size() - room, 0);
            dropped.addAndGet(drop);
            for (int i = unsent.size() - 1; i >= drop; i--) {
                queue.addFirst(unsent.get(i));
            }
        }
    }

    private void disconnect() {
        if (socket != null) {
            try {
                socket.close();
            } catch (IOException ignored) {
                // Closing a broken connection: nothing left to do with it.
            }
            socket = null;
        }
    }

    private void connect() throws IOException {
        Socket fresh = new Socket();
        try {
            fresh.connect(new InetSocketAddress(host, port), TIMEOUT_MILLIS);
            fresh.setSoTimeout(TIMEOUT_MILLIS);
        } catch (IOException e) {
            fresh.close();
            throw e;
        }
        socket = fresh;
        in = new BufferedInputStream(fresh.getInputStream());
        out = new BufferedOutputStream(fresh.getOutputStream(), 64 * 1024);
        int expected = 0;
        if (!password.isEmpty()) {
            if (username.isEmpty()) {
                command("AUTH".getBytes(StandardCharsets.US_ASCII), password.getBytes(StandardCharsets.UTF_8));
            } else {
                command("AUTH".getBytes(StandardCharsets.US_ASCII), username.getBytes(StandardCharsets.UTF_8),
                        password.getBytes(StandardCharsets.UTF_8));
            }
            expected++;
        }
        if (db != 0) {
            command("SELECT".getBytes(StandardCharsets.US_ASCII),
                    Integer.toString(db).getBytes(StandardCharsets.US_ASCII));
            expected++;
        }
        out.flush();
        for (int i = 0; i < expected; i++) {
            String reply = readReply();
            if (reply.startsWith("-")) {
                throw new IOException("AUTH/SELECT: " + reply.substring(1));
            }
        }
    }

    /** Pipelines one RPUSH per line, then reads the replies in order; sent[0] counts the lines answered. */
    private void send(List<String> batch, int[] sent) throws IOException {
        if (socket == null) {
            connect();
        }
        byte[] rpush = "RPUSH".getBytes(StandardCharsets.US_ASCII);
        for (String line : batch) {
            command(rpush, key, line.getBytes(StandardCharsets.UTF_8));
        }
        out.flush();
        for (int i = 0; i < batch.size(); i++) {
            String reply = readReply();
            if (reply.startsWith("-")) {
                failures.incrementAndGet();
                dropped.incrementAndGet();
            } else {
                pushed.incrementAndGet();
            }
            sent[0] = i + 1;
        }
    }

    private void command(byte[]... parts) throws IOException {
        out.write(("*" + parts.length + "\r\n").getBytes(StandardCharsets.US_ASCII));
        for (byte[] part : parts) {
            out.write(("$" + part.length + "\r\n").getBytes(StandardCharsets.US_ASCII));
            out.write(part);
            out.write('\r');
            out.write('\n');
        }
    }

    /** One reply line: "+…" or ":N" (done), "-…" (refused); anything else breaks the connection. */
    private String readReply() throws IOException {
        ByteArrayOutputStream line = new ByteArrayOutputStream();
        int b;
        while ((b = in.read()) != '\n') {
            if (b == -1) {
                throw new EOFException("the log server closed the connection");
            }
            if (b != '\r') {
                line.write(b);
            }
        }
        String reply = line.toString(StandardCharsets.UTF_8);
        if (reply.startsWith("+") || reply.startsWith(":") || reply.startsWith("-")) {
            return reply;
        }
        throw new IOException("unexpected reply " + json(reply));
    }
}
