/* Client messages: the message object and its wire forms.
 *
 * No sockets and no threads: the message object, zlib body compression
 * (sysFlag bit 0, type ZLIB in bits 8-10, docs/wire.md §6.3) and the decoder of pulled
 * bodies, which are stored CommitLog records (§9.2) parsed by the shared
 * record codec (protocol/message.h) and turned into message objects. The
 * formats themselves are the codecs the broker uses too: the property
 * string (protocol/props.h), UNIQ_KEY (protocol/msgid.h), the batch body
 * (protocol/batch.h) and tag expressions (protocol/tagexpr.h).
 *
 * Properties keep insertion order in a small array; messages carry a handful
 * of them, so a linear search is the fastest lookup. Allocation: a message
 * made by apg_message_new is one block (struct, topic, body, a property
 * array for four entries), and the names (and WAIT's "true") the client
 * sets itself point into a static table instead of owning copies;
 * apg_msg_part_free knows both, so later edits replace such parts safely. */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <zlib.h>

#include "client/client_int.h"
#include "common/mem.h"
#include "protocol/batch.h"
#include "protocol/message.h"
#include "protocol/msgid.h"
#include "protocol/props.h"

bool apg_msg_prop_reserved(const char *name)
{
    return apg_props_name_reserved(name, strlen(name));
}

/* Property names and values the client sets itself; a property part that
 * points into this table is not owned (apg_msg_part_free skips it). */
static const char prop_static[] = "WAIT\0true\0UNIQ_KEY\0TAGS\0KEYS\0DELAY\0";
#define PS_WAIT (prop_static + 0)
#define PS_TRUE (prop_static + 5)
#define PS_UNIQ_KEY (prop_static + 10)
#define PS_TAGS (prop_static + 19)
#define PS_KEYS (prop_static + 24)
#define PS_DELAY (prop_static + 29)

static bool prop_is_static(const char *c)
{
    return c >= prop_static && c < prop_static + sizeof(prop_static);
}

#define NEW_PROPS 4 /* property slots inside a new message's block */

apg_message_t *apg_message_new(const char *topic, const void *body, size_t len)
{
    if (topic == NULL || topic[0] == '\0')
        return NULL;
    size_t tlen = strlen(topic) + 1;
    /* An empty body still gets a byte, so m_body points inside the block. */
    size_t total =
        sizeof(apg_message_t) + NEW_PROPS * sizeof(struct apg_prop) + tlen + (len ? len : 1);
    apg_message_t *m = apg_malloc(total);
    if (m == NULL)
        return NULL;
    memset(m, 0, sizeof(*m));
    m->m_arena_len = total;
    m->m_props = (struct apg_prop *)(m + 1);
    m->m_capprops = NEW_PROPS;
    m->m_topic = memcpy((char *)(m->m_props + NEW_PROPS), topic, tlen);
    m->m_body = (uint8_t *)m->m_topic + tlen;
    if (len)
        memcpy(m->m_body, body, len);
    m->m_body_len = len;
    m->m_props[0].pr_key = (char *)PS_WAIT;
    m->m_props[0].pr_val = (char *)PS_TRUE;
    m->m_nprops = 1;
    return m;
}

void apg_msg_part_free(apg_message_t *m, void *p)
{
    const char *c = p, *base = (const char *)m;
    if (c != NULL && !(c >= base && c < base + m->m_arena_len) && !prop_is_static(c))
        apg_free(p);
}

void apg_message_free(apg_message_t *m)
{
    if (m == NULL)
        return;
    for (size_t i = 0; i < m->m_nprops; i++) {
        apg_msg_part_free(m, m->m_props[i].pr_key);
        apg_msg_part_free(m, m->m_props[i].pr_val);
    }
    apg_msg_part_free(m, m->m_props);
    apg_msg_part_free(m, m->m_body);
    apg_msg_part_free(m, m->m_topic);
    apg_free(m);
}

apg_err_t apg_message_set_body(apg_message_t *m, const void *body, size_t len)
{
    uint8_t *b = apg_malloc(len ? len : 1);
    if (b == NULL)
        return APG_ENOMEM;
    if (len)
        memcpy(b, body, len);
    apg_msg_part_free(m, m->m_body);
    m->m_body = b;
    m->m_body_len = len;
    return APG_OK;
}

