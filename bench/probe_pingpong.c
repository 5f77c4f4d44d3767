/* Machine probe: the round-trip floor of a request/response exchange on
 * loopback, without Apogee. Two processes exchange 200-byte messages over
 * TCP on 127.0.0.1; each side either sleeps for the next message (epoll /
 * blocking recv) or polls for it.
 *
 *   probe_pingpong [round_trips] [mode]
 *   mode 0: both sleep, 1: server polls, 2: client polls, 3: both poll
 *
 * docs/perf-log/perf-server.md ("Busy polling") has the figures for this VM. */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#define MSG 200

static double now_s(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec + (double)t.tv_nsec / 1e9;
}

static void serve(int ls, int poll_mode)
{
    int c = accept(ls, NULL, NULL);
    int one = 1;
    setsockopt(c, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
    int ep = epoll_create1(0);
    struct epoll_event ev = {.events = EPOLLIN};
    epoll_ctl(ep, EPOLL_CTL_ADD, c, &ev);
    char b[MSG];
    for (;;) {
        struct epoll_event e;
        if (epoll_wait(ep, &e, 1, poll_mode ? 0 : -1) <= 0)
            continue;
        ssize_t k = read(c, b, sizeof(b));
        if (k <= 0)
            _exit(0);
        if (write(c, b, (size_t)k) != k)
            _exit(1);
    }
}

int main(int argc, char **argv)
{
    long n = argc > 1 ? atol(argv[1]) : 100000;
    int mode = argc > 2 ? atoi(argv[2]) : 0;
    int ls = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t al = sizeof(a);
    if (bind(ls, (struct sockaddr *)&a, sizeof(a)) || listen(ls, 1) ||
        getsockname(ls, (struct sockaddr *)&a, &al)) {
        perror("listen");
        return 1;
    }
    pid_t srv = fork();
    if (srv == 0)
        serve(ls, mode & 1);
    int s = socket(AF_INET, SOCK_STREAM, 0);
    if (connect(s, (struct sockaddr *)&a, sizeof(a))) {
        perror("connect");
        return 1;
    }
    int one = 1;
    setsockopt(s, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
    char b[MSG] = {0};
    double t0 = now_s();
    for (long i = 0; i < n; i++) {
        if (write(s, b, MSG) != MSG)
            return 1;
        for (size_t got = 0; got < MSG;) {
            ssize_t k = recv(s, b, MSG - got, (mode & 2) ? MSG_DONTWAIT : 0);
            if (k > 0)
                got += (size_t)k;
            else if (k == 0)
                return 1;
        }
    }
    double t = now_s() - t0;
    printf("mode %d: %.0f round trips/s, %.1f us each\n", mode, (double)n / t, t / (double)n * 1e6);
    close(s);
    waitpid(srv, NULL, 0);
    return 0;
}
