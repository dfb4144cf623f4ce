/*
 * http-post: POST a body to a plain-HTTP URL and tell whether the answer was 2xx. The preStop hook's
 * de-registration call (clusters/workload/manifests.py) for images that carry neither curl nor wget; the
 * generic Dockerfiles (deploys/recipes.py) copy it to /opt/opsportal/bin/http-post from the helper image.
 *
 *   http-post [-t SECONDS] URL [BODY]      URL = http://HOST[:PORT][/PATH], HOST an IPv4 address or localhost
 *
 * The body is sent as application/json. Exit 0 on a 2xx answer; 1 with the cause on stderr for any other
 * answer, a refused connection or the timeout (default 5 s, for the whole call); 2 for a usage error.
 * Built static (gcc -static -Os -s) so it runs in any Linux image; no name resolution, which static glibc
 * cannot do reliably, and none is needed for 127.0.0.1.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

static const char *target = "";

static void fail(const char *what, const char *detail) {
    fprintf(stderr, "http-post: POST %s: %s%s%s\n", target, what, detail[0] ? ": " : "", detail);
    exit(1);
}

static void timed_out(int sig) {
    (void)sig;
    /* Only async-signal-safe calls here. */
    static const char prefix[] = "http-post: POST ";
    static const char suffix[] = ": timed out\n";
    ssize_t ignored = write(2, prefix, sizeof prefix - 1);
    ignored = write(2, target, strlen(target));
    ignored = write(2, suffix, sizeof suffix - 1);
    (void)ignored;
    _exit(1);
}

static void send_all(int fd, const char *data, size_t length) {
    while (length > 0) {
        ssize_t sent = send(fd, data, length, MSG_NOSIGNAL);
        if (sent < 0) {
            if (errno == EINTR) continue;
            fail("send", strerror(errno));
        }
        data += sent;
        length -= (size_t)sent;
    }
}

int main(int argc, char **argv) {
    int timeout = 5, opt;
    while ((opt = getopt(argc, argv, "t:")) != -1) {
        if (opt != 't' || (timeout = atoi(optarg)) <= 0) {
            fprintf(stderr, "usage: http-post [-t SECONDS] http://HOST[:PORT][/PATH] [BODY]\n");
            return 2;
        }
    }
    if (optind >= argc || argc - optind > 2) {
        fprintf(stderr, "usage: http-post [-t SECONDS] http://HOST[:PORT][/PATH] [BODY]\n");
        return 2;
    }
    target = argv[optind];
    const char *body = optind + 1 < argc ? argv[optind + 1] : "";

    if (strncmp(target, "http://", 7) != 0) fail("only http:// URLs are supported", "");
    char host[256];
    const char *rest = target + 7;
    size_t host_length = strcspn(rest, ":/");
    if (host_length == 0 || host_length >= sizeof host) fail("bad host", "");
    memcpy(host, rest, host_length);
    host[host_length] = '\0';
    rest += host_length;
    long port = 80;
    if (*rest == ':') {
        char *end;
        port = strtol(rest + 1, &end, 10);
        if (end == rest + 1 || port < 1 || port > 65535 || (*end != '/' && *end != '\0')) fail("bad port", "");
        rest = end;
    }
    const char *path = *rest ? rest : "/";

    struct sockaddr_in address = {.sin_family = AF_INET, .sin_port = htons((unsigned short)port)};
    if (strcmp(host, "localhost") == 0) strcpy(host, "127.0.0.1");
    if (inet_pton(AF_INET, host, &address.sin_addr) != 1) fail("the host must be an IPv4 address", host);

    signal(SIGALRM, timed_out);
    alarm((unsigned)timeout);

    int fd = socket(AF_INET, SOCK_STREAM, 0);
    if (fd < 0) fail("socket", strerror(errno));
    if (connect(fd, (struct sockaddr *)&address, sizeof address) != 0) fail("connect", strerror(errno));

    char head[1024];
    int head_length = snprintf(head, sizeof head,
                               "POST %s HTTP/1.1\r\nHost: %s:%ld\r\nUser-Agent: opsportal-http-post\r\n"
                               "Content-Type: application/json\r\nContent-Length: %zu\r\n"
                               "Connection: close\r\n\r\n",
                               path, host, port, strlen(body));
    if (head_length < 0 || (size_t)head_length >= sizeof head) fail("URL too long", "");
    send_all(fd, head, (size_t)head_length);
    send_all(fd, body, strlen(body));

    /* Only the status line matters: "HTTP/1.1 200 OK". */
    char answer[512];
    size_t got = 0;
    while (got < sizeof answer - 1 && !memchr(answer, '\n', got)) {
        ssize_t n = recv(fd, answer + got, sizeof answer - 1 - got, 0);
        if (n < 0 && errno == EINTR) continue;
        if (n < 0) fail("receive", strerror(errno));
        if (n == 0) break;
        got += (size_t)n;
    }
    answer[got] = '\0';
    close(fd);
    answer[strcspn(answer, "\r\n")] = '\0';
    int status = 0;
    if (sscanf(answer, "HTTP/%*d.%*d %d", &status) != 1) fail("not an HTTP answer", answer);
    if (status < 200 || status > 299) fail("answered", answer);
    return 0;
}
