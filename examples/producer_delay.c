/* Delayed-message producer example: sends COUNT messages that the broker
 * holds for delay level LEVEL (messageDelayLevel on the broker: level 1 is
 * 1 s, 2 is 5 s, 3 is 10 s, ... by default) before consumers can see them.
 *
 *   producer_delay NAMESRV TOPIC COUNT LEVEL
 *
 * LEVEL "+MS" instead sends timer messages due MS milliseconds after each
 * send (apg_message_set_deliver_time: the TIMER_DELIVER_MS property).
 *
 * Output: "SENT <msgId> <sendMs>" per message (msgId is the UNIQ_KEY that
 * consumers see, sendMs the wall-clock ms just before the send), then
 * "DONE sent=<n> failed=<n>". A failed send prints "ERROR <APG_E name>
 * <broker response code> <message>" (exit status 1). */
#include <stdio.h>
#include <stdlib.h>
#include <sys/time.h>

#include <apogee/apogee.h>

static long long wall_ms(void)
{
    struct timeval tv;
    gettimeofday(&tv, NULL);
    return (long long)tv.tv_sec * 1000 + tv.tv_usec / 1000;
}

int main(int argc, char **argv)
{
    if (argc < 5) {
        fprintf(stderr, "usage: %s NAMESRV TOPIC COUNT LEVEL\n", argv[0]);
        return 2;
    }
    int count = atoi(argv[3]), level = atoi(argv[4]);
    long long after_ms = argv[4][0] == '+' ? atoll(argv[4] + 1) : -1;
    char err[512];
    apg_conf_t *conf = apg_conf_new();
    apg_producer_t *p = NULL;
    if (apg_conf_set(conf, "namesrvAddr", argv[1], err, sizeof(err)) == APG_OK)
        p = apg_producer_new(conf, err, sizeof(err));
    apg_conf_destroy(conf);
    if (p == NULL) {
        printf("ERROR new %s\n", err);
        return 1;
    }
    int sent = 0, failed = 0;
    for (int i = 0; i < count; i++) {
        char text[64];
        int tl = snprintf(text, sizeof(text), "delayed-%d", i);
        apg_message_t *m = apg_message_new(argv[2], text, (size_t)tl);
        long long t = wall_ms();
        if (after_ms >= 0)
            apg_message_set_deliver_time(m, t + after_ms); /* TIMER_DELIVER_MS */
        else
            apg_message_set_delay_level(m, level); /* the DELAY property */
        apg_send_result_t r = {0};
        apg_err_t e = apg_producer_send(p, m, &r, err, sizeof(err));
        if (e == APG_OK) {
            sent++;
            printf("SENT %s %lld\n", apg_message_id(m), t);
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