static bool clean_text(const char *s)
{
    return s != NULL && strpbrk(s, "\x01\x02") == NULL;
}

/* Decoded properties skip the separator check: Java splits on the first
 * \x01 only, so a received value may contain one. */
static apg_err_t prop_set(apg_message_t *m, const char *key, const char *val, bool check);

apg_err_t apg_msg_prop_set(apg_message_t *m, const char *key, const char *val)
{
    return prop_set(m, key, val, true);
}

static apg_err_t prop_set(apg_message_t *m, const char *key, const char *val, bool check)
{
    if (check && (!clean_text(key) || !clean_text(val) || key[0] == '\0'))
        return APG_EINVAL;
    char *v = prop_is_static(val) ? (char *)val : apg_strdup(val);
    if (v == NULL)
        return APG_ENOMEM;
    for (size_t i = 0; i < m->m_nprops; i++) {
        if (strcmp(m->m_props[i].pr_key, key) == 0) {
            apg_msg_part_free(m, m->m_props[i].pr_val);
            m->m_props[i].pr_val = v;
            return APG_OK;
        }
    }
    if (m->m_nprops == m->m_capprops) {
        size_t cap = m->m_capprops ? m->m_capprops * 2 : 4;
        const char *pa = (const char *)m->m_props, *base = (const char *)m;
        bool arena = pa != NULL && pa >= base && pa < base + m->m_arena_len;
        struct apg_prop *np =
            arena ? apg_malloc(cap * sizeof(*np)) : apg_realloc(m->m_props, cap * sizeof(*np));
        if (np == NULL) {
            apg_msg_part_free(m, v);
            return APG_ENOMEM;
        }
        if (arena)
            memcpy(np, m->m_props, m->m_nprops * sizeof(*np));
        m->m_props = np;
        m->m_capprops = cap;
    }
    char *k = prop_is_static(key) ? (char *)key : apg_strdup(key);
    if (k == NULL) {
        apg_msg_part_free(m, v);
        return APG_ENOMEM;
    }
    m->m_props[m->m_nprops].pr_key = k;
    m->m_props[m->m_nprops].pr_val = v;
    m->m_nprops++;
    return APG_OK;
}

static void prop_del(apg_message_t *m, const char *key)
{
    for (size_t i = 0; i < m->m_nprops; i++) {
        if (strcmp(m->m_props[i].pr_key, key) == 0) {
            apg_msg_part_free(m, m->m_props[i].pr_key);
            apg_msg_part_free(m, m->m_props[i].pr_val);
            memmove(&m->m_props[i], &m->m_props[i + 1],
                    (m->m_nprops - i - 1) * sizeof(m->m_props[0]));
            m->m_nprops--;
            return;
        }
    }
}

const char *apg_msg_prop_get(const apg_message_t *m, const char *key)
{
    for (size_t i = 0; i < m->m_nprops; i++)
        if (strcmp(m->m_props[i].pr_key, key) == 0)
            return m->m_props[i].pr_val;
    return NULL;
}

apg_err_t apg_message_set_tags(apg_message_t *m, const char *tags)
{
    if (tags == NULL || tags[0] == '\0')
        return APG_EINVAL;
    return apg_msg_prop_set(m, PS_TAGS, tags);
}

apg_err_t apg_message_set_keys(apg_message_t *m, const char *keys)
{
    if (keys == NULL || keys[0] == '\0')
        return APG_EINVAL;
    return apg_msg_prop_set(m, PS_KEYS, keys);
}

apg_err_t apg_message_set_delay_level(apg_message_t *m, int level)
{
    if (level < 0 || level > 18)
        return APG_EINVAL;
    if (level == 0) {
        prop_del(m, "DELAY");
        return APG_OK;
    }
    char v[8];
    snprintf(v, sizeof(v), "%d", level);
    return apg_msg_prop_set(m, PS_DELAY, v);
}

