/*
 * The three places a version lives agree: the QKV_VERSION_* macros of the
 * installed header, the library's qkv_version() / qkv_version_string()
 * (from the Meson project version through qkv_config.h), and the Meson
 * project version itself, passed as argv[1].
 *   version MAJOR.MINOR.PATCH
 */
#include <stdio.h>
#include <string.h>

#include "qkv.h"

int main(int argc, char **argv)
{
    if (argc != 2) {
        fprintf(stderr, "usage: version MAJOR.MINOR.PATCH (the meson project version)\n");
        return 2;
    }
    char header[32];
    snprintf(header, sizeof header, "%d.%d.%d", QKV_VERSION_MAJOR, QKV_VERSION_MINOR,
             QKV_VERSION_PATCH);
    const unsigned header_number =
        QKV_VERSION_MAJOR * 10000u + QKV_VERSION_MINOR * 100u + QKV_VERSION_PATCH;
    printf("meson %s, header %s (%u), library %s (%u)\n", argv[1], header, header_number,
           qkv_version_string(), qkv_version());
    int bad = 0;
    if (strcmp(header, argv[1]) != 0)
        bad = 1, printf("FAIL: the header's QKV_VERSION_* say %s, meson.build %s\n", header, argv[1]);
    if (strcmp(qkv_version_string(), argv[1]) != 0)
        bad = 1, printf("FAIL: qkv_version_string() is %s, meson.build %s\n", qkv_version_string(),
                        argv[1]);
    if (qkv_version() != header_number)
        bad = 1, printf("FAIL: qkv_version() is %u, the header's %u\n", qkv_version(), header_number);
    return bad;
}
