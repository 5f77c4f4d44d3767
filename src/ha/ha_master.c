/* The master side of replication: haListenPort and every slave connected
 * to it, served by one thread.
 *
 * After every report and every connection change the thread tells the
 * store how many slaves there are and how far the furthest has confirmed
 * (apg_store_replica_progress): a SYNC_MASTER's sends wait on that.
 *
 * Per connection the thread waits for the slave's first report (the end of
 * its commit log), then streams the log from there: each frame carries up
 * to haTransferBatchSize bytes read with apg_store_log_read (never across a
 * segment's end), and after haSendHeartbeatInterval without data a frame of
 * size 0 at the next offset. Later reports only update what the slave has
 * acknowledged (shown in GET_BROKER_RUNTIME_INFO); the stream goes on from
 * where the master got to, as RocketMQ's HAConnection does. A slave whose
 * first report lies past the end of this log has a log this master never
 * wrote: it gets one heartbeat naming this log's end (the slave refuses to
 * append and says so) and the connection is closed. A slave that sends
 * nothing for haHousekeepingInterval, or a report that does not decode, is
 * closed with a WARN line; the broker goes on serving.
 *
 * A fresh slave (report 0) gets the log from its first retained byte, so it
 * holds every message the master still holds (RocketMQ's master starts such
 * a slave at its newest segment instead).
 *
 * Threads: one, started by apg_ha_master_start. Sockets are non-blocking
 * and multiplexed with poll(); the thread sleeps in poll() until a report,
 * a heartbeat or housekeeping deadline, or apg_ha_master_notify (an eventfd
 * written only when the thread announced it sleeps). hm_lock guards the
 * connection array and the offsets readers copy (apg_ha_master_slaves);
 * the thread is the only writer. */
#define _GNU_SOURCE
#include "ha/ha.h"

#include <errno.h>
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

#include <arpa/inet.h>

#include "common/clock.h"
#include "common/log.h"
#include "common/mem.h"
#include "store/store.h"

#define SUB "ha"
#define MAX_SLAVES 16

struct hconn {
    int mc_fd;
    char mc_addr[64];
    uint8_t mc_in[4 * APG_HA_REPORT_LEN];
    size_t mc_in_len;
    int64_t mc_req;  /* first report: where streaming starts; -1 until it arrives */
    int64_t mc_ack;  /* last report (hm_lock for readers) */
    int64_t mc_next; /* next offset to send; -1 until decided (hm_lock for readers) */
    uint8_t *mc_out; /* the frame being written: header + body */
    size_t mc_out_len, mc_out_off;
    bool mc_close_after; /* close once mc_out is written (diverged slave) */
    int64_t mc_last_read_ms, mc_last_write_ms;
};

struct apg_ha_master {
    struct apg_store *hm_st;
    struct apg_ha_master_opts hm_o;
    int hm_lfd, hm_efd;
    pthread_t hm_thr;
    bool hm_thr_started;
    _Atomic bool hm_stop;
    _Atomic bool hm_sleeping;
    pthread_mutex_t hm_lock;
    struct hconn *hm_conns[MAX_SLAVES];
    int hm_nconns;
    struct apg_log_limit hm_warn_limit;
};

/* Tells the store how many slaves there are and how far the furthest has
 * reported (SYNC_MASTER waits on it). HA thread, after any change. */
static void progress(struct apg_ha_master *m)
{
    int64_t best = -1;
    for (int i = 0; i < m->hm_nconns; i++)
        if (m->hm_conns[i]->mc_ack > best)
            best = m->hm_conns[i]->mc_ack;
    apg_store_replica_progress(m->hm_st, m->hm_nconns, best);
}

static void conn_close(struct apg_ha_master *m, int i, const char *why)
{
    struct hconn *c = m->hm_conns[i];
    if (why)
        apg_log_warn(SUB, "closing HA connection of slave %s: %s", c->mc_addr, why);
    else
        apg_log_info(SUB, "slave %s disconnected", c->mc_addr);
    pthread_mutex_lock(&m->hm_lock);
    m->hm_conns[i] = m->hm_conns[--m->hm_nconns];
    m->hm_conns[m->hm_nconns] = NULL;
    pthread_mutex_unlock(&m->hm_lock);
    close(c->mc_fd);
    apg_free(c->mc_out);
    apg_free(c);
    progress(m);
}

