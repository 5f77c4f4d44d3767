/* The parsed rule set shared by acl_file.c (builds it), acl_check.c (reads
 * it) and acl.c (swaps it). Immutable once built. */
#ifndef APG_ACL_ACL_INT_H
#define APG_ACL_ACL_INT_H

#include "acl/acl.h"
#include "common/sha1.h"

enum { APG_ACL_ADDR_NONE, APG_ACL_ADDR_ALL, APG_ACL_ADDR_LIST, APG_ACL_ADDR_RANGE };

/* One topicPerms / groupPerms entry; a group is stored as its retry topic
 * "%RETRY%<group>", as RocketMQ does. */
struct apg_acl_res {
    char *rs_name;
    uint8_t rs_perm;
};

struct apg_acl_account {
    char *acc_ak;
    struct apg_hmac_key acc_key; /* the secretKey, prepared; the text is not kept */
    struct apg_acl_addr acc_white;
    bool acc_admin;
    uint8_t acc_def_topic, acc_def_group;
    struct apg_acl_res *acc_res; /* sorted by name */
    size_t acc_nres;
};

struct apg_acl_rules {
    struct apg_acl_addr *ru_global;
    size_t ru_nglobal;
    struct apg_acl_account *ru_acc; /* sorted by access key */
    size_t ru_nacc;
};

#define APG_ACL_RETRY_PREFIX "%RETRY%"
#define APG_ACL_RETRY_PREFIX_LEN 7

#endif
