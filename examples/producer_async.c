/* Async producer example: COUNT sends in flight at once; the callbacks count
 * results on the producer's I/O thread.
 *
 *   producer_async NAMESRV TOPIC COUNT
 *
 * Output: "DONE sent=<n> failed=<n>" once every callback has run. */
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

#include <apogee/apogee.h>

static atomic_int ok, bad, done;

static void on_sent(apg_err_t e, const apg_send_result_t *r, const char *msg, void *arg)
{
    (void)r;
    (void)arg;
    if (e == APG_OK) {
        atomic_fetch_add(&ok, 1);
    } else {
        atomic_fetch_add(&bad, 1);
        printf("ERROR %s %d %s\n", apg_err_name(e), r ? r->sr_broker_code : 0, msg);
    }
    atomic_fetch_add(&done, 1);
}

int main(int argc, char **argv)
{
    if (argc < 4) {
        fprintf(stderr, "usage: %s NAMESRV TOPIC COUNT\n", argv[0]);
        return 2;
    }
    int count = atoi(argv[3]);
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
    int submitted = 0;
    for (int i = 0; i < count; i++) {
        char text[64];
        int tl = snprintf(text, sizeof(text), "async-%d", i);
        apg_message_t *m = apg_message_new(argv[2], text, (size_t)tl);
        if (apg_producer_send_async(p, m, on_sent, NULL, err, sizeof(err)) == APG_OK)
            submitted++;
        else
            printf("ERROR submit %s\n", err);
        apg_message_free(m); /* borrowed only during the call */
    }
    while (atomic_load(&done) < submitted)
        usleep(1000);
    printf("DONE sent=%d failed=%d\n", atomic_load(&ok), atomic_load(&bad) + count - submitted);
    apg_producer_destroy(p);
    return atomic_load(&ok) == count ? 0 : 1;
}
