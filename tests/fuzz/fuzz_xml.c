/* libFuzzer harness for the XML reader of the HTTP message protocol
 * (src/http/xml.c), which reads every publish and ack body on the broker's
 * HTTP port: any input is either refused with a reason or gives a root
 * and children whose decoded values lie inside the value buffer, never a
 * crash or a read past the input (copied to an exact-size buffer so ASan
 * sees such reads). Checked: a refusal says why; every child's value is
 * inside the values written; names are NUL-terminated within their
 * arrays; writing a value back as text and reading <r><v>text</v></r>
 * gives the same bytes (control characters XML cannot carry dropped).
 * Seeds (tests/fuzz/corpus/xml): the SDK's publish and ack bodies, CDATA,
 * references, comments, and malformed ones. */
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "http/xml.h"

static bool xml_char(unsigned char c)
{
    return c >= 0x20 || c == '\t' || c == '\n' || c == '\r';
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    uint8_t *buf = malloc(size ? size : 1);
    if (!buf)
        return 0;
    memcpy(buf, data, size);
    static struct apg_xml_doc doc, back;
    struct apg_buf vals = APG_BUF_INIT, out = APG_BUF_INIT, vals2 = APG_BUF_INIT;
    char err[200] = "";
    apg_err_t e = apg_xml_parse(buf, size, &doc, &vals, err, sizeof err);
    if (e == APG_EINVAL && !err[0])
        __builtin_trap();
    if (e == APG_OK) {
        if (memchr(doc.xd_root, '\0', sizeof doc.xd_root) == NULL || !doc.xd_root[0])
            __builtin_trap();
        for (int i = 0; i < doc.xd_n; i++) {
            const struct apg_xml_child *c = &doc.xd_c[i];
            if (c->xc_off + c->xc_len > vals.b_len || !memchr(c->xc_name, '\0', APG_XML_MAX_NAME))
                __builtin_trap();
            /* Round trip of the value through the writer. */
            apg_buf_reset(&out);
            apg_buf_append_str(&out, "<r>");
            apg_xml_put_elem(&out, "v", (const char *)vals.b_data + c->xc_off, c->xc_len);
            apg_buf_append_str(&out, "</r>");
            if (apg_xml_parse(out.b_data, out.b_len, &back, &vals2, err, sizeof err) != APG_OK ||
                back.xd_n != 1)
                __builtin_trap();
            const uint8_t *v = vals.b_data + c->xc_off;
            size_t k = 0;
            for (size_t j = 0; j < c->xc_len; j++) {
                if (!xml_char(v[j]))
                    continue;
                if (k >= back.xd_c[0].xc_len || vals2.b_data[back.xd_c[0].xc_off + k] != v[j])
                    __builtin_trap();
                k++;
            }
            if (k != back.xd_c[0].xc_len)
                __builtin_trap();
        }
    }
    apg_buf_free(&vals);
    apg_buf_free(&vals2);
    apg_buf_free(&out);
    free(buf);
    return 0;
}
