#include "cli/admin/admin.h"

const struct apg_adm_cmd apg_adm_offset_cmds[] = {{0}};
