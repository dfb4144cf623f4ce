<?php
// php-hello: the sandbox's PHP demo service, served by PHP's built-in server (`php -S`), which hands every
// path that is not a file to this script. Each request runs in a fresh interpreter, so the Prometheus
// counters live in a JSON file under the temp dir, updated under flock.
//
// With LOG_REDIS_URL set each request's JSON line is also pushed to the log proxy (push_log_line): there is no
// process that outlives the request to queue lines in, so each request pushes its own line over a short
// connection after its answer has been sent.
//
// Fault injection, for releasing a "bad" version: ERROR_RATIO (0..1) of the requests to / answer 500 and
// EXTRA_LATENCY_MS delays each of them. A release swaps the image, not the environment, so when the
// variables are unset the defaults below apply: a commit that changes them makes a bad release.

declare(strict_types=1);

const DEFAULT_ERROR_RATIO = '0';
const DEFAULT_EXTRA_LATENCY_MS = '0';

const BUCKETS = [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10];

function metrics_file(): string
{
    $configured = getenv('METRICS_FILE');
    if ($configured !== false && $configured !== '') {
        return $configured;
    }
    return sys_get_temp_dir() . '/php-hello-metrics-' . ($_SERVER['SERVER_PORT'] ?? '0') . '.json';
}

/** Runs $change on the decoded counters under an exclusive lock and writes them back; returns them. */
function with_metrics(?callable $change): array
{
    $handle = fopen(metrics_file(), 'c+');
    flock($handle, $change === null ? LOCK_SH : LOCK_EX);
    $raw = stream_get_contents($handle);
    $data = $raw ? json_decode($raw, true) : null;
    if (!is_array($data)) {
        $data = ['requests' => [], 'buckets' => array_fill(0, count(BUCKETS), 0), 'count' => 0, 'sum' => 0.0];
    }
    if ($change !== null) {
        $data = $change($data);
        ftruncate($handle, 0);
        rewind($handle);
        fwrite($handle, json_encode($data));
        fflush($handle);
    }
    flock($handle, LOCK_UN);
    fclose($handle);
    return $data;
}

function env_or(string $name, string $fallback): string
{
    $value = getenv($name);
    return $value === false || $value === '' ? $fallback : $value;
}

/** Whether this request to / fails: request n fails when floor(n * ratio) grows, so 0.3 is exactly 3 in 10. */
function injected_failure(): bool
{
    $ratio = min(max((float) env_or('ERROR_RATIO', DEFAULT_ERROR_RATIO), 0.0), 1.0);
    if ($ratio <= 0.0) {
        return false;
    }
    $served = 0;
    with_metrics(function (array $data) use (&$served): array {
        $data['root_served'] = ($data['root_served'] ?? 0) + 1;
        $served = $data['root_served'];
        return $data;
    });
    return (int) floor($served * $ratio) > (int) floor(($served - 1) * $ratio);
}

function render_metrics(array $data): string
{
    $out = "# HELP http_requests_total HTTP requests served, by method and status code.\n";
    $out .= "# TYPE http_requests_total counter\n";
    ksort($data['requests']);
    foreach ($data['requests'] as $key => $count) {
        [$method, $code] = explode(' ', $key, 2);
        $out .= sprintf("http_requests_total{method=\"%s\",code=\"%s\"} %d\n", $method, $code, $count);
    }
    $out .= "# HELP http_request_duration_seconds Time to serve a request.\n";
    $out .= "# TYPE http_request_duration_seconds histogram\n";
    foreach (BUCKETS as $i => $le) {
        $out .= sprintf("http_request_duration_seconds_bucket{le=\"%s\"} %d\n", $le, $data['buckets'][$i]);
    }
    $out .= sprintf("http_request_duration_seconds_bucket{le=\"+Inf\"} %d\n", $data['count']);
    $out .= sprintf("http_request_duration_seconds_sum %.6f\n", $data['sum']);
    $out .= sprintf("http_request_duration_seconds_count %d\n", $data['count']);
    $out .= "# HELP log_lines_pushed_total Log lines the log server acknowledged.\n";
    $out .= sprintf("# TYPE log_lines_pushed_total counter\nlog_lines_pushed_total %d\n", $data['log_pushed'] ?? 0);
    $out .= "# HELP log_lines_dropped_total Log lines given up: the push failed.\n";
    $out .= sprintf("# TYPE log_lines_dropped_total counter\nlog_lines_dropped_total %d\n", $data['log_dropped'] ?? 0);
    $out .= "# HELP log_push_errors_total Failed pushes: -ERR replies, connection errors and timeouts.\n";
    $out .= sprintf("# TYPE log_push_errors_total counter\nlog_push_errors_total %d\n", $data['log_errors'] ?? 0);
    return $out;
}

/**
 * RPUSHes one line to LOG_REDIS_URL (redis://[[user]:password@]host:port[/db]) under LOG_REDIS_KEY (default
 * logs:php-hello): null when pushing is off, true once the server acknowledged it, false on any failure. The
 * connect and each reply wait at most LOG_PUSH_TIMEOUT_MS (default 500); a failure is counted, never raised.
 */
