/* Pull consumer example: list a topic's queues, pull each from its first
 * offset to its end, commit the offsets reached.
 *
 *   pull_consumer NAMESRV TOPIC GROUP [TAGEXPR [SQL92]]
 *
 * With SQL92 after it, the expression is a SQL92 filter over user properties
 * (the broker needs enablePropertyFilter=true).
 *
 * Prints "RECV <queueId> <queueOffset> <tags> <body> <msgId>" per message,
 * "COMMITTED <queueId> <offset>" per queue and "DONE received=<n>". */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <apogee/apogee.h>

int main(int argc, char **argv)
{
    if (argc < 4) {
        fprintf(stderr, "usage: %s NAMESRV TOPIC GROUP [TAGEXPR [SQL92]]\n", argv[0]);
        return 2;
    }
    const char *expr = argc > 4 ? argv[4] : "*";
    int sql = argc > 5 && strcmp(argv[5], "SQL92") == 0;
    char err[512];
    apg_conf_t *conf = apg_conf_new();
    apg_pull_consumer_t *c = NULL;
    if (apg_conf_set(conf, "namesrvAddr", argv[1], err, sizeof(err)) == APG_OK &&
        apg_conf_set(conf, "consumerGroup", argv[3], err, sizeof(err)) == APG_OK)
        c = apg_pull_consumer_new(conf, err, sizeof(err));
    apg_conf_destroy(conf); /* the consumer keeps its own copy */
    if (c == NULL) {
        printf("ERROR new %s\n", err);
        return 1;
    }
    apg_mq_t *mqs;
    size_t n;
    if (apg_pull_consumer_queues(c, argv[2], &mqs, &n, err, sizeof(err)) != APG_OK) {
        printf("ERROR queues %s\n", err);
        apg_pull_consumer_destroy(c);
        return 1;
    }
    long total = 0;
    for (size_t i = 0; i < n; i++) {
        int64_t off = 0, max = 0;
        if (apg_pull_consumer_min_offset(c, &mqs[i], &off, err, sizeof(err)) != APG_OK ||
            apg_pull_consumer_max_offset(c, &mqs[i], &max, err, sizeof(err)) != APG_OK) {
            printf("ERROR offsets %s\n", err);
            continue;
        }
        while (off < max) {
            apg_pull_result_t r;
            apg_err_t e =
                sql ? apg_pull_consumer_pull_sql92(c, &mqs[i], expr, off, 32, 0, &r, err,
                                                   sizeof(err))
                    : apg_pull_consumer_pull(c, &mqs[i], expr, off, 32, 0, &r, err, sizeof(err));
            if (e != APG_OK) {
                printf("ERROR pull %s\n", err);
                break;
            }
            for (size_t k = 0; k < r.pr_count; k++) {
                size_t len;
                const char *body = apg_message_body(r.pr_msgs[k], &len);
                const char *tags = apg_message_tags(r.pr_msgs[k]);
                printf("RECV %d %lld %s %.*s %s\n", mqs[i].mq_queue_id,
                       (long long)apg_message_queue_offset(r.pr_msgs[k]), tags ? tags : "-",
                       (int)len, body, apg_message_id(r.pr_msgs[k]));
                total++;
            }
            int64_t next = r.pr_next_offset;
            apg_pull_result_clear(&r);
            if (next <= off)
                break;
            off = next;
        }
        apg_pull_consumer_commit(c, &mqs[i], off);
        printf("COMMITTED %d %lld\n", mqs[i].mq_queue_id, (long long)off);
    }
    apg_mq_list_free(mqs);
    apg_pull_consumer_destroy(c); /* sends the commits and waits for them */
    printf("DONE received=%ld\n", total);
    return 0;
}
