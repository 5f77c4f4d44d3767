/* The process's UNIQ_KEY generator (declared in msgid.h), shared by the
 * broker (messages that arrive without a UNIQ_KEY) and the client library.
 *
 * The only part of src/protocol that reads the clock and keeps state: a
 * pid and a random instance hash fixed at first use, and a counter that
 * starts at a random value and wraps at 16 bits. The time field is
 * milliseconds since 00:00 local time on the 1st of the current month;
 * localtime_r/mktime take a glibc lock and stat /etc/localtime, so each
 * thread caches the current month's [start, end) and recomputes only when
 * the clock leaves it. Thread-safe: pthread_once for the setup, an atomic
 * counter, thread-local month bounds. */
#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "protocol/msgid.h"

static pthread_once_t gen_once = PTHREAD_ONCE_INIT;
static uint16_t gen_pid;
static int32_t gen_hash;
static _Atomic uint32_t gen_counter;

static void gen_init(void)
{
    gen_pid = (uint16_t)getpid();
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    unsigned seed = (unsigned)(ts.tv_nsec ^ (ts.tv_sec << 8) ^ getpid());
    gen_hash = (int32_t)rand_r(&seed) ^ (int32_t)((uint32_t)rand_r(&seed) << 16);
    atomic_store(&gen_counter, (uint32_t)rand_r(&seed));
}

static int64_t month_start(time_t now, int add_months)
{
    struct tm tm;
    localtime_r(&now, &tm);
    tm.tm_mday = 1;
    tm.tm_mon += add_months;
    tm.tm_hour = tm.tm_min = tm.tm_sec = 0;
    tm.tm_isdst = -1;
    return (int64_t)mktime(&tm);
}

static int32_t ms_in_month(void)
{
    static __thread int64_t start, end;
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    time_t now = ts.tv_sec;
    if ((int64_t)now < start || (int64_t)now >= end) {
        start = month_start(now, 0);
        end = month_start(now, 1);
    }
    return (int32_t)(((int64_t)now - start) * 1000 + ts.tv_nsec / 1000000);
}

void apg_msgid_uniq_new(const uint8_t ip4[4], char out[33])
{
    pthread_once(&gen_once, gen_init);
    struct apg_uniq_id u;
    memcpy(u.ui_ip, ip4, 4);
    u.ui_ip_len = 4;
    u.ui_pid = gen_pid;
    u.ui_hash = gen_hash;
    u.ui_time = ms_in_month();
    u.ui_counter = (uint16_t)atomic_fetch_add(&gen_counter, 1);
    apg_msgid_uniq_encode(&u, out, 33);
}
