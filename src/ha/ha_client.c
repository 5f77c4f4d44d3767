/* The slave side of replication: one thread that keeps a connection to the
 * master's haListenPort and appends what arrives to this store.
 *
 * On connect the thread reports the end of this store's commit log; the
 * master streams from there. Each frame must start where the stream so far
 * ends (this log's end plus the bytes of a partial record held back); a
 * frame anywhere else means the two logs differ, and the connection is
 * closed with a WARN line naming both offsets: a master behind this slave
 * (the slave holds bytes the master never wrote, "diverged") is never
 * appended to, because RocketMQ 4.x does not truncate a slave either and
 * truncating would drop messages a consumer may have read. A frame that
 * does not decode, or bytes the store refuses (a bad record, a CRC that
 * does not match), close the connection the same way. The thread then
 * waits a second and connects again: the broker keeps serving pulls from
 * what it holds all along.
 *
 * The body of each frame is handed to apg_store_replica_append, which takes
 * whole records (up to 64 per call) and leaves a partial one at the end;
 * that tail waits in hc_pend for the next frame. After each frame that
 * added records the new end is reported at once, and at least every
 * haSendHeartbeatInterval otherwise; nothing received for
 * haHousekeepingInterval closes the connection.
 *
 * Threads: one, started by apg_ha_client_start; apg_ha_client_set_master
 * and apg_ha_client_stats from any thread under hc_lock; the eventfd wakes
 * the thread for a new address or a stop. */
#define _GNU_SOURCE
#include "ha/ha.h"

#include <errno.h>
#include <fcntl.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <unistd.h>

#include "common/buf.h"
#include "common/clock.h"
#include "common/log.h"
#include "common/mem.h"
#include "store/store.h"

#define SUB "ha"
#define RECONNECT_MS 1000
#define CONNECT_TIMEOUT_MS 3000

struct apg_ha_client {
    struct apg_store *hc_st;
    struct apg_ha_client_opts hc_o;
    int hc_efd;
    pthread_t hc_thr;
    bool hc_thr_started;
    _Atomic bool hc_stop;
    pthread_mutex_t hc_lock; /* hc_master, hc_addr_gen, hc_stats */
    char hc_master[128];
    uint64_t hc_addr_gen;
    struct apg_ha_client_stats hc_stats;
    /* HA thread only */
    struct apg_buf hc_in;   /* bytes read, not yet decoded into frames */
    struct apg_buf hc_pend; /* a partial record held back, starting at hc_pend_at */
    int64_t hc_pend_at;
    char hc_last_warn[320]; /* repeated connect failures are logged once */
};

static void wait_ms(struct apg_ha_client *c, int ms)
{
    struct pollfd p = {.fd = c->hc_efd, .events = POLLIN};
    if (poll(&p, 1, ms) > 0) {
        uint64_t v;
        if (read(c->hc_efd, &v, sizeof(v)) < 0)
            apg_log_debug(SUB, "eventfd read: %s", strerror(errno));
    }
}

static int dial(const char *addr, char *err, size_t errlen)
{
    char host[128];
    const char *colon = strrchr(addr, ':');
    if (!colon || colon == addr || (size_t)(colon - addr) >= sizeof(host)) {
        apg_errf(APG_EINVAL, err, errlen, "HA address %s is not host:port", addr);
        return -1;
    }
    memcpy(host, addr, (size_t)(colon - addr));
    host[colon - addr] = '\0';
    struct addrinfo hints = {.ai_family = AF_UNSPEC, .ai_socktype = SOCK_STREAM}, *ai = NULL;
    int gr = getaddrinfo(host, colon + 1, &hints, &ai);
    if (gr != 0 || !ai) {
        apg_errf(APG_EINVAL, err, errlen, "cannot resolve %s: %s", addr, gai_strerror(gr));
        return -1;
    }
    int fd = socket(ai->ai_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0) {
        apg_errf(APG_EIO, err, errlen, "socket: %s", strerror(errno));
        freeaddrinfo(ai);
        return -1;
    }
    int rc = connect(fd, ai->ai_addr, ai->ai_addrlen);
    freeaddrinfo(ai);
    if (rc != 0 && errno == EINPROGRESS) {
        struct pollfd p = {.fd = fd, .events = POLLOUT};
        int soerr = 0;
        socklen_t sl = sizeof(soerr);
        if (poll(&p, 1, CONNECT_TIMEOUT_MS) <= 0)
            soerr = ETIMEDOUT;
        else
            getsockopt(fd, SOL_SOCKET, SO_ERROR, &soerr, &sl);
        rc = soerr ? -1 : 0;
        errno = soerr;
    }
    if (rc != 0) {
        apg_errf(APG_EIO, err, errlen, "cannot connect to master %s: %s", addr, strerror(errno));
        close(fd);
        return -1;
    }
    int one = 1;
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
    return fd;
}

