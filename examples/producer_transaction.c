/* Transactional producer example: sends COUNT messages in transactions and
 * answers the broker's check-backs.
 *
 *   producer_transaction NAMESRV TOPIC GROUP COUNT LOCAL CHECK [HOLD_MS]
 *
 * LOCAL is what the local transaction answers: commit, rollback, unknown
 * (the broker asks the check listener later) or hang (it prints its line and
 * never returns: a producer that dies before committing). CHECK is what the
 * check listener answers: commit, rollback or unknown. After the sends the
 * program stays HOLD_MS (0) to answer check-backs.
 *
 * Output: "HALF <txId> <body>" when the local transaction runs, "SENT
 * <txId> <state>" per message sent, "CHECK <txId> <body> -> <answer>" per
 * check-back, "ERROR <APG_E name> <message>" per failure, then "DONE
 * sent=<n> failed=<n>". */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <apogee/apogee.h>

static apg_tx_state_t parse_state(const char *s)
{
    return !strcmp(s, "commit")     ? APG_TX_COMMIT
           : !strcmp(s, "rollback") ? APG_TX_ROLLBACK
                                    : APG_TX_UNKNOWN;
}

static const char *state_name(apg_tx_state_t s)
{
    return s == APG_TX_COMMIT ? "commit" : s == APG_TX_ROLLBACK ? "rollback" : "unknown";
}

static void print_body(const char *what, const apg_message_t *msg, const char *tx_id,
                       const char *tail)
{
    size_t len = 0;
    const char *body = apg_message_body(msg, &len);
    printf("%s %s %.*s%s\n", what, tx_id, (int)len, body ? body : "", tail);
    fflush(stdout);
}

static apg_tx_state_t local_tx(const apg_message_t *msg, const char *tx_id, void *arg)
{
    const char *local = arg;
    print_body("HALF", msg, tx_id, "");
    if (!strcmp(local, "hang"))
        for (;;)
            pause();
    return parse_state(local);
}

static apg_tx_state_t check(const apg_message_t *msg, const char *tx_id, void *arg)
{
    apg_tx_state_t s = parse_state(arg);
    char tail[32];
    snprintf(tail, sizeof(tail), " -> %s", state_name(s));
    print_body("CHECK", msg, tx_id, tail);
    return s;
}

int main(int argc, char **argv)
{
    if (argc < 7) {
        fprintf(stderr, "usage: %s NAMESRV TOPIC GROUP COUNT LOCAL CHECK [HOLD_MS]\n", argv[0]);
        return 2;
    }
    int count = atoi(argv[4]);
    char *local = argv[5], *answer = argv[6];
    long hold_ms = argc > 7 ? atol(argv[7]) : 0;
    char err[512];
    apg_conf_t *conf = apg_conf_new();
    apg_producer_t *p = NULL;
    if (apg_conf_set(conf, "namesrvAddr", argv[1], err, sizeof(err)) == APG_OK &&
        apg_conf_set(conf, "producerGroup", argv[3], err, sizeof(err)) == APG_OK &&
        apg_conf_set(conf, "heartbeatBrokerInterval", "1000", err, sizeof(err)) == APG_OK &&
        apg_conf_set(conf, "sendMsgTimeout", "3000", err, sizeof(err)) == APG_OK)
        p = apg_producer_new_transactional(conf, check, answer, err, sizeof(err));
    apg_conf_destroy(conf);
    if (p == NULL) {
        printf("ERROR new %s\n", err);
        return 1;
    }
    int sent = 0, failed = 0;
    for (int i = 0; i < count; i++) {
        char text[64];
        snprintf(text, sizeof(text), "tx-%d-%ld", i, (long)getpid());
        apg_message_t *m = apg_message_new(argv[2], text, strlen(text));
        apg_message_set_keys(m, text);
        apg_send_result_t r = {0};
        apg_tx_state_t st = APG_TX_UNKNOWN;
        apg_err_t e =
            apg_producer_send_transaction(p, m, local_tx, local, &r, &st, err, sizeof(err));
        if (e == APG_OK) {
            sent++;
            printf("SENT %s %s\n", r.sr_msg_id, state_name(st));
        } else {
            failed++;
            printf("ERROR %s %s\n", apg_err_name(e), err);
        }
        fflush(stdout);
        apg_message_free(m);
    }
    struct timespec ts = {hold_ms / 1000, (hold_ms % 1000) * 1000000L};
    while (nanosleep(&ts, &ts) != 0)
        ;
    printf("DONE sent=%d failed=%d\n", sent, failed);
    apg_producer_destroy(p);
    return failed ? 1 : 0;
}
