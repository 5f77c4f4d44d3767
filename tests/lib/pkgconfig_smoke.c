/* Built by install_test.sh against an installed libapogee with only
 * `pkg-config --cflags --libs apogee`. Prints the library version, an error
 * name, and the result of one send to a NameServer that is not there (the
 * whole path: conf, producer, I/O thread, error mapping). */
#include <stdio.h>
#include <string.h>

#include <apogee/apogee.h>

int main(void)
{
    if (strcmp(apg_version(), APG_VERSION) != 0 || apg_version_num() != APG_VERSION_NUM) {
        printf("header %s, library %s\n", APG_VERSION, apg_version());
        return 1;
    }
    printf("version %s\n", apg_version());
    printf("error %s (%s)\n", apg_err_name(APG_ETIMEDOUT), apg_err_describe(APG_ETIMEDOUT));
    char err[256];
    apg_conf_t *conf = apg_conf_new();
    if (apg_conf_set(conf, "namesrvAddr", "127.0.0.1:1", err, sizeof(err)) != APG_OK ||
        apg_conf_set(conf, "sendMsgTimeout", "1000", err, sizeof(err)) != APG_OK) {
        printf("conf: %s\n", err);
        return 1;
    }
    apg_producer_t *p = apg_producer_new(conf, err, sizeof(err));
    apg_conf_destroy(conf);
    if (p == NULL) {
        printf("producer: %s\n", err);
        return 1;
    }
    apg_message_t *m = apg_message_new("SmokeTopic", "hi", 2);
    apg_err_t e = apg_producer_send(p, m, NULL, err, sizeof(err));
    printf("send %s: %s\n", apg_err_name(e), err);
    apg_message_free(m);
    apg_producer_destroy(p);
    return e == APG_OK ? 1 : 0;
}