/* Sends the end of this store's log (8 bytes; a report never blocks for
 * long: the socket buffer holds thousands). false: the connection broke. */
static bool report(struct apg_ha_client *c, int fd, int64_t *last_write_ms)
{
    uint8_t b[APG_HA_REPORT_LEN];
    apg_ha_report_encode(b, apg_store_log_max_offset(c->hc_st));
    size_t off = 0;
    while (off < sizeof(b)) {
        ssize_t n = send(fd, b + off, sizeof(b) - off, MSG_NOSIGNAL);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
            struct pollfd p = {.fd = fd, .events = POLLOUT};
            if (poll(&p, 1, 1000) <= 0)
                return false;
            continue;
        }
        if (n <= 0)
            return false;
        off += (size_t)n;
    }
    *last_write_ms = apg_mono_ms();
    return true;
}

/* One frame: checks where it starts, appends its records. false: close
 * the connection (why filled). *added: records were appended. */
static bool on_frame(struct apg_ha_client *c, const struct apg_ha_frame *f, bool *added, char *why,
                     size_t whylen)
{
    int64_t expect = c->hc_pend_at + (int64_t)c->hc_pend.b_len;
    /* An empty log takes the stream from where the master starts it (4.x:
     * the offset check applies once the slave holds something). */
    if (f->hf_offset > expect && f->hf_size > 0 && c->hc_pend.b_len == 0 &&
        apg_store_log_min_offset(c->hc_st) == apg_store_log_max_offset(c->hc_st)) {
        c->hc_pend_at = f->hf_offset;
        expect = f->hf_offset;
    }
    if (f->hf_offset != expect) {
        if (f->hf_offset < expect)
            snprintf(why, whylen,
                     "offset mismatch: the master sends from %lld but this slave's commit log "
                     "ends at %lld: the logs have diverged (this slave holds bytes the master "
                     "does not); refusing to append. Move this slave's store away to copy the "
                     "master afresh",
                     (long long)f->hf_offset, (long long)expect);
        else
            snprintf(why, whylen,
                     "offset mismatch: the master sends from %lld but this slave's commit log "
                     "ends at %lld (a gap); refusing to append",
                     (long long)f->hf_offset, (long long)expect);
        return false;
    }
    if (f->hf_size == 0)
        return true;
    if (apg_buf_append(&c->hc_pend, f->hf_body, f->hf_size) != APG_OK) {
        snprintf(why, whylen, "out of memory");
        return false;
    }
    pthread_mutex_lock(&c->hc_lock);
    c->hc_stats.cs_bytes += f->hf_size;
    c->hc_stats.cs_last_frame_ms = apg_wall_ms();
    pthread_mutex_unlock(&c->hc_lock);
    size_t off = 0;
    while (off < c->hc_pend.b_len) {
        size_t used = 0;
        char err[384] = "";
        apg_err_t rc = apg_store_replica_append(c->hc_st, c->hc_pend_at + (int64_t)off,
                                                c->hc_pend.b_data + off, c->hc_pend.b_len - off,
                                                &used, err, sizeof(err));
        off += used;
        if (used)
            *added = true;
        if (rc) {
            snprintf(why, whylen, "the store refused the master's bytes: %s", err);
            c->hc_pend_at += (int64_t)off;
            apg_buf_consume(&c->hc_pend, off);
            return false;
        }
        if (used == 0)
            break; /* a partial record: the rest comes with the next frame */
    }
    c->hc_pend_at += (int64_t)off;
    apg_buf_consume(&c->hc_pend, off);
    return true;
}

