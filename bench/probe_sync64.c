/* Machine probe: the most a 64-thread synchronous request/response load can
 * do on this machine over loopback TCP when the server does no work at all,
 * without Apogee. One process plays both sides, as the benchmark's client
 * and broker do on one machine:
 *
 *  - a server thread reads the one connection and answers each 128-byte
 *    request with a 64-byte reply, all the replies of one read in one write;
 *  - N caller threads each send a request and sleep on their own futex word
 *    until the reply arrives (what a blocking send() must do);
 *  - one reader thread reads the replies and wakes their callers.
 *
 * mode "direct": each caller writes its own request (under a mutex).
 * mode "batch":  callers queue their requests and the reader thread writes
 *                them, all queued ones in one write, as the client's I/O
 *                thread does once more than 8 requests wait.
 *
 *   probe_sync64 [threads] [seconds] [direct|batch]
 *
 * Prints round trips per second and the CPU per round trip (both sides).
 * docs/perf-log/perf-server.md ("Where 64 sync threads stand") has the figures. */
#include <arpa/inet.h>
#include <linux/futex.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#define REQ 128
#define REP 64
#define MAXT 1024

static int nthreads = 64, batch_mode;
static int cfd, sfd, qpipe[2];
static _Atomic unsigned done_word[MAXT];
static _Atomic long trips;
static _Atomic int stop;
static pthread_mutex_t wmu = PTHREAD_MUTEX_INITIALIZER;
static int queue[MAXT], qlen;

static void futex(_Atomic unsigned *w, int op, unsigned v)
{
    syscall(SYS_futex, (unsigned *)w, op, v, NULL, NULL, 0);
}

static void write_all(int fd, const char *p, size_t n)
{
    while (n > 0) {
        ssize_t w = write(fd, p, n);
        if (w <= 0)
            exit(1);
        p += w;
        n -= (size_t)w;
    }
}

/* Answers every complete request of each read, in one write. */
static void *server(void *arg)
{
    (void)arg;
    static char in[REQ * MAXT * 2], out[REP * MAXT * 2];
    size_t have = 0;
    for (;;) {
        ssize_t r = read(sfd, in + have, sizeof(in) - have);
        if (r <= 0)
            return NULL;
        have += (size_t)r;
        size_t n = have / REQ, o = 0;
        for (size_t i = 0; i < n; i++, o += REP)
            memcpy(out + o, in + i * REQ, 4); /* the caller's id */
        write_all(sfd, out, o);
        memmove(in, in + n * REQ, have - n * REQ);
        have -= n * REQ;
    }
}

/* Reads replies and wakes their callers; in batch mode also writes the
 * queued requests. */
static void *reader(void *arg)
{
    (void)arg;
    static char in[REP * MAXT * 2], out[REQ * MAXT];
    size_t have = 0;
    struct pollfd pf[2] = {{.fd = cfd, .events = POLLIN}, {.fd = qpipe[0], .events = POLLIN}};
    while (!atomic_load(&stop)) {
        if (poll(pf, batch_mode ? 2 : 1, 100) <= 0)
            continue;
        if (pf[1].revents & POLLIN) {
            char junk[256];
            (void)read(qpipe[0], junk, sizeof(junk));
            pthread_mutex_lock(&wmu);
            int n = qlen;
            for (int i = 0; i < n; i++)
                memcpy(out + (size_t)i * REQ, &queue[i], 4);
            qlen = 0;
            pthread_mutex_unlock(&wmu);
            write_all(cfd, out, (size_t)n * REQ);
        }
        if (pf[0].revents & POLLIN) {
            ssize_t r = read(cfd, in + have, sizeof(in) - have);
            if (r <= 0)
                return NULL;
            have += (size_t)r;
            size_t n = have / REP;
            for (size_t i = 0; i < n; i++) {
                int id;
                memcpy(&id, in + i * REP, 4);
                if (atomic_exchange(&done_word[id], 2) == 1)
                    futex(&done_word[id], FUTEX_WAKE_PRIVATE, 1);
            }
            memmove(in, in + n * REP, have - n * REP);
            have -= n * REP;
        }
    }
    return NULL;
}

static void *caller(void *arg)
{
    int id = (int)(long)arg;
    char req[REQ] = {0};
    memcpy(req, &id, 4);
    while (!atomic_load(&stop)) {
        atomic_store(&done_word[id], 0);
        pthread_mutex_lock(&wmu);
        if (batch_mode) {
            queue[qlen++] = id;
            if (qlen == 1)
                write_all(qpipe[1], "x", 1);
        } else {
            write_all(cfd, req, REQ);
        }
        pthread_mutex_unlock(&wmu);
        unsigned exp = 0;
        if (atomic_compare_exchange_strong(&done_word[id], &exp, 1))
            while (atomic_load(&done_word[id]) != 2)
                futex(&done_word[id], FUTEX_WAIT_PRIVATE, 1);
        atomic_fetch_add(&trips, 1);
    }
    return NULL;
}

static double cpu_s(void)
{
    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    return (double)ru.ru_utime.tv_sec + ru.ru_utime.tv_usec / 1e6 + (double)ru.ru_stime.tv_sec +
           ru.ru_stime.tv_usec / 1e6;
}

int main(int argc, char **argv)
{
    nthreads = argc > 1 ? atoi(argv[1]) : 64;
    int secs = argc > 2 ? atoi(argv[2]) : 5;
    batch_mode = argc > 3 && strcmp(argv[3], "batch") == 0;
    if (nthreads < 1 || nthreads > MAXT)
        return 2;
    int ls = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t al = sizeof(a);
    if (bind(ls, (struct sockaddr *)&a, sizeof(a)) || listen(ls, 1) ||
        getsockname(ls, (struct sockaddr *)&a, &al))
        return 1;
    cfd = socket(AF_INET, SOCK_STREAM, 0);
    if (connect(cfd, (struct sockaddr *)&a, sizeof(a)))
        return 1;
    sfd = accept(ls, NULL, NULL);
    int one = 1;
    setsockopt(cfd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
    setsockopt(sfd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
    if (pipe(qpipe))
        return 1;
    pthread_t st, rt, ct[MAXT];
    pthread_create(&st, NULL, server, NULL);
    pthread_create(&rt, NULL, reader, NULL);
    for (long i = 0; i < nthreads; i++)
        pthread_create(&ct[i], NULL, caller, (void *)i);
    sleep(1); /* warm-up */
    long t0 = atomic_load(&trips);
    double c0 = cpu_s();
    struct timespec w0, w1;
    clock_gettime(CLOCK_MONOTONIC, &w0);
    sleep((unsigned)secs);
    long t1 = atomic_load(&trips);
    double c1 = cpu_s();
    clock_gettime(CLOCK_MONOTONIC, &w1);
    double el = (double)(w1.tv_sec - w0.tv_sec) + (w1.tv_nsec - w0.tv_nsec) / 1e9;
    printf("%d threads %s: %.0f round trips/s, %.2f us CPU per round trip, %.2f CPUs\n", nthreads,
           batch_mode ? "batch" : "direct", (double)(t1 - t0) / el,
           (c1 - c0) * 1e6 / (double)(t1 - t0), (c1 - c0) / el);
    fflush(stdout);
    _exit(0); /* callers may be asleep on a reply that will never come */
}
