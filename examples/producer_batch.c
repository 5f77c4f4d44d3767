/* Batch producer example: ROUNDS batches of BATCH messages, one
 * SEND_BATCH_MESSAGE request each.
 *
 *   producer_batch NAMESRV TOPIC ROUNDS BATCH
 *
 * Output: "BATCH <queueId> <firstQueueOffset>" per batch, "DONE sent=<n> failed=<n>". */
#include <stdio.h>
#include <stdlib.h>

#include <apogee/apogee.h>

int main(int argc, char **argv)
{
    if (argc < 5) {
        fprintf(stderr, "usage: %s NAMESRV TOPIC ROUNDS BATCH\n", argv[0]);
        return 2;
    }
    int rounds = atoi(argv[3]), batch = atoi(argv[4]), sent = 0, failed = 0;
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
    apg_message_t **msgs = calloc((size_t)batch, sizeof(*msgs));
    for (int r = 0; r < rounds; r++) {
        for (int i = 0; i < batch; i++) {
            char text[64];
            int tl = snprintf(text, sizeof(text), "batch-%d-%d", r, i);
            msgs[i] = apg_message_new(argv[2], text, (size_t)tl);
        }
        apg_send_result_t res;
        if (apg_producer_send_batch(p, msgs, (size_t)batch, &res, err, sizeof(err)) == APG_OK) {
            sent += batch;
            printf("BATCH %d %lld\n", res.sr_mq.mq_queue_id, (long long)res.sr_queue_offset);
        } else {
            failed += batch;
            printf("ERROR %s\n", err);
        }
        for (int i = 0; i < batch; i++)
            apg_message_free(msgs[i]);
    }
    free(msgs);
    printf("DONE sent=%d failed=%d\n", sent, failed);
    apg_producer_destroy(p);
    return failed ? 1 : 0;
}