/* One connection, until it ends. Returns the reason (why) or "" for a
 * stop or an address change. */
static void serve(struct apg_ha_client *c, int fd, uint64_t gen, char *why, size_t whylen)
{
    int64_t last_write = 0, last_read = apg_mono_ms();
    c->hc_in.b_len = 0;
    c->hc_pend.b_len = 0;
    c->hc_pend_at = apg_store_log_max_offset(c->hc_st);
    if (!report(c, fd, &last_write)) {
        snprintf(why, whylen, "cannot send the first report: %s", strerror(errno));
        return;
    }
    while (!atomic_load(&c->hc_stop)) {
        pthread_mutex_lock(&c->hc_lock);
        bool moved = c->hc_addr_gen != gen;
        pthread_mutex_unlock(&c->hc_lock);
        if (moved)
            return;
        int64_t now = apg_mono_ms();
        if (now - last_read > c->hc_o.hc_housekeeping_ms) {
            snprintf(why, whylen,
                     "nothing received from the master for %lld ms "
                     "(haHousekeepingInterval=%d)",
                     (long long)(now - last_read), c->hc_o.hc_housekeeping_ms);
            return;
        }
        if (now - last_write >= c->hc_o.hc_heartbeat_ms && !report(c, fd, &last_write)) {
            snprintf(why, whylen, "report failed: %s", strerror(errno));
            return;
        }
        int64_t t = last_write + c->hc_o.hc_heartbeat_ms - now;
        struct pollfd p[2] = {{.fd = c->hc_efd, .events = POLLIN}, {.fd = fd, .events = POLLIN}};
        if (poll(p, 2, t < 0 ? 0 : (int)t) < 0 && errno != EINTR) {
            snprintf(why, whylen, "poll: %s", strerror(errno));
            return;
        }
        if (p[0].revents & POLLIN) {
            uint64_t v;
            if (read(c->hc_efd, &v, sizeof(v)) < 0)
                apg_log_debug(SUB, "eventfd read: %s", strerror(errno));
        }
        if (!(p[1].revents & (POLLIN | POLLHUP | POLLERR)))
            continue;
        if (apg_buf_reserve(&c->hc_in, 65536) != APG_OK) {
            snprintf(why, whylen, "out of memory");
            return;
        }
        ssize_t n = recv(fd, c->hc_in.b_data + c->hc_in.b_len, c->hc_in.b_cap - c->hc_in.b_len, 0);
        if (n == 0) {
            snprintf(why, whylen, "the master closed the connection");
            return;
        }
        if (n < 0) {
            if (errno == EAGAIN || errno == EINTR)
                continue;
            snprintf(why, whylen, "recv: %s", strerror(errno));
            return;
        }
        c->hc_in.b_len += (size_t)n;
        last_read = apg_mono_ms();
        bool added = false;
        size_t off = 0;
        for (;;) {
            struct apg_ha_frame f;
            size_t used;
            char err[160] = "";
            apg_err_t rc = apg_ha_frame_decode(c->hc_in.b_data + off, c->hc_in.b_len - off,
                                               APG_HA_BODY_MAX, &f, &used, err, sizeof(err));
            if (rc == APG_EAGAIN)
                break;
            if (rc) {
                snprintf(why, whylen, "malformed frame from the master: %s", err);
                return;
            }
            off += used;
            if (!on_frame(c, &f, &added, why, whylen))
                return;
        }
        apg_buf_consume(&c->hc_in, off);
        if (added && !report(c, fd, &last_write)) {
            snprintf(why, whylen, "report failed: %s", strerror(errno));
            return;
        }
    }
}

