#ifndef SCANNER_H
#define SCANNER_H
#include <stddef.h>

struct signature {
    const char *name;
    const unsigned char *pattern;
    size_t length;
};

extern const struct signature SIGNATURES[];
extern const size_t SIGNATURE_COUNT;

/* Return the first signature found in buf, or NULL. */
const struct signature *scan_buffer(const unsigned char *buf, size_t len);
#endif
