/* The version of the library itself, from the Meson project version. */
#include "qkv.h"
#include "qkv_config.h"

unsigned qkv_version(void)
{
    return QKV_LIB_VERSION_MAJOR * 10000u + QKV_LIB_VERSION_MINOR * 100u + QKV_LIB_VERSION_PATCH;
}

const char *qkv_version_string(void)
{
    return QKV_LIB_VERSION_STRING;
}
