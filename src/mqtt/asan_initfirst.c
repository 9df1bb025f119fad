/*
 * asan_initfirst.c - fleetpki_asan_initfirst.so, built only with
 * FP_SANITIZE: preloaded after libasan and libubsan into an
 * uninstrumented host (Debian's mosquitto) that loads the sanitizer build
 * of the plugin.  It starts the ASan runtime before any other library's
 * constructor runs.
 *
 * Why.  An instrumented executable starts ASan from its .preinit_array.
 * A preloaded libasan in an uninstrumented one starts lazily, on the
 * first call it intercepts.  In mosquitto that call is the malloc inside
 * glibc's bindtextdomain(), run by libgpg-error's constructor (mosquitto
 * -> libsystemd -> libgcrypt -> libgpg-error) with glibc's gettext
 * rwlock _nl_state_lock held for writing.  ASan's start-up calls dlsym()
 * for an optional symbol and then dlerror(), which translates its message
 * with gettext: a read lock of the same rwlock by its writer (refused with
 * EDEADLK, ignored), whose unlock releases the write lock, after which
 * bindtextdomain's own unlock takes one reader too many.  The rwlock's
 * reader count is then -1 for good, and the next bindtextdomain() waits
 * for ever.  libpq calls bindtextdomain() on its first connection, so the
 * plugin's PostgreSQL poller hung in PQconnectdbParams and the cache never
 * loaded; SQLite never calls it (issue 11; upstream: google/sanitizers
 * issue 1270, a hang in bindtextdomain under preloaded sanitizers).
 *
 * -z initfirst (DF_1_INITFIRST) makes the dynamic loader run this object's
 * initialisers before every other object's, preinit array included, so
 * ASan starts here with no lock held, as it would in an instrumented
 * executable.  Nothing else is done; the object exports nothing.
 */

void __asan_init(void); /* the ASan runtime's entry point (libasan) */

__attribute__((constructor)) static void asan_start_first(void)
{
    __asan_init();
}
