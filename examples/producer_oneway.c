/* Oneway producer example: fire and forget (no answer is awaited).
 *
 *   producer_oneway NAMESRV TOPIC COUNT
 *
 * Output: "DONE sent=<n> failed=<n>"; sent counts writes handed to the socket. */
#include <stdio.h>
#include <stdlib.h>

#include <apogee/apogee.h>

int main(int argc, char **argv)
{
    if (argc < 4) {
        fprintf(stderr, "usage: %s NAMESRV TOPIC COUNT\n", argv[0]);
        return 2;
    }
    int count = atoi(argv[3]), sent = 0, failed = 0;
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
    for (int i = 0; i < count; i++) {
        char text[64];
        int tl = snprintf(text, sizeof(text), "oneway-%d", i);
        apg_message_t *m = apg_message_new(argv[2], text, (size_t)tl);
        if (apg_producer_send_oneway(p, m, err, sizeof(err)) == APG_OK) {
            sent++;
        } else {
            failed++;
            printf("ERROR %s\n", err);
        }
        apg_message_free(m);
    }
    printf("DONE sent=%d failed=%d\n", sent, failed);
    apg_producer_destroy(p); /* flushes what was written */
    return failed ? 1 : 0;
}
