<?php
// php-hello: the sandbox's PHP demo service, served by PHP's built-in server (`php -S`), which hands every
// path that is not a file to this script. Each request runs in a fresh interpreter, so the Prometheus
// counters live in a JSON file under the temp dir, updated under flock.
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
    return $out;
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
}

$started = $_SERVER['REQUEST_TIME_FLOAT'] ?? microtime(true);
$method = $_SERVER['REQUEST_METHOD'] ?? 'GET';
$path = parse_url($_SERVER['REQUEST_URI'] ?? '/', PHP_URL_PATH) ?: '/';
register_shutdown_function('finish_request', $method, $path, (float) $started);

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
