package hello;

import java.io.IOException;
import java.io.InputStream;
import java.io.OutputStream;
import java.net.HttpURLConnection;
import java.net.Inet4Address;
import java.net.InetAddress;
import java.net.NetworkInterface;
import java.net.URL;
import java.nio.charset.StandardCharsets;
import java.util.Collections;
import java.util.Locale;
import java.util.concurrent.Executors;
import java.util.concurrent.ScheduledExecutorService;
import java.util.concurrent.TimeUnit;
import java.util.regex.Matcher;
import java.util.regex.Pattern;

/**
 * java-hello's Eureka client, the REST calls a Spring Cloud Netflix client makes, with the JDK alone.
 *
 * <p>With EUREKA_URL set (e.g. http://10.0.1.1:8761/eureka/) the instance registers once it listens, as app
 * EUREKA_APP (default JAVA-HELLO) with the id {@code <pod ip>:<app>:<port>} (lower-case app, as Spring's
 * default), renews its lease every EUREKA_RENEWAL_SECONDS (default 30; the lease lasts three renewals) and
 * registers again when a renewal answers 404 (the server dropped it). The status override is set and removed
 * on the server, so it survives renewals; on shutdown the instance marks itself DOWN and de-registers. Every
 * call is bounded (2 s to connect, 3 s to answer), under the preStop hook's 5 s.
 */
final class Eureka {
    static final int CONNECT_TIMEOUT_MILLIS = 2000;
    static final int READ_TIMEOUT_MILLIS = 3000;
    private static final Pattern STATUS = Pattern.compile("\"status\"\\s*:\\s*\"([A-Z_]+)\"");
    private static final Pattern OVERRIDDEN =
            Pattern.compile("\"overriddenStatus\"\\s*:\\s*\"([A-Z_]+)\"", Pattern.CASE_INSENSITIVE);

    final String app;
    final String instanceId;
    private final String base;
    private final String ip;
    private final int port;
    private final int renewalSeconds;
    private final ScheduledExecutorService timer = Executors.newSingleThreadScheduledExecutor(runnable -> {
        Thread thread = new Thread(runnable, "eureka-heartbeat");
        thread.setDaemon(true);
        return thread;
    });
    // The instance's own view, sent with every registration: a re-registration keeps the override.
    private volatile String status = "UP";
    private volatile String overriddenStatus = "UNKNOWN";
    private volatile boolean registered;

    Eureka(String url, String app, String ip, int port, int renewalSeconds) {
        this.base = url.replaceAll("/+$", "");
        this.app = app.toUpperCase(Locale.ROOT);
        this.ip = ip;
        this.port = port;
        this.renewalSeconds = renewalSeconds;
        this.instanceId = ip + ":" + this.app.toLowerCase(Locale.ROOT) + ":" + port;
    }

    /** The client EUREKA_URL asks for, or null without it. */
    static Eureka fromEnv(int port) {
        String url = System.getenv("EUREKA_URL");
        if (url == null || url.isBlank()) {
            return null;
        }
        String app = System.getenv().getOrDefault("EUREKA_APP", "");
        return new Eureka(
                url.trim(),
                app.isBlank() ? "JAVA-HELLO" : app.trim(),
                podIp(),
                port,
                Math.max(App.intEnv("EUREKA_RENEWAL_SECONDS", 30), 1));
    }

    /** POD_IP when the Deployment passes it, else the first non-loopback IPv4 address of the pod. */
    static String podIp() {
        String configured = System.getenv("POD_IP");
        if (configured != null && !configured.isBlank()) {
            return configured.trim();
        }
        try {
            for (NetworkInterface nic : Collections.list(NetworkInterface.getNetworkInterfaces())) {
                if (!nic.isUp() || nic.isLoopback()) {
                    continue;
                }
                for (InetAddress address : Collections.list(nic.getInetAddresses())) {
                    if (address instanceof Inet4Address) {
                        return address.getHostAddress();
                    }
                }
            }
            return InetAddress.getLocalHost().getHostAddress();
        } catch (IOException e) {
            return "127.0.0.1";
        }
    }

    /** Register now (on the heartbeat thread), then renew every EUREKA_RENEWAL_SECONDS. */
    void start() {
        timer.scheduleWithFixedDelay(this::heartbeat, 0, renewalSeconds, TimeUnit.SECONDS);
    }

    private void heartbeat() {
        try {
            if (!registered) {
                register();
                return;
            }
            int code = call("PUT", instanceUrl(), null).code;
            if (code == 404) {
                // The server forgot the instance (its lease expired, or someone deleted it): a real client
                // registers again, which is why deleting an instance from outside does not keep it away.
                App.log("eureka re-registering", "\"instance_id\":" + App.json(instanceId));
                register();
            } else if (code != 200) {
                App.log("eureka renewal failed", "\"http_status\":" + code);
            }
        } catch (IOException e) {
            App.log("eureka unreachable", "\"error\":" + App.json(String.valueOf(e)));
        }
    }

    private void register() throws IOException {
        int code = call("POST", base + "/apps/" + app, instanceJson()).code;
        registered = code == 204;
        App.log(
                registered ? "eureka registered" : "eureka registration failed",
                "\"instance_id\":" + App.json(instanceId)
                        + ",\"app\":" + App.json(app)
                        + ",\"status\":" + App.json(status)
                        + ",\"http_status\":" + code);
    }

