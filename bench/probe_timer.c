/* Machine probe: how late threads that sleep to fixed deadlines wake up,
 * without Apogee. 4 threads each sleep to an absolute deadline every
 * 200 us (timer slack 1 ns), the shape of `apogee bench --rate=20000
 * --threads=4`, and the lateness of every wake-up is recorded.
 *
 *   probe_timer          (run it alone, or beside another load)
 *
 * docs/perf-log/2026-11-21.md ("Scheduling stalls") has the figures for this VM. */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <stdint.h>
#include <sys/prctl.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#define THREADS 4
#define WAKES 25000
#define PERIOD_NS 200000L

static long late[THREADS][WAKES];

/* PROBE_SLICE_US=n asks the scheduler for an n-microsecond slice for each
 * sleeper (sched_setattr's sched_runtime for a SCHED_OTHER thread, Linux
 * 6.12 and later): a shorter slice gives a woken thread an earlier deadline,
 * so it preempts a thread that is running through a long slice. */
struct probe_sched_attr {
    uint32_t size, policy;
    uint64_t flags;
    int32_t nice;
    uint32_t priority;
    uint64_t runtime, deadline, period;
};

static void set_slice(void)
{
    const char *e = getenv("PROBE_SLICE_US");
    if (e == NULL)
        return;
    struct probe_sched_attr a = {.size = sizeof(a), .runtime = strtoull(e, NULL, 10) * 1000};
    if (syscall(SYS_sched_setattr, 0, &a, 0) != 0)
        perror("sched_setattr");
}

static long now_ns(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return t.tv_sec * 1000000000L + t.tv_nsec;
}

static void *sleeper(void *arg)
{
    long i = (long)arg;
    prctl(PR_SET_TIMERSLACK, 1UL, 0, 0, 0);
    set_slice();
    long next = now_ns() + i * (PERIOD_NS / THREADS);
    for (int k = 0; k < WAKES; k++) {
        next += PERIOD_NS;
        struct timespec at = {next / 1000000000L, next % 1000000000L};
        clock_nanosleep(CLOCK_MONOTONIC, TIMER_ABSTIME, &at, NULL);
        late[i][k] = now_ns() - next;
    }
    return NULL;
}

static int cmp_long(const void *a, const void *b)
{
    long x = *(const long *)a, y = *(const long *)b;
    return x < y ? -1 : x > y;
}

int main(void)
{
    pthread_t t[THREADS];
    for (long i = 0; i < THREADS; i++)
        pthread_create(&t[i], NULL, sleeper, (void *)i);
    for (int i = 0; i < THREADS; i++)
        pthread_join(t[i], NULL);
    static long all[THREADS * WAKES];
    size_t n = 0;
    for (int i = 0; i < THREADS; i++)
        for (int k = 0; k < WAKES; k++)
            all[n++] = late[i][k];
    qsort(all, n, sizeof(all[0]), cmp_long);
    printf("timer lateness us: p50 %ld p99 %ld p999 %ld max %ld\n", all[n / 2] / 1000,
           all[n * 99 / 100] / 1000, all[n * 999 / 1000] / 1000, all[n - 1] / 1000);
    return 0;
}
