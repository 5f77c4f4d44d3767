/* Machine probe: the CPU cost of one thread waking another that sleeps on
 * a futex, without Apogee. 64 threads pass K tokens round a ring; a thread
 * without a token sleeps on its own futex word, and each pass wakes the
 * next thread. With few tokens nearly every pass wakes a sleeping thread.
 *
 *   probe_futex [tokens] [seconds]      (run under /usr/bin/time for CPU)
 *
 * docs/perf-log/perf-server.md ("Where 64 sync threads stand") has the figures. */
#include <linux/futex.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/syscall.h>
#include <unistd.h>

#define N 64

static _Atomic unsigned tokens[N];
static _Atomic long passes;
static _Atomic int stop;

static void futex(_Atomic unsigned *w, int op, unsigned v)
{
    syscall(SYS_futex, (unsigned *)w, op, v, NULL, NULL, 0);
}

static void *ring(void *arg)
{
    long i = (long)arg;
    while (!atomic_load(&stop)) {
        while (atomic_load(&tokens[i]) == 0) {
            futex(&tokens[i], FUTEX_WAIT_PRIVATE, 0);
            if (atomic_load(&stop))
                return NULL;
        }
        atomic_fetch_sub(&tokens[i], 1);
        atomic_fetch_add(&passes, 1);
        long j = (i + 1) % N;
        atomic_fetch_add(&tokens[j], 1);
        futex(&tokens[j], FUTEX_WAKE_PRIVATE, 1);
    }
    return NULL;
}

int main(int argc, char **argv)
{
    int k = argc > 1 ? atoi(argv[1]) : 2;
    int secs = argc > 2 ? atoi(argv[2]) : 3;
    pthread_t t[N];
    for (long i = 0; i < N; i++)
        pthread_create(&t[i], NULL, ring, (void *)i);
    for (int i = 0; i < k; i++) {
        atomic_fetch_add(&tokens[i * N / k], 1);
        futex(&tokens[i * N / k], FUTEX_WAKE_PRIVATE, 1);
    }
    sleep((unsigned)secs);
    printf("%d tokens: %.0f hand-offs/s\n", k, (double)atomic_load(&passes) / secs);
    fflush(stdout);
    _exit(0); /* the ring threads may be asleep: do not join them */
}