static void do_accept(struct apg_ha_master *m, int64_t now)
{
    for (;;) {
        struct sockaddr_storage sa;
        socklen_t sl = sizeof(sa);
        int fd = accept4(m->hm_lfd, (struct sockaddr *)&sa, &sl, SOCK_NONBLOCK | SOCK_CLOEXEC);
        if (fd < 0)
            return;
        char host[48] = "?", addr[64];
        int port = 0;
        if (sa.ss_family == AF_INET) {
            struct sockaddr_in *s4 = (struct sockaddr_in *)&sa;
            inet_ntop(AF_INET, &s4->sin_addr, host, sizeof(host));
            port = ntohs(s4->sin_port);
        } else if (sa.ss_family == AF_INET6) {
            struct sockaddr_in6 *s6 = (struct sockaddr_in6 *)&sa;
            inet_ntop(AF_INET6, &s6->sin6_addr, host, sizeof(host));
            port = ntohs(s6->sin6_port);
        }
        snprintf(addr, sizeof(addr), "%s:%d", host, port);
        struct hconn *c = NULL;
        if (m->hm_nconns >= MAX_SLAVES || !(c = apg_calloc(1, sizeof(*c))) ||
            !(c->mc_out = apg_malloc(APG_HA_HEADER_LEN + m->hm_o.hm_batch))) {
            apg_log_warn(SUB, "refusing HA connection from %s: %s", addr,
                         c ? "out of memory" : "16 slaves are connected already");
            if (c)
                apg_free(c);
            close(fd);
            continue;
        }
        int one = 1;
        setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
        c->mc_fd = fd;
        snprintf(c->mc_addr, sizeof(c->mc_addr), "%s", addr);
        c->mc_req = -1;
        c->mc_ack = -1;
        c->mc_next = -1;
        c->mc_last_read_ms = now;
        c->mc_last_write_ms = now;
        pthread_mutex_lock(&m->hm_lock);
        m->hm_conns[m->hm_nconns++] = c;
        pthread_mutex_unlock(&m->hm_lock);
        apg_log_info(SUB, "slave %s connected", addr);
    }
}

/* After a recv or send that returned < 0: 1 to try again (EINTR), 0 when
 * it would block (the connection is fine), -1 when it broke (*why). */
static int io_failed(const char **why)
{
    if (errno == EINTR)
        return 1;
    if (errno == EAGAIN || errno == EWOULDBLOCK)
        return 0;
    *why = strerror(errno);
    return -1;
}

/* Reads the slave's reports. Returns false when the connection must close
 * (*why set, NULL for an orderly close by the slave). */
static bool conn_read(struct apg_ha_master *m, struct hconn *c, int64_t now, const char **why)
{
    for (;;) {
        ssize_t n = recv(c->mc_fd, c->mc_in + c->mc_in_len, sizeof(c->mc_in) - c->mc_in_len, 0);
        if (n == 0) {
            *why = NULL;
            return false;
        }
        if (n < 0) {
            int v = io_failed(why);
            if (v > 0)
                continue;
            return v == 0;
        }
        c->mc_in_len += (size_t)n;
        c->mc_last_read_ms = now;
        int64_t off;
        size_t used;
        apg_err_t rc = apg_ha_report_decode(c->mc_in, c->mc_in_len, &off, &used);
        if (rc == APG_EINVAL) {
            *why = "the slave reported a negative commit-log offset (not an HA client?)";
            return false;
        }
        if (rc == APG_OK) {
            memmove(c->mc_in, c->mc_in + used, c->mc_in_len - used);
            c->mc_in_len -= used;
            pthread_mutex_lock(&m->hm_lock);
            c->mc_ack = off;
            if (c->mc_req < 0)
                c->mc_req = off;
            pthread_mutex_unlock(&m->hm_lock);
            progress(m);
        }
    }
}

