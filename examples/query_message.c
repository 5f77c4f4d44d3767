/* Query by key example: sends messages with keys, then finds them again by
 * key or by unique message id (QUERY_MESSAGE through the pull consumer).
 *
 *   query_message NAMESRV TOPIC send COUNT   sends COUNT messages, body "msg-<i>",
 *                                            KEYS "order-<i> batch"
 *   query_message NAMESRV TOPIC key KEY      every message whose KEYS holds KEY
 *   query_message NAMESRV TOPIC id MSGID     the message whose unique id is MSGID
 *
 * Output: "SENT <msgId> order-<i>" per message sent; "FOUND <msgId> <keys>
 * <body>" per message found; then "DONE sent=<n> failed=<n>" or
 * "DONE found=<n>". Nothing found: "DONE found=0" and exit status 3; an
 * error: "ERROR <APG_E name> <message>", exit status 1. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <apogee/apogee.h>

static int send_keyed(const char *ns, const char *topic, int count)
{
    char err[512];
    apg_conf_t *conf = apg_conf_new();
    apg_producer_t *p = NULL;
    if (apg_conf_set(conf, "namesrvAddr", ns, err, sizeof(err)) == APG_OK)
        p = apg_producer_new(conf, err, sizeof(err));
    apg_conf_destroy(conf);
    if (p == NULL) {
        printf("ERROR new %s\n", err);
        return 1;
    }
    int sent = 0, failed = 0;
    for (int i = 0; i < count; i++) {
        char body[32], keys[64];
        snprintf(body, sizeof(body), "msg-%d", i);
        snprintf(keys, sizeof(keys), "order-%d batch", i);
        apg_message_t *m = apg_message_new(topic, body, strlen(body));
        apg_message_set_keys(m, keys);
        apg_send_result_t r = {0};
        apg_err_t e = apg_producer_send(p, m, &r, err, sizeof(err));
        if (e == APG_OK) {
            sent++;
            printf("SENT %s order-%d\n", r.sr_msg_id, i);
        } else {
            failed++;
            printf("ERROR %s %s\n", apg_err_name(e), err);
        }
        apg_message_free(m);
    }
    printf("DONE sent=%d failed=%d\n", sent, failed);
    apg_producer_destroy(p);
    return failed ? 1 : 0;
}

static void print_found(const apg_message_t *m)
{
    size_t len;
    const char *body = apg_message_body(m, &len);
    const char *keys = apg_message_keys(m);
    printf("FOUND %s %s %.*s\n", apg_message_id(m), keys ? keys : "-", (int)len, body);
}

int main(int argc, char **argv)
{
    if (argc < 5) {
        fprintf(stderr, "usage: %s NAMESRV TOPIC send COUNT | key KEY | id MSGID\n", argv[0]);
        return 2;
    }
    if (strcmp(argv[3], "send") == 0)
        return send_keyed(argv[1], argv[2], atoi(argv[4]));
    char err[512];
    apg_conf_t *conf = apg_conf_new();
    apg_pull_consumer_t *c = NULL;
    if (apg_conf_set(conf, "namesrvAddr", argv[1], err, sizeof(err)) == APG_OK &&
        apg_conf_set(conf, "consumerGroup", "CG_QUERY_EXAMPLE", err, sizeof(err)) == APG_OK)
        c = apg_pull_consumer_new(conf, err, sizeof(err));
    apg_conf_destroy(conf);
    if (c == NULL) {
        printf("ERROR new %s\n", err);
        return 1;
    }
    size_t found = 0;
    apg_err_t e;
    if (strcmp(argv[3], "id") == 0) {
        apg_message_t *m = NULL;
        e = apg_pull_consumer_lookup_unique(c, argv[2], argv[4], &m, err, sizeof(err));
        if (e == APG_OK) {
            print_found(m);
            found = 1;
            apg_message_free(m);
        }
    } else {
        apg_message_t **v = NULL;
        e = apg_pull_consumer_query_by_key(c, argv[2], argv[4], 64, 0, INT64_MAX, &v, &found, err,
                                           sizeof(err));
        for (size_t i = 0; e == APG_OK && i < found; i++)
            print_found(v[i]);
        apg_message_list_free(v, found);
    }
    apg_pull_consumer_destroy(c);
    if (e != APG_OK && e != APG_ENOTFOUND) {
        printf("ERROR %s %s\n", apg_err_name(e), err);
        return 1;
    }
    printf("DONE found=%zu\n", found);
    return found ? 0 : 3;
}
