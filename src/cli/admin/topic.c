#include "cli/admin/admin.h"

const struct apg_adm_cmd apg_adm_topic_cmds[] = {{0}};
