/* Cache sizes from Linux's sysfs, where the CPU cannot be asked directly
   (AArch64), or when it does not say (an x86 without the cache leaves). */
#include <stdio.h>
#include <string.h>

#include "cpu.h"

static size_t read_size(const char *path)
{
    FILE *f = fopen(path, "r");
    if (!f)
        return 0;
    unsigned long n = 0;
    char unit = 0;
    const int got = fscanf(f, "%lu%c", &n, &unit);
    fclose(f);
    if (got < 1)
        return 0;
    return unit == 'K' ? n << 10 : unit == 'M' ? n << 20 : n;
}

static int read_text(const char *path, char *buf, size_t n)
{
    FILE *f = fopen(path, "r");
    if (!f)
        return 0;
    const int ok = fgets(buf, (int)n, f) != NULL;
    fclose(f);
    return ok;
}

qkv_cpu_caches qkv_cpu_cache_sizes_sysfs(void)
{
    qkv_cpu_caches c = {0, 0, 0};
    for (int i = 0; i < 8; i++) {
        char path[96], type[32] = "", level[8] = "";
        snprintf(path, sizeof path, "/sys/devices/system/cpu/cpu0/cache/index%d/type", i);
        if (!read_text(path, type, sizeof type))
            break;
        snprintf(path, sizeof path, "/sys/devices/system/cpu/cpu0/cache/index%d/level", i);
        read_text(path, level, sizeof level);
        snprintf(path, sizeof path, "/sys/devices/system/cpu/cpu0/cache/index%d/size", i);
        const size_t size = read_size(path);
        if (level[0] == '1' && strncmp(type, "Data", 4) == 0)
            c.l1d = size;
        else if (level[0] == '2' && strncmp(type, "Unified", 7) == 0)
            c.l2 = size;
        else if (level[0] == '3' && strncmp(type, "Unified", 7) == 0)
            c.l3 = size;
    }
    return c;
}
