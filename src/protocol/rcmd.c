/* LanguageCode names (docs/wire.md §2.3): the byte a remoting header
 * carries and the enum name a JSON header spells. Pure. */
#include "protocol/rcmd.h"

#include <string.h>

static const char *const lang_names[] = {
    [APG_LANG_JAVA] = "JAVA",     [APG_LANG_CPP] = "CPP",         [APG_LANG_DOTNET] = "DOTNET",
    [APG_LANG_PYTHON] = "PYTHON", [APG_LANG_DELPHI] = "DELPHI",   [APG_LANG_ERLANG] = "ERLANG",
    [APG_LANG_RUBY] = "RUBY",     [APG_LANG_OTHER] = "OTHER",     [APG_LANG_HTTP] = "HTTP",
    [APG_LANG_GO] = "GO",         [APG_LANG_PHP] = "PHP",         [APG_LANG_OMS] = "OMS",
    [APG_LANG_RUST] = "RUST",     [APG_LANG_NODE_JS] = "NODE_JS",
};

#define N_LANG (sizeof(lang_names) / sizeof(lang_names[0]))

const char *apg_rcmd_lang_name(uint8_t lang)
{
    return lang < N_LANG ? lang_names[lang] : NULL;
}

int apg_rcmd_lang_parse(const char *name, size_t n)
{
    for (size_t i = 0; i < N_LANG; i++)
        if (strlen(lang_names[i]) == n && memcmp(lang_names[i], name, n) == 0)
            return (int)i;
    return -1;
}
