/* device_json.h - JSON views of registry records (jansson). */
#ifndef FP_DEVICE_JSON_H
#define FP_DEVICE_JSON_H

#include <jansson.h>

#include "registry.h"

/* New reference, or NULL when out of memory. */
json_t *fp_device_json(const fp_device_rec *r);
/* A certificate of a device: {"serial","ca","profile","subject",
 * "issued_by_us","not_before","not_after","status"}. */
json_t *fp_device_cert_json(const fp_cert_rec *c);

#endif
