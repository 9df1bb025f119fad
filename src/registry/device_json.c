/*
 * device_json.c - the one JSON view of a device (CLI --json, the device
 * API; the admin API may use it too):
 *   {"project", "name", "state", "first_seen", "last_seen", "tags": {...}}
 * Times are Unix seconds; last_seen may lag by the flush interval.
 */
#include "device_json.h"

json_t *fp_device_json(const fp_device_rec *r)
{
    json_t *tags = json_loads(r->tags ? r->tags : "{}", 0, NULL);

    if (tags == NULL || !json_is_object(tags)) {
        json_decref(tags);
        tags = json_object();
    }
    return json_pack("{s:s, s:s, s:s, s:I, s:I, s:o}", "project", r->project, "name", r->name,
                     "state", fp_dev_state_name(r->state) ? fp_dev_state_name(r->state) : "?",
                     "first_seen", (json_int_t)r->first_seen, "last_seen",
                     (json_int_t)r->last_seen, "tags", tags);
}

json_t *fp_device_cert_json(const fp_cert_rec *c)
{
    return json_pack("{s:s, s:s, s:s, s:s, s:b, s:I, s:I, s:s}", "serial", c->serial, "ca",
                     c->ca_id, "profile", c->profile, "subject", c->subject ? c->subject : "",
                     "issued_by_us", c->ca_id[0] != '\0', "not_before", (json_int_t)c->not_before,
                     "not_after", (json_int_t)c->not_after, "status",
                     c->status == FP_CERT_REVOKED ? "revoked" : "valid");
}
