/* scan: report files that match a signature. Exit 0 clean, 1 detected, 2 error. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "scanner.h"

#define ENGINE_VERSION "1.4.2"

static int scan_file(const char *path) {
    FILE *f = fopen(path, "rb");
    unsigned char *buf;
    long size;
    const struct signature *hit;
    if (!f) { fprintf(stderr, "scan: cannot open %s\n", path); return 2; }
    if (fseek(f, 0, SEEK_END) != 0 || (size = ftell(f)) < 0) { fclose(f); return 2; }
    rewind(f);
    buf = malloc(size ? (size_t)size : 1);
    if (!buf || fread(buf, 1, (size_t)size, f) != (size_t)size) { free(buf); fclose(f); return 2; }
    fclose(f);
    hit = scan_buffer(buf, (size_t)size);
    free(buf);
    if (hit) { printf("%s: FOUND %s\n", path, hit->name); return 1; }
    printf("%s: OK\n", path);
    return 0;
}

int main(int argc, char **argv) {
    int i, worst = 0;
    if (argc > 1 && strcmp(argv[1], "--version") == 0) {
        /* __DATE__ follows SOURCE_DATE_EPOCH, so the rebuild must set it like the release did. */
        printf("scan %s (built %s %s, %zu signatures)\n", ENGINE_VERSION, __DATE__, __TIME__,
               SIGNATURE_COUNT);
        return 0;
    }
    for (i = 1; i < argc; i++) {
        int r = scan_file(argv[i]);
        if (r > worst) worst = r;
    }
    return worst;
}
