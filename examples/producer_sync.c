/* Sync producer example: sends COUNT messages and prints one line per result.
 *
 *   producer_sync NAMESRV TOPIC COUNT [BODY_SIZE] [TAG]
 *
 * Output: "SENT <msgId> <broker> <queueId> <queueOffset>" per message, then
 * "DONE sent=<n> failed=<n>". A failed send prints "ERROR <APG_E name> <broker response code>
 * <message>" (exit status 1). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <apogee/apogee.h>

int main(int argc, char **argv)
{
    if (argc < 4) {
        fprintf(stderr, "usage: %s NAMESRV TOPIC COUNT [BODY_SIZE] [TAG]\n", argv[0]);
        return 2;
    }
    int count = atoi(argv[3]);
    size_t size = argc > 4 ? (size_t)atol(argv[4]) : 0;
    const char *tag = argc > 5 ? argv[5] : NULL;
    char err[512];
    apg_conf_t *conf = apg_conf_new();
    apg_producer_t *p = NULL;
    if (apg_conf_set(conf, "namesrvAddr", argv[1], err, sizeof(err)) == APG_OK &&
        apg_conf_set(conf, "sendMsgTimeout", "3000", err, sizeof(err)) == APG_OK)
        p = apg_producer_new(conf, err, sizeof(err));
    apg_conf_destroy(conf); /* the producer keeps its own copy */
    if (p == NULL) {
        printf("ERROR new %s\n", err);
        return 1;
    }
    int sent = 0, failed = 0;
    for (int i = 0; i < count; i++) {
        char text[64];
        int tl = snprintf(text, sizeof(text), "msg-%d", i);
        char *body = size > (size_t)tl ? calloc(1, size) : NULL;
        if (body) {
            memset(body, 'x', size);
            memcpy(body, text, (size_t)tl);
        }
        apg_message_t *m = apg_message_new(argv[2], body ? body : text, body ? size : (size_t)tl);
        free(body);
        if (tag)
            apg_message_set_tags(m, tag);
        apg_message_set_keys(m, text);
        apg_send_result_t r = {0};
        apg_err_t e = apg_producer_send(p, m, &r, err, sizeof(err));
        if (e == APG_OK) {
            sent++;
            printf("SENT %s %s %d %lld\n", r.sr_msg_id, r.sr_mq.mq_broker, r.sr_mq.mq_queue_id,
                   (long long)r.sr_queue_offset);
        } else {
            failed++;
            printf("ERROR %s %d %s\n", apg_err_name(e), r.sr_broker_code, err);
        }
        apg_message_free(m);
    }
    printf("DONE sent=%d failed=%d\n", sent, failed);
    apg_producer_destroy(p);
    return failed ? 1 : 0;
}
