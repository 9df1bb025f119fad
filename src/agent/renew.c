/*
 * renew.c - when to renew: at a fraction of the certificate's lifetime
 * (default 2/3, leaving a third of it for retries through an outage).
 */
#include "agent.h"

int64_t fpa_renew_time(int64_t not_before, int64_t not_after, double fraction)
{
    double life = (double)not_after - (double)not_before;

    if (life <= 0 || !(fraction > 0.0))
        return not_before;
    if (fraction >= 1.0)
        return not_after;
    return not_before + (int64_t)(life * fraction);
}
