/* The TCP transport: the apg_net_transport table over a libuv TCP handle.
 *
 * Design: a thin layer. Reads go straight into the connection's input
 * buffer (the alloc callback asks apg_net_conn_rbuf for the space), so a
 * frame is read without a copy; writes are uv_try_write first and uv_write
 * for the rest, with the connection's one uv_write_t. TCP_NODELAY is set on
 * every connection (request/response traffic; batching happens above, one
 * write per connection per loop iteration).
 *
 * Threads: the connection's loop thread only. */
#include <netinet/in.h>
#include <stdio.h>

#include "net/net_int.h"

static apg_err_t tcp_init(struct apg_conn *c)
{
    if (uv_tcp_init(&c->c_loop->l_uv, &c->c_tcp))
        return APG_ENOMEM;
    c->c_tcp.data = c;
    return APG_OK;
}

static apg_err_t tcp_accept(struct apg_conn *c, uv_stream_t *listener)
{
    if (uv_accept(listener, (uv_stream_t *)&c->c_tcp))
        return APG_EIO;
    uv_tcp_nodelay(&c->c_tcp, 1);
    return APG_OK;
}

static void on_connect(uv_connect_t *req, int status)
{
    struct apg_conn *c = req->data;
    void (*done)(struct apg_conn *, int) = c->c_connect_done;
    if (status == 0)
        uv_tcp_nodelay(&c->c_tcp, 1);
    done(c, status);
}

static int tcp_connect(struct apg_conn *c, const struct sockaddr *sa,
                       void (*done)(struct apg_conn *c, int status))
{
    c->c_creq.data = c;
    c->c_connect_done = done;
    return uv_tcp_connect(&c->c_creq, &c->c_tcp, sa, on_connect);
}

static void on_alloc(uv_handle_t *h, size_t suggested, uv_buf_t *buf)
{
    uint8_t *p;
    size_t cap;
    if (apg_net_conn_rbuf(h->data, &p, &cap))
        *buf = uv_buf_init(NULL, 0);
    else
        *buf = uv_buf_init((char *)p, (unsigned)cap);
}

static void on_read(uv_stream_t *s, ssize_t nread, const uv_buf_t *buf)
{
    apg_net_conn_rdone(s->data, nread);
}

static apg_err_t tcp_read_start(struct apg_conn *c)
{
    return uv_read_start((uv_stream_t *)&c->c_tcp, on_alloc, on_read) ? APG_EIO : APG_OK;
}

static void tcp_read_stop(struct apg_conn *c)
{
    uv_read_stop((uv_stream_t *)&c->c_tcp);
}

static int tcp_try_writev(struct apg_conn *c, const uv_buf_t *bufs, unsigned n)
{
    return uv_try_write((uv_stream_t *)&c->c_tcp, bufs, n);
}

static void on_write(uv_write_t *req, int status)
{
    apg_net_conn_wdone(req->data, status);
}

static int tcp_writev(struct apg_conn *c, const uv_buf_t *bufs, unsigned n)
{
    c->c_wreq.data = c;
    return uv_write(&c->c_wreq, (uv_stream_t *)&c->c_tcp, bufs, n, on_write);
}

static size_t tcp_write_queued(const struct apg_conn *c)
{
    return uv_stream_get_write_queue_size((const uv_stream_t *)&c->c_tcp);
}

static void on_closed(uv_handle_t *h)
{
    apg_net_conn_closed(h->data);
}

static void tcp_close(struct apg_conn *c)
{
    if (!uv_is_closing((uv_handle_t *)&c->c_tcp))
        uv_close((uv_handle_t *)&c->c_tcp, on_closed);
}

static void tcp_peer(struct apg_conn *c, char *buf, size_t len)
{
    struct sockaddr_storage ss;
    int sl = sizeof(ss);
    if (uv_tcp_getpeername(&c->c_tcp, (struct sockaddr *)&ss, &sl) != 0)
        return;
    char ip[INET6_ADDRSTRLEN] = "";
    int port = 0;
    if (ss.ss_family == AF_INET6) {
        uv_ip6_name((struct sockaddr_in6 *)&ss, ip, sizeof(ip));
        port = ntohs(((struct sockaddr_in6 *)&ss)->sin6_port);
    } else {
        uv_ip4_name((struct sockaddr_in *)&ss, ip, sizeof(ip));
        port = ntohs(((struct sockaddr_in *)&ss)->sin_port);
    }
    snprintf(buf, len, "%s:%d", ip, port);
}

const struct apg_net_transport apg_net_tcp = {
    .tr_name = "tcp",
    .tr_init = tcp_init,
    .tr_accept = tcp_accept,
    .tr_connect = tcp_connect,
    .tr_read_start = tcp_read_start,
    .tr_read_stop = tcp_read_stop,
    .tr_try_writev = tcp_try_writev,
    .tr_writev = tcp_writev,
    .tr_write_queued = tcp_write_queued,
    .tr_close = tcp_close,
    .tr_peer = tcp_peer,
};