apg_err_t apg_message_set_deliver_time(apg_message_t *m, int64_t deliver_ms)
{
    if (deliver_ms < 0)
        return APG_EINVAL;
    if (deliver_ms == 0) {
        prop_del(m, "TIMER_DELIVER_MS");
        return APG_OK;
    }
    char v[24];
    snprintf(v, sizeof(v), "%lld", (long long)deliver_ms);
    return apg_msg_prop_set(m, "TIMER_DELIVER_MS", v);
}

apg_err_t apg_message_put_property(apg_message_t *m, const char *name, const char *value)
{
    if (name == NULL || value == NULL || apg_msg_prop_reserved(name))
        return APG_EINVAL;
    return apg_msg_prop_set(m, name, value);
}

void apg_message_set_flag(apg_message_t *m, int32_t flag)
{
    m->m_flag = flag;
}

const char *apg_message_topic(const apg_message_t *m)
{
    return m->m_topic;
}
const void *apg_message_body(const apg_message_t *m, size_t *len)
{
    if (len)
        *len = m->m_body_len;
    return m->m_body;
}
const char *apg_message_tags(const apg_message_t *m)
{
    return apg_msg_prop_get(m, "TAGS");
}
const char *apg_message_keys(const apg_message_t *m)
{
    return apg_msg_prop_get(m, "KEYS");
}
const char *apg_message_property(const apg_message_t *m, const char *name)
{
    return apg_msg_prop_get(m, name);
}
int32_t apg_message_flag(const apg_message_t *m)
{
    return m->m_flag;
}
const char *apg_message_id(const apg_message_t *m)
{
    return apg_msg_prop_get(m, "UNIQ_KEY");
}
const char *apg_message_offset_id(const apg_message_t *m)
{
    return m->m_offset_id[0] ? m->m_offset_id : NULL;
}
int apg_message_queue_id(const apg_message_t *m)
{
    return m->m_queue_id;
}
int64_t apg_message_queue_offset(const apg_message_t *m)
{
    return m->m_queue_offset;
}
int64_t apg_message_commitlog_offset(const apg_message_t *m)
{
    return m->m_commitlog_offset;
}
int64_t apg_message_born_timestamp(const apg_message_t *m)
{
    return m->m_born_ts;
}
int64_t apg_message_store_timestamp(const apg_message_t *m)
{
    return m->m_store_ts;
}
int apg_message_reconsume_times(const apg_message_t *m)
{
    return m->m_reconsume;
}

apg_err_t apg_msg_props_encode(const apg_message_t *m, struct apg_buf *out)
{
    if (apg_buf_reserve(out, apg_msg_props_len(m)))
        return APG_ENOMEM;
    char *end = apg_msg_props_write(m, (char *)out->b_data + out->b_len);
    out->b_len = (size_t)((uint8_t *)end - out->b_data);
    return APG_OK;
}

size_t apg_msg_props_len(const apg_message_t *m)
{
    size_t n = 0;
    for (size_t i = 0; i < m->m_nprops; i++)
        n += apg_props_pair_size(strlen(m->m_props[i].pr_key), strlen(m->m_props[i].pr_val));
    return n;
}

char *apg_msg_props_write(const apg_message_t *m, char *out)
{
    for (size_t i = 0; i < m->m_nprops; i++) {
        const char *k = m->m_props[i].pr_key, *v = m->m_props[i].pr_val;
        out = apg_props_write(out, k, strlen(k), v, strlen(v));
    }
    return out;
}

apg_err_t apg_msg_props_decode(apg_message_t *m, const char *s, size_t len)
{
    size_t pos = 0;
    struct apg_prop_kv kv;
    while (apg_props_next(s, len, &pos, &kv)) {
        char *k = apg_strndup(kv.pk_name, kv.pk_name_len);
        char *v = apg_strndup(kv.pk_val, kv.pk_val_len);
        apg_err_t e = (k && v) ? prop_set(m, k, v, false) : APG_ENOMEM;
        apg_free(k);
        apg_free(v);
        if (e == APG_ENOMEM)
            return e;
    }
    return APG_OK;
}

/* ---- UNIQ_KEY ---- */

static pthread_once_t uniq_once = PTHREAD_ONCE_INIT;
static uint8_t uniq_ip[4];

