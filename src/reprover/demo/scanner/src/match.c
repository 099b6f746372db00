/* The matcher: a Horspool search per signature (small databases need nothing more). */
#include <string.h>
#include "scanner.h"

static int horspool(const unsigned char *hay, size_t n, const unsigned char *pat, size_t m) {
    size_t skip[256];
    size_t i;
    if (m == 0 || m > n) return 0;
    for (i = 0; i < 256; i++) skip[i] = m;
    for (i = 0; i + 1 < m; i++) skip[pat[i]] = m - 1 - i;
    for (i = 0; i + m <= n; i += skip[hay[i + m - 1]]) {
        if (memcmp(hay + i, pat, m) == 0) return 1;
    }
    return 0;
}

const struct signature *scan_buffer(const unsigned char *buf, size_t len) {
    size_t s;
    for (s = 0; s < SIGNATURE_COUNT; s++) {
        if (horspool(buf, len, SIGNATURES[s].pattern, SIGNATURES[s].length)) return &SIGNATURES[s];
    }
    return NULL;
}
