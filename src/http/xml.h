/* A small XML reader and writer for the HTTP message protocol (mq_http.c):
 * documents of one root element whose children hold text, as the
 * @aliyunmq/mq-http-sdk clients send them (docs/wire.md §18).
 *
 * The reader accepts an optional XML declaration, comments and processing
 * instructions between elements, attributes (skipped: the xmlns the SDK
 * sets), and child text as character data, CDATA sections and the five
 * predefined and numeric character references, which it decodes. A child
 * that holds elements, a DOCTYPE, mismatched tags or bytes after the root
 * are refused with a reason. Pure: no allocation besides growing the
 * caller's value buffer. */
#ifndef APG_HTTP_XML_H
#define APG_HTTP_XML_H

#include <stddef.h>
#include <stdint.h>

#include "common/buf.h"
#include "common/err.h"

#define APG_XML_MAX_CHILDREN 64
#define APG_XML_MAX_NAME 64

struct apg_xml_child {
    char xc_name[APG_XML_MAX_NAME];
    size_t xc_off, xc_len; /* the decoded text in the value buffer */
};

struct apg_xml_doc {
    char xd_root[APG_XML_MAX_NAME];
    int xd_n;
    struct apg_xml_child xd_c[APG_XML_MAX_CHILDREN];
};

/* Parses p[0..n) into doc; children's decoded texts are appended to vals
 * (reset first). APG_EINVAL with err when it is not such a document,
 * APG_ENOMEM. */
apg_err_t apg_xml_parse(const uint8_t *p, size_t n, struct apg_xml_doc *doc, struct apg_buf *vals,
                        char *err, size_t errlen);

/* Appends s[0..len) as element text: &, <, >, " and ' as references;
 * control characters XML 1.0 cannot carry are dropped. */
apg_err_t apg_xml_put_text(struct apg_buf *o, const char *s, size_t len);
/* Appends <name>text</name>. */
apg_err_t apg_xml_put_elem(struct apg_buf *o, const char *name, const char *s, size_t len);

#endif