/* Writes what is pending of the current frame. false: close (*why). */
static bool conn_flush(struct hconn *c, int64_t now, const char **why)
{
    while (c->mc_out_off < c->mc_out_len) {
        ssize_t n =
            send(c->mc_fd, c->mc_out + c->mc_out_off, c->mc_out_len - c->mc_out_off, MSG_NOSIGNAL);
        if (n < 0) {
            int v = io_failed(why);
            if (v > 0)
                continue;
            return v == 0;
        }
        c->mc_out_off += (size_t)n;
        c->mc_last_write_ms = now;
    }
    c->mc_out_off = c->mc_out_len = 0;
    return true;
}

/* Prepares the next frame of an idle connection: data when the log has
 * more, a heartbeat when it is due. false: close (*why). */
static bool conn_fill(struct apg_ha_master *m, struct hconn *c, int64_t now, const char **why,
                      char *whybuf, size_t whylen)
{
    if (c->mc_req < 0 || c->mc_out_len > 0 || c->mc_close_after)
        return true;
    int64_t max = apg_store_log_max_offset(m->hm_st);
    int64_t min = apg_store_log_min_offset(m->hm_st);
    if (c->mc_next < 0) {
        int64_t next = c->mc_req == 0 ? min : c->mc_req;
        if (next > max) {
            /* The slave holds bytes this master never wrote. */
            int64_t quiet = 0;
            if (apg_log_limit_hit(&m->hm_warn_limit, now, 60000, &quiet))
                apg_log_warn(SUB,
                             "slave %s reports its commit log ends at %lld, past this master's "
                             "end %lld: the logs have diverged (the slave refuses to append); "
                             "move the slave's store away to copy this master afresh",
                             c->mc_addr, (long long)c->mc_req, (long long)max);
            apg_ha_frame_header(c->mc_out, max, 0);
            c->mc_out_len = APG_HA_HEADER_LEN;
            c->mc_close_after = true;
            return true;
        }
        if (next < min) {
            snprintf(whybuf, whylen,
                     "the slave asks for offset %lld, but this master's commit log now starts at "
                     "%lld (older segments were deleted): move the slave's store away to copy "
                     "this master afresh",
                     (long long)next, (long long)min);
            *why = whybuf;
            return false;
        }
        pthread_mutex_lock(&m->hm_lock);
        c->mc_next = next;
        pthread_mutex_unlock(&m->hm_lock);
        apg_log_info(SUB, "streaming the commit log to slave %s from offset %lld", c->mc_addr,
                     (long long)next);
    }
    size_t n = 0;
    apg_err_t rc = APG_OK;
    if (c->mc_next < max)
        rc = apg_store_log_read(m->hm_st, c->mc_next, c->mc_out + APG_HA_HEADER_LEN,
                                m->hm_o.hm_batch, &n);
    if (rc) {
        snprintf(whybuf, whylen, "commit-log offset %lld is no longer in this master's log (%s)",
                 (long long)c->mc_next, apg_strerror(rc));
        *why = whybuf;
        return false;
    }
    if (n > 0) {
        apg_ha_frame_header(c->mc_out, c->mc_next, (uint32_t)n);
        c->mc_out_len = APG_HA_HEADER_LEN + n;
        pthread_mutex_lock(&m->hm_lock);
        c->mc_next += (int64_t)n;
        pthread_mutex_unlock(&m->hm_lock);
    } else if (now - c->mc_last_write_ms >= m->hm_o.hm_heartbeat_ms) {
        apg_ha_frame_header(c->mc_out, c->mc_next, 0);
        c->mc_out_len = APG_HA_HEADER_LEN;
    }
    return true;
}