static void *client_main(void *arg)
{
    struct apg_ha_client *c = arg;
    while (!atomic_load(&c->hc_stop)) {
        char addr[128];
        pthread_mutex_lock(&c->hc_lock);
        snprintf(addr, sizeof(addr), "%s", c->hc_master);
        uint64_t gen = c->hc_addr_gen;
        pthread_mutex_unlock(&c->hc_lock);
        if (!addr[0]) {
            wait_ms(c, RECONNECT_MS);
            continue;
        }
        char err[320] = "";
        int fd = dial(addr, err, sizeof(err));
        if (fd < 0) {
            if (strcmp(err, c->hc_last_warn) != 0)
                apg_log_warn(SUB, "slave: %s; retrying every %d ms", err, RECONNECT_MS);
            snprintf(c->hc_last_warn, sizeof(c->hc_last_warn), "%s", err);
            wait_ms(c, RECONNECT_MS);
            continue;
        }
        c->hc_last_warn[0] = '\0';
        apg_log_info(SUB, "slave: connected to master %s, reporting commit-log end %lld", addr,
                     (long long)apg_store_log_max_offset(c->hc_st));
        pthread_mutex_lock(&c->hc_lock);
        c->hc_stats.cs_connected = true;
        pthread_mutex_unlock(&c->hc_lock);
        char why[600] = "";
        serve(c, fd, gen, why, sizeof(why));
        close(fd);
        pthread_mutex_lock(&c->hc_lock);
        c->hc_stats.cs_connected = false;
        if (why[0]) {
            c->hc_stats.cs_closes++;
            snprintf(c->hc_stats.cs_last_error, sizeof(c->hc_stats.cs_last_error), "%s", why);
        }
        pthread_mutex_unlock(&c->hc_lock);
        if (why[0]) {
            apg_log_warn(SUB, "slave: closed the HA connection to master %s: %s", addr, why);
            wait_ms(c, RECONNECT_MS);
        }
    }
    return NULL;
}

apg_err_t apg_ha_client_start(struct apg_store *st, const struct apg_ha_client_opts *o,
                              struct apg_ha_client **out, char *err, size_t errlen)
{
    *out = NULL;
    struct apg_ha_client *c = apg_calloc(1, sizeof(*c));
    if (!c)
        return apg_errf(APG_ENOMEM, err, errlen, "out of memory");
    c->hc_st = st;
    c->hc_o = *o;
    pthread_mutex_init(&c->hc_lock, NULL);
    c->hc_efd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
    if (c->hc_efd < 0) {
        apg_ha_client_stop(c);
        return apg_errf(APG_EIO, err, errlen, "eventfd: %s", strerror(errno));
    }
    if (pthread_create(&c->hc_thr, NULL, client_main, c) != 0) {
        apg_ha_client_stop(c);
        return apg_errf(APG_ENOMEM, err, errlen, "cannot start the HA thread");
    }
    c->hc_thr_started = true;
    *out = c;
    return APG_OK;
}

static void wake(struct apg_ha_client *c)
{
    uint64_t one = 1;
    if (write(c->hc_efd, &one, sizeof(one)) < 0)
        apg_log_debug(SUB, "eventfd write: %s", strerror(errno));
}

void apg_ha_client_set_master(struct apg_ha_client *c, const char *addr)
{
    if (!c || !addr)
        return;
    pthread_mutex_lock(&c->hc_lock);
    bool changed = strcmp(c->hc_master, addr) != 0;
    if (changed) {
        snprintf(c->hc_master, sizeof(c->hc_master), "%s", addr);
        snprintf(c->hc_stats.cs_master, sizeof(c->hc_stats.cs_master), "%s", addr);
        c->hc_addr_gen++;
    }
    pthread_mutex_unlock(&c->hc_lock);
    if (changed) {
        apg_log_info(SUB, "slave: master's HA address is %s", addr[0] ? addr : "(none)");
        wake(c);
    }
}

void apg_ha_client_stop(struct apg_ha_client *c)
{
    if (!c)
        return;
    atomic_store(&c->hc_stop, true);
    if (c->hc_thr_started) {
        wake(c);
        pthread_join(c->hc_thr, NULL);
    }
    if (c->hc_efd >= 0)
        close(c->hc_efd);
    apg_buf_free(&c->hc_in);
    apg_buf_free(&c->hc_pend);
    pthread_mutex_destroy(&c->hc_lock);
    apg_free(c);
}

void apg_ha_client_stats(struct apg_ha_client *c, struct apg_ha_client_stats *out)
{
    memset(out, 0, sizeof(*out));
    if (!c)
        return;
    pthread_mutex_lock(&c->hc_lock);
    *out = c->hc_stats;
    pthread_mutex_unlock(&c->hc_lock);
}
