/* Codec interface: how a connection's bytes become messages and where the
 * messages go.
 *
 * The connection code (net.c) owns buffers, back-pressure and the read
 * loop; a codec owns the wire format above the transport. For each read the
 * connection asks the codec where the next message ends (cd_frame), has it
 * decoded into the loop's decode state (cd_decode, no allocation once warm)
 * and hands it on (cd_dispatch) while the bytes are still in the input
 * buffer, so a message is neither copied nor passed to another thread on
 * the way. Output goes the other way through apg_net_conn_out /
 * apg_net_conn_out_done: the codec appends encoded bytes to the
 * connection's output buffer and the loop writes each connection once per
 * iteration.
 *
 * RocketMQ remoting (remoting_codec.c): its requests go to the server's
 * on_request, its responses to the request waiting with the same opaque.
 * HTTP/2 (h2_codec.c) cuts frames only and hands each to the server's
 * on_message, where the application keeps its HTTP/2 session.
 *
 * Threads: every function runs on the connection's (or loop's) thread. */
#ifndef APG_NET_CODEC_H
#define APG_NET_CODEC_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "common/err.h"

struct apg_conn;
struct apg_net_loop;

struct apg_net_codec {
    const char *cd_name; /* "remoting" */
    /* Per-loop state (decode area, waiting requests), made before the loop
     * thread starts and freed after it ended. Both required; a codec
     * without state sets *state = NULL. */
    apg_err_t (*cd_loop_new)(struct apg_net_loop *l, void **state);
    void (*cd_loop_free)(void *state);
    /* Where the first message of buf[0..len) ends: APG_OK with *mlen = 0
     * when more bytes are needed, with *mlen = N when the first N bytes are
     * one whole message; an error (with err) closes the connection. */
    apg_err_t (*cd_frame)(const uint8_t *buf, size_t len, size_t max_msg, size_t *mlen, char *err,
                          size_t errlen);
    /* The whole length of the message whose start is buffered, when known
     * and larger than what is buffered (the next read makes room for it);
     * 0 otherwise. Optional. */
    size_t (*cd_read_hint)(const uint8_t *buf, size_t len, size_t max_msg);
    /* Decodes one whole message into the loop's state. *msg borrows state
     * and buf until the next call. APG_ENOMEM or a decode error (with err)
     * closes the connection. */
    apg_err_t (*cd_decode)(void *state, const uint8_t *buf, size_t len, void **msg, char *err,
                           size_t errlen);
    /* Hands a decoded message on. Returns true when it was a request given
     * to the application (counted for busy polling and on_read_end). */
    bool (*cd_dispatch)(struct apg_conn *c, void *msg);
    /* c is closing: whatever waits on it fails with err. Optional. */
    void (*cd_conn_close)(struct apg_conn *c, apg_err_t err);
    /* The loop's deadline timer fired (see apg_net_loop_watch_deadlines):
     * fails what expired by now (uv_now ms) and returns how many still
     * wait (0 stops the timer). Optional. */
    size_t (*cd_expire)(struct apg_net_loop *l, uint64_t now);
};

extern const struct apg_net_codec apg_net_remoting;
/* HTTP/2 (h2c): cuts the client connection preface and each frame and
 * hands them to the server's on_message (net/h2_codec.c). */
extern const struct apg_net_codec apg_net_h2;

#endif