static void *master_main(void *arg)
{
    struct apg_ha_master *m = arg;
    struct pollfd pfd[MAX_SLAVES + 2];
    char whybuf[320];
    while (!atomic_load(&m->hm_stop)) {
        int64_t now = apg_mono_ms();
        /* Serve every connection: data or heartbeats out, housekeeping. */
        int timeout = 1000;
        for (int i = 0; i < m->hm_nconns;) {
            struct hconn *c = m->hm_conns[i];
            const char *why = NULL;
            bool ok =
                conn_fill(m, c, now, &why, whybuf, sizeof(whybuf)) && conn_flush(c, now, &why);
            if (ok && c->mc_close_after && c->mc_out_len == 0) {
                ok = false;
                why = "its commit log is ahead of this master's (diverged)";
            }
            if (ok && now - c->mc_last_read_ms > m->hm_o.hm_housekeeping_ms) {
                snprintf(whybuf, sizeof(whybuf),
                         "nothing received for %lld ms (haHousekeepingInterval=%d)",
                         (long long)(now - c->mc_last_read_ms), m->hm_o.hm_housekeeping_ms);
                why = whybuf;
                ok = false;
            }
            if (!ok) {
                conn_close(m, i, why);
                continue;
            }
            if (c->mc_out_len == 0 && c->mc_next >= 0 &&
                c->mc_next < apg_store_log_max_offset(m->hm_st))
                timeout = 0; /* more to send at once */
            /* Heartbeats go only to a slave that reported (a silent peer
             * gets none, and must not keep this thread spinning). */
            int64_t hb = c->mc_last_write_ms + m->hm_o.hm_heartbeat_ms - now;
            if (c->mc_req >= 0 && !c->mc_close_after && hb < timeout)
                timeout = hb < 0 ? 0 : (int)hb;
            i++;
        }
        int n = 0;
        pfd[n++] = (struct pollfd){.fd = m->hm_efd, .events = POLLIN};
        pfd[n++] = (struct pollfd){.fd = m->hm_lfd, .events = POLLIN};
        for (int i = 0; i < m->hm_nconns; i++)
            pfd[n++] = (struct pollfd){
                .fd = m->hm_conns[i]->mc_fd,
                .events = (short)(POLLIN | (m->hm_conns[i]->mc_out_len ? POLLOUT : 0)),
            };
        if (timeout > 0) {
            /* Announce the sleep, then look again: a put that published
             * before the announcement is seen here, one after it writes
             * the eventfd. */
            atomic_store(&m->hm_sleeping, true);
            int64_t max = apg_store_log_max_offset(m->hm_st);
            for (int i = 0; i < m->hm_nconns; i++)
                if (m->hm_conns[i]->mc_out_len == 0 && m->hm_conns[i]->mc_next >= 0 &&
                    m->hm_conns[i]->mc_next < max)
                    timeout = 0;
        }
        int pr = poll(pfd, (nfds_t)n, timeout);
        atomic_store(&m->hm_sleeping, false);
        if (pr < 0 && errno != EINTR) {
            apg_log_error(SUB, "poll: %s", strerror(errno));
            break;
        }
        now = apg_mono_ms();
        if (pfd[0].revents & POLLIN) {
            uint64_t v;
            if (read(m->hm_efd, &v, sizeof(v)) < 0 && errno != EAGAIN)
                apg_log_debug(SUB, "eventfd read: %s", strerror(errno));
        }
        if (pfd[1].revents & POLLIN)
            do_accept(m, now);
        /* Connections in pfd[2..n) are the first n - 2 of hm_conns (accept
         * only appends). Walk backwards so a close does not move an
         * unvisited one. */
        for (int i = n - 3; i >= 0; i--) {
            short ev = pfd[i + 2].revents;
            if (!ev)
                continue;
            struct hconn *c = m->hm_conns[i];
            const char *why = NULL;
            bool ok = true;
            if (ev & (POLLIN | POLLHUP | POLLERR))
                ok = conn_read(m, c, now, &why);
            if (ok && (ev & POLLOUT))
                ok = conn_flush(c, now, &why);
            if (!ok)
                conn_close(m, i, why);
        }
    }
    while (m->hm_nconns > 0)
        conn_close(m, m->hm_nconns - 1, NULL);
    return NULL;
}