    /** {"status":…,"overriddenStatus":…} as the server has it. */
    String statusJson() throws IOException {
        Answer answer = call("GET", instanceUrl(), null);
        if (answer.code != 200) {
            throw new IOException("Eureka answered " + answer.code + " to GET " + instanceUrl());
        }
        Matcher found = STATUS.matcher(answer.body);
        Matcher overridden = OVERRIDDEN.matcher(answer.body);
        return statusJson(
                found.find() ? found.group(1) : "UNKNOWN", overridden.find() ? overridden.group(1) : "UNKNOWN");
    }

    static String statusJson(String status, String overridden) {
        return "{\"status\":" + App.json(status) + ",\"overriddenStatus\":" + App.json(overridden) + "}";
    }

    /**
     * OUT_OF_SERVICE sets the override on the server (PUT …/status), UP removes it (DELETE …/status): what
     * Spring's POST /actuator/serviceregistry does through its DiscoveryClient. The server's answer.
     */
    int override(String wanted) throws IOException {
        boolean out = "OUT_OF_SERVICE".equals(wanted);
        String url = instanceUrl() + "/status?value=" + (out ? "OUT_OF_SERVICE" : "UP");
        int code = call(out ? "PUT" : "DELETE", url, null).code;
        if (code == 200) {
            overriddenStatus = out ? "OUT_OF_SERVICE" : "UNKNOWN";
            status = out ? "OUT_OF_SERVICE" : "UP";
        }
        return code;
    }

    /** On SIGTERM: stop renewing, mark the instance DOWN, de-register. */
    void shutdown() {
        timer.shutdownNow();
        status = "DOWN";
        try {
            App.log("eureka unregistering", "\"instance_id\":" + App.json(instanceId) + ",\"status\":\"DOWN\"");
            if (registered) {
                call("POST", base + "/apps/" + app, instanceJson());
            }
            int code = call("DELETE", instanceUrl(), null).code;
            App.log("eureka deregistered", "\"instance_id\":" + App.json(instanceId) + ",\"http_status\":" + code);
        } catch (IOException e) {
            App.log("eureka deregistration failed", "\"error\":" + App.json(String.valueOf(e)));
        }
    }

    private String instanceUrl() {
        return base + "/apps/" + app + "/" + instanceId;
    }

    /** The minimal instance the server accepts (integrations reference, section C). */
    private String instanceJson() {
        String http = "http://" + ip + ":" + port;
        String vip = App.json(app.toLowerCase(Locale.ROOT));
        return "{\"instance\":{"
                + "\"instanceId\":" + App.json(instanceId)
                + ",\"hostName\":" + App.json(ip)
                + ",\"app\":" + App.json(app)
                + ",\"ipAddr\":" + App.json(ip)
                + ",\"vipAddress\":" + vip
                + ",\"secureVipAddress\":" + vip
                + ",\"status\":" + App.json(status)
                + ",\"overriddenStatus\":" + App.json(overriddenStatus)
                + ",\"port\":{\"$\":" + port + ",\"@enabled\":\"true\"}"
                + ",\"securePort\":{\"$\":443,\"@enabled\":\"false\"}"
                + ",\"healthCheckUrl\":" + App.json(http + "/actuator/health")
                + ",\"statusPageUrl\":" + App.json(http + "/actuator/info")
                + ",\"homePageUrl\":" + App.json(http + "/")
                + ",\"dataCenterInfo\":{\"@class\":\"com.netflix.appinfo.InstanceInfo$DefaultDataCenterInfo\","
                + "\"name\":\"MyOwn\"}"
                + ",\"leaseInfo\":{\"renewalIntervalInSecs\":" + renewalSeconds
                + ",\"durationInSecs\":" + 3 * renewalSeconds + "}"
                + ",\"metadata\":{\"source\":\"java-hello\"}}}";
    }

    record Answer(int code, String body) {}

    static Answer call(String method, String url, String body) throws IOException {
        HttpURLConnection connection = (HttpURLConnection) new URL(url).openConnection();
        try {
            connection.setRequestMethod(method);
            connection.setConnectTimeout(CONNECT_TIMEOUT_MILLIS);
            connection.setReadTimeout(READ_TIMEOUT_MILLIS);
            connection.setRequestProperty("Accept", "application/json");
            if (body != null) {
                byte[] bytes = body.getBytes(StandardCharsets.UTF_8);
                connection.setDoOutput(true);
                connection.setRequestProperty("Content-Type", "application/json");
                connection.setFixedLengthStreamingMode(bytes.length);
                try (OutputStream out = connection.getOutputStream()) {
                    out.write(bytes);
                }
            }
            int code = connection.getResponseCode();
            InputStream in = code >= 400 ? connection.getErrorStream() : connection.getInputStream();
            String text = "";
            if (in != null) {
                try (in) {
                    text = new String(in.readAllBytes(), StandardCharsets.UTF_8);
                }
            }
            return new Answer(code, text);
        } finally {
            connection.disconnect();
        }
    }
}
