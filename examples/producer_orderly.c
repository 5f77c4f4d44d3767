/* Ordered producer example: messages of one order id go to one queue
 * (hash of the sharding key), so a consumer sees them in sending order.
 *
 *   producer_orderly NAMESRV TOPIC ORDERS STEPS [select]
 *
 * With "select" the queue is chosen through apg_producer_send_select() and
 * the ready-made apg_queue_select_by_hash selector (the same queue).
 *
 * Output: "SENT <orderId> <step> <queueId> <queueOffset>" per message and
 * "DONE sent=<n> failed=<n>". Bodies are "<orderId>:<step>". */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <apogee/apogee.h>

int main(int argc, char **argv)
{
    if (argc < 5) {
        fprintf(stderr, "usage: %s NAMESRV TOPIC ORDERS STEPS\n", argv[0]);
        return 2;
    }
    int orders = atoi(argv[3]), steps = atoi(argv[4]), sent = 0, failed = 0;
    char err[512];
    apg_conf_t *conf = apg_conf_new();
    apg_producer_t *p = NULL;
    if (apg_conf_set(conf, "namesrvAddr", argv[1], err, sizeof(err)) == APG_OK)
        p = apg_producer_new(conf, err, sizeof(err));
    apg_conf_destroy(conf); /* the producer keeps its own copy */
    if (p == NULL) {
        printf("ERROR new %s\n", err);
        return 1;
    }
    for (int s = 0; s < steps; s++) {
        for (int o = 0; o < orders; o++) {
            char key[32], body[64];
            snprintf(key, sizeof(key), "order-%d", o);
            int bl = snprintf(body, sizeof(body), "order-%d:%d", o, s);
            apg_message_t *m = apg_message_new(argv[2], body, (size_t)bl);
            apg_send_result_t r;
            apg_err_t e = argc > 5 && strcmp(argv[5], "select") == 0
                              ? apg_producer_send_select(p, m, apg_queue_select_by_hash, key, &r,
                                                         err, sizeof(err))
                              : apg_producer_send_orderly(p, m, key, &r, err, sizeof(err));
            if (e == APG_OK) {
                sent++;
                printf("SENT %s %d %d %lld\n", key, s, r.sr_mq.mq_queue_id,
                       (long long)r.sr_queue_offset);
            } else {
                failed++;
                printf("ERROR %s\n", err);
            }
            apg_message_free(m);
        }
    }
    printf("DONE sent=%d failed=%d\n", sent, failed);
    apg_producer_destroy(p);
    return failed ? 1 : 0;
}