static void uniq_init(void)
{
    apg_client_local_ip(uniq_ip, NULL, 0);
}

void apg_msg_uniq_id(char out[33])
{
    pthread_once(&uniq_once, uniq_init);
    apg_msgid_uniq_new(uniq_ip, out);
}

apg_err_t apg_msg_ensure_uniq(apg_message_t *m)
{
    if (apg_msg_prop_get(m, "UNIQ_KEY") != NULL)
        return APG_OK;
    char id[33];
    apg_msg_uniq_id(id);
    return apg_msg_prop_set(m, PS_UNIQ_KEY, id);
}

/* ---- batch body ---- */

apg_err_t apg_msg_batch_append(const apg_message_t *m, struct apg_buf *out)
{
    /* The property string is written in place, between the codec's begin
     * (fixed fields and body) and end (lengths patched). */
    size_t mark;
    apg_err_t e = apg_batch_begin(out, m->m_flag, m->m_body, m->m_body_len, &mark);
    if (e != APG_OK)
        return e;
    e = apg_msg_props_encode(m, out);
    if (e != APG_OK) {
        apg_batch_abort(out, mark);
        return e;
    }
    return apg_batch_end(out, mark);
}

apg_err_t apg_msg_zlib(const uint8_t *in, size_t len, int level, uint8_t **out, size_t *out_len)
{
    uLongf cap = compressBound((uLong)len);
    uint8_t *b = apg_malloc(cap);
    if (b == NULL)
        return APG_ENOMEM;
    if (compress2(b, &cap, in, (uLong)len, level) != Z_OK) {
        apg_free(b);
        return APG_EIO;
    }
    *out = b;
    *out_len = cap;
    return APG_OK;
}

apg_err_t apg_msg_unzlib(const uint8_t *in, size_t len, size_t max, uint8_t **out, size_t *out_len)
{
    z_stream zs;
    memset(&zs, 0, sizeof(zs));
    if (inflateInit(&zs) != Z_OK)
        return APG_ENOMEM;
    size_t cap = len * 4 + 64, n = 0;
    uint8_t *b = NULL;
    apg_err_t e = APG_OK;
    zs.next_in = (Bytef *)in;
    zs.avail_in = (uInt)len;
    for (;;) {
        if (cap > max + 1)
            cap = max + 1;
        uint8_t *nb = apg_realloc(b, cap);
        if (nb == NULL) {
            e = APG_ENOMEM;
            break;
        }
        b = nb;
        zs.next_out = b + n;
        zs.avail_out = (uInt)(cap - n);
        int rc = inflate(&zs, Z_NO_FLUSH);
        n = cap - zs.avail_out;
        if (rc == Z_STREAM_END)
            break;
        if (n > max) {
            e = APG_ETOOBIG;
            break;
        }
        if (rc != Z_OK && !(rc == Z_BUF_ERROR && zs.avail_out == 0)) {
            e = APG_ECORRUPT;
            break;
        }
        if (zs.avail_out == 0)
            cap *= 2;
        else if (zs.avail_in == 0) {
            e = APG_ECORRUPT; /* truncated stream */
            break;
        }
    }
    inflateEnd(&zs);
    if (e != APG_OK) {
        apg_free(b);
        return e;
    }
    *out = b;
    *out_len = n;
    return APG_OK;
}

/* ---- pulled records (docs/wire.md §9.2) ---- */

/* apg_msg_props_decode into m's arena: keys and values are copied to *strs
 * (room for len + chunks bytes), the array has room for every chunk. */
static void props_decode_arena(apg_message_t *m, const char *s, size_t len, char **strs)
{
    char *out = *strs;
    size_t pos = 0;
    struct apg_prop_kv kv;
    while (apg_props_next(s, len, &pos, &kv)) {
        char *k = out, *v = out + kv.pk_name_len + 1;
        memcpy(k, kv.pk_name, kv.pk_name_len);
        k[kv.pk_name_len] = '\0';
        memcpy(v, kv.pk_val, kv.pk_val_len);
        v[kv.pk_val_len] = '\0';
        out = v + kv.pk_val_len + 1;
        size_t j = 0;
        while (j < m->m_nprops && strcmp(m->m_props[j].pr_key, k) != 0)
            j++;
        if (j == m->m_nprops) {
            m->m_props[j].pr_key = k;
            m->m_nprops++;
        }
        m->m_props[j].pr_val = v; /* a repeated key keeps the last value */
    }
    *strs = out;
}

