/* evtaskd's side of the service manager protocol (sd_notify): readiness,
 * status, stopping, reloading, the watchdog and stop-timeout extensions.
 * Every call is a no-op without $NOTIFY_SOCKET or without libsystemd. */
#pragma once

#include <ev.h>
#include <stdint.h>

typedef struct evd_notify evd_notify;

/* Starts the watchdog pings if the service manager asked for them
 * ($WATCHDOG_USEC): a timer on `ev`, so that a wedged loop stops them. The
 * timer does not keep the loop running. */
int evd_notify_new(struct ev_loop *ev, evd_notify **ret);
void evd_notify_free(evd_notify *n);

/* Sends a raw notification ("READY=1\nSTATUS=..."); n may be NULL. */
__attribute__((format(printf, 2, 3)))
void evd_notify_send(evd_notify *n, const char *fmt, ...);
/* Sends STATUS=..., unless it says what the last one said. */
__attribute__((format(printf, 2, 3)))
void evd_notify_status(evd_notify *n, const char *fmt, ...);
/* The watchdog interval the service manager asked for, in ns; 0: none. */
int64_t evd_notify_watchdog_interval(const evd_notify *n);