apg_err_t apg_ha_master_start(struct apg_store *st, const struct apg_ha_master_opts *o,
                              struct apg_ha_master **out, char *err, size_t errlen)
{
    *out = NULL;
    struct apg_ha_master *m = apg_calloc(1, sizeof(*m));
    if (!m)
        return apg_errf(APG_ENOMEM, err, errlen, "out of memory");
    m->hm_st = st;
    m->hm_o = *o;
    m->hm_o.hm_host = NULL;
    m->hm_lfd = -1;
    pthread_mutex_init(&m->hm_lock, NULL);
    m->hm_efd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
    apg_err_t rc = APG_OK;
    if (m->hm_efd < 0) {
        rc = apg_errf(APG_EIO, err, errlen, "eventfd: %s", strerror(errno));
        goto fail;
    }
    char port[16];
    snprintf(port, sizeof(port), "%d", o->hm_port);
    struct addrinfo hints = {.ai_family = AF_UNSPEC,
                             .ai_socktype = SOCK_STREAM,
                             .ai_flags = AI_PASSIVE | AI_NUMERICSERV};
    struct addrinfo *ai = NULL;
    const char *host = o->hm_host && o->hm_host[0] ? o->hm_host : NULL;
    int gr = getaddrinfo(host, port, &hints, &ai);
    if (gr != 0 || !ai) {
        rc = apg_errf(APG_ECONFIG, err, errlen, "HA listener: cannot resolve %s: %s",
                      host ? host : "*", gai_strerror(gr));
        goto fail;
    }
    m->hm_lfd = socket(ai->ai_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    int one = 1;
    if (m->hm_lfd >= 0)
        setsockopt(m->hm_lfd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
    if (m->hm_lfd < 0 || bind(m->hm_lfd, ai->ai_addr, ai->ai_addrlen) != 0 ||
        listen(m->hm_lfd, 16) != 0) {
        rc = apg_errf(APG_ECONFIG, err, errlen,
                      "cannot listen on %s:%d for slaves: %s (pick another with --haListenPort)",
                      host ? host : "*", o->hm_port, strerror(errno));
        freeaddrinfo(ai);
        goto fail;
    }
    freeaddrinfo(ai);
    if (pthread_create(&m->hm_thr, NULL, master_main, m) != 0) {
        rc = apg_errf(APG_ENOMEM, err, errlen, "cannot start the HA thread");
        goto fail;
    }
    m->hm_thr_started = true;
    apg_log_info(SUB, "master: slaves stream the commit log from port %d", o->hm_port);
    *out = m;
    return APG_OK;
fail:
    apg_ha_master_stop(m);
    return rc;
}

void apg_ha_master_notify(struct apg_ha_master *m)
{
    if (!m || !atomic_load_explicit(&m->hm_sleeping, memory_order_relaxed))
        return;
    if (atomic_exchange(&m->hm_sleeping, false)) {
        uint64_t one = 1;
        if (write(m->hm_efd, &one, sizeof(one)) < 0 && errno != EAGAIN)
            apg_log_debug(SUB, "eventfd write: %s", strerror(errno));
    }
}

void apg_ha_master_stop(struct apg_ha_master *m)
{
    if (!m)
        return;
    atomic_store(&m->hm_stop, true);
    if (m->hm_thr_started) {
        uint64_t one = 1;
        if (write(m->hm_efd, &one, sizeof(one)) < 0)
            apg_log_debug(SUB, "eventfd write: %s", strerror(errno));
        pthread_join(m->hm_thr, NULL);
    }
    if (m->hm_lfd >= 0)
        close(m->hm_lfd);
    if (m->hm_efd >= 0)
        close(m->hm_efd);
    pthread_mutex_destroy(&m->hm_lock);
    apg_free(m);
}

int apg_ha_master_slaves(struct apg_ha_master *m, struct apg_ha_slave_info *out, int cap)
{
    if (!m)
        return 0;
    pthread_mutex_lock(&m->hm_lock);
    int n = m->hm_nconns;
    for (int i = 0; i < n && i < cap; i++) {
        snprintf(out[i].hs_addr, sizeof(out[i].hs_addr), "%s", m->hm_conns[i]->mc_addr);
        out[i].hs_ack_offset = m->hm_conns[i]->mc_ack;
        out[i].hs_sent_offset = m->hm_conns[i]->mc_next;
    }
    pthread_mutex_unlock(&m->hm_lock);
    return n;
}