apg_err_t apg_msg_decode_records(const uint8_t *buf, size_t len, apg_msg_sink on_msg, void *arg,
                                 char *err, size_t errlen)
{
    size_t pos = 0;
    while (pos < len) {
        struct apg_msgrec rec;
        const char *why = "not a message record";
        if (apg_msgrec_decode(buf + pos, len - pos, false, &rec, &why) != APG_MSGREC_OK)
            return apg_errf(APG_EPROTO, err, errlen, "record at %zu: %s", pos, why);
        if (rec.mr_topic_len == 0)
            return apg_errf(APG_EPROTO, err, errlen, "record at %zu: empty topic", pos);

        /* One allocation: struct, property array, property strings, topic
         * and (when not compressed) body. */
        const char *ps = rec.mr_props;
        size_t props_len = rec.mr_props_len, topic_len = rec.mr_topic_len;
        size_t body_len = rec.mr_body_len;
        size_t nchunks = 1;
        for (const char *c = ps; (c = memchr(c, '\x02', props_len - (size_t)(c - ps))) != NULL; c++)
            nchunks++;
        bool zipped = (rec.mr_sysflag & APG_SYSFLAG_COMPRESSED) != 0;
        size_t arena = sizeof(apg_message_t) + nchunks * sizeof(struct apg_prop) + props_len +
                       nchunks + topic_len + 1 + (zipped ? 0 : body_len + 1);
        apg_message_t *m = apg_malloc(arena);
        if (m == NULL)
            return APG_ENOMEM;
        memset(m, 0, sizeof(*m));
        m->m_arena_len = arena;
        m->m_props = (struct apg_prop *)(m + 1);
        m->m_capprops = nchunks;
        char *strs = (char *)(m->m_props + nchunks);
        props_decode_arena(m, ps, props_len, &strs);
        memcpy(strs, rec.mr_topic, topic_len);
        strs[topic_len] = '\0';
        m->m_topic = strs;
        strs += topic_len + 1;
        m->m_body_crc = rec.mr_body_crc;
        m->m_queue_id = rec.mr_queue_id;
        m->m_flag = rec.mr_flag;
        m->m_queue_offset = rec.mr_queue_offset;
        m->m_commitlog_offset = rec.mr_phys_offset;
        m->m_sysflag = rec.mr_sysflag;
        m->m_born_ts = rec.mr_born_ts;
        m->m_store_ts = rec.mr_store_ts;
        m->m_reconsume = rec.mr_reconsume_times;
        apg_msgid_encode(&rec.mr_store_host, rec.mr_phys_offset, m->m_offset_id,
                         sizeof(m->m_offset_id));
        apg_err_t e = APG_OK;
        if (zipped) {
            int type = rec.mr_sysflag & APG_MSG_SYSFLAG_COMPRESS_MASK;
            if (type != 0 && type != APG_MSG_SYSFLAG_ZLIB) {
                e = apg_errf(APG_EPROTO, err, errlen,
                             "record at %zu: compression type 0x%x (LZ4/ZSTD) not supported", pos,
                             type >> 8);
            } else {
                e = apg_msg_unzlib(rec.mr_body, body_len, 64u * 1024 * 1024, &m->m_body,
                                   &m->m_body_len);
                if (e != APG_OK)
                    apg_errf(e, err, errlen, "record at %zu: body does not inflate", pos);
                m->m_sysflag &= ~(APG_SYSFLAG_COMPRESSED | APG_MSG_SYSFLAG_COMPRESS_MASK);
            }
        } else {
            memcpy(strs, rec.mr_body, body_len);
            m->m_body = (uint8_t *)strs;
            m->m_body_len = body_len;
        }
        if (e != APG_OK) {
            apg_message_free(m);
            return e;
        }
        e = on_msg(m, arg);
        if (e != APG_OK)
            return e;
        pos += rec.mr_total_size;
    }
    return APG_OK;
}