function push_log_line(string $line): ?bool
{
    $raw = getenv('LOG_REDIS_URL');
    if ($raw === false || $raw === '') {
        return null;
    }
    $url = parse_url($raw);
    if (!is_array($url) || ($url['scheme'] ?? '') !== 'redis' || ($url['host'] ?? '') === '') {
        return false;
    }
    $commands = [];
    $password = rawurldecode($url['pass'] ?? '');
    if ($password !== '') {
        $user = rawurldecode($url['user'] ?? '');
        $commands[] = $user === '' ? ['AUTH', $password] : ['AUTH', $user, $password];
    }
    $db = trim($url['path'] ?? '', '/');
    if ($db !== '' && $db !== '0') {
        $commands[] = ['SELECT', $db];
    }
    $commands[] = ['RPUSH', env_or('LOG_REDIS_KEY', 'logs:php-hello'), $line];
    $payload = '';
    foreach ($commands as $parts) {
        $payload .= '*' . count($parts) . "\r\n";
        foreach ($parts as $part) {
            $payload .= '$' . strlen($part) . "\r\n" . $part . "\r\n";
        }
    }
    $timeout = max((int) env_or('LOG_PUSH_TIMEOUT_MS', '500'), 1) / 1000;
    $address = sprintf('tcp://%s:%d', $url['host'], $url['port'] ?? 6379);
    $socket = @stream_socket_client($address, $errno, $errstr, $timeout);
    if ($socket === false) {
        return false;
    }
    try {
        stream_set_timeout($socket, (int) $timeout, (int) (fmod($timeout, 1) * 1e6));
        for ($written = 0; $written < strlen($payload); $written += $sent) {
            $sent = @fwrite($socket, substr($payload, $written));
            if ($sent === false || $sent === 0) {
                return false;
            }
        }
        // Pipelined: one reply per command, in order; AUTH's or SELECT's refusal fails the push too.
        foreach ($commands as $_) {
            $reply = @fgets($socket);
            if ($reply === false || !in_array($reply[0], ['+', ':'], true)) {
                return false;
            }
        }
        return true;
    } finally {
        fclose($socket);
    }
}

/**
 * Ends the answer before the push: the built-in server closes the connection only when the script ends, so
 * without a Content-Length the client would wait for the push too.
 */
function send_answer_now(): void
{
    // The built-in server has its own output buffer under ours (output_buffering=4096): empty both.
    $body = '';
    while (ob_get_level() > 0) {
        $body = ob_get_clean() . $body;
    }
    if (!headers_sent()) {
        header('Content-Length: ' . strlen($body));
    }
    echo $body;
    flush();
}

function finish_request(string $method, string $path, float $started): void
{
    $status = http_response_code() ?: 200;
    $seconds = microtime(true) - $started;
    with_metrics(function (array $data) use ($method, $status, $seconds): array {
        $key = $method . ' ' . $status;
        $data['requests'][$key] = ($data['requests'][$key] ?? 0) + 1;
        foreach (BUCKETS as $i => $le) {
            if ($seconds <= $le) {
                $data['buckets'][$i]++;
            }
        }
        $data['count']++;
        $data['sum'] += $seconds;
        return $data;
    });
    $now = microtime(true);
    $line = json_encode([
        'ts' => gmdate('Y-m-d\TH:i:s', (int) $now) . sprintf('.%06dZ', (int) (fmod($now, 1) * 1e6)),
        'level' => 'INFO',
        'logger' => 'php-hello',
        'msg' => 'request',
        'method' => $method,
        'path' => $path,
        'status' => $status,
        'duration_ms' => round($seconds * 1000, 3),
        'remote' => $_SERVER['REMOTE_ADDR'] ?? '',
    ], JSON_UNESCAPED_SLASHES);
    file_put_contents('php://stdout', $line . "\n");
    if (getenv('LOG_REDIS_URL') === false || getenv('LOG_REDIS_URL') === '') {
        return;
    }
    send_answer_now();
    $pushed = push_log_line($line);
    with_metrics(function (array $data) use ($pushed): array {
        if ($pushed) {
            $data['log_pushed'] = ($data['log_pushed'] ?? 0) + 1;
        } else {
            $data['log_errors'] = ($data['log_errors'] ?? 0) + 1;
            $data['log_dropped'] = ($data['log_dropped'] ?? 0) + 1;
        }
        return $data;
    });
}

$started = $_SERVER['REQUEST_TIME_FLOAT'] ?? microtime(true);
$method = $_SERVER['REQUEST_METHOD'] ?? 'GET';
$path = parse_url($_SERVER['REQUEST_URI'] ?? '/', PHP_URL_PATH) ?: '/';
register_shutdown_function('finish_request', $method, $path, (float) $started);
// Held back until the request is counted, so that the answer can carry its length (see send_answer_now).
ob_start();

switch ($path) {
    case '/healthz':
        header('Content-Type: application/json');
        echo '{"status":"UP"}';
        break;
    case '/metrics':
        header('Content-Type: text/plain; version=0.0.4; charset=utf-8');
        echo render_metrics(with_metrics(null));
        break;
    case '/':
    case '/index.php':
        $latency = max((int) env_or('EXTRA_LATENCY_MS', DEFAULT_EXTRA_LATENCY_MS), 0);
        if ($latency > 0) {
            usleep($latency * 1000);
        }
        if (injected_failure()) {
            http_response_code(500);
            header('Content-Type: text/plain; charset=utf-8');
            echo "injected error\n";
            break;
        }
        header('Content-Type: text/plain; charset=utf-8');
        echo 'hello from php-hello ' . (getenv('APP_VERSION') ?: 'dev') . ' on PHP ' . PHP_VERSION . "\n";
        break;
    default:
        http_response_code(404);
        header('Content-Type: application/json');
        echo '{"error":"not found"}';
}
