/* fuzz_config.c - fleetpki.conf parsing (tokenizer, options, profiles). */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>

#include "ca/config.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    fp_config *c = malloc(sizeof(*c));
    fp_error err;
    if (c == NULL)
        return 0;
    fp_config_parse(c, "/nonexistent", (const char *)data, size, &err);
    free(c);
    return 0;
}
