#include "cli/admin/admin.h"

const struct apg_adm_cmd apg_adm_group_cmds[] = {{0}};
