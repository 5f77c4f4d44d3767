/* Broadcasting consumer example: every consumer of the group gets every
 * message; offsets live in a local file under OFFSET_DIR, so a restart
 * resumes where the previous run stopped.
 *
 *   broadcast_consumer NAMESRV TOPIC GROUP OFFSET_DIR EXPECT [SECONDS]
 *
 * Prints "RECV <msgId> <queueId> <queueOffset> <body>" per message and
 * "DONE received=<n>" after shutdown (once EXPECT messages arrived or after
 * SECONDS, default 20). */
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>
#include <unistd.h>

#include <apogee/apogee.h>

static atomic_int received;

static int on_msgs(apg_message_t *const *msgs, size_t n, const apg_mq_t *mq, void *arg)
{
    (void)mq;
    (void)arg;
    for (size_t i = 0; i < n; i++) {
        size_t len;
        const char *body = apg_message_body(msgs[i], &len);
        printf("RECV %s %d %lld %.*s\n", apg_message_id(msgs[i]), apg_message_queue_id(msgs[i]),
               (long long)apg_message_queue_offset(msgs[i]), (int)len, body);
        atomic_fetch_add(&received, 1);
    }
    return APG_CONSUME_SUCCESS;
}

int main(int argc, char **argv)
{
    if (argc < 6) {
        fprintf(stderr, "usage: %s NAMESRV TOPIC GROUP OFFSET_DIR EXPECT [SECONDS]\n", argv[0]);
        return 2;
    }
    setvbuf(stdout, NULL, _IOLBF, 0);
    int expect = atoi(argv[5]), seconds = argc > 6 ? atoi(argv[6]) : 20;
    /* Settings by RocketMQ key name: {key, value} pairs. */
    const char *settings[][2] = {
        {"namesrvAddr", argv[1]},         {"consumerGroup", argv[3]},
        {"messageModel", "BROADCASTING"}, {"consumeFromWhere", "CONSUME_FROM_FIRST_OFFSET"},
        {"localOffsetStoreDir", argv[4]}, {"consumeThreadMin", "1"},
    };
    char err[512];
    apg_conf_t *conf = apg_conf_new();
    apg_err_t e = APG_OK;
    for (size_t i = 0; e == APG_OK && i < sizeof(settings) / sizeof(settings[0]); i++)
        e = apg_conf_set(conf, settings[i][0], settings[i][1], err, sizeof(err));
    apg_push_consumer_t *c = e == APG_OK ? apg_push_consumer_new(conf, err, sizeof(err)) : NULL;
    apg_conf_destroy(conf); /* the consumer keeps its own copy */
    if (c == NULL || apg_push_consumer_subscribe(c, argv[2], "*", err, sizeof(err)) != APG_OK ||
        apg_push_consumer_start(c, on_msgs, NULL, err, sizeof(err)) != APG_OK) {
        printf("ERROR %s\n", err);
        apg_push_consumer_destroy(c);
        return 1;
    }
    time_t end = time(NULL) + seconds;
    while (time(NULL) < end && atomic_load(&received) < expect)
        usleep(50000);
    apg_push_consumer_destroy(c); /* writes the offsets file */
    printf("DONE received=%d\n", atomic_load(&received));
    return 0;
}
