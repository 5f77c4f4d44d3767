#include "cli/admin/admin.h"

const struct apg_adm_cmd apg_adm_message_cmds[] = {{0}};
